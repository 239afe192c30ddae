//! Retention over the wire: old segments of a topic with a short
//! `retention.ms` go, and every client sees the log start offset move;
//! their files, renamed `.deleted`, stay for `file.delete.delay.ms`. A
//! deleted topic's directories are renamed `-delete` and go after the
//! broker's `log.segment.delete.delay.ms`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

async fn earliest(client: &mut Client, topic: &str) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default().with_name(name(topic)).with_partitions(vec![
                ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-2),
            ]),
        ]);
    client.call(&request, 8).await.topics[0].partitions[0].offset
}

#[tokio::test]
async fn expired_segments_go_and_the_log_start_offset_follows() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let broker = TestBroker::start_in(dir, &[("log.retention.check.interval.ms", "100")]).await;
    let mut client = Client::connect(&broker).await;
    let config = |k: &str, v: &str| {
        CreatableTopicConfig::default()
            .with_name(StrBytes::from_string(k.into()))
            .with_value(Some(StrBytes::from_string(v.into())))
    };
    let topic = CreatableTopic::default()
        .with_name(name("short-lived"))
        .with_num_partitions(1)
        .with_replication_factor(1)
        // Each batch below starts a segment (its timestamps are more than segment.ms apart).
        .with_configs(vec![
            config("retention.ms", "60000"),
            config("segment.ms", "1"),
            config("file.delete.delay.ms", &FILE_DELETE_DELAY_MS.to_string()),
        ]);
    let created = client
        .call(
            &CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(5000),
            7,
        )
        .await;
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0].error_message);

    let now = wall_clock_ms();
    for (values, timestamp) in [
        (["old-1", "old-2"], now - 3_600_000),
        (["old-3", "old-4"], now - 1_800_000),
        (["new-1", "new-2"], now),
    ] {
        let response = client
            .call(&produce_request("short-lived", 1, batch_at(&values, timestamp)), 9)
            .await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    let deadline = Instant::now() + WAIT;
    while earliest(&mut client, "short-lived").await != 4 {
        assert!(
            Instant::now() < deadline,
            "retention never deleted the expired segments"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let response = client.call(&fetch_request("short-lived", 0, 0), 12).await;
    assert_eq!(
        response.responses[0].partitions[0].error_code, 1,
        "deleted offsets are out of range"
    );
    let response = client.call(&fetch_request("short-lived", 4, 0), 12).await;
    assert_eq!(
        values_of(response.responses[0].partitions[0].records.clone()),
        ["new-1", "new-2"]
    );

    // The two expired segments' files wait, renamed, for
    // file.delete.delay.ms, counted from the retention run (after `now`).
    let partition_dir = broker.dir.path().join("short-lived-0");
    wait_until("the expired segments renamed .deleted", || {
        names_ending(&partition_dir, ".log.deleted").len() == 2
    })
    .await;
    assert!(!partition_dir.join("00000000000000000000.log").exists());
    wait_until("the .deleted files removed", || {
        names_ending(&partition_dir, ".deleted").is_empty()
    })
    .await;
    assert!(
        wall_clock_ms() >= now + FILE_DELETE_DELAY_MS,
        "removed before file.delete.delay.ms passed"
    );
    assert_eq!(names_ending(&partition_dir, ".log"), ["00000000000000000004.log"]);
    broker.stop().await;
}

const FILE_DELETE_DELAY_MS: i64 = 1500;

fn wall_clock_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since_epoch.unwrap().as_millis() as i64
}

fn names_ending(dir: &Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// Polls `condition` until it holds, failing after [`WAIT`].
async fn wait_until(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_deleted_topics_directories_are_renamed_then_removed_after_the_delay() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    // Left by a broker that stopped before its delay passed.
    let leftover = dir.path().join("old-0.0123456789abcdef0123456789abcdef-delete");
    std::fs::create_dir(&leftover).unwrap();
    let delay = ("log.segment.delete.delay.ms", "1000");
    let broker = TestBroker::start_in(dir, &[delay]).await;
    // Removed after the start, as Kafka does: the start does not wait for it.
    wait_until("a restart's removal of leftover -delete directories", || {
        !leftover.exists()
    })
    .await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "doomed", 2).await;
    let response = client.call(&produce_request("doomed", 1, batch(&["a", "b"])), 9).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);

    let deleted_at = wall_clock_ms();
    let response = client
        .call(
            &DeleteTopicsRequest::default()
                .with_topic_names(vec![name("doomed")])
                .with_timeout_ms(5000),
            4,
        )
        .await;
    assert_eq!(response.responses[0].error_code, 0);
    let log_dir = broker.dir.path();
    assert!(!log_dir.join("doomed-0").exists() && !log_dir.join("doomed-1").exists());
    let renamed = names_ending(log_dir, "-delete");
    assert_eq!(renamed.len(), 2, "{renamed:?}");
    assert!(
        renamed
            .iter()
            .all(|n| n.starts_with("doomed-0.") || n.starts_with("doomed-1."))
    );
    // The name is free at once: a new topic of that name starts empty.
    create_topic(&mut client, "doomed", 1).await;
    let response = client.call(&fetch_request("doomed", 0, 0), 12).await;
    assert!(values_of(response.responses[0].partitions[0].records.clone()).is_empty());

    wait_until("the -delete directories removed", || {
        names_ending(log_dir, "-delete").is_empty()
    })
    .await;
    assert!(wall_clock_ms() >= deleted_at + 1000, "removed before the delay passed");
    broker.stop().await;
}
