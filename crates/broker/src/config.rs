//! Broker configuration: Kafka's `server.properties` names and defaults,
//! read from an optional properties file and `--set key=value` overrides.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}: expected key=value, found {text:?}")]
    Syntax { path: PathBuf, line: usize, text: String },
    #[error("invalid value {value:?} for {key}: {reason}")]
    Invalid { key: String, value: String, reason: String },
}

/// The broker settings Gregor acts on, with Kafka's defaults.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// `node.id`
    pub node_id: i32,
    /// `listeners`: the PLAINTEXT address to bind (port 0 binds an ephemeral port).
    pub listener: SocketAddr,
    /// `advertised.listeners`: the host:port given to clients; None advertises the bound address.
    pub advertised_listener: Option<(String, u16)>,
    /// `log.dirs` (first entry; `log.dir` as fallback).
    pub log_dir: PathBuf,
    /// Every key as given, for DescribeConfigs and topic defaults.
    pub properties: BTreeMap<String, String>,
}

/// Kafka's defaults for broker settings Gregor reads or reports.
pub const DEFAULTS: &[(&str, &str)] = &[
    ("node.id", "1"),
    ("listeners", "PLAINTEXT://127.0.0.1:9092"),
    ("log.dirs", "/tmp/gregor-logs"),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("auto.create.topics.enable", "true"),
    ("message.max.bytes", "1048588"),
    ("socket.request.max.bytes", "104857600"),
    ("max.connections", "2147483647"),
    ("max.connections.per.ip", "2147483647"),
    ("connections.max.idle.ms", "600000"),
    ("queued.max.requests", "500"),
    ("log.segment.bytes", "1073741824"),
    ("log.roll.ms", "604800000"),
    ("log.index.size.max.bytes", "10485760"),
    ("log.index.interval.bytes", "4096"),
    ("log.message.timestamp.type", "CreateTime"),
    ("log.message.timestamp.before.max.ms", "9223372036854775807"),
    ("log.message.timestamp.after.max.ms", "3600000"),
    ("log.retention.hours", "168"),
    ("log.retention.bytes", "-1"),
    ("log.retention.check.interval.ms", "300000"),
    ("log.segment.delete.delay.ms", "60000"),
    ("log.cleanup.policy", "delete"),
    ("compression.type", "producer"),
    ("min.insync.replicas", "1"),
    ("delete.topic.enable", "true"),
    ("producer.id.expiration.ms", "86400000"),
    ("num.recovery.threads.per.data.dir", "2"),
    ("log.cleaner.enable", "true"),
    ("log.cleaner.threads", "1"),
    ("log.cleaner.backoff.ms", "15000"),
    ("log.cleaner.dedupe.buffer.size", "134217728"),
    ("log.cleaner.io.buffer.size", "524288"),
    ("log.cleaner.io.buffer.load.factor", "0.9"),
    ("log.cleaner.io.max.bytes.per.second", "1.7976931348623157E308"),
    ("log.cleaner.min.cleanable.ratio", "0.5"),
    ("log.cleaner.delete.retention.ms", "86400000"),
    ("log.cleaner.min.compaction.lag.ms", "0"),
    ("log.cleaner.max.compaction.lag.ms", "9223372036854775807"),
    ("group.initial.rebalance.delay.ms", "3000"),
    ("group.min.session.timeout.ms", "6000"),
    ("group.max.session.timeout.ms", "1800000"),
    ("group.max.size", "2147483647"),
    ("group.consumer.session.timeout.ms", "45000"),
    ("group.consumer.heartbeat.interval.ms", "5000"),
    ("offsets.topic.num.partitions", "50"),
    ("offset.metadata.max.bytes", "4096"),
    ("offsets.retention.minutes", "10080"),
    ("offsets.retention.check.interval.ms", "600000"),
    ("transaction.state.log.num.partitions", "50"),
    ("transaction.max.timeout.ms", "900000"),
    ("transaction.abort.timed.out.transaction.cleanup.interval.ms", "10000"),
    ("transactional.id.expiration.ms", "604800000"),
    ("transaction.remove.expired.transaction.cleanup.interval.ms", "3600000"),
];

impl BrokerConfig {
    /// Reads `properties_file` (if any), then applies `overrides` in order.
    pub fn load(properties_file: Option<&Path>, overrides: &[(String, String)]) -> Result<BrokerConfig, ConfigError> {
        let mut properties = BTreeMap::new();
        if let Some(path) = properties_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            for (index, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                    continue;
                }
                let Some((key, value)) = line.split_once('=').or_else(|| line.split_once(':')) else {
                    return Err(ConfigError::Syntax {
                        path: path.to_path_buf(),
                        line: index + 1,
                        text: line.to_string(),
                    });
                };
                properties.insert(key.trim().to_string(), value.trim().to_string());
            }
        }
        for (key, value) in overrides {
            properties.insert(key.clone(), value.clone());
        }
        Self::from_properties(properties)
    }

    fn from_properties(properties: BTreeMap<String, String>) -> Result<BrokerConfig, ConfigError> {
        let config = BrokerConfig {
            node_id: 0,
            listener: "127.0.0.1:9092".parse().expect("constant address"),
            advertised_listener: None,
            log_dir: PathBuf::new(),
            properties,
        };
        let node_id = config.parse::<i32>("node.id")?;
        if node_id < 0 {
            return Err(config.invalid("node.id", "must be >= 0"));
        }
        let listener = parse_listener(&config.get("listeners"))
            .and_then(|(host, port)| resolve(&host, port))
            .map_err(|reason| config.invalid("listeners", &reason))?;
        let advertised_listener = match config.properties.get("advertised.listeners") {
            Some(text) => Some(parse_listener(text).map_err(|reason| config.invalid("advertised.listeners", &reason))?),
            None => None,
        };
        let log_dirs = config
            .properties
            .get("log.dirs")
            .or(config.properties.get("log.dir"))
            .cloned()
            .unwrap_or_else(|| config.get("log.dirs"));
        let log_dir = log_dirs
            .split(',')
            .next()
            .map(str::trim)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from);
        let Some(log_dir) = log_dir else {
            return Err(config.invalid("log.dirs", "must name a directory"));
        };
        // Validate every numeric setting we act on now, so a typo fails before anything binds.
        for key in [
            "num.partitions",
            "default.replication.factor",
            "message.max.bytes",
            "socket.request.max.bytes",
            "log.index.size.max.bytes",
            "log.index.interval.bytes",
            "max.connections",
            "max.connections.per.ip",
            "connections.max.idle.ms",
            "log.retention.check.interval.ms",
            "producer.id.expiration.ms",
            "num.recovery.threads.per.data.dir",
        ] {
            if config.parse::<i64>(key)? <= 0 {
                return Err(config.invalid(key, "must be > 0"));
            }
        }
        if config.parse::<i64>("log.segment.bytes")? < 1_048_576 {
            return Err(config.invalid("log.segment.bytes", "must be at least 1048576"));
        }
        for key in [
            "log.roll.ms",
            "log.segment.delete.delay.ms",
            "log.message.timestamp.before.max.ms",
            "log.message.timestamp.after.max.ms",
        ] {
            if config.parse::<i64>(key)? < 0 {
                return Err(config.invalid(key, "must be >= 0"));
            }
        }
        config.parse::<bool>("auto.create.topics.enable")?;
        config.parse::<bool>("log.cleaner.enable")?;
        config.parse::<usize>("log.cleaner.threads")?;
        config.parse::<u64>("log.cleaner.backoff.ms")?;
        for key in ["log.cleaner.dedupe.buffer.size", "log.cleaner.io.buffer.size"] {
            if config.parse::<usize>(key)? == 0 {
                return Err(config.invalid(key, "must be > 0"));
            }
        }
        let load_factor = config.parse::<f64>("log.cleaner.io.buffer.load.factor")?;
        if !(load_factor > 0.0 && load_factor <= 1.0) {
            return Err(config.invalid("log.cleaner.io.buffer.load.factor", "must be in (0, 1]"));
        }
        let io_rate = config.parse::<f64>("log.cleaner.io.max.bytes.per.second")?;
        if io_rate.is_nan() || io_rate <= 0.0 {
            return Err(config.invalid("log.cleaner.io.max.bytes.per.second", "must be > 0"));
        }
        let timestamp_type = config.get("log.message.timestamp.type");
        if timestamp_type != "CreateTime" && timestamp_type != "LogAppendTime" {
            return Err(config.invalid("log.message.timestamp.type", "must be CreateTime or LogAppendTime"));
        }
        Ok(BrokerConfig {
            node_id,
            listener,
            advertised_listener,
            log_dir,
            ..config
        })
    }

    /// The configured value of `key`, or Kafka's default ("" when unknown).
    pub fn get(&self, key: &str) -> String {
        self.properties
            .get(key)
            .cloned()
            .or_else(|| {
                DEFAULTS
                    .iter()
                    .find(|(name, _)| *name == key)
                    .map(|(_, value)| value.to_string())
            })
            .unwrap_or_default()
    }

    /// Parses the value of `key`, naming the key in the error.
    pub fn parse<T: std::str::FromStr>(&self, key: &str) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let value = self.get(key);
        value
            .parse::<T>()
            .map_err(|error| self.invalid(key, &error.to_string()))
    }

    /// [`parse`](Self::parse), refusing values below `min` (Kafka's `atLeast` validator).
    pub fn parse_at_least<T>(&self, key: &str, min: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
        T::Err: std::fmt::Display,
    {
        let value = self.parse::<T>(key)?;
        if value < min {
            return Err(self.invalid(key, &format!("must be at least {min}")));
        }
        Ok(value)
    }

    fn invalid(&self, key: &str, reason: &str) -> ConfigError {
        ConfigError::Invalid {
            key: key.to_string(),
            value: self.get(key),
            reason: reason.to_string(),
        }
    }
}

/// `PLAINTEXT://host:port` (the first listener) into host and port.
fn parse_listener(text: &str) -> Result<(String, u16), String> {
    let first = text.split(',').next().unwrap_or("").trim();
    let address = match first.split_once("://") {
        Some(("PLAINTEXT", address)) => address,
        Some((protocol, _)) => {
            return Err(format!(
                "security protocol {protocol} is not supported yet; use PLAINTEXT"
            ));
        }
        None => return Err("expected PLAINTEXT://host:port".to_string()),
    };
    let (host, port) = address.rsplit_once(':').ok_or("expected PLAINTEXT://host:port")?;
    let port = port
        .parse::<u16>()
        .map_err(|error| format!("bad port {port:?}: {error}"))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_string(), port))
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    (host, port)
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve {host}: {error}"))?
        .next()
        .ok_or_else(|| format!("{host} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_no_configuration() {
        let config = BrokerConfig::load(None, &[]).unwrap();
        assert_eq!(config.node_id, 1);
        assert_eq!(config.listener, "127.0.0.1:9092".parse().unwrap());
        assert_eq!(config.log_dir, PathBuf::from("/tmp/gregor-logs"));
        assert_eq!(config.parse::<i32>("num.partitions").unwrap(), 1);
    }

    #[test]
    fn overrides_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.properties");
        std::fs::write(
            &path,
            "# comment\nnum.partitions=3\nlisteners=PLAINTEXT://127.0.0.1:0\n",
        )
        .unwrap();
        let config = BrokerConfig::load(Some(&path), &set(&[("num.partitions", "5")])).unwrap();
        assert_eq!(config.get("num.partitions"), "5");
        assert_eq!(config.listener.port(), 0);
    }

    #[test]
    fn cleaner_settings_have_kafkas_defaults_and_are_checked() {
        let config = BrokerConfig::load(None, &[]).unwrap();
        assert_eq!(config.parse::<u64>("log.cleaner.backoff.ms").unwrap(), 15_000);
        assert_eq!(
            config.parse::<usize>("log.cleaner.dedupe.buffer.size").unwrap(),
            128 << 20
        );
        assert_eq!(
            config.parse::<f64>("log.cleaner.io.max.bytes.per.second").unwrap(),
            f64::MAX
        );
        for (key, value) in [
            ("log.cleaner.threads", "-1"),
            ("log.cleaner.io.buffer.load.factor", "1.5"),
            ("log.cleaner.dedupe.buffer.size", "0"),
            ("log.cleaner.io.max.bytes.per.second", "0"),
        ] {
            let error = BrokerConfig::load(None, &set(&[(key, value)])).unwrap_err();
            assert!(error.to_string().contains(key), "{error}");
        }
    }

    #[test]
    fn invalid_values_name_the_key() {
        let error = BrokerConfig::load(None, &set(&[("num.partitions", "many")])).unwrap_err();
        assert!(error.to_string().contains("num.partitions"), "{error}");
        let error = BrokerConfig::load(None, &set(&[("listeners", "SSL://x:1")])).unwrap_err();
        assert!(error.to_string().contains("SSL"), "{error}");
        let error = BrokerConfig::load(None, &set(&[("log.message.timestamp.type", "Now")])).unwrap_err();
        assert!(error.to_string().contains("CreateTime"), "{error}");
    }
}
