//! Topic administration through librdkafka's AdminClient against a real
//! `gregor start`, with Kafka's error codes for what must fail.

mod common;

use common::{Broker, TIMEOUT, admin_options, bounded, consume, create_topic, payloads, produce_values, unique_topic};
use rdkafka::admin::{AlterConfig, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

fn partition_count(broker: &Broker, topic: &str) -> Option<usize> {
    let metadata = broker.admin().inner().fetch_metadata(None, TIMEOUT).expect("metadata");
    metadata
        .topics()
        .iter()
        .find(|candidate| candidate.name() == topic)
        .map(|found| found.partitions().len())
}

async fn topic_config(broker: &Broker, topic: &str, name: &str) -> Option<String> {
    let results = broker
        .admin()
        .describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options())
        .await
        .expect("describe");
    let resource = results.into_iter().next().expect("one result").expect("described");
    resource.get(name).and_then(|entry| entry.value.clone())
}

#[tokio::test]
async fn create_describe_alter_and_delete_a_topic() {
    let broker = Broker::start();
    bounded(3, async {
        let topic = unique_topic("lifecycle");
        create_topic(&broker, &topic, 4, &[("retention.ms", "3600000")]).await;
        assert_eq!(partition_count(&broker, &topic), Some(4));
        assert_eq!(
            topic_config(&broker, &topic, "retention.ms").await.as_deref(),
            Some("3600000")
        );
        // Configs not set on the topic come from Kafka's defaults.
        assert_eq!(
            topic_config(&broker, &topic, "cleanup.policy").await.as_deref(),
            Some("delete")
        );

        let alter = AlterConfig::new(ResourceSpecifier::Topic(&topic)).set("retention.ms", "7200000");
        let results = broker
            .admin()
            .alter_configs([&alter], &admin_options())
            .await
            .expect("AlterConfigs");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(
            topic_config(&broker, &topic, "retention.ms").await.as_deref(),
            Some("7200000")
        );

        let results = broker
            .admin()
            .delete_topics(&[&topic], &admin_options())
            .await
            .expect("DeleteTopics");
        assert_eq!(results, vec![Ok(topic.clone())]);
        assert_eq!(
            partition_count(&broker, &topic),
            None,
            "deleted topics leave the metadata"
        );
    })
    .await;
}

#[tokio::test]
async fn a_deleted_topic_can_be_created_again_empty() {
    let broker = Broker::start();
    bounded(3, async {
        let topic = unique_topic("recreate");
        create_topic(&broker, &topic, 1, &[]).await;
        produce_values(&broker.producer(&[]), &topic, 0, &["old"]).await;
        let results = broker
            .admin()
            .delete_topics(&[&topic], &admin_options())
            .await
            .expect("DeleteTopics");
        assert_eq!(results, vec![Ok(topic.clone())]);
        create_topic(&broker, &topic, 1, &[]).await;
        let watermarks = broker
            .consumer(&[])
            .fetch_watermarks(&topic, 0, TIMEOUT)
            .expect("watermarks");
        assert_eq!(watermarks, (0, 0), "a recreated topic starts empty");
    })
    .await;
}

#[tokio::test]
async fn create_partitions_adds_usable_partitions() {
    let broker = Broker::start();
    bounded(3, async {
        let topic = unique_topic("grow");
        create_topic(&broker, &topic, 2, &[]).await;
        let results = broker
            .admin()
            .create_partitions([&NewPartitions::new(&topic, 5)], &admin_options())
            .await
            .expect("CreatePartitions");
        assert_eq!(results, vec![Ok(topic.clone())]);
        assert_eq!(partition_count(&broker, &topic), Some(5));

        let producer = broker.producer(&[("topic.metadata.refresh.interval.ms", "100")]);
        assert_eq!(
            produce_values(&producer, &topic, 4, &["in the new partition"]).await,
            vec![0]
        );
        assert_eq!(
            payloads(&consume(&broker, &topic, 4, Offset::Beginning, 1)),
            ["in the new partition"]
        );

        // Partitions only grow: asking for fewer is INVALID_PARTITIONS.
        let results = broker
            .admin()
            .create_partitions([&NewPartitions::new(&topic, 3)], &admin_options())
            .await
            .expect("CreatePartitions");
        assert_eq!(results, vec![Err((topic.clone(), RDKafkaErrorCode::InvalidPartitions))]);
    })
    .await;
}

#[tokio::test]
async fn delete_records_moves_the_log_start_offset() {
    let broker = Broker::start();
    bounded(3, async {
        let topic = unique_topic("delete-records");
        create_topic(&broker, &topic, 1, &[]).await;
        let values: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        produce_values(&broker.producer(&[]), &topic, 0, &values).await;

        let mut before = TopicPartitionList::new();
        before
            .add_partition_offset(&topic, 0, Offset::Offset(6))
            .expect("offsets");
        let result = broker
            .admin()
            .delete_records(&before, &admin_options())
            .await
            .expect("DeleteRecords");
        let partition = result.find_partition(&topic, 0).expect("partition answered");
        assert_eq!(partition.error(), Ok(()));
        assert_eq!(partition.offset(), Offset::Offset(6), "the new low watermark");

        let consumer = broker.consumer(&[]);
        assert_eq!(
            consumer.fetch_watermarks(&topic, 0, TIMEOUT).expect("watermarks"),
            (6, 10)
        );
        assert_eq!(
            payloads(&consume(&broker, &topic, 0, Offset::Beginning, 4)),
            ["6", "7", "8", "9"]
        );
    })
    .await;
}

#[tokio::test]
async fn creating_an_existing_topic_is_topic_already_exists() {
    let broker = Broker::start();
    bounded(2, async {
        let topic = unique_topic("twice");
        create_topic(&broker, &topic, 1, &[]).await;
        let again = NewTopic::new(&topic, 1, TopicReplication::Fixed(1));
        let results = broker
            .admin()
            .create_topics([&again], &admin_options())
            .await
            .expect("CreateTopics");
        assert_eq!(
            results,
            vec![Err((topic.clone(), RDKafkaErrorCode::TopicAlreadyExists))]
        );
    })
    .await;
}

#[tokio::test]
async fn invalid_topic_names_are_invalid_topic() {
    let broker = Broker::start();
    bounded(2, async {
        let too_long = "x".repeat(250);
        for name in ["bad/name", "..", "spaces are not allowed", too_long.as_str()] {
            let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
            let results = broker
                .admin()
                .create_topics([&topic], &admin_options())
                .await
                .expect("CreateTopics");
            assert_eq!(
                results,
                vec![Err((name.to_string(), RDKafkaErrorCode::InvalidTopic))],
                "{name:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn invalid_partition_counts_and_configs_are_rejected() {
    let broker = Broker::start();
    bounded(2, async {
        let topic = unique_topic("invalid");
        let zero = NewTopic::new(&topic, 0, TopicReplication::Fixed(1));
        let results = broker
            .admin()
            .create_topics([&zero], &admin_options())
            .await
            .expect("CreateTopics");
        assert_eq!(results, vec![Err((topic.clone(), RDKafkaErrorCode::InvalidPartitions))]);

        let too_many_replicas = NewTopic::new(&topic, 1, TopicReplication::Fixed(3));
        let results = broker
            .admin()
            .create_topics([&too_many_replicas], &admin_options())
            .await
            .expect("CreateTopics");
        assert_eq!(
            results,
            vec![Err((topic.clone(), RDKafkaErrorCode::InvalidReplicationFactor))]
        );

        let bad_config = NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set("retention.ms", "soon");
        let results = broker
            .admin()
            .create_topics([&bad_config], &admin_options())
            .await
            .expect("CreateTopics");
        assert_eq!(results, vec![Err((topic.clone(), RDKafkaErrorCode::InvalidConfig))]);
        assert_eq!(partition_count(&broker, &topic), None, "nothing was created");
    })
    .await;
}

#[tokio::test]
async fn unknown_topics_are_unknown_topic_or_partition_when_auto_creation_is_off() {
    let broker = Broker::start_with(&[("auto.create.topics.enable", "false")]);
    bounded(2, async {
        let topic = unique_topic("missing");
        let metadata = broker
            .admin()
            .inner()
            .fetch_metadata(Some(&topic), TIMEOUT)
            .expect("metadata");
        let described = metadata
            .topics()
            .iter()
            .find(|candidate| candidate.name() == topic)
            .expect("answered");
        assert_eq!(
            described.error().map(RDKafkaErrorCode::from),
            Some(RDKafkaErrorCode::UnknownTopicOrPartition)
        );

        // DescribeConfigs of a missing topic is checked through `gregor config
        // describe` (tests/cli.rs): rdkafka's AdminClient drops per-resource errors.

        let results = broker
            .admin()
            .delete_topics(&[&topic], &admin_options())
            .await
            .expect("DeleteTopics");
        assert_eq!(
            results,
            vec![Err((topic.clone(), RDKafkaErrorCode::UnknownTopicOrPartition))]
        );

        let producer = broker.producer(&[
            // librdkafka waits this long for a topic to appear before failing its records as unknown.
            ("topic.metadata.propagation.max.ms", "1000"),
            ("message.timeout.ms", "20000"),
        ]);
        let record = FutureRecord::<(), str>::to(&topic).payload("nowhere");
        match producer.send(record, TIMEOUT).await {
            Err((KafkaError::MessageProduction(code), _)) => assert!(
                matches!(
                    code,
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
                ),
                "{code:?}"
            ),
            other => panic!("expected an unknown-topic error, got {other:?}"),
        }
        assert_eq!(partition_count(&broker, &topic), None, "nothing was auto-created");
    })
    .await;
}

#[tokio::test]
async fn broker_configs_are_described() {
    let broker = Broker::start_with(&[("num.partitions", "7")]);
    bounded(2, async {
        let results = broker
            .admin()
            .describe_configs([&ResourceSpecifier::Broker(1)], &admin_options())
            .await
            .expect("describe");
        let resource = results.into_iter().next().expect("one result").expect("described");
        assert_eq!(
            resource.get("num.partitions").and_then(|entry| entry.value.as_deref()),
            Some("7")
        );
        assert_eq!(
            resource
                .get("message.max.bytes")
                .and_then(|entry| entry.value.as_deref()),
            Some("1048588")
        );
    })
    .await;
}
