//! `gregor perf` against a real `gregor start`: the counts it reports are
//! the records that were really written and read back.

mod common;

use common::{Broker, stderr_of_failure, stdout_of, unique_topic};
use serde_json::Value;

/// Runs `gregor perf ARGS --json --quiet` against the broker and parses its summary.
fn perf_json(broker: &Broker, args: &[&str]) -> Value {
    let mut all = vec!["perf"];
    all.extend_from_slice(args);
    all.extend(["--json", "--quiet"]);
    let stdout = stdout_of(&broker.gregor(&all, ""));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| panic!("not one JSON object ({error}): {stdout}"))
}

#[test]
fn produce_then_consume_report_every_record() {
    let broker = Broker::start();
    let topic = unique_topic("perf");
    let produced = perf_json(
        &broker,
        &[
            "produce",
            "--topic",
            &topic,
            "--num-records",
            "3000",
            "--record-size",
            "50",
            "--partitions",
            "3",
            "--acks",
            "all",
            "--key-distribution",
            "random:10",
        ],
    );
    assert_eq!(produced["mode"], "produce");
    assert_eq!(produced["records"], 3000, "{produced}");
    assert_eq!(produced["bytes"], 150_000, "{produced}");
    assert_eq!(produced["errors"], 0, "{produced}");
    let latency = &produced["latency_ms"];
    assert!(
        latency["p50"].as_f64().unwrap() <= latency["p99"].as_f64().unwrap(),
        "{produced}"
    );
    assert!(
        latency["p99"].as_f64().unwrap() <= latency["max"].as_f64().unwrap(),
        "{produced}"
    );

    let described = stdout_of(&broker.gregor(&["topic", "describe", &topic], ""));
    assert!(
        described.contains("PartitionCount: 3"),
        "perf created the topic: {described}"
    );

    // Without --num-records, consume reads up to the end offsets of the start.
    let consumed = perf_json(&broker, &["consume", "--topic", &topic]);
    assert_eq!(consumed["mode"], "consume");
    assert_eq!(consumed["records"], 3000, "{consumed}");
    assert_eq!(consumed["bytes"], 150_000, "{consumed}");

    let some = perf_json(&broker, &["consume", "--topic", &topic, "--num-records", "1000"]);
    assert!(some["records"].as_u64().unwrap() >= 1000, "{some}");
}

#[test]
fn the_human_summary_names_rates_and_latency_percentiles() {
    let broker = Broker::start();
    let topic = unique_topic("perf-text");
    let output = broker.gregor(
        &[
            "perf",
            "produce",
            "--topic",
            &topic,
            "--num-records",
            "500",
            "--acks",
            "1",
        ],
        "",
    );
    let stdout = stdout_of(&output);
    assert!(stdout.starts_with("produce: 500 records in "), "{stdout}");
    assert!(stdout.contains("records/s"), "{stdout}");
    assert!(stdout.contains("delivery latency ms: p50 "), "{stdout}");
    assert!(stdout.contains("p99.9"), "{stdout}");
}

#[test]
fn a_target_rate_paces_the_producer() {
    let broker = Broker::start();
    let topic = unique_topic("perf-rate");
    // 400 records at 2000/s take at least 0.2 s however fast the broker is.
    let produced = perf_json(
        &broker,
        &[
            "produce",
            "--topic",
            &topic,
            "--num-records",
            "400",
            "--throughput",
            "2000",
            "--acks",
            "1",
        ],
    );
    assert_eq!(produced["records"], 400, "{produced}");
    assert!(produced["elapsed_secs"].as_f64().unwrap() >= 0.19, "{produced}");
}

#[test]
fn transactional_producers_side_by_side_commit_every_record() {
    let broker = Broker::start();
    let topic = unique_topic("perf-txn");
    let id = unique_topic("perf-txn-id");
    let produced = perf_json(
        &broker,
        &[
            "produce",
            "--topic",
            &topic,
            "--num-records",
            "1000",
            "--producers",
            "3",
            "--transactional-id",
            &id,
            "--transaction-records",
            "50",
        ],
    );
    assert_eq!(produced["records"], 1000, "{produced}");
    assert_eq!(produced["errors"], 0, "{produced}");

    // Each producer had its own transactional id, and every transaction committed.
    let listed = stdout_of(&broker.gregor(&["txn", "list"], ""));
    for index in 0..3 {
        let row = listed
            .lines()
            .find(|line| line.split_whitespace().next() == Some(&format!("{id}-{index}")))
            .unwrap_or_else(|| panic!("{id}-{index} in\n{listed}"));
        assert!(row.ends_with("CompleteCommit"), "{listed}");
    }
    // librdkafka's consumer reads committed records only (read_committed).
    let consumed = perf_json(&broker, &["consume", "--topic", &topic]);
    assert_eq!(consumed["records"], 1000, "{consumed}");
}

#[test]
fn commit_times_each_offset_commit_and_the_offsets_are_stored() {
    let broker = Broker::start();
    let topic = unique_topic("perf-commit");
    let group = unique_topic("perf-commit-group");
    let summary = perf_json(
        &broker,
        &[
            "commit",
            "--topic",
            &topic,
            "--partitions",
            "50",
            "--group",
            &group,
            "--num-commits",
            "20",
        ],
    );
    assert_eq!(summary["mode"], "commit");
    assert_eq!(summary["records"], 20, "{summary}");
    assert!(summary["latency_ms"]["max"].as_f64().unwrap() > 0.0, "{summary}");
    // Ten warm-up commits and twenty timed ones: every offset is at 30.
    let described = stdout_of(&broker.gregor(&["group", "describe", &group], ""));
    let rows: Vec<Vec<&str>> = described
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .filter(|cells| cells.first() == Some(&topic.as_str()))
        .collect();
    assert_eq!(rows.len(), 50, "{described}");
    assert!(rows.iter().all(|cells| cells[2] == "30"), "{described}");
}

#[test]
fn e2e_reads_back_every_acknowledged_record() {
    let broker = Broker::start();
    let topic = unique_topic("perf-e2e");
    let summary = perf_json(
        &broker,
        &[
            "e2e",
            "--topic",
            &topic,
            "--num-records",
            "600",
            "--throughput",
            "3000",
            "--acks",
            "1",
        ],
    );
    assert_eq!(summary["mode"], "e2e");
    assert_eq!(summary["records"], 600, "{summary}");
    assert_eq!(summary["producer"]["records"], 600, "{summary}");
    assert_eq!(summary["latency_kind"], "end-to-end");
    assert!(summary["latency_ms"]["max"].as_f64().unwrap() > 0.0, "{summary}");
}

#[test]
fn bad_options_fail_before_connecting() {
    let broker = Broker::start();
    let missing_count = broker.gregor(&["perf", "produce", "--topic", "t"], "");
    assert!(stderr_of_failure(&missing_count).contains("--num-records"));
    let tiny_e2e = broker.gregor(
        &[
            "perf",
            "e2e",
            "--topic",
            "t",
            "--num-records",
            "1",
            "--record-size",
            "8",
        ],
        "",
    );
    assert!(stderr_of_failure(&tiny_e2e).contains("--record-size"));
}
