// kafkajs 2.x admin: describeConfigs, alterConfigs, createPartitions and deleteTopicRecords
// against a running Sluice broker (run with `node --test`, through compat/run.sh).
//
// kafkajs speaks AlterConfigs (the non-incremental API: the given set becomes the topic's whole
// set of overrides), DescribeConfigs v0-v2, CreatePartitions v0-v1 and DeleteRecords v0.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'

import { errorTypes, kafkajs, newKafka, uniqueTopic, waitUntil, BROKERS, CLUSTER, REPLICATION_FACTOR, TIMEOUT_MS } from './helpers.mjs'

const { ConfigResourceTypes, ConfigSource } = kafkajs
const T = { timeout: 45000 }

describe('kafkajs admin', () => {
  let kafka, admin, producer

  before(async () => {
    kafka = newKafka('compat-kafkajs-admin')
    admin = kafka.admin()
    producer = kafka.producer()
    await admin.connect()
    await producer.connect()
  })

  after(async () => {
    await producer?.disconnect()
    await admin?.disconnect()
  })

  async function createTopic(topic, numPartitions, configEntries = []) {
    const created = await admin.createTopics({
      topics: [{ topic, numPartitions, replicationFactor: REPLICATION_FACTOR, configEntries }],
      waitForLeaders: true,
      timeout: TIMEOUT_MS,
    })
    assert.equal(created, true, `createTopics(${topic}) returned ${created}`)
  }

  /** { name: entry } of one topic (or broker) resource. */
  async function describeResource(type, name, includeSynonyms = false) {
    const described = await admin.describeConfigs({ resources: [{ type, name }], includeSynonyms })
    assert.equal(described.resources.length, 1)
    const [resource] = described.resources
    assert.equal(resource.errorCode, 0, JSON.stringify(resource))
    return Object.fromEntries(resource.configEntries.map((e) => [e.configName, e]))
  }

  const describeTopic = (topic, includeSynonyms) => describeResource(ConfigResourceTypes.TOPIC, topic, includeSynonyms)
  /**
   * The topic's configs once `check(configs)` holds on several reads in a row. As in Kafka, a
   * config change reaches each broker when that broker applies the metadata record, and kafkajs
   * sends DescribeConfigs to the broker Metadata names as controller (in KRaft a random broker;
   * in Sluice the one kafkajs asked for Metadata, itself any connected broker), so in a cluster
   * the read right after a change may be answered by a broker a few milliseconds behind.
   * Single node: the first read must show it.
   */
  async function describeTopicChanged(topic, check) {
    if (!CLUSTER) {
      const cfg = await describeTopic(topic)
      assert.ok(check(cfg), JSON.stringify(valuesOf(cfg)))
      return cfg
    }
    let inARow = 0
    return waitUntil(async () => {
      const cfg = await describeTopic(topic)
      inARow = check(cfg) ? inARow + 1 : 0
      return inARow >= 2 * BROKERS ? cfg : undefined
    }, TIMEOUT_MS, `the change to ${topic}'s configs`)
  }

  const valuesOf = (entries) => Object.fromEntries(Object.entries(entries).map(([k, e]) => [k, e.configValue]))

  async function partitionCount(topic) {
    const md = await admin.fetchTopicMetadata({ topics: [topic] })
    return md.topics[0].partitions.length
  }

  test('admin.describeConfigs: topic values, sources, synonyms; broker configs', T, async () => {
    const topic = uniqueTopic('kjs-adm-describe')
    await createTopic(topic, 1, [{ name: 'retention.ms', value: '3600000' }])
    const cfg = await describeTopic(topic, true)
    const retention = cfg['retention.ms']
    assert.equal(retention.configValue, '3600000')
    assert.equal(retention.configSource, ConfigSource.TOPIC_CONFIG)
    assert.equal(retention.isDefault, false)
    assert.equal(retention.readOnly, false)
    assert.equal(retention.isSensitive, false)
    assert.ok(retention.configSynonyms.length >= 2, JSON.stringify(retention.configSynonyms))
    assert.equal(retention.configSynonyms[0].configName, 'retention.ms')
    assert.equal(retention.configSynonyms[0].configSource, ConfigSource.TOPIC_CONFIG)
    assert.ok(retention.configSynonyms.slice(1).some((s) => s.configName.startsWith('log.retention.')))
    assert.equal(cfg['segment.bytes'].configValue, '1073741824')
    assert.equal(cfg['segment.bytes'].configSource, ConfigSource.DEFAULT_CONFIG)
    assert.equal(cfg['cleanup.policy'].configValue, 'delete')
    assert.equal(cfg['retention.bytes'].configValue, '-1')

    // Only the names asked for.
    const some = await admin.describeConfigs({
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms', 'cleanup.policy'] }],
      includeSynonyms: false,
    })
    assert.deepEqual(some.resources[0].configEntries.map((e) => e.configName).sort(), ['cleanup.policy', 'retention.ms'])

    // kafkajs sends a BROKER resource to that broker: every broker answers for itself
    const cluster = await admin.describeCluster()
    assert.equal(cluster.brokers.length, BROKERS, JSON.stringify(cluster))
    for (const { nodeId } of cluster.brokers) {
      const broker = await describeResource(ConfigResourceTypes.BROKER, String(nodeId))
      assert.equal(broker['log.retention.bytes'].configValue, '-1', `broker ${nodeId}`)
      assert.ok('num.partitions' in broker, `broker ${nodeId}`)
    }
  })

  test('admin.alterConfigs sets the overrides; bad input gets INVALID_CONFIG and changes nothing', T, async () => {
    const topic = uniqueTopic('kjs-adm-alter')
    await createTopic(topic, 1, [{ name: 'segment.bytes', value: '1048576' }])
    await admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: ConfigResourceTypes.TOPIC,
          name: topic,
          configEntries: [
            { name: 'retention.ms', value: '7200000' },
            { name: 'cleanup.policy', value: 'compact,delete' },
          ],
        },
      ],
    })
    const cfg = await describeTopicChanged(topic, (c) => c['retention.ms'].configValue === '7200000')
    assert.equal(cfg['retention.ms'].configSource, ConfigSource.TOPIC_CONFIG)
    assert.equal(cfg['cleanup.policy'].configValue, 'compact,delete')
    // AlterConfigs replaces the whole set of overrides: segment.bytes is back to its default.
    assert.equal(cfg['segment.bytes'].configValue, '1073741824')
    assert.equal(cfg['segment.bytes'].configSource, ConfigSource.DEFAULT_CONFIG)

    // validateOnly changes nothing.
    await admin.alterConfigs({
      validateOnly: true,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '1000' }] }],
    })
    assert.equal((await describeTopic(topic))['retention.ms'].configValue, '7200000')

    const before = valuesOf(await describeTopic(topic))
    for (const bad of [
      [{ name: 'retention.ms', value: '1000' }, { name: 'no.such.config', value: '1' }],
      [{ name: 'retention.ms', value: '1000' }, { name: 'retention.bytes', value: '-2' }],
      [{ name: 'retention.ms', value: '1000' }, { name: 'cleanup.policy', value: 'bogus' }],
    ]) {
      await assert.rejects(
        admin.alterConfigs({ validateOnly: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: bad }] }),
        (e) => {
          assert.ok(errorTypes(e).includes('INVALID_CONFIG'), `${JSON.stringify(bad)}: ${e} types=${errorTypes(e)}`)
          return true
        },
      )
      assert.deepEqual(valuesOf(await describeTopic(topic)), before, `nothing changed after ${JSON.stringify(bad)}`)
    }
  })

  test('admin.createPartitions adds partitions; keyed records spread; decreasing gets INVALID_PARTITIONS', T, async () => {
    const topic = uniqueTopic('kjs-adm-partitions')
    await createTopic(topic, 1)
    await admin.createPartitions({ topicPartitions: [{ topic, count: 3 }], timeout: TIMEOUT_MS })
    await waitUntil(async () => (await partitionCount(topic)) === 3, TIMEOUT_MS, `${topic} with 3 partitions`)

    const messages = Array.from({ length: 60 }, (_, i) => ({ key: `key-${i}`, value: `v-${i}` }))
    const sent = await producer.send({ topic, acks: -1, messages })
    const partitions = new Set(sent.map((r) => r.partition))
    // kafkajs answers one entry per partition it wrote to.
    assert.deepEqual([...partitions].sort(), [0, 1, 2], JSON.stringify(sent))

    for (const count of [2, 3]) {
      await assert.rejects(admin.createPartitions({ topicPartitions: [{ topic, count }], timeout: TIMEOUT_MS }), (e) => {
        assert.ok(errorTypes(e).includes('INVALID_PARTITIONS'), `count ${count}: ${e} types=${errorTypes(e)}`)
        return true
      })
    }
    assert.equal(await partitionCount(topic), 3)
  })

  test('admin.deleteTopicRecords moves the low watermark', T, async () => {
    const topic = uniqueTopic('kjs-adm-delete-records')
    await createTopic(topic, 1)
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: 20 }, (_, i) => ({ partition: 0, key: `k${i}`, value: `v${i}` })),
    })
    // kafkajs looks the partition leader up in its cached metadata before it loads the
    // topic's: fetch the offsets first (which loads it).
    let [offsets] = await admin.fetchTopicOffsets(topic)
    assert.equal(offsets.low, '0')
    assert.equal(offsets.high, '20')
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '8' }] })
    ;[offsets] = await admin.fetchTopicOffsets(topic)
    assert.equal(offsets.low, '8')
    assert.equal(offsets.high, '20')

    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '-1' }] })
    ;[offsets] = await admin.fetchTopicOffsets(topic)
    assert.equal(offsets.low, '20', 'offset -1: up to the high watermark')
    assert.equal(offsets.high, '20')

    await assert.rejects(admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '25' }] }), (e) => {
      // KafkaJSNonRetriableError caused by KafkaJSDeleteTopicRecordsError, whose partitions carry
      // the broker's error.
      const perPartition = (e.cause?.partitions ?? []).flatMap((p) => errorTypes(p.error))
      assert.ok(perPartition.includes('OFFSET_OUT_OF_RANGE'), `${e} partition errors=${perPartition}`)
      return true
    })
    ;[offsets] = await admin.fetchTopicOffsets(topic)
    assert.equal(offsets.low, '20', 'a failed DeleteRecords changes nothing')
  })
})
