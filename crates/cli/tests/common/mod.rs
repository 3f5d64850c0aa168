//! Shared harness for the end-to-end tests: starts the real `sluice` binary on an
//! ephemeral port with its own data directory (for what only a process shows:
//! kill -9, signals, the CLI, its stderr), or a broker inside the test process
//! (`start_in_process`, sluice-testkit's `TestCluster`), and builds rdkafka
//! clients with bounded timeouts.
//!
//! Every test binary includes this module and uses a different subset of it.
#![allow(dead_code)]

pub mod cluster;
pub mod processes;
pub mod raw;
pub mod segment;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice_testkit::TestCluster;
use tempfile::TempDir;

/// How long the broker may take to print its `listening on` line.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a SIGTERM-ed broker may take to exit.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// Default bound for one client operation (metadata, admin, delivery).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts one broker inside the test process on an ephemeral port with a
/// temporary data directory and `settings` (as `--set KEY=VALUE`); node 1 of
/// the returned cluster. For tests that need no separate process.
pub fn start_in_process(settings: &[(&str, &str)]) -> TestCluster {
    TestCluster::start(1, settings)
        .unwrap_or_else(|error| panic!("starting an in-process broker: {error}"))
}

/// A `sluice serve` child process with its data directory.
pub struct TestBroker {
    /// The running child, `None` after it was stopped.
    child: Option<Child>,
    /// `host:port` from the `listening on` line of the current child.
    address: String,
    /// Where the broker keeps its data; stays the same across restarts.
    data_dir: PathBuf,
    /// `--set KEY=VALUE` settings passed on every start.
    settings: Vec<(String, String)>,
    /// Owns the data directory when the harness created it.
    _data_temp: Option<TempDir>,
    /// Holds the broker's stderr log (outside the data dir, so it never confuses recovery).
    log_dir: TempDir,
    /// How many times a child was spawned, to name log files.
    generation: u32,
    /// RLIMIT_NOFILE of the broker process alone (`ulimit -n` in a shell
    /// that then execs it), when a test runs it short of descriptors.
    open_files_max: Option<u32>,
}

impl TestBroker {
    /// Starts a broker with a fresh temporary data directory and default settings.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a broker with a fresh temporary data directory and `--set` settings.
    pub fn start_with(settings: &[(&str, &str)]) -> Self {
        Self::start_fresh(settings, None)
    }

    /// Starts a broker on a given data directory (which the caller owns).
    pub fn start_in(data_dir: &Path, settings: &[(&str, &str)]) -> Self {
        Self::spawn_new(data_dir.to_path_buf(), None, settings, None)
    }

    /// Starts a broker (fresh data directory, `--set` settings) whose process
    /// may hold at most `open_files_max` file descriptors; the test process
    /// and this machine's own limit are not involved.
    pub fn start_with_open_files_max(settings: &[(&str, &str)], open_files_max: u32) -> Self {
        Self::start_fresh(settings, Some(open_files_max))
    }

    fn start_fresh(settings: &[(&str, &str)], open_files_max: Option<u32>) -> Self {
        let temp = tempfile::Builder::new()
            .prefix("sluice-data-")
            .tempdir()
            .expect("create temp data dir");
        let data_dir = temp.path().to_path_buf();
        Self::spawn_new(data_dir, Some(temp), settings, open_files_max)
    }

    fn spawn_new(
        data_dir: PathBuf,
        data_temp: Option<TempDir>,
        settings: &[(&str, &str)],
        open_files_max: Option<u32>,
    ) -> Self {
        let log_dir = tempfile::Builder::new()
            .prefix("sluice-log-")
            .tempdir()
            .expect("create temp log dir");
        let mut broker = TestBroker {
            child: None,
            address: String::new(),
            data_dir,
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            _data_temp: data_temp,
            log_dir,
            generation: 0,
            open_files_max,
        };
        broker.spawn();
        broker
    }

    fn log_path(&self) -> PathBuf {
        self.log_dir
            .path()
            .join(format!("broker-{}.stderr", self.generation))
    }

    fn spawn(&mut self) {
        if let Err(status) = self.spawn_on("127.0.0.1:0") {
            panic!(
                "broker exited with {status} before listening; stderr:\n{}",
                self.log_tail()
            );
        }
    }

    /// Starts a child listening on `listen`; `Err` with its exit status when
    /// it exits before listening (for instance: the address is still in use).
    fn spawn_on(&mut self, listen: &str) -> Result<(), ExitStatus> {
        assert!(self.child.is_none(), "broker already running");
        self.generation += 1;
        let log = std::fs::File::create(self.log_path()).expect("create broker log");
        let mut command = match self.open_files_max {
            None => Command::new(env!("CARGO_BIN_EXE_sluice")),
            Some(open_files_max) => {
                // The shell lowers its own limit and becomes the broker (exec),
                // so the child's pid is the broker's.
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(r#"ulimit -n "$1" && shift && exec "$@""#)
                    .arg("sh")
                    .arg(open_files_max.to_string())
                    .arg(env!("CARGO_BIN_EXE_sluice"));
                shell
            }
        };
        command
            .env("NO_COLOR", "1")
            .arg("serve")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(&self.data_dir);
        for (key, value) in &self.settings {
            command.arg("--set").arg(format!("{key}={value}"));
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn sluice binary");
        let stdout = child.stdout.take().expect("child stdout");
        let (sender, receiver) = mpsc::channel::<String>();
        // Reads the first line, then keeps draining stdout so the broker never blocks on it.
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) > 0 {
                let _ = sender.send(line);
            }
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let line = loop {
            match receiver.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => break line,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        return Err(status);
                    }
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        let _ = child.wait();
                        panic!(
                            "broker did not print `listening on` within {STARTUP_TIMEOUT:?}; stderr:\n{}",
                            self.log_tail()
                        );
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = child.kill();
                    return Err(child.wait().expect("wait for broker"));
                }
            }
        };
        let address = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first stdout line: {line:?}"))
            .to_string();
        self.address = address;
        self.child = Some(child);
        Ok(())
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        assert!(self.child.is_some(), "broker is not running");
        &self.address
    }

    /// The data directory (stable across restarts).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id of the running broker.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is not running").id()
    }

    /// A `/proc/<pid>/status` field in KiB (Linux), e.g. `VmPeak` or `VmRSS`.
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc/<pid>/status"))
    }

    /// SIGKILL: an unclean stop, as in a power cut for the process.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("broker is not running");
        child.kill().expect("kill -9 broker");
        child.wait().expect("wait for killed broker");
    }

    /// SIGTERM and wait for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("broker is not running");
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed: {status}");
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait broker") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "broker did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM; stderr:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits up to `timeout` for the broker to exit by itself; its status,
    /// or `None` while it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("broker is not running");
            if let Some(status) = child.try_wait().expect("try_wait broker") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the broker again on the same data directory (stopping it cleanly first
    /// if it is still running). The port changes: build new clients afterwards.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
        self.spawn();
    }

    /// Starts the stopped broker again on the same data directory and the
    /// SAME port, so that clients built before the stop (an rdkafka producer
    /// in the middle of a stream) reconnect by themselves. The killed
    /// process's sockets may hold the port for a moment: retried.
    pub fn start_again_on_same_port(&mut self) {
        assert!(self.child.is_none(), "broker still running");
        let address = self.address.clone();
        for attempt in 1..=20 {
            match self.spawn_on(&address) {
                Ok(()) => {
                    assert_eq!(
                        self.address, address,
                        "the broker came back on its old port"
                    );
                    return;
                }
                Err(status) => {
                    eprintln!(
                        "restart on {address} attempt {attempt}: exited with {status}; stderr:\n{}",
                        self.log_tail()
                    );
                    std::thread::sleep(Duration::from_millis(250));
                }
            }
        }
        panic!("the broker could not start again on {address}");
    }

    /// Everything the current broker wrote to stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The last lines of the current broker's stderr, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(60);
        lines[start..].join("\n")
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- sluice stderr (last lines, data dir {}) ---\n{}",
                self.data_dir.display(),
                self.log_tail()
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every file under `dir` with its size, one per line, for failure messages.
pub fn describe_dir(dir: &Path) -> String {
    fn walk(dir: &Path, lines: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, lines);
            } else {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                lines.push(format!("{size:>10} {}", path.display()));
            }
        }
    }
    let mut lines = Vec::new();
    walk(dir, &mut lines);
    lines.join("\n")
}

/// A unique-enough topic name for one test.
pub fn topic_name(prefix: &str) -> String {
    format!("{prefix}-{}", rand::random::<u32>())
}

fn client_config(bootstrap: &str, overrides: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000")
        .set("broker.address.family", "v4");
    for (key, value) in overrides {
        config.set(*key, *value);
    }
    config
}

/// A FutureProducer with bounded delivery time; `overrides` win.
pub fn producer(bootstrap: &str, overrides: &[(&str, &str)]) -> FutureProducer {
    let mut config = client_config(bootstrap, &[]);
    config
        .set("message.timeout.ms", "20000")
        .set("request.timeout.ms", "10000")
        .set("acks", "all");
    for (key, value) in overrides {
        config.set(*key, *value);
    }
    config.create().expect("create producer")
}

/// A BaseConsumer for manual assignment (no group); `overrides` win.
pub fn consumer(bootstrap: &str, overrides: &[(&str, &str)]) -> BaseConsumer {
    let mut config = client_config(bootstrap, &[]);
    // librdkafka's assign() needs a group id even when no group is joined.
    config
        .set("group.id", format!("e2e-{}", rand::random::<u32>()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("fetch.wait.max.ms", "500")
        .set("auto.offset.reset", "error");
    for (key, value) in overrides {
        config.set(*key, *value);
    }
    config.create().expect("create consumer")
}

/// An AdminClient.
pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap, &[])
        .create()
        .expect("create admin client")
}

/// Admin options with bounded timeouts.
pub fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(CLIENT_TIMEOUT))
        .operation_timeout(Some(Duration::from_secs(10)))
}

/// Creates topics and returns the per-topic results (error codes as the broker answered).
pub async fn create_topics_raw(
    bootstrap: &str,
    topics: &[(&str, i32, i32)],
) -> Result<Vec<Result<String, (String, RDKafkaErrorCode)>>, KafkaError> {
    let admin = admin(bootstrap);
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions, replication)| {
            NewTopic::new(name, *partitions, TopicReplication::Fixed(*replication))
        })
        .collect();
    let outcome = tokio::time::timeout(
        CLIENT_TIMEOUT + Duration::from_secs(5),
        admin.create_topics(new_topics.iter(), &admin_options()),
    )
    .await
    .expect("CreateTopics did not complete in time");
    outcome
}

/// Creates one topic (replication factor 1) and asserts success.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let results = create_topics_raw(bootstrap, &[(name, partitions, 1)])
        .await
        .expect("CreateTopics request failed");
    assert_eq!(results.len(), 1, "one result per topic");
    if let Err((topic, code)) = &results[0] {
        panic!("creating topic {topic:?} failed: {code:?}");
    }
}

/// Assigns `(partition, offset)` pairs of one topic to `consumer`.
pub fn assign(consumer: &BaseConsumer, topic: &str, partitions: &[(i32, Offset)]) {
    let mut list = TopicPartitionList::new();
    for (partition, offset) in partitions {
        list.add_partition_offset(topic, *partition, *offset)
            .expect("add partition to assignment");
    }
    consumer.assign(&list).expect("assign partitions");
}

/// Polls until `count` messages arrived or `timeout` passed; returns what arrived.
/// Errors are logged and polling goes on (the caller asserts on what it got).
pub fn poll_messages(
    consumer: &BaseConsumer,
    count: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + timeout;
    let mut messages = Vec::new();
    while messages.len() < count {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let wait = (deadline - now).min(Duration::from_millis(200));
        match consumer.poll(wait) {
            Some(Ok(message)) => messages.push(message.detach()),
            Some(Err(error)) => eprintln!("consumer error (continuing): {error}"),
            None => {}
        }
    }
    messages
}

/// Polls for `duration` and returns everything that arrived (for "nothing more" checks).
pub fn poll_for(consumer: &BaseConsumer, duration: Duration) -> Vec<OwnedMessage> {
    poll_messages(consumer, usize::MAX, duration)
}

/// Low and high watermarks of a partition, as the broker reports them (ListOffsets).
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let consumer = consumer(bootstrap, &[]);
    consumer
        .fetch_watermarks(topic, partition, CLIENT_TIMEOUT)
        .unwrap_or_else(|error| panic!("fetch_watermarks {topic}/{partition}: {error}"))
}

/// The number of partitions the broker reports for `topic`, or `None` when the
/// metadata answer carries an error for it.
pub fn partition_count(bootstrap: &str, topic: &str) -> Option<usize> {
    let consumer = consumer(bootstrap, &[]);
    let metadata = consumer
        .fetch_metadata(Some(topic), CLIENT_TIMEOUT)
        .expect("fetch metadata");
    let entry = metadata.topics().iter().find(|t| t.name() == topic)?;
    if entry.error().is_some() {
        return None;
    }
    Some(entry.partitions().len())
}

/// Key and value of a message as owned byte vectors.
pub fn key_value(message: &OwnedMessage) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    (
        message.key().map(<[u8]>::to_vec),
        message.payload().map(<[u8]>::to_vec),
    )
}

/// Produces one record with a fresh client and waits for its acknowledgement; returns its offset.
pub async fn produce_one(bootstrap: &str, topic: &str, key: &str, value: &str) -> i64 {
    let producer = producer(bootstrap, &[]);
    let record = rdkafka::producer::FutureRecord::to(topic)
        .partition(0)
        .key(key)
        .payload(value);
    let delivery = tokio::time::timeout(CLIENT_TIMEOUT + Duration::from_secs(5), async {
        producer.send(record, CLIENT_TIMEOUT).await
    })
    .await
    .expect("delivery did not complete in time");
    match delivery {
        Ok(delivery) => delivery.offset,
        Err((error, _)) => panic!("produce to {topic} failed: {error}"),
    }
}

/// How long a refused start may take before a test calls it hung.
pub const REFUSAL_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `sluice serve --listen 127.0.0.1:0 --data-dir <data_dir> <args>` and
/// waits for it to exit (it is expected to refuse to start); panics if it is
/// still running after `REFUSAL_TIMEOUT`.
pub fn serve_expecting_refusal(data_dir: &Path, args: &[&str]) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .env("NO_COLOR", "1")
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice serve");
    let deadline = Instant::now() + REFUSAL_TIMEOUT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("wait");
            panic!(
                "sluice serve {args:?} kept running on {}; stdout: {}\nstderr: {}",
                data_dir.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("collect output")
}

/// Asserts the start was refused (a failure exit, never `listening on`)
/// with an `error:` line containing every `needle`.
pub fn assert_refused(output: &std::process::Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "expected a refusal, got {}; stderr:\n{stderr}",
        output.status
    );
    assert!(
        !stdout.contains("listening on"),
        "a refused broker must not listen; stdout: {stdout}"
    );
    let error_line = stderr
        .lines()
        .find(|line| line.starts_with("error:"))
        .unwrap_or_else(|| panic!("no `error:` line; stderr:\n{stderr}"));
    for needle in needles {
        assert!(
            error_line.contains(needle),
            "error line {error_line:?} lacks {needle:?}"
        );
    }
}
