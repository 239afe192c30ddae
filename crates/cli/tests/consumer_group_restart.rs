//! A KIP-848 consumer group across a broker crash. The coordinator writes
//! each group epoch, member and assignment to `__consumer_offsets` before
//! it answers the heartbeat that changed them, so after `kill -9` and a
//! restart on the same log directory and port, librdkafka's member
//! (`group.protocol=consumer`) goes on with its member id, epoch and
//! partitions: no rejoin, no rebalance callback, and it keeps consuming.

mod common;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use common::{Broker, TIMEOUT, Wire, block_on, create_topic, produce_values, unique_topic};
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;

const PARTITIONS: i32 = 3;

/// A loopback port free right now: the restarted broker must listen where
/// the member's bootstrap address points.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// What the member saw, appended by its polling thread.
#[derive(Default)]
struct Seen {
    payloads: Vec<String>,
    rebalances: Vec<String>,
}

#[derive(Default)]
struct Journal {
    seen: Mutex<Seen>,
    changed: Condvar,
}

impl Journal {
    fn lock(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, change: impl FnOnce(&mut Seen)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }

    fn wait_for(&self, what: &str, condition: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = self.lock();
        while !condition(&seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{what}: not within {TIMEOUT:?} (consumed {:?}, rebalances {:?})",
                seen.payloads,
                seen.rebalances
            );
            seen = self
                .changed
                .wait_timeout(seen, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

struct MemberContext(Arc<Journal>);

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let event = match rebalance {
            Rebalance::Assign(partitions) => format!("assign {}", partitions.count()),
            Rebalance::Revoke(partitions) if consumer.assignment_lost() => format!("lost {}", partitions.count()),
            Rebalance::Revoke(partitions) => format!("revoke {}", partitions.count()),
            Rebalance::Error(error) => format!("error {error}"),
        };
        self.0.update(|seen| seen.rebalances.push(event));
    }
}

impl Wire {
    fn describe(&mut self, group: &str) -> DescribedGroup {
        let request = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_string()))]);
        self.call(&request, 0)
            .groups
            .into_iter()
            .next()
            .expect("the group answered")
    }
}

/// Describes the group until `condition` holds (the member heartbeats every 500 ms).
fn describe_until(
    broker: &Broker,
    group: &str,
    what: &str,
    condition: impl Fn(&DescribedGroup) -> bool,
) -> DescribedGroup {
    let mut wire = Wire::connect(broker);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let described = wire.describe(group);
        if condition(&described) {
            return described;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {TIMEOUT:?}: {described:?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// One member holding every partition, reconciled with the group's target.
fn settled_on_one_member(group: &DescribedGroup) -> bool {
    group.error_code == 0
        && group.group_state.as_str() == "Stable"
        && group.members.len() == 1
        && group.members[0].member_epoch == group.assignment_epoch
        && group.members[0]
            .assignment
            .topic_partitions
            .iter()
            .map(|t| t.partitions.len())
            .sum::<usize>()
            == PARTITIONS as usize
}

/// (group epoch, assignment epoch, member id, member epoch, assignment) as one value to compare.
fn identity(group: &DescribedGroup) -> (i32, i32, String, i32, String) {
    let member = &group.members[0];
    (
        group.group_epoch,
        group.assignment_epoch,
        member.member_id.to_string(),
        member.member_epoch,
        format!("{:?}", member.assignment),
    )
}

#[test]
fn a_kip_848_member_keeps_its_epoch_and_partitions_across_a_broker_crash() {
    let dir = tempfile::tempdir().expect("log directory");
    let listener = format!("PLAINTEXT://127.0.0.1:{}", free_port());
    let settings = [
        ("listeners", listener.as_str()),
        ("group.consumer.heartbeat.interval.ms", "500"),
    ];
    let mut broker = Broker::start_in(dir.path(), &settings);
    let topic = unique_topic("restart-848");
    let group = unique_topic("restart-848-group");
    let producer = broker.producer(&[]);
    block_on(async {
        create_topic(&broker, &topic, PARTITIONS, &[]).await;
        for partition in 0..PARTITIONS {
            produce_values(&producer, &topic, partition, &[&format!("before-{partition}")]).await;
        }
    });

    let member_config = [
        ("group.id", group.as_str()),
        ("group.protocol", "consumer"),
        ("auto.offset.reset", "earliest"),
        // Back quickly once the broker listens again.
        ("reconnect.backoff.max.ms", "200"),
    ];
    let journal = Arc::new(Journal::default());
    let stop = Arc::new(AtomicBool::new(false));
    let member: BaseConsumer<MemberContext> = broker
        .consumer_config(&member_config)
        .create_with_context(MemberContext(Arc::clone(&journal)))
        .expect("group member");
    member.subscribe(&[&topic]).expect("subscribe");
    let polling = {
        let (journal, stop) = (Arc::clone(&journal), Arc::clone(&stop));
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // Errors while the broker is down (transport, coordinator) are expected and retried.
                if let Some(Ok(message)) = member.poll(Duration::from_millis(100)) {
                    let payload = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
                    journal.update(|seen| seen.payloads.push(payload));
                }
            }
        })
    };
    journal.wait_for("every record consumed", |seen| {
        seen.payloads.len() >= PARTITIONS as usize
    });

    // A second member comes and goes: the group's epoch is then past the one
    // a lone member rejoining from scratch would get.
    let second: BaseConsumer = broker.consumer(&member_config);
    second.subscribe(&[&topic]).expect("subscribe");
    let deadline = Instant::now() + TIMEOUT;
    while second.assignment().expect("assignment").count() == 0 {
        assert!(
            Instant::now() < deadline,
            "the second member got no partition within {TIMEOUT:?}"
        );
        second.poll(Duration::from_millis(100));
    }
    drop(second);
    let before = describe_until(&broker, &group, "one member settled", settled_on_one_member);
    let rebalances = journal.lock().rebalances.clone();

    broker.kill();
    let broker = Broker::start_in(dir.path(), &settings);
    let after = describe_until(&broker, &group, "the group loaded", |g| g.error_code == 0);
    assert_eq!(
        identity(&after),
        identity(&before),
        "the group and its member as before the crash"
    );
    assert!(settled_on_one_member(&after), "{after:?}");

    block_on(async {
        let producer = broker.producer(&[]);
        for partition in 0..PARTITIONS {
            produce_values(&producer, &topic, partition, &[&format!("after-{partition}")]).await;
        }
    });
    journal.wait_for("the new records consumed", |seen| {
        seen.payloads.iter().filter(|p| p.starts_with("after-")).count() >= PARTITIONS as usize
    });
    let later = describe_until(&broker, &group, "the member still settled", settled_on_one_member);
    assert_eq!(identity(&later), identity(&before), "no rejoin, no new epoch");
    assert_eq!(
        journal.lock().rebalances,
        rebalances,
        "no rebalance callback after the restart"
    );
    stop.store(true, Ordering::Relaxed);
    polling.join().expect("the polling thread");
}
