//! The checks of the consuming workloads, pure functions like
//! [`crate::checker`]: the consumer group's committed offsets
//! ([`check_commits`]) and the exactly-once job's output
//! ([`check_eos`]).
//!
//! - **offsets backwards**: the observer saw a partition's committed offset
//!   lower than it had seen it before, or the final committed offset is
//!   below the highest commit the coordinator acknowledged (a lost commit).
//! - **eos missing**: an input record below the job's committed offset with
//!   no output (its transaction committed the offsets, not the records).
//! - **eos duplicated**: an input record with more than one visible output.
//! - **eos beyond committed**: a visible output of an input record at or
//!   above the committed offset (records of a transaction whose offsets
//!   did not commit).
//! - **aborted read**: a record of a transaction aborted on purpose visible
//!   under read_committed.
//! - **eos foreign**: an output that names no input record, or another
//!   value than the input holds at that offset, or another partition.

use std::collections::{BTreeMap, HashMap};

use crate::eos::parse_output;

/// One look at one partition's committed offset.
#[derive(Clone, Debug, PartialEq)]
pub struct CommitObservation {
    /// When the look began (seconds into the run).
    pub at: f64,
    /// The partition.
    pub partition: i32,
    /// Its committed offset.
    pub offset: i64,
}

/// Examples kept per kind.
const EXAMPLES_MAX: usize = 10;

/// What [`check_commits`] found.
#[derive(Debug, Default)]
pub struct CommitReport {
    /// Observations looked at.
    pub observations: u64,
    /// Commits the coordinator acknowledged.
    pub acked: u64,
    /// Observations below an earlier one of the same partition.
    pub backwards: u64,
    /// Partitions whose final committed offset is below their highest
    /// acknowledged commit.
    pub lost: u64,
    /// Examples of both.
    pub examples: Vec<String>,
}

impl CommitReport {
    /// Violations.
    pub fn violations(&self) -> u64 {
        self.backwards + self.lost
    }

    fn example(&mut self, text: String) {
        if self.examples.len() < 2 * EXAMPLES_MAX {
            self.examples.push(text);
        }
    }
}

/// Checks the observed committed offsets (in any order; sorted by time
/// here), the acknowledged commits (partition, offset, time sent) and the
/// committed offsets at the end.
pub fn check_commits(
    observed: &[CommitObservation],
    acked: &[(i32, i64, f64)],
    final_committed: &BTreeMap<i32, i64>,
) -> CommitReport {
    let mut report = CommitReport {
        observations: observed.len() as u64,
        acked: acked.len() as u64,
        ..CommitReport::default()
    };
    let mut sorted: Vec<&CommitObservation> = observed.iter().collect();
    sorted.sort_by(|a, b| a.at.total_cmp(&b.at));
    let mut highest: BTreeMap<i32, (i64, f64)> = BTreeMap::new();
    for observation in sorted {
        match highest.get(&observation.partition) {
            Some(&(offset, at)) if observation.offset < offset => {
                report.backwards += 1;
                report.example(format!(
                    "offsets backwards: partition {} committed offset {} at {at:.2}s, then {} at {:.2}s",
                    observation.partition, offset, observation.offset, observation.at
                ));
            }
            Some(&(offset, _)) if observation.offset == offset => {}
            _ => {
                highest.insert(observation.partition, (observation.offset, observation.at));
            }
        }
    }
    let mut acked_highest: BTreeMap<i32, (i64, f64)> = BTreeMap::new();
    for &(partition, offset, at) in acked {
        let entry = acked_highest.entry(partition).or_insert((offset, at));
        if offset > entry.0 {
            *entry = (offset, at);
        }
    }
    for (partition, (offset, at)) in acked_highest {
        let at_end = final_committed.get(&partition).copied();
        if at_end.is_none_or(|end| end < offset) {
            report.lost += 1;
            report.example(format!(
                "lost commit: partition {partition} commit of offset {offset} (sent {at:.2}s) \
                 acknowledged, committed offset at the end {at_end:?}"
            ));
        }
    }
    report
}

/// What [`check_eos`] found.
#[derive(Debug, Default)]
pub struct EosReport {
    /// Visible output records.
    pub outputs: u64,
    /// Input records below the committed offsets.
    pub covered: u64,
    /// Covered input records without an output.
    pub missing: u64,
    /// Extra outputs of one input record.
    pub duplicated: u64,
    /// Outputs of input records at or above the committed offset.
    pub beyond_committed: u64,
    /// Outputs of transactions aborted on purpose.
    pub aborted_read: u64,
    /// Outputs that match no input record.
    pub foreign: u64,
    /// Examples.
    pub examples: Vec<String>,
    examples_by_kind: BTreeMap<&'static str, usize>,
}

impl EosReport {
    /// Violations.
    pub fn violations(&self) -> u64 {
        self.missing + self.duplicated + self.beyond_committed + self.aborted_read + self.foreign
    }

    fn example(&mut self, kind: &'static str, text: String) {
        let count = self.examples_by_kind.entry(kind).or_default();
        *count += 1;
        if *count <= EXAMPLES_MAX {
            self.examples.push(format!("{kind}: {text}"));
        }
    }
}

/// Checks the job's output. `inputs`: each input partition's records
/// (offset, value), as the final read found them; `committed`: the job
/// group's committed offsets at the end; `outputs`: each output
/// partition's records as a read_committed consumer sees them.
pub fn check_eos(
    inputs: &BTreeMap<i32, Vec<(i64, String)>>,
    committed: &BTreeMap<i32, i64>,
    outputs: &BTreeMap<i32, Vec<(i64, String)>>,
) -> EosReport {
    let mut report = EosReport::default();
    let input_at: HashMap<(i32, i64), &str> = inputs
        .iter()
        .flat_map(|(&p, records)| records.iter().map(move |(o, v)| ((p, *o), v.as_str())))
        .collect();
    // Where each input record's outputs are (output offsets).
    let mut written: HashMap<(i32, i64), Vec<i64>> = HashMap::new();
    for (&out_partition, records) in outputs {
        for (out_offset, text) in records {
            report.outputs += 1;
            let Some((aborted, partition, offset, value)) = parse_output(text) else {
                report.foreign += 1;
                report.example(
                    "eos foreign",
                    format!("output {out_partition}@{out_offset} is {text:?}"),
                );
                continue;
            };
            if aborted {
                report.aborted_read += 1;
                report.example(
                    "aborted read",
                    format!("output {out_partition}@{out_offset} {text:?} was aborted"),
                );
                continue;
            }
            if partition != out_partition || input_at.get(&(partition, offset)) != Some(&value) {
                report.foreign += 1;
                report.example(
                    "eos foreign",
                    format!(
                        "output {out_partition}@{out_offset} {text:?}; the input holds {:?} there",
                        input_at.get(&(partition, offset))
                    ),
                );
                continue;
            }
            written
                .entry((partition, offset))
                .or_default()
                .push(*out_offset);
            if committed.get(&partition).is_none_or(|c| offset >= *c) {
                report.beyond_committed += 1;
                report.example(
                    "eos beyond committed",
                    format!(
                        "output {out_partition}@{out_offset} of input offset {offset}; committed {:?}",
                        committed.get(&partition)
                    ),
                );
            }
        }
    }
    for (&partition, records) in inputs {
        let covered_to = committed.get(&partition).copied().unwrap_or(0);
        // Runs of consecutive duplicated inputs, reported as one example
        // each: (first input, last input, output offsets of the first).
        let mut run: Option<(i64, i64, Vec<i64>)> = None;
        let report_run = |report: &mut EosReport, run: Option<(i64, i64, Vec<i64>)>| {
            if let Some((first, last, at)) = run {
                report.example(
                    "eos duplicated",
                    format!(
                        "inputs {partition}@{first}..={last} have more than one output \
                         (input {first} at output offsets {at:?})"
                    ),
                );
            }
        };
        for (offset, _) in records.iter().filter(|(o, _)| *o < covered_to) {
            report.covered += 1;
            let outputs = written.get(&(partition, *offset));
            match outputs.map_or(0, Vec::len) {
                0 => {
                    report.missing += 1;
                    report.example(
                        "eos missing",
                        format!(
                            "input {partition}@{offset} (committed {covered_to}) has no output"
                        ),
                    );
                }
                1 => {}
                n => {
                    report.duplicated += n as u64 - 1;
                    match &mut run {
                        Some((_, last, _)) if *last + 1 == *offset => *last = *offset,
                        _ => {
                            let at = outputs.cloned().unwrap_or_default();
                            report_run(&mut report, run.replace((*offset, *offset, at)));
                        }
                    }
                    continue;
                }
            }
            report_run(&mut report, run.take());
        }
        report_run(&mut report, run.take());
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eos::output_value;

    fn look(at: f64, partition: i32, offset: i64) -> CommitObservation {
        CommitObservation {
            at,
            partition,
            offset,
        }
    }

    #[test]
    fn commits_that_only_grow_and_survive_pass() {
        let observed = [
            look(1.0, 0, 5),
            look(2.0, 0, 5),
            look(3.0, 0, 9),
            look(1.5, 1, 2),
        ];
        let acked = [(0, 5, 0.5), (0, 9, 2.5), (1, 2, 1.0)];
        let end = BTreeMap::from([(0, 9), (1, 2)]);
        let report = check_commits(&observed, &acked, &end);
        assert_eq!(report.violations(), 0, "{:?}", report.examples);
        assert_eq!((report.observations, report.acked), (4, 3));
    }

    #[test]
    fn a_committed_offset_that_goes_back_or_is_lost_is_caught() {
        // Observed out of time order on purpose: sorted by time, 9 then 5.
        let observed = [look(3.0, 0, 5), look(2.0, 0, 9)];
        let report = check_commits(&observed, &[], &BTreeMap::new());
        assert_eq!(report.backwards, 1, "{:?}", report.examples);
        // Acknowledged 12, at the end 9: lost; partition 1 acknowledged but
        // has no committed offset at all.
        let acked = [(0, 12, 4.0), (1, 3, 4.0)];
        let report = check_commits(&[], &acked, &BTreeMap::from([(0, 9)]));
        assert_eq!(report.lost, 2, "{:?}", report.examples);
    }

    fn inputs(values: &[(i32, &[&str])]) -> BTreeMap<i32, Vec<(i64, String)>> {
        values
            .iter()
            .map(|(p, vs)| {
                let records = vs
                    .iter()
                    .enumerate()
                    .map(|(o, v)| (o as i64, v.to_string()))
                    .collect();
                (*p, records)
            })
            .collect()
    }

    fn out(records: &[(bool, i32, i64, &str)]) -> Vec<(i64, String)> {
        records
            .iter()
            .enumerate()
            .map(|(i, (aborted, p, o, v))| (i as i64, output_value(*aborted, *p, *o, v)))
            .collect()
    }

    #[test]
    fn an_exact_output_passes() {
        let inputs = inputs(&[(0, &["a", "b", "c"][..]), (1, &["d"][..])]);
        let committed = BTreeMap::from([(0, 2), (1, 1)]);
        let outputs = BTreeMap::from([
            (0, out(&[(false, 0, 0, "a"), (false, 0, 1, "b")])),
            (1, out(&[(false, 1, 0, "d")])),
        ]);
        let report = check_eos(&inputs, &committed, &outputs);
        assert_eq!(report.violations(), 0, "{:?}", report.examples);
        assert_eq!((report.outputs, report.covered), (3, 3));
    }

    #[test]
    fn every_kind_of_exactly_once_violation_is_caught() {
        let inputs = inputs(&[(0, &["a", "b", "c", "d"][..])]);
        let committed = BTreeMap::from([(0, 3)]);
        let outputs = BTreeMap::from([(
            0,
            out(&[
                (false, 0, 0, "a"),
                (false, 0, 0, "a"), // duplicated
                // offset 1 ("b") missing
                (true, 0, 2, "c"), // aborted, visible
                (false, 0, 2, "c"),
                (false, 0, 3, "d"), // beyond the committed offset 3
                (false, 0, 2, "x"), // foreign: the input holds "c"
            ]),
        )]);
        let report = check_eos(&inputs, &committed, &outputs);
        assert_eq!(report.duplicated, 1, "{:?}", report.examples);
        assert_eq!(report.missing, 1, "{:?}", report.examples);
        assert_eq!(report.aborted_read, 1, "{:?}", report.examples);
        assert_eq!(report.beyond_committed, 1, "{:?}", report.examples);
        assert_eq!(report.foreign, 1, "{:?}", report.examples);
        // An output in the wrong partition is foreign too.
        let outputs = BTreeMap::from([(1, out(&[(false, 0, 0, "a")]))]);
        let report = check_eos(&inputs, &BTreeMap::new(), &outputs);
        assert_eq!(report.foreign, 1, "{:?}", report.examples);
    }
}
