//! Produce and consume round trips through librdkafka against a real
//! `gregor start`: keys, null values, headers, timestamps, every compression
//! codec, many partitions, auto-creation, offsets by time, size limits.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Broker, TIMEOUT, bounded, consume, create_topic, payloads, poll_messages, produce_values, unique_topic};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, Timestamp, TopicPartitionList};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

#[tokio::test]
async fn keys_null_values_headers_and_timestamps_round_trip() {
    let broker = Broker::start();
    bounded(2, async {
        let topic = unique_topic("roundtrip");
        create_topic(&broker, &topic, 1, &[]).await;
        let producer = broker.producer(&[]);
        let base_timestamp = 1_700_000_000_000_i64;
        for i in 0..10_i64 {
            let key = format!("key-{i}");
            let value = format!("value-{i}");
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "index",
                    value: Some(i.to_string().as_bytes()),
                })
                .insert(Header {
                    key: "empty",
                    value: None::<&[u8]>,
                });
            let mut record = FutureRecord::to(&topic)
                .key(&key)
                .headers(headers)
                .timestamp(base_timestamp + i);
            // Every third record is a tombstone: a key with a null value.
            if i % 3 != 0 {
                record = record.payload(&value);
            }
            let delivery = producer
                .send(record, TIMEOUT)
                .await
                .map_err(|(error, _)| error)
                .expect("delivery");
            assert_eq!((delivery.partition, delivery.offset), (0, i));
        }

        let messages = consume(&broker, &topic, 0, Offset::Beginning, 10);
        for (i, message) in messages.iter().enumerate() {
            let i = i as i64;
            assert_eq!(message.offset(), i);
            assert_eq!(message.key(), Some(format!("key-{i}").as_bytes()));
            let expected_value = (i % 3 != 0).then(|| format!("value-{i}"));
            assert_eq!(
                message.payload(),
                expected_value.as_deref().map(str::as_bytes),
                "value of offset {i}"
            );
            assert_eq!(message.timestamp(), Timestamp::CreateTime(base_timestamp + i));
            let headers = message.headers().expect("headers");
            assert_eq!(headers.count(), 2);
            let index = headers.get(0);
            assert_eq!((index.key, index.value), ("index", Some(i.to_string().as_bytes())));
            let empty = headers.get(1);
            assert_eq!((empty.key, empty.value), ("empty", None));
        }
    })
    .await;
}

#[tokio::test]
async fn records_without_key_or_headers_round_trip() {
    let broker = Broker::start();
    bounded(2, async {
        let topic = unique_topic("plain");
        create_topic(&broker, &topic, 1, &[]).await;
        let producer = broker.producer(&[]);
        let values = ["a", "", "a longer value with spaces", "ünïcödé"];
        assert_eq!(produce_values(&producer, &topic, 0, &values).await, vec![0, 1, 2, 3]);
        let messages = consume(&broker, &topic, 0, Offset::Beginning, values.len());
        assert_eq!(payloads(&messages), values);
        assert!(messages.iter().all(|message| message.key().is_none()));
        assert!(
            messages
                .iter()
                .all(|message| message.headers().is_none_or(|headers| headers.count() == 0))
        );
    })
    .await;
}

#[tokio::test]
async fn every_compression_codec_round_trips() {
    let broker = Broker::start();
    bounded(4, async {
        let topic = unique_topic("codecs");
        create_topic(&broker, &topic, 1, &[]).await;
        let codecs = ["gzip", "snappy", "lz4", "zstd"];
        let mut expected = Vec::new();
        for codec in codecs {
            // linger.ms makes librdkafka put many records in one compressed batch.
            let producer = broker.producer(&[("compression.type", codec), ("linger.ms", "50")]);
            let values: Vec<String> = (0..200)
                .map(|i| format!("{codec} record {i} {}", "x".repeat(i % 50)))
                .collect();
            let deliveries: Vec<_> = values
                .iter()
                .map(|value| {
                    producer
                        .send_result(FutureRecord::<(), String>::to(&topic).payload(value))
                        .expect("queued")
                })
                .collect();
            for delivery in deliveries {
                delivery
                    .await
                    .expect("not canceled")
                    .map_err(|(error, _)| error)
                    .expect("delivered");
            }
            expected.extend(values);
        }
        let messages = consume(&broker, &topic, 0, Offset::Beginning, expected.len());
        assert_eq!(payloads(&messages), expected);
        let offsets: Vec<i64> = messages.iter().map(|message| message.offset()).collect();
        assert_eq!(
            offsets,
            (0..expected.len() as i64).collect::<Vec<_>>(),
            "offsets are dense"
        );
        // The high watermark counts records, not batches.
        let watermarks = broker
            .consumer(&[])
            .fetch_watermarks(&topic, 0, TIMEOUT)
            .expect("watermarks");
        assert_eq!(watermarks, (0, expected.len() as i64));
    })
    .await;
}

#[tokio::test]
async fn many_partitions_keep_their_own_offsets() {
    let broker = Broker::start();
    bounded(4, async {
        let topic = unique_topic("partitions");
        let partitions = 32;
        create_topic(&broker, &topic, partitions, &[]).await;
        let producer = broker.producer(&[("linger.ms", "5")]);
        for partition in 0..partitions {
            let values: Vec<String> = (0..5).map(|i| format!("p{partition}-{i}")).collect();
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            assert_eq!(
                produce_values(&producer, &topic, partition, &values).await,
                vec![0, 1, 2, 3, 4]
            );
        }
        let consumer = broker.consumer(&[]);
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment
                .add_partition_offset(&topic, partition, Offset::Beginning)
                .expect("assignment");
        }
        consumer.assign(&assignment).expect("assign");
        let messages = poll_messages(&consumer, 5 * partitions as usize);
        for message in &messages {
            let expected = format!("p{}-{}", message.partition(), message.offset());
            assert_eq!(message.payload(), Some(expected.as_bytes()));
        }
        for partition in 0..partitions {
            let watermarks = consumer
                .fetch_watermarks(&topic, partition, TIMEOUT)
                .expect("watermarks");
            assert_eq!(watermarks, (0, 5), "partition {partition}");
        }
    })
    .await;
}

#[tokio::test]
async fn records_with_one_key_land_in_one_partition() {
    let broker = Broker::start();
    bounded(2, async {
        let topic = unique_topic("keyed");
        create_topic(&broker, &topic, 8, &[]).await;
        let producer = broker.producer(&[]);
        let mut partitions = Vec::new();
        for i in 0..10 {
            let value = format!("{i}");
            let record = FutureRecord::to(&topic).key("the-same-key").payload(&value);
            let delivery = producer
                .send(record, TIMEOUT)
                .await
                .map_err(|(error, _)| error)
                .expect("delivery");
            partitions.push(delivery.partition);
            assert_eq!(
                delivery.offset,
                i64::from(i),
                "offsets in the key's partition are dense"
            );
        }
        assert!(
            partitions.iter().all(|partition| *partition == partitions[0]),
            "{partitions:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn producing_to_a_new_topic_creates_it_with_the_default_partition_count() {
    let broker = Broker::start_with(&[("num.partitions", "3")]);
    bounded(2, async {
        let topic = unique_topic("auto");
        let producer = broker.producer(&[]);
        let record = FutureRecord::<(), str>::to(&topic).partition(2).payload("first");
        let delivery = producer
            .send(record, TIMEOUT)
            .await
            .map_err(|(error, _)| error)
            .expect("delivery");
        assert_eq!((delivery.partition, delivery.offset), (2, 0));

        let metadata = broker
            .admin()
            .inner()
            .fetch_metadata(Some(&topic), TIMEOUT)
            .expect("metadata");
        let described = metadata
            .topics()
            .iter()
            .find(|candidate| candidate.name() == topic)
            .expect("topic listed");
        assert_eq!(described.error(), None);
        assert_eq!(described.partitions().len(), 3);
        assert_eq!(payloads(&consume(&broker, &topic, 2, Offset::Beginning, 1)), ["first"]);
    })
    .await;
}

#[tokio::test]
async fn a_metadata_request_auto_creates_a_topic() {
    let broker = Broker::start();
    bounded(2, async {
        let topic = unique_topic("auto-metadata");
        // A producer's metadata request asks the broker to create unknown topics.
        let producer = broker.producer(&[]);
        let client = rdkafka::producer::Producer::client(&producer);
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let metadata = client.fetch_metadata(Some(&topic), TIMEOUT).expect("metadata");
            let described = metadata.topics().iter().find(|candidate| candidate.name() == topic);
            // Kafka answers LEADER_NOT_AVAILABLE while it creates the topic; a retry sees it.
            if described.is_some_and(|described| described.error().is_none() && !described.partitions().is_empty()) {
                assert_eq!(described.map(|described| described.partitions().len()), Some(1));
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "topic {topic} was not auto-created"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn offsets_for_times_finds_the_first_record_at_or_after_a_timestamp() {
    let broker = Broker::start();
    bounded(2, async {
        let topic = unique_topic("times");
        create_topic(&broker, &topic, 1, &[]).await;
        let producer = broker.producer(&[]);
        for i in 0..10_i64 {
            let value = format!("{i}");
            let record = FutureRecord::<(), String>::to(&topic)
                .payload(&value)
                .timestamp(1_000_000 + i * 1000);
            producer
                .send(record, TIMEOUT)
                .await
                .map_err(|(error, _)| error)
                .expect("delivery");
        }
        let consumer = broker.consumer(&[]);
        let lookup = |timestamp: i64| {
            let mut query = TopicPartitionList::new();
            query
                .add_partition_offset(&topic, 0, Offset::Offset(timestamp))
                .expect("query");
            let answer = consumer.offsets_for_times(query, TIMEOUT).expect("offsets_for_times");
            answer.find_partition(&topic, 0).expect("partition answered").offset()
        };
        assert_eq!(lookup(1_000_000), Offset::Offset(0));
        assert_eq!(lookup(1_004_500), Offset::Offset(5));
        assert_eq!(lookup(1_009_000), Offset::Offset(9));
        // After the last record: no such offset (-1, which rdkafka shows as End).
        assert_eq!(lookup(2_000_000), Offset::End);
    })
    .await;
}

#[tokio::test]
async fn log_append_time_topics_stamp_records_with_the_broker_clock() {
    let broker = Broker::start();
    bounded(2, async {
        let topic = unique_topic("append-time");
        create_topic(&broker, &topic, 1, &[("message.timestamp.type", "LogAppendTime")]).await;
        let before = now_ms();
        let producer = broker.producer(&[]);
        let record = FutureRecord::<(), str>::to(&topic).payload("stamped").timestamp(42);
        producer
            .send(record, TIMEOUT)
            .await
            .map_err(|(error, _)| error)
            .expect("delivery");
        let after = now_ms();
        let message = consume(&broker, &topic, 0, Offset::Beginning, 1).remove(0);
        match message.timestamp() {
            Timestamp::LogAppendTime(ms) => assert!((before..=after).contains(&ms), "{before} <= {ms} <= {after}"),
            other => panic!("expected LogAppendTime, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn consuming_from_an_offset_starts_there() {
    let broker = Broker::start();
    bounded(2, async {
        let topic = unique_topic("from-offset");
        create_topic(&broker, &topic, 1, &[]).await;
        let producer = broker.producer(&[]);
        let values: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        produce_values(&producer, &topic, 0, &values).await;
        assert_eq!(
            payloads(&consume(&broker, &topic, 0, Offset::Offset(15), 5)),
            ["15", "16", "17", "18", "19"]
        );
        assert_eq!(
            payloads(&consume(&broker, &topic, 0, Offset::OffsetTail(2), 2)),
            ["18", "19"]
        );
    })
    .await;
}

#[tokio::test]
async fn a_record_over_message_max_bytes_is_rejected_and_the_partition_stays_usable() {
    let broker = Broker::start_with(&[("message.max.bytes", "10000")]);
    bounded(2, async {
        let topic = unique_topic("too-large");
        create_topic(&broker, &topic, 1, &[]).await;
        let producer = broker.producer(&[]);
        let large = "x".repeat(20_000);
        let record = FutureRecord::<(), String>::to(&topic).payload(&large);
        match producer.send(record, TIMEOUT).await {
            Err((KafkaError::MessageProduction(code), _)) => assert_eq!(code, RDKafkaErrorCode::MessageSizeTooLarge),
            other => panic!("expected MESSAGE_TOO_LARGE, got {other:?}"),
        }
        assert_eq!(produce_values(&producer, &topic, 0, &["small"]).await, vec![0]);
        assert_eq!(payloads(&consume(&broker, &topic, 0, Offset::Beginning, 1)), ["small"]);
    })
    .await;
}

#[tokio::test]
async fn acks_zero_and_one_are_served() {
    let broker = Broker::start();
    bounded(2, async {
        let topic = unique_topic("acks");
        create_topic(&broker, &topic, 1, &[]).await;
        produce_values(&broker.producer(&[("acks", "1")]), &topic, 0, &["one"]).await;
        let fire_and_forget = broker.producer(&[("acks", "0")]);
        for value in ["zero-a", "zero-b"] {
            let record = FutureRecord::<(), str>::to(&topic).partition(0).payload(value);
            fire_and_forget
                .send(record, TIMEOUT)
                .await
                .map_err(|(error, _)| error)
                .expect("sent");
        }
        assert_eq!(
            payloads(&consume(&broker, &topic, 0, Offset::Beginning, 3)),
            ["one", "zero-a", "zero-b"]
        );
    })
    .await;
}

#[tokio::test]
async fn an_idempotent_producer_writes_each_record_once_in_order() {
    let broker = Broker::start();
    bounded(3, async {
        let topic = unique_topic("idempotent");
        create_topic(&broker, &topic, 3, &[]).await;
        // Idempotence (KIP-98): InitProducerId, then sequence numbers per partition,
        // with up to 5 batches in flight per connection.
        let producer = broker.producer(&[
            ("enable.idempotence", "true"),
            ("linger.ms", "2"),
            ("batch.num.messages", "20"),
        ]);
        let values: Vec<String> = (0..600).map(|i| format!("{i}")).collect();
        let deliveries: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, value)| {
                let record = FutureRecord::<(), String>::to(&topic)
                    .partition(i as i32 % 3)
                    .payload(value);
                producer.send_result(record).expect("queued")
            })
            .collect();
        for delivery in deliveries {
            delivery
                .await
                .expect("not canceled")
                .map_err(|(error, _)| error)
                .expect("delivered");
        }
        for partition in 0..3 {
            let messages = consume(&broker, &topic, partition, Offset::Beginning, 200);
            let expected: Vec<String> = (0..200).map(|i| (i * 3 + partition).to_string()).collect();
            assert_eq!(
                payloads(&messages),
                expected,
                "partition {partition}: once each, in order"
            );
            let watermarks = broker
                .consumer(&[])
                .fetch_watermarks(&topic, partition, TIMEOUT)
                .expect("watermarks");
            assert_eq!(watermarks, (0, 200), "partition {partition}: no duplicates");
        }
    })
    .await;
}
