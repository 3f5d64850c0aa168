// kafkajs 2.x idempotent producer against a running Sluice broker (node --test, through compat/run.sh).
//
// `idempotent: true` makes kafkajs call InitProducerId (v1 at most) and number every batch per
// partition; kafkajs requires acks=-1 and maxInFlightRequests: 1 for it. The stream is read back with
// kcat (librdkafka), an independent decoder: every record exactly once, in send order per partition.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { kafkajs, kcatRead, newKafka, uniqueTopic, REPLICATION_FACTOR, TIMEOUT_MS } from './helpers.mjs'

const { CompressionTypes } = kafkajs
const T = { timeout: 60000 }
const PARTITIONS = 3

const valueFor = (partition, seq) => `p${partition}-${String(seq).padStart(6, '0')}`

describe('kafkajs idempotent producer', () => {
  let kafka, admin

  before(async () => {
    kafka = newKafka('compat-kafkajs-idempotent')
    admin = kafka.admin()
    await admin.connect()
  })

  after(async () => {
    await admin?.disconnect()
  })

  async function createTopic(topic, numPartitions) {
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions, replicationFactor: REPLICATION_FACTOR }],
      waitForLeaders: true,
      timeout: TIMEOUT_MS,
    })
    assert.equal(created, true, `createTopics(${topic}) returned ${created}`)
  }

  /** Reads the topic with kcat and checks every partition holds exactly sent[p] records in order. */
  function assertExactlyOnce(topic, sent) {
    const got = new Map(Array.from({ length: PARTITIONS }, (_, p) => [p, []]))
    for (const line of kcatRead(topic, '%p|%o|%s')) {
      const [p, o, v] = line.split('|')
      got.get(Number(p)).push([Number(o), v])
    }
    for (let p = 0; p < PARTITIONS; p++) {
      const want = Array.from({ length: sent[p] }, (_, seq) => [seq, valueFor(p, seq)])
      assert.deepEqual(got.get(p), want, `partition ${p}: ${got.get(p).length} read, ${sent[p]} sent`)
    }
  }

  for (const [name, compression] of [
    ['none', CompressionTypes.None],
    ['gzip', CompressionTypes.GZIP],
  ]) {
    test(`idempotent stream (compression=${name}) is read back exactly once, in order`, T, async () => {
      const topic = uniqueTopic(`kjs-idem-${name}`)
      await createTopic(topic, PARTITIONS)
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
      await producer.connect()
      try {
        const sent = new Array(PARTITIONS).fill(0)
        let index = 0
        for (let round = 0; round < 20; round++) {
          const messages = []
          for (let i = 0; i < 15; i++, index++) {
            const partition = index % PARTITIONS
            messages.push({ partition, key: `key-${index}`, value: valueFor(partition, sent[partition]++) })
          }
          const res = await producer.send({ topic, acks: -1, compression, timeout: TIMEOUT_MS, messages })
          for (const r of res) assert.equal(r.errorCode, 0, JSON.stringify(r))
        }
        assertExactlyOnce(topic, sent)
        const offsets = await admin.fetchTopicOffsets(topic)
        assert.deepEqual(
          offsets.sort((a, b) => a.partition - b.partition).map(({ partition, high }) => ({ partition, high })),
          sent.map((n, partition) => ({ partition, high: String(n) })),
        )
      } finally {
        await producer.disconnect()
      }
    })
  }

  test('idempotent producer: sendBatch, then a reconnect with a fresh producer id', T, async () => {
    const topic = uniqueTopic('kjs-idem-reconnect')
    await createTopic(topic, PARTITIONS)
    const sent = new Array(PARTITIONS).fill(0)
    const batchOf = (count) =>
      Array.from({ length: count }, (_, i) => {
        const partition = i % PARTITIONS
        return { partition, value: valueFor(partition, sent[partition]++) }
      })
    for (let session = 0; session < 2; session++) {
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
      await producer.connect()
      try {
        for (let round = 0; round < 5; round++) {
          const res = await producer.sendBatch({
            acks: -1,
            timeout: TIMEOUT_MS,
            topicMessages: [{ topic, messages: batchOf(12) }],
          })
          for (const r of res) assert.equal(r.errorCode, 0, JSON.stringify(r))
        }
      } finally {
        await producer.disconnect()
      }
    }
    assertExactlyOnce(topic, sent)
  })
})
