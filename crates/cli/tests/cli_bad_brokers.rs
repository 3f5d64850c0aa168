//! Client commands given a `-b` that is not HOST:PORT, or one where no broker
//! listens, fail with one `error:` line naming the address, without waiting
//! for librdkafka's timeouts (10 to 30 s before the fix).
//!
//! Each command is given a generous 8 s before the test fails: it checks
//! that the command stops waiting, not how fast it is.

mod common;
#[path = "common/group.rs"]
mod group;

use std::net::TcpListener;
use std::time::Duration;

use group::CliOutput;

/// How long one failing command may run before the test fails.
const FAIL_BOUND: Duration = Duration::from_secs(8);

/// Runs `sluice ARGS…` (which carry their own `-b`) with one line on its
/// standard input, bounded; a produce reads it.
fn sluice(args: &[&str]) -> CliOutput {
    group::sluice_with_input("", args, "a record\n", FAIL_BOUND)
}

/// A port on 127.0.0.1 where nothing listens: bound to port 0, then closed.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local address").port()
}

/// Asserts a failed exit and exactly one stderr line containing every `want`.
fn assert_one_line_error(output: &CliOutput, what: &str, want: &[&str]) {
    assert_ne!(
        output.code,
        Some(0),
        "`sluice {what}` succeeded: {output:?}"
    );
    let lines: Vec<&str> = output.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "`sluice {what}`: one stderr line: {output:?}"
    );
    assert!(
        lines[0].starts_with("error: "),
        "`sluice {what}`: {}",
        lines[0]
    );
    for text in want {
        assert!(
            lines[0].contains(text),
            "`sluice {what}`: {:?} lacks {text:?}",
            lines[0]
        );
    }
}

/// Each command, with the broker list where the `-b` goes.
const COMMANDS: &[&[&str]] = &[
    &["produce", "-b", "BROKERS", "some-topic"],
    &["consume", "-b", "BROKERS", "some-topic"],
    &["topic", "list", "-b", "BROKERS"],
    &["group", "list", "-b", "BROKERS"],
    &["transaction", "list", "-b", "BROKERS"],
    &["cluster", "info", "-b", "BROKERS"],
];

/// Runs one of [`COMMANDS`] with `brokers` as its `-b`; the command line
/// (for messages) and what it printed.
fn run_with_brokers(command: &[&str], brokers: &str) -> (String, CliOutput) {
    let args: Vec<&str> = command
        .iter()
        .map(|arg| if *arg == "BROKERS" { brokers } else { arg })
        .collect();
    (args.join(" "), sluice(&args))
}

#[test]
fn a_broker_list_that_is_not_host_port_fails_at_once_naming_the_entry() {
    let bad_lists = [
        ("nohostport", "\"nohostport\""),
        ("127.0.0.1:9092,oops", "\"oops\""),
        ("localhost:http", "\"localhost:http\""),
        ("localhost:0", "\"localhost:0\""),
    ];
    for command in COMMANDS {
        for (brokers, named) in bad_lists {
            let (what, output) = run_with_brokers(command, brokers);
            assert_one_line_error(&output, &what, &[named, "-b/--brokers"]);
        }
    }
}

#[test]
fn no_broker_listening_fails_within_seconds_naming_the_address() {
    let port = closed_port();
    let address = format!("127.0.0.1:{port}");
    for command in COMMANDS {
        let (what, output) = run_with_brokers(command, &address);
        assert_one_line_error(
            &output,
            &what,
            &[
                &format!("cannot reach a broker at {address}"),
                "connection refused",
            ],
        );
    }

    eprintln!("phase: every address of the list is named");
    let second = format!("127.0.0.1:{}", closed_port());
    let list = format!("{address},{second}");
    let output = sluice(&["topic", "list", "-b", &list]);
    assert_one_line_error(&output, "topic list", &[&address, &second]);
}
