// kafkajs 2.x against a running Sluice broker (run with `node --test`, through compat/run.sh).
//
// kafkajs implements only non-flexible request versions and ignores the broker's minimum
// (docs/COMPATIBILITY.md, "Behaviour clients depend on"); admin calls go to the broker that
// Metadata names as controller_id, which must be in its broker list.
// Its consumer needs consumer groups: that test is in kafkajs-group.test.mjs (SLUICE_COMPAT_GROUPS=1).
// Records produced here are read back with kcat, an independent decoder.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { bootstrap, errorTypes, kafkajs, kcatRead, newKafka, uniqueTopic, waitUntil, BROKERS, REPLICATION_FACTOR, TIMEOUT_MS } from './helpers.mjs'

const { CompressionTypes } = kafkajs
const T = { timeout: 45000 }

describe('kafkajs', () => {
  let kafka, admin, producer

  before(async () => {
    kafka = newKafka()
    admin = kafka.admin()
    producer = kafka.producer({ allowAutoTopicCreation: true })
    await admin.connect()
    await producer.connect()
  })

  after(async () => {
    await producer?.disconnect()
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

  test('admin.createTopics with waitForLeaders, metadata, and re-create returns false', T, async () => {
    const topic = uniqueTopic('kjs-create')
    await createTopic(topic, 3)
    assert.ok((await admin.listTopics()).includes(topic))
    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    assert.equal(md.topics.length, 1)
    const parts = [...md.topics[0].partitions].sort((a, b) => a.partitionId - b.partitionId)
    assert.deepEqual(parts.map((p) => p.partitionId), [0, 1, 2])
    for (const p of parts) {
      assert.equal(p.partitionErrorCode, 0)
      assert.ok(p.leader >= 0, `partition ${p.partitionId} has no leader`)
      assert.ok(p.replicas.includes(p.leader))
      assert.ok(p.isr.includes(p.leader))
      assert.equal(new Set(p.replicas).size, REPLICATION_FACTOR, JSON.stringify(p))
      assert.deepEqual([...p.isr].sort(), [...p.replicas].sort(), JSON.stringify(p))
    }
    const cluster = await admin.describeCluster()
    assert.equal(cluster.brokers.length, BROKERS, JSON.stringify(cluster))
    assert.deepEqual(cluster.brokers.map((b) => `${b.host}:${b.port}`).sort(), bootstrap().split(',').sort(), JSON.stringify(cluster))
    assert.ok(cluster.brokers.some((b) => b.nodeId === cluster.controller), JSON.stringify(cluster))
    assert.ok(cluster.clusterId, 'clusterId is empty')
    // second create of the same topic: TOPIC_ALREADY_EXISTS, which kafkajs reports as false
    const again = await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], timeout: TIMEOUT_MS })
    assert.equal(again, false)
  })

  test('admin.createTopics with an invalid name fails with INVALID_TOPIC_EXCEPTION', T, async () => {
    for (const bad of ['has space', '..', 'x'.repeat(250)]) {
      await assert.rejects(
        admin.createTopics({ topics: [{ topic: bad, numPartitions: 1 }], waitForLeaders: false, timeout: TIMEOUT_MS }),
        (e) => {
          assert.ok(errorTypes(e).includes('INVALID_TOPIC_EXCEPTION'), `${bad.slice(0, 20)}: ${e} types=${errorTypes(e)}`)
          return true
        },
      )
    }
  })

  test('admin.deleteTopics removes the topic; a second delete gets UNKNOWN_TOPIC_OR_PARTITION', T, async () => {
    const topic = uniqueTopic('kjs-delete')
    await createTopic(topic, 2)
    await admin.deleteTopics({ topics: [topic], timeout: TIMEOUT_MS })
    await waitUntil(async () => !(await admin.listTopics()).includes(topic), TIMEOUT_MS, `${topic} gone`)
    await assert.rejects(admin.deleteTopics({ topics: [topic], timeout: TIMEOUT_MS }), (e) => {
      assert.ok(errorTypes(e).includes('UNKNOWN_TOPIC_OR_PARTITION'), `${e} types=${errorTypes(e)}`)
      return true
    })
  })

  for (const [name, compression] of [
    ['none', CompressionTypes.None],
    ['gzip', CompressionTypes.GZIP],
  ]) {
    test(`producer.send acks=-1 compression=${name}: offsets, fetchTopicOffsets, read back`, T, async () => {
      const topic = uniqueTopic(`kjs-send-${name}`)
      await createTopic(topic, 2)
      const ts = Date.now() - 60000
      const expected = []
      for (const partition of [0, 1]) {
        const messages = Array.from({ length: 15 }, (_, i) => ({
          partition,
          key: `key-${partition}-${i}`,
          value: `value-${name}-${partition}-${i}-`.repeat(10),
          headers: { 'h-idx': String(i), 'h-codec': name },
          timestamp: String(ts + i),
        }))
        const res = await producer.send({ topic, acks: -1, compression, timeout: TIMEOUT_MS, messages })
        assert.equal(res.length, 1)
        assert.equal(res[0].topicName, topic)
        assert.equal(res[0].partition, partition)
        assert.equal(res[0].errorCode, 0)
        assert.equal(res[0].baseOffset, '0')
        messages.forEach((m, i) => expected.push(`${partition}|${i}|${m.key}|${m.value}|h-idx=${i},h-codec=${name}|${ts + i}`))
      }
      const offsets = await admin.fetchTopicOffsets(topic)
      assert.deepEqual(
        offsets.sort((a, b) => a.partition - b.partition).map(({ partition, high, low }) => ({ partition, high, low })),
        [
          { partition: 0, high: '15', low: '0' },
          { partition: 1, high: '15', low: '0' },
        ],
      )
      const got = kcatRead(topic, '%p|%o|%k|%s|%h|%T')
      assert.deepEqual(got.sort(), expected.sort())
    })
  }

  test('producer.send with acks=1 and acks=0 (no response expected for acks=0)', T, async () => {
    const topic = uniqueTopic('kjs-acks')
    await createTopic(topic, 1)
    const r1 = await producer.send({ topic, acks: 1, messages: [{ partition: 0, key: 'a', value: 'one' }] })
    assert.equal(r1[0].baseOffset, '0')
    await producer.send({ topic, acks: 0, messages: [{ partition: 0, key: 'b', value: 'zero' }] })
    // the connection still works after acks=0 (a stray response would desync correlation ids)
    const r2 = await producer.send({ topic, acks: -1, messages: [{ partition: 0, key: 'c', value: 'all' }] })
    assert.equal(r2[0].baseOffset, '2')
    assert.deepEqual(kcatRead(topic, '%o|%k|%s'), ['0|a|one', '1|b|zero', '2|c|all'])
  })

  test('producer.sendBatch to several topics in one request', T, async () => {
    const t1 = uniqueTopic('kjs-batch-a')
    const t2 = uniqueTopic('kjs-batch-b')
    await createTopic(t1, 1)
    await createTopic(t2, 1)
    const res = await producer.sendBatch({
      acks: -1,
      compression: CompressionTypes.GZIP,
      topicMessages: [
        { topic: t1, messages: [{ partition: 0, key: 'x', value: '1' }, { partition: 0, key: 'y', value: '2' }] },
        { topic: t2, messages: [{ partition: 0, key: 'z', value: '3' }] },
      ],
    })
    assert.deepEqual(
      res.map((r) => [r.topicName, r.partition, r.errorCode, r.baseOffset]).sort(),
      [[t1, 0, 0, '0'], [t2, 0, 0, '0']].sort(),
    )
    assert.deepEqual(kcatRead(t1, '%k=%s'), ['x=1', 'y=2'])
    assert.deepEqual(kcatRead(t2, '%k=%s'), ['z=3'])
  })

  test('admin.fetchTopicOffsetsByTimestamp', T, async () => {
    const topic = uniqueTopic('kjs-bytime')
    await createTopic(topic, 2)
    const t0 = Date.now() - 3600000
    // partition 0: one batch per record; partition 1: all records in one batch
    for (let i = 0; i < 5; i++) {
      await producer.send({ topic, acks: -1, messages: [{ partition: 0, value: `p0-${i}`, timestamp: String(t0 + 1000 * i) }] })
    }
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: 5 }, (_, i) => ({ partition: 1, value: `p1-${i}`, timestamp: String(t0 + 1000 * i) })),
    })
    const cases = [
      [t0 - 1, '0'],
      [t0, '0'],
      [t0 + 1, '1'],
      [t0 + 2500, '3'],
      [t0 + 4000, '4'],
      [t0 + 4001, '5'], // no record at/after: kafkajs substitutes the high watermark
    ]
    for (const [ts, want] of cases) {
      const res = (await admin.fetchTopicOffsetsByTimestamp(topic, ts)).sort((a, b) => a.partition - b.partition)
      assert.deepEqual(res, [
        { partition: 0, offset: want },
        { partition: 1, offset: want },
      ], `timestamp t0+${ts - t0}`)
    }
  })

  test('producer.send to an unknown topic auto-creates it', T, async () => {
    const topic = uniqueTopic('kjs-auto')
    const res = await producer.send({ topic, acks: -1, messages: [{ key: 'k', value: 'auto' }] })
    assert.equal(res[0].errorCode, 0)
    assert.equal(res[0].baseOffset, '0')
    assert.deepEqual(kcatRead(topic, '%k|%s'), ['k|auto'])
  })
})
