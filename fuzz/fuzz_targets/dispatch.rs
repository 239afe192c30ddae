//! Every request through the broker's real dispatch point and handlers.
//!
//! A broker on a temporary log directory keeps its state from input to input
//! (topics, groups, producers, transactions) for 1024 requests, then a fresh
//! one takes over, so well-formed requests with nonsense values (negative
//! partitions, empty names, huge `max_bytes`, unknown member ids) reach the
//! handlers in many states. A request may get any error code; it must never
//! panic, and a request that decodes must never close the connection (its
//! response must encode).
#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gregor_broker::dispatch::{self, Outcome, RequestContext};
use gregor_broker::state::BrokerState;
use gregor_broker::{Broker, BrokerConfig};
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::{Corpus, fuzz_target};

/// How long a request may wait, on the paused clock: past a default long
/// poll (500 ms) and a single member's rebalance. Waiting is not free: the
/// clock advances through every 100 ms tick of the group timers, so a
/// minute-long fetch wait cost milliseconds per input.
const REQUEST_DEADLINE: Duration = Duration::from_secs(5);

/// Partitions one CreateTopics or CreatePartitions request may ask for. The
/// broker creates every partition's log at once and sets no limit of its own
/// yet (Kafka refuses operations of more than 10000 metadata records), so a
/// mutated count of 2^31 would only measure the file system.
const MAX_PARTITIONS_PER_REQUEST: i64 = 16;

/// Requests one broker serves before a fresh one replaces it. What requests
/// leave behind (groups, producers, transactions, topics) only grows, and the
/// group timers walk every group on each tick: without a bound the run slows
/// down as it goes.
const REQUESTS_PER_BROKER: u64 = 1024;

/// A broker with more user partitions than this is replaced early.
const MAX_USER_PARTITIONS: i64 = 256;

struct Harness {
    runtime: tokio::runtime::Runtime,
    state: Arc<BrokerState>,
    connection: RequestContext,
    requests: u64,
    /// Removed by `stop`. The last one outlives the process (libFuzzer ends
    /// it with `exit`), so run.sh points TMPDIR at a directory it removes.
    log_dir: tempfile::TempDir,
}

/// The current broker; libFuzzer runs inputs one at a time.
static HARNESS: Mutex<Option<Harness>> = Mutex::new(None);

impl Harness {
    fn start() -> Harness {
        let log_dir = tempfile::tempdir().expect("temporary log directory");
        // The paused clock auto-advances whenever every task waits on a
        // timer, so a request's timeouts cost no wall-clock time.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        let settings = [
            ("listeners", "PLAINTEXT://127.0.0.1:0".to_string()),
            ("log.dirs", log_dir.path().display().to_string()),
            // Internal topics of one partition: creating 50 logs on the
            // first group or transaction request would dominate the run.
            ("offsets.topic.num.partitions", "1".to_string()),
            ("transaction.state.log.num.partitions", "1".to_string()),
            ("group.initial.rebalance.delay.ms", "0".to_string()),
        ];
        let settings: Vec<(String, String)> = settings.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let config = BrokerConfig::load(None, &settings).expect("fuzz broker configuration");
        let broker = runtime.block_on(Broker::bind(config)).expect("fuzz broker");
        let state = broker.state();
        // The background tasks (group timers, retention, the cleaner) run
        // whenever a request is being handled, as they would in a server.
        runtime.spawn(async move {
            let _ = broker.run(std::future::pending()).await;
        });
        Harness {
            runtime,
            state,
            connection: RequestContext {
                connection_id: 1,
                peer: SocketAddr::from(([127, 0, 0, 1], 40000)),
                next_request: Default::default(),
            },
            requests: 0,
            log_dir,
        }
    }

    fn worn_out(&self) -> bool {
        if self.requests >= REQUESTS_PER_BROKER {
            return true;
        }
        let topics = self.state.partitions.topics();
        let user_topics = topics.values().filter(|t| !t.image.name.starts_with("__"));
        user_topics.map(|t| t.image.partitions as i64).sum::<i64>() > MAX_USER_PARTITIONS
    }

    /// Drops the broker without waiting for its blocking tasks, then its log
    /// directory.
    fn stop(self) {
        self.runtime.shutdown_background();
        drop(self.log_dir);
    }
}

/// The partitions a request would create, if it creates any.
fn partitions_created(frame: &[u8]) -> i64 {
    match dispatch::decode(Bytes::copy_from_slice(frame)) {
        Ok(request) => match request.body {
            RequestKind::CreateTopics(body) => body
                .topics
                .iter()
                .map(|t| (t.num_partitions as i64).max(t.assignments.len() as i64))
                .sum(),
            RequestKind::CreatePartitions(body) => body.topics.iter().map(|t| t.count as i64).sum(),
            _ => 0,
        },
        Err(_) => 0,
    }
}

fuzz_target!(|frame: &[u8]| -> Corpus {
    if partitions_created(frame) > MAX_PARTITIONS_PER_REQUEST {
        return Corpus::Reject;
    }
    let mut current = HARNESS.lock().unwrap_or_else(|e| e.into_inner());
    let harness = current.get_or_insert_with(Harness::start);
    let mut response = BytesMut::new();
    let request = dispatch::handle(
        &harness.state,
        &harness.connection,
        Bytes::copy_from_slice(frame),
        &mut response,
    );
    // The deadline's timer must be created inside the runtime.
    let handled = harness
        .runtime
        .block_on(async { tokio::time::timeout(REQUEST_DEADLINE, request).await });
    if let Ok(Outcome::Close(reason)) = handled
        && dispatch::decode(Bytes::copy_from_slice(frame)).is_ok()
    {
        panic!("a request that decodes closed its connection: {reason}");
    }
    harness.requests += 1;
    if harness.worn_out()
        && let Some(harness) = current.take()
    {
        harness.stop();
    }
    Corpus::Keep
});
