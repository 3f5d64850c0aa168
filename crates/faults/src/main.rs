//! `sluice-faults`: starts a cluster of real `sluice serve` processes,
//! produces into it with idempotent acks=all producers, consumes it with a
//! consumer group that commits offsets and with an exactly-once
//! consume-transform-produce job, while a seeded nemesis kills, pauses and
//! partitions nodes; heals everything, reads every partition back (twice,
//! from different leaders) and checks that nothing acknowledged was lost,
//! duplicated, moved or diverged, that committed offsets never went back,
//! and that the job's output holds every committed input exactly once and
//! nothing aborted.
//!
//! It must run inside a private network and mount namespace (it flushes
//! the namespace's iptables OUTPUT chain and mounts tmpfs data dirs):
//! `scripts/faults.sh` creates one and sets `SLUICE_FAULTS_PRIVATE_NAMESPACE`.
//!
//! Exit status: 0 when every check passed, 1 on a violation, 2 when the
//! harness itself could not run (the cluster never formed, a tool is
//! missing).

mod batches;
mod checker;
mod cluster;
mod consumption;
mod eos;
mod group;
mod history;
mod metadata;
mod nemesis;
mod net;
mod producer;
mod reader;

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::checker::{Acked, PartitionRead};
use crate::cluster::{Cluster, NodeSpec};
use crate::history::{now, value_of, Shared};
use crate::metadata::{wait_healthy, MetadataClient};
use crate::nemesis::{FaultKind, Nemesis, Window};

/// The environment variable `scripts/faults.sh` sets inside the namespace.
const NAMESPACE_MARKER: &str = "SLUICE_FAULTS_PRIVATE_NAMESPACE";
/// The data topic.
const TOPIC: &str = "faults-data";
/// The exactly-once job's output topic (as many partitions as the data
/// topic).
const OUT_TOPIC: &str = "faults-out";
/// Its replication factor (and the in-sync count healing waits for).
const REPLICATION_FACTOR: usize = 3;
/// How long the cluster may take to form, or to heal after the faults.
const HEAL_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the nodes may take to agree on the active controller after
/// healing.
const QUORUM_AGREEMENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one partition's final read may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// Produce while the cluster is healthy, before the first fault and after
/// the last (availability must come back).
const CALM: Duration = Duration::from_secs(5);
/// An acknowledgement within this many seconds of the send counts as
/// "available" in the summary (librdkafka retries hide outages otherwise).
const PROMPT_SECONDS: f64 = 1.0;
/// The fault kinds of the short mode.
const SHORT_MODE: [FaultKind; 7] = [
    FaultKind::Kill,
    FaultKind::KillLeader,
    FaultKind::KillController,
    FaultKind::Pause,
    FaultKind::IsolateLeader,
    FaultKind::Split,
    FaultKind::OneWayLeader,
];

#[derive(Debug, Parser)]
#[command(about = "Sluice fault-injection suite (run it through scripts/faults.sh)")]
struct Args {
    /// The `sluice` binary under test.
    #[arg(long)]
    sluice: PathBuf,
    /// Directory for the nodes' data (tmpfs mounts) and logs.
    #[arg(long)]
    run_dir: PathBuf,
    /// Seconds of faults (rounds are drawn until they fill it).
    #[arg(long, default_value_t = 75)]
    duration: u64,
    /// Seed of every random decision; printed so that a run replays.
    #[arg(long)]
    seed: Option<u64>,
    /// Nodes: 3 (all voters) or 5 (3 voters and 2 broker-only observers).
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// Partitions of the data topic.
    #[arg(long, default_value_t = 6)]
    partitions: i32,
    /// Records per second the producer sends.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Fault kinds, comma-separated [default: the short mode's seven].
    #[arg(long, value_delimiter = ',')]
    faults: Vec<String>,
    /// Apply one or two kinds together per round instead of one.
    #[arg(long)]
    combine: bool,
}

fn main() {
    tracing_subscriber::fmt()
        .with_target(false)
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let code = match run(args) {
        Ok(0) => {
            tracing::info!("result: PASS (no violations)");
            0
        }
        Ok(violations) => {
            tracing::error!("result: FAIL ({violations} violations)");
            1
        }
        Err(error) => {
            tracing::error!("result: ERROR (the harness could not complete): {error:#}");
            2
        }
    };
    std::process::exit(code);
}

fn run(args: Args) -> anyhow::Result<u64> {
    if std::env::var_os(NAMESPACE_MARKER).is_none() {
        bail!("refusing to run outside a private namespace: use scripts/faults.sh ({NAMESPACE_MARKER} is not set)");
    }
    if args.nodes != 3 && args.nodes != 5 {
        bail!("--nodes must be 3 or 5, not {}", args.nodes);
    }
    history::start_clock();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let kinds: Vec<FaultKind> = if args.faults.is_empty() {
        SHORT_MODE.to_vec()
    } else {
        args.faults
            .iter()
            .map(|name| {
                FaultKind::parse(name).with_context(|| format!("unknown fault kind {name:?}"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let clock_faults = kinds.contains(&FaultKind::ClockJump);
    let kinds_list = kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",");
    let mut rng = StdRng::seed_from_u64(seed);
    let rounds = nemesis::schedule(
        &mut rng,
        &kinds,
        Duration::from_secs(args.duration),
        args.combine,
    );
    tracing::info!(
        "seed {seed}; {} nodes; {} s of faults in {} rounds; kinds {kinds_list}; replay: scripts/faults.sh --seed {seed} --nodes {} --duration {} --faults {kinds_list}{}",
        args.nodes,
        args.duration,
        rounds.len(),
        args.nodes,
        args.duration,
        if args.combine { " --combine" } else { "" },
    );

    tracing::info!("phase: start {} nodes", args.nodes);
    let mut cluster = Cluster::start(
        &args.sluice,
        &args.run_dir,
        NodeSpec::plan(args.nodes),
        clock_faults,
    )?;
    let bootstrap = cluster.bootstrap();
    metadata::create_topic(
        &bootstrap,
        TOPIC,
        args.partitions,
        REPLICATION_FACTOR as i32,
        HEAL_TIMEOUT,
    )?;
    metadata::create_topic(
        &bootstrap,
        OUT_TOPIC,
        args.partitions,
        REPLICATION_FACTOR as i32,
        HEAL_TIMEOUT,
    )?;
    let metadata = MetadataClient::new(&bootstrap)?;
    for topic in [TOPIC, OUT_TOPIC] {
        wait_healthy(&metadata, topic, REPLICATION_FACTOR, HEAL_TIMEOUT, || {})
            .with_context(|| format!("the new topic {topic} never became healthy"))?;
    }

    tracing::info!("phase: produce (rate {}/s)", args.rate);
    let history = Shared::default();
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let config = producer::ProducerConfig {
            bootstrap: bootstrap.clone(),
            topic: TOPIC.to_string(),
            partitions: args.partitions,
            rate: args.rate,
        };
        let history = history.clone();
        let stop = stop.clone();
        std::thread::spawn(move || producer::run(config, history, stop))
    };
    let consumers = start_consumers(&bootstrap, args.partitions, &history, &stop);
    std::thread::sleep(CALM);

    tracing::info!("phase: faults");
    let mut findings = Findings::default();
    let windows = {
        let mut nemesis = Nemesis::new(
            &mut cluster,
            metadata,
            args.sluice.clone(),
            TOPIC.to_string(),
            args.partitions,
            rng,
        );
        for (index, round) in rounds.iter().enumerate() {
            let description = nemesis.apply(&round.kinds);
            tracing::info!(
                "fault {}/{} at {:.2}s (hold {:.1}s): {description}",
                index + 1,
                rounds.len(),
                now(),
                round.hold.as_secs_f64()
            );
            watch(nemesis.cluster, &history, &mut findings, round.hold);
            for note in nemesis.heal() {
                history.note(note);
            }
            tracing::info!("healed at {:.2}s", now());
            watch(nemesis.cluster, &history, &mut findings, round.gap);
        }
        tracing::info!("phase: heal");
        for note in nemesis.heal() {
            history.note(note);
        }
        std::mem::take(&mut nemesis.windows)
    };
    let metadata = MetadataClient::new(&bootstrap)?;
    let mut healed = true;
    for topic in [TOPIC, OUT_TOPIC] {
        if let Err(error) = wait_healthy(&metadata, topic, REPLICATION_FACTOR, HEAL_TIMEOUT, || {
            supervise(&mut cluster, &history, &mut findings)
        }) {
            findings
                .problems
                .push(format!("not healed after the faults: {error:#}"));
            healed = false;
        }
    }
    tracing::info!(
        "healed: every partition has a leader and {REPLICATION_FACTOR} in sync: {}",
        healed
    );
    let addresses: Vec<(u32, String)> = cluster
        .nodes
        .iter()
        .map(|n| (n.spec.id, n.spec.kafka_address().to_string()))
        .collect();
    match metadata::wait_quorum_agreement(&args.sluice, &addresses, QUORUM_AGREEMENT_TIMEOUT) {
        Ok(controller) => {
            tracing::info!("every node names node {controller} as the active controller")
        }
        Err(error) => findings
            .problems
            .push(format!("not healed after the faults: {error:#}")),
    }
    std::thread::sleep(CALM);
    stop.store(true, Ordering::Relaxed);
    match producer.join() {
        Ok(Ok(())) => {}
        Ok(Err(error)) => findings
            .problems
            .push(format!("producer failed: {error:#}")),
        Err(_) => findings
            .problems
            .push("producer thread panicked".to_string()),
    }
    let consumed = consumers.join(&mut findings);

    tracing::info!("phase: read back");
    let addresses: BTreeMap<i32, std::net::SocketAddrV4> = cluster
        .nodes
        .iter()
        .map(|node| (node.spec.id as i32, node.spec.kafka_address()))
        .collect();
    let mut reads = read_all(
        &bootstrap,
        &metadata,
        &addresses,
        args.partitions,
        &mut findings,
    );
    let (commit_report, eos_report) = check_consumers(
        &bootstrap,
        args.partitions,
        &reads,
        &consumed,
        &mut findings,
    );
    reads_from_other_leaders(
        &mut cluster,
        &metadata,
        &bootstrap,
        &history,
        &mut findings,
        &mut reads,
    );

    tracing::info!("phase: check");
    let (acked, failed, unknown) = outcomes(&history);
    let report = checker::check(&acked, &failed, &reads);
    let panics = find_panics(&cluster);
    print_summary(&history, &windows, &acked, failed.len(), unknown, &report);
    print_consumers(&consumed, &commit_report, &eos_report);
    let mut violations = report.violations() + commit_report.violations() + eos_report.violations();
    for problem in findings
        .crashes
        .iter()
        .chain(&panics)
        .chain(&findings.problems)
    {
        tracing::error!("violation: {problem}");
        violations += 1;
    }
    if acked.is_empty() {
        tracing::error!("violation: nothing was acknowledged; the run checked nothing");
        violations += 1;
    }
    Ok(violations)
}

/// What the run found besides the checker's report; each entry is a
/// violation.
#[derive(Default)]
struct Findings {
    /// Node processes that ended by themselves (not a refused restart).
    crashes: Vec<String>,
    /// The cluster did not heal, a read could not be made, the producer died.
    problems: Vec<String>,
}

/// Sleeps `duration` in steps, restarting any node whose process ended by
/// itself.
fn watch(cluster: &mut Cluster, history: &Shared, findings: &mut Findings, duration: Duration) {
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200).min(deadline - Instant::now()));
        supervise(cluster, history, findings);
    }
}

/// Restarts nodes that exited by themselves, as a supervisor would. An
/// expected exit (a refused registration, a full disk) is a note; any other
/// exit is a crash (the nemesis only kills what it restarts).
fn supervise(cluster: &mut Cluster, history: &Shared, findings: &mut Findings) {
    for exit in cluster.restart_exited() {
        if let Some(why) = exit.expected {
            history.note(format!("{why}: {}", exit.note));
        } else {
            tracing::error!("node {} crashed: {}", exit.node, exit.note);
            findings
                .crashes
                .push(format!("{:.2}s {}", now(), exit.note));
        }
    }
}

/// One read of every partition, from its current leader. A partition that
/// cannot be read is a finding and stays without a read (the checker
/// reports it).
fn read_all(
    bootstrap: &str,
    metadata: &MetadataClient,
    addresses: &BTreeMap<i32, std::net::SocketAddrV4>,
    partitions: i32,
    findings: &mut Findings,
) -> BTreeMap<i32, Vec<PartitionRead>> {
    let states = metadata.partitions(TOPIC).unwrap_or_default();
    let mut reads = BTreeMap::new();
    for partition in 0..partitions {
        let leader = states.get(&partition).map_or(-1, |s| s.leader);
        match reader::read_partition(bootstrap, TOPIC, partition, leader, READ_TIMEOUT) {
            Ok(mut read) => {
                tracing::info!(
                    "read partition {partition} from leader {leader}: {} records, high watermark {}",
                    read.records.len(),
                    read.high_watermark
                );
                // The batches' writers, from the same leader; without them
                // every duplicate counts as a violation.
                if let Some(address) = addresses.get(&leader) {
                    match batches::read_writers(
                        *address,
                        TOPIC,
                        partition,
                        read.high_watermark,
                        READ_TIMEOUT,
                    ) {
                        Ok(writers) => {
                            tracing::info!(
                                "batch headers of partition {partition}: {} batches by {} producer epochs",
                                writers.batches(),
                                writers.writer_count()
                            );
                            read.writers = Some(writers);
                        }
                        Err(error) => tracing::warn!(
                            "batch headers of partition {partition} not read: {error:#}"
                        ),
                    }
                }
                reads.insert(partition, vec![read]);
            }
            Err(error) => {
                findings
                    .problems
                    .push(format!("first read of partition {partition}: {error:#}"));
                reads.insert(partition, Vec::new());
            }
        }
    }
    reads
}

/// For each node that led a partition in the first read: a controlled
/// shutdown (SIGTERM) moves its leaderships to followers; each of its
/// partitions is read again from the new leader; the node is restarted
/// and the cluster waited for. Every partition is thus read from two
/// different replicas. What cannot be done is a finding, and the rest
/// goes on.
fn reads_from_other_leaders(
    cluster: &mut Cluster,
    metadata: &MetadataClient,
    bootstrap: &str,
    history: &Shared,
    findings: &mut Findings,
    reads: &mut BTreeMap<i32, Vec<PartitionRead>>,
) {
    let leaders: BTreeSet<i32> = reads
        .values()
        .filter_map(|r| r.first())
        .map(|r| r.leader)
        .collect();
    for leader in leaders {
        let Ok(node) = u32::try_from(leader) else {
            continue;
        };
        let led: Vec<i32> = reads
            .iter()
            .filter(|(_, r)| r.first().is_some_and(|r| r.leader == leader))
            .map(|(p, _)| *p)
            .collect();
        tracing::info!("SIGTERM node {node} to move the leadership of partitions {led:?}");
        if !cluster.terminate(node, Duration::from_secs(30)) {
            tracing::warn!("node {node} did not stop within 30 s of SIGTERM; killed");
        }
        let deadline = Instant::now() + HEAL_TIMEOUT;
        let states = loop {
            let states = metadata.partitions(TOPIC).unwrap_or_default();
            let moved = led.iter().all(|p| {
                states
                    .get(p)
                    .is_some_and(|s| s.leader > 0 && s.leader != leader)
            });
            if moved {
                break Some(states);
            }
            if Instant::now() > deadline {
                findings.problems.push(format!(
                    "partitions {led:?} got no new leader within {HEAL_TIMEOUT:?} after node {node} stopped: {states:?}"
                ));
                break None;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        // No new leader (a finding already): nothing to read; restart.
        for partition in led.iter().filter(|_| states.is_some()) {
            let new_leader = states
                .as_ref()
                .and_then(|s| s.get(partition))
                .map_or(-1, |s| s.leader);
            match reader::read_partition(bootstrap, TOPIC, *partition, new_leader, READ_TIMEOUT) {
                Ok(read) => {
                    tracing::info!(
                        "read partition {partition} again from leader {new_leader}: {} records, high watermark {}",
                        read.records.len(),
                        read.high_watermark
                    );
                    reads.entry(*partition).or_default().push(read);
                }
                Err(error) => findings
                    .problems
                    .push(format!("second read of partition {partition}: {error:#}")),
            }
        }
        if let Err(error) = cluster.restart(node) {
            findings
                .problems
                .push(format!("restarting node {node}: {error:#}"));
        }
        if let Err(error) = wait_healthy(metadata, TOPIC, REPLICATION_FACTOR, HEAL_TIMEOUT, || {
            supervise(cluster, history, findings)
        }) {
            findings.problems.push(format!(
                "not healed after restarting node {node}: {error:#}"
            ));
        }
    }
}

/// The producer's history as the checker's input: acknowledged records,
/// values of definite failures, and the count without any outcome.
fn outcomes(history: &Shared) -> (Vec<Acked>, Vec<String>, usize) {
    let history = history.lock();
    let mut acked = Vec::new();
    let mut failed = Vec::new();
    let mut unknown = 0;
    for (&seq, sent) in &history.sent {
        let value = value_of(sent.partition, sent.instance, seq);
        match sent.outcome.as_ref().map(|o| &o.result) {
            Some(Ok(offset)) => acked.push(Acked {
                partition: sent.partition,
                offset: *offset,
                value,
            }),
            Some(Err(_)) => failed.push(value),
            None => unknown += 1,
        }
    }
    (acked, failed, unknown)
}

/// Lines of the node logs that show a panic (a bug, whatever the fault).
fn find_panics(cluster: &Cluster) -> Vec<String> {
    let mut found = Vec::new();
    for node in &cluster.nodes {
        let path: &Path = cluster.log_path(node.spec.id);
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        for line in text.lines().filter(|l| l.contains("panicked at")) {
            found.push(format!(
                "node {} panicked: {line} ({})",
                node.spec.id,
                path.display()
            ));
        }
    }
    found
}

fn print_summary(
    history: &Shared,
    windows: &[Window],
    acked: &[Acked],
    failed: usize,
    unknown: usize,
    report: &checker::Report,
) {
    let history = history.lock();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    for sent in history.sent.values() {
        if let Some(Err(error)) = sent.outcome.as_ref().map(|o| &o.result) {
            *errors.entry(error.clone()).or_default() += 1;
        }
    }
    let mut out = String::from("\n==== sluice-faults summary ====\n");
    out.push_str(&format!("faults applied      {}\n", windows.len()));
    for window in windows {
        out.push_str(&format!(
            "  {:7.2}s–{:7.2}s  {}\n",
            window.start, window.end, window.description
        ));
    }
    out.push_str(&format!(
        "availability by fault kind (of the records sent while it held: acknowledged at all, \
         acknowledged within {PROMPT_SECONDS} s, slowest acknowledgement)\n"
    ));
    // (sent, acknowledged, acknowledged promptly, slowest) per kind.
    let mut by_kind: BTreeMap<String, (usize, usize, usize, f64)> = BTreeMap::new();
    for window in windows {
        let name = window
            .kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join("+");
        let entry = by_kind.entry(name).or_default();
        for sent in history
            .sent
            .values()
            .filter(|s| s.sent_at >= window.start && s.sent_at < window.end)
        {
            entry.0 += 1;
            if let Some(outcome) = &sent.outcome {
                if outcome.result.is_ok() {
                    let latency = outcome.at - sent.sent_at;
                    entry.1 += 1;
                    if latency <= PROMPT_SECONDS {
                        entry.2 += 1;
                    }
                    entry.3 = entry.3.max(latency);
                }
            }
        }
    }
    for (kind, (total, ok, prompt, slowest)) in &by_kind {
        let percent = |n: usize| {
            if *total == 0 {
                0.0
            } else {
                100.0 * n as f64 / *total as f64
            }
        };
        out.push_str(&format!(
            "  {kind:<16} sent {total:>6}  acked {:5.1}%  within {PROMPT_SECONDS} s {:5.1}%  slowest {slowest:5.1} s\n",
            percent(*ok),
            percent(*prompt)
        ));
    }
    out.push_str(&format!("records sent        {}\n", history.sent.len()));
    out.push_str(&format!("  acknowledged      {}\n", acked.len()));
    out.push_str(&format!(
        "    of which without an offset {} (checked for presence only)\n",
        report.acked_without_offset
    ));
    out.push_str(&format!("  failed            {failed}\n"));
    for (error, count) in &errors {
        out.push_str(&format!("    {count:>6}  {error}\n"));
    }
    out.push_str(&format!("  no outcome        {unknown}\n"));
    out.push_str(&format!("records in the log  {}\n", report.stored));
    out.push_str(&format!(
        "  failed but stored {} (allowed)\n",
        report.failed_but_present
    ));
    out.push_str(&format!("lost                {}\n", report.lost));
    out.push_str(&format!("misplaced           {}\n", report.misplaced));
    out.push_str(&format!(
        "duplicated          {} (in one producer epoch, or writers unknown)\n",
        report.duplicated
    ));
    out.push_str(&format!(
        "  re-sent after an epoch bump {} (allowed: librdkafka's re-send in a new epoch, FAULTS.md #7)\n",
        report.resent_after_epoch_bump
    ));
    out.push_str(&format!("reordered           {}\n", report.reordered));
    out.push_str(&format!("gaps                {}\n", report.gaps));
    out.push_str(&format!("foreign             {}\n", report.foreign));
    out.push_str(&format!("divergent           {}\n", report.divergent));
    for example in &report.examples {
        out.push_str(&format!("  {example}\n"));
    }
    out.push_str("notes\n");
    for note in &history.notes {
        out.push_str(&format!("  {note}\n"));
    }
    tracing::info!("{out}");
}

/// The consuming workloads' threads and what they record.
struct Consumers {
    /// The group members, the offset observer and the exactly-once job.
    threads: Vec<(String, std::thread::JoinHandle<anyhow::Result<()>>)>,
    /// The group's history.
    group: group::SharedGroup,
    /// The job's statistics.
    eos: eos::SharedEos,
}

/// What the consuming workloads did, once they stopped.
struct Consumed {
    group: group::GroupHistory,
    eos: eos::EosStats,
}

/// Starts the group members, the observer of their offsets and the
/// exactly-once job; they run until `stop`.
fn start_consumers(
    bootstrap: &str,
    partitions: i32,
    history: &Shared,
    stop: &Arc<AtomicBool>,
) -> Consumers {
    let group = group::SharedGroup::default();
    let eos_stats = eos::SharedEos::default();
    let mut threads = Vec::new();
    for member in 0..group::MEMBERS {
        let (bootstrap, group, history, stop) = (
            bootstrap.to_string(),
            group.clone(),
            history.clone(),
            stop.clone(),
        );
        threads.push((
            format!("group member {member}"),
            std::thread::spawn(move || {
                group::run_member(bootstrap, TOPIC.to_string(), member, group, history, stop)
            }),
        ));
    }
    {
        let (bootstrap, group, stop) = (bootstrap.to_string(), group.clone(), stop.clone());
        threads.push((
            "group offset observer".to_string(),
            std::thread::spawn(move || {
                group::run_observer(bootstrap, TOPIC.to_string(), partitions, group, stop)
            }),
        ));
    }
    {
        let config = eos::EosConfig {
            bootstrap: bootstrap.to_string(),
            input: TOPIC.to_string(),
            output: OUT_TOPIC.to_string(),
        };
        let (stats, history, stop) = (eos_stats.clone(), history.clone(), stop.clone());
        threads.push((
            "exactly-once job".to_string(),
            std::thread::spawn(move || eos::run(config, stats, history, stop)),
        ));
    }
    Consumers {
        threads,
        group,
        eos: eos_stats,
    }
}

impl Consumers {
    /// Waits for every thread (they stop with the producer); a thread
    /// that failed is a finding.
    fn join(self, findings: &mut Findings) -> Consumed {
        // Every client call of the workloads has its own timeout, so they
        // stop within a minute or so of `stop`; one that does not (a
        // librdkafka call that outlived its timeout) is reported and left
        // behind (the namespace ends it with the run) rather than hanging
        // the run.
        let deadline = Instant::now() + CONSUMERS_STOP_TIMEOUT;
        for (name, thread) in self.threads {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if !thread.is_finished() {
                // A group member says where it is stuck.
                let step = name
                    .strip_prefix("group member ")
                    .and_then(|n| n.parse::<usize>().ok())
                    .and_then(|n| self.group.lock().steps.get(&n).copied())
                    .map(|(step, since)| format!("; in {step} since {since:.2}s"))
                    .unwrap_or_default();
                findings.problems.push(format!(
                    "{name} did not stop within {CONSUMERS_STOP_TIMEOUT:?} of the end \
                     (a client call outlived its timeout{step})"
                ));
                continue;
            }
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => findings.problems.push(format!("{name} failed: {error:#}")),
                Err(_) => findings.problems.push(format!("{name} panicked")),
            }
        }
        Consumed {
            group: std::mem::take(&mut *self.group.lock()),
            eos: std::mem::take(&mut *self.eos.lock()),
        }
    }
}

/// How long the consumer workloads may take to stop: the exactly-once
/// job's transaction watchdog (105 s, `eos::TRANSACTION_WATCHDOG`), then
/// the closing init_transactions (30 s), with room to spare.
const CONSUMERS_STOP_TIMEOUT: Duration = Duration::from_secs(180);

/// A group's committed offsets at the end, retried until [`READ_TIMEOUT`].
/// `read_committed` asks for stable offsets (KIP-447: none pending in an
/// open transaction).
fn final_committed(
    bootstrap: &str,
    group_id: &str,
    partitions: i32,
    read_committed: bool,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut client = rdkafka::config::ClientConfig::new();
    client
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("socket.connection.setup.timeout.ms", "5000");
    if read_committed {
        client.set("isolation.level", "read_committed");
    }
    let consumer: rdkafka::consumer::BaseConsumer = client.create()?;
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        match group::committed(&consumer, TOPIC, partitions, Duration::from_secs(10)) {
            Ok(offsets) => return Ok(offsets),
            Err(error) if Instant::now() < deadline => {
                tracing::info!(
                    group_id,
                    "committed offsets unavailable ({error:#}); retrying"
                );
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(error) => return Err(error),
        }
    }
}

/// The checks of the consuming workloads, after the data topic's first
/// read: the group's offsets, and the job's output (read under
/// read_committed) against that read and the job's committed offsets.
fn check_consumers(
    bootstrap: &str,
    partitions: i32,
    reads: &BTreeMap<i32, Vec<PartitionRead>>,
    consumed: &Consumed,
    findings: &mut Findings,
) -> (consumption::CommitReport, consumption::EosReport) {
    let group_end =
        final_committed(bootstrap, group::GROUP, partitions, false).unwrap_or_else(|error| {
            findings
                .problems
                .push(format!("the group's final committed offsets: {error:#}"));
            BTreeMap::new()
        });
    let commits =
        consumption::check_commits(&consumed.group.observed, &consumed.group.acked, &group_end);
    if consumed.group.acked.is_empty() {
        findings
            .problems
            .push("the consumer group committed nothing; its check checked nothing".to_string());
    }
    let eos_end =
        final_committed(bootstrap, eos::GROUP, partitions, true).unwrap_or_else(|error| {
            findings.problems.push(format!(
                "the exactly-once job's final committed offsets: {error:#}"
            ));
            BTreeMap::new()
        });
    let inputs: BTreeMap<i32, Vec<(i64, String)>> = reads
        .iter()
        .filter_map(|(p, r)| Some((*p, r.first()?.records.clone())))
        .collect();
    let mut outputs = BTreeMap::new();
    for partition in 0..partitions {
        match reader::read_partition_as(
            bootstrap,
            OUT_TOPIC,
            partition,
            -1,
            READ_TIMEOUT,
            reader::Isolation::ReadCommitted,
        ) {
            Ok(read) => {
                outputs.insert(partition, read.records);
            }
            Err(error) => findings.problems.push(format!(
                "read_committed read of {OUT_TOPIC}/{partition}: {error:#}"
            )),
        }
    }
    let eos = consumption::check_eos(&inputs, &eos_end, &outputs);
    if eos.covered == 0 {
        findings
            .problems
            .push("the exactly-once job committed nothing; its check checked nothing".to_string());
    }
    (commits, eos)
}

fn print_consumers(
    consumed: &Consumed,
    commits: &consumption::CommitReport,
    eos: &consumption::EosReport,
) {
    let mut out = String::from("\n==== consumers ====\n");
    let group = &consumed.group;
    out.push_str(&format!(
        "group: {} members consumed {} records; commits acknowledged {}, failed {}, skipped {} (one still running, or revoked since)\n",
        group::MEMBERS,
        group.consumed,
        commits.acked,
        group.failed.values().sum::<u64>(),
        group.commits_skipped
    ));
    for (error, count) in &group.failed {
        out.push_str(&format!("    {count:>6}  {error}\n"));
    }
    out.push_str(&format!(
        "  committed offsets observed {}: backwards {}, lost commits {}\n",
        commits.observations, commits.backwards, commits.lost
    ));
    for example in &commits.examples {
        out.push_str(&format!("  {example}\n"));
    }
    let stats = &consumed.eos;
    out.push_str(&format!(
        "exactly-once job: {} starts, transactions committed {}, aborted on purpose {}, aborted after an error {}, hung {}\n",
        stats.starts, stats.committed, stats.aborted_on_purpose, stats.aborted_after_error, stats.hung
    ));
    for (error, count) in &stats.errors {
        out.push_str(&format!("    {count:>6}  {error}\n"));
    }
    out.push_str(&format!(
        "  inputs below the committed offsets {}, outputs visible {}: missing {}, duplicated {}, beyond committed {}, aborted read {}, foreign {}\n",
        eos.covered, eos.outputs, eos.missing, eos.duplicated, eos.beyond_committed, eos.aborted_read, eos.foreign
    ));
    for example in &eos.examples {
        out.push_str(&format!("  {example}\n"));
    }
    tracing::info!("{out}");
}
