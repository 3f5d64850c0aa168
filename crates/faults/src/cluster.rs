//! The cluster under test: real `sluice serve` processes, one per node,
//! each on its own loopback address, under its own uid, with its data
//! directory on its own small tmpfs.
//!
//! Why each piece:
//! - **Addresses.** Node `i` listens on `127.0.1.i` (Kafka and controller
//!   listener); `lo`'s `127.0.0.0/8` route is local, so no address has to
//!   be added. Not `127.0.0.i`: every outgoing connection in the namespace
//!   leaves from `127.0.0.1` whoever makes it, so a node on `127.0.0.1`
//!   would have every reply it sends match a cut "to node 1" — `127.0.0.1`
//!   stays the address of the harness and of connection sources only.
//! - **Uids.** Because sources are all `127.0.0.1`, nodes are told apart by
//!   the uid that owns the socket (`iptables -m owner`): node `i` runs as
//!   uid [`NODE_UID_BASE`]` + i` through `setpriv`.
//! - **tmpfs.** A full disk is a real ENOSPC: the data directory is a
//!   tmpfs of [`DATA_DIR_BYTES`] that the disk fault fills with a file.
//!   The mounts live in the private mount namespace of the run and vanish
//!   with it.
//! - **libfaketime.** With clock faults on, every node is started with
//!   `LD_PRELOAD` of libfaketime reading an offset from a per-node file,
//!   wall clock only (`FAKETIME_DONT_FAKE_MONOTONIC=1`): a clock jump moves
//!   `SystemTime` as NTP would, never `Instant`.
//!
//! Every wait here is bounded; a node that does not start in
//! [`START_TIMEOUT`] is reported, never waited for.

use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Uid (and gid) of node `i` is this plus `i`.
pub const NODE_UID_BASE: u32 = 20_000;
/// Kafka listener port of every node (each has its own address).
pub const KAFKA_PORT: u16 = 9092;
/// Controller (Raft) listener port of every voter.
pub const CONTROLLER_PORT: u16 = 9093;
/// Size of each node's data directory tmpfs.
pub const DATA_DIR_BYTES: u64 = 256 * 1024 * 1024;
/// How long a node may take to open its client listener.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);
/// The line the harness writes into a node's log before each start.
const START_MARKER: &str = "==== sluice-faults: start #";
/// The libfaketime build that handles threads.
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// What a node runs, Kafka's `process.roles`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Roles {
    /// `broker,controller`: a voter of the metadata quorum and a broker.
    Combined,
    /// `broker`: a learner of the metadata log.
    Broker,
}

/// One node's fixed identity.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    /// `node.id`, 1-based.
    pub id: u32,
    /// Voter and broker, or broker only.
    pub roles: Roles,
    /// The loopback address both listeners bind.
    pub address: Ipv4Addr,
    /// The uid and gid the process runs as (what iptables rules match).
    pub uid: u32,
}

impl NodeSpec {
    /// The node list for `count` nodes: the first three (or all, if fewer)
    /// are voters, the rest broker-only.
    pub fn plan(count: u32) -> Vec<NodeSpec> {
        (1..=count)
            .map(|id| NodeSpec {
                id,
                roles: if id <= 3 {
                    Roles::Combined
                } else {
                    Roles::Broker
                },
                address: Ipv4Addr::new(127, 0, 1, id as u8),
                uid: NODE_UID_BASE + id,
            })
            .collect()
    }

    /// `host:port` of the Kafka listener.
    pub fn kafka_address(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.address, KAFKA_PORT)
    }
}

/// Settings every node gets, by Kafka's names: short timeouts so that
/// fencing, ISR shrinks and elections happen within a short run, with
/// margins for a loaded 2-core machine.
pub const NODE_SETTINGS: &[(&str, &str)] = &[
    ("broker.session.timeout.ms", "4000"),
    ("broker.heartbeat.interval.ms", "500"),
    ("replica.lag.time.max.ms", "4000"),
    ("offsets.topic.num.partitions", "3"),
    ("transaction.state.log.num.partitions", "3"),
    ("default.replication.factor", "3"),
    ("min.insync.replicas", "2"),
    ("auto.create.topics.enable", "false"),
    ("unclean.leader.election.enable", "false"),
];

/// The broker's session timeout in [`NODE_SETTINGS`]; a pause must outlast it.
pub const SESSION_TIMEOUT: Duration = Duration::from_millis(4000);

/// A running (or stopped) node process.
pub struct Node {
    /// Who the node is.
    pub spec: NodeSpec,
    /// The running process; `None` after a kill until the restart.
    child: Option<Child>,
    /// Command-line arguments after `sluice`, the same on every start.
    args: Vec<String>,
    /// The data directory (a tmpfs mount point).
    pub data_dir: PathBuf,
    /// Where stdout and stderr go (appended across restarts).
    log: PathBuf,
    /// The libfaketime offset file, when clock faults are on.
    clock_file: Option<PathBuf>,
    /// Whether the process is stopped by SIGSTOP.
    pub paused: bool,
    /// How many times the process was started.
    pub starts: u32,
}

/// Every node of the run.
pub struct Cluster {
    /// The binary under test.
    sluice: PathBuf,
    /// Nodes, `nodes[i].spec.id == i + 1`.
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// Prepares the nodes (addresses on `lo`, data directory mounts, log
    /// files) and starts them all together: the voters need each other to
    /// elect a controller, and a broker opens its client listener only once
    /// the controller has unfenced it.
    pub fn start(
        sluice: &Path,
        run_dir: &Path,
        specs: Vec<NodeSpec>,
        clock_faults: bool,
    ) -> anyhow::Result<Cluster> {
        // The nodes' uids must reach their data directories below it.
        std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o755))?;
        let voters: Vec<String> = specs
            .iter()
            .filter(|s| s.roles == Roles::Combined)
            .map(|s| format!("{}@{}:{CONTROLLER_PORT}", s.id, s.address))
            .collect();
        let voters = voters.join(",");
        let mut nodes = Vec::new();
        for spec in specs {
            let data_dir = run_dir.join(format!("node-{}", spec.id));
            std::fs::create_dir_all(&data_dir)?;
            run(
                "mount",
                &[
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!(
                        "size={DATA_DIR_BYTES},uid={uid},gid={uid},mode=0700",
                        uid = spec.uid
                    ),
                    &format!("sluice-faults-node-{}", spec.id),
                    &data_dir.display().to_string(),
                ],
            )?;
            let clock_file = if clock_faults {
                let path = run_dir.join(format!("node-{}.faketime", spec.id));
                std::fs::write(&path, "+0\n")?;
                Some(path)
            } else {
                None
            };
            let mut args: Vec<String> = vec![
                "serve".into(),
                "--node-id".into(),
                spec.id.to_string(),
                "--data-dir".into(),
                data_dir.display().to_string(),
                "--listen".into(),
                spec.kafka_address().to_string(),
                "--advertised-listener".into(),
                spec.kafka_address().to_string(),
                "--controller-voters".into(),
                voters.clone(),
            ];
            // An observer (broker-only) node needs a Raft listener of its
            // own too, which the quorum leader connects to; a fixed port on
            // its own address keeps the iptables rules uniform.
            args.extend([
                "--controller-listen".into(),
                format!("{}:{CONTROLLER_PORT}", spec.address),
            ]);
            if spec.roles == Roles::Broker {
                args.extend(["--process-roles".into(), "broker".into()]);
            }
            for (key, value) in NODE_SETTINGS {
                args.extend(["--set".into(), format!("{key}={value}")]);
            }
            nodes.push(Node {
                log: run_dir.join(format!("node-{}.log", spec.id)),
                spec,
                child: None,
                args,
                data_dir,
                clock_file,
                paused: false,
                starts: 0,
            });
        }
        let mut cluster = Cluster {
            sluice: sluice.to_path_buf(),
            nodes,
        };
        for index in 0..cluster.nodes.len() {
            cluster.spawn(index)?;
        }
        let ids: Vec<u32> = cluster.nodes.iter().map(|n| n.spec.id).collect();
        for id in ids {
            cluster.wait_listening(id, START_TIMEOUT)?;
        }
        Ok(cluster)
    }

    /// `bootstrap.servers` for clients: every node.
    pub fn bootstrap(&self) -> String {
        let addresses: Vec<String> = self
            .nodes
            .iter()
            .map(|n| n.spec.kafka_address().to_string())
            .collect();
        addresses.join(",")
    }

    /// Node `id` (1-based).
    pub fn node(&self, id: u32) -> &Node {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: u32) -> &mut Node {
        &mut self.nodes[(id - 1) as usize]
    }

    fn spawn(&mut self, index: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[index];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .with_context(|| format!("opening {}", node.log.display()))?;
        let mut marker = log.try_clone()?;
        writeln!(
            marker,
            "==== sluice-faults: start #{} ====",
            node.starts + 1
        )?;
        let mut command = Command::new("setpriv");
        command
            .arg(format!("--reuid={}", node.spec.uid))
            .arg(format!("--regid={}", node.spec.uid))
            .arg("--clear-groups")
            .arg("--");
        if node.clock_file.is_some() {
            // libfaketime is preloaded by `env` after the uid change, so it
            // loads in the node alone: loaded into setpriv (root) it would
            // create a shared-memory semaphore the node's uid cannot open.
            // `env` and `setpriv` exec, so the pid stays the node's.
            command.arg("env").arg(format!("LD_PRELOAD={LIBFAKETIME}"));
        }
        command
            .arg(&self.sluice)
            .args(&node.args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        if let Some(clock_file) = &node.clock_file {
            command
                .env("FAKETIME_TIMESTAMP_FILE", clock_file)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_CACHE_DURATION", "1")
                .env("FAKETIME_DISABLE_SHM", "1");
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting node {}", node.spec.id))?;
        node.child = Some(child);
        node.paused = false;
        node.starts += 1;
        Ok(())
    }

    /// SIGKILL: the process dies at once, no shutdown.
    pub fn kill(&mut self, id: u32) {
        let node = self.node_mut(id);
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
    }

    /// SIGTERM (a controlled shutdown), waiting at most `timeout` for the
    /// process to end before a SIGKILL. Returns whether it ended by itself.
    pub fn terminate(&mut self, id: u32, timeout: Duration) -> bool {
        self.pause(id, false);
        let node = self.node_mut(id);
        let Some(mut child) = node.child.take() else {
            return true;
        };
        let _ = run("kill", &["-TERM", &child.id().to_string()]);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Starts a killed (or exited) node again; does not wait for it to
    /// listen (it may be cut off and unable to register).
    pub fn restart(&mut self, id: u32) -> anyhow::Result<()> {
        if self.is_running(id) {
            return Ok(());
        }
        self.node_mut(id).child = None;
        self.spawn((id - 1) as usize)
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`).
    pub fn pause(&mut self, id: u32, pause: bool) {
        let node = self.node_mut(id);
        if let Some(child) = &node.child {
            let signal = if pause { "-STOP" } else { "-CONT" };
            let _ = run("kill", &[signal, &child.id().to_string()]);
            node.paused = pause;
        }
    }

    /// Whether node `id`'s process exists (it may be paused).
    pub fn is_running(&mut self, id: u32) -> bool {
        let node = self.node_mut(id);
        match node.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(_) | None => false,
        }
    }

    /// The exit status of node `id` if its process ended by itself (not by
    /// our kill); the node is then marked stopped.
    pub fn exited(&mut self, id: u32) -> Option<std::process::ExitStatus> {
        let node = self.node_mut(id);
        let status = node
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if status.is_some() {
            node.child = None;
        }
        status
    }

    /// Sets node `id`'s wall clock offset (libfaketime's `+N`/`-N` seconds);
    /// false when clock faults are off.
    pub fn set_clock_offset(&self, id: u32, seconds: i64) -> bool {
        match &self.node(id).clock_file {
            Some(path) => std::fs::write(path, format!("{seconds:+}\n")).is_ok(),
            None => false,
        }
    }

    /// Fills node `id`'s data directory with a file until the tmpfs is
    /// full (ENOSPC). Returns the bytes written.
    pub fn fill_disk(&self, id: u32) -> anyhow::Result<u64> {
        let path = self.node(id).data_dir.join("sluice-faults-filler");
        let mut file = File::create(&path)?;
        let chunk = vec![0u8; 1024 * 1024];
        let mut written = 0u64;
        // Bounded: the tmpfs holds DATA_DIR_BYTES at most.
        while written <= DATA_DIR_BYTES {
            match file.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        Ok(written)
    }

    /// Removes the filler file of node `id`.
    pub fn free_disk(&self, id: u32) {
        let _ = std::fs::remove_file(self.node(id).data_dir.join("sluice-faults-filler"));
    }

    /// What node `id` logged since its last start (empty if unreadable).
    pub fn last_run_log(&self, id: u32) -> String {
        let text = std::fs::read_to_string(&self.node(id).log).unwrap_or_default();
        match text.rfind(START_MARKER) {
            Some(index) => text[index..].to_string(),
            None => text,
        }
    }

    /// Restarts every node whose process ended by itself; one entry each.
    pub fn restart_exited(&mut self) -> Vec<Exit> {
        let mut exits = Vec::new();
        let ids: Vec<u32> = self.nodes.iter().map(|n| n.spec.id).collect();
        for id in ids {
            if let Some(status) = self.exited(id) {
                let last_run = self.last_run_log(id);
                let expected = expected_exit(&last_run);
                let mut note = format!(
                    "node {id} exited by itself ({status}); restarted (log {}): {}",
                    self.log_path(id).display(),
                    last_run.lines().last().unwrap_or("").trim()
                );
                if let Err(error) = self.restart(id) {
                    note.push_str(&format!("; restart failed: {error:#}"));
                }
                exits.push(Exit {
                    node: id,
                    expected,
                    note,
                });
            }
        }
        exits
    }

    /// Waits until node `id`'s Kafka listener accepts a connection (it
    /// opens once the broker is registered and unfenced); fails at once if
    /// the process ends.
    pub fn wait_listening(&mut self, id: u32, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let address = self.node(id).spec.kafka_address().into();
        while Instant::now() < deadline {
            if TcpStream::connect_timeout(&address, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            if !self.is_running(id) {
                bail!(
                    "node {id} exited before it listened: {}",
                    self.last_run_log(id).trim()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        bail!(
            "node {id} did not open {address} within {timeout:?}; see {}",
            self.log_path(id).display()
        )
    }

    /// Node `id`'s log file.
    pub fn log_path(&self, id: u32) -> &Path {
        &self.node(id).log
    }

    /// Kills every node (SIGCONT first, so a paused one dies too).
    pub fn stop_all(&mut self) {
        let ids: Vec<u32> = self.nodes.iter().map(|n| n.spec.id).collect();
        for id in ids {
            self.pause(id, false);
            self.kill(id);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_all();
        for node in &self.nodes {
            let _ = run("umount", &["-l", &node.data_dir.display().to_string()]);
        }
    }
}

/// Exits that are not crashes, by what the node's log says: (marker, why),
/// the first that matches wins. A node whose disk is full may stop, as
/// Kafka stops a broker whose only log directory failed; that also explains
/// a registration it could not complete, so it comes first. A node that
/// could not register within `initial.broker.registration.timeout.ms`
/// (its previous session still alive past it, or no controller reachable)
/// exits, and a supervisor starts it again.
const EXPECTED_EXITS: &[(&str, &str)] = &[
    ("No space left on device", "stopped on a full disk"),
    (
        "could not register with the active controller",
        "registration not completed in time (previous session alive, or no controller)",
    ),
];

/// Why an exit whose last run logged `last_run` is not a crash, if it is
/// not (see [`EXPECTED_EXITS`]).
fn expected_exit(last_run: &str) -> Option<&'static str> {
    EXPECTED_EXITS
        .iter()
        .find(|(marker, _)| last_run.contains(marker))
        .map(|(_, why)| *why)
}

/// A node process that ended by itself.
#[derive(Debug)]
pub struct Exit {
    /// The node.
    pub node: u32,
    /// Why the exit is not a crash, if it is not (see [`EXPECTED_EXITS`]).
    pub expected: Option<&'static str>,
    /// What happened, for the report.
    pub note: String,
}

/// Runs a command to completion; an error names the command and its stderr.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::expected_exit;

    #[test]
    fn a_full_disk_explains_a_failed_registration_and_crashes_stay_crashes() {
        let full = "ERROR writing: No space left on device (os error 28)\n\
                    error: could not register with the active controller";
        assert_eq!(expected_exit(full), Some("stopped on a full disk"));
        let late = "error: could not register with the active controller: timed out";
        assert!(expected_exit(late).is_some_and(|why| why.starts_with("registration")));
        assert_eq!(
            expected_exit("thread 'main' panicked at src/x.rs:1:1"),
            None
        );
    }
}
