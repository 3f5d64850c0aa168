//! A `sluice serve` child that comes back on the SAME port after a stop, so that a
//! client built before the stop (an rdkafka producer in the middle of a stream)
//! reconnects to it by itself. [`super::TestBroker::restart`] picks a new port.
//!
//! Not declared in `common/mod.rs`: a test includes it with
//! `#[path = "common/fixed_port.rs"] mod fixed_port;` next to `mod common;`.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::common::{SHUTDOWN_TIMEOUT, STARTUP_TIMEOUT};

/// How many times a start on the old port is tried (the port may still be held
/// for a moment by the killed process's sockets).
const BIND_ATTEMPTS: u32 = 20;

/// A broker whose port stays the same across restarts.
pub struct FixedPortBroker {
    /// The running child, `None` while stopped.
    child: Option<Child>,
    /// `127.0.0.1:<port>`, fixed after the first start.
    address: String,
    /// Data directory (owned by the temp dir).
    data: TempDir,
    /// Holds one stderr log per start.
    log_dir: TempDir,
    /// How many children were spawned, to name log files.
    generation: u32,
}

/// Why a spawn attempt did not reach `listening on`.
enum SpawnError {
    /// The child exited before listening (for instance: address in use).
    Exited(ExitStatus),
}

impl FixedPortBroker {
    /// Starts a broker on a fresh data directory and a free port, which it keeps.
    pub fn start() -> Self {
        let data = tempfile::Builder::new()
            .prefix("sluice-data-")
            .tempdir()
            .expect("create temp data dir");
        let log_dir = tempfile::Builder::new()
            .prefix("sluice-log-")
            .tempdir()
            .expect("create temp log dir");
        let mut broker = FixedPortBroker {
            child: None,
            address: String::new(),
            data,
            log_dir,
            generation: 0,
        };
        match broker.spawn("127.0.0.1:0") {
            Ok(()) => broker,
            Err(SpawnError::Exited(status)) => panic!(
                "broker exited with {status} before listening; stderr:\n{}",
                broker.log_tail()
            ),
        }
    }

    /// `host:port`, the same for every start.
    pub fn bootstrap(&self) -> &str {
        &self.address
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("broker is not running");
        child.kill().expect("kill -9 broker");
        child.wait().expect("wait for killed broker");
    }

    /// SIGTERM and wait for the exit; returns its status.
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

    /// Starts the broker again on the same data directory and the same port
    /// (`sluice serve --listen <the old address>`). It must be stopped first.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "broker still running");
        let address = self.address.clone();
        for attempt in 1..=BIND_ATTEMPTS {
            match self.spawn(&address) {
                Ok(()) => {
                    assert_eq!(
                        self.address, address,
                        "the broker came back on its old port"
                    );
                    return;
                }
                Err(SpawnError::Exited(status)) => {
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

    fn log_path(&self) -> PathBuf {
        self.log_dir
            .path()
            .join(format!("broker-{}.stderr", self.generation))
    }

    fn spawn(&mut self, listen: &str) -> Result<(), SpawnError> {
        self.generation += 1;
        let log = std::fs::File::create(self.log_path()).expect("create broker log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .env("NO_COLOR", "1")
            .arg("serve")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(self.data.path())
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
                        return Err(SpawnError::Exited(status));
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
                    let status = child.wait().expect("wait for broker");
                    return Err(SpawnError::Exited(status));
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

    /// The last lines of the current (or last) child's stderr.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(60);
        lines[start..].join("\n")
    }
}

impl Drop for FixedPortBroker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- sluice stderr (last lines, data dir {}) ---\n{}",
                self.data.path().display(),
                self.log_tail()
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
