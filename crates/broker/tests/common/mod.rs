//! A broker on an ephemeral port and a raw protocol client, shared by the
//! protocol-level test files.
#![allow(dead_code)]

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gregor_broker::{Broker, BrokerConfig};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestBroker {
    pub address: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    pub dir: std::sync::Arc<tempfile::TempDir>,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_in(std::sync::Arc::new(tempfile::tempdir().unwrap()), &[]).await
    }

    /// A broker on `dir` (reused across restarts) with extra settings.
    pub async fn start_in(dir: std::sync::Arc<tempfile::TempDir>, settings: &[(&str, &str)]) -> TestBroker {
        let mut overrides = vec![
            ("listeners".to_string(), "PLAINTEXT://127.0.0.1:0".to_string()),
            ("log.dirs".to_string(), dir.path().display().to_string()),
        ];
        overrides.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let broker = Broker::bind(BrokerConfig::load(None, &overrides).unwrap())
            .await
            .unwrap();
        let address = broker.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            broker.run(async { stopped.await.unwrap_or(()) }).await.unwrap();
        });
        TestBroker {
            address,
            stop: Some(stop),
            task,
            dir,
        }
    }

    pub async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        tokio::time::timeout(WAIT, &mut self.task)
            .await
            .expect("clean shutdown in time")
            .unwrap();
    }
}

pub struct Client {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub async fn connect(broker: &TestBroker) -> Client {
        Client {
            stream: TcpStream::connect(broker.address).await.unwrap(),
            correlation_id: 0,
        }
    }

    pub async fn send<R: Request + Encodable>(&mut self, request: &R, version: i16) {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("protocol-test")));
        let mut body = BytesMut::new();
        header.encode(&mut body, R::header_version(version)).unwrap();
        request.encode(&mut body, version).unwrap();
        self.send_raw(&body).await;
    }

    pub async fn send_raw(&mut self, body: &[u8]) {
        self.stream.write_all(&(body.len() as i32).to_be_bytes()).await.unwrap();
        self.stream.write_all(body).await.unwrap();
    }

    /// The next response frame, after its correlation id (and tagged fields when `flexible_header`).
    pub async fn receive_raw(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        tokio::time::timeout(WAIT, self.stream.read_exact(&mut size))
            .await
            .expect("response in time")
            .ok()?;
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut frame).await.ok()?;
        Some(Bytes::from(frame))
    }

    pub async fn call<R: Request + Encodable>(&mut self, request: &R, version: i16) -> R::Response
    where
        R::Response: Decodable + HeaderVersion,
    {
        self.send(request, version).await;
        let mut frame = self.receive_raw().await.expect("a response");
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        R::Response::decode(&mut frame, version).unwrap()
    }
}

pub fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_string()))
}

pub fn batch(values: &[&str]) -> Bytes {
    batch_at(values, 1_700_000_000_000)
}

/// A batch whose records are stamped `first_timestamp`, +1 ms, +2 ms, ...
pub fn batch_at(values: &[&str], first_timestamp: i64) -> Bytes {
    encode_batch(values, first_timestamp, (-1, -1, -1), false)
}

/// An idempotent producer's batch: (producer id, epoch, first sequence).
pub fn idempotent_batch(values: &[&str], producer: (i64, i16, i32)) -> Bytes {
    encode_batch(values, 1_700_000_000_000, producer, false)
}

/// A batch written inside a transaction: (producer id, epoch, first sequence).
/// Stamped now, like the markers that follow it, so they share a segment.
pub fn transactional_batch(values: &[&str], producer: (i64, i16, i32)) -> Bytes {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    encode_batch(values, now, producer, true)
}

fn encode_batch(
    values: &[&str],
    first_timestamp: i64,
    (producer_id, producer_epoch, base_sequence): (i64, i16, i32),
    transactional: bool,
) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if base_sequence < 0 {
                -1
            } else {
                base_sequence + i as i32
            },
            timestamp: first_timestamp + i as i64,
            key: None,
            value: Some(Bytes::from(value.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    out.freeze()
}

pub async fn create_topic(client: &mut Client, topic: &str, partitions: i32) {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ])
        .with_timeout_ms(5000);
    let response = client.call(&request, 7).await;
    assert_eq!(
        response.topics[0].error_code, 0,
        "{:?}",
        response.topics[0].error_message
    );
}

pub fn produce_request(topic: &str, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ])
}

pub fn fetch_request(topic: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(
            vec![
            FetchPartition::default().with_partition(0).with_fetch_offset(offset).with_partition_max_bytes(1 << 20),
        ],
        )])
}

pub fn values_of(records: Option<Bytes>) -> Vec<String> {
    let Some(mut bytes) = records else { return Vec::new() };
    let mut values = Vec::new();
    for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
        // Transaction markers are control records, not data.
        for record in set.records.into_iter().filter(|r| !r.control) {
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    values
}
