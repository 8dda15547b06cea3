//! The access clock of each key, as OBJECT IDLETIME and RESTORE ... IDLETIME see it.
//!
//! Every index slot keeps 24 bits of seconds (see `index`): writes stamp them, reads stamp
//! them unless the caller asks not to (see `Db::touching`). Here the two calls that only
//! look at or set the clock: neither counts as an access.

use crate::clock::{expired_now, ACCESS_CLOCK_MAX};
use crate::read::with_current;
use crate::shared::Shared;

/// Seconds since the key's last access; `None` when it is absent or expired.
pub(crate) fn idle_s(sh: &Shared, ns: u32, key: &[u8]) -> Option<u64> {
    with_current(sh, ns, key, |shard, slot, current| match (slot, current) {
        (Some(i), Some((_, hdr, _))) if !expired_now(hdr.expire_at_ms) => {
            Some(u64::from(shard.idle_s(i, sh.access_clock())))
        }
        _ => None,
    })
}

/// Stamps the key as accessed `idle_s` seconds ago; false when it is absent or expired. As
/// Redis's `objectSetLRUOrLFU`, an idle time longer than the clock's range wraps.
pub(crate) fn set_idle_s(sh: &Shared, ns: u32, key: &[u8], idle_s: u64) -> bool {
    with_current(sh, ns, key, |shard, slot, current| match (slot, current) {
        (Some(i), Some((_, hdr, _))) if !expired_now(hdr.expire_at_ms) => {
            let back = (idle_s % (u64::from(ACCESS_CLOCK_MAX) + 1)) as u32;
            shard.touch(i, sh.access_clock().wrapping_sub(back) & ACCESS_CLOCK_MAX);
            true
        }
        _ => false,
    })
}
