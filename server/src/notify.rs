//! Keyspace notifications' configuration: `notify-keyspace-events` as Redis's flag bits, its
//! letters (parsed and printed as Redis 7.0 does), and the one atomic the commands read: a
//! relaxed load tells them, before anything else, whether any event is wanted.

use std::sync::atomic::{AtomicU32, Ordering};

/// `K`: `__keyspace@<db>__:<key>` channels.
pub const KEYSPACE: u32 = 1 << 0;
/// `E`: `__keyevent@<db>__:<event>` channels.
pub const KEYEVENT: u32 = 1 << 1;
/// `g`: generic commands (DEL, EXPIRE, RENAME...).
pub const GENERIC: u32 = 1 << 2;
/// `$`: string commands.
pub const STRING: u32 = 1 << 3;
const LIST: u32 = 1 << 4;
const SET: u32 = 1 << 5;
const HASH: u32 = 1 << 6;
const ZSET: u32 = 1 << 7;
/// `x`: keys that expired.
pub const EXPIRED: u32 = 1 << 8;
const EVICTED: u32 = 1 << 9;
const STREAM: u32 = 1 << 10;
/// `m`: reads of keys that do not exist (not part of `A`).
pub const KEY_MISS: u32 = 1 << 11;
const MODULE: u32 = 1 << 13;
/// `n`: keys created (not part of `A`).
pub const NEW: u32 = 1 << 14;
/// `A`: every class but `m` and `n`.
const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Redis's `keyspaceEventsStringToFlags`: `None` for a letter it does not know.
pub fn parse(classes: &[u8]) -> Option<u32> {
    classes.iter().try_fold(0, |flags, c| {
        Some(
            flags
                | match c {
                    b'A' => ALL,
                    b'g' => GENERIC,
                    b'$' => STRING,
                    b'l' => LIST,
                    b's' => SET,
                    b'h' => HASH,
                    b'z' => ZSET,
                    b'x' => EXPIRED,
                    b'e' => EVICTED,
                    b'K' => KEYSPACE,
                    b'E' => KEYEVENT,
                    b't' => STREAM,
                    b'm' => KEY_MISS,
                    b'd' => MODULE,
                    b'n' => NEW,
                    _ => return None,
                },
        )
    })
}

/// Redis's `keyspaceEventsFlagsToString`, what CONFIG GET shows.
pub fn format(flags: u32) -> String {
    let mut s = String::new();
    if flags & ALL == ALL {
        s.push('A');
    } else {
        for (bit, c) in [
            (GENERIC, 'g'),
            (STRING, '$'),
            (LIST, 'l'),
            (SET, 's'),
            (HASH, 'h'),
            (ZSET, 'z'),
            (EXPIRED, 'x'),
            (EVICTED, 'e'),
            (STREAM, 't'),
            (MODULE, 'd'),
            (NEW, 'n'),
        ] {
            if flags & bit != 0 {
                s.push(c);
            }
        }
    }
    for (bit, c) in [(KEYSPACE, 'K'), (KEYEVENT, 'E'), (KEY_MISS, 'm')] {
        if flags & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// The error CONFIG SET gives for a letter [`parse`] refuses.
pub const INVALID: &str = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.";

/// The server's `notify-keyspace-events`.
#[derive(Debug, Default)]
pub struct KeyspaceEvents(AtomicU32);

impl KeyspaceEvents {
    /// The flags; 0 (one relaxed load) when notifications are off.
    #[inline]
    pub fn flags(&self) -> u32 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, flags: u32) {
        self.0.store(flags, Ordering::Relaxed);
    }

    /// True when events of `class` go to at least one kind of channel.
    #[inline]
    pub fn wants(&self, class: u32) -> bool {
        let f = self.flags();
        f & class != 0 && f & (KEYSPACE | KEYEVENT) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_round_trip_as_redis_prints_them() {
        let show = |s: &[u8]| parse(s).map(format);
        assert_eq!(show(b"Kg$lshzxetdnmE").as_deref(), Some("AKEm"));
        assert_eq!(show(b"KA").as_deref(), Some("AK"));
        assert_eq!(show(b"Ex").as_deref(), Some("xE"));
        assert_eq!(show(b"Kn$").as_deref(), Some("$nK"));
        assert_eq!(show(b"").as_deref(), Some(""));
        assert_eq!(show(b"KQ"), None);
    }

    #[test]
    fn events_need_a_class_and_a_channel_kind() {
        let e = KeyspaceEvents::default();
        assert!(!e.wants(STRING));
        e.set(parse(b"K").unwrap());
        assert!(!e.wants(STRING));
        e.set(parse(b"K$").unwrap());
        assert!(e.wants(STRING) && !e.wants(GENERIC));
    }
}
