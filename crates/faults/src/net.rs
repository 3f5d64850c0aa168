//! Network partitions as iptables rules inside the run's private network
//! namespace.
//!
//! A directed cut `from → to` is one rule:
//! `iptables -A OUTPUT -m owner --uid-owner <from's uid> -d <to's address> -j DROP`.
//! It drops what `from` sends on the connections it opened to `to` (its
//! Raft RPCs, heartbeats and follower fetches towards `to`). Connections
//! that `to` opened to `from` keep working in both directions: they come
//! from source `127.0.0.1`, so `from`'s replies are not addressed to `to`'s
//! address. A full cut between two nodes is therefore both directed cuts;
//! a one-way cut is one. The harness (root) is never cut: clients reach
//! every node, as in Jepsen's Kafka tests.
//!
//! DROP, not REJECT: a partition looks like silence, and every timeout on
//! both sides has to fire.

use std::collections::BTreeSet;

use crate::cluster::{run, NodeSpec};

/// The directed cuts in force, as (from node, to node).
#[derive(Default)]
pub struct Partitions {
    /// Cuts currently installed.
    cuts: BTreeSet<(u32, u32)>,
}

impl Partitions {
    /// Installs the cut `from → to` (once).
    pub fn cut(&mut self, specs: &[NodeSpec], from: u32, to: u32) -> anyhow::Result<()> {
        if from == to || !self.cuts.insert((from, to)) {
            return Ok(());
        }
        let from = &specs[(from - 1) as usize];
        let to = &specs[(to - 1) as usize];
        run(
            "iptables",
            &[
                "-A",
                "OUTPUT",
                "-m",
                "owner",
                "--uid-owner",
                &from.uid.to_string(),
                "-d",
                &to.address.to_string(),
                "-j",
                "DROP",
            ],
        )?;
        Ok(())
    }

    /// Cuts every link between the two groups, both directions.
    pub fn split(&mut self, specs: &[NodeSpec], left: &[u32], right: &[u32]) -> anyhow::Result<()> {
        for &a in left {
            for &b in right {
                self.cut(specs, a, b)?;
                self.cut(specs, b, a)?;
            }
        }
        Ok(())
    }

    /// Removes every rule (the OUTPUT chain of the namespace holds only ours).
    pub fn heal(&mut self) -> anyhow::Result<()> {
        if self.cuts.is_empty() {
            return Ok(());
        }
        self.cuts.clear();
        run("iptables", &["-F", "OUTPUT"])?;
        Ok(())
    }

    /// The cuts in force, for the log.
    pub fn describe(&self) -> String {
        let cuts: Vec<String> = self.cuts.iter().map(|(a, b)| format!("{a}->{b}")).collect();
        cuts.join(" ")
    }
}
