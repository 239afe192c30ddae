//! Nothing acknowledged is lost: `kill -9` the broker while producers wait on
//! acks=all, restart it on the same log directory, and find every
//! acknowledged record at the offset it was acknowledged with.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Broker, TIMEOUT, bounded, consume, create_topic, payloads, unique_topic};
use rdkafka::Offset;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;

#[tokio::test]
async fn acknowledged_records_survive_kill_9() {
    let dir = tempfile::tempdir().expect("temporary log directory");
    let topic = unique_topic("crash");
    let partitions = 3;
    let mut broker = Broker::start_in(dir.path(), &[]);

    // (partition, offset) -> value, for every record the broker acknowledged.
    let acknowledged: BTreeMap<(i32, i64), String> = bounded(3, async {
        create_topic(&broker, &topic, partitions, &[]).await;
        let producer = broker.producer(&[("linger.ms", "1"), ("message.timeout.ms", "5000"), ("retries", "0")]);
        let values: Vec<String> = (0..3000).map(|i| format!("record-{i}")).collect();
        let mut pending = Vec::with_capacity(values.len());
        for (i, value) in values.iter().enumerate() {
            let partition = i as i32 % partitions;
            let record = FutureRecord::<(), String>::to(&topic)
                .partition(partition)
                .payload(value);
            pending.push((value.clone(), producer.send_result(record).expect("queued")));
        }
        let mut acknowledged = BTreeMap::new();
        let mut killed = false;
        for (value, delivery) in pending {
            if let Ok(Ok(delivery)) = delivery.await {
                acknowledged.insert((delivery.partition, delivery.offset), value);
            }
            // Crash once part of the load is acknowledged and the rest is in flight.
            if !killed && acknowledged.len() >= 500 {
                broker.kill();
                killed = true;
            }
        }
        assert!(killed, "the broker was killed under load");
        acknowledged
    })
    .await;
    assert!(acknowledged.len() >= 500);
    drop(broker);

    let broker = Broker::start_in(dir.path(), &[]);
    bounded(3, async {
        let consumer = broker.consumer(&[]);
        for partition in 0..partitions {
            let acked: Vec<(&(i32, i64), &String)> = acknowledged
                .iter()
                .filter(|((acked_partition, _), _)| *acked_partition == partition)
                .collect();
            let (low, high) = consumer
                .fetch_watermarks(&topic, partition, TIMEOUT)
                .expect("watermarks");
            assert_eq!(low, 0);
            let last_acked = acked.last().map_or(-1, |((_, offset), _)| *offset);
            assert!(
                high > last_acked,
                "partition {partition}: high watermark {high} lost acknowledged offset {last_acked}"
            );
            let messages = consume(&broker, &topic, partition, Offset::Beginning, high as usize);
            let offsets: Vec<i64> = messages.iter().map(|message| message.offset()).collect();
            assert_eq!(
                offsets,
                (0..high).collect::<Vec<_>>(),
                "partition {partition}: offsets are dense"
            );
            let recovered = payloads(&messages);
            for ((_, offset), value) in acked {
                assert_eq!(
                    &recovered[*offset as usize], value,
                    "partition {partition} offset {offset}"
                );
            }
        }
        // The recovered log takes new writes after its end.
        let record = FutureRecord::<(), str>::to(&topic)
            .partition(0)
            .payload("after the crash");
        let delivery = broker
            .producer(&[])
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(error, _)| error);
        let high = consumer.fetch_watermarks(&topic, 0, TIMEOUT).expect("watermarks").1;
        assert_eq!(delivery.expect("delivery").offset, high - 1);
    })
    .await;
}
