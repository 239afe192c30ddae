//! The group coordinator over the wire: classic rebalances, committed
//! offsets that survive a restart, and Kafka's error codes for bad joins
//! and commits.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const NO_DELAY: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0")];

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn group(id: &str) -> GroupId {
    GroupId(text(id))
}

fn join_request(group_id: &str, member_id: &str, session_timeout_ms: i32) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(session_timeout_ms)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(text(member_id))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(Bytes::from_static(b"sub")),
        ])
}

/// Joins with KIP-394's two steps: get a member id, then join with it.
async fn join(client: &mut Client, group_id: &str) -> JoinGroupResponse {
    let first = client.call(&join_request(group_id, "", 10_000), 9).await;
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    assert!(!first.member_id.is_empty());
    client.call(&join_request(group_id, &first.member_id, 10_000), 9).await
}

fn sync_request(
    group_id: &str,
    member_id: &str,
    generation: i32,
    assignments: &[(&str, &'static [u8])],
) -> SyncGroupRequest {
    SyncGroupRequest::default()
        .with_group_id(group(group_id))
        .with_member_id(text(member_id))
        .with_generation_id(generation)
        .with_protocol_type(Some(text("consumer")))
        .with_protocol_name(Some(text("range")))
        .with_assignments(
            assignments
                .iter()
                .map(|(member, assignment)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(text(member))
                        .with_assignment(Bytes::from_static(assignment))
                })
                .collect(),
        )
}

fn heartbeat(group_id: &str, member_id: &str, generation: i32) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(group(group_id))
        .with_member_id(text(member_id))
        .with_generation_id(generation)
}

async fn describe(
    client: &mut Client,
    group_id: &str,
) -> kafka_protocol::messages::describe_groups_response::DescribedGroup {
    let response = client
        .call(&DescribeGroupsRequest::default().with_groups(vec![group(group_id)]), 5)
        .await;
    response.groups.into_iter().next().unwrap()
}

#[tokio::test]
async fn two_members_rebalance_sync_and_leave() {
    let broker = TestBroker::start_in(Arc::new(tempfile::tempdir().unwrap()), NO_DELAY).await;
    let mut first = Client::connect(&broker).await;
    let mut second = Client::connect(&broker).await;

    let joined = join(&mut first, "team").await;
    assert_eq!((joined.error_code, joined.generation_id), (0, 1));
    assert_eq!(joined.leader, joined.member_id, "the only member leads");
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    let a = joined.member_id.to_string();
    let synced = first.call(&sync_request("team", &a, 1, &[(&a, b"all")]), 5).await;
    assert_eq!((synced.error_code, &synced.assignment[..]), (0, &b"all"[..]));
    assert_eq!(first.call(&heartbeat("team", &a, 1), 4).await.error_code, 0);

    // A second member starts a rebalance; the first learns of it by heartbeat and rejoins.
    let second_join = tokio::spawn(async move {
        let response = join(&mut second, "team").await;
        (second, response)
    });
    let deadline = Instant::now() + WAIT;
    loop {
        let code = first.call(&heartbeat("team", &a, 1), 4).await.error_code;
        if code == 27 {
            break;
        }
        assert_eq!(code, 0);
        assert!(Instant::now() < deadline, "the second join never started a rebalance");
        tokio::task::yield_now().await;
    }
    let rejoined = first.call(&join_request("team", &a, 10_000), 9).await;
    let (mut second, joined_second) = second_join.await.unwrap();
    assert_eq!((rejoined.error_code, rejoined.generation_id), (0, 2));
    assert_eq!(joined_second.generation_id, 2);
    assert_eq!(rejoined.leader.as_str(), a, "the leader stays");
    assert_eq!(rejoined.members.len(), 2, "the leader sees every member");
    assert!(joined_second.members.is_empty(), "followers see none");
    let b = joined_second.member_id.to_string();

    let follower_sync = tokio::spawn(async move {
        let response = second.call(&sync_request("team", &b, 2, &[]), 5).await;
        (second, b, response)
    });
    let leader_sync = first
        .call(
            &sync_request("team", &a, 2, &[(&a, b"p0"), (&joined_second.member_id, b"p1")]),
            5,
        )
        .await;
    let (mut second, b, follower) = follower_sync.await.unwrap();
    assert_eq!(&leader_sync.assignment[..], b"p0");
    assert_eq!((follower.error_code, &follower.assignment[..]), (0, &b"p1"[..]));
    assert_eq!(describe(&mut first, "team").await.group_state.as_str(), "Stable");

    assert_eq!(
        second.call(&heartbeat("team", &b, 1), 4).await.error_code,
        22,
        "ILLEGAL_GENERATION"
    );
    let leave = LeaveGroupRequest::default()
        .with_group_id(group("team"))
        .with_members(vec![MemberIdentity::default().with_member_id(text(&b))]);
    let left = second.call(&leave, 5).await;
    assert_eq!(left.members[0].error_code, 0);
    assert_eq!(
        first.call(&heartbeat("team", &a, 2), 4).await.error_code,
        27,
        "REBALANCE_IN_PROGRESS after a leave"
    );
    let listed = first.call(&ListGroupsRequest::default(), 5).await;
    assert!(
        listed
            .groups
            .iter()
            .any(|g| g.group_id.as_str() == "team" && g.group_state.as_str() == "PreparingRebalance")
    );
    broker.stop().await;
}

#[tokio::test]
async fn bad_joins_get_kafka_error_codes() {
    let broker = TestBroker::start_in(Arc::new(tempfile::tempdir().unwrap()), NO_DELAY).await;
    let mut client = Client::connect(&broker).await;
    assert_eq!(
        client.call(&join_request("", "", 10_000), 9).await.error_code,
        24,
        "INVALID_GROUP_ID"
    );
    assert_eq!(
        client.call(&join_request("g", "", 10), 9).await.error_code,
        26,
        "INVALID_SESSION_TIMEOUT"
    );
    assert_eq!(
        client.call(&join_request("g", "made-up", 10_000), 9).await.error_code,
        25,
        "UNKNOWN_MEMBER_ID"
    );
    let no_protocols = join_request("g", "", 10_000).with_protocols(vec![]);
    assert_eq!(
        client.call(&no_protocols, 9).await.error_code,
        23,
        "INCONSISTENT_GROUP_PROTOCOL"
    );

    let joined = join(&mut client, "g").await;
    assert_eq!(joined.error_code, 0);
    let mut other = Client::connect(&broker).await;
    let first = other
        .call(&join_request("g", "", 10_000).with_protocol_type(text("connect")), 9)
        .await;
    assert_eq!(first.error_code, 23, "a different protocol type is refused");
    let sync = client
        .call(
            &sync_request("g", &joined.member_id, 1, &[]).with_protocol_name(Some(text("roundrobin"))),
            5,
        )
        .await;
    assert_eq!(sync.error_code, 23, "a different protocol name is refused");
    broker.stop().await;
}

fn commit_request(group_id: &str, topic: &str, offsets: &[(i32, i64)]) -> OffsetCommitRequest {
    let partitions = offsets
        .iter()
        .map(|(p, o)| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_metadata(Some(text("meta")))
        })
        .collect();
    OffsetCommitRequest::default()
        .with_group_id(group(group_id))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(name(topic))
                .with_partitions(partitions),
        ])
}

async fn fetch_offsets(client: &mut Client, group_id: &str, topic: &str) -> Vec<(i32, i64)> {
    let request = OffsetFetchRequest::default()
        .with_group_id(group(group_id))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(name(topic))
                .with_partition_indexes(vec![0, 1, 2]),
        ]));
    let response = client.call(&request, 7).await;
    response.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect()
}

#[tokio::test]
async fn committed_offsets_survive_a_restart_and_group_deletion_removes_them() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let broker = TestBroker::start_in(dir.clone(), NO_DELAY).await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "orders", 3).await;
    let response = client
        .call(&commit_request("billing", "orders", &[(0, 10), (1, 20)]), 9)
        .await;
    assert!(response.topics[0].partitions.iter().all(|p| p.error_code == 0));
    assert_eq!(
        fetch_offsets(&mut client, "billing", "orders").await,
        [(0, 10), (1, 20), (2, -1)]
    );

    let big = commit_request("billing", "orders", &[(0, 11)]);
    let mut big = big;
    big.topics[0].partitions[0].committed_metadata = Some(StrBytes::from_string("x".repeat(5000)));
    assert_eq!(
        client.call(&big, 9).await.topics[0].partitions[0].error_code,
        12,
        "OFFSET_METADATA_TOO_LARGE"
    );
    assert_eq!(
        client
            .call(&commit_request("billing", "nope", &[(0, 1)]), 9)
            .await
            .topics[0]
            .partitions[0]
            .error_code,
        3
    );
    broker.stop().await;

    let broker = TestBroker::start_in(dir, NO_DELAY).await;
    let mut client = Client::connect(&broker).await;
    assert_eq!(
        fetch_offsets(&mut client, "billing", "orders").await,
        [(0, 10), (1, 20), (2, -1)],
        "offsets survive a restart"
    );
    // v8+ fetches for several groups at once.
    let multi = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(group("billing"))
            .with_topics(Some(vec![
                OffsetFetchRequestTopics::default()
                    .with_name(name("orders"))
                    .with_partition_indexes(vec![1]),
            ])),
        OffsetFetchRequestGroup::default()
            .with_group_id(group("unknown"))
            .with_topics(None),
    ]);
    let response = client.call(&multi, 9).await;
    assert_eq!(response.groups[0].topics[0].partitions[0].committed_offset, 20);
    assert!(response.groups[1].topics.is_empty());

    let deleted = client
        .call(
            &DeleteGroupsRequest::default().with_groups_names(vec![group("billing"), group("unknown")]),
            2,
        )
        .await;
    assert_eq!(
        deleted.results.iter().map(|r| r.error_code).collect::<Vec<_>>(),
        [0, 69]
    );
    assert_eq!(
        fetch_offsets(&mut client, "billing", "orders").await,
        [(0, -1), (1, -1), (2, -1)]
    );
    broker.stop().await;
}

#[tokio::test]
async fn members_that_stop_heartbeating_are_removed() {
    let settings = [
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.min.session.timeout.ms", "100"),
    ];
    let broker = TestBroker::start_in(Arc::new(tempfile::tempdir().unwrap()), &settings).await;
    let mut client = Client::connect(&broker).await;
    let first = client.call(&join_request("quiet", "", 200), 9).await;
    let joined = client.call(&join_request("quiet", &first.member_id, 200), 9).await;
    assert_eq!(joined.error_code, 0);
    create_topic(&mut client, "x", 1).await;
    let stranger = commit_request("quiet", "x", &[(0, 5)])
        .with_generation_id_or_member_epoch(1)
        .with_member_id(text("someone-else"));
    assert_eq!(
        client.call(&stranger, 9).await.topics[0].partitions[0].error_code,
        25,
        "UNKNOWN_MEMBER_ID"
    );
    let outsider = commit_request("quiet", "x", &[(0, 5)]);
    assert_eq!(
        client.call(&outsider, 9).await.topics[0].partitions[0].error_code,
        25,
        "no simple commits while members are active"
    );
    let stale = commit_request("quiet", "x", &[(0, 5)])
        .with_generation_id_or_member_epoch(7)
        .with_member_id(joined.member_id.clone());
    assert_eq!(
        client.call(&stale, 9).await.topics[0].partitions[0].error_code,
        22,
        "ILLEGAL_GENERATION"
    );
    let deadline = Instant::now() + WAIT;
    while describe(&mut client, "quiet").await.group_state.as_str() != "Empty" {
        assert!(Instant::now() < deadline, "the silent member was never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deleted = client
        .call(
            &DeleteGroupsRequest::default().with_groups_names(vec![group("quiet")]),
            2,
        )
        .await;
    assert_eq!(deleted.results[0].error_code, 0, "an empty group can be deleted");
    broker.stop().await;
}

#[tokio::test]
async fn consumer_protocol_members_share_partitions_without_a_barrier() {
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    let broker = TestBroker::start().await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "streams", 4).await;
    let join = |member: &str| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group("modern"))
            .with_member_id(text(member))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![name("streams")]))
            .with_topic_partitions(Some(vec![]))
    };
    let first = client.call(&join("member-a"), 1).await;
    assert_eq!(first.error_code, 0, "{:?}", first.error_message);
    let owned = first.assignment.clone().unwrap().topic_partitions;
    assert_eq!(owned[0].partitions, [0, 1, 2, 3], "a lone member gets every partition");
    let topic_id = owned[0].topic_id;

    let second = client.call(&join("member-b"), 1).await;
    assert!(
        second.assignment.unwrap().topic_partitions.is_empty(),
        "nothing is handed over before it is released"
    );
    let told = client
        .call(
            &ConsumerGroupHeartbeatRequest::default()
                .with_group_id(group("modern"))
                .with_member_id(text("member-a"))
                .with_member_epoch(first.member_epoch),
            1,
        )
        .await;
    let keep = told.assignment.unwrap().topic_partitions[0].partitions.clone();
    assert_eq!(keep.len(), 2, "the first member is asked to give up half");

    let released = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group("modern"))
        .with_member_id(text("member-a"))
        .with_member_epoch(first.member_epoch)
        .with_topic_partitions(Some(vec![
            TopicPartitions::default()
                .with_topic_id(topic_id)
                .with_partitions(keep.clone()),
        ]));
    let after = client.call(&released, 1).await;
    assert!(
        after.member_epoch > first.member_epoch,
        "the epoch moves once the revocation is done"
    );
    let b_again = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(group("modern"))
        .with_member_id(text("member-b"))
        .with_member_epoch(second.member_epoch);
    let got = client.call(&b_again, 1).await.assignment.unwrap().topic_partitions[0]
        .partitions
        .clone();
    let mut all: Vec<i32> = keep.into_iter().chain(got).collect();
    all.sort();
    assert_eq!(all, [0, 1, 2, 3]);

    let described = client
        .call(
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![group("modern")]),
            1,
        )
        .await;
    assert_eq!(
        (
            described.groups[0].group_state.as_str(),
            described.groups[0].members.len()
        ),
        ("Stable", 2)
    );
    let listed = client
        .call(
            &ListGroupsRequest::default().with_types_filter(vec![text("consumer")]),
            5,
        )
        .await;
    assert_eq!(listed.groups.len(), 1);
    let stale = commit_request("modern", "streams", &[(0, 1)])
        .with_member_id(text("member-a"))
        .with_generation_id_or_member_epoch(first.member_epoch);
    assert_eq!(
        client.call(&stale, 9).await.topics[0].partitions[0].error_code,
        113,
        "STALE_MEMBER_EPOCH"
    );
    let classic = client.call(&join_request("modern", "", 10_000), 9).await;
    assert_eq!(
        classic.error_code, 23,
        "a classic join cannot enter a consumer-protocol group"
    );
    broker.stop().await;
}

async fn describe_consumer_group(
    client: &mut Client,
    group_id: &str,
) -> kafka_protocol::messages::consumer_group_describe_response::DescribedGroup {
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![group(group_id)]);
    client.call(&request, 0).await.groups.into_iter().next().unwrap()
}

#[tokio::test]
async fn consumer_protocol_groups_survive_a_restart_mid_rebalance() {
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let broker = TestBroker::start_in(dir.clone(), &[]).await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "orders", 4).await;
    let beat = |member: &str, epoch: i32| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(group("lasting"))
            .with_member_id(text(member))
            .with_member_epoch(epoch)
    };
    let join = |member: &str| {
        beat(member, 0)
            .with_rebalance_timeout_ms(60_000)
            .with_subscribed_topic_names(Some(vec![name("orders")]))
            .with_topic_partitions(Some(vec![]))
    };
    let a = client.call(&join("member-a"), 1).await;
    assert_eq!(a.error_code, 0, "{:?}", a.error_message);
    let topic_id = a.assignment.unwrap().topic_partitions[0].topic_id;
    let b = client.call(&join("member-b"), 1).await;
    // a is asked to give up half and has not yet: the group is mid-rebalance.
    let told = client.call(&beat("member-a", a.member_epoch), 1).await;
    let keep = told.assignment.unwrap().topic_partitions[0].partitions.clone();
    let before = describe_consumer_group(&mut client, "lasting").await;
    assert_eq!(before.group_state.as_str(), "Reconciling");
    assert_eq!(before.members.len(), 2);
    broker.stop().await;

    let broker = TestBroker::start_in(dir.clone(), &[]).await;
    let mut client = Client::connect(&broker).await;
    let after = describe_consumer_group(&mut client, "lasting").await;
    assert_eq!(
        after, before,
        "epochs, members, assignments and targets as before the restart"
    );

    // The members carry on with the epochs they had: no rejoin.
    let owned = |partitions: Vec<i32>| {
        Some(vec![
            TopicPartitions::default()
                .with_topic_id(topic_id)
                .with_partitions(partitions),
        ])
    };
    let released = client
        .call(
            &beat("member-a", a.member_epoch).with_topic_partitions(owned(keep.clone())),
            1,
        )
        .await;
    assert_eq!(released.error_code, 0, "{:?}", released.error_message);
    assert!(released.member_epoch > a.member_epoch, "the revocation completes");
    let received = client
        .call(
            &beat("member-b", b.member_epoch).with_topic_partitions(owned(vec![])),
            1,
        )
        .await;
    assert_eq!(received.error_code, 0, "{:?}", received.error_message);
    let got = received.assignment.unwrap().topic_partitions[0].partitions.clone();
    let mut all: Vec<i32> = keep.into_iter().chain(got).collect();
    all.sort();
    assert_eq!(all, [0, 1, 2, 3], "b receives what a released");
    let unknown = client.call(&beat("member-c", 3), 1).await;
    assert_eq!(unknown.error_code, 25, "UNKNOWN_MEMBER_ID for a member never seen");
    let stable = describe_consumer_group(&mut client, "lasting").await;
    assert_eq!(stable.group_state.as_str(), "Stable");

    // Left and deleted, the group stays gone after another restart.
    for (member, epoch) in [("member-a", released.member_epoch), ("member-b", received.member_epoch)] {
        let left = client.call(&beat(member, epoch).with_member_epoch(-1), 1).await;
        assert_eq!(left.error_code, 0);
    }
    let deleted = client
        .call(
            &DeleteGroupsRequest::default().with_groups_names(vec![group("lasting")]),
            2,
        )
        .await;
    assert_eq!(deleted.results[0].error_code, 0);
    broker.stop().await;
    let broker = TestBroker::start_in(dir, &[]).await;
    let mut client = Client::connect(&broker).await;
    assert_eq!(
        describe_consumer_group(&mut client, "lasting").await.error_code,
        69,
        "GROUP_ID_NOT_FOUND"
    );
    broker.stop().await;
}
