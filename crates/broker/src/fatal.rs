//! Failures that stop the broker (Kafka's LogDirFailureChannel): the
//! replica manager reports the first one, the broker's owner (`sluice
//! serve`, a test cluster) watches for it and exits. A leaf module.

/// Exit status of a broker stopped by a failed fsync (sysexits' EX_IOERR).
pub const EXIT_STORAGE_FAILURE: u8 = 74;
/// Exit status of a broker stopped by an internal failure (EX_SOFTWARE).
pub const EXIT_INTERNAL_FAILURE: u8 = 70;

/// A failure that leaves the broker's on-disk state unknowable: its owner
/// must stop the process with `exit_code` (no clean shutdown, which would
/// mark the data directory clean).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct FatalError {
    /// The process exit status the owner should use.
    pub exit_code: u8,
    /// What failed.
    pub message: String,
}
