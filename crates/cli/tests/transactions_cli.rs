//! The transaction commands of the `sluice` CLI against a real broker:
//! `produce --transactional-id` commits the whole input as one transaction,
//! `consume --isolation read_committed` reads it, `transaction list` and
//! `transaction describe` show the transactional id and its state.

mod common;
#[path = "common/group.rs"]
mod group;

use std::time::Duration;

use common::{create_topic, topic_name, TestBroker};
use group::{sluice, table_row, CliOutput};

/// Asserts exit code 0 and returns stdout.
fn ok(output: CliOutput, what: &str) -> String {
    assert_eq!(output.code, Some(0), "`sluice {what}` failed: {output:?}");
    output.stdout
}

/// Runs `sluice ARGS…` with `input` on its standard input.
fn sluice_with_input(bootstrap: &str, args: &[&str], input: &str) -> CliOutput {
    group::sluice_with_input(bootstrap, args, input, Duration::from_secs(60))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_produce_then_read_committed_list_and_describe() {
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = topic_name("txn-cli");
    let id = topic_name("txn-cli-id");
    create_topic(bootstrap, &topic, 1).await;

    eprintln!("phase: produce three lines in one transaction");
    let what = format!("produce {topic} --transactional-id {id}");
    ok(
        sluice_with_input(
            bootstrap,
            &["produce", &topic, "--transactional-id", &id],
            "one\ntwo\nthree\n",
        ),
        &what,
    );

    eprintln!("phase: a read_committed consumer reads them");
    let args = [
        "consume",
        &topic,
        "--isolation",
        "read_committed",
        "--from-beginning",
        "-n",
        "3",
    ];
    let consumed = ok(sluice(bootstrap, &args), &args.join(" "));
    assert_eq!(consumed, "one\ntwo\nthree\n");

    eprintln!("phase: transaction list shows the id");
    let listed = ok(
        sluice(bootstrap, &["transaction", "list"]),
        "transaction list",
    );
    let row = table_row(&listed, &[&id]).unwrap_or_else(|| panic!("no row for {id} in:\n{listed}"));
    assert_eq!(row.len(), 3, "{listed}");
    assert!(row[1].parse::<i64>().is_ok_and(|p| p >= 0), "{listed}");
    assert!(
        ["CompleteCommit", "Empty"].contains(&row[2].as_str()),
        "{listed}"
    );

    eprintln!("phase: transaction describe shows the committed state");
    let described = ok(
        sluice(bootstrap, &["transaction", "describe", &id]),
        "transaction describe",
    );
    let state =
        table_row(&described, &["STATE"]).unwrap_or_else(|| panic!("no STATE in:\n{described}"));
    assert!(
        ["CompleteCommit", "Empty"].contains(&state[1].as_str()),
        "{described}"
    );
    let producer_id = table_row(&described, &["PRODUCER-ID"])
        .unwrap_or_else(|| panic!("no PRODUCER-ID in:\n{described}"));
    assert_eq!(producer_id[1], row[1], "{described}");
    assert!(
        table_row(&described, &["PRODUCER-EPOCH"]).is_some(),
        "{described}"
    );
    assert!(
        table_row(&described, &["TIMEOUT-MS"]).is_some(),
        "{described}"
    );

    eprintln!("phase: describe of an unknown id is one error line");
    let missing = sluice(bootstrap, &["transaction", "describe", "no-such-txn-id"]);
    assert_eq!(missing.code, Some(1), "{missing:?}");
    let errors: Vec<&str> = missing
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_is_described_and_read_uncommitted_sees_it() {
    use rdkafka::producer::{FutureRecord, Producer as _};

    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let topic = topic_name("txn-cli-open");
    let id = topic_name("txn-cli-open-id");
    create_topic(bootstrap, &topic, 1).await;

    eprintln!("phase: a producer opens a transaction and writes one record");
    let producer = common::producer(bootstrap, &[("transactional.id", &id)]);
    producer
        .init_transactions(common::CLIENT_TIMEOUT)
        .expect("init_transactions");
    producer.begin_transaction().expect("begin_transaction");
    producer
        .send(
            FutureRecord::<(), str>::to(&topic)
                .partition(0)
                .payload("pending"),
            common::CLIENT_TIMEOUT,
        )
        .await
        .expect("delivery");

    eprintln!("phase: describe shows Ongoing with the partition and a start time");
    let described = ok(
        sluice(bootstrap, &["transaction", "describe", &id]),
        "transaction describe",
    );
    let state =
        table_row(&described, &["STATE"]).unwrap_or_else(|| panic!("no STATE in:\n{described}"));
    assert_eq!(state[1], "Ongoing", "{described}");
    assert!(
        table_row(&described, &[&topic, "0"]).is_some(),
        "{described}"
    );
    let start = table_row(&described, &["START-TIME-MS"])
        .unwrap_or_else(|| panic!("no START-TIME-MS in:\n{described}"));
    assert!(start[1].parse::<i64>().is_ok_and(|t| t > 0), "{described}");

    eprintln!("phase: read_uncommitted reads the open transaction's record");
    let args = [
        "consume",
        &topic,
        "--isolation",
        "read_uncommitted",
        "--from-beginning",
        "-n",
        "1",
    ];
    let consumed = ok(sluice(bootstrap, &args), &args.join(" "));
    assert_eq!(consumed, "pending\n");

    producer
        .abort_transaction(common::CLIENT_TIMEOUT)
        .expect("abort_transaction");
}
