//! Incremental fetch sessions (KIP-227): the broker remembers what a
//! consumer fetches, so later requests send only changes and responses carry
//! only partitions with something new.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use kafka_protocol::messages::TopicName;
use uuid::Uuid;

/// A partition inside a session, named as the client names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionPartition {
    pub topic: TopicName,
    pub topic_id: Uuid,
    pub partition: i32,
}

/// What the client asked for and what it was last told about one partition.
#[derive(Debug, Clone, Default)]
pub struct PartitionFetchState {
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// (high watermark, log start offset) in the last response that carried
    /// this partition; an incremental response repeats a partition when they change.
    pub last_reported: Option<(i64, i64)>,
}

pub struct FetchSession {
    pub epoch: i32,
    pub partitions: BTreeMap<SessionPartition, PartitionFetchState>,
    last_used: Instant,
}

/// Bounded like Kafka's `max.incremental.fetch.session.cache.slots` (1000):
/// past the limit the least recently used session is evicted.
pub struct FetchSessionCache {
    sessions: HashMap<i32, FetchSession>,
    next_id: i32,
    capacity: usize,
}

pub enum SessionError {
    NotFound,
    InvalidEpoch,
}

impl FetchSessionCache {
    pub fn new(capacity: usize) -> Self {
        FetchSessionCache {
            sessions: HashMap::new(),
            next_id: 1,
            capacity,
        }
    }

    /// Starts a session holding `partitions`; returns its id.
    pub fn create(&mut self, partitions: BTreeMap<SessionPartition, PartitionFetchState>) -> i32 {
        if self.sessions.len() >= self.capacity
            && let Some(oldest) = self.sessions.iter().min_by_key(|(_, s)| s.last_used).map(|(id, _)| *id)
        {
            self.sessions.remove(&oldest);
        }
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        self.sessions.insert(
            id,
            FetchSession {
                epoch: 1,
                partitions,
                last_used: Instant::now(),
            },
        );
        id
    }

    /// The session `id` at `epoch`, advanced to the next epoch.
    pub fn take(&mut self, id: i32, epoch: i32) -> Result<FetchSession, SessionError> {
        let session = self.sessions.get(&id).ok_or(SessionError::NotFound)?;
        if session.epoch != epoch {
            return Err(SessionError::InvalidEpoch);
        }
        let mut session = self.sessions.remove(&id).expect("present");
        session.epoch = session.epoch.wrapping_add(1).max(1);
        Ok(session)
    }

    /// Stores a session back after a fetch.
    pub fn put(&mut self, id: i32, mut session: FetchSession) {
        session.last_used = Instant::now();
        self.sessions.insert(id, session);
    }

    pub fn remove(&mut self, id: i32) {
        self.sessions.remove(&id);
    }
}
