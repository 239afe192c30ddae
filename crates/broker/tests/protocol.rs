//! The broker on an ephemeral port, driven with raw protocol requests: what
//! real clients rarely exercise (KIP-511 fallback, bad batches, sessions,
//! long polls woken by appends, garbage on the socket).

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn api_versions_falls_back_to_v0_for_unknown_versions() {
    let broker = TestBroker::start().await;
    let mut client = Client::connect(&broker).await;
    let response = client.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(response.error_code, 0);
    let produce = response
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .unwrap();
    assert_eq!(produce.min_version, 3, "KIP-896 floor");

    // KIP-511: a version the broker does not know gets a v0 answer with UNSUPPORTED_VERSION.
    client.send(&ApiVersionsRequest::default(), 3).await;
    let mut raw = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(18)
        .with_request_api_version(99)
        .with_correlation_id(7)
        .encode(&mut raw, 2)
        .unwrap();
    client.receive_raw().await.unwrap();
    client.send_raw(&raw).await;
    let mut frame = client.receive_raw().await.unwrap();
    assert_eq!(ResponseHeader::decode(&mut frame, 0).unwrap().correlation_id, 7);
    let fallback = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
    assert_eq!(fallback.error_code, 35);
    assert!(fallback.api_keys.iter().any(|k| k.api_key == ApiKey::Fetch as i16));
    broker.stop().await;
}

#[tokio::test]
async fn produce_then_fetch_and_list_offsets() {
    let broker = TestBroker::start().await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "events", 1).await;
    for (acks, values) in [(-1, ["a", "b", "c"]), (1, ["d", "e", "f"])] {
        let response = client.call(&produce_request("events", acks, batch(&values)), 9).await;
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, 0, "{:?}", partition.error_message);
    }
    let response = client.call(&fetch_request("events", 0, 0), 12).await;
    let partition = response.responses[0].partitions[0].clone();
    assert_eq!(partition.error_code, 0);
    assert_eq!(
        partition.high_watermark, 6,
        "high watermark counts records, not batches"
    );
    assert_eq!(values_of(partition.records), ["a", "b", "c", "d", "e", "f"]);

    let list = |timestamp| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name("events"))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(timestamp),
                    ]),
            ])
    };
    for (timestamp, expected) in [(-1, 6), (-2, 0), (1_700_000_000_001, 1), (-3, 2)] {
        let response = client.call(&list(timestamp), 8).await;
        let partition = &response.topics[0].partitions[0];
        assert_eq!(
            (partition.error_code, partition.offset),
            (0, expected),
            "ListOffsets {timestamp}"
        );
    }

    let response = client.call(&fetch_request("events", 7, 0), 12).await;
    assert_eq!(response.responses[0].partitions[0].error_code, 1, "OFFSET_OUT_OF_RANGE");
    broker.stop().await;
}

#[tokio::test]
async fn bad_produce_requests_get_kafka_error_codes() {
    let broker = TestBroker::start().await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "strict", 1).await;
    let mut corrupt = batch(&["x", "y"]).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    let cases = [
        (produce_request("strict", 1, Bytes::from(corrupt)), 2),
        (produce_request("strict", 5, batch(&["x"])), 21),
        (produce_request("missing", 1, batch(&["x"])), 3),
    ];
    for (request, expected) in cases {
        let response = client.call(&request, 9).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, expected);
    }
    let response = client.call(&fetch_request("strict", 0, 0), 12).await;
    assert_eq!(
        response.responses[0].partitions[0].high_watermark, 0,
        "refused batches leave the log unchanged"
    );
    broker.stop().await;
}

#[tokio::test]
async fn long_poll_is_woken_by_an_append() {
    let broker = TestBroker::start().await;
    let mut consumer = Client::connect(&broker).await;
    let mut producer = Client::connect(&broker).await;
    create_topic(&mut producer, "waits", 1).await;
    let started = Instant::now();
    consumer.send(&fetch_request("waits", 0, 30_000), 12).await;
    let response = producer.call(&produce_request("waits", 1, batch(&["wake"])), 9).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    let mut frame = consumer
        .receive_raw()
        .await
        .expect("the fetch answers once data arrives");
    ResponseHeader::decode(&mut frame, 1).unwrap();
    let fetched = FetchResponse::decode(&mut frame, 12).unwrap();
    assert_eq!(values_of(fetched.responses[0].partitions[0].records.clone()), ["wake"]);
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "woken by the append, not the 30 s timeout"
    );
    broker.stop().await;
}

#[tokio::test]
async fn incremental_fetch_sessions_send_only_changes() {
    let broker = TestBroker::start().await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "session", 1).await;
    client.call(&produce_request("session", 1, batch(&["one"])), 9).await;

    let full = fetch_request("session", 0, 0).with_session_id(0).with_session_epoch(0);
    let response = client.call(&full, 12).await;
    assert_ne!(response.session_id, 0, "a new session");
    assert_eq!(values_of(response.responses[0].partitions[0].records.clone()), ["one"]);

    // The client moves its position; nothing new lies beyond it, so the
    // incremental answer names no partition.
    let incremental = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_id(response.session_id);
    let moved = fetch_request("session", 1, 0)
        .with_session_id(response.session_id)
        .with_session_epoch(1);
    let quiet = client.call(&moved, 12).await;
    assert_eq!(quiet.error_code, 0);
    assert!(quiet.responses.is_empty(), "{:?}", quiet.responses);

    // New data shows up for a partition the request did not even mention.
    client.call(&produce_request("session", 1, batch(&["two"])), 9).await;
    let news = client.call(&incremental.clone().with_session_epoch(2), 12).await;
    assert_eq!(values_of(news.responses[0].partitions[0].records.clone()), ["two"]);

    let stale = client.call(&incremental.clone().with_session_epoch(2), 12).await;
    assert_eq!(stale.error_code, 71, "INVALID_FETCH_SESSION_EPOCH");
    let unknown = client
        .call(&incremental.clone().with_session_id(999_999).with_session_epoch(1), 12)
        .await;
    assert_eq!(unknown.error_code, 70, "FETCH_SESSION_ID_NOT_FOUND");
    broker.stop().await;
}

#[tokio::test]
async fn garbage_closes_only_that_connection() {
    let broker = TestBroker::start().await;
    let mut healthy = Client::connect(&broker).await;
    create_topic(&mut healthy, "survivor", 1).await;
    let frames: [&[u8]; 4] = [
        &[0x7f, 0xff, 0xff, 0xff],                                       // a 2 GiB length prefix
        &[0, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef],                           // too short for a header
        &[0, 0, 0, 10, 0x7f, 0x00, 0, 1, 0, 0, 0, 1, 0, 0],              // unknown api key
        &[0, 0, 0, 12, 0, 3, 0, 12, 0, 0, 0, 1, 0xff, 0xff, 0x05, 0x01], // Metadata v12 with a bad body
    ];
    for frame in frames {
        let mut stream = TcpStream::connect(broker.address).await.unwrap();
        stream.write_all(frame).await.unwrap();
        let mut buffer = [0u8; 64];
        let read = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("closed in time");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "the broker closes a connection that sends garbage"
        );
    }
    // A client that sends half a request and stalls holds up nobody else.
    let mut stalled = TcpStream::connect(broker.address).await.unwrap();
    stalled.write_all(&[0, 0, 0, 100, 0, 3, 0]).await.unwrap();
    let response = healthy
        .call(&produce_request("survivor", 1, batch(&["still here"])), 9)
        .await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    drop(stalled);
    broker.stop().await;
}

/// Every version of the hot APIs is answered and decodes: a field set outside
/// the versions that carry it would fail to encode and close the connection.
#[tokio::test]
async fn every_supported_version_is_answered() {
    let broker = TestBroker::start().await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "versions", 1).await;
    let metadata = client.call(&MetadataRequest::default().with_topics(None), 12).await;
    let topic_id = metadata
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "versions"))
        .unwrap()
        .topic_id;

    for version in 0..=13 {
        let topic = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(name("versions")));
        let request = MetadataRequest::default().with_topics(Some(vec![topic]));
        let response = client.call(&request, version).await;
        assert!(
            response
                .topics
                .iter()
                .any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "versions")),
            "Metadata v{version}"
        );
    }
    for (expected_offset, version) in (3..=13).enumerate() {
        let mut request = produce_request("versions", 1, batch(&["v"]));
        if version >= 13 {
            request.topic_data[0].name = TopicName::default();
            request.topic_data[0].topic_id = topic_id;
        }
        let response = client.call(&request, version).await;
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(
            (partition.error_code, partition.base_offset),
            (0, expected_offset as i64),
            "Produce v{version}"
        );
    }
    for version in 4..=18 {
        let mut request = fetch_request("versions", 0, 0);
        if version < 7 {
            request.session_epoch = -1;
        }
        if version >= 13 {
            request.topics[0].topic = TopicName::default();
            request.topics[0].topic_id = topic_id;
        }
        let response = client.call(&request, version).await;
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "Fetch v{version}");
        assert_eq!(values_of(partition.records.clone()).len(), 11, "Fetch v{version}");
    }
    for version in 1..=10 {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name("versions"))
                    .with_partitions(vec![
                        ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(-1),
                    ]),
            ]);
        let response = client.call(&request, version).await;
        assert_eq!(response.topics[0].partitions[0].offset, 11, "ListOffsets v{version}");
    }
    for version in 1..=4 {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            kafka_protocol::messages::describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("versions")),
        ]);
        let response = client.call(&request, version).await;
        assert_eq!(response.results[0].error_code, 0, "DescribeConfigs v{version}");
        assert!(
            response.results[0]
                .configs
                .iter()
                .any(|c| c.name.as_str() == "retention.ms")
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn producer_ids_are_never_handed_out_twice() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let broker = TestBroker::start_in(dir.clone(), &[]).await;
    let mut client = Client::connect(&broker).await;
    let request = InitProducerIdRequest::default().with_transaction_timeout_ms(60_000);
    let first = client.call(&request, 4).await;
    let second = client.call(&request, 4).await;
    assert_eq!((first.error_code, first.producer_epoch), (0, 0));
    assert!(second.producer_id.0 > first.producer_id.0);
    broker.stop().await;

    let broker = TestBroker::start_in(dir, &[]).await;
    let mut client = Client::connect(&broker).await;
    let after_restart = client.call(&request, 4).await;
    assert!(
        after_restart.producer_id.0 > second.producer_id.0,
        "ids come from durably reserved blocks"
    );
    broker.stop().await;
}

#[tokio::test]
async fn connection_limits_are_enforced() {
    let settings = [("max.connections.per.ip", "2"), ("connections.max.idle.ms", "300")];
    let broker = TestBroker::start_in(std::sync::Arc::new(tempfile::tempdir().unwrap()), &settings).await;
    let mut first = Client::connect(&broker).await;
    let mut second = Client::connect(&broker).await;
    assert_eq!(first.call(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    assert_eq!(second.call(&ApiVersionsRequest::default(), 3).await.error_code, 0);
    let mut third = TcpStream::connect(broker.address).await.unwrap();
    let mut buffer = [0u8; 8];
    let read = tokio::time::timeout(WAIT, third.read(&mut buffer))
        .await
        .expect("refused in time");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "a third connection from the same address is closed"
    );

    // Idle connections are closed after connections.max.idle.ms; a new one is then allowed.
    let started = Instant::now();
    let read = tokio::time::timeout(WAIT, first.stream.read(&mut buffer))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)));
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "not before the idle timeout"
    );
    drop(second);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut client = Client::connect(&broker).await;
        client.send(&ApiVersionsRequest::default(), 3).await;
        if client.receive_raw().await.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the per-address count never dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.stop().await;
}

/// With a request queue of one slot (`queued.max.requests=1`), pipelined
/// requests of several connections are all answered, in order, while a
/// long poll waits: a waiting request holds no slot. A queue of none is
/// refused at start.
#[tokio::test]
async fn a_one_slot_request_queue_serves_every_pipelined_request() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let broker = TestBroker::start_in(dir, &[("queued.max.requests", "1")]).await;
    let mut setup = Client::connect(&broker).await;
    create_topic(&mut setup, "quiet", 1).await;
    let mut waiting = Client::connect(&broker).await;
    waiting.send(&fetch_request("quiet", 0, 30_000), 12).await;

    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(Client::connect(&broker).await);
    }
    for client in clients.iter_mut() {
        for _ in 0..25 {
            client.send(&ApiVersionsRequest::default(), 3).await;
        }
    }
    for client in clients.iter_mut() {
        for expected in 1..=25 {
            let mut frame = client.receive_raw().await.expect("every request is answered");
            let header = ResponseHeader::decode(&mut frame, 0).unwrap();
            assert_eq!(header.correlation_id, expected, "answers come in order");
        }
    }

    // The long poll was still waiting: it answers with the record produced now.
    let produced = setup.call(&produce_request("quiet", 1, batch(&["late"])), 9).await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let mut frame = waiting.receive_raw().await.expect("the long poll ends");
    ResponseHeader::decode(&mut frame, 1).unwrap();
    let fetched = FetchResponse::decode(&mut frame, 12).unwrap();
    assert_eq!(values_of(fetched.responses[0].partitions[0].records.clone()), ["late"]);
    broker.stop().await;

    let empty = tempfile::tempdir().unwrap();
    let overrides = [
        ("listeners", "PLAINTEXT://127.0.0.1:0".to_string()),
        ("log.dirs", empty.path().display().to_string()),
        ("queued.max.requests", "0".to_string()),
    ]
    .map(|(key, value)| (key.to_string(), value));
    let config = gregor_broker::BrokerConfig::load(None, &overrides).unwrap();
    let refused = gregor_broker::Broker::bind(config).await.err().expect("refused");
    assert!(refused.to_string().contains("queued.max.requests"), "{refused}");
}

#[tokio::test]
async fn idempotent_retries_are_stored_once_and_gaps_refused() {
    let broker = TestBroker::start().await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "exactly", 1).await;
    let producer = client
        .call(&InitProducerIdRequest::default().with_transaction_timeout_ms(60_000), 4)
        .await;
    let id = producer.producer_id.0;
    let first = idempotent_batch(&["a", "b"], (id, 0, 0));
    let offsets: Vec<(i16, i64)> = {
        let mut offsets = Vec::new();
        for records in [first.clone(), first, idempotent_batch(&["c"], (id, 0, 2))] {
            let response = client.call(&produce_request("exactly", -1, records), 9).await;
            let partition = &response.responses[0].partition_responses[0];
            offsets.push((partition.error_code, partition.base_offset));
        }
        offsets
    };
    assert_eq!(offsets, [(0, 0), (0, 0), (0, 2)], "the retry gets the original offset");
    let gap = client
        .call(&produce_request("exactly", -1, idempotent_batch(&["e"], (id, 0, 9))), 9)
        .await;
    assert_eq!(
        gap.responses[0].partition_responses[0].error_code, 45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    let fetched = client.call(&fetch_request("exactly", 0, 0), 12).await;
    assert_eq!(
        values_of(fetched.responses[0].partitions[0].records.clone()),
        ["a", "b", "c"],
        "stored once, in order"
    );
    broker.stop().await;
}

/// A producer's pipelined acks=-1 requests: each is appended while earlier
/// ones wait for their fsync, yet they are stored in request order (the
/// sequence numbers would be refused otherwise), answered in request order,
/// and a fetch sent behind them sees them all. Garbage behind them closes
/// the connection only after they are answered.
#[tokio::test]
async fn pipelined_produce_requests_are_stored_and_answered_in_order() {
    let broker = TestBroker::start().await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "pipelined", 1).await;
    let producer = client
        .call(&InitProducerIdRequest::default().with_transaction_timeout_ms(60_000), 4)
        .await;
    let id = producer.producer_id.0;
    let first_correlation_id = 3;
    for sequence in 0..5 {
        let value = format!("r{sequence}");
        let records = idempotent_batch(&[&value], (id, 0, sequence));
        client.send(&produce_request("pipelined", -1, records), 9).await;
    }
    client.send(&fetch_request("pipelined", 0, 0), 12).await;
    client.send_raw(&[0x7f, 0x00, 0, 1, 0, 0, 0, 1, 0, 0]).await;

    for (expected_offset, correlation_id) in (first_correlation_id..).take(5).enumerate() {
        let mut frame = client.receive_raw().await.expect("every produce is answered");
        let header = ResponseHeader::decode(&mut frame, 1).unwrap();
        assert_eq!(header.correlation_id, correlation_id, "answers come in request order");
        let produced = ProduceResponse::decode(&mut frame, 9).unwrap();
        let partition = &produced.responses[0].partition_responses[0];
        assert_eq!(
            (partition.error_code, partition.base_offset),
            (0, expected_offset as i64)
        );
    }
    let mut frame = client.receive_raw().await.expect("the fetch is answered");
    let header = ResponseHeader::decode(&mut frame, 1).unwrap();
    assert_eq!(header.correlation_id, first_correlation_id + 5);
    let fetched = FetchResponse::decode(&mut frame, 12).unwrap();
    let values = values_of(fetched.responses[0].partitions[0].records.clone());
    assert_eq!(values, ["r0", "r1", "r2", "r3", "r4"]);
    assert!(
        client.receive_raw().await.is_none(),
        "the garbage closes the connection"
    );
    broker.stop().await;
}

/// A client that half-closes its connection after its last request still
/// gets every answer: the requests already started are answered before the
/// connection closes.
#[tokio::test]
async fn a_half_closed_connection_still_gets_its_answers() {
    let broker = TestBroker::start().await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "half-closed", 1).await;
    for value in ["a", "b", "c"] {
        client
            .send(&produce_request("half-closed", -1, batch(&[value])), 9)
            .await;
    }
    client.stream.shutdown().await.unwrap();
    for offset in 0..3 {
        let mut frame = client.receive_raw().await.expect("answered before the close");
        ResponseHeader::decode(&mut frame, 1).unwrap();
        let produced = ProduceResponse::decode(&mut frame, 9).unwrap();
        assert_eq!(produced.responses[0].partition_responses[0].base_offset, offset);
    }
    assert!(client.receive_raw().await.is_none(), "then the broker closes");
    broker.stop().await;
}
