//! `sluice bench … --client raw` runs against a broker, and against a
//! cluster of three whose partitions have different leaders, and reports
//! figures (a smoke check that the raw-protocol clients work and count
//! every record; the figures themselves belong in docs/BENCHMARKS.md, not
//! in a test).

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::cluster::{create_replicated_topic, leaders};
use common::start_in_process;
use sluice_testkit::TestCluster;

/// Runs `sluice bench` with `args` (and `--json -b bootstrap`); its JSON
/// report.
fn bench(bootstrap: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("bench")
        .args(args)
        .args(["--json", "-b", bootstrap])
        .output()
        .expect("runs sluice bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "bench failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

/// Runs the raw producer for a moment; its JSON report.
fn raw_produce(bootstrap: &str, topic: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["produce", "--client", "raw", "--topic", topic];
    args.extend_from_slice(&["--duration", "2s", "--record-size", "100B"]);
    args.extend_from_slice(extra);
    bench(bootstrap, &args)
}

/// Runs `sluice bench consume` with `args`; its JSON report.
fn consume(bootstrap: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["consume"];
    all.extend_from_slice(args);
    bench(bootstrap, &all)
}

#[test]
fn the_raw_producer_delivers_and_reports() {
    let cluster = start_in_process(&[]);
    for (topic, extra) in [
        ("raw-acks-1", vec![]),
        (
            "raw-acks-all",
            vec!["--acks", "all", "--partitions", "3", "--in-flight", "2"],
        ),
        ("raw-lz4", vec!["--compression", "lz4", "--producers", "2"]),
    ] {
        let report = raw_produce(cluster.bootstrap(), topic, &extra);
        assert_eq!(report["client"], "raw", "{report}");
        assert!(report["records"].as_u64().unwrap_or(0) > 0, "{report}");
        assert_eq!(report["failed"], 0, "{report}");
        assert!(
            report["megabytes_per_second"].as_f64().unwrap_or(0.0) > 0.0,
            "{report}"
        );
    }
}

#[test]
fn the_raw_producer_refuses_what_it_does_not_do() {
    let cluster = start_in_process(&[]);
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "bench",
            "produce",
            "--client",
            "raw",
            "--transaction-ms",
            "100",
        ])
        .args(["--duration", "1s", "-b", cluster.bootstrap()])
        .output()
        .expect("runs sluice bench");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("plain produce only"), "{stderr}");
}

/// `--rate` with the raw producer: open loop, and every record acked.
#[test]
fn the_raw_producer_keeps_a_rate() {
    let cluster = start_in_process(&[]);
    let report = raw_produce(
        cluster.bootstrap(),
        "raw-rate",
        &["--rate", "3000", "--partitions", "2", "--producers", "2"],
    );
    let records = report["records"].as_u64().unwrap_or(0);
    // 2 s at 3,000/s: the schedule's 6,000, give or take its last batch.
    assert!((5_000..=6_100).contains(&records), "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    // One latency per record, each from its own scheduled time.
    assert_eq!(
        report["ack_latency"]["count"].as_u64(),
        Some(records),
        "{report}"
    );
}

/// `bench e2e --client raw`: raw producers at a rate and raw consumers;
/// every delivered record reaches a consumer, with its latency.
#[test]
fn raw_e2e_receives_every_record() {
    let cluster = start_in_process(&[]);
    let report = e2e_raw(cluster.bootstrap(), "raw-e2e", 4);
    assert_eq!(report["consumers"], 2, "{report}");
}

/// Runs a short raw e2e on `topic` (created with `partitions` unless it
/// exists) and checks that every record was received; its report.
fn e2e_raw(bootstrap: &str, topic: &str, partitions: i32) -> serde_json::Value {
    let partitions = partitions.to_string();
    let report = bench(
        bootstrap,
        &[
            "e2e",
            "--client",
            "raw",
            "--topic",
            topic,
            "--partitions",
            &partitions,
            "--consumers",
            "2",
            "--producers",
            "2",
            "--rate",
            "2000",
            "--duration",
            "2s",
        ],
    );
    assert_eq!(report["client"], "raw", "{report}");
    let records = report["records"].as_u64().unwrap_or(0);
    assert!(records > 1_000, "{report}");
    assert_eq!(report["received"].as_u64(), Some(records), "{report}");
    assert_eq!(
        report["e2e_latency"]["count"].as_u64(),
        Some(records),
        "{report}"
    );
    report
}

/// On a cluster of three, the raw clients send each partition's requests
/// to its leader: a topic whose partitions are led by different brokers is
/// produced, drained and followed end to end through one bootstrap broker
/// (before leader routing, the partitions led elsewhere failed with
/// NOT_LEADER_OR_FOLLOWER).
#[test]
fn the_raw_clients_route_to_each_partitions_leader_on_a_cluster() {
    let cluster = TestCluster::start(3, &[("auto.create.topics.enable", "false")])
        .expect("three nodes start");
    // One broker's address: the raw clients find the others' from it.
    let bootstrap = cluster.nodes()[0].address();
    for topic in ["raw-spread", "raw-spread-e2e"] {
        create_replicated_topic(&bootstrap, topic, 6, 1, &[]);
        let led_by: BTreeSet<i32> = leaders(&bootstrap, topic).into_values().collect();
        assert!(led_by.len() > 1, "{topic}: one leader for all: {led_by:?}");
    }
    let produced = raw_produce(&bootstrap, "raw-spread", &["--batch-size", "10KiB"]);
    let records = produced["records"].as_u64().expect("records produced");
    assert!(records > 0, "{produced}");
    assert_eq!(produced["failed"], 0, "{produced}");
    let drained = consume(
        &bootstrap,
        &[
            "--topic",
            "raw-spread",
            "--client",
            "raw",
            "--connections",
            "2",
        ],
    );
    assert_eq!(drained["complete"], true, "{drained}");
    assert_eq!(drained["records"].as_u64(), Some(records), "{drained}");
    let report = e2e_raw(&bootstrap, "raw-spread-e2e", 6);
    // At least one connection per leader.
    assert!(report["consumers"].as_u64().unwrap_or(0) >= 2, "{report}");
}

#[test]
fn the_raw_consumer_drains_what_the_producer_wrote() {
    let cluster = start_in_process(&[]);
    let produced = raw_produce(
        cluster.bootstrap(),
        "raw-drain",
        &["--partitions", "3", "--batch-size", "10KiB"],
    );
    let records = produced["records"].as_u64().expect("records produced");
    assert!(records > 0, "{produced}");
    for connections in ["1", "2"] {
        let report = consume(
            cluster.bootstrap(),
            &[
                "--topic",
                "raw-drain",
                "--client",
                "raw",
                "--connections",
                connections,
                "--fetch-bytes",
                "64KiB",
            ],
        );
        assert_eq!(report["client"], "raw", "{report}");
        assert_eq!(report["complete"], true, "{report}");
        assert_eq!(report["records"].as_u64(), Some(records), "{report}");
        // Whole batches: the values and the batch and record headers.
        assert!(
            report["bytes"].as_u64().unwrap_or(0) > records * 100,
            "{report}"
        );
    }
    // librdkafka reads the same records (keys and values: 100 B each).
    let report = consume(cluster.bootstrap(), &["--topic", "raw-drain"]);
    assert_eq!(report["records"].as_u64(), Some(records), "{report}");
}

/// `bench e2e --consumers N`: the partitions are dealt out among N
/// consumers, and every delivered record reaches one of them.
#[test]
fn e2e_with_several_consumers_receives_every_record() {
    let cluster = start_in_process(&[]);
    let report = bench(
        cluster.bootstrap(),
        &[
            "e2e",
            "--topic",
            "e2e-consumers",
            "--partitions",
            "6",
            "--consumers",
            "3",
            "--producers",
            "2",
            "--rate",
            "2000",
            "--duration",
            "2s",
        ],
    );
    assert_eq!(report["consumers"], 3, "{report}");
    let records = report["records"].as_u64().unwrap_or(0);
    assert!(records > 0, "{report}");
    assert_eq!(report["received"].as_u64(), Some(records), "{report}");
}
