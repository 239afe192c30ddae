//! Group rebalances under load, for each rebalance protocol librdkafka
//! speaks: eager (`range`), cooperative (`cooperative-sticky`) and KIP-848
//! (`group.protocol=consumer`). Three members join one by one while records
//! are produced, then one leaves. Every record must be consumed (and, as
//! each member commits what it read before releasing a partition, exactly
//! once and in order per partition), the committed offsets must end at the
//! log end offsets, and no partition may ever be owned by two members at once.
//!
//! Ownership is checked from a journal: every member's rebalance callbacks
//! and consumed records, appended under one lock, so the journal is a single
//! order in which each member's own events keep their order. A member
//! releases a partition at the end of its revoke callback (after committing
//! what it consumed) and takes it at the end of its assign callback; any
//! assignment of a partition whose previous owner has not yet released it,
//! and any record consumed from a partition the member does not own, is an
//! overlap.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::{Broker, TIMEOUT, bounded, create_topic, unique_topic};
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 6;
const RECORDS: u32 = 30_000;
/// Records are produced in five equal steps: one during each of the four
/// membership changes and one while three members share the partitions.
const RECORDS_PER_STEP: u32 = RECORDS / 5;

/// Quick rebalances: no initial delay, KIP-848 heartbeats every 500 ms.
const BROKER_SETTINGS: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "0"),
    ("group.consumer.heartbeat.interval.ms", "500"),
    ("group.consumer.session.timeout.ms", "6000"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_members_join_and_leave_under_load() {
    rebalance_under_load(&[
        ("partition.assignment.strategy", "range"),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_join_and_leave_under_load() {
    rebalance_under_load(&[
        ("partition.assignment.strategy", "cooperative-sticky"),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip_848_members_join_and_leave_under_load() {
    // The broker assigns partitions and sets the heartbeat interval: the
    // classic protocol's assignment and session properties do not apply.
    rebalance_under_load(&[("group.protocol", "consumer")]).await;
}

async fn rebalance_under_load(member_config: &[(&str, &str)]) {
    let broker = Broker::start_with(BROKER_SETTINGS);
    bounded(4, async {
        let topic = unique_topic("rebalance");
        let group = unique_topic("rebalance-group");
        create_topic(&broker, &topic, PARTITIONS, &[]).await;
        let producer = broker.producer(&[("linger.ms", "5")]);
        let journal = Arc::new(Journal::default());
        let start = |member| Member::start(&broker, &group, &topic, member_config, member, &journal);
        let mut produced = 0;

        let first = start(0);
        produce(&producer, &topic, &mut produced).await;
        journal.wait_until("member 0 owns every partition", |owners| {
            owners.len() == PARTITIONS as usize && owners.values().all(|&owner| owner == 0)
        });

        let second = start(1);
        produce(&producer, &topic, &mut produced).await;
        journal.wait_until("members 0 and 1 share every partition", |owners| {
            shared_by(owners, &[0, 1])
        });

        let third = start(2);
        produce(&producer, &topic, &mut produced).await;
        journal.wait_until("members 0, 1 and 2 share every partition", |owners| {
            shared_by(owners, &[0, 1, 2])
        });
        produce(&producer, &topic, &mut produced).await;

        first.stop();
        produce(&producer, &topic, &mut produced).await;
        first.wait_closed();
        journal.wait_until("members 1 and 2 share every partition", |owners| {
            shared_by(owners, &[1, 2])
        });
        assert_eq!(produced, RECORDS);

        journal.wait_for_every_record();
        for member in [second, third] {
            member.stop();
            member.wait_closed();
        }

        let state = journal.lock();
        assert_eq!(state.errors, Vec::<String>::new(), "errors seen by the members");
        let owners =
            owners_after(&state.events).unwrap_or_else(|overlap| panic!("{overlap}\n{}", timeline(&state.events)));
        assert!(owners.is_empty(), "closed members still own {owners:?}");
        // Each member commits what it read before releasing a partition, so
        // each next owner resumes exactly there: every partition was read
        // once, in order, across all its owners.
        for partition in 0..PARTITIONS {
            let offsets: Vec<i64> = state
                .events
                .iter()
                .filter_map(|event| match *event {
                    Event::Consumed {
                        partition: read,
                        offset,
                        id,
                        ..
                    } if read == partition => {
                        assert_eq!(
                            id % PARTITIONS as u32,
                            partition as u32,
                            "record {id} in partition {partition}"
                        );
                        Some(offset)
                    }
                    _ => None,
                })
                .collect();
            let expected: Vec<i64> = (0..i64::from(RECORDS / PARTITIONS as u32)).collect();
            assert!(
                offsets == expected,
                "partition {partition} was not read once in order:\n{}",
                timeline(&state.events)
            );
        }

        // Every member committed what it consumed before giving a partition
        // away or closing: the group's offsets are the log end offsets.
        let reader = broker.consumer(&[("group.id", &group)]);
        let mut wanted = TopicPartitionList::new();
        for partition in 0..PARTITIONS {
            wanted.add_partition(&topic, partition);
        }
        let committed = reader.committed_offsets(wanted, TIMEOUT).expect("OffsetFetch");
        let mut log_end_total = 0;
        for partition in 0..PARTITIONS {
            let (_, log_end) = reader
                .fetch_watermarks(&topic, partition, TIMEOUT)
                .expect("ListOffsets");
            log_end_total += log_end;
            let element = committed.find_partition(&topic, partition).expect("partition answered");
            assert_eq!(
                element.offset(),
                Offset::Offset(log_end),
                "committed offset of partition {partition}"
            );
        }
        assert_eq!(log_end_total, i64::from(RECORDS));
    })
    .await;
}

/// Produces the next step's records, record `id` to partition `id % 6`,
/// waiting for every acknowledgement.
async fn produce(producer: &FutureProducer, topic: &str, produced: &mut u32) {
    let mut deliveries = Vec::with_capacity(RECORDS_PER_STEP as usize);
    for id in *produced..*produced + RECORDS_PER_STEP {
        let payload = id.to_string();
        let record = FutureRecord::<(), str>::to(topic)
            .partition((id % PARTITIONS as u32) as i32)
            .payload(&payload);
        match producer.send_result(record) {
            Ok(delivery) => deliveries.push(delivery),
            Err((error, _)) => panic!("cannot queue record {id}: {error}"),
        }
    }
    for delivery in deliveries {
        delivery
            .await
            .expect("delivery reported")
            .map_err(|(error, _)| error)
            .expect("record acknowledged");
    }
    *produced += RECORDS_PER_STEP;
}

/// Every partition owned, each of `members` owning at least one.
fn shared_by(owners: &BTreeMap<i32, usize>, members: &[usize]) -> bool {
    owners.len() == PARTITIONS as usize
        && members
            .iter()
            .all(|member| owners.values().any(|owner| owner == member))
        && owners.values().all(|owner| members.contains(owner))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Event {
    /// The end of an assign callback.
    Assigned { member: usize, partition: i32 },
    /// The end of a revoke callback, after the member committed.
    Revoked { member: usize, partition: i32 },
    Consumed {
        member: usize,
        partition: i32,
        offset: i64,
        id: u32,
    },
}

/// Who owns each partition after `events`, or the first event at which two
/// members owned one partition at once (or a member read a partition it did
/// not own).
fn owners_after(events: &[Event]) -> Result<BTreeMap<i32, usize>, String> {
    let mut owners = BTreeMap::new();
    for (index, event) in events.iter().enumerate() {
        match *event {
            Event::Assigned { member, partition } => {
                if let Some(owner) = owners.insert(partition, member) {
                    return Err(format!(
                        "event {index}: partition {partition} assigned to member {member} while member {owner} still owns it"
                    ));
                }
            }
            Event::Revoked { member, partition } => {
                if owners.remove(&partition) != Some(member) {
                    return Err(format!(
                        "event {index}: member {member} released partition {partition}, which it did not own"
                    ));
                }
            }
            Event::Consumed {
                member,
                partition,
                offset,
                ..
            } => {
                if owners.get(&partition) != Some(&member) {
                    return Err(format!(
                        "event {index}: member {member} consumed offset {offset} of partition {partition}, owned by {:?}",
                        owners.get(&partition)
                    ));
                }
            }
        }
    }
    Ok(owners)
}

#[derive(Default)]
struct JournalState {
    events: Vec<Event>,
    consumed_ids: HashSet<u32>,
    errors: Vec<String>,
}

/// Every member's events in one order, and a condition variable that wakes
/// the test whenever one is added.
#[derive(Default)]
struct Journal {
    state: Mutex<JournalState>,
    changed: Condvar,
}

impl Journal {
    fn lock(&self) -> MutexGuard<'_, JournalState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, event: Event) {
        let mut state = self.lock();
        if let Event::Consumed { id, .. } = event {
            state.consumed_ids.insert(id);
        }
        state.events.push(event);
        self.changed.notify_all();
    }

    fn error(&self, error: String) {
        self.lock().errors.push(error);
        self.changed.notify_all();
    }

    /// Waits (bounded) until the partition owners satisfy `condition`.
    fn wait_until(&self, what: &str, condition: impl Fn(&BTreeMap<i32, usize>) -> bool) {
        self.wait(what, |state| {
            let owners = owners_after(&state.events).unwrap_or_else(|overlap| panic!("{overlap}"));
            condition(&owners)
        });
    }

    fn wait_for_every_record(&self) {
        self.wait("every record consumed", |state| {
            state.consumed_ids.len() == RECORDS as usize
        });
    }

    fn wait(&self, what: &str, condition: impl Fn(&JournalState) -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        let mut state = self.lock();
        while !condition(&state) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{what}: not within {TIMEOUT:?}; owners {:?}, {} records consumed, errors {:?}\n{}",
                owners_after(&state.events),
                state.consumed_ids.len(),
                state.errors,
                timeline(&state.events)
            );
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

/// A member's rebalance callbacks: commit before releasing, then journal.
struct MemberContext {
    member: usize,
    journal: Arc<Journal>,
}

impl ClientContext for MemberContext {}

impl ConsumerContext for MemberContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(partitions) = rebalance else {
            return;
        };
        if consumer.assignment_lost() {
            // Only a member the coordinator expired loses its assignment; these all stay alive.
            self.journal.error(format!("member {}: assignment lost", self.member));
        } else {
            // The next owner resumes where this member stopped.
            match consumer.commit_consumer_state(CommitMode::Sync) {
                Ok(()) => {}
                Err(error) if error.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => {}
                Err(error) => self
                    .journal
                    .error(format!("member {}: commit before revoking: {error}", self.member)),
            }
        }
        for element in partitions.elements() {
            self.journal.record(Event::Revoked {
                member: self.member,
                partition: element.partition(),
            });
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(partitions) => {
                for element in partitions.elements() {
                    self.journal.record(Event::Assigned {
                        member: self.member,
                        partition: element.partition(),
                    });
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => self
                .journal
                .error(format!("member {}: rebalance: {error}", self.member)),
        }
    }
}

/// A group member polling on its own thread until told to stop; it then
/// closes (revoking and committing through its callbacks) and leaves.
struct Member {
    stop: Arc<AtomicBool>,
    closed: mpsc::Receiver<()>,
}

impl Member {
    fn start(
        broker: &Broker,
        group: &str,
        topic: &str,
        member_config: &[(&str, &str)],
        member: usize,
        journal: &Arc<Journal>,
    ) -> Member {
        let mut config = broker.consumer_config(member_config);
        config.set("group.id", group);
        config.set("auto.offset.reset", "earliest");
        // Offsets are stored only for records journaled below: closing polls
        // (rdkafka's drop) and would otherwise store, and commit, records
        // nobody looked at.
        config.set("enable.auto.offset.store", "false");
        let context = MemberContext {
            member,
            journal: Arc::clone(journal),
        };
        let consumer: BaseConsumer<MemberContext> = config.create_with_context(context).expect("group member");
        consumer.subscribe(&[topic]).expect("subscribe");

        let stop = Arc::new(AtomicBool::new(false));
        let (closed_tx, closed) = mpsc::channel();
        let journal = Arc::clone(journal);
        let stopping = Arc::clone(&stop);
        thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(message)) => {
                        let id = message
                            .payload_view::<str>()
                            .and_then(Result::ok)
                            .and_then(|text| text.parse().ok());
                        match id {
                            Some(id) => journal.record(Event::Consumed {
                                member,
                                partition: message.partition(),
                                offset: message.offset(),
                                id,
                            }),
                            None => {
                                journal.error(format!("member {member}: unexpected payload {:?}", message.payload()))
                            }
                        }
                        if let Err(error) = consumer.store_offset_from_message(&message) {
                            journal.error(format!("member {member}: cannot store an offset: {error}"));
                        }
                    }
                    Some(Err(error)) => journal.error(format!("member {member}: {error}")),
                    None => {}
                }
            }
            // Closing runs the revoke callback (commit, release) and leaves the group.
            drop(consumer);
            let _ = closed_tx.send(());
        });
        Member { stop, closed }
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn wait_closed(self) {
        self.stop();
        self.closed
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|_| panic!("a member did not close within {TIMEOUT:?}"));
    }
}

/// The ownership check can fail: it finds each kind of overlap.
#[test]
fn the_ownership_check_finds_overlaps() {
    use Event::*;
    let taken = [
        Assigned {
            member: 0,
            partition: 1,
        },
        Assigned {
            member: 1,
            partition: 1,
        },
    ];
    assert!(owners_after(&taken).is_err(), "assigned while owned");
    let foreign_read = [
        Assigned {
            member: 0,
            partition: 1,
        },
        Consumed {
            member: 1,
            partition: 1,
            offset: 0,
            id: 1,
        },
    ];
    assert!(owners_after(&foreign_read).is_err(), "read by a non-owner");
    let late_read = [
        Assigned {
            member: 0,
            partition: 1,
        },
        Revoked {
            member: 0,
            partition: 1,
        },
        Consumed {
            member: 0,
            partition: 1,
            offset: 0,
            id: 1,
        },
    ];
    assert!(owners_after(&late_read).is_err(), "read after release");
    let handed_over = [
        Assigned {
            member: 0,
            partition: 1,
        },
        Revoked {
            member: 0,
            partition: 1,
        },
        Assigned {
            member: 1,
            partition: 1,
        },
    ];
    assert_eq!(owners_after(&handed_over), Ok(BTreeMap::from([(1, 1)])));
}

/// For failure messages, per partition in journal order: `#index+mN` when
/// member N took it, `#index-mN` when it released it, `mN[a..=b]` for the
/// offsets it read in a row.
fn timeline(events: &[Event]) -> String {
    let mut text = String::new();
    for wanted in 0..PARTITIONS {
        text.push_str(&format!("partition {wanted}:"));
        // The offsets one member is reading in a row: (member, first, last).
        let mut reading: Option<(usize, i64, i64)> = None;
        let end_reading = |text: &mut String, reading: &mut Option<(usize, i64, i64)>| {
            if let Some((member, first, last)) = reading.take() {
                text.push_str(&format!(" m{member}[{first}..={last}]"));
            }
        };
        for (index, event) in events.iter().enumerate() {
            match *event {
                Event::Assigned { member, partition } if partition == wanted => {
                    end_reading(&mut text, &mut reading);
                    text.push_str(&format!(" #{index}+m{member}"));
                }
                Event::Revoked { member, partition } if partition == wanted => {
                    end_reading(&mut text, &mut reading);
                    text.push_str(&format!(" #{index}-m{member}"));
                }
                Event::Consumed {
                    member,
                    partition,
                    offset,
                    ..
                } if partition == wanted => match &mut reading {
                    Some((reader, _, last)) if *reader == member && *last + 1 == offset => *last = offset,
                    _ => {
                        end_reading(&mut text, &mut reading);
                        reading = Some((member, offset, offset));
                    }
                },
                _ => {}
            }
        }
        end_reading(&mut text, &mut reading);
        text.push('\n');
    }
    text
}
