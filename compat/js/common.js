// Shared setup for the kafkajs scenarios: the broker under test (compat/run.sh
// starts it and sets BOOTSTRAP) and fresh topic names.
'use strict';

const crypto = require('node:crypto');
const { Kafka, logLevel } = require('kafkajs');

const bootstrap = process.env.BOOTSTRAP;
if (!bootstrap) {
  console.error('BOOTSTRAP is not set: run this through compat/run.sh');
  process.exit(2);
}

const kafka = new Kafka({
  clientId: 'gregor-compat',
  brokers: [bootstrap],
  logLevel: logLevel.WARN,
  connectionTimeout: 10000,
  requestTimeout: 30000,
  retry: { retries: 5 },
});

function topicName(scenario) {
  return `compat-js-${scenario}-${crypto.randomBytes(4).toString('hex')}`;
}

// Polls `condition` until it is true or `timeoutMs` passes.
async function waitUntil(condition, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

// Runs `scenario`, exiting non-zero with the error on failure.
function run(scenario) {
  scenario().then(
    () => process.exit(0),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}

module.exports = { kafka, topicName, waitUntil, run };
