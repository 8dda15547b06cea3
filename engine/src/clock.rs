//! Wall-clock time in milliseconds since the Unix epoch, the unit of record expiry.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

thread_local! {
    /// Set on a thread that applies a primary's stream (see [`follow_primary_expiry`]).
    static PRIMARY_DECIDES: Cell<bool> = const { Cell::new(false) };
}

/// On the calling thread, a key past its expiry time still counts as present (`on`), or
/// expires by the clock again (`!on`). A replica applies its primary's stream on such a
/// thread: the primary alone decides when a key expires (its DEL comes in the stream), so a
/// write it sends for a key the replica's clock already sees expired (a lagging link, clock
/// skew) acts on the key's value, as on the primary. Readers on other threads still see the
/// key expired. Pair with `Options::expire_keys` off, which keeps the engine from removing
/// such keys meanwhile.
pub fn follow_primary_expiry(on: bool) {
    PRIMARY_DECIDES.with(|c| c.set(on));
}

/// True when a record with this expiry is no longer visible at `now_ms`.
pub(crate) fn is_expired(expire_at_ms: u64, now_ms: u64) -> bool {
    expire_at_ms != 0 && expire_at_ms <= now_ms && !PRIMARY_DECIDES.with(Cell::get)
}

/// [`is_expired`] against the current time, reading the clock only for records with an expiry.
pub(crate) fn expired_now(expire_at_ms: u64) -> bool {
    expire_at_ms != 0 && is_expired(expire_at_ms, now_ms())
}
