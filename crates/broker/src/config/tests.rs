//! The catalogue's tests: defaults, validation, sources.

use super::*;

#[test]
fn an_unreadable_number_is_the_default_not_zero() {
    assert_eq!(super::parse_number("socket.request.max.bytes", " 42 "), 42);
    assert_eq!(
        super::parse_number("socket.request.max.bytes", "lots"),
        104_857_600
    );
    assert_eq!(super::parse_number("no.such.config", "x"), 0);
}

#[test]
fn every_kafka_broker_config_is_known_once() {
    let all = all_broker_configs();
    let mut names: Vec<&str> = all.iter().map(|d| d.name).collect();
    names.dedup();
    assert_eq!(names.len(), all.len(), "a name in both catalogues");
    // Kafka 4.0 has 289 broker configs; Sluice adds sluice.flush.before.visible
    // and sluice.controller.listen.
    assert_eq!(all.len(), 291);
    for def in all {
        if !def.default.is_empty() {
            validate_value(def.name, def.config_type, def.default)
                .unwrap_or_else(|e| panic!("default of {}: {e}", def.name));
        }
    }
}

#[test]
fn kafka_only_configs_keep_kafka_types_and_modes() {
    let cases = [
        // name, type, default, read-only
        (
            "sasl.kerberos.min.time.before.relogin",
            ConfigType::Long,
            "60000",
            false,
        ),
        ("default.replication.factor", ConfigType::Int, "1", true),
        ("background.threads", ConfigType::Int, "10", false),
        (
            "controlled.shutdown.enable",
            ConfigType::Boolean,
            "true",
            true,
        ),
        ("ssl.keystore.password", ConfigType::Password, "", false),
    ];
    for (name, config_type, default, read_only) in cases {
        let def = broker_config_def(name).unwrap_or_else(|| panic!("{name} unknown"));
        assert_eq!(def.config_type, config_type, "{name}");
        assert_eq!(def.default, default, "{name}");
        assert_eq!(def.read_only, read_only, "{name}");
    }
    assert!(broker_default_is_null("ssl.keystore.password"));
    assert!(!broker_default_is_null("background.threads"));
    assert!(broker_config_def("no.such.config").is_none());
}

#[test]
fn every_topic_config_has_a_broker_default() {
    for def in TOPIC_CONFIGS {
        assert!(
            broker_config_def(def.broker_synonym).is_some(),
            "{} has no broker synonym {}",
            def.name,
            def.broker_synonym
        );
    }
}

#[test]
fn values_are_validated() {
    let cases: &[(&str, &str, bool)] = &[
        ("cleanup.policy", "compact,delete", true),
        ("cleanup.policy", "forever", false),
        ("retention.ms", "-1", true),
        ("retention.ms", "soon", false),
        ("message.timestamp.type", "LogAppendTime", true),
        ("message.timestamp.type", "Now", false),
        ("segment.bytes", "13", false),
        ("segment.ms", "0", false),
        ("segment.ms", "1", true),
        ("segment.index.bytes", "0", false),
        ("segment.index.bytes", "3", false),
        ("segment.index.bytes", "4", true),
        ("flush.messages", "0", false),
        ("max.compaction.lag.ms", "0", false),
        ("delete.retention.ms", "-1", false),
        ("segment.jitter.ms", "-1", false),
        ("preallocate", "yes", false),
    ];
    for (name, value, ok) in cases {
        let def = topic_config_def(name).unwrap();
        assert_eq!(
            validate_value(name, def.config_type, value).is_ok(),
            *ok,
            "{name}={value}"
        );
    }
}

#[test]
fn cleaner_broker_values_are_validated() {
    let cases: &[(&str, &str, bool)] = &[
        (
            "log.cleaner.io.max.bytes.per.second",
            "1.7976931348623157E308",
            true,
        ),
        ("log.cleaner.io.max.bytes.per.second", "1048576", true),
        ("log.cleaner.io.max.bytes.per.second", "0.5", true),
        ("log.cleaner.io.max.bytes.per.second", "0", false),
        ("log.cleaner.io.max.bytes.per.second", "-1", false),
        ("log.cleaner.io.max.bytes.per.second", "NaN", false),
        ("log.cleaner.io.max.bytes.per.second", "fast", false),
        ("log.cleaner.threads", "1", true),
        ("log.cleaner.threads", "-1", false),
        ("log.cleaner.dedupe.buffer.size", "134217728", true),
        ("log.cleaner.dedupe.buffer.size", "big", false),
    ];
    for (name, value, ok) in cases {
        let def = broker_config_def(name).unwrap();
        assert_eq!(
            validate_value(name, def.config_type, value).is_ok(),
            *ok,
            "{name}={value}"
        );
    }
    // The default parses to the largest double: no limit.
    let default = broker_config_def("log.cleaner.io.max.bytes.per.second").unwrap();
    assert_eq!(default.default.parse::<f64>(), Ok(f64::MAX));
    assert!(!default.read_only);
}

#[test]
fn topic_values_come_from_override_then_broker_then_default() {
    let mut explicit = BTreeMap::new();
    explicit.insert("log.retention.ms".to_string(), "1000".to_string());
    let settings = Settings::new(explicit).unwrap();
    let mut overrides = BTreeMap::new();
    overrides.insert("segment.bytes".to_string(), "2048".to_string());
    let mut dynamic = DynamicBrokerConfigs::default();
    let cases: &[(&str, &str, ConfigSource)] = &[
        ("segment.bytes", "2048", ConfigSource::Topic),
        ("retention.ms", "1000", ConfigSource::StaticBroker),
        ("max.message.bytes", "1048588", ConfigSource::Default),
    ];
    for (name, value, source) in cases {
        let got = settings.topic_value(&dynamic, &overrides, name).unwrap();
        assert_eq!(got, (value.to_string(), *source), "{name}");
    }
    dynamic
        .cluster
        .insert("log.retention.ms".into(), "2000".into());
    let got = settings
        .topic_value(&dynamic, &overrides, "retention.ms")
        .unwrap();
    assert_eq!(got, ("2000".into(), ConfigSource::DynamicDefaultBroker));
    dynamic
        .node
        .insert("log.retention.ms".into(), "3000".into());
    let got = settings
        .topic_value(&dynamic, &overrides, "retention.ms")
        .unwrap();
    assert_eq!(got, ("3000".into(), ConfigSource::DynamicBroker));
}
