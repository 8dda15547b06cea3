//! Bitmap commands: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP (BITFIELD is in `bitfield`).
//! The bit arithmetic is in [`crate::bitmap`]; this file parses arguments in Redis 7.0's
//! order (so the same error wins when several are wrong) and talks to the engine.
//!
//! Reads count bits in place, under the engine's read lock, without copying the value.
//! Writes build the new value once from the current one inside [`flin_engine::Engine::update`]
//! and write it only when it changed.

use flin_engine::{Update, VALUE_LEN_MAX};

use super::{eq_ignore_case, not_integer, parse_i64, syntax_error, Ctx};
use crate::bitmap::{self, BitOp};
use crate::protocol::reply;

const BIT_OFFSET_ERROR: &str = "bit offset is not an integer or out of range";

/// Redis's `getBitOffsetFromArgument`: a bit offset whose byte is below proto-max-bulk-len.
/// With `hash_bits`, `#n` means `n * bits` (BITFIELD).
pub(super) fn bit_offset(ctx: &mut Ctx<'_>, arg: &[u8], hash_bits: Option<u32>) -> Option<u64> {
    let (digits, times) = match (arg.first(), hash_bits) {
        (Some(b'#'), Some(bits)) => (&arg[1..], i64::from(bits)),
        _ => (arg, 1),
    };
    // Like Redis's C arithmetic, `#n * bits` wraps rather than failing.
    let offset = parse_i64(digits).map(|n| n.wrapping_mul(times));
    let max_bytes = ctx.server.proto_max_bulk_len();
    match offset {
        Some(n) if n >= 0 && ((n >> 3) as u64) < max_bytes => Some(n as u64),
        _ => {
            reply::err(ctx.out, BIT_OFFSET_ERROR);
            None
        }
    }
}

/// SETBIT key offset 0|1: the old bit. A value shorter than the offset grows, zero-filled.
pub fn setbit(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let Some(offset) = bit_offset(ctx, args[2], None) else {
        return;
    };
    let on = match parse_i64(args[3]) {
        Some(v @ (0 | 1)) => v as u8,
        _ => return reply::err(ctx.out, "bit is not an integer or out of range"),
    };
    let byte = (offset >> 3) as usize;
    if byte >= VALUE_LEN_MAX {
        // proto-max-bulk-len was raised past what the engine stores: refused before the
        // value is built.
        return super::strings::string_too_long(ctx.out);
    }
    let mut buf: Vec<u8> = Vec::new();
    let buf_ref = &mut buf;
    let res = ctx.db().update(args[1], |cur| {
        let old = cur.map_or(&[][..], |e| e.value);
        let was = bitmap::get_bit(old, offset);
        if cur.is_some() && byte < old.len() && was == on {
            return (Update::Keep, was);
        }
        buf_ref.reserve_exact(old.len().max(byte + 1));
        buf_ref.extend_from_slice(old);
        if buf_ref.len() <= byte {
            buf_ref.resize(byte + 1, 0);
        }
        bitmap::set_bit(buf_ref, offset, on);
        let value: &[u8] = buf_ref;
        (
            Update::Put {
                value,
                expire_at_ms: cur.map_or(0, |e| e.expire_at_ms),
            },
            was,
        )
    });
    match res {
        Ok((was, token)) => {
            ctx.wrote(token);
            reply::integer(ctx.out, i64::from(was));
        }
        Err(e) => ctx.write_error(&e),
    }
}

/// GETBIT key offset: 0 past the end or for a missing key.
pub fn getbit(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let Some(offset) = bit_offset(ctx, args[2], None) else {
        return;
    };
    let found = ctx
        .db()
        .get_with(args[1], |e| e.map(|e| bitmap::get_bit(e.value, offset)));
    ctx.hit(found.is_some());
    reply::integer(ctx.out, i64::from(found.unwrap_or(0)));
}

/// BIT or BYTE, the unit of a BITCOUNT / BITPOS range; `None` for anything else.
fn unit_is_bit(arg: &[u8]) -> Option<bool> {
    if eq_ignore_case(arg, "bit") {
        Some(true)
    } else if eq_ignore_case(arg, "byte") {
        Some(false)
    } else {
        None
    }
}

/// BITCOUNT key [start end [BYTE|BIT]]. As Redis 7.0, a missing key answers 0 before the
/// range is parsed, and a range of two negative indexes in the wrong order answers 0 before
/// the unit is.
pub fn bitcount(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let db = ctx.db();
    let out = &mut *ctx.out;
    let found = db.get_with(args[1], |e| {
        let Some(e) = e else {
            reply::integer(out, 0);
            return false;
        };
        let s = e.value;
        let (start, end, in_bits) = match args.len() {
            2 => (0, -1, false),
            4 | 5 => {
                let (Some(start), Some(end)) = (parse_i64(args[2]), parse_i64(args[3])) else {
                    not_integer(out);
                    return true;
                };
                if start < 0 && end < 0 && start > end {
                    reply::integer(out, 0);
                    return true;
                }
                let in_bits = match args.get(4) {
                    None => false,
                    Some(u) => match unit_is_bit(u) {
                        Some(b) => b,
                        None => {
                            syntax_error(out);
                            return true;
                        }
                    },
                };
                (start, end, in_bits)
            }
            _ => {
                syntax_error(out);
                return true;
            }
        };
        let n = match bitmap::resolve_range(start, end, s.len(), in_bits) {
            Some((first, last)) => bitmap::count_range(s, first, last),
            None => 0,
        };
        reply::integer(out, n as i64);
        true
    });
    ctx.hit(found);
}

/// BITPOS key 0|1 [start [end [BYTE|BIT]]]. Looking for a 0 without an end, the string
/// counts as padded with zeros: the answer is then the first bit past it.
pub fn bitpos(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let bit = match parse_i64(args[2]) {
        Some(b @ (0 | 1)) => b as u8,
        Some(_) => return reply::err(ctx.out, "The bit argument must be 1 or 0."),
        None => return not_integer(ctx.out),
    };
    let db = ctx.db();
    let out = &mut *ctx.out;
    let found = db.get_with(args[1], |e| {
        let Some(e) = e else {
            reply::integer(out, if bit == 1 { -1 } else { 0 });
            return false;
        };
        let s = e.value;
        let mut in_bits = false;
        let (start, end) = match args.len() {
            3 => (0, -1),
            4..=6 => {
                let Some(start) = parse_i64(args[3]) else {
                    not_integer(out);
                    return true;
                };
                if let Some(u) = args.get(5) {
                    match unit_is_bit(u) {
                        Some(b) => in_bits = b,
                        None => {
                            syntax_error(out);
                            return true;
                        }
                    }
                }
                let end = match args.get(4) {
                    None => -1,
                    Some(a) => match parse_i64(a) {
                        Some(end) => end,
                        None => {
                            not_integer(out);
                            return true;
                        }
                    },
                };
                (start, end)
            }
            _ => {
                syntax_error(out);
                return true;
            }
        };
        let end_given = args.len() >= 5;
        let pos = match bitmap::resolve_range(start, end, s.len(), in_bits) {
            None => -1,
            Some((first, last)) => match bitmap::find_in_range(s, bit, first, last) {
                Some(p) => p as i64,
                None if bit == 0 && !end_given => (s.len() as i64) << 3,
                None => -1,
            },
        };
        reply::integer(out, pos);
        true
    });
    ctx.hit(found);
}

/// BITOP AND|OR|XOR|NOT destkey key [key ...]: the destination's new length. The sources
/// are read and the destination written in one atomic step; an empty result deletes it.
pub fn bitop(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let name = args[1];
    let op = if eq_ignore_case(name, "and") {
        BitOp::And
    } else if eq_ignore_case(name, "or") {
        BitOp::Or
    } else if eq_ignore_case(name, "xor") {
        BitOp::Xor
    } else if eq_ignore_case(name, "not") {
        BitOp::Not
    } else {
        return syntax_error(ctx.out);
    };
    if op == BitOp::Not && args.len() != 4 {
        return reply::err(
            ctx.out,
            "BITOP NOT must be called with a single source key.",
        );
    }
    // The destination last: when it is also a source, its decision is the one applied.
    let mut keys: Vec<&[u8]> = args[3..].to_vec();
    keys.push(args[2]);
    let sources = keys.len() - 1;
    let mut result: Vec<u8> = Vec::new();
    let result_ref = &mut result;
    let res = ctx.db().update_many(&keys, |cur| {
        let values: Vec<&[u8]> = cur[..sources]
            .iter()
            .map(|e| e.map_or(&[][..], |e| e.value))
            .collect();
        bitmap::bitop(op, &values, result_ref);
        let mut decisions = vec![Update::Keep; keys.len()];
        decisions[sources] = if result_ref.is_empty() {
            Update::Delete
        } else {
            let value: &[u8] = result_ref;
            Update::Put {
                value,
                expire_at_ms: 0,
            }
        };
        (decisions, ())
    });
    match res {
        Ok(((), token)) => {
            ctx.wrote(token);
            reply::integer(ctx.out, result.len() as i64);
        }
        Err(e) => ctx.write_error(&e),
    }
}
