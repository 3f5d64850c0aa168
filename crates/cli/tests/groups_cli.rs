//! The `sluice group` commands and `sluice consume -g` against a real broker:
//! describe shows committed offsets and lag, reset-offsets plans and
//! commits, refusals and errors are one clear line with exit code 1.

mod common;
#[path = "common/group.rs"]
mod group;

use std::time::Duration;

use common::{consumer, create_topic, topic_name, TestBroker};
use group::{
    close_within, group_consumer, is_split, poll_until, produce_to_partitions, sluice, table_row,
    CliOutput, GROUP_BROKER_SETTINGS, REBALANCE_TIMEOUT,
};
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// Asserts exit code 0 and returns stdout.
fn ok(output: CliOutput, what: &str) -> String {
    assert_eq!(output.code, Some(0), "`sluice {what}` failed: {output:?}");
    output.stdout
}

/// Asserts exit code 1 with one `error:` line containing `needle`.
fn fails(output: CliOutput, needle: &str, what: &str) {
    assert_eq!(
        output.code,
        Some(1),
        "`sluice {what}` should fail: {output:?}"
    );
    let errors: Vec<&str> = output
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {output:?}");
    assert!(
        errors[0].contains(needle),
        "`sluice {what}`: expected {needle:?} in {:?}",
        errors[0]
    );
}

/// The CURRENT-OFFSET, LOG-END-OFFSET and LAG cells of `describe`'s row for
/// `topic`/`partition`.
fn offsets_row(describe: &str, topic: &str, partition: i32) -> (String, String, String) {
    let row = table_row(describe, &[topic, &partition.to_string()])
        .unwrap_or_else(|| panic!("no row for {topic}/{partition} in:\n{describe}"));
    (row[2].clone(), row[3].clone(), row[4].clone())
}

fn cells(values: (&str, &str, &str)) -> (String, String, String) {
    (
        values.0.to_string(),
        values.1.to_string(),
        values.2.to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_lag_and_reset_offsets_moves_it() {
    let broker = TestBroker::start_with(GROUP_BROKER_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("lag");
    let group = topic_name("lag-group");
    create_topic(bootstrap, &topic, 1).await;
    produce_to_partitions(bootstrap, &topic, 1, 10).await;

    eprintln!("phase: commit offset 4 for the group (as an assign() consumer does)");
    let committer = consumer(bootstrap, &[("group.id", &group)]);
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&topic, 0, Offset::Offset(4))
        .expect("offset list");
    committer
        .commit(&offsets, CommitMode::Sync)
        .expect("commit offset 4");
    drop(committer);

    eprintln!("phase: describe shows committed 4, end 10, lag 6");
    let describe = ok(
        sluice(bootstrap, &["group", "describe", &group]),
        "group describe",
    );
    eprintln!("{describe}");
    assert_eq!(offsets_row(&describe, &topic, 0), cells(("4", "10", "6")));
    let list = ok(sluice(bootstrap, &["group", "list"]), "group list");
    assert!(
        table_row(&list, &[&group]).is_some(),
        "{group} in group list:\n{list}"
    );

    eprintln!("phase: __consumer_offsets is hidden from topic list unless asked");
    let topics = ok(sluice(bootstrap, &["topic", "list"]), "topic list");
    assert!(table_row(&topics, &[&topic]).is_some(), "{topics}");
    assert!(!topics.contains("__consumer_offsets"), "{topics}");
    let all = ok(
        sluice(bootstrap, &["topic", "list", "--internal"]),
        "topic list --internal",
    );
    assert!(all.contains("__consumer_offsets"), "{all}");

    eprintln!("phase: a dry run changes nothing");
    let reset = ["group", "reset-offsets", &group, "--topic", &topic];
    let with = |extra: &[&str]| -> Vec<String> {
        reset
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sluice(bootstrap, &args)
    };
    let plan = ok(run(&["--to-earliest"]), "reset-offsets --to-earliest");
    assert_eq!(
        table_row(&plan, &[&topic, "0"]),
        Some(vec![
            topic.clone(),
            "0".to_string(),
            "4".to_string(),
            "0".to_string()
        ]),
        "{plan}"
    );
    let describe = ok(
        sluice(bootstrap, &["group", "describe", &group]),
        "describe",
    );
    assert_eq!(offsets_row(&describe, &topic, 0), cells(("4", "10", "6")));

    eprintln!("phase: --execute for each kind of target");
    let cases: &[(&[&str], &str)] = &[
        (&["--to-earliest"], "0"),
        (&["--to-offset", "7"], "7"),
        (&["--shift-by", "-2"], "5"),
        (&["--to-latest"], "10"),
        (&["--to-offset", "99"], "10"),
        (&["--to-datetime", "2000-01-01T00:00:00Z"], "0"),
        (&["--to-datetime", "2999-01-01T00:00:00+02:00"], "10"),
    ];
    for (target, expected) in cases {
        let mut args = target.to_vec();
        args.push("--execute");
        ok(run(&args), &format!("reset-offsets {args:?}"));
        let describe = ok(
            sluice(bootstrap, &["group", "describe", &group]),
            "describe",
        );
        let (committed, end, _) = offsets_row(&describe, &topic, 0);
        assert_eq!(
            (committed.as_str(), end.as_str()),
            (*expected, "10"),
            "after {target:?}:\n{describe}"
        );
    }

    eprintln!("phase: --execute on several partitions at once");
    let wide = topic_name("lag-wide");
    create_topic(bootstrap, &wide, 3).await;
    produce_to_partitions(bootstrap, &wide, 3, 2).await;
    ok(
        sluice(
            bootstrap,
            &[
                "group",
                "reset-offsets",
                &group,
                "--topic",
                &wide,
                "--to-latest",
                "--execute",
            ],
        ),
        "reset-offsets of 3 partitions",
    );
    let describe = ok(
        sluice(bootstrap, &["group", "describe", &group]),
        "describe",
    );
    for partition in 0..3 {
        assert_eq!(
            offsets_row(&describe, &wide, partition),
            cells(("2", "2", "0")),
            "{describe}"
        );
    }

    eprintln!("phase: bad reset arguments");
    fails(
        run(&["--to-datetime", "yesterday"]),
        "RFC 3339",
        "reset-offsets --to-datetime yesterday",
    );
    fails(
        sluice(
            bootstrap,
            &[
                "group",
                "reset-offsets",
                &group,
                "--topic",
                &format!("{topic}:5"),
                "--to-earliest",
            ],
        ),
        "no partition 5",
        "reset-offsets TOPIC:5",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_members_is_described_and_protected() {
    let broker = TestBroker::start_with(GROUP_BROKER_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("members");
    let group = topic_name("members-group");
    create_topic(bootstrap, &topic, 2).await;
    let (member, _) = group_consumer(bootstrap, &group, &topic, &[]);
    poll_until(&[&member], REBALANCE_TIMEOUT, "member owns both", |a| {
        is_split(a, 2, &[2])
    });

    eprintln!("phase: describe lists the member and its assignment");
    // Keep the member polling (heartbeats run in librdkafka's own threads).
    let describe = ok(
        sluice(bootstrap, &["group", "describe", &group]),
        "describe",
    );
    eprintln!("{describe}");
    let header = table_row(&describe, &[&group]).expect("group row");
    assert_eq!(header[1], "Stable", "{describe}");
    assert_eq!(header[2], "consumer", "{describe}");
    assert_eq!(header[3], "range", "{describe}");
    assert_eq!(header[4], "1", "{describe}");
    let assignment = format!("{topic}:0,1");
    assert!(
        describe
            .lines()
            .any(|l| l.contains("groups-e2e") && l.ends_with(&assignment)),
        "member row with client id and assignment {assignment}:\n{describe}"
    );
    assert_eq!(
        offsets_row(&describe, &topic, 0).0,
        "-",
        "nothing committed"
    );
    assert_eq!(
        offsets_row(&describe, &topic, 0).2,
        "-",
        "no lag without a commit"
    );

    eprintln!("phase: reset and delete are refused while it has members");
    fails(
        sluice(
            bootstrap,
            &[
                "group",
                "reset-offsets",
                &group,
                "--topic",
                &topic,
                "--to-earliest",
                "--execute",
            ],
        ),
        "stop its consumers",
        "reset-offsets on a live group",
    );
    fails(
        sluice(bootstrap, &["group", "delete", &group]),
        "has active members",
        "delete a live group",
    );

    eprintln!("phase: after the member leaves, delete works once");
    close_within(member, Duration::from_secs(30));
    let deleted = ok(sluice(bootstrap, &["group", "delete", &group]), "delete");
    assert_eq!(deleted.trim(), format!("deleted group {group}"));
    fails(
        sluice(bootstrap, &["group", "delete", &group]),
        "does not exist",
        "delete twice",
    );
    fails(
        sluice(bootstrap, &["group", "describe", &group]),
        "does not exist",
        "describe a deleted group",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_as_a_group_member_commits_what_it_printed() {
    let broker = TestBroker::start_with(GROUP_BROKER_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("cli-consume");
    let group = topic_name("cli-consume-group");
    create_topic(bootstrap, &topic, 1).await;
    produce_to_partitions(bootstrap, &topic, 1, 10).await;

    let consume = |count: &str| {
        sluice(
            bootstrap,
            &[
                "consume",
                &topic,
                "-g",
                &group,
                "--from-beginning",
                "-n",
                count,
                "-X",
                "heartbeat.interval.ms=500",
            ],
        )
    };
    let first = ok(consume("4"), "consume -g -n 4");
    assert_eq!(first, "p0-0\np0-1\np0-2\np0-3\n");
    let describe = ok(
        sluice(bootstrap, &["group", "describe", &group]),
        "describe",
    );
    assert_eq!(
        offsets_row(&describe, &topic, 0),
        cells(("4", "10", "6")),
        "{describe}"
    );
    let header = table_row(&describe, &[&group]).expect("group row");
    assert_eq!(header[1], "Empty", "the member left on exit:\n{describe}");

    let second = ok(consume("3"), "consume -g -n 3 again");
    assert_eq!(second, "p0-4\np0-5\np0-6\n", "resumed after the commit");
}
