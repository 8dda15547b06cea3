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

/// Bits of the access clock an index slot keeps: Redis's LRU clock is 24 bits of seconds,
/// which wraps after 194 days.
pub(crate) const ACCESS_CLOCK_BITS: u32 = 24;
/// The largest access clock value; the clock counts modulo this plus one.
pub(crate) const ACCESS_CLOCK_MAX: u32 = (1 << ACCESS_CLOCK_BITS) - 1;

/// The access clock: whole seconds of the monotonic clock plus `skew_s` (a test's jump
/// forward), modulo 2^24. Coarse on Linux (the kernel's tick, a few nanoseconds from the
/// vDSO): a read touches it on every lookup, and a second's resolution needs no better.
pub(crate) fn access_clock(skew_s: u64) -> u32 {
    (monotonic_s().wrapping_add(skew_s) as u32) & ACCESS_CLOCK_MAX
}

/// Seconds from an access clock value `then` to `now`, across one wrap of the clock (as
/// Redis's `estimateObjectIdleTime`: a key idle longer than 194 days looks younger).
pub(crate) fn access_idle_s(then: u32, now: u32) -> u32 {
    now.wrapping_sub(then) & ACCESS_CLOCK_MAX
}

#[cfg(target_os = "linux")]
fn monotonic_s() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid `timespec` that the call only writes; CLOCK_MONOTONIC_COARSE
    // exists on every Linux since 2.6.32, and cannot fail with a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    ts.tv_sec as u64
}

#[cfg(not(target_os = "linux"))]
fn monotonic_s() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_clock_wraps_as_redis_lru_clock() {
        assert_eq!(access_idle_s(10, 15), 5);
        assert_eq!(access_idle_s(ACCESS_CLOCK_MAX - 2, 3), 6, "across the wrap");
        assert_eq!(access_idle_s(7, 7), 0);
        let a = access_clock(0);
        let b = access_clock(100);
        assert!(access_idle_s(a, b) >= 100 && access_idle_s(a, b) <= 101);
    }
}
