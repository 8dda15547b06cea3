//! The wall clock, read where the commands, the cron and the saves need it: Unix time in
//! milliseconds. At the bottom of the crate so that every layer can read the time without
//! importing the layer above it.

/// Unix time now in milliseconds (0 for a clock set before 1970).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
