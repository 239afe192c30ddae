//! The partition manager: every partition this broker leads, its log, leader
//! epoch and high watermark, and the topic lifecycle (create, grow, delete)
//! kept durable through the metadata log.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use gregor_log::{AppendInfo, DiskStorage, Log, LogError, Storage};
use gregor_metadata::{ConfigResource, MetadataError, MetadataImage, MetadataLog, MetadataRecord, TopicImage};
use tokio::sync::watch;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::topic_config;

/// One partition led by this broker.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    /// Bumped on every leadership change; a single node leads from epoch 0.
    pub leader_epoch: i32,
    pub log: Log,
}

impl Partition {
    /// Offline after its log failed a read, write or fsync, or could not be
    /// opened (Kafka's offline replica after a log directory failure):
    /// produce, fetch and ListOffsets get KAFKA_STORAGE_ERROR, Metadata
    /// shows no leader and DescribeLogDirs leaves it out until the broker
    /// restarts. Only this partition: the others, in the same log
    /// directory, go on (where Kafka takes the whole directory offline). A
    /// full disk does not take it offline.
    pub fn is_offline(&self) -> bool {
        self.log.is_offline()
    }
}

/// A topic's partitions as currently served.
pub struct Topic {
    pub image: Arc<TopicImage>,
    pub partitions: Vec<Arc<Partition>>,
}

impl Topic {
    /// The effective `compression.type` (`producer` keeps the producer's codec).
    pub fn compression_type(&self, broker: &BrokerConfig) -> String {
        let def = topic_config::find("compression.type").expect("known topic config");
        topic_config::effective(def, &self.image.configs, broker).0
    }
}

/// Why a topic operation failed, in Kafka's terms.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("Topic '{0}' already exists.")]
    AlreadyExists(String),
    #[error("This server does not host this topic: {0}")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("Unable to perform excessively large batch operation.")]
    TooLarge,
    #[error("storage: {0}")]
    Storage(String),
}

impl TopicError {
    pub fn code(&self) -> i16 {
        match self {
            TopicError::AlreadyExists(_) => 36,
            TopicError::UnknownTopic(_) => 3,
            TopicError::InvalidTopic(_) => 17,
            TopicError::InvalidConfig(_) => 40,
            TopicError::InvalidPartitions(_) => 37,
            TopicError::TooLarge => 44, // POLICY_VIOLATION
            TopicError::Storage(_) => 56,
        }
    }
}

impl From<MetadataError> for TopicError {
    fn from(error: MetadataError) -> Self {
        match error {
            MetadataError::TopicExists(name) => TopicError::AlreadyExists(name),
            MetadataError::UnknownTopic(name) => TopicError::UnknownTopic(name),
            MetadataError::UnknownTopicId(id) => TopicError::UnknownTopic(id.to_string()),
            other => TopicError::Storage(other.to_string()),
        }
    }
}

impl From<LogError> for TopicError {
    fn from(error: LogError) -> Self {
        TopicError::Storage(error.to_string())
    }
}

pub struct PartitionManager {
    pub broker: BrokerConfig,
    log_dir: PathBuf,
    /// The file system under `log_dir`, where the fsyncs of different
    /// partitions that overlap share one `syncfs`.
    storage: Arc<dyn Storage>,
    /// The single writer of metadata; held across a whole topic operation.
    metadata: Mutex<MetadataLog>,
    /// Read-mostly view for request handlers; swapped whole after each change.
    topics: RwLock<Arc<HashMap<String, Arc<Topic>>>>,
    /// Bumped after every append, so long-polling fetches wake without polling.
    appended: watch::Sender<u64>,
    /// The directories of deleted partitions, renamed `-delete`, and when
    /// each may go (ms since the epoch).
    deleted_dirs: Mutex<Vec<(PathBuf, i64)>>,
}

impl PartitionManager {
    /// Opens the metadata and every partition log under `log_dir`.
    pub fn open(broker: BrokerConfig) -> Result<PartitionManager, TopicError> {
        let log_dir = broker.log_dir.clone();
        std::fs::create_dir_all(&log_dir).map_err(|e| TopicError::Storage(format!("{}: {e}", log_dir.display())))?;
        let metadata = MetadataLog::open(&log_dir.join("__cluster_metadata-0"))?;
        let storage: Arc<dyn Storage> = Arc::new(
            DiskStorage::sharing_syncs(&log_dir)
                .map_err(|e| TopicError::Storage(format!("{}: {e}", log_dir.display())))?,
        );
        let image = metadata.image();
        let mut topics = HashMap::new();
        for topic in image.topics() {
            topics.insert(
                topic.name.clone(),
                Arc::new(open_topic(
                    &log_dir,
                    &storage,
                    &broker,
                    topic.clone(),
                    Vec::new(),
                    Opening::AtStart,
                )?),
            );
        }
        // Every log's directory changes (its clean-shutdown marker removed)
        // durable at once, before anything is appended: one sync of the file
        // system rather than an fsync per partition directory.
        std::fs::File::open(&log_dir)
            .and_then(|handle| gregor_log::sync_file_system(&handle))
            .map_err(|e| TopicError::Storage(format!("{}: {e}", log_dir.display())))?;
        // Due at once, but removed by the retention task rather than here:
        // a start after deleting big topics would otherwise wait for it.
        let now = crate::api::now_ms();
        let deleted_dirs = (remove_orphan_partition_dirs(&log_dir, &image).into_iter())
            .map(|dir| (dir, now))
            .collect();
        Ok(PartitionManager {
            broker,
            log_dir,
            storage,
            metadata: Mutex::new(metadata),
            topics: RwLock::new(Arc::new(topics)),
            appended: watch::channel(0).0,
            deleted_dirs: Mutex::new(deleted_dirs),
        })
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    pub fn topics(&self) -> Arc<HashMap<String, Arc<Topic>>> {
        self.topics.read().expect("topics lock").clone()
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics().get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics().values().find(|topic| topic.image.id == id).cloned()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.topic(topic)?.partitions.get(usize::try_from(index).ok()?).cloned()
    }

    pub fn metadata_image(&self) -> Arc<MetadataImage> {
        self.metadata.lock().expect("metadata lock").image()
    }

    /// Creates a topic with `partitions` partitions and the given config overrides.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        validate_topic_name(name)?;
        if partitions < 1 {
            return Err(TopicError::InvalidPartitions(
                "Number of partitions must be larger than 0.".into(),
            ));
        }
        check_operation_size(partitions)?;
        for (key, value) in &configs {
            topic_config::validate(key, value).map_err(TopicError::InvalidConfig)?;
        }
        let mut metadata = self.metadata.lock().expect("metadata lock");
        if metadata.image().topic(name).is_some() {
            return Err(TopicError::AlreadyExists(name.to_string()));
        }
        let colliding = metadata
            .image()
            .topics()
            .find(|t| t.name != name && collision_key(&t.name) == collision_key(name))
            .map(|t| t.name.clone());
        if let Some(other) = colliding {
            return Err(TopicError::InvalidTopic(format!(
                "Topic '{name}' collides with existing topic: {other} ('.' and '_' are interchangeable in metric names)"
            )));
        }
        let id = Uuid::new_v4();
        let mut records = vec![MetadataRecord::Topic {
            name: name.to_string(),
            id,
            partitions,
        }];
        for (key, value) in configs {
            records.push(MetadataRecord::Config {
                resource: ConfigResource::Topic(name.to_string()),
                key,
                value: Some(value),
            });
        }
        if validate_only {
            let mut image = (*metadata.image()).clone();
            for record in &records {
                image.apply(record)?;
            }
            let image = image.topic(name).expect("just applied").clone();
            return Ok(Arc::new(Topic {
                image,
                partitions: Vec::new(),
            }));
        }
        let image = metadata.append(&records)?;
        let topic_image = image.topic(name).expect("just created").clone();
        let topic = Arc::new(open_topic(
            &self.log_dir,
            &self.storage,
            &self.broker,
            topic_image,
            Vec::new(),
            Opening::Created,
        )?);
        self.replace_topic(name, Some(topic.clone()));
        Ok(topic)
    }

    /// Grows a topic to `count` partitions (CreatePartitions).
    pub fn create_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<(), TopicError> {
        let mut metadata = self.metadata.lock().expect("metadata lock");
        let current = self
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        let existing = current.image.partitions;
        if count < existing {
            return Err(TopicError::InvalidPartitions(format!(
                "Topic currently has {existing} partitions, which is higher than the requested {count}."
            )));
        }
        if count == existing {
            return Err(TopicError::InvalidPartitions(format!(
                "Topic already has {existing} partitions."
            )));
        }
        check_operation_size(count - existing)?;
        if validate_only {
            return Ok(());
        }
        let image = metadata.append(&[MetadataRecord::PartitionCount {
            id: current.image.id,
            partitions: count,
        }])?;
        let topic_image = image.topic(name).expect("topic exists").clone();
        let topic = open_topic(
            &self.log_dir,
            &self.storage,
            &self.broker,
            topic_image,
            current.partitions.clone(),
            Opening::Created,
        )?;
        self.replace_topic(name, Some(Arc::new(topic)));
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) topic configuration overrides, atomically.
    pub fn alter_topic_configs(
        &self,
        name: &str,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        for (key, value) in &changes {
            match value {
                Some(value) => topic_config::validate(key, value).map_err(TopicError::InvalidConfig)?,
                None if topic_config::find(key).is_none() => {
                    return Err(TopicError::InvalidConfig(format!("Unknown topic config name: {key}")));
                }
                None => {}
            }
        }
        let mut metadata = self.metadata.lock().expect("metadata lock");
        let current = self
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        if validate_only {
            return Ok(());
        }
        let records: Vec<_> = changes
            .into_iter()
            .map(|(key, value)| MetadataRecord::Config {
                resource: ConfigResource::Topic(name.to_string()),
                key,
                value,
            })
            .collect();
        let image = metadata.append(&records)?;
        let topic_image = image.topic(name).expect("topic exists").clone();
        let log_config = topic_config::log_config(&topic_image.configs, &self.broker);
        for partition in &current.partitions {
            partition.log.set_config(log_config.clone());
        }
        let topic = Topic {
            image: topic_image,
            partitions: current.partitions.clone(),
        };
        self.replace_topic(name, Some(Arc::new(topic)));
        Ok(())
    }

    /// Deletes a topic: metadata first (so it is gone even if a crash
    /// follows), then its logs. As in Kafka's `LogManager.asyncDelete`, each
    /// partition directory is renamed `<topic>-<partition>.<unique id>-delete`
    /// at once, which frees the name for a new topic, and removed after the
    /// broker's `log.segment.delete.delay.ms`, so fetches in progress finish.
    pub fn delete_topic(&self, name: &str) -> Result<Uuid, TopicError> {
        let mut metadata = self.metadata.lock().expect("metadata lock");
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::UnknownTopic(name.to_string()))?;
        metadata.append(&[MetadataRecord::RemoveTopic { id: topic.image.id }])?;
        self.replace_topic(name, None);
        // Kafka's `LogManager` uses the broker's default, not the topic's.
        let delay_ms = self
            .broker
            .parse::<i64>("log.segment.delete.delay.ms")
            .unwrap_or(60_000);
        let now = crate::api::now_ms();
        for partition in &topic.partitions {
            let dir = partition.log.dir();
            let renamed = self.log_dir.join(delete_dir_name(&partition.topic, partition.index));
            match std::fs::rename(dir, &renamed) {
                Ok(()) => self
                    .deleted_dirs
                    .lock()
                    .expect("deleted dirs lock")
                    .push((renamed, now.saturating_add(delay_ms))),
                Err(error) => {
                    tracing::warn!(dir = %dir.display(), %error, "could not rename a deleted partition's directory; removing it now");
                    remove_dir(dir);
                }
            }
        }
        // With no delay they go now, as the log's files do.
        self.delete_expired_topic_dirs(now);
        Ok(topic.image.id)
    }

    /// Removes the `-delete` directories of deleted topics whose delay has
    /// passed by `now_ms`.
    pub fn delete_expired_topic_dirs(&self, now_ms: i64) {
        let due: Vec<PathBuf> = {
            let mut dirs = self.deleted_dirs.lock().expect("deleted dirs lock");
            let (due, waiting) = dirs.drain(..).partition(|(_, due_ms)| *due_ms <= now_ms);
            *dirs = waiting;
            due.into_iter().map(|(dir, _)| dir).collect()
        };
        for dir in due {
            remove_dir(&dir);
        }
    }

    /// Reserves the next `count` producer ids durably; returns the range [start, end).
    pub fn allocate_producer_ids(&self, count: i64) -> Result<(i64, i64), TopicError> {
        let mut metadata = self.metadata.lock().expect("metadata lock");
        let start = metadata.image().next_producer_id();
        metadata.append(&[MetadataRecord::ProducerIdBlock {
            next_block_start: start + count,
        }])?;
        Ok((start, start + count))
    }

    fn replace_topic(&self, name: &str, topic: Option<Arc<Topic>>) {
        let mut guard = self.topics.write().expect("topics lock");
        let mut topics = (**guard).clone();
        match topic {
            Some(topic) => topics.insert(name.to_string(), topic),
            None => topics.remove(name),
        };
        *guard = Arc::new(topics);
    }

    /// Appends to a partition and advances its high watermark (a single node
    /// is the whole ISR), then wakes waiting fetches.
    pub fn append(&self, partition: &Partition, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let info = partition.log.append(batches, partition.leader_epoch, now_ms)?;
        self.appended(partition, &info);
        Ok(info)
    }

    /// Appends a coordinator's own batch (no sequence checks), like `append`.
    pub fn append_internal(&self, partition: &Partition, batches: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let info = partition.log.append_internal(batches, partition.leader_epoch, now_ms)?;
        self.appended(partition, &info);
        Ok(info)
    }

    /// Writes a transaction marker; the coordinator syncs the markers of a
    /// transaction together, after writing all of them.
    pub fn append_marker(
        &self,
        partition: &Partition,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<AppendInfo, LogError> {
        let now = crate::api::now_ms();
        let info = partition.log.append_marker(
            producer_id,
            epoch,
            commit,
            coordinator_epoch,
            partition.leader_epoch,
            now,
        )?;
        self.appended(partition, &info);
        Ok(info)
    }

    fn appended(&self, partition: &Partition, info: &AppendInfo) {
        partition.log.set_high_watermark(info.last_offset + 1);
        self.appended.send_modify(|generation| *generation += 1);
    }

    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Flushes every log and writes its checkpoints and clean-shutdown
    /// marker. Each recovery thread closes its share of the logs together
    /// (`gregor_log::close_logs`: each step of the close made durable for
    /// all of them at once).
    pub fn close(&self) {
        // An offline log writes nothing on close (the next open recovers
        // it), and its failure was logged when it went offline.
        let online: Vec<Arc<Partition>> = (self.topics().values())
            .flat_map(|topic| topic.partitions.iter().filter(|p| !p.is_offline()).cloned())
            .collect();
        let threads = recovery_threads(&self.broker);
        let shares: Vec<&[Arc<Partition>]> = online.chunks(online.len().div_ceil(threads).max(1)).collect();
        in_parallel(shares, threads, |share| {
            let logs: Vec<&Log> = share.iter().map(|partition| &partition.log).collect();
            for (partition, closed) in share.iter().zip(gregor_log::close_logs(&logs)) {
                if let Err(error) = closed {
                    tracing::error!(topic = %partition.topic, partition = partition.index, %error, "clean close failed");
                }
            }
        });
    }
}

/// Kafka's controller refuses a user operation that would write more than
/// 10,000 metadata records (one per new partition), so a single request
/// cannot make the broker create millions of logs.
const MAX_PARTITIONS_PER_OPERATION: i32 = 10_000;

fn check_operation_size(new_partitions: i32) -> Result<(), TopicError> {
    if new_partitions > MAX_PARTITIONS_PER_OPERATION {
        return Err(TopicError::TooLarge);
    }
    Ok(())
}

/// Opens the logs of `image`'s partitions, reusing the ones already open.
///
/// A partition whose log cannot be opened (its directory unreadable, an
/// I/O error, damage recovery cannot handle) is kept, offline: it answers
/// KAFKA_STORAGE_ERROR, Metadata shows it without a leader, and the other
/// partitions are served. Kafka does the same at the scale of a log
/// directory: `LogManager` starts with the failed directory offline. For
/// a topic being created or grown the metadata already names the
/// partition, so it is kept offline too rather than left out.
///
/// The internal topics are the exception: the group and transaction
/// coordinators load their whole state from them at startup, and starting
/// without a partition of one would forget its groups' committed offsets
/// or its transactions; the broker refuses to start instead.
/// Why partitions are being opened.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// At broker start: the caller syncs the file system once afterwards.
    AtStart,
    /// Created (or grown) while running: each log syncs its own directory.
    Created,
}

fn open_topic(
    log_dir: &Path,
    storage: &Arc<dyn Storage>,
    broker: &BrokerConfig,
    image: Arc<TopicImage>,
    mut open: Vec<Arc<Partition>>,
    opening: Opening,
) -> Result<Topic, TopicError> {
    let config = topic_config::log_config(&image.configs, broker);
    let dirs: Vec<PathBuf> = (open.len() as i32..image.partitions)
        .map(|index| log_dir.join(format!("{}-{}", image.name, index)))
        .collect();
    let opened = in_parallel(dirs.clone(), recovery_threads(broker), |dir| match opening {
        Opening::AtStart => Log::open_leaving_directory_unsynced(&dir, config.clone(), storage.clone()),
        Opening::Created => Log::open_with_storage(&dir, config.clone(), storage.clone()),
    });
    for ((dir, opened), index) in dirs.iter().zip(opened).zip(open.len() as i32..) {
        let log = match opened {
            Ok(log) => log,
            Err(error) if is_internal_topic(&image.name) => {
                return Err(TopicError::Storage(format!("cannot open {}: {error}", dir.display())));
            }
            Err(error) => Log::offline(dir, config.clone(), &error),
        };
        log.set_high_watermark(log.log_end_offset());
        open.push(Arc::new(Partition {
            topic: image.name.clone(),
            index,
            leader_epoch: 0,
            log,
        }));
    }
    Ok(Topic {
        image,
        partitions: open,
    })
}

/// Kafka's `num.recovery.threads.per.data.dir`: how many logs open (and
/// recover) or close side by side. `BrokerConfig::load` checked it is > 0.
fn recovery_threads(broker: &BrokerConfig) -> usize {
    broker
        .parse::<usize>("num.recovery.threads.per.data.dir")
        .unwrap_or(1)
        .max(1)
}

/// `work` on every item, on up to `threads` threads; the results in the items' order.
fn in_parallel<T: Send, R: Send>(items: Vec<T>, threads: usize, work: impl Fn(T) -> R + Sync) -> Vec<R> {
    let threads = threads.min(items.len());
    if threads <= 1 {
        return items.into_iter().map(work).collect();
    }
    let queue = Mutex::new(items.into_iter().enumerate());
    let mut results: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while let Some((at, item)) = { queue.lock().expect("work queue").next() } {
                        done.push((at, work(item)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a log open or close panicked"))
            .collect()
    });
    results.sort_unstable_by_key(|(at, _)| *at);
    results.into_iter().map(|(_, result)| result).collect()
}

/// Kafka's internal topics (`Topic.isInternal`).
pub(crate) fn is_internal_topic(name: &str) -> bool {
    name == crate::groups::offsets_topic::OFFSETS_TOPIC || name == crate::transactions::txn_log::TRANSACTION_TOPIC
}

/// Kafka's suffix for the directory of a deleted partition.
const DELETE_DIR_SUFFIX: &str = "-delete";

/// Kafka's `UnifiedLog.logDeleteDirName`: `<topic>-<partition>.<random
/// id>-delete`, the topic cut short so that the name fits in 255 bytes.
fn delete_dir_name(topic: &str, partition: i32) -> String {
    let suffix = format!("-{partition}.{}{DELETE_DIR_SUFFIX}", Uuid::new_v4().simple());
    // Topic names are ASCII, so any byte length is a character boundary.
    let kept = topic.len().min(255 - suffix.len());
    format!("{}{suffix}", &topic[..kept])
}

fn remove_dir(dir: &Path) {
    if let Err(error) = std::fs::remove_dir_all(dir) {
        tracing::warn!(dir = %dir.display(), %error, "could not remove a deleted partition's directory");
    }
}

/// A crash between a topic's removal from metadata and the removal of its
/// directories leaves orphans; they hold no live data, so they go. Returns
/// the `-delete` directories still waiting for their delay when the broker
/// stopped, for the caller to schedule: no fetch survives a restart, so
/// they may go at once (Kafka schedules them for deletion as it loads them,
/// and serves meanwhile).
fn remove_orphan_partition_dirs(log_dir: &Path, image: &MetadataImage) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(log_dir) else {
        return Vec::new();
    };
    let mut deleted = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(DELETE_DIR_SUFFIX) && entry.path().is_dir() {
            deleted.push(entry.path());
            continue;
        }
        let Some((topic, partition)) = name.rsplit_once('-') else {
            continue;
        };
        if partition.parse::<i32>().is_err() || name == "__cluster_metadata-0" {
            continue;
        }
        let live = image
            .topic(topic)
            .is_some_and(|t| partition.parse::<i32>().is_ok_and(|p| p < t.partitions));
        if !live && entry.path().is_dir() {
            tracing::warn!(dir = %entry.path().display(), "removing the directory of a deleted topic");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    deleted
}

/// Kafka's topic name rules: 1-249 characters of [a-zA-Z0-9._-], not "." or "..".
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let invalid = |why: &str| {
        Err(TopicError::InvalidTopic(format!(
            "Topic name \"{name}\" is illegal, {why}"
        )))
    };
    if name.is_empty() {
        return invalid("it can't be empty");
    }
    if name == "." || name == ".." {
        return invalid("it can't be '.' or '..'");
    }
    if name.len() > 249 {
        return invalid("it can't be longer than 249 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return invalid("it contains a character other than ASCII alphanumerics, '.', '_' and '-'");
    }
    Ok(())
}

fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {

    #[test]
    fn in_parallel_keeps_the_items_order() {
        let doubled = in_parallel((0..100).collect(), 4, |i: i32| i * 2);
        assert_eq!(doubled, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(in_parallel(vec![7], 4, |i: i32| i + 1), [8]);
        assert!(in_parallel(Vec::<i32>::new(), 4, |i| i).is_empty());
    }

    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        for bad in ["", ".", "..", "a b", "ü", &"x".repeat(250)] {
            assert_eq!(validate_topic_name(bad).unwrap_err().code(), 17, "{bad:?}");
        }
    }

    #[test]
    fn an_operation_creating_more_than_ten_thousand_partitions_is_a_policy_violation() {
        let dir = tempfile::tempdir().unwrap();
        let settings = [("log.dirs".to_string(), dir.path().display().to_string())];
        let partitions = PartitionManager::open(BrokerConfig::load(None, &settings).unwrap()).unwrap();
        let huge = partitions.create_topic("huge", i32::MAX, BTreeMap::new(), false);
        assert_eq!(huge.err().map(|e| e.code()), Some(44));
        assert!(partitions.topic("huge").is_none());

        partitions.create_topic("grows", 2, BTreeMap::new(), false).unwrap();
        let grown = partitions.create_partitions("grows", 10_003, false);
        assert_eq!(grown.err().map(|e| e.code()), Some(44));
        partitions.create_partitions("grows", 10_002, true).unwrap();
        assert_eq!(partitions.topic("grows").unwrap().partitions.len(), 2);
    }

    /// A partition directory that cannot be opened: a file in its place.
    fn break_partition(log_dir: &Path, name: &str) {
        let dir = log_dir.join(name);
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::write(&dir, b"not a directory").unwrap();
    }

    #[test]
    fn a_partition_that_cannot_be_opened_is_offline_unless_it_is_internal() {
        let dir = tempfile::tempdir().unwrap();
        let settings = [("log.dirs".to_string(), dir.path().display().to_string())];
        let config = || BrokerConfig::load(None, &settings).unwrap();
        let partitions = PartitionManager::open(config()).unwrap();
        partitions.create_topic("t", 2, BTreeMap::new(), false).unwrap();
        partitions
            .create_topic(crate::groups::offsets_topic::OFFSETS_TOPIC, 1, BTreeMap::new(), false)
            .unwrap();
        partitions.close();
        drop(partitions);

        break_partition(dir.path(), "t-1");
        let partitions = PartitionManager::open(config()).unwrap();
        assert!(!partitions.partition("t", 0).unwrap().is_offline());
        assert!(partitions.partition("t", 1).unwrap().is_offline());
        // A new topic whose directory cannot be created: the metadata names
        // its partition, so it is there, offline.
        std::fs::write(dir.path().join("fresh-0"), b"not a directory").unwrap();
        partitions.create_topic("fresh", 1, BTreeMap::new(), false).unwrap();
        assert!(partitions.partition("fresh", 0).unwrap().is_offline());
        partitions.close();
        drop(partitions);

        break_partition(dir.path(), "__consumer_offsets-0");
        let refused = PartitionManager::open(config()).err().map(|e| e.code());
        assert_eq!(refused, Some(56));
    }
}
