//! Consumer groups with a real client (librdkafka through rdkafka): members
//! split a topic's partitions, rebalance when one joins, leaves or dies,
//! resume from committed offsets (also across a broker restart), groups are
//! independent, and the cooperative-sticky assignor moves only what it must.

mod common;
#[path = "common/group.rs"]
mod group;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{create_topic, producer, topic_name, TestBroker};
use group::{
    assigned, close_within, group_consumer, is_split, poll_count, poll_until,
    produce_to_partitions, sluice_child, summary, RebalanceEvent, RecordingContext,
    GROUP_BROKER_SETTINGS, REBALANCE_TIMEOUT,
};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// How long closing a consumer (LeaveGroup) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_split_partitions_and_rebalance_on_join_and_leave() {
    let broker = TestBroker::start_with(GROUP_BROKER_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("split");
    let group = topic_name("split-group");
    create_topic(bootstrap, &topic, 6).await;

    eprintln!("phase: two members get 3+3");
    let (first, _) = group_consumer(bootstrap, &group, &topic, &[]);
    let (second, _) = group_consumer(bootstrap, &group, &topic, &[]);
    poll_until(&[&first, &second], REBALANCE_TIMEOUT, "3+3", |a| {
        is_split(a, 6, &[3, 3])
    });

    eprintln!("phase: a third member joins: 2+2+2");
    let (third, _) = group_consumer(bootstrap, &group, &topic, &[]);
    poll_until(
        &[&first, &second, &third],
        REBALANCE_TIMEOUT,
        "2+2+2",
        |a| is_split(a, 6, &[2, 2, 2]),
    );

    eprintln!("phase: the third leaves (LeaveGroup on close): 3+3 again");
    close_within(third, CLOSE_TIMEOUT);
    poll_until(
        &[&first, &second],
        REBALANCE_TIMEOUT,
        "3+3 after leave",
        |a| is_split(a, 6, &[3, 3]),
    );

    eprintln!("phase: every record reaches exactly one member");
    produce_to_partitions(bootstrap, &topic, 6, 5).await;
    let messages = poll_count(&[&first, &second], 30, Duration::from_secs(30));
    let all: Vec<(i32, i64, String)> = messages.iter().flat_map(|m| summary(m)).collect();
    let unique: BTreeSet<(i32, i64)> = all.iter().map(|(p, o, _)| (*p, *o)).collect();
    assert_eq!(all.len(), 30, "records received: {all:?}");
    assert_eq!(unique.len(), 30, "a record reached two members: {all:?}");
    for (index, received) in messages.iter().enumerate() {
        let member = if index == 0 { &first } else { &second };
        let mine = assigned(member);
        for message in received {
            assert!(
                mine.contains(&message.partition()),
                "member {index} got partition {} outside its assignment {mine:?}",
                message.partition()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_beyond_the_partition_count_sits_idle() {
    let broker = TestBroker::start_with(GROUP_BROKER_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("idle");
    let group = topic_name("idle-group");
    create_topic(bootstrap, &topic, 2).await;
    let (first, _) = group_consumer(bootstrap, &group, &topic, &[]);
    let (second, _) = group_consumer(bootstrap, &group, &topic, &[]);
    let (third, _) = group_consumer(bootstrap, &group, &topic, &[]);
    poll_until(
        &[&first, &second, &third],
        REBALANCE_TIMEOUT,
        "1+1+0",
        |a| is_split(a, 2, &[0, 1, 1]),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_member_loses_its_partitions_after_the_session_timeout() {
    let broker = TestBroker::start_with(GROUP_BROKER_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("dead");
    let group = topic_name("dead-group");
    create_topic(bootstrap, &topic, 6).await;
    let session = [("session.timeout.ms", "6000")];
    let (first, _) = group_consumer(bootstrap, &group, &topic, &session);
    let (second, _) = group_consumer(bootstrap, &group, &topic, &session);
    poll_until(&[&first, &second], REBALANCE_TIMEOUT, "3+3", |a| {
        is_split(a, 6, &[3, 3])
    });

    eprintln!("phase: a third member in a child process joins");
    let mut child = sluice_child(
        bootstrap,
        &[
            "consume",
            &topic,
            "-g",
            &group,
            "--from-beginning",
            "-X",
            "session.timeout.ms=6000",
            "-X",
            "heartbeat.interval.ms=500",
        ],
    );
    poll_until(
        &[&first, &second],
        REBALANCE_TIMEOUT,
        "2+2 (+2 in the child)",
        |a| a[0].len() == 2 && a[1].len() == 2 && a[0].is_disjoint(&a[1]),
    );

    eprintln!("phase: kill -9 the child: no LeaveGroup; its session expires");
    child.kill().expect("kill -9 the child consumer");
    let _ = child.wait();
    poll_until(
        &[&first, &second],
        REBALANCE_TIMEOUT,
        "3+3 after the session timeout",
        |a| is_split(a, 6, &[3, 3]),
    );
}

/// Consumes 4 of 10 records in a group, commits offset 4, closes; a new
/// member of the group (after a broker restart when `restart`) starts at 4.
async fn resume_from_committed(restart: bool) {
    let mut broker = TestBroker::start_with(GROUP_BROKER_SETTINGS);
    let topic = topic_name("resume");
    let group = topic_name("resume-group");
    create_topic(broker.bootstrap(), &topic, 1).await;
    produce_to_partitions(broker.bootstrap(), &topic, 1, 10).await;

    eprintln!("phase: consume 4, commit offset 4, close");
    let (consumer, _) = group_consumer(broker.bootstrap(), &group, &topic, &[]);
    let received = poll_count(&[&consumer], 4, Duration::from_secs(30)).remove(0);
    let offsets: Vec<i64> = received.iter().map(Message::offset).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3], "first member's records");
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(&topic, 0, Offset::Offset(4))
        .expect("offset list");
    consumer
        .commit(&commit, CommitMode::Sync)
        .expect("commit offset 4");
    close_within(consumer, CLOSE_TIMEOUT);

    if restart {
        eprintln!("phase: restart the broker");
        broker.restart();
    }

    eprintln!("phase: a new member resumes at the committed offset");
    let (consumer, _) = group_consumer(broker.bootstrap(), &group, &topic, &[]);
    let committed = consumer
        .committed_offsets(commit.clone(), Duration::from_secs(20))
        .expect("committed offsets");
    assert_eq!(
        committed
            .find_partition(&topic, 0)
            .map(|element| element.offset()),
        Some(Offset::Offset(4)),
        "committed offset as OffsetFetch reports it"
    );
    let received = poll_count(&[&consumer], 6, Duration::from_secs(60)).remove(0);
    let got = summary(&received);
    let expected: Vec<(i32, i64, String)> = (4..10).map(|i| (0, i, format!("p0-{i}"))).collect();
    assert_eq!(got, expected, "second member's records");
    close_within(consumer, CLOSE_TIMEOUT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_member_resumes_from_the_committed_offset() {
    resume_from_committed(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_broker_restart() {
    resume_from_committed(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_of_several_partitions_is_kept() {
    let broker = TestBroker::start_with(GROUP_BROKER_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("multi-commit");
    let group = topic_name("multi-commit-group");
    create_topic(bootstrap, &topic, 3).await;
    produce_to_partitions(bootstrap, &topic, 3, 5).await;

    eprintln!("phase: read all 15 records and commit the position of 3 partitions at once");
    let (consumer, _) = group_consumer(bootstrap, &group, &topic, &[]);
    let received = poll_count(&[&consumer], 15, Duration::from_secs(30)).remove(0);
    assert_eq!(received.len(), 15, "{:?}", summary(&received));
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("one OffsetCommit for three partitions");
    close_within(consumer, CLOSE_TIMEOUT);

    eprintln!("phase: OffsetFetch returns all three, a new member reads only new records");
    produce_to_partitions(bootstrap, &topic, 3, 1).await;
    let (consumer, _) = group_consumer(bootstrap, &group, &topic, &[]);
    let mut wanted = TopicPartitionList::new();
    for partition in 0..3 {
        wanted.add_partition(&topic, partition);
    }
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(20))
        .expect("committed offsets");
    let offsets: Vec<(i32, Offset)> = committed
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    assert_eq!(
        offsets,
        (0..3).map(|p| (p, Offset::Offset(5))).collect::<Vec<_>>()
    );
    let received = poll_count(&[&consumer], 3, Duration::from_secs(60)).remove(0);
    let mut got: Vec<(i32, i64)> = received
        .iter()
        .map(|m| (m.partition(), m.offset()))
        .collect();
    got.sort_unstable();
    assert_eq!(got, vec![(0, 5), (1, 5), (2, 5)]);
    close_within(consumer, CLOSE_TIMEOUT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_each_receive_every_record() {
    let broker = TestBroker::start_with(GROUP_BROKER_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("fanout");
    create_topic(bootstrap, &topic, 3).await;
    let group_a = topic_name("fanout-a");
    let group_b = topic_name("fanout-b");
    let (a, _) = group_consumer(bootstrap, &group_a, &topic, &[]);
    let (b1, _) = group_consumer(bootstrap, &group_b, &topic, &[]);
    let (b2, _) = group_consumer(bootstrap, &group_b, &topic, &[]);
    poll_until(&[&a], REBALANCE_TIMEOUT, "group a: 3", |x| {
        is_split(x, 3, &[3])
    });
    poll_until(&[&b1, &b2], REBALANCE_TIMEOUT, "group b: 1+2", |x| {
        is_split(x, 3, &[1, 2])
    });

    produce_to_partitions(bootstrap, &topic, 3, 10).await;
    for (name, members) in [("a", vec![&a]), ("b", vec![&b1, &b2])] {
        let messages = poll_count(&members, 30, Duration::from_secs(30));
        let all: Vec<(i32, i64, String)> = messages.iter().flat_map(|m| summary(m)).collect();
        let unique: BTreeSet<(i32, i64)> = all.iter().map(|(p, o, _)| (*p, *o)).collect();
        assert_eq!(all.len(), 30, "group {name} received {all:?}");
        assert_eq!(
            unique.len(),
            30,
            "group {name} received duplicates: {all:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_moves_only_what_it_must() {
    let broker = TestBroker::start_with(GROUP_BROKER_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("coop");
    let group = topic_name("coop-group");
    create_topic(bootstrap, &topic, 6).await;
    let cooperative = [("partition.assignment.strategy", "cooperative-sticky")];
    let (first, first_events) = group_consumer(bootstrap, &group, &topic, &cooperative);
    let (second, second_events) = group_consumer(bootstrap, &group, &topic, &cooperative);
    poll_until(&[&first, &second], REBALANCE_TIMEOUT, "3+3", |a| {
        is_split(a, 6, &[3, 3])
    });
    let before = [assigned(&first), assigned(&second)];
    let seen = [first_events.events().len(), second_events.events().len()];

    eprintln!("phase: a third cooperative member joins");
    let (third, _) = group_consumer(bootstrap, &group, &topic, &cooperative);
    poll_until(
        &[&first, &second, &third],
        REBALANCE_TIMEOUT,
        "2+2+2",
        |a| is_split(a, 6, &[2, 2, 2]),
    );

    for (index, (events, member)) in [(&first_events, &first), (&second_events, &second)]
        .into_iter()
        .enumerate()
    {
        let revoked = events.revoked_since(seen[index]);
        let kept = assigned(member);
        eprintln!(
            "member {index}: before {:?}, revoked {revoked:?}, now {kept:?}; events {:?}",
            before[index],
            events.events()
        );
        assert_eq!(
            revoked.len(),
            1,
            "member {index} should give up exactly one partition, revoked {revoked:?}"
        );
        assert!(
            kept.is_subset(&before[index]) && kept.is_disjoint(&revoked),
            "member {index} kept {kept:?}, had {:?}",
            before[index]
        );
        for event in events.events().into_iter().skip(seen[index]) {
            assert!(
                !matches!(&event, RebalanceEvent::Error(_)),
                "member {index}: {event:?}"
            );
        }
    }
}

/// Not a check: measures how long a rebalance takes with librdkafka's
/// default settings (heartbeat.interval.ms 3000, session.timeout.ms 45000,
/// range assignor, auto-commit) on a broker with default settings — from
/// the moment one of two members starts closing (LeaveGroup) to the first
/// record the other member fetches from the partition it took over, while a
/// producer writes to both partitions every 10 ms. Prints each round and
/// the median. Run with:
/// `cargo test -p sluice --test groups -- --ignored --nocapture rebalance_time`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a check"]
async fn rebalance_time_with_default_client_settings() {
    const ROUNDS: usize = 5;
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap().to_string();
    let topic = topic_name("rebalance-time");
    let group = topic_name("rebalance-time-group");
    create_topic(&bootstrap, &topic, 2).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (bootstrap, topic, stop) = (bootstrap.clone(), topic.clone(), stop.clone());
        tokio::spawn(async move {
            let producer = producer(&bootstrap, &[]);
            let mut index = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for partition in 0..2 {
                    let value = format!("v{index}");
                    let record = rdkafka::producer::FutureRecord::<(), _>::to(&topic)
                        .partition(partition)
                        .payload(&value);
                    let _ = producer.send_result(record);
                }
                index += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let defaults = |group: &str| {
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", &bootstrap)
            .set("broker.address.family", "v4")
            .set("group.id", group);
        config
    };
    let stay: group::GroupConsumer = defaults(&group)
        .create_with_context(RecordingContext::default())
        .expect("create consumer");
    stay.subscribe(&[&topic]).expect("subscribe");
    let mut figures = Vec::new();
    for round in 0..ROUNDS {
        let leaving: group::GroupConsumer = defaults(&group)
            .create_with_context(RecordingContext::default())
            .expect("create consumer");
        leaving.subscribe(&[&topic]).expect("subscribe");
        poll_until(&[&stay, &leaving], Duration::from_secs(120), "1+1", |a| {
            is_split(a, 2, &[1, 1])
        });
        // Both members are fetching before the leave.
        poll_count(&[&stay, &leaving], 50, Duration::from_secs(30));
        let moving = *assigned(&leaving).iter().next().expect("one partition");

        let started = Instant::now();
        close_within(leaving, Duration::from_secs(60));
        let closed = started.elapsed();
        let deadline = Instant::now() + Duration::from_secs(120);
        let took_over = loop {
            assert!(Instant::now() < deadline, "partition {moving} never moved");
            if let Some(Ok(message)) = stay.poll(Duration::from_millis(5)) {
                if message.partition() == moving {
                    break started.elapsed();
                }
            }
        };
        eprintln!(
            "round {round}: close (LeaveGroup) took {} ms; first record of partition {moving} at the remaining member after {} ms",
            closed.as_millis(),
            took_over.as_millis()
        );
        figures.push(took_over);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = writer.await;
    figures.sort();
    let millis: Vec<u128> = figures.iter().map(Duration::as_millis).collect();
    println!(
        "rebalance (leave -> first record at the new owner), default client settings: median {} ms, all {millis:?} ms",
        figures[figures.len() / 2].as_millis()
    );
}
