//! The `gregor` client commands as a user runs them, against a real
//! `gregor start`: topics, configs, produce from stdin and consume to stdout.

mod common;

use common::{Broker, run_gregor, stderr_of_failure, stdout_of, unique_topic};

#[test]
fn topic_create_list_describe_alter_and_delete() {
    let broker = Broker::start();
    let topic = unique_topic("cli-topic");
    let created = broker.gregor(
        &[
            "topic",
            "create",
            &topic,
            "--partitions",
            "3",
            "--config",
            "retention.ms=3600000",
        ],
        "",
    );
    assert_eq!(stdout_of(&created), format!("Created topic {topic}.\n"));

    let listed = stdout_of(&broker.gregor(&["topic", "list"], ""));
    assert!(listed.lines().any(|line| line == topic), "{listed}");

    let described = stdout_of(&broker.gregor(&["topic", "describe", "--topic", &topic], ""));
    let mut lines = described.lines();
    let summary = lines.next().expect("a summary line");
    assert!(summary.contains("PartitionCount: 3"), "{described}");
    assert!(summary.contains("ReplicationFactor: 1"), "{described}");
    assert!(
        summary.contains("retention.ms=3600000"),
        "the override is shown: {described}"
    );
    for partition in 0..3 {
        let line = lines.next().expect("a line per partition");
        assert_eq!(
            line,
            format!("\tTopic: {topic}\tPartition: {partition}\tLeader: 1\tReplicas: 1\tIsr: 1")
        );
    }

    let altered = broker.gregor(&["topic", "alter", &topic, "--partitions", "5"], "");
    assert_eq!(stdout_of(&altered), format!("Topic {topic} now has 5 partitions.\n"));
    let described = stdout_of(&broker.gregor(&["topic", "describe", &topic], ""));
    assert!(described.contains("PartitionCount: 5"), "{described}");

    let deleted = broker.gregor(&["topic", "delete", &topic], "");
    assert_eq!(stdout_of(&deleted), format!("Deleted topic {topic}.\n"));
    let listed = stdout_of(&broker.gregor(&["topic", "list"], ""));
    assert!(!listed.lines().any(|line| line == topic), "{listed}");
}

#[test]
fn topic_errors_are_one_readable_line() {
    let broker = Broker::start_with(&[("auto.create.topics.enable", "false")]);
    let topic = unique_topic("cli-errors");
    stdout_of(&broker.gregor(&["topic", "create", &topic], ""));

    let again = broker.gregor(&["topic", "create", &topic], "");
    assert_eq!(
        stderr_of_failure(&again),
        format!("error: topic '{topic}' already exists\n")
    );
    stdout_of(&broker.gregor(&["topic", "create", &topic, "--if-not-exists"], ""));

    let missing = unique_topic("cli-missing");
    for args in [
        vec!["topic", "describe", missing.as_str()],
        vec!["topic", "delete", missing.as_str()],
        vec!["topic", "alter", missing.as_str(), "--partitions", "2"],
        vec!["config", "describe", "--topic", missing.as_str()],
        vec!["consume", "--topic", missing.as_str(), "--timeout-ms", "5000"],
    ] {
        let output = broker.gregor(&args, "");
        assert!(
            !output.status.success(),
            "{args:?} succeeded: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        assert_eq!(
            stderr_of_failure(&output),
            format!("error: topic '{missing}' does not exist\n"),
            "{args:?}"
        );
    }
    stdout_of(&broker.gregor(&["topic", "delete", &missing, "--if-exists"], ""));

    let invalid = broker.gregor(&["topic", "create", "not/valid"], "");
    assert_eq!(
        stderr_of_failure(&invalid),
        "error: 'not/valid' is not a valid topic name\n"
    );
}

#[test]
fn an_unreachable_cluster_is_one_readable_line() {
    // Port 1 on loopback: nothing listens there.
    let output = run_gregor(
        &[
            "topic",
            "list",
            "--bootstrap-server",
            "127.0.0.1:1",
            "--request-timeout-ms",
            "2000",
        ],
        "",
    );
    let stderr = stderr_of_failure(&output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot reach the cluster at 127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn produced_lines_are_consumed_back_with_keys_headers_and_nulls() {
    let broker = Broker::start();
    let topic = unique_topic("cli-roundtrip");
    stdout_of(&broker.gregor(&["topic", "create", &topic, "--partitions", "1"], ""));

    let input = "k1:hello\nk2:world with: colons\nk3:NULL\n:no key\n";
    let produced = broker.gregor(
        &[
            "produce",
            "--topic",
            &topic,
            "--key-separator",
            ":",
            "--null-marker",
            "NULL",
            "--header",
            "source=cli",
            "--header",
            "n=1",
        ],
        input,
    );
    assert_eq!(stdout_of(&produced), "");

    let consumed = broker.gregor(
        &[
            "consume",
            "--topic",
            &topic,
            "--from-beginning",
            "--print-key",
            "--print-headers",
            "--print-offset",
            "--max-messages",
            "4",
        ],
        "",
    );
    assert_eq!(
        stdout_of(&consumed),
        "Offset:0\tsource:cli,n:1\tk1\thello\n\
         Offset:1\tsource:cli,n:1\tk2\tworld with: colons\n\
         Offset:2\tsource:cli,n:1\tk3\tnull\n\
         Offset:3\tsource:cli,n:1\t\tno key\n"
    );
    assert!(String::from_utf8_lossy(&consumed.stderr).contains("Processed a total of 4 messages"));
}

#[test]
fn output_piped_into_a_reader_that_went_away_ends_quietly() {
    let broker = Broker::start();
    stdout_of(&broker.gregor(&["topic", "create", &unique_topic("cli-pipe")], ""));
    // Like `gregor topic list | true`: the reader is gone before the output comes.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gregor"))
        .args(["topic", "list", "--bootstrap-server", broker.addr()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn gregor topic list");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("gregor topic list ends");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn produce_with_each_codec_and_consume_by_partition_offset_and_timestamp() {
    let broker = Broker::start();
    let topic = unique_topic("cli-positions");
    stdout_of(&broker.gregor(&["topic", "create", &topic, "--partitions", "2"], ""));
    let mut expected = Vec::new();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let lines: Vec<String> = (0..3).map(|i| format!("{codec}-{i}")).collect();
        let input = lines.iter().map(|line| format!("{line}\n")).collect::<String>();
        let produced = broker.gregor(
            &[
                "produce",
                "--topic",
                &topic,
                "--partition",
                "1",
                "--compression",
                codec,
                "--acks",
                "1",
            ],
            &input,
        );
        stdout_of(&produced);
        expected.extend(lines);
    }
    let all = broker.gregor(
        &[
            "consume",
            "--topic",
            &topic,
            "--partition",
            "1",
            "--from-beginning",
            "--max-messages",
            "15",
        ],
        "",
    );
    assert_eq!(stdout_of(&all).lines().collect::<Vec<_>>(), expected);

    let from_offset = broker.gregor(
        &[
            "consume",
            "--topic",
            &topic,
            "--partition",
            "1",
            "--offset",
            "12",
            "--max-messages",
            "3",
            "--print-partition",
        ],
        "",
    );
    assert_eq!(
        stdout_of(&from_offset),
        "Partition:1\tzstd-0\nPartition:1\tzstd-1\nPartition:1\tzstd-2\n"
    );

    // Every record was stamped around now; a timestamp from the future finds none,
    // so the consumer waits at the end until its idle timeout.
    let timestamps = broker.gregor(
        &[
            "consume",
            "--topic",
            &topic,
            "--partition",
            "1",
            "--timestamp",
            "0",
            "--max-messages",
            "1",
            "--print-timestamp",
        ],
        "",
    );
    let line = stdout_of(&timestamps);
    assert!(
        line.starts_with("CreateTime:") && line.ends_with("\tnone-0\n"),
        "{line}"
    );
    let future = broker.gregor(
        &[
            "consume",
            "--topic",
            &topic,
            "--timestamp",
            "99999999999999",
            "--timeout-ms",
            "1500",
        ],
        "",
    );
    assert_eq!(stdout_of(&future), "");
}

#[test]
fn consume_exits_after_an_idle_timeout_on_an_empty_topic() {
    let broker = Broker::start();
    let topic = unique_topic("cli-idle");
    stdout_of(&broker.gregor(&["topic", "create", &topic], ""));
    let output = broker.gregor(
        &["consume", "--topic", &topic, "--from-beginning", "--timeout-ms", "1000"],
        "",
    );
    assert_eq!(stdout_of(&output), "");
    assert!(String::from_utf8_lossy(&output.stderr).contains("Processed a total of 0 messages"));
}

#[test]
fn config_describe_and_alter_a_topic() {
    let broker = Broker::start();
    let topic = unique_topic("cli-config");
    stdout_of(&broker.gregor(&["topic", "create", &topic, "--config", "cleanup.policy=compact"], ""));

    let altered = broker.gregor(
        &["config", "alter", "--topic", &topic, "--set", "retention.ms=1234"],
        "",
    );
    assert_eq!(
        stdout_of(&altered),
        format!("Completed updating config for topic '{topic}'.\n")
    );
    let described = stdout_of(&broker.gregor(&["config", "describe", "--topic", &topic], ""));
    assert_eq!(
        described, "cleanup.policy=compact\nretention.ms=1234\n",
        "earlier overrides are kept"
    );

    stdout_of(&broker.gregor(
        &["config", "alter", "--topic", &topic, "--delete", "cleanup.policy"],
        "",
    ));
    let described = stdout_of(&broker.gregor(&["config", "describe", "--topic", &topic], ""));
    assert_eq!(described, "retention.ms=1234\n");
    let all = stdout_of(&broker.gregor(&["config", "describe", "--topic", &topic, "--all"], ""));
    assert!(
        all.lines()
            .any(|line| line == "cleanup.policy=delete\t(DEFAULT_CONFIG)"),
        "{all}"
    );
    assert!(
        all.lines()
            .any(|line| line == "retention.ms=1234\t(DYNAMIC_TOPIC_CONFIG)"),
        "{all}"
    );

    let bad = broker.gregor(
        &["config", "alter", "--topic", &topic, "--set", "retention.ms=soon"],
        "",
    );
    let stderr = stderr_of_failure(&bad);
    assert!(
        stderr.starts_with(&format!("error: topic '{topic}': ")) && stderr.lines().count() == 1,
        "{stderr}"
    );
    let not_set = broker.gregor(&["config", "alter", "--topic", &topic, "--delete", "segment.bytes"], "");
    assert_eq!(
        stderr_of_failure(&not_set),
        format!("error: topic '{topic}' has no override for 'segment.bytes' to delete\n")
    );
}

#[test]
fn config_describe_a_broker() {
    let broker = Broker::start_with(&[("num.partitions", "4")]);
    let all = stdout_of(&broker.gregor(&["config", "describe", "--broker", "1", "--all"], ""));
    assert!(all.lines().any(|line| line.starts_with("num.partitions=4\t")), "{all}");
}

#[test]
fn consume_with_a_group_commits_its_position() {
    let broker = Broker::start();
    let topic = unique_topic("cli-group");
    let group = unique_topic("cli-group-id");
    stdout_of(&broker.gregor(&["topic", "create", &topic], ""));
    stdout_of(&broker.gregor(&["produce", "--topic", &topic], "one\ntwo\n"));
    let first = broker.gregor(
        &[
            "consume",
            "--topic",
            &topic,
            "--group",
            &group,
            "--from-beginning",
            "--max-messages",
            "2",
        ],
        "",
    );
    assert_eq!(stdout_of(&first), "one\ntwo\n");
    stdout_of(&broker.gregor(&["produce", "--topic", &topic], "three\n"));
    let second = broker.gregor(
        &["consume", "--topic", &topic, "--group", &group, "--max-messages", "1"],
        "",
    );
    assert_eq!(
        stdout_of(&second),
        "three\n",
        "the group resumes after its committed offset"
    );
}

#[test]
fn group_list_and_describe_show_committed_offsets_and_lag() {
    let broker = Broker::start();
    let topic = unique_topic("cli-lag");
    let group = unique_topic("cli-lag-id");
    stdout_of(&broker.gregor(&["topic", "create", &topic, "--partitions", "1"], ""));
    stdout_of(&broker.gregor(&["produce", "--topic", &topic], "1\n2\n3\n4\n5\n"));
    let consumed = broker.gregor(
        &[
            "consume",
            "--topic",
            &topic,
            "--group",
            &group,
            "--from-beginning",
            "--max-messages",
            "3",
        ],
        "",
    );
    assert_eq!(stdout_of(&consumed), "1\n2\n3\n");

    let listed = stdout_of(&broker.gregor(&["group", "list"], ""));
    assert!(listed.lines().any(|line| line == group), "{listed}");

    let described = stdout_of(&broker.gregor(&["group", "describe", &group], ""));
    let lines: Vec<&str> = described.lines().collect();
    assert!(lines[0].starts_with(&format!("Group: {group}\t")), "{described}");
    assert_eq!(
        lines[1],
        "TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMER-ID\tHOST\tCLIENT-ID"
    );
    // The console consumer has left: nobody owns the partition.
    assert_eq!(lines[2], format!("{topic}\t0\t3\t5\t2\t-\t-\t-"), "{described}");

    let missing = unique_topic("cli-no-such-group");
    let output = broker.gregor(&["group", "describe", "--group", &missing], "");
    assert_eq!(
        stderr_of_failure(&output),
        format!("error: group '{missing}' does not exist\n")
    );
}
