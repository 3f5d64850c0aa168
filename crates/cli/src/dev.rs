//! `sluice dev --brokers N`: a local cluster in one command, for development
//! and for exercises. Starts N `sluice serve` child processes (this same
//! binary) on consecutive ports of 127.0.0.1, each a voter of the metadata
//! quorum and a broker (with `--voters V`, nodes 1..=V are; the others are
//! brokers only, `process.roles=broker`, observers of the quorum), with
//! their data under one directory; prints the
//! bootstrap string and each node's pid, ports and log file, and the command
//! that restarts it; restarts nothing by itself; stops every node (SIGTERM,
//! a controlled shutdown) on Ctrl-C or SIGTERM.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

/// How long one node may take to print its `listening on` line (the nodes
/// wait for a majority of voters, so they start together).
const NODE_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the nodes may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Number of nodes (each a broker and a voter of the metadata quorum).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    pub brokers: u16,
    /// How many of the nodes (1..=V) are voters of the metadata quorum; the
    /// others run process.roles=broker [default: all].
    #[arg(long, value_name = "V", value_parser = clap::value_parser!(u16).range(1..=9))]
    pub voters: Option<u16>,
    /// Kafka port of node 1; node N listens on PORT+N-1.
    #[arg(long, default_value_t = 9092)]
    pub port: u16,
    /// Controller (Raft) port of node 1; node N listens on PORT+N-1.
    #[arg(long, default_value_t = 19092)]
    pub controller_port: u16,
    /// Directory holding node-1/, node-2/, … (data) and node-N.log.
    #[arg(long, default_value = "./sluice-dev")]
    pub data_dir: PathBuf,
    /// A broker config for every node (Kafka's name), repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = crate::client::parse_key_value)]
    pub set: Vec<(String, String)>,
}

/// One node's command line and ports.
struct NodePlan {
    node_id: u16,
    /// Kafka's process.roles of the node.
    roles: &'static str,
    port: u16,
    controller_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    args: Vec<String>,
}

fn plan(args: &DevArgs) -> anyhow::Result<Vec<NodePlan>> {
    let count = args.brokers;
    let last_port = args.port.checked_add(count - 1);
    let last_controller = args.controller_port.checked_add(count - 1);
    if last_port.is_none() || last_controller.is_none() {
        bail!(
            "ports {}+{count} or {}+{count} do not fit",
            args.port,
            args.controller_port
        );
    }
    let kafka: Vec<u16> = (0..count).map(|i| args.port + i).collect();
    let controller: Vec<u16> = (0..count).map(|i| args.controller_port + i).collect();
    if kafka.iter().any(|p| controller.contains(p)) {
        bail!("the Kafka ports {kafka:?} and the controller ports {controller:?} overlap");
    }
    let voter_count = args.voters.unwrap_or(count);
    if voter_count > count {
        bail!("--voters {voter_count} is more than the {count} nodes (--brokers)");
    }
    let voters: Vec<String> = (0..voter_count)
        .map(|i| format!("{}@127.0.0.1:{}", i + 1, controller[i as usize]))
        .collect();
    let voters = voters.join(",");
    let mut plans = Vec::new();
    for i in 0..count {
        let node_id = i + 1;
        let data_dir = args.data_dir.join(format!("node-{node_id}"));
        let log = args.data_dir.join(format!("node-{node_id}.log"));
        let mut node_args = vec![
            "serve".to_string(),
            "--node-id".to_string(),
            node_id.to_string(),
            "--listen".to_string(),
            format!("127.0.0.1:{}", kafka[i as usize]),
            "--data-dir".to_string(),
            data_dir.display().to_string(),
        ];
        if count > 1 {
            node_args.extend([
                "--controller-voters".to_string(),
                voters.clone(),
                "--controller-listen".to_string(),
                format!("127.0.0.1:{}", controller[i as usize]),
            ]);
            if node_id > voter_count {
                node_args.extend(["--process-roles".to_string(), "broker".to_string()]);
            }
        }
        // A local cluster replicates by default: topics get min(3, nodes)
        // replicas (a --set of default.replication.factor wins).
        if count > 1
            && !args
                .set
                .iter()
                .any(|(key, _)| key == "default.replication.factor")
        {
            let factor = count.min(3);
            node_args.extend([
                "--set".to_string(),
                format!("default.replication.factor={factor}"),
            ]);
        }
        for (key, value) in &args.set {
            node_args.extend(["--set".to_string(), format!("{key}={value}")]);
        }
        plans.push(NodePlan {
            node_id,
            roles: match node_id > voter_count {
                true => "broker",
                false => "broker,controller",
            },
            port: kafka[i as usize],
            controller_port: controller[i as usize],
            data_dir,
            log,
            args: node_args,
        });
    }
    Ok(plans)
}

/// A started node.
struct Running {
    plan: NodePlan,
    child: Child,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let plans = plan(&args)?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let binary = std::env::current_exe().context("finding the sluice binary")?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;

    let mut nodes = Vec::new();
    for plan in plans {
        match spawn(&binary, &plan) {
            Ok(child) => nodes.push(Running { plan, child }),
            Err(error) => {
                stop_all(&mut nodes);
                return Err(error);
            }
        }
    }
    let started = tokio::task::spawn_blocking({
        let waits: Vec<(u16, PathBuf, u32)> = nodes
            .iter()
            .map(|n| (n.plan.node_id, n.plan.log.clone(), n.child.id()))
            .collect();
        move || wait_until_listening(&waits)
    })
    .await
    .context("waiting for the nodes")?;
    if let Err(error) = started {
        stop_all(&mut nodes);
        return Err(error);
    }
    print_summary(&binary, &nodes)?;

    let signal = tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
    };
    tracing::info!(signal, "stopping the local cluster");
    stop_all(&mut nodes);
    Ok(())
}

fn spawn(binary: &Path, plan: &NodePlan) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&plan.log)
        .with_context(|| format!("opening {}", plan.log.display()))?;
    let log_err = log.try_clone()?;
    Command::new(binary)
        .args(&plan.args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err))
        .spawn()
        .with_context(|| format!("starting node {}", plan.node_id))
}

/// Waits until every node's log has its `listening on` line (the nodes
/// write stdout there too), or one exits, or the bound passes.
fn wait_until_listening(nodes: &[(u16, PathBuf, u32)]) -> anyhow::Result<()> {
    let deadline = Instant::now() + NODE_START_TIMEOUT;
    let mut waiting: Vec<&(u16, PathBuf, u32)> = nodes.iter().collect();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for node in waiting {
            let (node_id, log, pid) = node;
            if log_has_listening_line(log) {
                continue;
            }
            if !Path::new(&format!("/proc/{pid}")).exists() {
                bail!(
                    "node {node_id} exited while starting; see {} ({})",
                    log.display(),
                    last_line(log)
                );
            }
            still.push(node);
        }
        waiting = still;
        if !waiting.is_empty() {
            if Instant::now() > deadline {
                let ids: Vec<u16> = waiting.iter().map(|n| n.0).collect();
                bail!("nodes {ids:?} did not start within {NODE_START_TIMEOUT:?}; see their logs");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

fn log_has_listening_line(log: &Path) -> bool {
    let Ok(file) = std::fs::File::open(log) else {
        return false;
    };
    BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.starts_with("listening on "))
}

fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|text| text.lines().last().map(str::to_string))
        .unwrap_or_default()
}

fn print_summary(binary: &Path, nodes: &[Running]) -> anyhow::Result<()> {
    let bootstrap: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.plan.port))
        .collect();
    let mut out = std::io::stdout().lock();
    writeln!(out, "bootstrap {}", bootstrap.join(","))?;
    for node in nodes {
        writeln!(
            out,
            "node {} pid {} kafka 127.0.0.1:{} controller 127.0.0.1:{} data {} log {} roles {}",
            node.plan.node_id,
            node.child.id(),
            node.plan.port,
            node.plan.controller_port,
            node.plan.data_dir.display(),
            node.plan.log.display(),
            node.plan.roles
        )?;
    }
    for node in nodes {
        writeln!(
            out,
            "restart node {} with: {} {}",
            node.plan.node_id,
            binary.display(),
            node.plan.args.join(" ")
        )?;
    }
    writeln!(out, "Ctrl-C stops every node")?;
    out.flush()?;
    Ok(())
}

/// SIGTERM to every node still running, then waits for them (SIGKILL after
/// the bound).
fn stop_all(nodes: &mut [Running]) {
    for node in nodes.iter() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(node.child.id().to_string())
            .status();
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for node in nodes.iter_mut() {
        loop {
            match node.child.try_wait() {
                Ok(Some(status)) => {
                    tracing::info!(node_id = node.plan.node_id, %status, "node stopped");
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    tracing::warn!(
                        node_id = node.plan.node_id,
                        "node did not stop in time; killing it"
                    );
                    let _ = node.child.kill();
                    let _ = node.child.wait();
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(brokers: u16) -> DevArgs {
        DevArgs {
            brokers,
            voters: None,
            port: 9092,
            controller_port: 19092,
            data_dir: PathBuf::from("/tmp/d"),
            set: vec![("num.partitions".to_string(), "3".to_string())],
        }
    }

    #[test]
    fn nodes_get_consecutive_ports_and_one_voter_list() {
        let plans = plan(&args(3)).unwrap();
        let ports: Vec<(u16, u16, u16)> = plans
            .iter()
            .map(|p| (p.node_id, p.port, p.controller_port))
            .collect();
        assert_eq!(
            ports,
            vec![(1, 9092, 19092), (2, 9093, 19093), (3, 9094, 19094)]
        );
        let voters = "1@127.0.0.1:19092,2@127.0.0.1:19093,3@127.0.0.1:19094";
        for plan in &plans {
            assert!(plan.args.contains(&voters.to_string()), "{:?}", plan.args);
            assert!(plan.args.contains(&"num.partitions=3".to_string()));
        }
        assert_eq!(plans[1].data_dir, PathBuf::from("/tmp/d/node-2"));
    }

    #[test]
    fn nodes_beyond_the_voters_are_brokers_only() {
        let plans = plan(&DevArgs {
            voters: Some(3),
            ..args(5)
        })
        .unwrap();
        let voters = "1@127.0.0.1:19092,2@127.0.0.1:19093,3@127.0.0.1:19094";
        for plan in &plans {
            assert!(plan.args.contains(&voters.to_string()), "{:?}", plan.args);
            let broker_only = plan
                .args
                .windows(2)
                .any(|w| w == ["--process-roles", "broker"]);
            assert_eq!(broker_only, plan.node_id > 3, "{:?}", plan.args);
        }
        assert!(plan(&DevArgs {
            voters: Some(4),
            ..args(3)
        })
        .is_err());
    }

    #[test]
    fn one_node_is_a_single_node_and_overlapping_ports_are_refused() {
        let plans = plan(&args(1)).unwrap();
        assert!(!plans[0].args.contains(&"--controller-voters".to_string()));
        let overlapping = DevArgs {
            controller_port: 9093,
            ..args(3)
        };
        assert!(plan(&overlapping).is_err());
    }
}
