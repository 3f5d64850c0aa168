//! Which partitions of its internal topic a coordinator serves (Kafka's
//! coordinator runtime: a partition is loaded when its broker becomes the
//! partition's leader, and unloaded when it stops leading it). Pure: the
//! coordinators give the leaderships they see and carry out the plan — load
//! a partition from its log (requests for its keys get
//! COORDINATOR_LOAD_IN_PROGRESS meanwhile), or drop what they hold of it
//! (requests get NOT_COORDINATOR, and clients find the new coordinator).

use std::collections::BTreeMap;

/// A partition's state on this coordinator, for the leader epoch it was
/// (or is being) loaded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ownership {
    Loading { epoch: i32 },
    Loaded { epoch: i32 },
}

impl Ownership {
    fn epoch(self) -> i32 {
        match self {
            Ownership::Loading { epoch } | Ownership::Loaded { epoch } => epoch,
        }
    }
}

/// What to do to follow the leaderships.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnershipPlan {
    /// Partitions no longer led here (or led in a newer epoch, which are
    /// also in `load`): drop what is held of them.
    pub unload: Vec<i32>,
    /// (partition, leader epoch) to load.
    pub load: Vec<(i32, i32)>,
}

/// The partitions a coordinator holds.
#[derive(Debug, Default)]
pub struct CoordinatorPartitions {
    states: BTreeMap<i32, Ownership>,
}

impl CoordinatorPartitions {
    pub fn status(&self, partition: i32) -> Option<Ownership> {
        self.states.get(&partition).copied()
    }

    /// The plan for `led` (partition → leader epoch, for every partition
    /// this node leads now), and the states it implies: unloaded ones are
    /// forgotten, loaded ones marked Loading until `loaded` is called.
    pub fn plan(&mut self, led: &BTreeMap<i32, i32>) -> OwnershipPlan {
        let mut plan = OwnershipPlan::default();
        for (partition, state) in &self.states {
            if led.get(partition) != Some(&state.epoch()) {
                plan.unload.push(*partition);
            }
        }
        for partition in &plan.unload {
            self.states.remove(partition);
        }
        for (partition, epoch) in led {
            if !self.states.contains_key(partition) {
                plan.load.push((*partition, *epoch));
                self.states
                    .insert(*partition, Ownership::Loading { epoch: *epoch });
            }
        }
        plan
    }

    /// A partition's load finished (ignored if the plan moved on since).
    pub fn loaded(&mut self, partition: i32, epoch: i32) {
        if let Some(state) = self.states.get_mut(&partition) {
            if *state == (Ownership::Loading { epoch }) {
                *state = Ownership::Loaded { epoch };
            }
        }
    }
}

/// Runs `sync` now and every `interval` until `shutdown` (the
/// coordinators' ownership loop).
pub async fn every(
    interval: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    sync: impl Fn(),
) {
    loop {
        sync();
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{CoordinatorPartitions, Ownership, OwnershipPlan};

    #[test]
    fn a_new_leadership_is_loaded_and_a_lost_one_unloaded() {
        let mut partitions = CoordinatorPartitions::default();
        let plan = partitions.plan(&BTreeMap::from([(0, 3), (2, 1)]));
        assert_eq!(
            plan,
            OwnershipPlan {
                unload: vec![],
                load: vec![(0, 3), (2, 1)]
            }
        );
        assert_eq!(partitions.status(0), Some(Ownership::Loading { epoch: 3 }));
        partitions.loaded(0, 3);
        assert_eq!(partitions.status(0), Some(Ownership::Loaded { epoch: 3 }));
        // Partition 2 moved away while loading; partition 1 came here.
        let plan = partitions.plan(&BTreeMap::from([(0, 3), (1, 7)]));
        assert_eq!(
            plan,
            OwnershipPlan {
                unload: vec![2],
                load: vec![(1, 7)]
            }
        );
        partitions.loaded(2, 1);
        assert_eq!(
            partitions.status(2),
            None,
            "a late load does not resurrect it"
        );
        assert_eq!(
            partitions.plan(&BTreeMap::from([(0, 3), (1, 7)])),
            OwnershipPlan::default()
        );
    }

    #[test]
    fn a_newer_epoch_reloads() {
        let mut partitions = CoordinatorPartitions::default();
        partitions.plan(&BTreeMap::from([(0, 3)]));
        partitions.loaded(0, 3);
        let plan = partitions.plan(&BTreeMap::from([(0, 5)]));
        assert_eq!(
            plan,
            OwnershipPlan {
                unload: vec![0],
                load: vec![(0, 5)]
            }
        );
        partitions.loaded(0, 3);
        assert_eq!(partitions.status(0), Some(Ownership::Loading { epoch: 5 }));
    }
}
