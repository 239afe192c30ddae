//! Topic configurations: every topic-level name Kafka 4.x knows, its broker
//! synonym and default, validation, and the effective values as a `LogConfig`.

use std::collections::BTreeMap;

use gregor_log::{LogConfig, TimestampType};

use crate::config::BrokerConfig;

/// How a configuration value is checked.
#[derive(Debug, Clone, Copy)]
pub enum ConfigType {
    Int {
        min: i64,
        max: i64,
    },
    Long {
        min: i64,
    },
    Double {
        min: f64,
        max: f64,
    },
    Boolean,
    /// One of the listed values.
    Choice(&'static [&'static str]),
    /// A comma-separated list whose items are among the listed values (any value when empty).
    List(&'static [&'static str]),
}

pub struct TopicConfigDef {
    pub name: &'static str,
    /// The broker setting that supplies the default (`log.retention.ms` for `retention.ms`).
    pub synonym: &'static str,
    pub default: &'static str,
    pub kind: ConfigType,
}

const fn def(name: &'static str, synonym: &'static str, default: &'static str, kind: ConfigType) -> TopicConfigDef {
    TopicConfigDef {
        name,
        synonym,
        default,
        kind,
    }
}

const INT: ConfigType = ConfigType::Int {
    min: 0,
    max: i32::MAX as i64,
};
const LONG: ConfigType = ConfigType::Long { min: 0 };
const BOOLEAN: ConfigType = ConfigType::Boolean;
const LONG_MAX: &str = "9223372036854775807";

/// Kafka 4.x topic configurations (`TopicConfig`), with their broker synonyms and defaults.
pub const TOPIC_CONFIGS: &[TopicConfigDef] = &[
    def(
        "cleanup.policy",
        "log.cleanup.policy",
        "delete",
        ConfigType::List(&["delete", "compact"]),
    ),
    def(
        "compression.type",
        "compression.type",
        "producer",
        ConfigType::Choice(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
    ),
    def(
        "compression.gzip.level",
        "compression.gzip.level",
        "-1",
        ConfigType::Int { min: -1, max: 9 },
    ),
    def(
        "compression.lz4.level",
        "compression.lz4.level",
        "9",
        ConfigType::Int { min: 1, max: 17 },
    ),
    def(
        "compression.zstd.level",
        "compression.zstd.level",
        "3",
        ConfigType::Int { min: -131072, max: 22 },
    ),
    def(
        "delete.retention.ms",
        "log.cleaner.delete.retention.ms",
        "86400000",
        LONG,
    ),
    def("file.delete.delay.ms", "log.segment.delete.delay.ms", "60000", LONG),
    def(
        "flush.messages",
        "log.flush.interval.messages",
        LONG_MAX,
        ConfigType::Long { min: 1 },
    ),
    def("flush.ms", "log.flush.interval.ms", LONG_MAX, LONG),
    def("follower.replication.throttled.replicas", "", "", ConfigType::List(&[])),
    def("index.interval.bytes", "log.index.interval.bytes", "4096", INT),
    def("leader.replication.throttled.replicas", "", "", ConfigType::List(&[])),
    def(
        "local.retention.bytes",
        "log.local.retention.bytes",
        "-2",
        ConfigType::Long { min: -2 },
    ),
    def(
        "local.retention.ms",
        "log.local.retention.ms",
        "-2",
        ConfigType::Long { min: -2 },
    ),
    def(
        "max.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        LONG_MAX,
        ConfigType::Long { min: 1 },
    ),
    def("max.message.bytes", "message.max.bytes", "1048588", INT),
    def(
        "message.timestamp.after.max.ms",
        "log.message.timestamp.after.max.ms",
        "3600000",
        LONG,
    ),
    def(
        "message.timestamp.before.max.ms",
        "log.message.timestamp.before.max.ms",
        LONG_MAX,
        LONG,
    ),
    def(
        "message.timestamp.type",
        "log.message.timestamp.type",
        "CreateTime",
        ConfigType::Choice(&["CreateTime", "LogAppendTime"]),
    ),
    def(
        "min.cleanable.dirty.ratio",
        "log.cleaner.min.cleanable.ratio",
        "0.5",
        ConfigType::Double { min: 0.0, max: 1.0 },
    ),
    def("min.compaction.lag.ms", "log.cleaner.min.compaction.lag.ms", "0", LONG),
    def(
        "min.insync.replicas",
        "min.insync.replicas",
        "1",
        ConfigType::Int {
            min: 1,
            max: i32::MAX as i64,
        },
    ),
    def("preallocate", "log.preallocate", "false", BOOLEAN),
    def("remote.log.copy.disable", "", "false", BOOLEAN),
    def("remote.log.delete.on.disable", "", "false", BOOLEAN),
    def("remote.storage.enable", "", "false", BOOLEAN),
    def(
        "retention.bytes",
        "log.retention.bytes",
        "-1",
        ConfigType::Long { min: i64::MIN },
    ),
    def(
        "retention.ms",
        "log.retention.ms",
        "604800000",
        ConfigType::Long { min: -1 },
    ),
    def(
        "segment.bytes",
        "log.segment.bytes",
        "1073741824",
        ConfigType::Int {
            min: 1048576,
            max: i32::MAX as i64,
        },
    ),
    def(
        "segment.index.bytes",
        "log.index.size.max.bytes",
        "10485760",
        ConfigType::Int {
            min: 4,
            max: i32::MAX as i64,
        },
    ),
    def("segment.jitter.ms", "log.roll.jitter.ms", "0", LONG),
    def("segment.ms", "log.roll.ms", "604800000", ConfigType::Long { min: 1 }),
    def(
        "unclean.leader.election.enable",
        "unclean.leader.election.enable",
        "false",
        BOOLEAN,
    ),
];

pub fn find(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|def| def.name == name)
}

/// Checks one topic configuration; the error says which name and why.
pub fn validate(name: &str, value: &str) -> Result<(), String> {
    let def = find(name).ok_or_else(|| format!("Unknown topic config name: {name}"))?;
    let bad = |why: String| Err(format!("Invalid value {value} for configuration {name}: {why}"));
    match def.kind {
        ConfigType::Int { min, max } => match value.trim().parse::<i64>() {
            Ok(number) if number >= min && number <= max => Ok(()),
            Ok(_) => bad(format!("Value must be in [{min}, {max}]")),
            Err(_) => bad("Not a number of type INT".into()),
        },
        ConfigType::Long { min } => match value.trim().parse::<i64>() {
            Ok(number) if number >= min => Ok(()),
            Ok(_) => bad(format!("Value must be at least {min}")),
            Err(_) => bad("Not a number of type LONG".into()),
        },
        ConfigType::Double { min, max } => match value.trim().parse::<f64>() {
            Ok(number) if number >= min && number <= max => Ok(()),
            Ok(_) => bad(format!("Value must be in [{min}, {max}]")),
            Err(_) => bad("Not a number of type DOUBLE".into()),
        },
        ConfigType::Boolean => match value.trim().to_ascii_lowercase().as_str() {
            "true" | "false" => Ok(()),
            _ => bad("Expected value to be either true or false".into()),
        },
        ConfigType::Choice(allowed) => match allowed.contains(&value.trim()) {
            true => Ok(()),
            false => bad(format!("String must be one of: {}", allowed.join(", "))),
        },
        ConfigType::List(allowed) => {
            let items = value.split(',').map(str::trim).filter(|item| !item.is_empty());
            match items.clone().all(|item| allowed.is_empty() || allowed.contains(&item)) {
                true if allowed.is_empty() || items.count() > 0 => Ok(()),
                _ => bad(format!("Value must be a list of: {}", allowed.join(", "))),
            }
        }
    }
}

/// Where an effective value comes from, as DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Topic = 1,
    StaticBroker = 4,
    Default = 5,
}

/// The effective value of a topic configuration and its source.
pub fn effective(
    def: &TopicConfigDef,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
) -> (String, ConfigSource) {
    if let Some(value) = overrides.get(def.name) {
        return (value.clone(), ConfigSource::Topic);
    }
    if let Some(value) = broker_value(def, broker) {
        return (value, ConfigSource::StaticBroker);
    }
    (def.default.to_string(), ConfigSource::Default)
}

/// The broker's setting for this topic configuration, if the operator set one.
pub fn broker_value(def: &TopicConfigDef, broker: &BrokerConfig) -> Option<String> {
    if def.synonym.is_empty() {
        return None;
    }
    if let Some(value) = broker.properties.get(def.synonym) {
        return Some(value.clone());
    }
    // Kafka's coarser synonyms: log.retention.minutes/hours and log.roll.hours.
    let scaled = |key: &str, factor: i64| {
        broker
            .properties
            .get(key)
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| (v * factor).to_string())
    };
    match def.name {
        "retention.ms" => scaled("log.retention.minutes", 60_000).or_else(|| scaled("log.retention.hours", 3_600_000)),
        "segment.ms" => scaled("log.roll.hours", 3_600_000),
        _ => None,
    }
}

/// The storage engine's configuration for a topic with these overrides.
pub fn log_config(overrides: &BTreeMap<String, String>, broker: &BrokerConfig) -> LogConfig {
    let value = |name: &str| {
        let def = find(name).expect("known topic config");
        effective(def, overrides, broker).0
    };
    let number = |name: &str| value(name).trim().parse::<i64>().unwrap_or(0);
    LogConfig {
        segment_bytes: number("segment.bytes") as u64,
        segment_ms: number("segment.ms"),
        segment_index_bytes: number("segment.index.bytes") as u64,
        index_interval_bytes: number("index.interval.bytes") as u64,
        max_message_bytes: number("max.message.bytes") as usize,
        message_timestamp_type: match value("message.timestamp.type").as_str() {
            "LogAppendTime" => TimestampType::LogAppendTime,
            _ => TimestampType::CreateTime,
        },
        message_timestamp_before_max_ms: number("message.timestamp.before.max.ms"),
        message_timestamp_after_max_ms: number("message.timestamp.after.max.ms"),
        // A broker-wide setting in Kafka, not a topic configuration.
        producer_id_expiration_ms: broker.parse::<i64>("producer.id.expiration.ms").unwrap_or(86_400_000),
        compact: value("cleanup.policy")
            .split(',')
            .any(|policy| policy.trim() == "compact"),
        file_delete_delay_ms: number("file.delete.delay.ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        assert!(validate("retention.ms", "1000").is_ok());
        assert!(validate("retention.ms", "-1").is_ok());
        assert!(validate("retention.ms", "-5").unwrap_err().contains("at least -1"));
        assert!(validate("retention.ms", "soon").unwrap_err().contains("LONG"));
        assert!(validate("no.such.config", "1").unwrap_err().contains("Unknown"));
        assert!(validate("cleanup.policy", "compact,delete").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
        assert!(validate("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate("segment.bytes", "1000").is_err());
    }

    #[test]
    fn topic_overrides_then_broker_then_default() {
        let broker = BrokerConfig::load(None, &[("log.retention.hours".into(), "1".into())]).unwrap();
        let def = find("retention.ms").unwrap();
        assert_eq!(
            effective(def, &BTreeMap::new(), &broker),
            ("3600000".into(), ConfigSource::StaticBroker)
        );
        let overrides = BTreeMap::from([("retention.ms".to_string(), "5".to_string())]);
        assert_eq!(effective(def, &overrides, &broker), ("5".into(), ConfigSource::Topic));
        let def = find("max.message.bytes").unwrap();
        assert_eq!(
            effective(def, &overrides, &broker),
            ("1048588".into(), ConfigSource::Default)
        );
        let overrides = BTreeMap::from([("max.message.bytes".to_string(), "100".to_string())]);
        assert_eq!(log_config(&overrides, &broker).max_message_bytes, 100);
    }
}
