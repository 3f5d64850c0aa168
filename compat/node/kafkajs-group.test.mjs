// kafkajs 2.2.4 consumer-group tests (kafkajs has no group-less consumer). kafkajs negotiates
// the highest non-flexible versions it has: FindCoordinator v2, JoinGroup v5 (KIP-394
// MEMBER_ID_REQUIRED), SyncGroup v3, Heartbeat v3, LeaveGroup v3 (batched), OffsetCommit v5,
// OffsetFetch v4, ListGroups v2, DescribeGroups v2, DeleteGroups v1.
//
// Core scenario: produce N keyed records to a 4-partition topic; TWO consumers of one group in this
// process consume concurrently and commit after processing each message (autoCommit off); assert
// both got a non-empty, disjoint share covering the topic with one join each (stable membership),
// the union is exactly the N records (no loss, no duplicate offset), per-key order kept; disconnect
// (LeaveGroup); committed offsets = high watermarks; produce M more and a NEW consumer of the group
// resumes exactly at the committed offsets and reads exactly the M new records. Admin: listGroups,
// describeGroups (members, client ids, assignments), deleteGroups.
// A broker restart between commit and resume is not exercised (compat keeps its broker, or its
// cluster, up for all suites); the Rust end-to-end tests cover it.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { errorTypes, kafkajs, newKafka, uniqueTopic, waitUntil, TIMEOUT_MS } from './helpers.mjs'

const T = { timeout: 120000 }
const PARTITIONS = 4
const KEYS = 16
const N = 160
const M = 48
const CONSUME_MS = 45000 // includes the broker's 3 s group.initial.rebalance.delay.ms
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/** count records over KEYS keys, value = per-key sequence number continuing from firstSeq */
function keyedRecords(firstSeq, count) {
  const out = []
  for (let s = firstSeq; s < firstSeq + count / KEYS; s++) {
    for (let k = 0; k < KEYS; k++) out.push({ key: `key-${String(k).padStart(2, '0')}`, value: String(s) })
  }
  return out
}

/** A group member: autoCommit off, commits offset+1 after processing each message. */
async function startMember(kafka, groupId, topic, clientTag) {
  const m = { records: [], joins: [], errors: [], tag: clientTag }
  m.consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000, maxWaitTimeInMs: 300 })
  m.consumer.on(m.consumer.events.GROUP_JOIN, (e) => {
    m.joins.push((e.payload.memberAssignment[topic] || []).slice().sort((a, b) => a - b))
    m.memberId = e.payload.memberId
  })
  m.consumer.on(m.consumer.events.CRASH, (e) => m.errors.push(e.payload.error))
  await m.consumer.connect()
  await m.consumer.subscribe({ topic, fromBeginning: true })
  await m.consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      m.records.push({ partition, offset: Number(message.offset), key: message.key.toString(), value: message.value.toString() })
      await m.consumer.commitOffsets([{ topic, partition, offset: String(Number(message.offset) + 1) }])
    },
  })
  return m
}

function checkUnion(produced, members) {
  const all = members.flatMap((m) => m.records)
  const pos = all.map((r) => `${r.partition}@${r.offset}`)
  const dups = pos.filter((p, i) => pos.indexOf(p) !== i)
  assert.deepEqual(dups, [], 'records consumed more than once')
  assert.deepEqual(
    all.map((r) => `${r.key}=${r.value}`).sort(),
    produced.map((r) => `${r.key}=${r.value}`).sort(),
    'the union of the members is not exactly the produced records',
  )
  const byKey = new Map()
  members.forEach((m, i) =>
    m.records.forEach((r) => {
      const e = byKey.get(r.key) || { readers: new Set(), parts: new Set(), seqs: [] }
      e.readers.add(i)
      e.parts.add(r.partition)
      e.seqs.push(Number(r.value))
      byKey.set(r.key, e)
    }),
  )
  for (const [k, e] of byKey) {
    assert.equal(e.parts.size, 1, `key ${k} in several partitions`)
    assert.equal(e.readers.size, 1, `key ${k} read by several members (membership not stable)`)
    assert.deepEqual(e.seqs, [...e.seqs].sort((a, b) => a - b), `key ${k} out of order`)
  }
}

/** DescribeGroups returns the raw assignment bytes; kafkajs's ConsumerProtocol decoder reads them. */
function decodeAssignment(buf) {
  return kafkajs.AssignerProtocol.MemberAssignment.decode(buf).assignment
}

/** assert.rejects validator: a KafkaJSDeleteGroupsError whose entry for groupId has this error type. */
function deleteGroupsError(groupId, type) {
  return (e) => {
    const got = (e.groups || []).filter((g) => g.groupId === groupId).map((g) => g.error?.type)
    assert.deepEqual(got, [type], `${e.name}: ${e.message} ${JSON.stringify(e.groups)} ${errorTypes(e)}`)
    return true
  }
}

function firstOffsets(records) {
  const out = {}
  for (const r of records) if (!(r.partition in out)) out[r.partition] = r.offset
  return out
}

describe('kafkajs consumer group', () => {
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

  async function highWatermarks(topic) {
    const offs = await admin.fetchTopicOffsets(topic)
    return Object.fromEntries(offs.map((o) => [o.partition, Number(o.high)]))
  }

  async function committed(groupId, topic) {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] })
    return Object.fromEntries(t.partitions.map((p) => [p.partition, Number(p.offset)]))
  }

  test('two members split the partitions, union is exactly the records, commit, a new member resumes', T, async () => {
    const topic = uniqueTopic('kjs-group')
    const groupId = `compat-kjs-${topic}`
    assert.equal(
      await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true, timeout: TIMEOUT_MS }),
      true,
    )
    const first = keyedRecords(0, N)
    await producer.send({ topic, acks: -1, messages: first })

    const members = []
    try {
      members.push(...(await Promise.all([0, 1].map((i) => startMember(kafka, groupId, topic, `m${i}`)))))
      await waitUntil(
        () => members.reduce((n, m) => n + m.records.length, 0) >= N || members.some((m) => m.errors.length),
        CONSUME_MS,
        `${N} records over two members`,
      )
      await sleep(1000) // anything consumed twice would show up now

      // while both are in: listGroups / describeGroups
      const { groups } = await admin.listGroups()
      assert.ok(groups.some((g) => g.groupId === groupId && g.protocolType === 'consumer'), JSON.stringify(groups))
      const {
        groups: [d],
      } = await admin.describeGroups([groupId])
      assert.equal(d.errorCode, 0)
      assert.equal(d.state, 'Stable')
      assert.equal(d.protocolType, 'consumer')
      assert.equal(d.members.length, 2)
      const described = {}
      for (const mem of d.members) {
        assert.equal(mem.clientId, 'compat-kafkajs-group')
        assert.ok(mem.clientHost.includes('127.0.0.1'), mem.clientHost)
        const a = decodeAssignment(mem.memberAssignment)
        described[mem.memberId] = (a[topic] || []).slice().sort((x, y) => x - y)
      }
      assert.deepEqual(described, Object.fromEntries(members.map((m) => [m.memberId, m.joins.at(-1)])))
      await assert.rejects(admin.deleteGroups([groupId]), deleteGroupsError(groupId, 'NON_EMPTY_GROUP'))
    } finally {
      await Promise.all(members.map((m) => m.consumer.disconnect())) // LeaveGroup
    }
    assert.deepEqual(members.flatMap((m) => m.errors), [])
    for (const m of members) assert.equal(m.joins.length, 1, `${m.tag} joined ${m.joins.length} times: membership not stable`)
    const shares = members.map((m) => new Set(m.joins[0]))
    assert.ok(shares.every((s) => s.size > 0), `a member got no partition: ${members.map((m) => m.joins)}`)
    assert.deepEqual([...shares[0], ...shares[1]].sort(), [...Array(PARTITIONS).keys()], 'shares disjoint and covering')
    checkUnion(first, members)

    const hwm = await highWatermarks(topic)
    assert.equal(Object.values(hwm).reduce((a, b) => a + b, 0), N)
    assert.deepEqual(await committed(groupId, topic), hwm)

    // a NEW member resumes exactly at the committed offsets
    const second = keyedRecords(N / KEYS, M)
    await producer.send({ topic, acks: -1, messages: second })
    const late = await startMember(kafka, groupId, topic, 'late')
    try {
      await waitUntil(() => late.records.length >= M || late.errors.length, CONSUME_MS, `${M} more records`)
      await sleep(1500)
    } finally {
      await late.consumer.disconnect()
    }
    assert.deepEqual(late.errors, [])
    assert.deepEqual(late.joins, [[...Array(PARTITIONS).keys()]])
    checkUnion(second, [late])
    const fo = firstOffsets(late.records)
    assert.deepEqual(fo, Object.fromEntries(Object.keys(fo).map((p) => [p, hwm[p]])))
    assert.deepEqual(await committed(groupId, topic), await highWatermarks(topic))

    // the group is Empty now; delete it, then it is unknown
    const {
      groups: [empty],
    } = await admin.describeGroups([groupId])
    assert.equal(empty.state, 'Empty')
    assert.deepEqual(empty.members, [])
    await admin.deleteGroups([groupId])
    assert.ok(!(await admin.listGroups()).groups.some((g) => g.groupId === groupId))
    await assert.rejects(admin.deleteGroups([groupId]), deleteGroupsError(groupId, 'GROUP_ID_NOT_FOUND'))
  })
})

