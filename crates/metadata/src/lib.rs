//! Cluster metadata: a log of metadata records applied to an immutable image.
//!
//! Owns: which topics exist (name, topic id, partition count), topic and
//! broker configuration overrides, and their durability (an fsynced record log
//! plus snapshots). One local voter on a single node; a Raft quorum later
//! replicates the same records.
//! Never: touches partition data or the network.

mod codec;
mod image;
mod store;

pub use image::{ConfigResource, MetadataImage, TopicImage};
pub use store::MetadataLog;
use uuid::Uuid;

/// One change to cluster metadata, in the spirit of KRaft's metadata records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataRecord {
    /// A new topic with its id and initial partition count.
    Topic { name: String, id: Uuid, partitions: i32 },
    /// The topic grows to `partitions` partitions (CreatePartitions).
    PartitionCount { id: Uuid, partitions: i32 },
    /// Sets (`Some`) or removes (`None`) one configuration override.
    Config {
        resource: ConfigResource,
        key: String,
        value: Option<String>,
    },
    /// The topic is deleted.
    RemoveTopic { id: Uuid },
    /// Producer ids below `next_block_start` have been handed out (in blocks,
    /// like KRaft's ProducerIdsRecord), so none is ever given twice.
    ProducerIdBlock { next_block_start: i64 },
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("no topic with id {0}")]
    UnknownTopicId(Uuid),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("partition count can only grow: {current} -> {requested}")]
    PartitionCountShrinks { current: i32, requested: i32 },
    #[error("producer id blocks only move forward: {current} -> {requested}")]
    ProducerIdsBackwards { current: i64, requested: i64 },
    #[error("metadata storage: {0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt metadata file {file}: {reason}")]
    Corrupt { file: String, reason: String },
}
