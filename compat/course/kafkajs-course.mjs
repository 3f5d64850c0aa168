// kafkajs as one of the course's clients, driven by test_course.py (which owns the cluster and
// its faults). Reads SLUICE_BOOTSTRAP; prints one JSON line on stdout; exit status 0 unless the
// script itself broke (a Kafka error is reported in the JSON, not as a failure).
//
//   node kafkajs-course.mjs produce TOPIC PARTITION ACKS VALUE...
//       -> {"ok":true,"baseOffset":"N"} | {"ok":false,"types":["NOT_ENOUGH_REPLICAS",...],"message":"..."}
//   node kafkajs-course.mjs consume TOPIC COUNT TIMEOUT_MS
//       -> {"records":[[partition, "offset", "value"], ...]}   (a fresh group, from the beginning)
import { errorTypes, newKafka } from '../node/helpers.mjs'

const [command, topic, ...rest] = process.argv.slice(2)
const kafka = newKafka('course-kafkajs')

async function produce() {
  const [partition, acks, ...values] = rest
  // No retries: the first answer is the one the course looks at (kafkajs retries
  // NOT_ENOUGH_REPLICAS, a retriable error, by default).
  const producer = kafka.producer({ retry: { retries: 0 } })
  await producer.connect()
  try {
    const res = await producer.send({
      topic,
      acks: Number(acks),
      timeout: 15000,
      messages: values.map((value) => ({ partition: Number(partition), value })),
    })
    return { ok: true, baseOffset: res[0].baseOffset }
  } catch (e) {
    return { ok: false, types: errorTypes(e), message: String(e && e.message) }
  } finally {
    await producer.disconnect()
  }
}

async function consume() {
  const [count, timeoutMs] = rest.map(Number)
  const consumer = kafka.consumer({ groupId: `course-kafkajs-${Date.now()}-${process.pid}` })
  const records = []
  await consumer.connect()
  try {
    await consumer.subscribe({ topic, fromBeginning: true })
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => resolve(), timeoutMs)
      consumer
        .run({
          eachMessage: async ({ partition, message }) => {
            records.push([partition, message.offset, message.value.toString()])
            if (records.length >= count) {
              clearTimeout(timer)
              resolve()
            }
          },
        })
        .catch(reject)
    })
  } finally {
    await consumer.disconnect()
  }
  return { records }
}

const out = command === 'produce' ? await produce() : command === 'consume' ? await consume() : null
if (out === null) {
  console.error(`unknown command ${command}`)
  process.exit(2)
}
console.log(JSON.stringify(out))
