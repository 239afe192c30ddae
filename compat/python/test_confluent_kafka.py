"""confluent-kafka (librdkafka's Python binding) against Gregor."""

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from conftest import wait_until

TIMEOUT_S = 30


def admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(bootstrap, name, partitions):
    # The client must outlive its futures: dropping it cancels them.
    client = admin(bootstrap)
    futures = client.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=TIMEOUT_S)


def produce(bootstrap, topic, records, **config):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", **config})
    errors = []

    def delivered(error, message):
        if error is not None:
            errors.append(error)

    for record in records:
        producer.produce(topic, on_delivery=delivered, **record)
    assert producer.flush(TIMEOUT_S) == 0, "records still unacknowledged"
    assert errors == []


def consume(consumer, count):
    messages = []
    deadline = time.monotonic() + TIMEOUT_S
    while len(messages) < count and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        assert message.error() is None, message.error()
        messages.append(message)
    assert len(messages) == count, f"got {len(messages)} of {count} records"
    return messages


def test_produce_consume_roundtrip(bootstrap, topic_name):
    create_topic(bootstrap, topic_name, partitions=1)
    records = [
        {"key": f"key-{i}".encode(), "value": f"value-{i}".encode(), "headers": [("index", str(i).encode())],
         "timestamp": 1_700_000_000_000 + i}
        for i in range(20)
    ]
    records.append({"key": b"tombstone", "value": None})
    produce(bootstrap, topic_name, records)

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic_name, 0, 0)])
        messages = consume(consumer, len(records))
    finally:
        consumer.close()
    for offset, (record, message) in enumerate(zip(records, messages)):
        assert message.offset() == offset
        assert message.key() == record["key"]
        assert message.value() == record["value"]
        if "headers" in record:
            assert message.headers() == record["headers"]
            assert message.timestamp()[1] == record["timestamp"]


def test_compression_codecs(bootstrap, topic_name):
    create_topic(bootstrap, topic_name, partitions=1)
    codecs = ["gzip", "snappy", "lz4", "zstd"]
    for codec in codecs:
        produce(bootstrap, topic_name, [{"value": f"{codec}-{i}".encode()} for i in range(50)],
                **{"compression.type": codec, "linger.ms": 50})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic_name, 0, 0)])
        values = [message.value().decode() for message in consume(consumer, 50 * len(codecs))]
    finally:
        consumer.close()
    assert values == [f"{codec}-{i}" for codec in codecs for i in range(50)]


def test_consumer_group_commits(bootstrap, topic_name):
    create_topic(bootstrap, topic_name, partitions=3)
    produce(bootstrap, topic_name, [{"key": str(i).encode(), "value": str(i).encode()} for i in range(30)])
    group = f"{topic_name}-group"
    config = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
              "enable.auto.commit": False}
    consumer = Consumer(config)
    try:
        consumer.subscribe([topic_name])
        messages = consume(consumer, 30)
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert sorted(int(message.value()) for message in messages) == list(range(30))

    # A new member of the same group resumes after the committed offsets.
    produce(bootstrap, topic_name, [{"key": b"late", "value": b"late"}])
    consumer = Consumer(config)
    try:
        consumer.subscribe([topic_name])
        assert [message.value() for message in consume(consumer, 1)] == [b"late"]
    finally:
        consumer.close()


def test_topic_administration(bootstrap, topic_name):
    client = admin(bootstrap)
    create_topic(bootstrap, topic_name, partitions=2)
    metadata = client.list_topics(timeout=TIMEOUT_S)
    assert topic_name in metadata.topics
    assert len(metadata.topics[topic_name].partitions) == 2

    # Creating it again is Kafka's TOPIC_ALREADY_EXISTS.
    futures = client.create_topics([NewTopic(topic_name, num_partitions=1, replication_factor=1)])
    try:
        futures[topic_name].result(timeout=TIMEOUT_S)
        raise AssertionError("creating an existing topic succeeded")
    except KafkaException as error:
        assert error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS

    resource = ConfigResource(ConfigResource.Type.TOPIC, topic_name, set_config={"retention.ms": "3600000"})
    client.alter_configs([resource])[resource].result(timeout=TIMEOUT_S)
    described = client.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic_name)])
    configs = list(described.values())[0].result(timeout=TIMEOUT_S)
    assert configs["retention.ms"].value == "3600000"

    invalid = ConfigResource(ConfigResource.Type.TOPIC, topic_name, set_config={"retention.ms": "soon"})
    try:
        client.alter_configs([invalid])[invalid].result(timeout=TIMEOUT_S)
        raise AssertionError("an invalid config value was accepted")
    except KafkaException as error:
        assert error.args[0].code() == KafkaError.INVALID_CONFIG

    client.delete_topics([topic_name])[topic_name].result(timeout=TIMEOUT_S)
    wait_until(lambda: topic_name not in client.list_topics(timeout=TIMEOUT_S).topics, what="the topic to be gone")

    missing = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    try:
        client.describe_configs([missing])[missing].result(timeout=TIMEOUT_S)
        raise AssertionError("the configs of a deleted topic were described")
    except KafkaException as error:
        assert error.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def read_until(bootstrap, topic, isolation_level, last):
    """Every value of partition 0 up to and including `last`, as `isolation_level` sees them."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                         "isolation.level": isolation_level})
    values = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + TIMEOUT_S
        while last not in values:
            assert time.monotonic() < deadline, f"no {last!r} within {TIMEOUT_S}s, got {values}"
            message = consumer.poll(0.5)
            if message is None:
                continue
            assert message.error() is None, message.error()
            values.append(message.value())
    finally:
        consumer.close()
    return values


def test_transactions(bootstrap, topic_name):
    source, output = topic_name, f"{topic_name}-out"
    create_topic(bootstrap, source, partitions=1)
    create_topic(bootstrap, output, partitions=1)
    produce(bootstrap, source, [{"value": f"in-{i}".encode()} for i in range(20)])

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{topic_name}-txn"})
    producer.init_transactions(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce(output, value=b"aborted")
    # Flushed first: an abort purges what is still queued, and this record should reach the log.
    assert producer.flush(TIMEOUT_S) == 0
    producer.abort_transaction(TIMEOUT_S)
    producer.begin_transaction()
    producer.produce(output, value=b"committed")
    producer.commit_transaction(TIMEOUT_S)

    # Consume-transform-produce: the input's next offsets are committed with
    # the output (send_offsets_to_transaction), or not at all.
    group = f"{topic_name}-group"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})

    def transform_batch(commit):
        producer.begin_transaction()
        for message in consume(consumer, 10):
            producer.produce(output, value=message.value().replace(b"in-", b"out-"))
        producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                             consumer.consumer_group_metadata(), TIMEOUT_S)
        if commit:
            producer.commit_transaction(TIMEOUT_S)
        else:
            assert producer.flush(TIMEOUT_S) == 0
            producer.abort_transaction(TIMEOUT_S)

    def committed_offset():
        return consumer.committed([TopicPartition(source, 0)], timeout=TIMEOUT_S)[0].offset

    try:
        consumer.assign([TopicPartition(source, 0, 0)])
        transform_batch(commit=True)
        assert committed_offset() == 10
        transform_batch(commit=False)
        assert committed_offset() == 10, "an aborted transaction's offsets are not committed"
        # Rewind to the committed offsets and redo the aborted batch.
        consumer.assign(consumer.committed([TopicPartition(source, 0)], timeout=TIMEOUT_S))
        transform_batch(commit=True)
        assert committed_offset() == 20
    finally:
        consumer.close()

    produce(bootstrap, output, [{"value": b"end"}])
    outputs = [f"out-{i}".encode() for i in range(20)]
    assert read_until(bootstrap, output, "read_committed", b"end") == [b"committed", *outputs, b"end"]
    assert read_until(bootstrap, output, "read_uncommitted", b"end") == \
        [b"aborted", b"committed", *outputs[:10], *outputs[10:], *outputs[10:], b"end"]
