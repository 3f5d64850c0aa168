//! The nemesis: which faults, when, against whom — all drawn from the run's
//! seed — and how each is applied and undone.
//!
//! A run is a sequence of rounds. Each round applies a fault set (one kind
//! in the short mode, one or two in the long mode), holds it, undoes it,
//! and leaves a gap of calm before the next. Targets that depend on the
//! cluster (the leader of a partition, the active controller) are looked
//! up when the round starts; everything random comes from the seeded RNG,
//! so a seed replays the same sequence of decisions (not the same timing).

use std::fmt;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use crate::cluster::{Cluster, NodeSpec, SESSION_TIMEOUT};
use crate::history::now;
use crate::metadata::{active_controller, MetadataClient};
use crate::net::Partitions;

/// How long `pause-new-leader` looks for the killed leader's successor.
const NEW_LEADER_TIMEOUT: Duration = Duration::from_secs(15);

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// SIGKILL a random node; restart it when the round ends.
    Kill,
    /// SIGKILL the leader of a random data partition.
    KillLeader,
    /// SIGKILL the active controller (the quorum leader).
    KillController,
    /// SIGSTOP a random node for longer than the session timeout.
    Pause,
    /// SIGKILL a partition's leader, SIGSTOP its successor as soon as
    /// Metadata names it, restart the killed node: a leader that won an
    /// epoch and lost it before it appended anything (docs/FAULTS.md,
    /// finding 1).
    PauseNewLeader,
    /// Cut the leader of a random partition off from every other node.
    IsolateLeader,
    /// A majority | minority split of the nodes (2|1, 3|2).
    Split,
    /// Cut only the connections the leader of a partition opens.
    OneWayLeader,
    /// Two halves that share one node, which talks to both.
    Bridge,
    /// Fill a node's data directory (tmpfs) until writes fail.
    DiskFull,
    /// Jump a node's wall clock forwards or backwards (libfaketime).
    ClockJump,
}

impl FaultKind {
    /// Every kind, in the order the report lists them.
    pub const ALL: [FaultKind; 11] = [
        FaultKind::Kill,
        FaultKind::KillLeader,
        FaultKind::KillController,
        FaultKind::Pause,
        FaultKind::PauseNewLeader,
        FaultKind::IsolateLeader,
        FaultKind::Split,
        FaultKind::OneWayLeader,
        FaultKind::Bridge,
        FaultKind::DiskFull,
        FaultKind::ClockJump,
    ];

    /// The kind's name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::KillLeader => "kill-leader",
            FaultKind::KillController => "kill-controller",
            FaultKind::Pause => "pause",
            FaultKind::PauseNewLeader => "pause-new-leader",
            FaultKind::IsolateLeader => "isolate-leader",
            FaultKind::Split => "split",
            FaultKind::OneWayLeader => "one-way-leader",
            FaultKind::Bridge => "bridge",
            FaultKind::DiskFull => "disk-full",
            FaultKind::ClockJump => "clock-jump",
        }
    }

    /// Parses a name of [`name`](Self::name).
    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The shortest hold that makes the fault mean something: a pause or
    /// a partition must outlast the session timeout to fence anyone.
    fn hold_min(self) -> Duration {
        match self {
            // The successor is fenced one session timeout after it was
            // stopped, which is one session timeout after the kill.
            FaultKind::PauseNewLeader => SESSION_TIMEOUT * 2 + Duration::from_secs(4),
            FaultKind::Pause
            | FaultKind::IsolateLeader
            | FaultKind::Split
            | FaultKind::OneWayLeader
            | FaultKind::Bridge => SESSION_TIMEOUT + Duration::from_secs(3),
            _ => Duration::from_secs(5),
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One round of the schedule.
#[derive(Clone, Debug)]
pub struct Round {
    /// The faults applied together.
    pub kinds: Vec<FaultKind>,
    /// How long they are held.
    pub hold: Duration,
    /// Calm after they are undone.
    pub gap: Duration,
}

/// Draws the schedule: rounds until `duration` is filled. The short mode
/// (`combine == false`) takes the kinds one at a time in shuffled passes,
/// so every kind comes up; the long mode draws one or two at random.
pub fn schedule(
    rng: &mut StdRng,
    kinds: &[FaultKind],
    duration: Duration,
    combine: bool,
) -> Vec<Round> {
    let mut rounds = Vec::new();
    let mut total = Duration::ZERO;
    let mut pass: Vec<FaultKind> = Vec::new();
    // Bounded: every round takes at least 5 s.
    while total < duration && !kinds.is_empty() {
        let chosen = if combine && rng.gen_bool(0.4) && kinds.len() > 1 {
            let mut two: Vec<FaultKind> = kinds.choose_multiple(rng, 2).copied().collect();
            two.sort();
            two
        } else if combine {
            vec![*kinds.choose(rng).unwrap_or(&kinds[0])]
        } else {
            if pass.is_empty() {
                pass = kinds.to_vec();
                pass.shuffle(rng);
            }
            vec![pass.pop().unwrap_or(kinds[0])]
        };
        let hold_min = chosen
            .iter()
            .map(|k| k.hold_min())
            .max()
            .unwrap_or(Duration::from_secs(5));
        let hold = hold_min + Duration::from_millis(rng.gen_range(0..4000));
        let gap = Duration::from_millis(rng.gen_range(2000..5000));
        total += hold + gap;
        rounds.push(Round {
            kinds: chosen,
            hold,
            gap,
        });
    }
    rounds
}

/// How to undo one applied fault.
#[derive(Debug)]
enum Undo {
    /// Start the killed node again.
    Restart(u32),
    /// SIGCONT the paused node.
    Resume(u32),
    /// Remove every iptables rule.
    HealNetwork,
    /// Delete the filler file.
    FreeDisk(u32),
    /// Set the clock offset back to zero.
    ResetClock(u32),
}

/// One fault window, for the log and the availability table.
#[derive(Clone, Debug)]
pub struct Window {
    /// The kinds active in it.
    pub kinds: Vec<FaultKind>,
    /// When they were applied.
    pub start: f64,
    /// When they were undone.
    pub end: f64,
    /// Whom they hit.
    pub description: String,
}

/// Applies and undoes fault sets against the cluster.
pub struct Nemesis<'a> {
    /// The nodes.
    pub cluster: &'a mut Cluster,
    /// The iptables rules.
    pub partitions: Partitions,
    /// Finds leaders.
    pub metadata: MetadataClient,
    /// The binary (for `sluice cluster info`).
    pub sluice: std::path::PathBuf,
    /// The data topic and its partition count.
    pub topic: String,
    /// Partitions of the data topic.
    pub topic_partitions: i32,
    /// The seeded randomness.
    pub rng: StdRng,
    /// What is applied now.
    undo: Vec<Undo>,
    /// Every window so far.
    pub windows: Vec<Window>,
}

impl<'a> Nemesis<'a> {
    /// A nemesis over `cluster`.
    pub fn new(
        cluster: &'a mut Cluster,
        metadata: MetadataClient,
        sluice: std::path::PathBuf,
        topic: String,
        topic_partitions: i32,
        rng: StdRng,
    ) -> Nemesis<'a> {
        Nemesis {
            cluster,
            partitions: Partitions::default(),
            metadata,
            sluice,
            topic,
            topic_partitions,
            rng,
            undo: Vec::new(),
            windows: Vec::new(),
        }
    }

    fn specs(&self) -> Vec<NodeSpec> {
        self.cluster.nodes.iter().map(|n| n.spec.clone()).collect()
    }

    fn node_ids(&self) -> Vec<u32> {
        self.cluster.nodes.iter().map(|n| n.spec.id).collect()
    }

    fn random_node(&mut self, avoid: &[u32]) -> u32 {
        let ids = self.node_ids();
        let free: Vec<u32> = ids.iter().copied().filter(|i| !avoid.contains(i)).collect();
        let pool = if free.is_empty() { &ids } else { &free };
        pool[self.rng.gen_range(0..pool.len())]
    }

    fn leader_of_random_partition(&mut self, avoid: &[u32]) -> (i32, u32) {
        let partition = self.rng.gen_range(0..self.topic_partitions);
        let fallback = self.random_node(avoid);
        let leader = self.metadata.leader(&self.topic, partition);
        (partition, leader.unwrap_or(fallback))
    }

    /// Applies the faults of one round; returns what it did, for the log.
    pub fn apply(&mut self, kinds: &[FaultKind]) -> String {
        let mut hit: Vec<u32> = Vec::new();
        let mut done: Vec<String> = Vec::new();
        for &kind in kinds {
            match self.apply_one(kind, &hit) {
                Ok((target, what)) => {
                    hit.extend(target);
                    done.push(what);
                }
                Err(error) => done.push(format!("{kind}: failed to apply: {error:#}")),
            }
        }
        let description = done.join("; ");
        self.windows.push(Window {
            kinds: kinds.to_vec(),
            start: now(),
            end: f64::NAN,
            description: description.clone(),
        });
        description
    }

    fn apply_one(&mut self, kind: FaultKind, hit: &[u32]) -> anyhow::Result<(Vec<u32>, String)> {
        let specs = self.specs();
        Ok(match kind {
            FaultKind::Kill | FaultKind::KillLeader | FaultKind::KillController => {
                let (node, why) = match kind {
                    FaultKind::Kill => (self.random_node(hit), "random node".to_string()),
                    FaultKind::KillLeader => {
                        let (partition, leader) = self.leader_of_random_partition(hit);
                        (leader, format!("leader of partition {partition}"))
                    }
                    _ => match active_controller(&self.sluice, &self.cluster.bootstrap()) {
                        Some(controller) => (controller, "active controller".to_string()),
                        None => (self.random_node(hit), "controller unknown: random".into()),
                    },
                };
                self.cluster.kill(node);
                self.undo.push(Undo::Restart(node));
                (vec![node], format!("{kind}: SIGKILL node {node} ({why})"))
            }
            FaultKind::PauseNewLeader => {
                let (partition, old) = self.leader_of_random_partition(hit);
                self.cluster.kill(old);
                self.undo.push(Undo::Restart(old));
                let deadline = Instant::now() + NEW_LEADER_TIMEOUT;
                let mut successor = None;
                while successor.is_none() && Instant::now() < deadline {
                    successor = self
                        .metadata
                        .leader(&self.topic, partition)
                        .filter(|leader| *leader != old);
                    std::thread::sleep(Duration::from_millis(20));
                }
                match successor {
                    Some(new) => {
                        self.cluster.pause(new, true);
                        self.undo.push(Undo::Resume(new));
                        // Start the killed node again at once: with one
                        // voter dead and one stopped, a 3-voter quorum could
                        // not fence the successor and nothing would move.
                        self.cluster.restart(old)?;
                        (
                            vec![old, new],
                            format!(
                                "{kind}: SIGKILL node {old} (leader of partition {partition}), \
                                 SIGSTOP node {new} (its successor) at {:.2}s, node {old} restarted",
                                now()
                            ),
                        )
                    }
                    None => (
                        vec![old],
                        format!(
                            "{kind}: SIGKILL node {old} (leader of partition {partition}); \
                             no successor within {NEW_LEADER_TIMEOUT:?}, nothing paused"
                        ),
                    ),
                }
            }
            FaultKind::Pause => {
                let node = self.random_node(hit);
                self.cluster.pause(node, true);
                self.undo.push(Undo::Resume(node));
                (vec![node], format!("{kind}: SIGSTOP node {node}"))
            }
            FaultKind::IsolateLeader | FaultKind::OneWayLeader => {
                let (partition, leader) = self.leader_of_random_partition(hit);
                let others: Vec<u32> = self
                    .node_ids()
                    .into_iter()
                    .filter(|n| *n != leader)
                    .collect();
                if kind == FaultKind::IsolateLeader {
                    self.partitions.split(&specs, &[leader], &others)?;
                } else {
                    for &other in &others {
                        self.partitions.cut(&specs, leader, other)?;
                    }
                }
                self.undo.push(Undo::HealNetwork);
                (
                    vec![leader],
                    format!(
                        "{kind}: node {leader} (leader of partition {partition}); cuts {}",
                        self.partitions.describe()
                    ),
                )
            }
            FaultKind::Split | FaultKind::Bridge => {
                let mut ids = self.node_ids();
                ids.shuffle(&mut self.rng);
                let (left, right): (Vec<u32>, Vec<u32>) = if kind == FaultKind::Split {
                    let majority = ids.len() / 2 + 1;
                    (ids[..majority].to_vec(), ids[majority..].to_vec())
                } else {
                    // [left half] bridge [right half]: the middle node
                    // talks to both halves, the halves not to each other.
                    let middle = ids.len() / 2;
                    (ids[..middle].to_vec(), ids[middle + 1..].to_vec())
                };
                self.partitions.split(&specs, &left, &right)?;
                self.undo.push(Undo::HealNetwork);
                (
                    Vec::new(),
                    format!(
                        "{kind}: {left:?} | {right:?}; cuts {}",
                        self.partitions.describe()
                    ),
                )
            }
            FaultKind::DiskFull => {
                let node = self.random_node(hit);
                let written = self.cluster.fill_disk(node)?;
                self.undo.push(Undo::FreeDisk(node));
                (
                    vec![node],
                    format!(
                        "{kind}: node {node}'s data dir filled ({} MiB)",
                        written >> 20
                    ),
                )
            }
            FaultKind::ClockJump => {
                let node = self.random_node(hit);
                let magnitude = *[60i64, 600, 3600, 86_400]
                    .choose(&mut self.rng)
                    .unwrap_or(&3600);
                let seconds = if self.rng.gen_bool(0.5) {
                    magnitude
                } else {
                    -magnitude
                };
                if !self.cluster.set_clock_offset(node, seconds) {
                    anyhow::bail!("clock faults are off (no libfaketime)");
                }
                self.undo.push(Undo::ResetClock(node));
                (
                    vec![node],
                    format!("{kind}: node {node} clock {seconds:+} s"),
                )
            }
        })
    }

    /// Undoes everything applied, restarts nodes that died on their own
    /// (and says so), and closes the window.
    pub fn heal(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        for undo in std::mem::take(&mut self.undo) {
            match undo {
                Undo::Restart(node) => {
                    if let Err(error) = self.cluster.restart(node) {
                        notes.push(format!("restart of node {node} failed: {error:#}"));
                    }
                }
                Undo::Resume(node) => self.cluster.pause(node, false),
                Undo::HealNetwork => {
                    if let Err(error) = self.partitions.heal() {
                        notes.push(format!("healing the network failed: {error:#}"));
                    }
                }
                Undo::FreeDisk(node) => self.cluster.free_disk(node),
                Undo::ResetClock(node) => {
                    self.cluster.set_clock_offset(node, 0);
                }
            }
        }
        if let Some(window) = self.windows.last_mut() {
            if window.end.is_nan() {
                window.end = now();
            }
        }
        notes
    }
}
