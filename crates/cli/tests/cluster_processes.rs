//! A cluster of real `sluice serve` processes: three voters with
//! `--controller-voters`, kill -9 of the quorum leader (the active
//! controller), restart; the cluster keeps its topics and data. And `sluice
//! dev --brokers 3`: one command starts a local cluster that serves clients
//! and stops cleanly on Ctrl-C.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cluster::{block_on, brokers, consume_values, eventually, leaders, produce_acked};
use common::processes::start_cluster;
use common::raw::RawConnection;
use common::CLIENT_TIMEOUT;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::{describe_quorum_request, DescribeQuorumRequest};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use tempfile::TempDir;

fn quorum_leader(address: &str) -> i32 {
    let mut connection = RawConnection::connect(address);
    let request = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![describe_quorum_request::PartitionData::default()]),
    ]);
    let response = connection.request(0, 7, &request);
    let partition = &response.topics[0].partitions[0];
    assert_eq!(partition.error_code, 0, "{response:?}");
    assert_eq!(partition.current_voters.len(), 3, "{response:?}");
    partition.leader_id.0
}

/// CreateTopics through `address`; the error code's name on failure.
fn create_topic(address: &str, name: &str, partitions: i32) -> Result<(), String> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", address);
    if let Ok(debug) = std::env::var("SLUICE_TEST_RDKAFKA_DEBUG") {
        config.set("debug", debug);
    }
    let admin: AdminClient<DefaultClientContext> = config.create().expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    // The request may wait for a forward to the active controller, which
    // retries NOT_CONTROLLER for up to 30 s while leadership moves: the
    // client waits longer than that for the answer.
    let options = AdminOptions::new()
        .operation_timeout(Some(CLIENT_TIMEOUT))
        .request_timeout(Some(Duration::from_secs(45)));
    let results = block_on(admin.create_topics([&topic], &options)).map_err(|e| e.to_string())?;
    for result in results {
        result.map_err(|(_, code)| format!("{code:?}"))?;
    }
    Ok(())
}

fn produce(bootstrap: &str, topic: &str, count: usize) {
    produce_acked(bootstrap, topic, "value", count);
}

fn consume_count(bootstrap: &str, topic: &str, partitions: i32, count: usize) -> usize {
    consume_values(bootstrap, topic, partitions, count, Duration::from_secs(60))
        .into_iter()
        .collect::<std::collections::BTreeSet<String>>()
        .len()
}

#[test]
fn killing_the_active_controller_keeps_the_cluster_its_topics_and_its_data() {
    let dir = TempDir::new().expect("temp dir");
    let mut nodes = start_cluster(dir.path(), &[]);
    let bootstrap: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    // Brokers are fenced until they caught up, and a client whose broker
    // leaves the Metadata's broker list drops it mid-request: start once
    // all three are listed.
    eventually("every broker is unfenced", Duration::from_secs(60), || {
        brokers(&bootstrap[0]).len() == 3
    });
    create_topic(&bootstrap[0], "kept", 3).expect("create topic");
    produce(&bootstrap.join(","), "kept", 30);
    let before = leaders(&bootstrap[0], "kept");

    let leader = quorum_leader(&bootstrap[0]);
    let index = (leader - 1) as usize;
    let survivor = bootstrap[(index + 1) % 3].clone();
    let killed_at = Instant::now();
    nodes[index].kill9();
    // The next metadata change succeeds once the others elected a new leader.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match create_topic(&survivor, &format!("after-kill-{attempt}"), 1) {
            Ok(()) => break,
            Err(error) => {
                if killed_at.elapsed() >= Duration::from_secs(60) {
                    let logs: Vec<String> = nodes
                        .iter()
                        .filter(|n| n.node_id != leader)
                        .map(|n| std::fs::read_to_string(&n.log).unwrap_or_default())
                        .collect();
                    panic!(
                        "no CreateTopics succeeded within 60 s of the kill: {error}\nsurvivors' logs:\n{}",
                        logs.join("\n----\n")
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    eprintln!(
        "timing: kill -9 of the active controller (node {leader}) to the next successful CreateTopics: {} ms",
        killed_at.elapsed().as_millis()
    );
    assert_ne!(quorum_leader(&survivor), leader, "a new active controller");
    eventually("the killed node is fenced", Duration::from_secs(30), || {
        leaders(&survivor, "kept")
            .values()
            .filter(|l| **l == -1)
            .count()
            == before.values().filter(|l| **l == leader).count()
    });

    let receiver = nodes[index].spawn();
    nodes[index].wait_listening(&receiver);
    eventually(
        "every partition has its leader back",
        Duration::from_secs(30),
        || leaders(&survivor, "kept") == before,
    );
    let bootstrap: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    assert_eq!(
        consume_count(&bootstrap.join(","), "kept", 3, 30),
        30,
        "no record lost"
    );
    for node in &mut nodes {
        assert_eq!(
            node.terminate().map(|s| s.code()),
            Some(Some(0)),
            "node {} exits 0",
            node.node_id
        );
    }
}

#[test]
fn sigterm_moves_a_brokers_leaderships_before_it_exits() {
    let dir = TempDir::new().expect("temp dir");
    let mut nodes = start_cluster(dir.path(), &[]);
    let first = nodes[0].address.clone();
    create_topic(&first, "moved", 3).expect("create topic");
    eventually("node 3 leads a partition", Duration::from_secs(10), || {
        leaders(&first, "moved").values().any(|l| *l == 3)
    });
    let stopped_at = Instant::now();
    let status = nodes[2].terminate();
    eprintln!(
        "timing: SIGTERM of node 3 to its exit (leaderships moved): {} ms",
        stopped_at.elapsed().as_millis()
    );
    assert_eq!(status.map(|s| s.code()), Some(Some(0)), "exit status 0");
    // Replication factor 1: its partitions have no other replica, so they
    // are offline (-1) at once, without waiting for the session to expire.
    let log = std::fs::read_to_string(&nodes[2].log).unwrap_or_default();
    assert!(
        log.contains("controlled shutdown granted"),
        "node 3's log:\n{log}"
    );
    eventually("node 3 leads nothing", Duration::from_secs(2), || {
        let after = leaders(&first, "moved");
        after.values().all(|l| *l != 3) && after.values().any(|l| *l == -1)
    });
    for node in &mut nodes[..2] {
        assert_eq!(node.terminate().map(|s| s.code()), Some(Some(0)));
    }
}

#[test]
fn pausing_the_active_controller_fences_it_and_no_live_broker() {
    let dir = TempDir::new().expect("temp dir");
    // Sessions of 4 s, heartbeats every 500 ms (start_cluster's).
    let nodes = start_cluster(dir.path(), &[]);
    let first = nodes[0].address.clone();
    let all: BTreeSet<i32> = BTreeSet::from([1, 2, 3]);
    eventually("every broker is unfenced", Duration::from_secs(60), || {
        brokers(&first) == all
    });
    let paused = quorum_leader(&first);
    let live: BTreeSet<i32> = all.iter().copied().filter(|n| *n != paused).collect();
    let watcher = nodes[(*live.first().expect("a live node") - 1) as usize]
        .address
        .clone();
    nodes[(paused - 1) as usize].pause();
    // The brokers' heartbeats in flight to the paused controller must not
    // outlast the new controller's first session timeout.
    let mut seen = Vec::new();
    let mut fenced_at = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = brokers(&watcher);
        assert!(
            live.is_subset(&now),
            "a live broker was fenced: {watcher} lists {now:?} after {seen:?}"
        );
        if fenced_at.is_none() && now == live {
            fenced_at = Some(Instant::now());
        }
        if fenced_at.is_some_and(|at| at.elapsed() > Duration::from_secs(8)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the paused controller {paused} is still listed: {seen:?}"
        );
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    nodes[(paused - 1) as usize].resume();
    eventually(
        "the resumed node is unfenced again",
        Duration::from_secs(60),
        || brokers(&watcher) == all,
    );
}

/// Consecutive free ports below the ephemeral range (see
/// `sluice_testkit::ports`); the first.
fn consecutive_free_ports(count: u16) -> u16 {
    sluice_testkit::ports::reserve_local_ports(count).expect("free ports")
}

#[test]
fn sluice_dev_starts_a_local_cluster_that_serves_clients_and_stops_on_ctrl_c() {
    let dir = TempDir::new().expect("temp dir");
    let port = consecutive_free_ports(3);
    let controller_port = consecutive_free_ports(3);
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["dev", "--brokers", "3", "--port", &port.to_string()])
        .args(["--controller-port", &controller_port.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sluice dev");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + common::processes::START_TIMEOUT;
    while !lines.iter().any(|l: &String| l.starts_with("Ctrl-C")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("sluice dev did not report its nodes: {lines:?}"),
        }
    }
    let bootstrap = lines
        .iter()
        .find_map(|l| l.strip_prefix("bootstrap "))
        .expect("bootstrap line")
        .to_string();
    assert_eq!(bootstrap.split(',').count(), 3, "{bootstrap}");
    let pids: Vec<u32> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("node "))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect();
    assert_eq!(pids.len(), 3, "{lines:?}");

    create_topic(&bootstrap, "dev", 3).expect("create topic");
    produce(&bootstrap, "dev", 9);
    assert_eq!(consume_count(&bootstrap, "dev", 3, 9), 9);

    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "sluice dev did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "node pid {pid} still runs"
        );
    }
}
