//! The checker: pure functions from what the producer was told (the
//! acknowledgements) and what the partitions hold at the end (one or more
//! full reads of each partition) to a list of violations. No I/O, no
//! clock: the tests below feed it histories with a lost, duplicated,
//! misplaced, reordered or divergent record and check that it says so.
//!
//! What each check means, by Kafka's guarantees for an idempotent
//! producer with acks=all into a topic with RF 3 and
//! `min.insync.replicas=2`, no transactions and no compaction:
//! - **lost**: an acknowledged (partition, offset, value) whose value is
//!   nowhere in the partition. Must never happen.
//! - **misplaced**: the value is there, but not at the acknowledged
//!   offset. The client was told a lie about where its record is.
//! - **duplicate**: one value at two offsets written by one producer
//!   epoch (idempotence must prevent a retry from being written twice),
//!   or whose writers are not known. Two copies written by *different*
//!   epochs of the producer are counted apart (`resent_after_epoch_bump`,
//!   not a violation): librdkafka bumps its idempotent epoch after a
//!   message timeout and re-sends, with new sequence numbers, batches whose
//!   outcome it did not learn, which no broker can recognise as retries
//!   (docs/FAULTS.md #7). Only the first copy counts for the order check.
//! - **reordered**: two records of one producer instance in one partition
//!   stored in the opposite order of their sending (the idempotent producer
//!   keeps order per partition).
//! - **gap**: an offset between the first read offset and the high
//!   watermark that holds no record; also a log that does not start at 0
//!   (nothing here deletes or compacts). Without transaction markers and
//!   compaction, Kafka has no gaps.
//! - **foreign**: a record whose value the producer never sent, or sent to
//!   another partition (corruption or a misrouted write).
//! - **divergent**: two reads of one partition (from different leaders)
//!   that disagree at some offset, or end at a different high watermark.

use std::collections::{BTreeMap, HashMap};

use crate::batches::{Writer, Writers};
use crate::history::parse_value;

/// One acknowledged record: where the broker said it put the value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acked {
    /// The partition it was sent to.
    pub partition: i32,
    /// The offset of the acknowledgement; negative when librdkafka
    /// reported success without an offset (-1001: it knows the record was
    /// written, not where, e.g. a retry answered DUPLICATE_SEQUENCE_NUMBER).
    pub offset: i64,
    /// The record's value.
    pub value: String,
}

/// One full read of one partition, from offset 0 to the high watermark.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionRead {
    /// Who served the read (the leader at the time), for the report.
    pub leader: i32,
    /// The high watermark the read went up to.
    pub high_watermark: i64,
    /// (offset, value) in the order the consumer returned them.
    pub records: Vec<(i64, String)>,
    /// Who wrote each batch (producer id and epoch), when the batch
    /// headers could be read.
    pub writers: Option<Writers>,
}

/// Everything wrong that the checker found, one line per finding; at
/// most [`EXAMPLES_MAX`] lines per kind are kept, the counts are exact.
#[derive(Debug, Default)]
pub struct Report {
    /// Acknowledged records not in the log.
    pub lost: u64,
    /// Acknowledged records in the log at another offset.
    pub misplaced: u64,
    /// Values stored more than once by one producer epoch (or by writers
    /// not known).
    pub duplicated: u64,
    /// Values stored again by a later epoch of the same producer: what
    /// librdkafka re-sent after an epoch bump. Allowed, counted.
    pub resent_after_epoch_bump: u64,
    /// Pairs of one instance's records stored out of sending order.
    pub reordered: u64,
    /// Missing offsets below the high watermark.
    pub gaps: u64,
    /// Values the producer never sent to this partition.
    pub foreign: u64,
    /// Offsets (or high watermarks) on which two reads disagree.
    pub divergent: u64,
    /// Records that were reported as failed to the producer but are in the
    /// log: allowed (a timed-out produce may have been written), counted.
    pub failed_but_present: u64,
    /// Records in the log (first read of each partition).
    pub stored: u64,
    /// Acknowledgements without an offset: checked for presence in their
    /// partition, not for position.
    pub acked_without_offset: u64,
    /// Examples of every violation, for the report.
    pub examples: Vec<String>,
    /// How many examples each kind has contributed (for the bound).
    examples_by_kind: BTreeMap<&'static str, usize>,
}

/// Examples kept per kind of violation.
pub const EXAMPLES_MAX: usize = 10;

impl Report {
    /// Whether any guarantee was broken.
    pub fn violations(&self) -> u64 {
        self.lost
            + self.misplaced
            + self.duplicated
            + self.reordered
            + self.gaps
            + self.foreign
            + self.divergent
    }

    /// An example of something allowed but counted (kept under the same
    /// bound, marked as not a violation).
    fn example_noted(&mut self, kind: &'static str, text: String) {
        self.example(kind, format!("(allowed) {text}"));
    }

    fn example(&mut self, kind: &'static str, text: String) {
        let count = self.examples_by_kind.entry(kind).or_default();
        *count += 1;
        if *count <= EXAMPLES_MAX {
            self.examples.push(format!("{kind}: {text}"));
        }
    }
}

/// Checks the final reads against the acknowledgements. `reads` holds, per
/// partition, one or more complete reads; the first is the reference, the
/// others are compared with it. `failed` are values whose produce was
/// reported as failed.
pub fn check(
    acked: &[Acked],
    failed: &[String],
    reads: &BTreeMap<i32, Vec<PartitionRead>>,
) -> Report {
    let mut report = Report::default();
    // Where each value is stored, by the reference read.
    let mut stored_at: HashMap<&str, Vec<(i32, i64)>> = HashMap::new();
    for (&partition, partition_reads) in reads {
        let Some(reference) = partition_reads.first() else {
            report.gaps += 1;
            report.example("gap", format!("partition {partition} was never read"));
            continue;
        };
        report.stored += reference.records.len() as u64;
        check_contiguous(&mut report, partition, reference);
        check_order(&mut report, partition, reference);
        for (offset, value) in &reference.records {
            stored_at
                .entry(value.as_str())
                .or_default()
                .push((partition, *offset));
            match parse_value(value) {
                Some((sent_to, _, _)) if sent_to == partition => {}
                _ => {
                    report.foreign += 1;
                    report.example(
                        "foreign",
                        format!("partition {partition} offset {offset} holds {value:?}"),
                    );
                }
            }
        }
        for other in &partition_reads[1..] {
            check_same(&mut report, partition, reference, other);
        }
    }
    for (value, places) in &stored_at {
        if places.len() < 2 {
            continue;
        }
        let writers: Option<Vec<Writer>> = places
            .iter()
            .map(|(partition, offset)| {
                reads
                    .get(partition)
                    .and_then(|r| r.first())
                    .and_then(|r| r.writers.as_ref())
                    .and_then(|w| w.writer_of(*offset))
            })
            .collect();
        let extra = (places.len() - 1) as u64;
        match writers {
            Some(writers) if resent_by_later_epochs(&writers) => {
                report.resent_after_epoch_bump += extra;
                report.example_noted(
                    "re-sent after an epoch bump",
                    format!("{value:?} stored at {places:?} by {writers:?}"),
                );
            }
            writers => {
                report.duplicated += extra;
                report.example(
                    "duplicate",
                    format!("{value:?} stored at {places:?} by {writers:?}"),
                );
            }
        }
    }
    for record in acked {
        match stored_at.get(record.value.as_str()) {
            None => {
                report.lost += 1;
                report.example(
                    "lost",
                    format!(
                        "{:?} acknowledged at partition {} offset {} is not in the log",
                        record.value, record.partition, record.offset
                    ),
                );
            }
            Some(places) if record.offset < 0 => {
                report.acked_without_offset += 1;
                if !places
                    .iter()
                    .any(|(partition, _)| *partition == record.partition)
                {
                    report.misplaced += 1;
                    report.example(
                        "misplaced",
                        format!(
                            "{:?} acknowledged (without an offset) to partition {} is stored at {places:?}",
                            record.value, record.partition
                        ),
                    );
                }
            }
            Some(places) if !places.contains(&(record.partition, record.offset)) => {
                report.misplaced += 1;
                report.example(
                    "misplaced",
                    format!(
                        "{:?} acknowledged at partition {} offset {} is stored at {places:?}",
                        record.value, record.partition, record.offset
                    ),
                );
            }
            Some(_) => {}
        }
    }
    report.failed_but_present = failed
        .iter()
        .filter(|value| stored_at.contains_key(value.as_str()))
        .count() as u64;
    report
}

/// Whether the copies of one value were each written by another epoch of
/// one producer (what librdkafka's re-send after an epoch bump looks like),
/// in the order of the copies' offsets.
fn resent_by_later_epochs(writers: &[Writer]) -> bool {
    let Some(first) = writers.first() else {
        return false;
    };
    first.producer_id >= 0
        && writers.iter().all(|w| w.producer_id == first.producer_id)
        && writers
            .windows(2)
            .all(|pair| pair[0].producer_epoch < pair[1].producer_epoch)
}

/// Offsets must run 0, 1, 2, … up to the high watermark.
fn check_contiguous(report: &mut Report, partition: i32, read: &PartitionRead) {
    let mut expected = 0i64;
    for (offset, _) in &read.records {
        if *offset != expected {
            let missing = (*offset - expected).max(1) as u64;
            report.gaps += missing;
            report.example(
                "gap",
                format!("partition {partition}: expected offset {expected}, read {offset}"),
            );
        }
        expected = offset + 1;
    }
    if expected < read.high_watermark {
        report.gaps += (read.high_watermark - expected) as u64;
        report.example(
            "gap",
            format!(
                "partition {partition}: read ended at {expected}, high watermark {}",
                read.high_watermark
            ),
        );
    }
}

/// Per producer instance, sequence numbers must grow with the offset. A
/// value's later copies are left out (the duplicate check counts them).
fn check_order(report: &mut Report, partition: i32, read: &PartitionRead) {
    let mut last: HashMap<u32, (u64, i64)> = HashMap::new();
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (offset, value) in &read.records {
        if !seen.insert(value.as_str()) {
            continue;
        }
        let Some((_, instance, seq)) = parse_value(value) else {
            continue;
        };
        if let Some(&(last_seq, last_offset)) = last.get(&instance) {
            if seq <= last_seq {
                report.reordered += 1;
                report.example(
                    "reordered",
                    format!(
                        "partition {partition}: instance {instance} seq {seq} at offset {offset} \
                         after seq {last_seq} at offset {last_offset}"
                    ),
                );
            }
        }
        last.insert(instance, (seq, *offset));
    }
}

/// Two reads of one partition must hold the same records at the same
/// offsets up to the same high watermark.
fn check_same(report: &mut Report, partition: i32, first: &PartitionRead, other: &PartitionRead) {
    if first.high_watermark != other.high_watermark {
        report.divergent += 1;
        report.example(
            "divergent",
            format!(
                "partition {partition}: high watermark {} (leader {}) vs {} (leader {})",
                first.high_watermark, first.leader, other.high_watermark, other.leader
            ),
        );
    }
    let theirs: HashMap<i64, &str> = other
        .records
        .iter()
        .map(|(offset, value)| (*offset, value.as_str()))
        .collect();
    let mut differing = 0u64;
    let mut example = None;
    for (offset, value) in &first.records {
        match theirs.get(offset) {
            Some(v) if *v == value => {}
            found => {
                differing += 1;
                example.get_or_insert(format!(
                    "partition {partition} offset {offset}: {value:?} (leader {}) vs {:?} (leader {})",
                    first.leader, found, other.leader
                ));
            }
        }
    }
    let ours: std::collections::HashSet<i64> = first.records.iter().map(|(o, _)| *o).collect();
    for (offset, value) in &other.records {
        if !ours.contains(offset) {
            differing += 1;
            example.get_or_insert(format!(
                "partition {partition} offset {offset}: absent (leader {}) vs {value:?} (leader {})",
                first.leader, other.leader
            ));
        }
    }
    report.divergent += differing;
    if let Some(example) = example {
        report.example(
            "divergent",
            format!("{example} ({differing} offsets differ)"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batches::BatchWriter;
    use crate::history::value_of;

    /// A clean history: `count` records of instance 1 round robin over
    /// `partitions`, all acknowledged, the log holding exactly them.
    fn clean(partitions: i32, count: u64) -> (Vec<Acked>, BTreeMap<i32, Vec<PartitionRead>>) {
        let mut acked = Vec::new();
        let mut reads: BTreeMap<i32, Vec<PartitionRead>> = BTreeMap::new();
        for seq in 0..count {
            let partition = (seq % partitions as u64) as i32;
            let value = value_of(partition, 1, seq);
            let read = reads.entry(partition).or_insert_with(|| {
                vec![PartitionRead {
                    leader: 1,
                    ..PartitionRead::default()
                }]
            });
            let offset = read[0].records.len() as i64;
            read[0].records.push((offset, value.clone()));
            read[0].high_watermark = offset + 1;
            acked.push(Acked {
                partition,
                offset,
                value,
            });
        }
        (acked, reads)
    }

    fn read_again(reads: &mut BTreeMap<i32, Vec<PartitionRead>>) {
        for partition_reads in reads.values_mut() {
            let mut second = partition_reads[0].clone();
            second.leader = 2;
            partition_reads.push(second);
        }
    }

    #[test]
    fn a_clean_history_has_no_violations() {
        let (acked, mut reads) = clean(3, 30);
        read_again(&mut reads);
        let report = check(&acked, &[], &reads);
        assert_eq!(report.violations(), 0, "{:?}", report.examples);
        assert_eq!(report.stored, 30);
    }

    /// Each case breaks the clean history in one way and names the counter
    /// that must catch it.
    #[test]
    fn every_kind_of_violation_is_caught() {
        type Breaker = fn(&mut Vec<Acked>, &mut BTreeMap<i32, Vec<PartitionRead>>);
        type Counter = fn(&Report) -> u64;
        let cases: &[(&str, Breaker, Counter)] = &[
            (
                "lost: an acknowledged record missing from the log (the tail)",
                |_, reads| {
                    let read = &mut reads.get_mut(&0).expect("partition 0")[0];
                    read.records.pop();
                    read.high_watermark -= 1;
                    for other in reads.get_mut(&0).expect("partition 0").iter_mut().skip(1) {
                        other.records.pop();
                        other.high_watermark -= 1;
                    }
                },
                |r| r.lost,
            ),
            (
                "misplaced: an acknowledged offset holding another record",
                |acked, _| acked[0].offset = 5,
                |r| r.misplaced,
            ),
            (
                "duplicate: one value written twice",
                |_, reads| {
                    for read in reads.get_mut(&1).expect("partition 1") {
                        let value = read.records[0].1.clone();
                        let offset = read.high_watermark;
                        read.records.push((offset, value));
                        read.high_watermark += 1;
                    }
                },
                |r| r.duplicated,
            ),
            (
                "gap: an offset below the high watermark without a record",
                |_, reads| {
                    for read in reads.get_mut(&2).expect("partition 2") {
                        for record in read.records.iter_mut().skip(3) {
                            record.0 += 1;
                        }
                        read.high_watermark += 1;
                    }
                },
                |r| r.gaps,
            ),
            (
                "reordered: two records of one instance swapped",
                |acked, reads| {
                    for read in reads.get_mut(&0).expect("partition 0") {
                        let first = read.records[0].1.clone();
                        read.records[0].1 = read.records[1].1.clone();
                        read.records[1].1 = first;
                    }
                    let first = acked[0].offset;
                    acked[0].offset = acked[3].offset;
                    acked[3].offset = first;
                },
                |r| r.reordered,
            ),
            (
                "foreign: a value sent to another partition",
                |_, reads| {
                    for read in reads.get_mut(&0).expect("partition 0") {
                        let offset = read.high_watermark;
                        read.records.push((offset, value_of(1, 9, 999)));
                        read.high_watermark += 1;
                    }
                },
                |r| r.foreign,
            ),
            (
                "divergent: the second leader holds another record at an offset",
                |_, reads| {
                    reads.get_mut(&1).expect("partition 1")[1].records[2].1 = value_of(1, 7, 777);
                },
                |r| r.divergent,
            ),
            (
                "divergent: the second leader's log is shorter",
                |_, reads| {
                    let second = &mut reads.get_mut(&1).expect("partition 1")[1];
                    second.records.pop();
                    second.high_watermark -= 1;
                },
                |r| r.divergent,
            ),
        ];
        for (name, breaker, counter) in cases {
            let (mut acked, mut reads) = clean(3, 30);
            read_again(&mut reads);
            breaker(&mut acked, &mut reads);
            let report = check(&acked, &[], &reads);
            assert!(counter(&report) > 0, "{name}: not caught: {report:?}");
            assert!(report.violations() > 0, "{name}");
            assert!(!report.examples.is_empty(), "{name}: no example");
        }
    }

    #[test]
    fn a_lost_acknowledged_record_in_the_middle_is_reported_with_its_value() {
        let (acked, mut reads) = clean(1, 10);
        // The log lost offset 4; the records after it moved down (what a
        // truncation and re-append by a new leader looks like).
        let read = &mut reads.get_mut(&0).expect("partition 0")[0];
        read.records.remove(4);
        for (index, record) in read.records.iter_mut().enumerate() {
            record.0 = index as i64;
        }
        read.high_watermark = 9;
        let report = check(&acked, &[], &reads);
        assert_eq!(report.lost, 1);
        assert_eq!(report.misplaced, 5, "offsets 5..9 now hold records 6..10");
        assert!(report
            .examples
            .iter()
            .any(|e| e.contains(&value_of(0, 1, 4))));
    }

    #[test]
    fn an_acknowledgement_without_an_offset_is_checked_for_presence_only() {
        let (mut acked, reads) = clean(2, 10);
        acked[3].offset = -1001;
        let report = check(&acked, &[], &reads);
        assert_eq!(report.violations(), 0, "{:?}", report.examples);
        assert_eq!(report.acked_without_offset, 1);
        let (mut acked, mut reads) = clean(2, 10);
        acked[3].offset = -1001;
        let value = acked[3].value.clone();
        for read in reads.values_mut() {
            read[0].records.retain(|(_, v)| *v != value);
        }
        let report = check(&acked, &[], &reads);
        assert_eq!(report.lost, 1, "absent everywhere: lost, offset or not");
    }

    /// Partition 0 of a clean history with its first record written again
    /// at the end, the batches' writers as given.
    fn written_twice(first: i16, again: i16) -> (Vec<Acked>, BTreeMap<i32, Vec<PartitionRead>>) {
        let (acked, mut reads) = clean(1, 10);
        let read = &mut reads.get_mut(&0).expect("partition 0")[0];
        let value = read.records[0].1.clone();
        read.records.push((10, value));
        read.high_watermark = 11;
        let writer = |epoch| Writer {
            producer_id: 4,
            producer_epoch: epoch,
        };
        read.writers = Some(Writers::new(vec![
            BatchWriter {
                first_offset: 0,
                last_offset: 9,
                writer: writer(first),
            },
            BatchWriter {
                first_offset: 10,
                last_offset: 10,
                writer: writer(again),
            },
        ]));
        (acked, reads)
    }

    #[test]
    fn a_copy_written_by_a_later_producer_epoch_is_a_resend_not_a_violation() {
        let (acked, reads) = written_twice(0, 1);
        let report = check(&acked, &[], &reads);
        assert_eq!(report.violations(), 0, "{:?}", report.examples);
        assert_eq!(report.resent_after_epoch_bump, 1);
        assert_eq!(
            report.reordered, 0,
            "the later copy does not count for order"
        );
    }

    #[test]
    fn a_copy_written_by_the_same_producer_epoch_is_a_duplicate() {
        let (acked, reads) = written_twice(2, 2);
        let report = check(&acked, &[], &reads);
        assert_eq!(report.duplicated, 1);
        assert_eq!(report.resent_after_epoch_bump, 0);
        let (acked, reads) = written_twice(3, 2);
        assert_eq!(
            check(&acked, &[], &reads).duplicated,
            1,
            "an older epoch later"
        );
    }

    #[test]
    fn a_copy_whose_writers_are_unknown_is_a_duplicate() {
        let (acked, mut reads) = written_twice(0, 1);
        reads.get_mut(&0).expect("partition 0")[0].writers = None;
        assert_eq!(check(&acked, &[], &reads).duplicated, 1);
    }

    #[test]
    fn a_failed_produce_that_was_written_is_counted_but_allowed() {
        let (mut acked, reads) = clean(2, 10);
        let failed = vec![acked.pop().expect("a record").value];
        let report = check(&acked, &failed, &reads);
        assert_eq!(report.violations(), 0, "{:?}", report.examples);
        assert_eq!(report.failed_but_present, 1);
    }
}
