//! Wall-clock time in milliseconds since the Unix epoch, the unit of record expiry.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// True when a record with this expiry is no longer visible at `now_ms`.
pub(crate) fn is_expired(expire_at_ms: u64, now_ms: u64) -> bool {
    expire_at_ms != 0 && expire_at_ms <= now_ms
}

/// [`is_expired`] against the current time, reading the clock only for records with an expiry.
pub(crate) fn expired_now(expire_at_ms: u64) -> bool {
    expire_at_ms != 0 && expire_at_ms <= now_ms()
}
