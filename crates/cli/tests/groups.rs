//! Consumer groups through librdkafka's high-level consumer against a real
//! `gregor start`: subscription, partition assignment, committed offsets
//! (resuming, auto.offset.reset, restarts), and `gregor group` moving or
//! deleting them.

mod common;

use std::time::{Duration, Instant};

use common::{
    Broker, TIMEOUT, bounded, create_topic, payloads, poll_messages, produce_values, stderr_of_failure, stdout_of,
    unique_topic,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};

/// A group's first join completes at once instead of after Kafka's 3 s wait for more members.
const QUICK_JOINS: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0")];

fn group_member(broker: &Broker, group: &str) -> BaseConsumer {
    broker.consumer(&[
        ("group.id", group),
        ("auto.offset.reset", "earliest"),
        ("session.timeout.ms", "10000"),
    ])
}

/// A member of a KIP-848 group: the broker assigns partitions through
/// ConsumerGroupHeartbeat instead of JoinGroup/SyncGroup.
fn next_generation_member(broker: &Broker, group: &str) -> BaseConsumer {
    broker.consumer(&[
        ("group.id", group),
        ("group.protocol", "consumer"),
        ("auto.offset.reset", "earliest"),
    ])
}

#[tokio::test]
async fn a_group_member_consumes_every_partition_and_commits() {
    let broker = Broker::start();
    bounded(3, async {
        let topic = unique_topic("group");
        let group = unique_topic("group-id");
        create_topic(&broker, &topic, 3, &[]).await;
        let producer = broker.producer(&[]);
        for partition in 0..3 {
            produce_values(&producer, &topic, partition, &["a", "b"]).await;
        }

        let member = group_member(&broker, &group);
        member.subscribe(&[&topic]).expect("subscribe");
        let mut values = payloads(&poll_messages(&member, 6));
        values.sort();
        assert_eq!(values, ["a", "a", "a", "b", "b", "b"]);
        member.commit_consumer_state(CommitMode::Sync).expect("commit");

        let mut wanted = TopicPartitionList::new();
        for partition in 0..3 {
            wanted.add_partition(&topic, partition);
        }
        let committed = member.committed_offsets(wanted, TIMEOUT).expect("OffsetFetch");
        for partition in 0..3 {
            let element = committed.find_partition(&topic, partition).expect("partition answered");
            assert_eq!(element.offset(), Offset::Offset(2), "partition {partition}");
        }
        member.unsubscribe();
    })
    .await;
}

#[tokio::test]
async fn a_new_member_resumes_from_the_committed_offset() {
    let broker = Broker::start();
    bounded(3, async {
        let topic = unique_topic("resume");
        let group = unique_topic("resume-id");
        create_topic(&broker, &topic, 1, &[]).await;
        let producer = broker.producer(&[]);
        produce_values(&producer, &topic, 0, &["1", "2", "3"]).await;
        {
            let member = group_member(&broker, &group);
            member.subscribe(&[&topic]).expect("subscribe");
            assert_eq!(payloads(&poll_messages(&member, 3)), ["1", "2", "3"]);
            member.commit_consumer_state(CommitMode::Sync).expect("commit");
        }
        produce_values(&producer, &topic, 0, &["4"]).await;
        let member = group_member(&broker, &group);
        member.subscribe(&[&topic]).expect("subscribe");
        assert_eq!(payloads(&poll_messages(&member, 1)), ["4"]);
    })
    .await;
}

#[tokio::test]
async fn kip_848_members_share_the_partitions_and_commit() {
    let broker = Broker::start();
    bounded(3, async {
        let topic = unique_topic("kip848");
        let group = unique_topic("kip848-id");
        create_topic(&broker, &topic, 4, &[]).await;
        let producer = broker.producer(&[]);
        for partition in 0..4 {
            produce_values(&producer, &topic, partition, &[&format!("p{partition}")]).await;
        }
        let member = next_generation_member(&broker, &group);
        member.subscribe(&[&topic]).expect("subscribe");
        let mut values = payloads(&poll_messages(&member, 4));
        values.sort();
        assert_eq!(values, ["p0", "p1", "p2", "p3"]);
        member.commit_consumer_state(CommitMode::Sync).expect("commit");
        drop(member);

        produce_values(&producer, &topic, 2, &["later"]).await;
        let member = next_generation_member(&broker, &group);
        member.subscribe(&[&topic]).expect("subscribe");
        assert_eq!(
            payloads(&poll_messages(&member, 1)),
            ["later"],
            "resumes after the committed offsets"
        );
    })
    .await;
}

/// librdkafka sends a `^`-prefixed subscription as KIP-848's
/// SubscribedTopicRegex; the coordinator matches it against the topics,
/// again at each heartbeat, so a matching topic created later is assigned
/// too, and a topic that does not match never is.
#[tokio::test]
async fn a_kip_848_member_subscribed_by_regular_expression_gets_new_matching_topics() {
    let broker = Broker::start();
    bounded(3, async {
        let prefix = unique_topic("regex");
        let group = unique_topic("regex-id");
        let producer = broker.producer(&[]);
        for (topic, value) in [
            (format!("{prefix}-a"), "a"),
            (format!("{prefix}-b"), "b"),
            (unique_topic("other"), "x"),
        ] {
            create_topic(&broker, &topic, 1, &[]).await;
            produce_values(&producer, &topic, 0, &[value]).await;
        }
        let member = next_generation_member(&broker, &group);
        member.subscribe(&[&format!("^{prefix}-.*")]).expect("subscribe");
        let mut values = payloads(&poll_messages(&member, 2));
        values.sort();
        assert_eq!(values, ["a", "b"]);

        let later = format!("{prefix}-c");
        create_topic(&broker, &later, 1, &[]).await;
        produce_values(&producer, &later, 0, &["c"]).await;
        assert_eq!(payloads(&poll_messages(&member, 1)), ["c"], "the topic created later");
        let assigned = member.assignment().expect("assignment");
        let mut topics: Vec<String> = assigned.elements().iter().map(|e| e.topic().to_string()).collect();
        topics.sort();
        assert_eq!(topics, [format!("{prefix}-a"), format!("{prefix}-b"), later]);
    })
    .await;
}

#[test]
fn describe_names_the_consumer_of_each_partition_in_classic_and_kip_848_groups() {
    let broker = Broker::start_with(QUICK_JOINS);
    for protocol in ["classic", "consumer"] {
        let topic = unique_topic("describe-owner");
        let group = unique_topic("describe-owner-id");
        stdout_of(&broker.gregor(&["topic", "create", &topic, "--partitions", "2"], ""));
        let member = broker.consumer(&[
            ("group.id", &group),
            ("group.protocol", protocol),
            ("client.id", "owner-test"),
        ]);
        member.subscribe(&[&topic]).expect("subscribe");
        wait_for_assignment(&member);
        // Partition 1 has no committed offset: it is listed for its owner all the same.
        commit_offsets(&member, &topic, &[(0, 0)]);

        let described = stdout_of(&broker.gregor(&["group", "describe", &group], ""));
        let lines: Vec<&str> = described.lines().collect();
        assert!(lines[0].ends_with("Members: 1"), "{protocol}: {described}");
        assert_eq!(
            lines[1],
            "TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMER-ID\tHOST\tCLIENT-ID"
        );
        for row in &lines[2..] {
            let cells: Vec<&str> = row.split('\t').collect();
            assert_eq!(cells.len(), 8, "{protocol}: {described}");
            assert_ne!(cells[5], "-", "{protocol}: a member id in {described}");
            assert_eq!(cells[7], "owner-test", "{protocol}: {described}");
        }
        assert_eq!(lines.len(), 4, "{protocol}: both partitions: {described}");
        let uncommitted: Vec<&str> = lines[3].split('\t').collect();
        assert_eq!(
            (uncommitted[1], uncommitted[2], uncommitted[4]),
            ("1", "-", "-"),
            "{protocol}: no offset, no lag: {described}"
        );
        assert!(
            lines[2].starts_with(&format!("{topic}\t0\t0\t")),
            "{protocol}: {described}"
        );
    }
}

/// The records of `partition` among `messages`, as offsets.
fn offsets_of(messages: &[OwnedMessage], partition: i32) -> Vec<i64> {
    messages
        .iter()
        .filter(|message| message.partition() == partition)
        .map(|message| message.offset())
        .collect()
}

/// Polls until the consumer's group gave it an assignment (bounded).
fn wait_for_assignment(consumer: &BaseConsumer) {
    let deadline = Instant::now() + TIMEOUT;
    while consumer.assignment().expect("assignment").count() == 0 {
        assert!(Instant::now() < deadline, "no assignment within {TIMEOUT:?}");
        if let Some(Err(error)) = consumer.poll(Duration::from_millis(100)) {
            panic!("consumer error while joining: {error}");
        }
    }
}

/// Commits `offset` for each partition of `topic` outside any generation.
fn commit_offsets(consumer: &BaseConsumer, topic: &str, offsets: &[(i32, i64)]) {
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
            .expect("offset");
    }
    consumer.commit(&list, CommitMode::Sync).expect("commit");
}

fn committed_offset(broker: &Broker, group: &str, topic: &str, partition: i32) -> Offset {
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(topic, partition);
    let committed = broker
        .consumer(&[("group.id", group)])
        .committed_offsets(wanted, TIMEOUT)
        .expect("OffsetFetch");
    committed
        .find_partition(topic, partition)
        .expect("partition answered")
        .offset()
}

#[tokio::test]
async fn a_member_resumes_exactly_where_the_group_committed() {
    let broker = Broker::start_with(QUICK_JOINS);
    bounded(3, async {
        let topic = unique_topic("half");
        let group = unique_topic("half-id");
        create_topic(&broker, &topic, 2, &[]).await;
        let producer = broker.producer(&[]);
        let values: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        for partition in 0..2 {
            produce_values(&producer, &topic, partition, &values).await;
        }
        {
            // Reads everything but commits only the first half of each partition, then closes.
            let member = group_member(&broker, &group);
            member.subscribe(&[&topic]).expect("subscribe");
            poll_messages(&member, 20);
            commit_offsets(&member, &topic, &[(0, 5), (1, 5)]);
        }

        // "latest" would skip every record: the new member starts at the committed offsets only.
        let member = broker.consumer(&[
            ("group.id", &group),
            ("auto.offset.reset", "latest"),
            ("session.timeout.ms", "10000"),
        ]);
        member.subscribe(&[&topic]).expect("subscribe");
        let messages = poll_messages(&member, 10);
        for partition in 0..2 {
            assert_eq!(
                offsets_of(&messages, partition),
                [5, 6, 7, 8, 9],
                "partition {partition}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn auto_offset_reset_decides_where_a_group_without_offsets_starts() {
    let broker = Broker::start_with(QUICK_JOINS);
    bounded(3, async {
        let topic = unique_topic("reset-policy");
        create_topic(&broker, &topic, 1, &[]).await;
        let producer = broker.producer(&[]);
        produce_values(&producer, &topic, 0, &["old-0", "old-1", "old-2"]).await;

        let earliest = group_member(&broker, &unique_topic("earliest-id"));
        earliest.subscribe(&[&topic]).expect("subscribe");
        assert_eq!(payloads(&poll_messages(&earliest, 3)), ["old-0", "old-1", "old-2"]);

        let latest = broker.consumer(&[
            ("group.id", &unique_topic("latest-id")),
            ("auto.offset.reset", "latest"),
            ("session.timeout.ms", "10000"),
        ]);
        latest.subscribe(&[&topic]).expect("subscribe");
        wait_for_assignment(&latest);
        // The member looks up the log end offset some time after its
        // assignment; records keep coming until it has read one, and the
        // first it reads must be a new one.
        let deadline = Instant::now() + TIMEOUT;
        let first = loop {
            assert!(Instant::now() < deadline, "no new record read within {TIMEOUT:?}");
            produce_values(&producer, &topic, 0, &["new"]).await;
            match latest.poll(Duration::from_millis(300)) {
                Some(Ok(message)) => break message.detach(),
                Some(Err(error)) => panic!("consumer error: {error}"),
                None => {}
            }
        };
        assert_eq!(first.payload(), Some(&b"new"[..]));
        assert!(first.offset() >= 3, "read offset {}", first.offset());
    })
    .await;
}

#[tokio::test]
async fn committed_offsets_and_deletions_survive_a_broker_restart() {
    let log_dir = tempfile::tempdir().expect("log directory");
    let mut broker = Broker::start_in(log_dir.path(), QUICK_JOINS);
    let topic = unique_topic("restart");
    let kept = unique_topic("restart-kept");
    let deleted = unique_topic("restart-deleted");
    bounded(3, async {
        create_topic(&broker, &topic, 1, &[]).await;
        let producer = broker.producer(&[]);
        produce_values(
            &producer,
            &topic,
            0,
            &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
        )
        .await;
        for group in [&kept, &deleted] {
            let member = group_member(&broker, group);
            member.subscribe(&[&topic]).expect("subscribe");
            poll_messages(&member, 10);
            commit_offsets(&member, &topic, &[(0, 7)]);
        }
    })
    .await;
    stdout_of(&broker.gregor(&["group", "delete", &deleted], ""));
    assert!(broker.terminate().success(), "clean shutdown:\n{}", broker.stderr());

    let broker = Broker::start_in(log_dir.path(), QUICK_JOINS);
    assert_eq!(committed_offset(&broker, &kept, &topic, 0), Offset::Offset(7));
    let described = stdout_of(&broker.gregor(&["group", "describe", &kept], ""));
    assert!(
        described.contains(&format!("\n{topic}\t0\t7\t10\t3\t-\t-\t-\n")),
        "{described}"
    );
    assert_eq!(
        committed_offset(&broker, &deleted, &topic, 0),
        Offset::Invalid,
        "a deleted group stays deleted"
    );
    let listed = stdout_of(&broker.gregor(&["group", "list"], ""));
    assert!(!listed.lines().any(|line| line == deleted), "{listed}");
    bounded(1, async {
        let member = group_member(&broker, &kept);
        member.subscribe(&[&topic]).expect("subscribe");
        assert_eq!(payloads(&poll_messages(&member, 3)), ["7", "8", "9"]);
    })
    .await;
}

/// The committed offset `gregor group describe` shows for partition 0 of `topic`.
fn described_offset(broker: &Broker, group: &str, topic: &str) -> String {
    let described = stdout_of(&broker.gregor(&["group", "describe", group], ""));
    let row = described
        .lines()
        .find(|line| line.starts_with(&format!("{topic}\t0\t")))
        .unwrap_or_else(|| panic!("no row for {topic}: {described}"));
    row.split('\t').nth(2).expect("CURRENT-OFFSET").to_string()
}

/// `gregor group reset-offsets GROUP --topic TOPIC ARGS...`, its stdout.
fn reset(broker: &Broker, group: &str, topic: &str, args: &[&str]) -> String {
    let mut all = vec!["group", "reset-offsets", group, "--topic", topic];
    all.extend(args);
    stdout_of(&broker.gregor(&all, ""))
}

fn reset_table(topic: &str, rows: &[(i32, &str, i64)]) -> String {
    let mut table = "TOPIC\tPARTITION\tCURRENT-OFFSET\tNEW-OFFSET\n".to_string();
    for (partition, current, new) in rows {
        table.push_str(&format!("{topic}\t{partition}\t{current}\t{new}\n"));
    }
    table
}

#[tokio::test]
async fn reset_offsets_shows_by_default_and_commits_with_execute() {
    let broker = Broker::start_with(QUICK_JOINS);
    let topic = unique_topic("cli-reset");
    let group = unique_topic("cli-reset-id");
    bounded(1, async {
        create_topic(&broker, &topic, 2, &[]).await;
        let producer = broker.producer(&[]);
        produce_values(&producer, &topic, 0, &["a", "b", "c", "d", "e"]).await;
        produce_values(&producer, &topic, 1, &["f"]).await;
    })
    .await;
    commit_offsets(&broker.consumer(&[("group.id", &group)]), &topic, &[(0, 3)]);

    // A dry run, the default, shows the new offsets and changes nothing.
    let output = broker.gregor(
        &["group", "reset-offsets", &group, "--topic", &topic, "--to-earliest"],
        "",
    );
    assert_eq!(stdout_of(&output), reset_table(&topic, &[(0, "3", 0), (1, "-", 0)]));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Dry run"));
    let dry_run = reset(
        &broker,
        &group,
        &topic,
        &["--partition", "0", "--to-offset", "1", "--dry-run"],
    );
    assert_eq!(dry_run, reset_table(&topic, &[(0, "3", 1)]));
    assert_eq!(described_offset(&broker, &group, &topic), "3");

    let executed = reset(
        &broker,
        &group,
        &topic,
        &["--partition", "0", "--to-offset", "1", "--execute"],
    );
    assert_eq!(executed, reset_table(&topic, &[(0, "3", 1)]));
    assert_eq!(described_offset(&broker, &group, &topic), "1");

    reset(
        &broker,
        &group,
        &topic,
        &["--partition", "0", "--shift-by", "2", "--execute"],
    );
    assert_eq!(described_offset(&broker, &group, &topic), "3");
    reset(
        &broker,
        &group,
        &topic,
        &["--partition", "0", "--shift-by", "-9", "--execute"],
    );
    assert_eq!(described_offset(&broker, &group, &topic), "0", "kept within the log");
    let latest = reset(&broker, &group, &topic, &["--to-latest", "--execute"]);
    assert_eq!(latest, reset_table(&topic, &[(0, "0", 5), (1, "-", 1)]));
    assert_eq!(described_offset(&broker, &group, &topic), "5");
    let beyond = reset(&broker, &group, &topic, &["--partition", "1", "--to-offset", "99"]);
    assert_eq!(beyond, reset_table(&topic, &[(1, "1", 1)]), "kept within the log");

    // A member of the group starts where the reset put it.
    reset(
        &broker,
        &group,
        &topic,
        &["--partition", "0", "--to-offset", "2", "--execute"],
    );
    let resumed = broker.gregor(
        &[
            "consume",
            "--topic",
            &topic,
            "--group",
            &group,
            "--max-messages",
            "3",
            "--timeout-ms",
            "20000",
        ],
        "",
    );
    assert_eq!(stdout_of(&resumed), "c\nd\ne\n");

    let no_partition = broker.gregor(
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--partition",
            "7",
            "--to-latest",
        ],
        "",
    );
    assert_eq!(
        stderr_of_failure(&no_partition),
        format!("error: topic '{topic}' has no such partition\n")
    );
    let fresh_group = unique_topic("cli-reset-fresh");
    let nothing_to_shift = broker.gregor(
        &[
            "group",
            "reset-offsets",
            &fresh_group,
            "--topic",
            &topic,
            "--shift-by",
            "1",
        ],
        "",
    );
    assert_eq!(
        stderr_of_failure(&nothing_to_shift),
        format!("error: partition {topic}-0 has no committed offset to shift\n")
    );
}

#[test]
fn reset_offsets_to_a_time() {
    let broker = Broker::start_with(QUICK_JOINS);
    let topic = unique_topic("cli-reset-time");
    let group = unique_topic("cli-reset-time-id");
    stdout_of(&broker.gregor(&["topic", "create", &topic, "--partitions", "1"], ""));
    // Two producer processes: the second batch has later timestamps than the first.
    stdout_of(&broker.gregor(&["produce", "--topic", &topic], "a\nb\nc\n"));
    stdout_of(&broker.gregor(&["produce", "--topic", &topic], "d\ne\n"));
    let printed = stdout_of(&broker.gregor(
        &[
            "consume",
            "--topic",
            &topic,
            "--from-beginning",
            "--print-timestamp",
            "--print-offset",
            "--max-messages",
            "5",
        ],
        "",
    ));
    let timestamps: Vec<i64> = printed
        .lines()
        .map(|line| {
            let field = line.split('\t').next().expect("timestamp field");
            field
                .strip_prefix("CreateTime:")
                .expect("CreateTime")
                .parse()
                .expect("ms")
        })
        .collect();
    assert_eq!(timestamps.len(), 5, "{printed}");
    let time_of_d = timestamps[3];
    // The first record at or after the time, whatever records share its millisecond.
    let expected = timestamps.iter().position(|&ms| ms >= time_of_d).expect("d itself") as i64;
    assert!(expected <= 3);

    let to_d = reset(
        &broker,
        &group,
        &topic,
        &["--to-datetime", &time_of_d.to_string(), "--execute"],
    );
    assert_eq!(to_d, reset_table(&topic, &[(0, "-", expected)]));
    let long_ago = reset(
        &broker,
        &group,
        &topic,
        &["--to-datetime", "2000-01-01T00:00:00Z", "--execute"],
    );
    assert_eq!(long_ago, reset_table(&topic, &[(0, &expected.to_string(), 0)]));
    // No record that late: the log end offset, as in Kafka.
    let far_future = reset(
        &broker,
        &group,
        &topic,
        &["--to-datetime", "2999-01-01T00:00:00.5+02:00"],
    );
    assert_eq!(far_future, reset_table(&topic, &[(0, "0", 5)]));

    let malformed = broker.gregor(
        &[
            "group",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-datetime",
            "yesterday",
        ],
        "",
    );
    assert!(
        stderr_of_failure(&malformed).contains("expected epoch milliseconds or an RFC 3339 time"),
        "{}",
        String::from_utf8_lossy(&malformed.stderr)
    );
}

#[tokio::test]
async fn delete_removes_an_inactive_group_and_refuses_an_active_one() {
    let broker = Broker::start_with(QUICK_JOINS);
    let topic = unique_topic("cli-delete");
    let group = unique_topic("cli-delete-id");
    bounded(1, async {
        create_topic(&broker, &topic, 1, &[]).await;
        produce_values(&broker.producer(&[]), &topic, 0, &["x"]).await;
    })
    .await;

    let member = group_member(&broker, &group);
    member.subscribe(&[&topic]).expect("subscribe");
    poll_messages(&member, 1);
    member.commit_consumer_state(CommitMode::Sync).expect("commit");
    let refused = broker.gregor(&["group", "delete", &group], "");
    let error = stderr_of_failure(&refused);
    assert_eq!(
        error,
        format!(
            "error: cannot delete group '{group}': it still has active members (NON_EMPTY_GROUP); \
             stop its consumers first\n"
        )
    );
    assert_eq!(described_offset(&broker, &group, &topic), "1", "nothing deleted");
    drop(member);

    let deleted = broker.gregor(&["group", "delete", "--group", &group], "");
    assert_eq!(stdout_of(&deleted), format!("Deleted group {group}.\n"));
    let listed = stdout_of(&broker.gregor(&["group", "list"], ""));
    assert!(!listed.lines().any(|line| line == group), "{listed}");
    let described = broker.gregor(&["group", "describe", &group], "");
    assert_eq!(
        stderr_of_failure(&described),
        format!("error: group '{group}' does not exist\n")
    );
    let again = broker.gregor(&["group", "delete", &group], "");
    assert_eq!(
        stderr_of_failure(&again),
        format!("error: group '{group}' does not exist\n")
    );
}

#[tokio::test]
async fn an_active_group_keeps_its_offsets() {
    let broker = Broker::start_with(QUICK_JOINS);
    let topic = unique_topic("cli-active");
    bounded(1, async {
        create_topic(&broker, &topic, 1, &[]).await;
        produce_values(&broker.producer(&[]), &topic, 0, &["x", "y"]).await;
    })
    .await;
    // A classic member and a KIP-848 member: both make their group active.
    let classic = unique_topic("cli-active-classic");
    let kip_848 = unique_topic("cli-active-848");
    let members = [
        (&classic, group_member(&broker, &classic)),
        (&kip_848, next_generation_member(&broker, &kip_848)),
    ];
    for (group, member) in members {
        member.subscribe(&[&topic]).expect("subscribe");
        poll_messages(&member, 2);
        member.commit_consumer_state(CommitMode::Sync).expect("commit");

        let refused = broker.gregor(
            &[
                "group",
                "reset-offsets",
                group,
                "--topic",
                &topic,
                "--to-earliest",
                "--execute",
            ],
            "",
        );
        let error = stderr_of_failure(&refused);
        assert!(
            error.starts_with(&format!(
                "error: cannot reset the offsets of group '{group}': it is active (state "
            )),
            "{error}"
        );
        assert!(error.contains("stop its consumers first"), "{error}");
        assert_eq!(described_offset(&broker, group, &topic), "2", "the offset did not move");
        let not_deleted = broker.gregor(&["group", "delete", group], "");
        assert!(stderr_of_failure(&not_deleted).contains("NON_EMPTY_GROUP"));
    }
}

#[tokio::test]
async fn a_kip_848_group_resumes_where_reset_offsets_put_it() {
    let broker = Broker::start_with(QUICK_JOINS);
    let topic = unique_topic("cli-reset-848");
    let group = unique_topic("cli-reset-848-id");
    bounded(2, async {
        create_topic(&broker, &topic, 1, &[]).await;
        produce_values(&broker.producer(&[]), &topic, 0, &["a", "b", "c", "d"]).await;
        let member = next_generation_member(&broker, &group);
        member.subscribe(&[&topic]).expect("subscribe");
        poll_messages(&member, 4);
        member.commit_consumer_state(CommitMode::Sync).expect("commit");
    })
    .await;

    // The member left: the group is empty and its offsets can move.
    let moved = reset(&broker, &group, &topic, &["--to-offset", "1", "--execute"]);
    assert_eq!(moved, reset_table(&topic, &[(0, "4", 1)]));
    bounded(1, async {
        let member = next_generation_member(&broker, &group);
        member.subscribe(&[&topic]).expect("subscribe");
        assert_eq!(payloads(&poll_messages(&member, 3)), ["b", "c", "d"]);
    })
    .await;
}
