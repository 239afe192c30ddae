// Topic administration: create, list, fetch metadata, reject a duplicate, delete.
'use strict';

const assert = require('node:assert/strict');
const { kafka, topicName, waitUntil, run } = require('./common');

run(async () => {
  const topic = topicName('admin');
  const admin = kafka.admin();
  await admin.connect();
  try {
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true }), true);
    assert.ok((await admin.listTopics()).includes(topic));

    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    assert.equal(metadata.topics[0].partitions.length, 3);

    // kafkajs answers false (TOPIC_ALREADY_EXISTS) for a topic that exists.
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] }), false);

    await admin.deleteTopics({ topics: [topic] });
    await waitUntil(async () => !(await admin.listTopics()).includes(topic), 'the topic to be gone');
  } finally {
    await admin.disconnect();
  }
});
