//! `gregor start` as a process: configuration errors, the listening line,
//! clean shutdown on SIGTERM, and data surviving a restart.

mod common;

use std::time::Duration;

use common::{Broker, bounded, consume, create_topic, payloads, produce_values, run_gregor, unique_topic};
use rdkafka::Offset;

#[test]
fn an_invalid_setting_fails_with_one_line_before_binding() {
    let output = run_gregor(
        &[
            "start",
            "--set",
            "listeners=PLAINTEXT://127.0.0.1:0",
            "--set",
            "num.partitions=many",
        ],
        "",
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains("num.partitions"), "names the key: {stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
}

#[test]
fn an_unreadable_properties_file_fails_with_one_line() {
    let output = run_gregor(&["start", "--config", "/nonexistent/server.properties"], "");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("/nonexistent/server.properties"), "{stderr}");
}

#[tokio::test]
async fn a_properties_file_is_read_and_overrides_win() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let properties = dir.path().join("server.properties");
    let log_dir = dir.path().join("data");
    std::fs::write(
        &properties,
        format!(
            "# test\nlisteners=PLAINTEXT://127.0.0.1:0\nlog.dirs={}\nnum.partitions=3\n",
            log_dir.display()
        ),
    )
    .expect("write properties");
    let path = properties.to_str().expect("UTF-8 path").to_string();

    let output = run_gregor(&["start", "--config", &path, "--set", "node.id=-5"], "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("node.id"), "the override is validated: {stderr}");

    let broker = Broker::start_with_args(&["--config".to_string(), path], &log_dir);
    bounded(2, async {
        // An auto-created topic gets num.partitions from the file.
        let topic = unique_topic("from-file");
        let record = rdkafka::producer::FutureRecord::<(), str>::to(&topic)
            .partition(2)
            .payload("x");
        let delivery = broker
            .producer(&[])
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(error, _)| error);
        assert_eq!(delivery.expect("delivery").partition, 2);
        let metadata = broker
            .admin()
            .inner()
            .fetch_metadata(Some(&topic), Duration::from_secs(30))
            .expect("metadata");
        assert_eq!(metadata.topics()[0].partitions().len(), 3);
    })
    .await;
    assert!(log_dir.is_dir(), "log.dirs from the file is used");
}

#[test]
fn sigterm_shuts_the_broker_down_cleanly() {
    let mut broker = Broker::start();
    assert!(broker.addr().starts_with("127.0.0.1:"), "{}", broker.addr());
    assert_ne!(broker.addr(), "127.0.0.1:0", "the real ephemeral port is reported");
    let status = broker.terminate();
    assert!(status.success(), "exit status {status}:\n{}", broker.stderr());
}

#[tokio::test]
async fn records_survive_a_clean_restart() {
    let dir = tempfile::tempdir().expect("temporary log directory");
    let topic = unique_topic("restart");
    let mut broker = Broker::start_in(dir.path(), &[]);
    bounded(2, async {
        create_topic(&broker, &topic, 2, &[("retention.ms", "86400000")]).await;
        produce_values(&broker.producer(&[]), &topic, 1, &["before", "restart"]).await;
    })
    .await;
    assert!(broker.terminate().success(), "{}", broker.stderr());
    drop(broker);

    let broker = Broker::start_in(dir.path(), &[]);
    bounded(2, async {
        assert_eq!(
            payloads(&consume(&broker, &topic, 1, Offset::Beginning, 2)),
            ["before", "restart"]
        );
        // Offsets continue after the recovered log end.
        assert_eq!(
            produce_values(&broker.producer(&[]), &topic, 1, &["after"]).await,
            vec![2]
        );
        let metadata = broker
            .admin()
            .inner()
            .fetch_metadata(Some(&topic), Duration::from_secs(30))
            .expect("metadata");
        assert_eq!(
            metadata.topics()[0].partitions().len(),
            2,
            "topic metadata survives too"
        );
    })
    .await;
}

#[test]
fn start_raises_the_soft_open_files_limit_to_the_hard_limit() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let args = [
        "--set".to_string(),
        "listeners=PLAINTEXT://127.0.0.1:0".to_string(),
        "--set".to_string(),
        format!("log.dirs={}", dir.path().display()),
    ];
    let mut broker = Broker::start_after_shell("ulimit -Sn 256", &args, dir.path());
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", broker.pid())).expect("read limits");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("an open files line");
    // "Max open files  SOFT  HARD  files"
    let fields: Vec<&str> = line.split_whitespace().collect();
    let (soft, hard) = (fields[3], fields[4]);
    assert_ne!(
        hard, "256",
        "the hard limit must be above the lowered soft limit for this test"
    );
    assert_eq!(soft, hard, "{line}");
    assert!(broker.stderr().contains("open files limit"), "{}", broker.stderr());
    assert!(broker.terminate().success());
}
