//! The replica manager's fetch read path (Kafka's
//! `ReplicaManager.fetchMessages` with `readFromLog` and `DelayedFetch`):
//! resolves each requested partition to the one this node leads, reads
//! whole batches under the request's and each partition's byte limits
//! (KIP-74), up to the high watermark or, read-committed, the last stable
//! offset with the aborted transactions of the range, and long-polls on the
//! high watermarks until `min_bytes` are there or the wait ends. The Fetch
//! handler only translates wire messages to and from these types.

use std::sync::Arc;

use bytes::Bytes;
use sluice_log::{AbortedTransaction, FileRecords};
use tokio::time::Instant;

use crate::error_codes;
use crate::partition::check_leader_epoch;
use crate::partition::Partition;
use crate::replica_manager::ReplicaManager;

/// What a whole fetch asks for.
#[derive(Clone, Copy, Debug)]
pub struct FetchParams {
    /// When the long poll ends.
    pub deadline: Instant,
    /// Answer once this many bytes are there (0: at once).
    pub min_bytes: usize,
    /// Bound on the bytes of the whole response.
    pub max_bytes: usize,
    /// Read up to the last stable offset, with the aborted transactions.
    pub read_committed: bool,
    /// A follower's fetch (replica id and broker epoch, -1 when not given):
    /// it reads up to the log end, reports its progress and is checked for
    /// divergence; it long-polls on the log end.
    pub replica: Option<(i32, i64)>,
}

/// One requested partition; `topic` is None for a topic id the image does
/// not know.
#[derive(Clone, Debug)]
pub struct PartitionFetch {
    pub topic: Option<String>,
    pub index: i32,
    pub fetch_offset: i64,
    /// -1: not given.
    pub current_leader_epoch: i32,
    /// A follower's latest epoch (v12+; -1: not given).
    pub last_fetched_epoch: i32,
    pub max_bytes: i32,
}

/// What was read for one partition. Offsets are -1 when the partition could
/// not be resolved.
#[derive(Clone, Debug)]
pub struct PartitionRead {
    pub error_code: i16,
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// Read-committed only: the aborted transactions overlapping the range.
    pub aborted_transactions: Option<Vec<AbortedTransaction>>,
    /// Whole batches, as stored.
    pub records: FetchedRecords,
    /// A follower's log diverges: the largest epoch the leader has at or
    /// below its last fetched epoch, and where that epoch ends here.
    pub diverging_epoch: Option<(i32, i64)>,
}

impl PartitionRead {
    /// A partition that could not be resolved: offsets -1 and an empty (not
    /// null) aborted-transactions list, as the response has always carried.
    fn failed(error_code: i16) -> PartitionRead {
        PartitionRead {
            error_code,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            aborted_transactions: Some(Vec::new()),
            records: FetchedRecords::default(),
            diverging_epoch: None,
        }
    }
}

/// The records of one partition's read: in memory, or where they are in
/// the segment files (a consumer's read, below the high watermark: sent
/// with `sendfile`, see `net::fetch_frame`).
#[derive(Clone, Debug)]
pub enum FetchedRecords {
    Memory(Bytes),
    Files(FileRecords),
}

impl Default for FetchedRecords {
    fn default() -> FetchedRecords {
        FetchedRecords::Memory(Bytes::new())
    }
}

impl FetchedRecords {
    pub fn len(&self) -> usize {
        match self {
            FetchedRecords::Memory(bytes) => bytes.len(),
            FetchedRecords::Files(files) => files.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReplicaManager {
    /// Reads every requested partition, waiting (long poll) for `min_bytes`
    /// until the deadline; results are in request order.
    pub async fn fetch(
        &self,
        params: FetchParams,
        requested: &[PartitionFetch],
    ) -> Vec<PartitionRead> {
        let resolved: Vec<Result<Arc<Partition>, i16>> = requested
            .iter()
            .map(|p| match &p.topic {
                None => Err(error_codes::UNKNOWN_TOPIC_ID),
                Some(topic) => self.leader_partition(topic, p.index),
            })
            .collect();
        loop {
            let mut receivers: Vec<_> = resolved
                .iter()
                .filter_map(|p| {
                    p.as_ref().ok().map(|p| match params.replica {
                        Some(_) => p.subscribe_log_end(),
                        None => p.subscribe_high_watermark(),
                    })
                })
                .collect();
            let (reads, bytes, has_error) = read_all(&params, requested, &resolved);
            if bytes >= params.min_bytes.max(1)
                || has_error
                || Instant::now() >= params.deadline
                || receivers.is_empty()
                || params.min_bytes == 0
            {
                return reads;
            }
            // Long poll: wake when any requested partition's high watermark
            // moves.
            let changed =
                futures::future::select_all(receivers.iter_mut().map(|r| Box::pin(r.changed())));
            if tokio::time::timeout_at(params.deadline, changed)
                .await
                .is_err()
            {
                return read_all(&params, requested, &resolved).0;
            }
        }
    }
}

/// Reads every partition once: the reads, their total bytes, whether any
/// failed.
fn read_all(
    params: &FetchParams,
    requested: &[PartitionFetch],
    resolved: &[Result<Arc<Partition>, i16>],
) -> (Vec<PartitionRead>, usize, bool) {
    let mut remaining = params.max_bytes;
    let mut total = 0usize;
    let mut has_error = false;
    let mut out = Vec::with_capacity(requested.len());
    for (request, partition) in requested.iter().zip(resolved) {
        // KIP-74: only the first partition that returns data may exceed the
        // limits, by at most one batch.
        let min_one_batch = total == 0;
        let read = match partition {
            Ok(partition) => read_one(partition, request, params, remaining, min_one_batch),
            Err(code) => PartitionRead::failed(*code),
        };
        has_error |= read.error_code != error_codes::NONE;
        remaining = remaining.saturating_sub(read.records.len());
        total += read.records.len();
        out.push(read);
    }
    (out, total, has_error)
}

fn read_one(
    partition: &Partition,
    request: &PartitionFetch,
    params: &FetchParams,
    remaining: usize,
    min_one_batch: bool,
) -> PartitionRead {
    let log_start_offset = partition.log.log_start_offset();
    let mut read = PartitionRead {
        error_code: error_codes::NONE,
        high_watermark: partition.high_watermark(),
        last_stable_offset: partition.last_stable_offset(),
        log_start_offset,
        aborted_transactions: None,
        records: FetchedRecords::default(),
        diverging_epoch: None,
    };
    let epoch_error = check_leader_epoch(request.current_leader_epoch, partition.leader_epoch());
    if epoch_error != error_codes::NONE {
        read.error_code = epoch_error;
        return read;
    }
    if let Some((replica, broker_epoch)) = params.replica {
        // KIP-320: a follower whose last epoch ends here before its fetch
        // offset (or that this leader never had) has diverged; it truncates
        // and asks again. Its progress is not recorded.
        if request.last_fetched_epoch >= 0 {
            let (epoch, end) = partition
                .log
                .end_offset_for_epoch(request.last_fetched_epoch);
            if epoch < request.last_fetched_epoch || end < request.fetch_offset {
                read.diverging_epoch = Some((epoch, end));
                return read;
            }
        }
        if request.fetch_offset < log_start_offset
            || request.fetch_offset > partition.log.log_end_offset()
        {
            read.error_code = error_codes::OFFSET_OUT_OF_RANGE;
            return read;
        }
        if !partition.on_follower_fetch(replica, request.fetch_offset, broker_epoch) {
            read.error_code = error_codes::NOT_LEADER_OR_FOLLOWER;
            return read;
        }
        read.high_watermark = partition.high_watermark();
        read.last_stable_offset = partition.last_stable_offset();
    } else if request.fetch_offset < log_start_offset
        || request.fetch_offset > partition.log.log_end_offset()
    {
        read.error_code = error_codes::OFFSET_OUT_OF_RANGE;
        return read;
    }
    let budget = (request.max_bytes.max(0) as usize).min(remaining);
    if budget == 0 && !min_one_batch {
        return read;
    }
    let upper = if params.replica.is_some() {
        i64::MAX
    } else if params.read_committed {
        read.last_stable_offset
    } else {
        read.high_watermark
    };
    // A consumer reads below the high watermark, which no one rewrites in
    // place: its records can go from the files to the socket. A follower
    // reads up to the log end, which a truncation may rewrite: it gets a
    // copy.
    let records = if params.replica.is_some() {
        partition
            .log
            .read(request.fetch_offset, upper, budget, min_one_batch)
            .map(|batches| FetchedRecords::Memory(batches.records))
    } else {
        partition
            .log
            .read_file_ranges(request.fetch_offset, upper, budget, min_one_batch)
            .map(FetchedRecords::Files)
    };
    match records {
        Ok(records) => {
            if params.read_committed && params.replica.is_none() {
                read.aborted_transactions =
                    Some(partition.aborted_transactions(request.fetch_offset, upper));
            }
            read.records = records;
        }
        Err(error) => read.error_code = error_codes::from_log_error(&error),
    }
    read
}
