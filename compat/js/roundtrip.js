// Produce with keys, headers and timestamps; consume them back in a group.
'use strict';

const assert = require('node:assert/strict');
const { kafka, topicName, run } = require('./common');

run(async () => {
  const topic = topicName('roundtrip');
  const admin = kafka.admin();
  await admin.connect();
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true }), true);
  await admin.disconnect();

  const sent = Array.from({ length: 20 }, (_, i) => ({
    key: `key-${i}`,
    value: `value-${i}`,
    headers: { index: String(i) },
    timestamp: String(1700000000000 + i),
  }));
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, acks: -1, messages: sent });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: `${topic}-group` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const received = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${received.length} of ${sent.length} records`)), 60000);
    consumer
      .run({
        eachMessage: async ({ message }) => {
          received.push(message);
          if (received.length === sent.length) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();

  const byKey = new Map(received.map((message) => [message.key.toString(), message]));
  for (const record of sent) {
    const message = byKey.get(record.key);
    assert.ok(message, `record ${record.key} was not consumed`);
    assert.equal(message.value.toString(), record.value);
    assert.equal(message.headers.index.toString(), record.headers.index);
    assert.equal(message.timestamp, record.timestamp);
  }
});
