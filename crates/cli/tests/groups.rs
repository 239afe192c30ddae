//! Consumer groups through librdkafka's high-level consumer against a real
//! `gregor start`: subscription, partition assignment, committed offsets.

mod common;

use common::{Broker, TIMEOUT, bounded, create_topic, payloads, poll_messages, produce_values, unique_topic};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

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
