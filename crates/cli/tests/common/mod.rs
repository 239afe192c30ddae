//! Shared by the integration tests: a real `gregor start` child process on
//! an ephemeral port, rdkafka clients pointed at it, and bounded helpers.
//!
//! Every wait has a deadline; the broker child is killed (by its own PID,
//! through `Child::kill`) when its guard drops, also when a test panics.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tempfile::TempDir;

/// The bound on any one wait in these tests.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A `gregor start` child process. Killed on drop.
pub struct Broker {
    child: Child,
    addr: String,
    log_dir: PathBuf,
    /// Owns the log directory unless the test passed its own.
    _temp_dir: Option<TempDir>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Broker {
    /// A broker with Kafka's defaults in a fresh log directory.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// A broker with extra `--set key=value` settings.
    pub fn start_with(settings: &[(&str, &str)]) -> Broker {
        let temp_dir = tempfile::tempdir().expect("temporary log directory");
        let log_dir = temp_dir.path().to_path_buf();
        let mut broker = Broker::start_in(&log_dir, settings);
        broker._temp_dir = Some(temp_dir);
        broker
    }

    /// A broker on an existing log directory (to restart over the same data).
    pub fn start_in(log_dir: &Path, settings: &[(&str, &str)]) -> Broker {
        let mut args = vec!["--set".to_string(), "listeners=PLAINTEXT://127.0.0.1:0".to_string()];
        args.extend(["--set".to_string(), format!("log.dirs={}", log_dir.display())]);
        for (key, value) in settings {
            args.extend(["--set".to_string(), format!("{key}={value}")]);
        }
        Broker::start_with_args(&args, log_dir)
    }

    /// `gregor start ARGS...`; the arguments must make it listen on an
    /// ephemeral loopback port and keep its data in `log_dir`.
    pub fn start_with_args(args: &[String], log_dir: &Path) -> Broker {
        let mut command = Command::new(env!("CARGO_BIN_EXE_gregor"));
        command.arg("start").args(args);
        Broker::spawn(command, log_dir)
    }

    /// [`Broker::start_with_args`] in a process that first runs `shell`
    /// (e.g. `ulimit -Sn 256`), then becomes `gregor start`.
    pub fn start_after_shell(shell: &str, args: &[String], log_dir: &Path) -> Broker {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("{shell} && exec \"$0\" start \"$@\""))
            .arg(env!("CARGO_BIN_EXE_gregor"))
            .args(args);
        Broker::spawn(command, log_dir)
    }

    fn spawn(mut command: Command, log_dir: &Path) -> Broker {
        command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn gregor start");

        // Drain stderr for the whole life of the child (a full pipe would
        // block it), keep every line for diagnostics, and hand the first
        // "listening on" line to the test.
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (address_tx, address_rx) = mpsc::channel();
        let reader = BufReader::new(child.stderr.take().expect("piped stderr"));
        let lines = Arc::clone(&stderr);
        thread::spawn(move || {
            for line in reader.lines() {
                let Ok(line) = line else { break };
                if let Some((_, address)) = line.split_once("listening on ") {
                    let _ = address_tx.send(address.trim().to_string());
                }
                lines.lock().expect("stderr lines").push(line);
            }
        });
        let mut broker = Broker {
            child,
            addr: String::new(),
            log_dir: log_dir.to_path_buf(),
            _temp_dir: None,
            stderr,
        };
        match address_rx.recv_timeout(TIMEOUT) {
            Ok(address) => broker.addr = address,
            Err(_) => panic!(
                "the broker did not report 'listening on' within {TIMEOUT:?}:\n{}",
                broker.stderr()
            ),
        }
        broker
    }

    /// host:port of the listener.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the broker logged so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("stderr lines").join("\n")
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        self.wait_for_exit()
    }

    /// `kill -9`: a crash, with no shutdown, flush or checkpoint.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the broker");
        self.child.wait().expect("reap the broker");
    }

    /// Waits (bounded) for the process to exit by itself.
    pub fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not exit within {TIMEOUT:?}:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.addr);
        config.set("socket.timeout.ms", "10000");
        config
    }

    pub fn admin(&self) -> AdminClient<DefaultClientContext> {
        self.client_config().create().expect("admin client")
    }

    pub fn producer(&self, extra: &[(&str, &str)]) -> FutureProducer {
        let mut config = self.client_config();
        config.set("message.timeout.ms", "20000");
        config.set("acks", "all");
        for (key, value) in extra {
            config.set(*key, *value);
        }
        config.create().expect("producer")
    }

    /// A consumer for assign(). librdkafka's assign() needs a group.id even
    /// when nothing is committed; `extra` may set a real one.
    pub fn consumer(&self, extra: &[(&str, &str)]) -> BaseConsumer {
        self.consumer_config(extra).create().expect("consumer")
    }

    /// The configuration of [`Broker::consumer`], for consumers that need
    /// their own context (rebalance callbacks).
    pub fn consumer_config(&self, extra: &[(&str, &str)]) -> ClientConfig {
        let mut config = self.client_config();
        config.set("group.id", "gregor-tests-assign-only");
        config.set("enable.auto.commit", "false");
        config.set("enable.partition.eof", "false");
        for (key, value) in extra {
            config.set(*key, *value);
        }
        config
    }

    /// Runs the `gregor` binary with `args` plus `--bootstrap-server`, feeding
    /// `stdin`; bounded by [`TIMEOUT`].
    pub fn gregor(&self, args: &[&str], stdin: &str) -> Output {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--bootstrap-server", &self.addr]);
        run_gregor(&all, stdin)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Only the process this guard started, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `gregor` binary, feeding `stdin`, killing it if it outlives [`TIMEOUT`].
pub fn run_gregor(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gregor"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gregor");
    let mut input = child.stdin.take().expect("piped stdin");
    let stdin = stdin.as_bytes().to_vec();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("gregor {args:?} did not finish within {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    writer.join().expect("stdin writer");
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Asserts the command succeeded and returns its stdout.
pub fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "gregor failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

/// Asserts the command failed and returns its stderr.
pub fn stderr_of_failure(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "gregor unexpectedly succeeded:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stderr.clone()).expect("UTF-8 output")
}

/// A topic name no other test uses.
pub fn unique_topic(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(TIMEOUT))
        .operation_timeout(Some(TIMEOUT))
}

/// Creates a topic, asserting success.
pub async fn create_topic(broker: &Broker, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let results = broker
        .admin()
        .create_topics([&new_topic], &admin_options())
        .await
        .expect("CreateTopics");
    assert_eq!(results, vec![Ok(topic.to_string())], "creating {topic}");
}

/// Produces `values` (no keys) to one partition, asserting every delivery;
/// returns their offsets.
pub async fn produce_values(producer: &FutureProducer, topic: &str, partition: i32, values: &[&str]) -> Vec<i64> {
    let mut offsets = Vec::with_capacity(values.len());
    for value in values {
        let record = FutureRecord::<(), str>::to(topic).partition(partition).payload(*value);
        let delivery = producer
            .send(record, TIMEOUT)
            .await
            .map_err(|(error, _)| error)
            .expect("delivery");
        assert_eq!(delivery.partition, partition);
        offsets.push(delivery.offset);
    }
    offsets
}

/// Reads `count` records of one partition from `offset`, with a deadline.
pub fn consume(broker: &Broker, topic: &str, partition: i32, offset: Offset, count: usize) -> Vec<OwnedMessage> {
    let consumer = broker.consumer(&[]);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, offset)
        .expect("assignment");
    consumer.assign(&assignment).expect("assign");
    poll_messages(&consumer, count)
}

/// Polls until `count` records arrived, failing on an error or the deadline.
pub fn poll_messages(consumer: &BaseConsumer, count: usize) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + TIMEOUT;
    let mut messages = Vec::with_capacity(count);
    while messages.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "got {} of {count} records within {TIMEOUT:?}",
            messages.len()
        );
        match consumer.poll(left.min(Duration::from_millis(500))) {
            Some(Ok(message)) => messages.push(message.detach()),
            Some(Err(error)) => panic!("consumer error after {} records: {error}", messages.len()),
            None => {}
        }
    }
    messages
}

/// The payloads as text ("<null>" for a null value).
pub fn payloads(messages: &[OwnedMessage]) -> Vec<String> {
    messages
        .iter()
        .map(|message| {
            message
                .payload()
                .map_or("<null>".to_string(), |bytes| String::from_utf8_lossy(bytes).into())
        })
        .collect()
}

/// Runs a future to completion on a runtime of its own, for synchronous
/// tests (librdkafka's transactional calls block) that await a few things.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime")
        .block_on(future)
}

/// Bounds an async test body by [`TIMEOUT`] times `factor`.
pub async fn bounded<F: std::future::Future>(factor: u32, body: F) -> F::Output {
    match tokio::time::timeout(TIMEOUT * factor, body).await {
        Ok(output) => output,
        Err(_) => panic!("the test did not finish within {:?}", TIMEOUT * factor),
    }
}

/// A blocking Kafka protocol connection (`kafka-protocol` on a plain
/// socket), to see exact error codes; every read is bounded by [`TIMEOUT`].
pub struct Wire {
    stream: TcpStream,
    correlation_id: i32,
}

impl Wire {
    pub fn connect(broker: &Broker) -> Wire {
        let stream = TcpStream::connect(broker.addr()).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
        Wire {
            stream,
            correlation_id: 0,
        }
    }

    pub fn call<R: Request + Encodable>(&mut self, request: &R, version: i16) -> R::Response
    where
        R::Response: Decodable + HeaderVersion,
    {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("cli-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .expect("encode header");
        request.encode(&mut body, version).expect("encode request");
        self.stream
            .write_all(&(body.len() as i32).to_be_bytes())
            .and_then(|()| self.stream.write_all(&body))
            .expect("send request");
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).expect("response size");
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut frame).expect("response");
        let mut frame = Bytes::from(frame);
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version)).expect("header");
        assert_eq!(header.correlation_id, self.correlation_id);
        R::Response::decode(&mut frame, version).expect("response body")
    }
}
