//! Hostile and broken bytes on a raw socket: each such connection is answered
//! with an error or closed, and the broker goes on serving other clients.
//! Connections that hold on without finishing (idle, stalled half-way
//! through a request, consumers that never read) cost bounded memory.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Instant;

use common::{Broker, TIMEOUT, block_on};

/// API key 18, ApiVersions.
const API_VERSIONS: i16 = 18;

fn connect(broker: &Broker) -> TcpStream {
    let stream = TcpStream::connect(broker.addr()).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    stream.set_write_timeout(Some(TIMEOUT)).expect("write timeout");
    stream
}

/// A request frame: size, then header v1 (api key, version, correlation id,
/// client id), then `body`.
fn frame(api_key: i16, api_version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let client_id = b"bad-input-test";
    let mut payload = Vec::new();
    payload.extend_from_slice(&api_key.to_be_bytes());
    payload.extend_from_slice(&api_version.to_be_bytes());
    payload.extend_from_slice(&correlation_id.to_be_bytes());
    payload.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    payload.extend_from_slice(client_id);
    payload.extend_from_slice(body);
    let mut framed = (payload.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&payload);
    framed
}

/// Reads one response frame; None if the broker closed the connection first.
fn read_response(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut size = [0_u8; 4];
    match stream.read_exact(&mut size) {
        Ok(()) => {}
        Err(error) if matches!(error.kind(), ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset) => return None,
        Err(error) => panic!("no answer and no close within {TIMEOUT:?}: {error}"),
    }
    let size = i32::from_be_bytes(size);
    assert!((4..=1 << 20).contains(&size), "implausible response size {size}");
    let mut response = vec![0_u8; size as usize];
    stream.read_exact(&mut response).expect("the rest of the response");
    Some(response)
}

/// Waits until the broker either sends something (an error response) or
/// closes the connection; fails if it does neither in time.
fn expect_error_or_close(stream: &mut TcpStream) {
    let mut buffer = [0_u8; 4096];
    match stream.read(&mut buffer) {
        Ok(_) => {}
        Err(error) if error.kind() == ErrorKind::ConnectionReset => {}
        Err(error) => panic!("the connection was neither answered nor closed within {TIMEOUT:?}: {error}"),
    }
}

/// ApiVersions v0 on a fresh connection succeeds: the broker still serves.
fn assert_still_serving(broker: &Broker) {
    let mut stream = connect(broker);
    stream
        .write_all(&frame(API_VERSIONS, 0, 7, &[]))
        .expect("send ApiVersions");
    let response = read_response(&mut stream).expect("an ApiVersions response");
    assert_eq!(
        i32::from_be_bytes(response[0..4].try_into().expect("4 bytes")),
        7,
        "correlation id"
    );
    assert_eq!(
        i16::from_be_bytes(response[4..6].try_into().expect("2 bytes")),
        0,
        "error code"
    );

    let metadata = broker
        .admin()
        .inner()
        .fetch_metadata(None, TIMEOUT)
        .expect("metadata from a real client");
    assert_eq!(metadata.brokers().len(), 1);
}

#[test]
fn garbage_bytes_close_the_connection() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("send");
    expect_error_or_close(&mut stream);
    assert_still_serving(&broker);
}

#[test]
fn random_bytes_after_a_plausible_size_close_the_connection() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    // A frame of 64 bytes whose header is nonsense (api key -1, and so on).
    let mut bytes = 64_i32.to_be_bytes().to_vec();
    bytes.extend((0..64_u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8 | 0x80));
    stream.write_all(&bytes).expect("send");
    expect_error_or_close(&mut stream);
    assert_still_serving(&broker);
}

#[test]
fn a_two_gibibyte_length_prefix_closes_the_connection() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    stream.write_all(&i32::MAX.to_be_bytes()).expect("send size");
    // A broker that tried to allocate or read 2 GiB would hang here.
    let _ = stream.write_all(&[0_u8; 1024]);
    expect_error_or_close(&mut stream);
    assert_still_serving(&broker);
}

#[test]
fn a_negative_length_prefix_closes_the_connection() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    stream.write_all(&(-1_i32).to_be_bytes()).expect("send size");
    expect_error_or_close(&mut stream);
    assert_still_serving(&broker);
}

#[test]
fn a_truncated_frame_is_dropped_when_the_client_goes_away() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    let full = frame(API_VERSIONS, 0, 1, &[]);
    // Claim the whole frame but send half of it, then end the stream.
    stream.write_all(&full[..full.len() / 2]).expect("send half");
    stream.shutdown(Shutdown::Write).expect("half-close");
    expect_error_or_close(&mut stream);
    assert_still_serving(&broker);
}

#[test]
fn a_truncated_request_body_is_an_error_not_a_crash() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    // Metadata v1 (api key 3) whose topics array claims 1000 entries but holds none.
    stream
        .write_all(&frame(3, 1, 9, &1000_i32.to_be_bytes()))
        .expect("send");
    expect_error_or_close(&mut stream);
    assert_still_serving(&broker);
}

#[test]
fn an_unknown_api_key_is_answered_with_an_error_or_closed() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    stream.write_all(&frame(9_999, 0, 42, &[])).expect("send");
    // Kafka closes the connection; an error response must at least be for this request.
    if let Some(response) = read_response(&mut stream) {
        assert_eq!(
            i32::from_be_bytes(response[0..4].try_into().expect("4 bytes")),
            42,
            "correlation id"
        );
    }
    assert_still_serving(&broker);
}

#[test]
fn an_unsupported_api_versions_version_is_answered_in_v0() {
    let broker = Broker::start();
    let mut stream = connect(&broker);
    // KIP-511: a too-new ApiVersions is answered in v0 with UNSUPPORTED_VERSION
    // (35) and the supported ranges, so the client can retry with one it knows.
    stream.write_all(&frame(API_VERSIONS, 999, 5, &[])).expect("send");
    let response = read_response(&mut stream).expect("an ApiVersions v0 response");
    assert_eq!(
        i32::from_be_bytes(response[0..4].try_into().expect("4 bytes")),
        5,
        "correlation id"
    );
    assert_eq!(
        i16::from_be_bytes(response[4..6].try_into().expect("2 bytes")),
        35,
        "UNSUPPORTED_VERSION"
    );
    let count = i32::from_be_bytes(response[6..10].try_into().expect("4 bytes"));
    assert!(count > 0, "the supported ranges are listed");
    let ranges = &response[10..];
    let lists_api_versions = ranges
        .chunks_exact(6)
        .take(count as usize)
        .any(|range| i16::from_be_bytes([range[0], range[1]]) == API_VERSIONS);
    assert!(lists_api_versions, "ApiVersions itself is among the ranges");
    assert_still_serving(&broker);
}

#[test]
fn many_bad_connections_in_a_row_leave_the_broker_serving() {
    let broker = Broker::start();
    let deadline = Instant::now() + TIMEOUT * 2;
    for round in 0..20_u8 {
        let mut stream = connect(&broker);
        let bytes: Vec<u8> = match round % 4 {
            0 => b"\x00\x00\x00\x05hello".to_vec(),
            1 => i32::MAX.to_be_bytes().to_vec(),
            2 => frame(9_999, 3, i32::from(round), &[]),
            _ => vec![round; 3],
        };
        stream.write_all(&bytes).expect("send");
        if round % 4 == 3 {
            // Three bytes: not even a length prefix. Leave abruptly.
            drop(stream);
        } else {
            expect_error_or_close(&mut stream);
        }
        assert!(Instant::now() < deadline, "too slow");
    }
    assert_still_serving(&broker);
}

/// API key 1, Fetch; v4 is the simplest version with isolation levels.
const FETCH: i16 = 1;

/// A Fetch v4 body for `topic` partition 0 from offset 0, `max_bytes` at most.
fn fetch_body(topic: &str, max_bytes: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1_i32).to_be_bytes()); // replica id: a consumer
    body.extend_from_slice(&0_i32.to_be_bytes()); // max wait ms
    body.extend_from_slice(&1_i32.to_be_bytes()); // min bytes
    body.extend_from_slice(&max_bytes.to_be_bytes());
    body.push(0); // read_uncommitted
    body.extend_from_slice(&1_i32.to_be_bytes()); // one topic
    body.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&1_i32.to_be_bytes()); // one partition
    body.extend_from_slice(&0_i32.to_be_bytes());
    body.extend_from_slice(&0_i64.to_be_bytes()); // fetch offset
    body.extend_from_slice(&max_bytes.to_be_bytes());
    body
}

/// The resident memory of a process, in bytes.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kib * 1024
}

#[test]
fn memory_stays_bounded_with_thousands_of_connections_and_consumers_that_never_read() {
    const IDLE: usize = 2000;
    const STALLED: usize = 1000;
    const SLOW_CONSUMERS: usize = 40;
    const FETCH_BYTES: i32 = 4 << 20;
    let broker = Broker::start();
    let topic = common::unique_topic("slow-readers");
    // 8 MiB in the log, so every slow consumer's fetch is answered in full.
    let producer = broker.producer(&[("linger.ms", "5"), ("compression.type", "none")]);
    let value = vec![b'x'; 8 * 1024];
    block_on(async {
        let deliveries: Vec<_> = (0..1024)
            .map(|_| {
                let record = rdkafka::producer::FutureRecord::<(), [u8]>::to(&topic)
                    .partition(0)
                    .payload(&value[..]);
                producer.send_result(record).expect("queued")
            })
            .collect();
        for delivery in deliveries {
            delivery.await.expect("not canceled").expect("delivered");
        }
    });
    let baseline = resident_bytes(broker.pid());

    // Connections that never send a byte, and ones that stall half-way
    // through a request's size prefix or body.
    let mut held = Vec::with_capacity(IDLE + STALLED + SLOW_CONSUMERS);
    for index in 0..IDLE + STALLED {
        let mut stream = connect(&broker);
        if index >= IDLE {
            let request = frame(API_VERSIONS, 0, 1, &[0; 100]);
            stream.write_all(&request[..request.len() / 2]).expect("half a request");
        }
        held.push(stream);
    }
    assert_still_serving(&broker);
    let with_connections = resident_bytes(broker.pid());

    // Consumers that ask for 4 MiB five times over and never read a byte.
    for _ in 0..SLOW_CONSUMERS {
        let mut stream = connect(&broker);
        for correlation_id in 0..5 {
            let request = frame(FETCH, 4, correlation_id, &fetch_body(&topic, FETCH_BYTES));
            stream.write_all(&request).expect("send Fetch");
        }
        // Wait until the broker has started answering, so its response is in memory.
        let mut first = [0_u8; 4];
        assert_eq!(stream.peek(&mut first).expect("the response starts"), 4);
        held.push(stream);
    }
    assert_still_serving(&broker);
    let with_slow_consumers = resident_bytes(broker.pid());
    println!(
        "broker RSS: {} MiB at rest, {} MiB with {IDLE} idle and {STALLED} stalled connections, \
         {} MiB with {SLOW_CONSUMERS} consumers that never read",
        baseline >> 20,
        with_connections >> 20,
        with_slow_consumers >> 20
    );
    // Each held connection costs a task and small buffers, never a
    // request's announced size; each slow consumer holds at most the one
    // response being written (Fetch answers are built in memory).
    let per_connection = with_connections.saturating_sub(baseline) / (IDLE + STALLED) as u64;
    assert!(per_connection < 64 * 1024, "{per_connection} bytes per held connection");
    let per_slow_consumer = with_slow_consumers.saturating_sub(with_connections) / SLOW_CONSUMERS as u64;
    assert!(
        per_slow_consumer < 2 * FETCH_BYTES as u64,
        "{per_slow_consumer} bytes per consumer that never reads"
    );
    drop(held);
    assert_still_serving(&broker);
}
