//! Clusters of real `sluice serve` processes: three voters started
//! together on ephemeral ports, each node killed, paused, terminated and
//! restarted as a test needs.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// One `sluice serve` node of the cluster.
pub struct Node {
    pub node_id: i32,
    pub args: Vec<String>,
    pub child: Option<Child>,
    pub address: String,
    pub log: PathBuf,
}

impl Node {
    pub fn spawn(&mut self) -> mpsc::Receiver<String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&self.args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn sluice serve");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) > 0 {
                let _ = sender.send(line);
            }
            let mut sink = Vec::new();
            let _ = reader.read_to_end(&mut sink);
        });
        self.child = Some(child);
        receiver
    }

    pub fn wait_listening(&mut self, receiver: &mpsc::Receiver<String>) {
        if let Err(log) = self.try_wait_listening(receiver) {
            panic!("node {} did not start; log:\n{log}", self.node_id)
        }
    }

    /// Waits for the "listening on" line; the node's log if it never came.
    pub fn try_wait_listening(&mut self, receiver: &mpsc::Receiver<String>) -> Result<(), String> {
        let Ok(line) = receiver.recv_timeout(START_TIMEOUT) else {
            return Err(std::fs::read_to_string(&self.log).unwrap_or_default());
        };
        self.address = line
            .trim()
            .strip_prefix("listening on ")
            .expect("listening line")
            .to_string();
        Ok(())
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Node {
    /// SIGSTOP: the process stops answering anything, as a paused VM.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .arg(signal)
                .arg(child.id().to_string())
                .status();
        }
    }

    /// Starts the node again (after `kill9` or `terminate`) and waits for
    /// its listener.
    pub fn restart(&mut self) {
        let receiver = self.spawn();
        self.wait_listening(&receiver);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os("SLUICE_TEST_STACKS").is_some() {
            self.dump_stacks();
        }
        self.kill9();
        // A failing test shows what each node logged: its temp dir (and
        // the log with it) is gone once the test ends.
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            // openraft repeats each failed append to a stopped peer every
            // few hundred milliseconds; the rest is what tells a story.
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| {
                    !l.contains("openraft::replication") && !l.contains("replication_handler")
                })
                .collect();
            let tail = &lines[lines.len().saturating_sub(LOG_TAIL_LINES)..];
            eprintln!(
                "---- node {} log (last {} lines) ----\n{}",
                self.node_id,
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

impl Node {
    /// With `SLUICE_TEST_STACKS` set, a failing test writes every thread's
    /// stack of each node (gdb) under the system temp dir, to find where a
    /// node hangs.
    fn dump_stacks(&self) {
        let Some(child) = &self.child else { return };
        let out = std::env::temp_dir().join(format!(
            "sluice-stacks-node{}-{}.txt",
            self.node_id,
            child.id()
        ));
        let dump = Command::new("gdb")
            .args([
                "-p",
                &child.id().to_string(),
                "-batch",
                "-ex",
                "thread apply all bt",
            ])
            .stdin(Stdio::null())
            .output();
        match dump {
            Ok(output) => {
                let _ = std::fs::write(&out, &output.stdout);
                eprintln!("node {} stacks: {}", self.node_id, out.display());
            }
            Err(error) => eprintln!("node {} stacks: gdb failed: {error}", self.node_id),
        }
    }
}

/// Lines of each node's log a failing test prints.
const LOG_TAIL_LINES: usize = 300;

/// A free port below the ephemeral range (see `sluice_testkit::ports`).
pub fn free_port() -> u16 {
    sluice_testkit::ports::reserve_local_port().expect("free port")
}

/// Attempts at starting a cluster whose reserved controller port another
/// process took before the node bound it.
const START_ATTEMPTS: usize = 3;

/// Three nodes, started together, with extra `--set` settings. A start that
/// lost a reserved port to another process is retried from scratch on new
/// ports (the ports are free when reserved, but a moment passes before the
/// node binds them).
pub fn start_cluster(dir: &Path, settings: &[(&str, &str)]) -> Vec<Node> {
    for attempt in 1..=START_ATTEMPTS {
        match try_start_cluster(dir, settings) {
            Ok(nodes) => return nodes,
            Err((mut nodes, node_id, log)) => {
                let port_taken = log.contains("Address already in use");
                if !port_taken || attempt == START_ATTEMPTS {
                    panic!("node {node_id} did not start; log:\n{log}");
                }
                eprintln!("node {node_id} lost its reserved port; starting the cluster again");
                for node in &mut nodes {
                    node.kill9();
                    let _ = std::fs::remove_dir_all(dir.join(format!("node-{}", node.node_id)));
                    let _ = std::fs::remove_file(&node.log);
                }
            }
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// One attempt: the nodes, or the nodes with the id and log of the first
/// that did not start.
fn try_start_cluster(
    dir: &Path,
    settings: &[(&str, &str)],
) -> Result<Vec<Node>, (Vec<Node>, i32, String)> {
    let controller_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters: Vec<String> = controller_ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
        .collect();
    let voters = voters.join(",");
    let mut nodes: Vec<Node> = (1..=3)
        .map(|node_id: i32| {
            let port = controller_ports[(node_id - 1) as usize];
            let args = [
                "serve",
                "--node-id",
                &node_id.to_string(),
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                &dir.join(format!("node-{node_id}")).display().to_string(),
                "--controller-voters",
                &voters,
                "--controller-listen",
                &format!("127.0.0.1:{port}"),
                "--set",
                "broker.session.timeout.ms=4000",
                "--set",
                "broker.heartbeat.interval.ms=500",
                // Small internal topics: three nodes on two cores replicate
                // every partition of them.
                "--set",
                "offsets.topic.num.partitions=3",
                "--set",
                "transaction.state.log.num.partitions=3",
            ]
            .iter()
            .map(|s| s.to_string())
            .chain(
                settings
                    .iter()
                    .flat_map(|(k, v)| ["--set".to_string(), format!("{k}={v}")]),
            )
            .collect();
            Node {
                node_id,
                args,
                child: None,
                address: String::new(),
                log: dir.join(format!("node-{node_id}.log")),
            }
        })
        .collect();
    let receivers: Vec<_> = nodes.iter_mut().map(Node::spawn).collect();
    let mut failed = None;
    for (node, receiver) in nodes.iter_mut().zip(&receivers) {
        if let Err(log) = node.try_wait_listening(receiver) {
            failed = Some((node.node_id, log));
            break;
        }
    }
    match failed {
        None => Ok(nodes),
        Some((node_id, log)) => Err((nodes, node_id, log)),
    }
}
