//! Fetch: long polling woken by appends, request and partition byte limits,
//! incremental fetch sessions (KIP-227) and topic ids (v13+). Record bytes
//! are copied straight from the segment files, never decoded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gregor_log::LogError;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;

use super::blocking;
use crate::errors::{
    FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH, KAFKA_STORAGE_ERROR, NONE, UNKNOWN_TOPIC_ID,
    UNKNOWN_TOPIC_OR_PARTITION,
};
use crate::fetch_session::{FetchSession, PartitionFetchState, SessionError, SessionPartition};
use crate::state::BrokerState;

const INITIAL_EPOCH: i32 = 0;
const FINAL_EPOCH: i32 = -1;

/// How the request relates to a fetch session.
enum SessionMode {
    /// No session: answer every partition asked for.
    Sessionless,
    /// Start a session with these partitions; answer them all.
    New,
    /// Continue session `id`; answer only partitions with news.
    Incremental(i32, FetchSession),
}

pub async fn handle(state: &Arc<BrokerState>, request: FetchRequest, version: i16) -> FetchResponse {
    let by_id = version >= 13;
    let mut requested = BTreeMap::new();
    let mut order = Vec::new();
    for topic in &request.topics {
        let name = match by_id {
            true => state
                .partitions
                .topic_by_id(topic.topic_id)
                .map(|t| name_of(&t.image.name))
                .unwrap_or_default(),
            false => topic.topic.clone(),
        };
        for partition in &topic.partitions {
            let key = SessionPartition {
                topic: name.clone(),
                topic_id: topic.topic_id,
                partition: partition.partition,
            };
            let fetch = PartitionFetchState {
                fetch_offset: partition.fetch_offset,
                max_bytes: partition.partition_max_bytes,
                last_reported: None,
            };
            order.push(key.clone());
            requested.insert(key, fetch);
        }
    }
    let forgotten = request.forgotten_topics_data.iter().flat_map(|topic| {
        topic
            .partitions
            .iter()
            .map(move |partition| (topic.topic.clone(), topic.topic_id, *partition))
    });

    let mode = {
        let mut sessions = state.fetch_sessions.lock().expect("fetch sessions lock");
        match (request.session_id, request.session_epoch) {
            (0, FINAL_EPOCH) => SessionMode::Sessionless,
            (id, FINAL_EPOCH) => {
                sessions.remove(id);
                SessionMode::Sessionless
            }
            (id, INITIAL_EPOCH) => {
                sessions.remove(id);
                SessionMode::New
            }
            (0, _) => return FetchResponse::default().with_error_code(INVALID_FETCH_SESSION_EPOCH),
            (id, epoch) => match sessions.take(id, epoch) {
                Ok(mut session) => {
                    for (topic, topic_id, partition) in forgotten {
                        session.partitions.retain(|key, _| {
                            let same_topic = if by_id {
                                key.topic_id == topic_id
                            } else {
                                key.topic == topic
                            };
                            !(same_topic && key.partition == partition)
                        });
                    }
                    for (key, fetch) in requested {
                        let last_reported = session.partitions.get(&key).and_then(|old| old.last_reported);
                        session
                            .partitions
                            .insert(key, PartitionFetchState { last_reported, ..fetch });
                    }
                    order = session.partitions.keys().cloned().collect();
                    requested = BTreeMap::new();
                    SessionMode::Incremental(id, session)
                }
                Err(SessionError::NotFound) => {
                    return FetchResponse::default().with_error_code(FETCH_SESSION_ID_NOT_FOUND);
                }
                Err(SessionError::InvalidEpoch) => {
                    return FetchResponse::default().with_error_code(INVALID_FETCH_SESSION_EPOCH);
                }
            },
        }
    };
    let partitions = match &mode {
        SessionMode::Incremental(_, session) => session.partitions.clone(),
        _ => requested,
    };
    let targets: Vec<(SessionPartition, PartitionFetchState)> = order
        .iter()
        .filter_map(|key| partitions.get(key).map(|fetch| (key.clone(), fetch.clone())))
        .collect();

    let read_committed = request.isolation_level == 1;
    let results = fetch_until_ready(state, targets, &request, by_id, read_committed).await;

    let (session_id, results) = match mode {
        SessionMode::Sessionless => (0, results),
        SessionMode::New => {
            let mut partitions = partitions;
            record_reported(&mut partitions, &results);
            (
                state
                    .fetch_sessions
                    .lock()
                    .expect("fetch sessions lock")
                    .create(partitions),
                results,
            )
        }
        SessionMode::Incremental(id, mut session) => {
            let changed: Vec<_> = results
                .into_iter()
                .filter(|(key, data)| {
                    let reported = session.partitions.get(key).and_then(|p| p.last_reported);
                    data.records.as_ref().is_some_and(|records| !records.is_empty())
                        || data.error_code != NONE
                        || reported != Some((data.high_watermark, data.log_start_offset))
                })
                .collect();
            record_reported(&mut session.partitions, &changed);
            state
                .fetch_sessions
                .lock()
                .expect("fetch sessions lock")
                .put(id, session);
            (id, changed)
        }
    };
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(group_by_topic(results))
}

/// Reads every partition; waits for appends while fewer than `min_bytes` are ready and time remains.
async fn fetch_until_ready(
    state: &Arc<BrokerState>,
    targets: Vec<(SessionPartition, PartitionFetchState)>,
    request: &FetchRequest,
    by_id: bool,
    read_committed: bool,
) -> Vec<(SessionPartition, PartitionData)> {
    let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
    let min_bytes = request.min_bytes.max(0) as usize;
    // Kafka treats max_bytes <= 0 (v0-v2 had none) as "no limit beyond the partition limits".
    let max_bytes = if request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut appended = state.partitions.subscribe_appends();
    loop {
        let reader = state.clone();
        let batch = targets.clone();
        let (results, bytes, failed) =
            blocking(move || read_partitions(&reader, batch, max_bytes, by_id, read_committed)).await;
        if bytes >= min_bytes || failed || bytes >= max_bytes {
            return results;
        }
        match tokio::time::timeout_at(deadline, appended.changed()).await {
            Ok(Ok(())) => continue,
            _ => return results,
        }
    }
}

/// One pass over the partitions: their data, the bytes read, whether any failed.
fn read_partitions(
    state: &BrokerState,
    targets: Vec<(SessionPartition, PartitionFetchState)>,
    max_bytes: usize,
    by_id: bool,
    read_committed: bool,
) -> (Vec<(SessionPartition, PartitionData)>, usize, bool) {
    let mut total = 0usize;
    let mut failed = false;
    let mut results = Vec::with_capacity(targets.len());
    for (key, fetch) in targets {
        let mut data = PartitionData::default()
            .with_partition_index(key.partition)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1);
        let partition = match by_id {
            true => state.partitions.topic_by_id(key.topic_id),
            false => state.partitions.topic(&key.topic),
        }
        .and_then(|topic| topic.partitions.get(usize::try_from(key.partition).ok()?).cloned());
        let Some(partition) = partition else {
            data.error_code = if by_id {
                UNKNOWN_TOPIC_ID
            } else {
                UNKNOWN_TOPIC_OR_PARTITION
            };
            failed = true;
            results.push((key, data));
            continue;
        };
        // Logged once, when the partition went offline; not on every poll.
        if partition.is_offline() {
            data.error_code = KAFKA_STORAGE_ERROR;
            failed = true;
            results.push((key, data));
            continue;
        }
        let log = &partition.log;
        let high_watermark = log.high_watermark();
        let last_stable_offset = log.last_stable_offset();
        data.high_watermark = high_watermark;
        data.last_stable_offset = last_stable_offset;
        data.log_start_offset = log.log_start_offset();
        data.aborted_transactions = read_committed.then(Vec::new);
        // Like Kafka, a partition with nothing to return carries empty records, not null.
        data.records = Some(Bytes::new());
        let limit = (fetch.max_bytes.max(0) as usize).min(max_bytes.saturating_sub(total));
        let upper = if read_committed {
            last_stable_offset
        } else {
            high_watermark
        };
        // Only the first non-empty partition may exceed the remaining budget (one whole batch).
        let budget_left = total == 0 || limit > 0;
        match log.read(fetch.fetch_offset, limit, upper) {
            Ok(Some(slice)) if !slice.is_empty() && budget_left && (total == 0 || slice.len() <= limit) => {
                let mut bytes = Vec::with_capacity(slice.len());
                match log.read_slice(&slice, &mut bytes) {
                    Ok(()) => {
                        total += bytes.len();
                        data.records = Some(Bytes::from(bytes));
                        if read_committed {
                            // The consumer drops these transactions' records itself, as with Kafka.
                            match log.aborted_transactions(fetch.fetch_offset, upper) {
                                Ok(aborted) => {
                                    data.aborted_transactions = Some(
                                        aborted
                                            .into_iter()
                                            .map(|t| {
                                                AbortedTransaction::default()
                                                    .with_producer_id(ProducerId(t.producer_id))
                                                    .with_first_offset(t.first_offset)
                                            })
                                            .collect(),
                                    )
                                }
                                Err(error) => failed |= set_error(&mut data, &partition.topic, error),
                            }
                        }
                    }
                    Err(error) => failed |= set_error(&mut data, &partition.topic, error),
                }
            }
            Ok(_) => {}
            Err(error) => failed |= set_error(&mut data, &partition.topic, error),
        }
        results.push((key, data));
    }
    (results, total, failed)
}

fn set_error(data: &mut PartitionData, topic: &str, error: LogError) -> bool {
    if !matches!(error, LogError::OffsetOutOfRange { .. }) {
        tracing::error!(topic, partition = data.partition_index, %error, "fetch read failed");
    }
    data.error_code = error.code();
    true
}

fn record_reported(
    partitions: &mut BTreeMap<SessionPartition, PartitionFetchState>,
    results: &[(SessionPartition, PartitionData)],
) {
    for (key, data) in results {
        if let Some(fetch) = partitions.get_mut(key) {
            fetch.last_reported = Some((data.high_watermark, data.log_start_offset));
        }
    }
}

fn group_by_topic(results: Vec<(SessionPartition, PartitionData)>) -> Vec<FetchableTopicResponse> {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    for (key, data) in results {
        match topics.last_mut() {
            Some(last) if last.topic == key.topic && last.topic_id == key.topic_id => last.partitions.push(data),
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(key.topic)
                    .with_topic_id(key.topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    topics
}

fn name_of(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}
