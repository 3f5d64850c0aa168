// kafkajs consumer tests. DEPENDS ON THE GROUP COORDINATOR (FindCoordinator, JoinGroup, SyncGroup,
// Heartbeat, OffsetCommit/OffsetFetch, LeaveGroup): kafkajs has no group-less consumer.
// compat/run.sh runs this file only with SLUICE_COMPAT_GROUPS=1, and says so when it does not.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { kafkajs, newKafka, uniqueTopic, waitUntil, TIMEOUT_MS } from './helpers.mjs'

const T = { timeout: 90000 }

describe('kafkajs consumer (group coordinator)', () => {
  let kafka, admin, producer

  before(async () => {
    kafka = newKafka('compat-kafkajs-group')
    admin = kafka.admin()
    producer = kafka.producer()
    await admin.connect()
    await producer.connect()
  })

  after(async () => {
    await producer?.disconnect()
    await admin?.disconnect()
  })

  test('subscribe fromBeginning reads every record, commits, and a restart resumes after them', T, async () => {
    const topic = uniqueTopic('kjs-group')
    const groupId = `compat-group-${topic}`
    assert.equal(
      await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true, timeout: TIMEOUT_MS }),
      true,
    )
    const sent = []
    for (const partition of [0, 1, 2]) {
      const messages = Array.from({ length: 10 }, (_, i) => ({ partition, key: `k${partition}-${i}`, value: `v${i}`, headers: { i: String(i) } }))
      await producer.send({ topic, acks: -1, compression: kafkajs.CompressionTypes.GZIP, messages })
      messages.forEach((m, i) => sent.push(`${partition}|${i}|${m.key}|${m.value}|${i}`))
    }

    const seen = []
    const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000, maxWaitTimeInMs: 500 })
    await consumer.connect()
    try {
      await consumer.subscribe({ topic, fromBeginning: true })
      await consumer.run({
        eachMessage: async ({ partition, message }) => {
          seen.push(`${partition}|${message.offset}|${message.key}|${message.value}|${message.headers.i}`)
        },
      })
      await waitUntil(() => seen.length >= sent.length, 45000, `${sent.length} records`)
    } finally {
      await consumer.disconnect() // commits and leaves the group
    }
    assert.deepEqual([...seen].sort(), [...sent].sort())

    const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
    assert.deepEqual(
      committed[0].partitions.map(({ partition, offset }) => ({ partition, offset })).sort((a, b) => a.partition - b.partition),
      [0, 1, 2].map((partition) => ({ partition, offset: '10' })),
    )

    // a new member of the same group starts from the committed offsets
    await producer.send({ topic, acks: -1, messages: [{ partition: 1, key: 'late', value: 'late' }] })
    const seen2 = []
    const consumer2 = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000, maxWaitTimeInMs: 500 })
    await consumer2.connect()
    try {
      await consumer2.subscribe({ topic, fromBeginning: true })
      await consumer2.run({ eachMessage: async ({ partition, message }) => { seen2.push(`${partition}|${message.offset}|${message.key}`) } })
      await waitUntil(() => seen2.length >= 1, 45000, 'the late record')
      await new Promise((r) => setTimeout(r, 1000))
    } finally {
      await consumer2.disconnect()
    }
    assert.deepEqual(seen2, ['1|10|late'])
  })
})
