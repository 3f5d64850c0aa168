//! The wall clock the log reads when its caller does not pass the time in
//! (roll by `segment.ms`, DeleteRecords' deletion delay). A leaf module.

/// Milliseconds since the Unix epoch; 0 if the clock is before it.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}
