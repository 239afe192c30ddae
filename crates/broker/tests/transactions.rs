//! Transactions over the wire: commit and abort, read_committed stopping at
//! the last stable offset, zombie fencing, KIP-890's check, offsets committed
//! inside a transaction, a restart with a transaction left open, and
//! transactional id expiration.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(StrBytes::from_string(id.to_string()))
}

async fn init(client: &mut Client, id: &str, timeout_ms: i32) -> (i64, i16) {
    let response = client
        .call(
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(txn_id(id)))
                .with_transaction_timeout_ms(timeout_ms),
            4,
        )
        .await;
    assert_eq!(response.error_code, 0);
    (response.producer_id.0, response.producer_epoch)
}

async fn add_partition(client: &mut Client, id: &str, (producer_id, epoch): (i64, i16), topic: &str) -> i16 {
    let request = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn_id(id))
        .with_v3_and_below_producer_id(ProducerId(producer_id))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(vec![
            AddPartitionsToTxnTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![0]),
        ]);
    let response = client.call(&request, 3).await;
    response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
}

async fn end(client: &mut Client, id: &str, (producer_id, epoch): (i64, i16), commit: bool) -> i16 {
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    client.call(&request, 3).await.error_code
}

async fn produce(
    client: &mut Client,
    topic: &str,
    values: &[&str],
    (producer_id, epoch): (i64, i16),
    sequence: i32,
) -> i16 {
    let response = client
        .call(
            &produce_request(topic, -1, transactional_batch(values, (producer_id, epoch, sequence))),
            9,
        )
        .await;
    response.responses[0].partition_responses[0].error_code
}

fn read_committed(topic: &str) -> FetchRequest {
    fetch_request(topic, 0, 0).with_isolation_level(1)
}

async fn latest(client: &mut Client, topic: &str, isolation_level: i8) -> i64 {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_topics(vec![
            ListOffsetsTopic::default().with_name(name(topic)).with_partitions(vec![
                ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ]),
        ]);
    client.call(&request, 8).await.topics[0].partitions[0].offset
}

#[tokio::test]
async fn commits_and_aborts_are_seen_only_by_read_committed_as_decided() {
    let broker = TestBroker::start().await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "ledger", 1).await;
    let coordinator = client
        .call(
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![StrBytes::from_static_str("tx")]),
            4,
        )
        .await;
    assert_eq!(coordinator.coordinators[0].error_code, 0);

    let producer = init(&mut client, "tx", 60_000).await;
    assert_eq!(
        produce(&mut client, "ledger", &["early"], producer, 0).await,
        48,
        "KIP-890: the partition was not added"
    );
    assert_eq!(add_partition(&mut client, "tx", producer, "ledger").await, 0);
    assert_eq!(produce(&mut client, "ledger", &["c1", "c2"], producer, 0).await, 0);
    let held = client.call(&read_committed("ledger"), 12).await;
    let partition = &held.responses[0].partitions[0];
    assert_eq!(
        (partition.high_watermark, partition.last_stable_offset),
        (2, 0),
        "the open transaction holds the LSO"
    );
    assert!(values_of(partition.records.clone()).is_empty());
    assert_eq!(latest(&mut client, "ledger", 1).await, 0);
    assert_eq!(latest(&mut client, "ledger", 0).await, 2);
    assert_eq!(end(&mut client, "tx", producer, true).await, 0);
    assert_eq!(
        end(&mut client, "tx", producer, true).await,
        0,
        "a retried commit answers as the first"
    );

    assert_eq!(add_partition(&mut client, "tx", producer, "ledger").await, 0);
    assert_eq!(produce(&mut client, "ledger", &["a1"], producer, 2).await, 0);
    assert_eq!(end(&mut client, "tx", producer, false).await, 0);

    let fetched = client.call(&read_committed("ledger"), 12).await;
    let partition = &fetched.responses[0].partitions[0];
    assert_eq!(partition.last_stable_offset, partition.high_watermark);
    let aborted = partition.aborted_transactions.clone().unwrap();
    assert_eq!(aborted.len(), 1, "read_committed learns which transaction to drop");
    assert_eq!((aborted[0].producer_id.0, aborted[0].first_offset), (producer.0, 3));
    // The consumer drops aborted records and markers itself; the data records here are c1, c2 and a1.
    assert_eq!(values_of(partition.records.clone()), ["c1", "c2", "a1"]);

    let described = client
        .call(
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id("tx"), txn_id("nope")]),
            0,
        )
        .await;
    assert_eq!(
        described.transaction_states[0].transaction_state.as_str(),
        "CompleteAbort"
    );
    assert_eq!(
        described.transaction_states[1].error_code, 105,
        "TRANSACTIONAL_ID_NOT_FOUND"
    );
    let listed = client.call(&ListTransactionsRequest::default(), 1).await;
    assert_eq!(listed.transaction_states.len(), 1);
    broker.stop().await;
}

#[tokio::test]
async fn a_new_producer_fences_the_zombie_and_aborts_its_transaction() {
    let broker = TestBroker::start().await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "fenced", 1).await;
    let zombie = init(&mut client, "same-id", 60_000).await;
    assert_eq!(add_partition(&mut client, "same-id", zombie, "fenced").await, 0);
    assert_eq!(produce(&mut client, "fenced", &["zombie"], zombie, 0).await, 0);

    let successor = init(&mut client, "same-id", 60_000).await;
    assert_eq!(successor, (zombie.0, zombie.1 + 1), "same producer id, next epoch");
    assert_eq!(end(&mut client, "same-id", zombie, true).await, 90, "PRODUCER_FENCED");
    assert_eq!(add_partition(&mut client, "same-id", zombie, "fenced").await, 90);
    let fetched = client.call(&read_committed("fenced"), 12).await;
    let partition = &fetched.responses[0].partitions[0];
    assert_eq!(
        partition.last_stable_offset, partition.high_watermark,
        "the zombie's transaction was aborted"
    );
    assert_eq!(partition.aborted_transactions.clone().unwrap().len(), 1);
    broker.stop().await;
}

#[tokio::test]
async fn offsets_committed_in_a_transaction_count_once_it_commits_and_survive_a_restart() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let broker = TestBroker::start_in(dir.clone(), &[]).await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "input", 1).await;
    let producer = init(&mut client, "etl", 60_000).await;
    let add_offsets = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id("etl"))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_group_id(GroupId(StrBytes::from_static_str("etl-group")));
    assert_eq!(client.call(&add_offsets, 3).await.error_code, 0);
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id("etl"))
        .with_group_id(GroupId(StrBytes::from_static_str("etl-group")))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_generation_id(-1)
        .with_topics(vec![
            TxnOffsetCommitRequestTopic::default()
                .with_name(name("input"))
                .with_partitions(vec![
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42),
                ]),
        ]);
    assert_eq!(client.call(&commit, 3).await.topics[0].partitions[0].error_code, 0);
    let fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("etl-group")))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(name("input"))
                .with_partition_indexes(vec![0]),
        ]));
    assert_eq!(
        client.call(&fetch, 7).await.topics[0].partitions[0].committed_offset,
        -1,
        "not before the commit"
    );
    // KIP-447: a read_committed consumer's fetch is told the offset is not stable yet.
    let stable_fetch = fetch.clone().with_require_stable(true);
    assert_eq!(
        client.call(&stable_fetch, 7).await.topics[0].partitions[0].error_code,
        88,
        "UNSTABLE_OFFSET_COMMIT while the transaction is open"
    );
    assert_eq!(end(&mut client, "etl", producer, true).await, 0);
    // EndTxn is answered once the commit is decided; the markers, and with
    // them the offsets, follow. A stable fetch waits for them as a client does.
    let deadline = Instant::now() + Duration::from_secs(10);
    let stable = loop {
        let partition = client.call(&stable_fetch, 7).await.topics[0].partitions[0].clone();
        if partition.error_code != 88 {
            break partition;
        }
        assert!(Instant::now() < deadline, "the offsets never became stable");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!((stable.error_code, stable.committed_offset), (0, 42));
    broker.stop().await;

    let broker = TestBroker::start_in(dir, &[]).await;
    let mut client = Client::connect(&broker).await;
    assert_eq!(
        client.call(&fetch, 7).await.topics[0].partitions[0].committed_offset,
        42,
        "replayed with its commit marker"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_transaction_left_open_by_a_restart_is_aborted_when_it_times_out() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let settings = [("transaction.abort.timed.out.transaction.cleanup.interval.ms", "100")];
    let broker = TestBroker::start_in(dir.clone(), &settings).await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "pending", 1).await;
    let producer = init(&mut client, "slow", 1_000).await;
    assert_eq!(add_partition(&mut client, "slow", producer, "pending").await, 0);
    assert_eq!(produce(&mut client, "pending", &["unfinished"], producer, 0).await, 0);
    broker.stop().await;

    let broker = TestBroker::start_in(dir, &settings).await;
    let mut client = Client::connect(&broker).await;
    let deadline = Instant::now() + WAIT;
    while latest(&mut client, "pending", 1).await != latest(&mut client, "pending", 0).await {
        assert!(Instant::now() < deadline, "the open transaction was never completed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let described = client
        .call(
            &DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id("slow")]),
            0,
        )
        .await;
    assert_eq!(
        described.transaction_states[0].transaction_state.as_str(),
        "CompleteAbort"
    );
    assert!(
        described.transaction_states[0].producer_epoch > producer.1,
        "the timed-out producer is fenced"
    );
    broker.stop().await;
}

#[tokio::test]
async fn an_idle_transactional_id_expires_and_starts_afresh_while_an_ongoing_one_stays() {
    let settings = [
        ("transactional.id.expiration.ms", "200"),
        ("transaction.remove.expired.transaction.cleanup.interval.ms", "20"),
    ];
    let broker = TestBroker::start_in(Arc::new(tempfile::tempdir().unwrap()), &settings).await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "kept", 1).await;
    // The ongoing transaction's last update comes first: whenever the idle
    // id is old enough to expire, so is it, had it been finished.
    let busy = init(&mut client, "busy", 60_000).await;
    assert_eq!(add_partition(&mut client, "busy", busy, "kept").await, 0);
    let idle = init(&mut client, "idle", 60_000).await;

    let describe = DescribeTransactionsRequest::default().with_transactional_ids(vec![txn_id("idle"), txn_id("busy")]);
    let deadline = Instant::now() + WAIT;
    let described = loop {
        let described = client.call(&describe, 0).await;
        if described.transaction_states[0].error_code == 105 {
            break described;
        }
        assert!(Instant::now() < deadline, "the idle transactional id never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(described.transaction_states[1].error_code, 0);
    assert_eq!(described.transaction_states[1].transaction_state.as_str(), "Ongoing");

    let renewed = init(&mut client, "idle", 60_000).await;
    assert_ne!(renewed.0, idle.0, "a new producer id");
    assert_eq!(renewed.1, 0);
    assert_eq!(
        end(&mut client, "busy", busy, true).await,
        0,
        "the ongoing transaction is intact"
    );
    broker.stop().await;
}
