//! `connections.max.idle.ms`: the broker closes a connection that has had no
//! request in flight and none read or answered for that long (never used,
//! used then idle), and one whose request started but did not arrive whole
//! within it (half sent, trickling); a connection that keeps sending, or
//! waits on a long-poll Fetch, stays open.
//!
//! Durations: the idle time is 2 s; every "closed" check allows 40 s and
//! every "answered" check 30 s, so a slow, shared machine does not fail them.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::raw::{decode_response, RawConnection, ReadOutcome};
use common::{create_topic, start_in_process, topic_name};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, FetchRequest, FetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use sluice_testkit::TestCluster;

/// `connections.max.idle.ms` of the brokers in this file.
const IDLE_MS: u64 = 2_000;
/// How long a connection that should be closed may stay open.
const CLOSE_BOUND: Duration = Duration::from_secs(40);
/// How long an answer may take.
const ANSWER_BOUND: Duration = Duration::from_secs(30);

fn start_broker() -> TestCluster {
    start_in_process(&[("connections.max.idle.ms", &IDLE_MS.to_string())])
}

fn idle() -> Duration {
    Duration::from_millis(IDLE_MS)
}

/// Reads until the broker closes the connection; panics if a frame arrives
/// or nothing closes it within [`CLOSE_BOUND`]. Returns how long it took.
fn wait_for_close(connection: &mut RawConnection, what: &str) -> Duration {
    let start = Instant::now();
    loop {
        match connection.read_frame() {
            ReadOutcome::Closed => {
                let took = start.elapsed();
                eprintln!("{what}: closed by the broker after {took:?}");
                return took;
            }
            ReadOutcome::Frame(frame) => {
                panic!("{what}: unexpected frame of {} bytes", frame.len())
            }
            ReadOutcome::TimedOut => assert!(
                start.elapsed() < CLOSE_BOUND,
                "{what}: still open after {CLOSE_BOUND:?} (connections.max.idle.ms={IDLE_MS})"
            ),
        }
    }
}

/// A connection that sends nothing, watched for its close on a thread.
fn idle_watcher(bootstrap: &str) -> JoinHandle<Duration> {
    let mut connection = RawConnection::connect(bootstrap);
    std::thread::spawn(move || wait_for_close(&mut connection, "idle connection"))
}

/// One ApiVersions round trip; panics if the connection was closed.
fn api_versions(connection: &mut RawConnection, correlation_id: i32) {
    let response: ApiVersionsResponse =
        connection.request(3, correlation_id, &ApiVersionsRequest::default());
    assert_eq!(response.error_code, 0, "ApiVersions error");
}

#[test]
fn never_used_used_then_idle_and_half_sent_connections_are_closed() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();

    eprintln!("phase: four connections, each left idle in its own way");
    let mut never_used = RawConnection::connect(bootstrap);
    let mut used = RawConnection::connect(bootstrap);
    api_versions(&mut used, 1);
    let mut half_sent = RawConnection::connect(bootstrap);
    // A length prefix of 100 bytes, then 10 of them.
    let mut partial = 100i32.to_be_bytes().to_vec();
    partial.extend_from_slice(&[0, 18, 0, 3, 0, 0, 0, 7, 0, 0]);
    half_sent
        .send_bytes(&partial)
        .expect("send a partial frame");
    // A request that keeps arriving, one byte at a time, and never ends:
    // each byte is activity, but the request must be whole within the idle
    // time of its first bytes.
    let mut trickling = TcpStream::connect(bootstrap).expect("connect");
    let mut trickle_writer = trickling.try_clone().expect("clone the socket");
    let trickle = std::thread::spawn(move || {
        let start = Instant::now();
        let _ = trickle_writer.write_all(&1_000_000i32.to_be_bytes());
        while start.elapsed() < CLOSE_BOUND {
            if trickle_writer.write_all(&[0]).is_err() {
                return;
            }
            std::thread::sleep(idle() / 8);
        }
    });

    eprintln!("phase: the broker closes each");
    wait_for_close(&mut never_used, "never-used connection");
    wait_for_close(&mut used, "used-then-idle connection");
    wait_for_close(&mut half_sent, "half-sent frame");
    trickling
        .set_read_timeout(Some(CLOSE_BOUND))
        .expect("set read timeout");
    let mut byte = [0u8; 1];
    match trickling.read(&mut byte) {
        Ok(0) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => {
            panic!("trickling request: expected a close within {CLOSE_BOUND:?}, got {other:?}")
        }
    }
    trickle.join().expect("trickle thread");

    eprintln!("phase: a new connection is served");
    let mut fresh = RawConnection::connect(bootstrap);
    api_versions(&mut fresh, 2);
}

#[test]
fn a_connection_sending_more_often_than_the_idle_time_stays_open() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap();
    let idle_watch = idle_watcher(bootstrap);
    let mut busy = RawConnection::connect(bootstrap);

    eprintln!("phase: one request every quarter of the idle time, until the idle one is closed");
    let start = Instant::now();
    let mut correlation_id = 0;
    while !idle_watch.is_finished() {
        assert!(
            start.elapsed() < CLOSE_BOUND,
            "the idle connection beside it was not closed within {CLOSE_BOUND:?}"
        );
        correlation_id += 1;
        api_versions(&mut busy, correlation_id);
        std::thread::sleep(idle() / 4);
    }
    idle_watch.join().expect("idle watcher");

    eprintln!("phase: and for twice the idle time more");
    let more = Instant::now();
    while more.elapsed() < idle() * 2 {
        correlation_id += 1;
        api_versions(&mut busy, correlation_id);
        std::thread::sleep(idle() / 4);
    }
    eprintln!("busy connection: {correlation_id} requests answered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_longer_than_the_idle_time_keeps_its_connection() {
    let broker = start_broker();
    let bootstrap = broker.bootstrap().to_string();
    let topic = topic_name("idle-long-poll");
    create_topic(&bootstrap, &topic, 1).await;

    eprintln!(
        "phase: a Fetch on an empty partition waiting 2.5 idle times, beside an idle connection"
    );
    let idle_watch = idle_watcher(&bootstrap);
    let max_wait_ms = (IDLE_MS * 5 / 2) as i32;
    let fetch = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.clone())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])]);
    let fetched = tokio::task::spawn_blocking(move || {
        let mut connection = RawConnection::connect(&bootstrap);
        let sent = Instant::now();
        connection.send_request(4, 7, &fetch);
        let frame = loop {
            match connection.read_frame() {
                ReadOutcome::Frame(frame) => break frame,
                ReadOutcome::Closed => panic!(
                    "the long-poll Fetch's connection was closed after {:?}",
                    sent.elapsed()
                ),
                ReadOutcome::TimedOut => assert!(
                    sent.elapsed() < ANSWER_BOUND,
                    "no Fetch answer within {ANSWER_BOUND:?}"
                ),
            }
        };
        eprintln!("long poll answered after {:?}", sent.elapsed());
        let response: FetchResponse = decode_response::<FetchRequest>(frame, 4, 7);
        assert_eq!(response.error_code, 0, "Fetch error");
        // Just answered: open, and serving.
        api_versions(&mut connection, 8);
    });
    fetched.await.expect("long-poll client");

    eprintln!("phase: the idle connection beside it was closed");
    let watch = tokio::task::spawn_blocking(move || idle_watch.join());
    watch
        .await
        .expect("join task")
        .expect("the idle connection is closed");
}

/// -1 turns the idle close off (as in Kafka), and Long.MAX is "never" too
/// (no overflow on the deadline): their connections outlive one that a
/// broker with a 2 s idle time closes, by twice that time.
#[test]
fn an_idle_time_of_minus_one_or_long_max_never_closes() {
    let closing = start_broker();
    let never: Vec<(TestCluster, RawConnection)> = ["-1", "9223372036854775807"]
        .into_iter()
        .map(|idle_ms| {
            let broker = start_in_process(&[("connections.max.idle.ms", idle_ms)]);
            let mut connection = RawConnection::connect(broker.bootstrap());
            api_versions(&mut connection, 1);
            (broker, connection)
        })
        .collect();
    let mut used = RawConnection::connect(closing.bootstrap());
    api_versions(&mut used, 1);

    eprintln!("phase: the 2 s broker closes its idle connection");
    wait_for_close(&mut used, "connection to the 2 s broker");
    std::thread::sleep(idle() * 2);

    eprintln!("phase: the others still serve theirs");
    for (broker, mut connection) in never {
        api_versions(&mut connection, 2);
        drop(broker);
    }
}
