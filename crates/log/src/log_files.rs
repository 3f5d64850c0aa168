//! The names of a partition directory's segment files, Kafka's
//! `LogFileUtils`: a segment is `<base offset, 20 digits>.log` with its
//! `.index` and `.timeindex`; a suffix after those marks a file in
//! transit (`.deleted` waiting for `file.delete.delay.ms`, the cleaner's
//! `.cleaned` and `.swap`); `.tmp` is a half-written checkpoint or index.
//! A leaf module: names and the removal of a file that may be gone already.

use std::path::{Path, PathBuf};

use crate::error::io_error;
use crate::LogError;

/// A segment's records.
pub const LOG_SUFFIX: &str = ".log";
/// A segment's sparse offset index.
pub const INDEX_SUFFIX: &str = ".index";
/// A segment's time index.
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// After a segment file's name: removed from the log, waiting for
/// `file.delete.delay.ms`.
pub const DELETED_SUFFIX: &str = ".deleted";
/// After a segment file's name: written by the cleaner, not yet swapped in.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// After a segment file's name: a cleaned segment being swapped in.
pub const SWAP_SUFFIX: &str = ".swap";
/// After a file's name: written but not yet renamed into place.
pub const TEMPORARY_SUFFIX: &str = ".tmp";

/// Digits of a segment file's base offset.
const BASE_OFFSET_DIGITS: usize = 20;

/// File name stem of a segment: the base offset on 20 digits.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:0width$}", width = BASE_OFFSET_DIGITS)
}

/// The `.log`, `.index` and `.timeindex` paths of the segment at
/// `base_offset`, each followed by `suffix` (`""`, `CLEANED_SUFFIX`,
/// `SWAP_SUFFIX`, `DELETED_SUFFIX`).
pub fn segment_paths(dir: &Path, base_offset: i64, suffix: &str) -> [PathBuf; 3] {
    let stem = file_stem(base_offset);
    [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX]
        .map(|extension| dir.join(format!("{stem}{extension}{suffix}")))
}

/// Parses `<20 digits>.log` into a base offset.
pub(crate) fn segment_base(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(LOG_SUFFIX)?;
    if stem.len() != BASE_OFFSET_DIGITS || !stem.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Removes a file; one that does not exist is not an error.
pub(crate) fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error(path, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_parse_back() {
        let cases = [
            ("00000000000000000042.log", Some(42)),
            ("00000000000000000000.log", Some(0)),
            ("0000000000000000042.log", None),
            ("00000000000000000042.index", None),
            ("00000000000000000042.log.swap", None),
            ("0000000000000000004x.log", None),
        ];
        for (name, expected) in cases {
            assert_eq!(segment_base(name), expected, "{name}");
        }
        let [log, index, time] = segment_paths(Path::new("d"), 7, SWAP_SUFFIX);
        assert_eq!(log, Path::new("d/00000000000000000007.log.swap"));
        assert_eq!(index, Path::new("d/00000000000000000007.index.swap"));
        assert_eq!(time, Path::new("d/00000000000000000007.timeindex.swap"));
    }
}
