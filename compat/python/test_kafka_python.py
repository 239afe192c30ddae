"""kafka-python (a pure-Python client with its own protocol code) against Gregor."""

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from conftest import wait_until

TIMEOUT_MS = 30_000


def admin(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT_MS)


def create_topic(bootstrap, name, partitions):
    client = admin(bootstrap)
    try:
        client.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}})
    finally:
        client.close()


def produce(bootstrap, topic, records, **config):
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **config)
    try:
        futures = [producer.send(topic, **record) for record in records]
        producer.flush(timeout=TIMEOUT_MS / 1000)
        return [future.get(timeout=TIMEOUT_MS / 1000) for future in futures]
    finally:
        producer.close()


def consume(consumer, count):
    messages = []
    for message in consumer:
        messages.append(message)
        if len(messages) == count:
            break
    assert len(messages) == count, f"got {len(messages)} of {count} records"
    return messages


def test_produce_consume_roundtrip(bootstrap, topic_name):
    create_topic(bootstrap, topic_name, partitions=1)
    records = [
        {"key": f"key-{i}".encode(), "value": f"value-{i}".encode(), "headers": [("index", str(i).encode())],
         "timestamp_ms": 1_700_000_000_000 + i}
        for i in range(20)
    ]
    records.append({"key": b"tombstone", "value": None})
    metadata = produce(bootstrap, topic_name, records, compression_type="gzip")
    assert [m.offset for m in metadata] == list(range(len(records)))

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, consumer_timeout_ms=TIMEOUT_MS, enable_auto_commit=False)
    try:
        consumer.assign([TopicPartition(topic_name, 0)])
        consumer.seek_to_beginning()
        messages = consume(consumer, len(records))
    finally:
        consumer.close()
    for offset, (record, message) in enumerate(zip(records, messages)):
        assert message.offset == offset
        assert message.key == record["key"]
        assert message.value == record["value"]
        if "headers" in record:
            assert list(message.headers) == record["headers"]
            assert message.timestamp == record["timestamp_ms"]


def test_consumer_group(bootstrap, topic_name):
    create_topic(bootstrap, topic_name, partitions=2)
    produce(bootstrap, topic_name, [{"value": str(i).encode()} for i in range(10)])
    consumer = KafkaConsumer(topic_name, bootstrap_servers=bootstrap, group_id=f"{topic_name}-group",
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=TIMEOUT_MS)
    try:
        values = sorted(int(message.value) for message in consume(consumer, 10))
        consumer.commit()
    finally:
        consumer.close()
    assert values == list(range(10))


def test_topic_administration(bootstrap, topic_name):
    client = admin(bootstrap)
    try:
        client.create_topics({topic_name: {"num_partitions": 3, "replication_factor": 1}})
        assert topic_name in client.list_topics()
        try:
            client.create_topics({topic_name: {"num_partitions": 1, "replication_factor": 1}})
            raise AssertionError("creating an existing topic succeeded")
        except TopicAlreadyExistsError:
            pass

        [described] = client.describe_topics([topic_name])
        assert len(described["partitions"]) == 3

        resource = ConfigResource(ConfigResourceType.TOPIC, topic_name, configs={"retention.ms": "3600000"})
        assert client.alter_configs([resource]) == {"topic": {topic_name: "OK"}}
        described = client.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic_name)])
        assert described["topic"][topic_name]["retention.ms"]["value"] == "3600000"

        client.delete_topics([topic_name])
        wait_until(lambda: topic_name not in client.list_topics(), what="the topic to be gone")
    finally:
        client.close()
