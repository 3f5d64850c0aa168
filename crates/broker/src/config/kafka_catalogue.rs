//! The rest of Apache Kafka 4.0's broker configs: every name `kafka.server.KafkaConfig`
//! defines that `BROKER_CONFIGS` (the configs Sluice implements) does not have, with
//! Kafka's type, default and update mode, as the Kafka 4.0 documentation lists them
//! ("Broker Configs": Type, Default, Update Mode).
//!
//! Sluice accepts these, type-checks them, stores dynamic changes in the metadata log and
//! reports them in DescribeConfigs, but the broker does not read them (the listener and
//! quorum names — `listeners`, `advertised.listeners`, `controller.listener.names`,
//! `controller.quorum.voters`, `listener.security.protocol.map`,
//! `inter.broker.listener.name`, `security.inter.broker.protocol` — are resolved and
//! checked by `sluice serve` before the broker starts; the rest have no effect): listeners, SASL, SSL, quotas,
//! tiered storage, KRaft tuning and thread pools are configured differently here or are
//! not built. Clients and tools write them all the same (librdkafka's 0081_admin sets
//! `sasl.kerberos.min.time.before.relogin` on a broker), and Kafka knows every name, so
//! refusing one as unknown would be a divergence.
//!
//! Update modes: Kafka's "read-only" configs can only be set at start (AlterConfigs answers
//! INVALID_REQUEST); "per-broker" and "cluster-wide" ones can be altered at run time.

use super::{BrokerConfigDef, ConfigType};

/// What DescribeConfigs v3+ says of every config in this file.
const NO_EFFECT: &str =
    "Apache Kafka broker config; Sluice accepts and reports it, without effect.";

/// A Kafka broker config Sluice has no use for.
#[derive(Clone, Copy, Debug)]
pub struct KafkaOnlyConfig {
    /// Name, type, default and whether it is read-only, as for Sluice's own configs.
    pub def: BrokerConfigDef,
    /// Kafka's default is null (no value), which DescribeConfigs reports as a null value;
    /// `def.default` is then "".
    pub null_default: bool,
}

/// Set only at start ("read-only"), with a default.
const fn fixed(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
) -> KafkaOnlyConfig {
    entry(name, config_type, default, true, false)
}

/// Set only at start, null by default.
const fn fixed_null(name: &'static str, config_type: ConfigType) -> KafkaOnlyConfig {
    entry(name, config_type, "", true, true)
}

/// Alterable at run time ("per-broker" or "cluster-wide"), with a default.
const fn dynamic(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
) -> KafkaOnlyConfig {
    entry(name, config_type, default, false, false)
}

/// Alterable at run time, null by default.
const fn dynamic_null(name: &'static str, config_type: ConfigType) -> KafkaOnlyConfig {
    entry(name, config_type, "", false, true)
}

const fn entry(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    read_only: bool,
    null_default: bool,
) -> KafkaOnlyConfig {
    KafkaOnlyConfig {
        def: BrokerConfigDef {
            name,
            default,
            config_type,
            read_only,
            documentation: NO_EFFECT,
        },
        null_default,
    }
}

/// Kafka 4.0's broker configs that Sluice does not implement, by name.
#[rustfmt::skip]
pub const KAFKA_ONLY_BROKER_CONFIGS: &[KafkaOnlyConfig] = &[
    fixed("add.partitions.to.txn.retry.backoff.max.ms", ConfigType::Int, "100"),
    fixed("add.partitions.to.txn.retry.backoff.ms", ConfigType::Int, "20"),
    fixed_null("advertised.listeners", ConfigType::String),
    fixed_null("alter.config.policy.class.name", ConfigType::Class),
    fixed("alter.log.dirs.replication.quota.window.num", ConfigType::Int, "11"),
    fixed("alter.log.dirs.replication.quota.window.size.seconds", ConfigType::Int, "1"),
    fixed("authorizer.class.name", ConfigType::String, ""),
    dynamic("background.threads", ConfigType::Int, "10"),
    fixed_null("client.quota.callback.class", ConfigType::Class),
    dynamic("compression.gzip.level", ConfigType::Int, "-1"),
    dynamic("compression.lz4.level", ConfigType::Int, "9"),
    dynamic("compression.zstd.level", ConfigType::Int, "3"),
    fixed("connection.failed.authentication.delay.ms", ConfigType::Int, "100"),
    fixed("connections.max.reauth.ms", ConfigType::Long, "0"),
    fixed("controlled.shutdown.enable", ConfigType::Boolean, "true"),
    fixed_null("controller.listener.names", ConfigType::String),
    fixed("controller.quorum.append.linger.ms", ConfigType::Int, "25"),
    fixed("controller.quorum.bootstrap.servers", ConfigType::List, ""),
    fixed("controller.quorum.election.backoff.max.ms", ConfigType::Int, "1000"),
    fixed("controller.quorum.election.timeout.ms", ConfigType::Int, "1000"),
    fixed("controller.quorum.fetch.timeout.ms", ConfigType::Int, "2000"),
    fixed("controller.quorum.request.timeout.ms", ConfigType::Int, "2000"),
    fixed("controller.quorum.retry.backoff.ms", ConfigType::Int, "20"),
    fixed("controller.quorum.voters", ConfigType::List, ""),
    fixed("controller.quota.window.num", ConfigType::Int, "11"),
    fixed("controller.quota.window.size.seconds", ConfigType::Int, "1"),
    fixed("controller.socket.timeout.ms", ConfigType::Int, "30000"),
    fixed_null("create.topic.policy.class.name", ConfigType::Class),
    fixed("delegation.token.expiry.check.interval.ms", ConfigType::Long, "3600000"),
    fixed("delegation.token.expiry.time.ms", ConfigType::Long, "86400000"),
    fixed("delegation.token.max.lifetime.ms", ConfigType::Long, "604800000"),
    fixed_null("delegation.token.secret.key", ConfigType::Password),
    fixed("delete.records.purgatory.purge.interval.requests", ConfigType::Int, "1"),
    fixed("delete.topic.enable", ConfigType::Boolean, "true"),
    fixed_null("early.start.listeners", ConfigType::String),
    fixed("fetch.purgatory.purge.interval.requests", ConfigType::Int, "1000"),
    fixed("group.consumer.assignors", ConfigType::List, "uniform,range"),
    fixed("group.consumer.heartbeat.interval.ms", ConfigType::Int, "5000"),
    fixed("group.consumer.max.heartbeat.interval.ms", ConfigType::Int, "15000"),
    fixed("group.consumer.max.session.timeout.ms", ConfigType::Int, "60000"),
    fixed("group.consumer.max.size", ConfigType::Int, "2147483647"),
    fixed("group.consumer.migration.policy", ConfigType::String, "bidirectional"),
    fixed("group.consumer.min.heartbeat.interval.ms", ConfigType::Int, "5000"),
    fixed("group.consumer.min.session.timeout.ms", ConfigType::Int, "45000"),
    fixed("group.consumer.session.timeout.ms", ConfigType::Int, "45000"),
    fixed("group.coordinator.append.linger.ms", ConfigType::Int, "5"),
    fixed("group.coordinator.rebalance.protocols", ConfigType::List, "classic,consumer"),
    fixed("group.coordinator.threads", ConfigType::Int, "4"),
    fixed("group.share.delivery.count.limit", ConfigType::Int, "5"),
    fixed("group.share.heartbeat.interval.ms", ConfigType::Int, "5000"),
    fixed("group.share.max.groups", ConfigType::Short, "10"),
    fixed("group.share.max.heartbeat.interval.ms", ConfigType::Int, "15000"),
    fixed("group.share.max.record.lock.duration.ms", ConfigType::Int, "60000"),
    fixed("group.share.max.session.timeout.ms", ConfigType::Int, "60000"),
    fixed("group.share.max.size", ConfigType::Int, "200"),
    fixed("group.share.min.heartbeat.interval.ms", ConfigType::Int, "5000"),
    fixed("group.share.min.record.lock.duration.ms", ConfigType::Int, "15000"),
    fixed("group.share.min.session.timeout.ms", ConfigType::Int, "45000"),
    fixed("group.share.partition.max.record.locks", ConfigType::Int, "200"),
    fixed("group.share.record.lock.duration.ms", ConfigType::Int, "30000"),
    fixed("group.share.session.timeout.ms", ConfigType::Int, "45000"),
    fixed_null("inter.broker.listener.name", ConfigType::String),
    fixed("kafka.metrics.polling.interval.secs", ConfigType::Int, "10"),
    fixed("kafka.metrics.reporters", ConfigType::List, ""),
    dynamic("listener.security.protocol.map", ConfigType::String, "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT"),
    dynamic("listeners", ConfigType::String, "PLAINTEXT://:9092"),
    dynamic("log.cleaner.io.buffer.load.factor", ConfigType::Double, "0.9"),
    dynamic("log.cleaner.io.buffer.size", ConfigType::Int, "524288"),
    fixed("log.dir", ConfigType::String, "/tmp/kafka-logs"),
    fixed("log.dir.failure.timeout.ms", ConfigType::Long, "30000"),
    fixed("log.flush.offset.checkpoint.interval.ms", ConfigType::Int, "60000"),
    fixed("log.flush.scheduler.interval.ms", ConfigType::Long, "9223372036854775807"),
    fixed("log.flush.start.offset.checkpoint.interval.ms", ConfigType::Int, "60000"),
    dynamic("log.local.retention.bytes", ConfigType::Long, "-2"),
    dynamic("log.local.retention.ms", ConfigType::Long, "-2"),
    fixed("log.retention.hours", ConfigType::Int, "168"),
    fixed_null("log.retention.minutes", ConfigType::Int),
    fixed("log.roll.hours", ConfigType::Int, "168"),
    fixed("log.roll.jitter.hours", ConfigType::Int, "0"),
    dynamic("max.connection.creation.rate", ConfigType::Int, "2147483647"),
    dynamic("max.connections.per.ip", ConfigType::Int, "2147483647"),
    dynamic("max.connections.per.ip.overrides", ConfigType::String, ""),
    fixed("max.incremental.fetch.session.cache.slots", ConfigType::Int, "1000"),
    fixed("max.request.partition.size.limit", ConfigType::Int, "2000"),
    fixed_null("metadata.log.dir", ConfigType::String),
    fixed("metadata.log.max.record.bytes.between.snapshots", ConfigType::Long, "20971520"),
    fixed("metadata.log.max.snapshot.interval.ms", ConfigType::Long, "3600000"),
    fixed("metadata.log.segment.bytes", ConfigType::Int, "1073741824"),
    fixed("metadata.log.segment.ms", ConfigType::Long, "604800000"),
    fixed("metadata.max.idle.interval.ms", ConfigType::Int, "500"),
    fixed("metadata.max.retention.bytes", ConfigType::Long, "104857600"),
    fixed("metadata.max.retention.ms", ConfigType::Long, "604800000"),
    dynamic("metric.reporters", ConfigType::List, "org.apache.kafka.common.metrics.JmxReporter"),
    fixed("metrics.num.samples", ConfigType::Int, "2"),
    fixed("metrics.recording.level", ConfigType::String, "INFO"),
    fixed("metrics.sample.window.ms", ConfigType::Long, "30000"),
    dynamic("num.io.threads", ConfigType::Int, "8"),
    dynamic("num.network.threads", ConfigType::Int, "3"),
    dynamic("num.recovery.threads.per.data.dir", ConfigType::Int, "2"),
    fixed_null("num.replica.alter.log.dirs.threads", ConfigType::Int),
    fixed("offsets.load.buffer.size", ConfigType::Int, "5242880"),
    fixed("offsets.topic.compression.codec", ConfigType::Int, "0"),
    fixed("offsets.topic.segment.bytes", ConfigType::Int, "104857600"),
    dynamic("principal.builder.class", ConfigType::Class, "org.apache.kafka.common.security.authenticator.DefaultKafkaPrincipalBuilder"),
    fixed("producer.purgatory.purge.interval.requests", ConfigType::Int, "1000"),
    fixed("queued.max.request.bytes", ConfigType::Long, "-1"),
    fixed("queued.max.requests", ConfigType::Int, "500"),
    fixed("quota.window.num", ConfigType::Int, "11"),
    fixed("quota.window.size.seconds", ConfigType::Int, "1"),
    dynamic("remote.fetch.max.wait.ms", ConfigType::Int, "500"),
    dynamic("remote.list.offsets.request.timeout.ms", ConfigType::Long, "30000"),
    dynamic("remote.log.index.file.cache.total.size.bytes", ConfigType::Long, "1073741824"),
    dynamic("remote.log.manager.copier.thread.pool.size", ConfigType::Int, "10"),
    dynamic("remote.log.manager.copy.max.bytes.per.second", ConfigType::Long, "9223372036854775807"),
    fixed("remote.log.manager.copy.quota.window.num", ConfigType::Int, "11"),
    fixed("remote.log.manager.copy.quota.window.size.seconds", ConfigType::Int, "1"),
    dynamic("remote.log.manager.expiration.thread.pool.size", ConfigType::Int, "10"),
    dynamic("remote.log.manager.fetch.max.bytes.per.second", ConfigType::Long, "9223372036854775807"),
    fixed("remote.log.manager.fetch.quota.window.num", ConfigType::Int, "11"),
    fixed("remote.log.manager.fetch.quota.window.size.seconds", ConfigType::Int, "1"),
    fixed("remote.log.manager.task.interval.ms", ConfigType::Long, "30000"),
    fixed("remote.log.manager.thread.pool.size", ConfigType::Int, "2"),
    fixed("remote.log.metadata.custom.metadata.max.bytes", ConfigType::Int, "128"),
    fixed("remote.log.metadata.manager.class.name", ConfigType::String, "org.apache.kafka.server.log.remote.metadata.storage.TopicBasedRemoteLogMetadataManager"),
    fixed_null("remote.log.metadata.manager.class.path", ConfigType::String),
    fixed("remote.log.metadata.manager.impl.prefix", ConfigType::String, "rlmm.config."),
    fixed_null("remote.log.metadata.manager.listener.name", ConfigType::String),
    fixed("remote.log.reader.max.pending.tasks", ConfigType::Int, "100"),
    dynamic("remote.log.reader.threads", ConfigType::Int, "10"),
    fixed_null("remote.log.storage.manager.class.name", ConfigType::String),
    fixed_null("remote.log.storage.manager.class.path", ConfigType::String),
    fixed("remote.log.storage.manager.impl.prefix", ConfigType::String, "rsm.config."),
    fixed("remote.log.storage.system.enable", ConfigType::Boolean, "false"),
    fixed("replica.high.watermark.checkpoint.interval.ms", ConfigType::Long, "5000"),
    fixed_null("replica.selector.class", ConfigType::String),
    fixed("replica.socket.receive.buffer.bytes", ConfigType::Int, "65536"),
    fixed("replica.socket.timeout.ms", ConfigType::Int, "30000"),
    fixed("replication.quota.window.num", ConfigType::Int, "11"),
    fixed("replication.quota.window.size.seconds", ConfigType::Int, "1"),
    fixed("request.timeout.ms", ConfigType::Int, "30000"),
    fixed_null("sasl.client.callback.handler.class", ConfigType::Class),
    dynamic("sasl.enabled.mechanisms", ConfigType::List, "GSSAPI"),
    dynamic_null("sasl.jaas.config", ConfigType::Password),
    dynamic("sasl.kerberos.kinit.cmd", ConfigType::String, "/usr/bin/kinit"),
    dynamic("sasl.kerberos.min.time.before.relogin", ConfigType::Long, "60000"),
    dynamic("sasl.kerberos.principal.to.local.rules", ConfigType::List, "DEFAULT"),
    dynamic_null("sasl.kerberos.service.name", ConfigType::String),
    dynamic("sasl.kerberos.ticket.renew.jitter", ConfigType::Double, "0.05"),
    dynamic("sasl.kerberos.ticket.renew.window.factor", ConfigType::Double, "0.8"),
    fixed_null("sasl.login.callback.handler.class", ConfigType::Class),
    fixed_null("sasl.login.class", ConfigType::Class),
    fixed_null("sasl.login.connect.timeout.ms", ConfigType::Int),
    fixed_null("sasl.login.read.timeout.ms", ConfigType::Int),
    dynamic("sasl.login.refresh.buffer.seconds", ConfigType::Short, "300"),
    dynamic("sasl.login.refresh.min.period.seconds", ConfigType::Short, "60"),
    dynamic("sasl.login.refresh.window.factor", ConfigType::Double, "0.8"),
    dynamic("sasl.login.refresh.window.jitter", ConfigType::Double, "0.05"),
    fixed("sasl.login.retry.backoff.max.ms", ConfigType::Long, "10000"),
    fixed("sasl.login.retry.backoff.ms", ConfigType::Long, "100"),
    fixed("sasl.mechanism.controller.protocol", ConfigType::String, "GSSAPI"),
    dynamic("sasl.mechanism.inter.broker.protocol", ConfigType::String, "GSSAPI"),
    fixed("sasl.oauthbearer.clock.skew.seconds", ConfigType::Int, "30"),
    fixed_null("sasl.oauthbearer.expected.audience", ConfigType::List),
    fixed_null("sasl.oauthbearer.expected.issuer", ConfigType::String),
    fixed("sasl.oauthbearer.jwks.endpoint.refresh.ms", ConfigType::Long, "3600000"),
    fixed("sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms", ConfigType::Long, "10000"),
    fixed("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", ConfigType::Long, "100"),
    fixed_null("sasl.oauthbearer.jwks.endpoint.url", ConfigType::String),
    fixed("sasl.oauthbearer.scope.claim.name", ConfigType::String, "scope"),
    fixed("sasl.oauthbearer.sub.claim.name", ConfigType::String, "sub"),
    fixed_null("sasl.oauthbearer.token.endpoint.url", ConfigType::String),
    fixed_null("sasl.server.callback.handler.class", ConfigType::Class),
    fixed("sasl.server.max.receive.size", ConfigType::Int, "524288"),
    fixed("security.inter.broker.protocol", ConfigType::String, "PLAINTEXT"),
    fixed_null("security.providers", ConfigType::String),
    fixed("share.coordinator.append.linger.ms", ConfigType::Int, "10"),
    fixed("share.coordinator.load.buffer.size", ConfigType::Int, "5242880"),
    fixed("share.coordinator.snapshot.update.records.per.snapshot", ConfigType::Int, "500"),
    fixed("share.coordinator.state.topic.compression.codec", ConfigType::Int, "0"),
    fixed("share.coordinator.state.topic.min.isr", ConfigType::Short, "2"),
    fixed("share.coordinator.state.topic.num.partitions", ConfigType::Int, "50"),
    fixed("share.coordinator.state.topic.replication.factor", ConfigType::Short, "3"),
    fixed("share.coordinator.state.topic.segment.bytes", ConfigType::Int, "104857600"),
    fixed("share.coordinator.threads", ConfigType::Int, "1"),
    fixed("share.coordinator.write.timeout.ms", ConfigType::Int, "5000"),
    fixed("share.fetch.purgatory.purge.interval.requests", ConfigType::Int, "1000"),
    fixed("socket.connection.setup.timeout.max.ms", ConfigType::Long, "30000"),
    fixed("socket.connection.setup.timeout.ms", ConfigType::Long, "10000"),
    fixed("socket.listen.backlog.size", ConfigType::Int, "50"),
    fixed("socket.receive.buffer.bytes", ConfigType::Int, "102400"),
    fixed("socket.send.buffer.bytes", ConfigType::Int, "102400"),
    fixed("ssl.allow.dn.changes", ConfigType::Boolean, "false"),
    fixed("ssl.allow.san.changes", ConfigType::Boolean, "false"),
    dynamic("ssl.cipher.suites", ConfigType::List, ""),
    dynamic("ssl.client.auth", ConfigType::String, "none"),
    dynamic("ssl.enabled.protocols", ConfigType::List, "TLSv1.2,TLSv1.3"),
    dynamic("ssl.endpoint.identification.algorithm", ConfigType::String, "https"),
    dynamic_null("ssl.engine.factory.class", ConfigType::Class),
    dynamic_null("ssl.key.password", ConfigType::Password),
    dynamic("ssl.keymanager.algorithm", ConfigType::String, "SunX509"),
    dynamic_null("ssl.keystore.certificate.chain", ConfigType::Password),
    dynamic_null("ssl.keystore.key", ConfigType::Password),
    dynamic_null("ssl.keystore.location", ConfigType::String),
    dynamic_null("ssl.keystore.password", ConfigType::Password),
    dynamic("ssl.keystore.type", ConfigType::String, "JKS"),
    fixed("ssl.principal.mapping.rules", ConfigType::String, "DEFAULT"),
    dynamic("ssl.protocol", ConfigType::String, "TLSv1.3"),
    dynamic_null("ssl.provider", ConfigType::String),
    dynamic_null("ssl.secure.random.implementation", ConfigType::String),
    dynamic("ssl.trustmanager.algorithm", ConfigType::String, "PKIX"),
    dynamic_null("ssl.truststore.certificates", ConfigType::Password),
    dynamic_null("ssl.truststore.location", ConfigType::String),
    dynamic_null("ssl.truststore.password", ConfigType::Password),
    dynamic("ssl.truststore.type", ConfigType::String, "JKS"),
    fixed("telemetry.max.bytes", ConfigType::Int, "1048576"),
    dynamic("transaction.partition.verification.enable", ConfigType::Boolean, "true"),
    fixed("transaction.state.log.load.buffer.size", ConfigType::Int, "5242880"),
    fixed("transaction.state.log.segment.bytes", ConfigType::Int, "104857600"),
];
