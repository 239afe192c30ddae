//! Every request through the broker's real dispatch point and handlers.
//!
//! One broker per process, on a temporary log directory, whose state carries
//! over from input to input (topics, groups, producers, transactions), so
//! well-formed requests with nonsense values (negative partitions, empty
//! names, huge `max_bytes`, unknown member ids) reach the handlers. A request
//! may get any error code; it must never panic, and a request that decodes
//! must never close the connection (its response must encode).
#![no_main]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gregor_broker::dispatch::{self, Outcome, RequestContext};
use gregor_broker::state::BrokerState;
use gregor_broker::{Broker, BrokerConfig};
use kafka_protocol::messages::RequestKind;
use libfuzzer_sys::{Corpus, fuzz_target};

/// How long a request may wait, on the paused clock: long enough for a long
/// poll or a rebalance to finish, and free in wall-clock time.
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);

/// Partitions one CreateTopics or CreatePartitions request may ask for. The
/// broker creates every partition's log at once and sets no limit of its own
/// yet (Kafka refuses operations of more than 10000 metadata records), so a
/// mutated count of 2^31 would only measure the file system.
const MAX_PARTITIONS_PER_REQUEST: i64 = 16;

/// Past this many user partitions, every user topic is deleted, which keeps
/// the log directory and the cost per input bounded in long runs.
const MAX_USER_PARTITIONS: i64 = 256;

struct Harness {
    runtime: tokio::runtime::Runtime,
    state: Arc<BrokerState>,
    connection: RequestContext,
    inputs: AtomicU64,
    /// Never dropped, as libFuzzer ends the process with `exit`: run.sh
    /// points TMPDIR at a directory it removes afterwards.
    _log_dir: tempfile::TempDir,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

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
            },
            inputs: AtomicU64::new(0),
            _log_dir: log_dir,
        }
    }

    /// Deletes every user topic once there are too many partitions.
    fn bound_state(&self) {
        let topics = self.state.partitions.topics();
        let user_topics: Vec<_> = topics.values().filter(|t| !t.image.name.starts_with("__")).collect();
        let partitions: i64 = user_topics.iter().map(|t| t.image.partitions as i64).sum();
        if partitions <= MAX_USER_PARTITIONS {
            return;
        }
        for topic in user_topics {
            let _ = self.state.partitions.delete_topic(&topic.image.name);
        }
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
    let harness = HARNESS.get_or_init(Harness::start);
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
    if harness.inputs.fetch_add(1, Ordering::Relaxed).is_multiple_of(64) {
        harness.bound_state();
    }
    Corpus::Keep
});
