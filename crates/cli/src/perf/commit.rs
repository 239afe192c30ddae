//! `perf commit`: one group commits the offsets of many partitions at
//! once, again and again, and the latency of each OffsetCommit is recorded.
//! The requests go over the wire directly to the group's coordinator
//! (`txn_wire`), so the figure is the cluster's answer time plus one
//! loopback round trip, with no client library's queues in it. In the
//! summary each commit counts as one record.

use std::time::Instant;

use anyhow::{Result, bail};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::stats::{Counters, Summary};
use crate::client::ClientArgs;
use crate::txn_wire::{CoordinatorKey, coordinator, error_name};

/// Commits before the measured ones: the first creates `__consumer_offsets`.
const WARM_UP_COMMITS: u32 = 10;
/// OffsetCommit v8: flexible, without KIP-848's member epochs.
const OFFSET_COMMIT_VERSION: i16 = 8;

/// Commits `partitions` partitions of `topic` for `group`, `commits` times
/// after the warm-up; each commit moves every offset forward by one.
pub async fn run(client: &ClientArgs, topic: &str, partitions: i32, group: &str, commits: u32) -> Result<Summary> {
    let (_, mut connection) = coordinator(
        &client.bootstrap_server,
        client.request_timeout(),
        CoordinatorKey::Group,
        group,
    )
    .await?;
    let counters = Counters::default();
    let started = Instant::now();
    for round in 0..WARM_UP_COMMITS + commits {
        let partitions = (0..partitions)
            .map(|index| {
                OffsetCommitRequestPartition::default()
                    .with_partition_index(index)
                    .with_committed_offset(i64::from(round) + 1)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(Some(StrBytes::from_static_str("")))
            })
            .collect();
        // A simple commit (generation -1, no member), as a consumer with assign() makes.
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(partitions),
            ]);
        let sent = Instant::now();
        let response = connection.send(&request, OFFSET_COMMIT_VERSION).await?;
        let latency = sent.elapsed();
        if let Some(code) = response
            .topics
            .iter()
            .flat_map(|topic| &topic.partitions)
            .map(|partition| partition.error_code)
            .find(|code| *code != 0)
        {
            bail!("OffsetCommit failed: {}", error_name(code));
        }
        if round >= WARM_UP_COMMITS {
            counters.record(0, Some(latency));
        }
    }
    Ok(Summary {
        mode: "commit",
        topic: topic.to_string(),
        records: counters.records(),
        bytes: 0,
        elapsed: started.elapsed(),
        errors: 0,
        first_error: None,
        latency: Some(("commit", counters.latency())),
        producer: None,
        shortfall: None,
    })
}
