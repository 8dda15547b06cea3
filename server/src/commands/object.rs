//! OBJECT (ENCODING, FREQ, IDLETIME, REFCOUNT, HELP), and the model of how Redis would hold a
//! string that OBJECT and MEMORY USAGE answer from.
//!
//! flin stores bytes, not Redis objects, so the encoding is the one Redis gives a value that
//! SET stored: `int` for a canonical 64-bit integer of up to 20 characters, `embstr` up to 44
//! bytes, `raw` beyond (a value Redis built by APPEND or SETRANGE would be `raw` there, even
//! when short). Sizes are what Redis's jemalloc would allocate for it.
//!
//! IDLETIME answers the seconds since the key was last read or written, from the access clock
//! the engine keeps in each index slot (24 bits of seconds, as Redis's LRU clock; every key
//! starts at 0 when the store opens). flin keeps no access counter: FREQ answers Redis's error
//! for a server whose maxmemory-policy is not LFU, which is flin's case (noeviction). OBJECT
//! never counts as an access (Redis's `LOOKUP_NOTOUCH`).

use super::{eq_subcommand, help, sub_arity_ok, unknown_subcommand, Ctx};
use crate::protocol::parse::string_to_i64;
use crate::protocol::reply;

/// Redis's `OBJ_ENCODING_EMBSTR_SIZE_LIMIT`.
const EMBSTR_LEN_MAX: usize = 44;
/// Integers below this are Redis's shared objects (`OBJ_SHARED_INTEGERS`).
const SHARED_INTEGERS: i64 = 10_000;
/// `sizeof(robj)`.
const ROBJ_BYTES: u64 = 16;
/// `sizeof(dictEntry)`.
const DICT_ENTRY_BYTES: u64 = 24;
/// Redis's `PROTO_MBULK_BIG_ARG`: larger arguments become values without a copy, keeping the
/// query buffer's room for CRLF.
const BIG_ARG_BYTES: usize = 32 * 1024;

/// How Redis holds a string value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Encoding {
    Int(i64),
    Embstr,
    Raw,
}

impl Encoding {
    pub(super) fn of(value: &[u8]) -> Encoding {
        if value.len() <= 20 {
            if let Some(v) = string_to_i64(value) {
                return Encoding::Int(v);
            }
        }
        if value.len() <= EMBSTR_LEN_MAX {
            Encoding::Embstr
        } else {
            Encoding::Raw
        }
    }

    fn name(self) -> &'static str {
        match self {
            Encoding::Int(_) => "int",
            Encoding::Embstr => "embstr",
            Encoding::Raw => "raw",
        }
    }
}

/// The size class jemalloc serves a request of `n` bytes from: 8, then multiples of 16 up to
/// 128, then four classes per doubling.
pub(super) fn jemalloc_size(n: u64) -> u64 {
    if n <= 8 {
        return 8;
    }
    if n <= 128 {
        return n.div_ceil(16) * 16;
    }
    let step = 1u64 << (63 - (n - 1).leading_zeros() - 2);
    n.div_ceil(step) * step
}

/// The header of an sds string of `len` bytes (`sdsReqType`); `sds5` only for keys.
fn sds_header(len: usize, allow_sds5: bool) -> u64 {
    match len {
        1..=31 if allow_sds5 => 1,
        0..=255 => 3,
        256..=65_535 => 5,
        _ if len as u64 <= u64::from(u32::MAX) => 9,
        _ => 17,
    }
}

/// MEMORY USAGE of a key and its value, as Redis 7.0 counts it: the value object, the key's
/// sds copy and the dictionary entry.
pub(super) fn usage_bytes(key: &[u8], value: &[u8]) -> u64 {
    let value_bytes = match Encoding::of(value) {
        Encoding::Int(_) => ROBJ_BYTES,
        Encoding::Embstr => jemalloc_size(ROBJ_BYTES + 3 + value.len() as u64 + 1),
        Encoding::Raw if value.len() >= BIG_ARG_BYTES => {
            let len = value.len() as u64;
            ROBJ_BYTES + jemalloc_size(sds_header(value.len() + 2, false) + len + 3)
        }
        Encoding::Raw => {
            let len = value.len() as u64;
            ROBJ_BYTES + jemalloc_size(sds_header(value.len(), false) + len + 1)
        }
    };
    let key_bytes = jemalloc_size(sds_header(key.len(), true) + key.len() as u64 + 1);
    value_bytes + key_bytes + DICT_ENTRY_BYTES
}

const OBJECT_HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

const FREQ_ERROR: &str = "An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";

pub fn object(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let sub = args[1];
    let name = if eq_subcommand(sub, "help") {
        if sub_arity_ok(ctx.out, args, 2, "object|help") {
            help(ctx.out, OBJECT_HELP);
        }
        return;
    } else if eq_subcommand(sub, "encoding") {
        "object|encoding"
    } else if eq_subcommand(sub, "freq") {
        "object|freq"
    } else if eq_subcommand(sub, "idletime") {
        "object|idletime"
    } else if eq_subcommand(sub, "refcount") {
        "object|refcount"
    } else {
        return unknown_subcommand(ctx.out, sub, "object");
    };
    if !sub_arity_ok(ctx.out, args, 3, name) {
        return;
    }
    let db = ctx.db_no_touch();
    if name == "object|idletime" {
        return match db.idle_s(args[2]) {
            Some(s) => reply::integer(ctx.out, s as i64),
            None => reply::null(ctx.out, ctx.client.resp),
        };
    }
    let encoding = db.get_with(args[2], |e| e.map(|e| Encoding::of(e.value)));
    let Some(encoding) = encoding else {
        return reply::null(ctx.out, ctx.client.resp);
    };
    match name {
        "object|encoding" => reply::bulk(ctx.out, encoding.name().as_bytes()),
        "object|freq" => reply::err(ctx.out, FREQ_ERROR),
        _ => {
            let shared = matches!(encoding, Encoding::Int(v) if (0..SHARED_INTEGERS).contains(&v));
            reply::integer(ctx.out, if shared { i64::from(i32::MAX) } else { 1 });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jemalloc_classes() {
        let classes: Vec<u64> = [
            1, 8, 9, 16, 17, 25, 49, 128, 129, 160, 161, 257, 14_000, 16_385,
        ]
        .iter()
        .map(|&n| jemalloc_size(n))
        .collect();
        assert_eq!(
            classes,
            [8, 8, 16, 16, 32, 32, 64, 128, 160, 160, 192, 320, 14_336, 20_480]
        );
    }

    #[test]
    fn encodings_as_set_makes_them() {
        assert_eq!(Encoding::of(b"123"), Encoding::Int(123));
        assert_eq!(
            Encoding::of(b"-9223372036854775808"),
            Encoding::Int(i64::MIN)
        );
        assert_eq!(Encoding::of(b"-0"), Encoding::Embstr);
        assert_eq!(Encoding::of(b"007"), Encoding::Embstr);
        assert_eq!(Encoding::of(&[b'a'; 44]), Encoding::Embstr);
        assert_eq!(Encoding::of(&[b'a'; 45]), Encoding::Raw);
    }

    #[test]
    fn usage_matches_redis_7_0() {
        // MEMORY USAGE on redis-server 7.0.15 after SET.
        assert_eq!(usage_bytes(b"s", b"hello"), 64);
        assert_eq!(usage_bytes(b"i", b"123"), 48);
        assert_eq!(usage_bytes(b"r", &[b'a'; 44]), 96);
        assert_eq!(usage_bytes(b"r", &[b'a'; 45]), 112);
    }
}
