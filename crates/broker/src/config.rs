//! Broker and topic configuration, by Apache Kafka's names and defaults.
//!
//! One catalogue (`TOPIC_CONFIGS`, `BROKER_CONFIGS`, and for the rest of
//! Kafka's broker configs `KAFKA_ONLY_BROKER_CONFIGS`) drives defaults,
//! validation and DescribeConfigs, so the three never disagree.

use std::collections::BTreeMap;

mod kafka_catalogue;

pub use kafka_catalogue::{KafkaOnlyConfig, KAFKA_ONLY_BROKER_CONFIGS};

/// Kafka's config types as DescribeConfigs v3+ reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

/// One topic-level config and the broker config that supplies its default.
#[derive(Clone, Copy, Debug)]
pub struct TopicConfigDef {
    /// Kafka's topic config name.
    pub name: &'static str,
    /// The broker config whose value is this config's default (its synonym).
    pub broker_synonym: &'static str,
    /// Kafka's type, for DescribeConfigs and validation.
    pub config_type: ConfigType,
    /// One-line documentation for DescribeConfigs v3+.
    pub documentation: &'static str,
}

/// One broker-level config.
#[derive(Clone, Copy, Debug)]
pub struct BrokerConfigDef {
    /// Kafka's broker config name.
    pub name: &'static str,
    /// Kafka's default, as text.
    pub default: &'static str,
    /// Kafka's type.
    pub config_type: ConfigType,
    /// Whether it can only be set at start (as opposed to dynamically).
    pub read_only: bool,
    /// One-line documentation.
    pub documentation: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";

/// Topic configs Sluice knows, with the broker config each defaults from.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        broker_synonym: "log.cleanup.policy",
        config_type: ConfigType::List,
        documentation: "delete or compact (or both): what happens to old segments.",
    },
    TopicConfigDef {
        name: "compression.type",
        broker_synonym: "compression.type",
        config_type: ConfigType::String,
        documentation: "Final compression of the topic; 'producer' keeps the producer's codec.",
    },
    TopicConfigDef {
        name: "delete.retention.ms",
        broker_synonym: "log.cleaner.delete.retention.ms",
        config_type: ConfigType::Long,
        documentation: "How long tombstones are kept on compacted topics.",
    },
    TopicConfigDef {
        name: "file.delete.delay.ms",
        broker_synonym: "log.segment.delete.delay.ms",
        config_type: ConfigType::Long,
        documentation: "Delay before a deleted segment's files are removed.",
    },
    TopicConfigDef {
        name: "flush.messages",
        broker_synonym: "log.flush.interval.messages",
        config_type: ConfigType::Long,
        documentation: "Messages accumulated before a forced fsync.",
    },
    TopicConfigDef {
        name: "flush.ms",
        broker_synonym: "log.flush.interval.ms",
        config_type: ConfigType::Long,
        documentation: "Time before a forced fsync.",
    },
    TopicConfigDef {
        name: "index.interval.bytes",
        broker_synonym: "log.index.interval.bytes",
        config_type: ConfigType::Int,
        documentation: "Bytes between offset index entries.",
    },
    TopicConfigDef {
        name: "max.compaction.lag.ms",
        broker_synonym: "log.cleaner.max.compaction.lag.ms",
        config_type: ConfigType::Long,
        documentation: "Maximum time a record stays uncompacted.",
    },
    TopicConfigDef {
        name: "max.message.bytes",
        broker_synonym: "message.max.bytes",
        config_type: ConfigType::Int,
        documentation: "Largest record batch size allowed.",
    },
    TopicConfigDef {
        name: "message.timestamp.after.max.ms",
        broker_synonym: "log.message.timestamp.after.max.ms",
        config_type: ConfigType::Long,
        documentation: "Allowed distance of a CreateTime timestamp into the future.",
    },
    TopicConfigDef {
        name: "message.timestamp.before.max.ms",
        broker_synonym: "log.message.timestamp.before.max.ms",
        config_type: ConfigType::Long,
        documentation: "Allowed distance of a CreateTime timestamp into the past.",
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        broker_synonym: "log.message.timestamp.type",
        config_type: ConfigType::String,
        documentation: "CreateTime or LogAppendTime.",
    },
    TopicConfigDef {
        name: "min.cleanable.dirty.ratio",
        broker_synonym: "log.cleaner.min.cleanable.ratio",
        config_type: ConfigType::Double,
        documentation: "Dirty ratio above which the log is compacted.",
    },
    TopicConfigDef {
        name: "min.compaction.lag.ms",
        broker_synonym: "log.cleaner.min.compaction.lag.ms",
        config_type: ConfigType::Long,
        documentation: "Minimum time a record stays uncompacted.",
    },
    TopicConfigDef {
        name: "min.insync.replicas",
        broker_synonym: "min.insync.replicas",
        config_type: ConfigType::Int,
        documentation: "Minimum ISR size for acks=all produces.",
    },
    TopicConfigDef {
        name: "preallocate",
        broker_synonym: "log.preallocate",
        config_type: ConfigType::Boolean,
        documentation: "Preallocate segment files.",
    },
    TopicConfigDef {
        name: "retention.bytes",
        broker_synonym: "log.retention.bytes",
        config_type: ConfigType::Long,
        documentation: "Maximum partition size before old segments are deleted; -1 unlimited.",
    },
    TopicConfigDef {
        name: "retention.ms",
        broker_synonym: "log.retention.ms",
        config_type: ConfigType::Long,
        documentation: "Maximum age of a segment before deletion; -1 unlimited.",
    },
    TopicConfigDef {
        name: "segment.bytes",
        broker_synonym: "log.segment.bytes",
        config_type: ConfigType::Int,
        documentation: "Segment file size.",
    },
    TopicConfigDef {
        name: "segment.index.bytes",
        broker_synonym: "log.index.size.max.bytes",
        config_type: ConfigType::Int,
        documentation: "Offset index size.",
    },
    TopicConfigDef {
        name: "segment.jitter.ms",
        broker_synonym: "log.roll.jitter.ms",
        config_type: ConfigType::Long,
        documentation: "Random jitter subtracted from segment.ms.",
    },
    TopicConfigDef {
        name: "segment.ms",
        broker_synonym: "log.roll.ms",
        config_type: ConfigType::Long,
        documentation: "Time after which the active segment rolls.",
    },
    TopicConfigDef {
        name: "unclean.leader.election.enable",
        broker_synonym: "unclean.leader.election.enable",
        config_type: ConfigType::Boolean,
        documentation: "Allow out-of-sync replicas to become leader.",
    },
];

/// Broker configs Sluice implements, Kafka's defaults. Every other broker
/// config of Kafka is in `KAFKA_ONLY_BROKER_CONFIGS`.
pub const BROKER_CONFIGS: &[BrokerConfigDef] = &[
    BrokerConfigDef { name: "auto.create.topics.enable", default: "true", config_type: ConfigType::Boolean, read_only: true, documentation: "Create a topic when Metadata asks for an unknown one and allows creation." },
    BrokerConfigDef { name: "auto.leader.rebalance.enable", default: "true", config_type: ConfigType::Boolean, read_only: true, documentation: "The controller moves leadership back to each partition's preferred replica when that one is eligible." },
    BrokerConfigDef { name: "broker.id", default: "1", config_type: ConfigType::Int, read_only: true, documentation: "This node's id (node.id)." },
    BrokerConfigDef { name: "broker.heartbeat.interval.ms", default: "2000", config_type: ConfigType::Int, read_only: true, documentation: "How often a broker of a cluster heartbeats to the active controller." },
    BrokerConfigDef { name: "broker.rack", default: "", config_type: ConfigType::String, read_only: true, documentation: "Rack of this broker; replicas of a partition go to different racks when every broker has one." },
    BrokerConfigDef { name: "broker.session.timeout.ms", default: "9000", config_type: ConfigType::Int, read_only: true, documentation: "The controller fences a broker of a cluster that sent no heartbeat for this long." },
    BrokerConfigDef { name: "compression.type", default: "producer", config_type: ConfigType::String, read_only: false, documentation: "Default topic compression." },
    BrokerConfigDef { name: "connections.max.idle.ms", default: "600000", config_type: ConfigType::Long, read_only: true, documentation: "A connection with no request in flight and none read or answered for this long is closed, as is one whose request has not arrived whole this long after its first bytes; -1: never." },
    BrokerConfigDef { name: "default.replication.factor", default: "1", config_type: ConfigType::Int, read_only: true, documentation: "Replication factor of auto-created topics and of CreateTopics with -1." },
    BrokerConfigDef { name: "fetch.max.bytes", default: "57671680", config_type: ConfigType::Int, read_only: false, documentation: "Largest response a Fetch builds, whatever the client asks (the first batch may exceed it, KIP-74)." },
    BrokerConfigDef { name: "group.initial.rebalance.delay.ms", default: "3000", config_type: ConfigType::Int, read_only: true, documentation: "How long the first rebalance of an empty group waits for more members (extended while they keep joining, up to the rebalance timeout)." },
    BrokerConfigDef { name: "group.max.session.timeout.ms", default: "1800000", config_type: ConfigType::Int, read_only: true, documentation: "Longest session timeout a member may ask for (INVALID_SESSION_TIMEOUT)." },
    BrokerConfigDef { name: "group.max.size", default: "2147483647", config_type: ConfigType::Int, read_only: true, documentation: "Most members a group may have (GROUP_MAX_SIZE_REACHED)." },
    BrokerConfigDef { name: "group.min.session.timeout.ms", default: "6000", config_type: ConfigType::Int, read_only: true, documentation: "Shortest session timeout a member may ask for (INVALID_SESSION_TIMEOUT)." },
    BrokerConfigDef { name: "initial.broker.registration.timeout.ms", default: "60000", config_type: ConfigType::Int, read_only: true, documentation: "How long a starting broker of a cluster keeps trying to register (a restart after kill -9 waits here until its old session expires) and then waits to be unfenced before it serves clients anyway." },
    BrokerConfigDef { name: "leader.imbalance.check.interval.seconds", default: "300", config_type: ConfigType::Long, read_only: true, documentation: "How often the controller checks for partitions not led by their preferred replica." },
    BrokerConfigDef { name: "log.cleaner.backoff.ms", default: "15000", config_type: ConfigType::Long, read_only: true, documentation: "Sleep between cleaner passes when there is nothing to clean." },
    BrokerConfigDef { name: "log.cleaner.enable", default: "true", config_type: ConfigType::Boolean, read_only: true, documentation: "Run the log cleaner for compacted topics." },
    BrokerConfigDef { name: "log.cleaner.dedupe.buffer.size", default: "134217728", config_type: ConfigType::Long, read_only: true, documentation: "Memory for the cleaner's key map. Sluice: reported only; the map is bounded at 128 MiB of keys (a pass stops at the segment that passes it)." },
    BrokerConfigDef { name: "log.cleaner.delete.retention.ms", default: "86400000", config_type: ConfigType::Long, read_only: false, documentation: "Default delete.retention.ms." },
    BrokerConfigDef { name: "log.cleaner.io.max.bytes.per.second", default: "1.7976931348623157E308", config_type: ConfigType::Double, read_only: false, documentation: "The cleaner's I/O limit: bytes read plus written per second, across all compacted partitions." },
    BrokerConfigDef { name: "log.cleaner.max.compaction.lag.ms", default: LONG_MAX, config_type: ConfigType::Long, read_only: false, documentation: "Default max.compaction.lag.ms." },
    BrokerConfigDef { name: "log.cleaner.min.cleanable.ratio", default: "0.5", config_type: ConfigType::Double, read_only: false, documentation: "Default min.cleanable.dirty.ratio." },
    BrokerConfigDef { name: "log.cleaner.min.compaction.lag.ms", default: "0", config_type: ConfigType::Long, read_only: false, documentation: "Default min.compaction.lag.ms." },
    BrokerConfigDef { name: "log.cleaner.threads", default: "1", config_type: ConfigType::Int, read_only: true, documentation: "Cleaner threads. Sluice: reported only; one thread cleans the partitions one after another." },
    BrokerConfigDef { name: "log.cleanup.policy", default: "delete", config_type: ConfigType::List, read_only: false, documentation: "Default cleanup.policy." },
    BrokerConfigDef { name: "log.dirs", default: "./sluice-data", config_type: ConfigType::String, read_only: true, documentation: "The data directory." },
    BrokerConfigDef { name: "log.flush.interval.messages", default: LONG_MAX, config_type: ConfigType::Long, read_only: false, documentation: "Default flush.messages." },
    BrokerConfigDef { name: "log.flush.interval.ms", default: LONG_MAX, config_type: ConfigType::Long, read_only: false, documentation: "Default flush.ms." },
    BrokerConfigDef { name: "log.index.interval.bytes", default: "4096", config_type: ConfigType::Int, read_only: false, documentation: "Default index.interval.bytes." },
    BrokerConfigDef { name: "log.index.size.max.bytes", default: "10485760", config_type: ConfigType::Int, read_only: false, documentation: "Default segment.index.bytes." },
    BrokerConfigDef { name: "log.message.timestamp.after.max.ms", default: "3600000", config_type: ConfigType::Long, read_only: false, documentation: "Default message.timestamp.after.max.ms." },
    BrokerConfigDef { name: "log.message.timestamp.before.max.ms", default: LONG_MAX, config_type: ConfigType::Long, read_only: false, documentation: "Default message.timestamp.before.max.ms." },
    BrokerConfigDef { name: "log.message.timestamp.type", default: "CreateTime", config_type: ConfigType::String, read_only: false, documentation: "Default message.timestamp.type." },
    BrokerConfigDef { name: "log.preallocate", default: "false", config_type: ConfigType::Boolean, read_only: false, documentation: "Default preallocate." },
    BrokerConfigDef { name: "log.retention.bytes", default: "-1", config_type: ConfigType::Long, read_only: false, documentation: "Default retention.bytes." },
    BrokerConfigDef { name: "log.retention.check.interval.ms", default: "300000", config_type: ConfigType::Long, read_only: true, documentation: "How often retention is checked." },
    BrokerConfigDef { name: "log.retention.ms", default: "604800000", config_type: ConfigType::Long, read_only: false, documentation: "Default retention.ms (Kafka derives it from log.retention.hours=168)." },
    BrokerConfigDef { name: "log.roll.jitter.ms", default: "0", config_type: ConfigType::Long, read_only: false, documentation: "Default segment.jitter.ms." },
    BrokerConfigDef { name: "log.roll.ms", default: "604800000", config_type: ConfigType::Long, read_only: false, documentation: "Default segment.ms (Kafka derives it from log.roll.hours=168)." },
    BrokerConfigDef { name: "log.segment.bytes", default: "1073741824", config_type: ConfigType::Int, read_only: false, documentation: "Default segment.bytes." },
    BrokerConfigDef { name: "log.segment.delete.delay.ms", default: "60000", config_type: ConfigType::Long, read_only: false, documentation: "Default file.delete.delay.ms." },
    BrokerConfigDef { name: "max.connections", default: "2147483647", config_type: ConfigType::Int, read_only: false, documentation: "Maximum open client connections." },
    BrokerConfigDef { name: "message.max.bytes", default: "1048588", config_type: ConfigType::Int, read_only: false, documentation: "Default max.message.bytes." },
    BrokerConfigDef { name: "min.insync.replicas", default: "1", config_type: ConfigType::Int, read_only: false, documentation: "Default min.insync.replicas." },
    BrokerConfigDef { name: "node.id", default: "1", config_type: ConfigType::Int, read_only: true, documentation: "This node's id." },
    BrokerConfigDef { name: "num.partitions", default: "1", config_type: ConfigType::Int, read_only: false, documentation: "Partitions of auto-created topics and of CreateTopics with -1." },
    BrokerConfigDef { name: "num.replica.fetchers", default: "1", config_type: ConfigType::Int, read_only: true, documentation: "Fetcher tasks per source broker a follower runs (its partitions are spread over them)." },
    BrokerConfigDef { name: "offset.metadata.max.bytes", default: "4096", config_type: ConfigType::Int, read_only: true, documentation: "Longest metadata string an offset commit may carry (OFFSET_METADATA_TOO_LARGE)." },
    BrokerConfigDef { name: "offsets.commit.timeout.ms", default: "5000", config_type: ConfigType::Int, read_only: true, documentation: "How long an offset commit waits to become durable before REQUEST_TIMED_OUT." },
    BrokerConfigDef { name: "offsets.retention.check.interval.ms", default: "600000", config_type: ConfigType::Long, read_only: true, documentation: "How often expired offsets are removed." },
    BrokerConfigDef { name: "offsets.retention.minutes", default: "10080", config_type: ConfigType::Int, read_only: true, documentation: "Offsets of an empty group expire this long after it became empty (of a group that only commits: after the commit)." },
    BrokerConfigDef { name: "offsets.topic.num.partitions", default: "50", config_type: ConfigType::Int, read_only: true, documentation: "Partitions of __consumer_offsets." },
    BrokerConfigDef { name: "offsets.topic.replication.factor", default: "3", config_type: ConfigType::Short, read_only: true, documentation: "Replication factor of __consumer_offsets; in a cluster it is created once this many brokers are registered (a single node uses 1)." },
    BrokerConfigDef { name: "process.roles", default: "", config_type: ConfigType::List, read_only: true, documentation: "What this node runs: broker,controller (a voter of the metadata quorum that serves clients), broker (follows the metadata log as an observer, serves clients) or controller (a voter that serves no clients). Unset: broker,controller when controller.quorum.voters lists this node (or is empty), else broker." },
    BrokerConfigDef { name: "producer.id.expiration.ms", default: "86400000", config_type: ConfigType::Int, read_only: false, documentation: "How long a partition remembers an idempotent producer that stopped writing." },
    BrokerConfigDef { name: "replica.fetch.backoff.ms", default: "1000", config_type: ConfigType::Int, read_only: true, documentation: "How long a follower waits after a failed fetch before it fetches that partition again." },
    BrokerConfigDef { name: "replica.fetch.max.bytes", default: "1048576", config_type: ConfigType::Int, read_only: true, documentation: "Bytes a follower asks for per partition (a larger first batch still comes whole)." },
    BrokerConfigDef { name: "replica.fetch.min.bytes", default: "1", config_type: ConfigType::Int, read_only: true, documentation: "Bytes a follower's fetch waits for." },
    BrokerConfigDef { name: "replica.fetch.response.max.bytes", default: "10485760", config_type: ConfigType::Int, read_only: true, documentation: "Bytes a follower asks for per fetch response." },
    BrokerConfigDef { name: "replica.fetch.wait.max.ms", default: "500", config_type: ConfigType::Int, read_only: true, documentation: "How long a follower's fetch waits on the leader for replica.fetch.min.bytes." },
    BrokerConfigDef { name: "replica.lag.time.max.ms", default: "30000", config_type: ConfigType::Long, read_only: true, documentation: "A follower that has not caught up with its leader for this long leaves the ISR." },
    BrokerConfigDef { name: "sluice.controller.listen", default: "", config_type: ConfigType::String, read_only: true, documentation: "Sluice: the address this node's controller (Raft) listener binds (`sluice serve --controller-listen`, or the CONTROLLER entry of listeners); empty: a voter's own controller.quorum.voters entry, a broker-only node's free port on its Kafka listener's host." },
    BrokerConfigDef { name: "sluice.flush.before.visible", default: "true", config_type: ConfigType::Boolean, read_only: true, documentation: "Sluice: the high watermark (what consumers see) and acks=all wait for fsync. false: like Kafka with one replica, visible from the page cache." },
    BrokerConfigDef { name: "socket.request.max.bytes", default: "104857600", config_type: ConfigType::Int, read_only: true, documentation: "Largest request frame; a larger length prefix closes the connection." },
    BrokerConfigDef { name: "transaction.abort.timed.out.transaction.cleanup.interval.ms", default: "10000", config_type: ConfigType::Int, read_only: true, documentation: "How often the transaction coordinator aborts transactions older than their transaction.timeout.ms." },
    BrokerConfigDef { name: "transaction.max.timeout.ms", default: "900000", config_type: ConfigType::Int, read_only: true, documentation: "Longest transaction.timeout.ms a producer may ask for (INVALID_TRANSACTION_TIMEOUT)." },
    BrokerConfigDef { name: "transaction.remove.expired.transaction.cleanup.interval.ms", default: "3600000", config_type: ConfigType::Int, read_only: true, documentation: "How often transactional ids idle longer than transactional.id.expiration.ms are removed." },
    BrokerConfigDef { name: "transaction.state.log.num.partitions", default: "50", config_type: ConfigType::Int, read_only: true, documentation: "Partitions of __transaction_state." },
    BrokerConfigDef { name: "transaction.state.log.min.isr", default: "2", config_type: ConfigType::Int, read_only: true, documentation: "min.insync.replicas of __transaction_state (at most its replication factor)." },
    BrokerConfigDef { name: "transaction.state.log.replication.factor", default: "3", config_type: ConfigType::Short, read_only: true, documentation: "Replication factor of __transaction_state; in a cluster it is created once this many brokers are registered (a single node uses 1)." },
    BrokerConfigDef { name: "transactional.id.expiration.ms", default: "604800000", config_type: ConfigType::Int, read_only: true, documentation: "A transactional id with no transaction for this long is forgotten (state Dead, then a tombstone)." },
    BrokerConfigDef { name: "unclean.leader.election.enable", default: "false", config_type: ConfigType::Boolean, read_only: false, documentation: "Default unclean.leader.election.enable." },
];

/// Looks up a topic config definition.
pub fn topic_config_def(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Looks up a broker config definition: Sluice's own, else one of Kafka's
/// that Sluice accepts without effect.
pub fn broker_config_def(name: &str) -> Option<&'static BrokerConfigDef> {
    BROKER_CONFIGS.iter().find(|d| d.name == name).or_else(|| {
        KAFKA_ONLY_BROKER_CONFIGS
            .iter()
            .find(|c| c.def.name == name)
            .map(|c| &c.def)
    })
}

/// Every broker config (Sluice's and the rest of Kafka's), by name, as
/// DescribeConfigs lists them.
pub fn all_broker_configs() -> Vec<&'static BrokerConfigDef> {
    let mut all: Vec<&'static BrokerConfigDef> = BROKER_CONFIGS
        .iter()
        .chain(KAFKA_ONLY_BROKER_CONFIGS.iter().map(|c| &c.def))
        .collect();
    all.sort_by_key(|d| d.name);
    all
}

/// Whether Kafka's default for a broker config is null (no value).
pub fn broker_default_is_null(name: &str) -> bool {
    KAFKA_ONLY_BROKER_CONFIGS
        .iter()
        .any(|c| c.def.name == name && c.null_default)
}

/// Checks a value against its type and Kafka's accepted values.
#[allow(clippy::collapsible_match)]
pub fn validate_value(name: &str, config_type: ConfigType, value: &str) -> Result<(), String> {
    let bad = || format!("Invalid value {value} for configuration {name}");
    match config_type {
        ConfigType::Boolean => {
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                return Err(bad());
            }
        }
        ConfigType::Int => {
            value.trim().parse::<i32>().map_err(|_| bad())?;
        }
        ConfigType::Short => {
            value.trim().parse::<i16>().map_err(|_| bad())?;
        }
        ConfigType::Long => {
            value.trim().parse::<i64>().map_err(|_| bad())?;
        }
        ConfigType::Double => {
            value.trim().parse::<f64>().map_err(|_| bad())?;
        }
        _ => {}
    }
    match name {
        "cleanup.policy" | "log.cleanup.policy" => {
            for item in value.split(',') {
                if !matches!(item.trim(), "delete" | "compact") {
                    return Err(format!("Invalid value {value} for configuration {name}: String must be one of: compact, delete"));
                }
            }
        }
        "message.timestamp.type" | "log.message.timestamp.type" => {
            if !matches!(value, "CreateTime" | "LogAppendTime") {
                return Err(format!("Invalid value {value} for configuration {name}: String must be one of: CreateTime, LogAppendTime"));
            }
        }
        "compression.type" => {
            if !matches!(
                value,
                "producer" | "uncompressed" | "gzip" | "snappy" | "lz4" | "zstd"
            ) {
                return Err(format!("Invalid value {value} for configuration {name}: String must be one of: uncompressed, zstd, lz4, snappy, gzip, producer"));
            }
        }
        "min.cleanable.dirty.ratio" | "log.cleaner.min.cleanable.ratio" => {
            let ratio = value.trim().parse::<f64>().map_err(|_| bad())?;
            if !(0.0..=1.0).contains(&ratio) {
                return Err(format!(
                    "Invalid value {value} for configuration {name}: Value must be between 0 and 1"
                ));
            }
        }
        "log.cleaner.io.max.bytes.per.second" => {
            let rate = value.trim().parse::<f64>().map_err(|_| bad())?;
            if rate.is_nan() || rate <= 0.0 {
                return Err(format!(
                    "Invalid value {value} for configuration {name}: Value must be greater than 0"
                ));
            }
        }
        _ => {}
    }
    if let Some((_, minimum)) = NUMERIC_MINIMUMS
        .iter()
        .find(|(names, _)| names.contains(&name))
    {
        if value.trim().parse::<i64>().map_err(|_| bad())? < *minimum {
            return Err(format!(
                "Invalid value {value} for configuration {name}: Value must be at least {minimum}"
            ));
        }
    }
    Ok(())
}

/// Kafka's lower bounds (`ConfigDef.Range.atLeast` in `TopicConfig`,
/// `LogConfig`, `ServerLogConfigs`) for numeric configs: each topic config
/// with its broker synonym. `segment.bytes` keeps Kafka 3.x's 14 (Kafka 4.0
/// raised it to 1 MiB; small segments keep the tests fast).
const NUMERIC_MINIMUMS: &[(&[&str], i64)] = &[
    (&["segment.bytes", "log.segment.bytes"], 14),
    (&["segment.ms", "log.roll.ms"], 1),
    (&["segment.jitter.ms", "log.roll.jitter.ms"], 0),
    (&["segment.index.bytes", "log.index.size.max.bytes"], 4),
    (&["index.interval.bytes", "log.index.interval.bytes"], 0),
    (&["flush.messages", "log.flush.interval.messages"], 1),
    (&["flush.ms", "log.flush.interval.ms"], 0),
    (&["retention.ms", "log.retention.ms"], -1),
    (&["retention.bytes", "log.retention.bytes"], -1),
    (
        &["delete.retention.ms", "log.cleaner.delete.retention.ms"],
        0,
    ),
    (&["file.delete.delay.ms", "log.segment.delete.delay.ms"], 0),
    (
        &["min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms"],
        0,
    ),
    (
        &["max.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms"],
        1,
    ),
    (&["max.message.bytes", "message.max.bytes"], 0),
    (
        &[
            "message.timestamp.before.max.ms",
            "log.message.timestamp.before.max.ms",
        ],
        0,
    ),
    (
        &[
            "message.timestamp.after.max.ms",
            "log.message.timestamp.after.max.ms",
        ],
        0,
    ),
    (&["min.insync.replicas"], 1),
    (&["num.partitions"], 1),
    (&["log.cleaner.threads"], 0),
];

/// A numeric broker config's value. Values are validated when they are set
/// (file, `--set`, AlterConfigs), so this only meets a value it cannot read
/// through a bug: it then says so and uses Kafka's default for the name
/// instead of reading the value as 0.
pub fn parse_number(name: &str, value: &str) -> i64 {
    if let Ok(number) = value.trim().parse() {
        return number;
    }
    let default = broker_config_def(name).and_then(|def| def.default.trim().parse().ok());
    tracing::error!(config = %name, %value, ?default,
        "a broker config that should be a number is not; using its default");
    default.unwrap_or_default()
}

/// The broker's static settings: Kafka's defaults overlaid with the
/// configuration file and `--set` values.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Every explicitly set broker config (static, from file or flags).
    pub explicit: BTreeMap<String, String>,
}

impl Settings {
    /// Validates every explicit setting: known names are type-checked; unknown
    /// names are accepted with a warning (Kafka ignores unknown configs too).
    pub fn new(explicit: BTreeMap<String, String>) -> Result<Settings, String> {
        for (name, value) in &explicit {
            match broker_config_def(name) {
                Some(def) => validate_value(name, def.config_type, value)?,
                None => tracing::warn!(config = %name, "unknown broker config ignored"),
            }
        }
        Ok(Settings { explicit })
    }

    /// The effective broker value of a known config.
    pub fn get(&self, name: &str) -> String {
        if let Some(value) = self.explicit.get(name) {
            return value.clone();
        }
        broker_config_def(name)
            .map(|d| d.default.to_string())
            .unwrap_or_default()
    }

    /// A numeric broker config's effective value (`parse_number`).
    pub fn get_i64(&self, name: &str) -> i64 {
        parse_number(name, &self.get(name))
    }

    pub fn get_bool(&self, name: &str) -> bool {
        self.get(name).eq_ignore_ascii_case("true")
    }

    /// A broker config's effective value and its source: dynamic per-broker,
    /// dynamic cluster default, static (file / `--set`), Kafka's default.
    pub fn broker_value(
        &self,
        dynamic: &DynamicBrokerConfigs,
        name: &str,
    ) -> (String, ConfigSource) {
        if let Some(v) = dynamic.node.get(name) {
            return (v.clone(), ConfigSource::DynamicBroker);
        }
        if let Some(v) = dynamic.cluster.get(name) {
            return (v.clone(), ConfigSource::DynamicDefaultBroker);
        }
        if let Some(v) = self.explicit.get(name) {
            return (v.clone(), ConfigSource::StaticBroker);
        }
        (self.get(name), ConfigSource::Default)
    }

    /// Where a topic config's effective value comes from.
    pub fn topic_value(
        &self,
        dynamic: &DynamicBrokerConfigs,
        overrides: &BTreeMap<String, String>,
        name: &str,
    ) -> Option<(String, ConfigSource)> {
        let def = topic_config_def(name)?;
        if let Some(v) = overrides.get(name) {
            return Some((v.clone(), ConfigSource::Topic));
        }
        Some(self.broker_value(dynamic, def.broker_synonym))
    }

    /// A topic's effective config: every topic config with its value.
    pub fn topic_config(
        &self,
        dynamic: &DynamicBrokerConfigs,
        overrides: &BTreeMap<String, String>,
    ) -> TopicConfig {
        let value = |name: &str| {
            self.topic_value(dynamic, overrides, name)
                .map(|(v, _)| v)
                .unwrap_or_default()
        };
        let long = |name: &str| value(name).trim().parse::<i64>().unwrap_or(i64::MAX);
        let policy = value("cleanup.policy");
        TopicConfig {
            max_message_bytes: long("max.message.bytes"),
            log_append_time: value("message.timestamp.type") == "LogAppendTime",
            timestamp_before_max_ms: long("message.timestamp.before.max.ms"),
            timestamp_after_max_ms: long("message.timestamp.after.max.ms"),
            compacted: policy.split(',').any(|p| p.trim() == "compact"),
            deleting: policy.split(',').any(|p| p.trim() == "delete"),
            segment_bytes: long("segment.bytes"),
            segment_ms: long("segment.ms"),
            segment_index_bytes: long("segment.index.bytes"),
            index_interval_bytes: long("index.interval.bytes"),
            retention_ms: long("retention.ms"),
            retention_bytes: long("retention.bytes"),
            delete_retention_ms: long("delete.retention.ms"),
            min_compaction_lag_ms: long("min.compaction.lag.ms"),
            max_compaction_lag_ms: long("max.compaction.lag.ms"),
            min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio")
                .trim()
                .parse()
                .unwrap_or(0.5),
            file_delete_delay_ms: long("file.delete.delay.ms"),
            min_insync_replicas: long("min.insync.replicas").clamp(1, i64::from(i32::MAX)) as i32,
        }
    }
}

/// Broker configs changed at run time (AlterConfigs / IncrementalAlterConfigs),
/// as the metadata image holds them for this node.
#[derive(Clone, Debug, Default)]
pub struct DynamicBrokerConfigs {
    /// Per-broker overrides for this node (resource name = node id).
    pub node: BTreeMap<String, String>,
    /// Cluster-wide defaults (resource name "").
    pub cluster: BTreeMap<String, String>,
}

impl DynamicBrokerConfigs {
    pub fn from_image(image: &sluice_meta::ClusterImage, node_id: i32) -> DynamicBrokerConfigs {
        DynamicBrokerConfigs {
            node: image
                .broker_configs
                .get(&Some(node_id))
                .cloned()
                .unwrap_or_default(),
            cluster: image.broker_configs.get(&None).cloned().unwrap_or_default(),
        }
    }
}

/// Kafka's DescribeConfigs config sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    Topic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

/// The values of a topic's configs that the data path reads.
#[derive(Clone, Debug, PartialEq)]
pub struct TopicConfig {
    /// `max.message.bytes`: MESSAGE_TOO_LARGE above it.
    pub max_message_bytes: i64,
    /// `message.timestamp.type=LogAppendTime`.
    pub log_append_time: bool,
    /// `message.timestamp.before.max.ms`.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`.
    pub timestamp_after_max_ms: i64,
    /// `cleanup.policy` contains compact: records need keys.
    pub compacted: bool,
    /// `segment.bytes`.
    pub segment_bytes: i64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// `segment.index.bytes`.
    pub segment_index_bytes: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: i64,
    /// `cleanup.policy` contains delete: retention applies.
    pub deleting: bool,
    /// `retention.ms` (-1 unlimited).
    pub retention_ms: i64,
    /// `retention.bytes` (-1 unlimited).
    pub retention_bytes: i64,
    /// `delete.retention.ms`: how long tombstones survive compaction.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `file.delete.delay.ms`.
    pub file_delete_delay_ms: i64,
    /// `min.insync.replicas`: acks=all needs this many in-sync replicas
    /// (at most the replica count).
    pub min_insync_replicas: i32,
}

impl TopicConfig {
    /// The storage engine's view of it.
    pub fn log_config(&self) -> sluice_log::LogConfig {
        sluice_log::LogConfig {
            segment_bytes: self.segment_bytes.max(14) as u64,
            segment_ms: self.segment_ms,
            segment_index_bytes: self.segment_index_bytes.max(8) as u64,
            index_interval_bytes: self.index_interval_bytes.max(0) as u64,
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            cleanup_policy_delete: self.deleting,
            cleanup_policy_compact: self.compacted,
            delete_retention_ms: self.delete_retention_ms,
            min_compaction_lag_ms: self.min_compaction_lag_ms,
            max_compaction_lag_ms: self.max_compaction_lag_ms,
            min_cleanable_dirty_ratio: self.min_cleanable_dirty_ratio,
            file_delete_delay_ms: self.file_delete_delay_ms,
        }
    }
}

#[cfg(test)]
mod tests;
