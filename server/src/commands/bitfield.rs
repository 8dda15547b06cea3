//! BITFIELD and BITFIELD_RO: integer fields of any width (i1..i64, u1..u63) at any bit
//! offset of a string, read, set and incremented with Redis's OVERFLOW rules.
//!
//! Every operation is parsed (and any error answered) before the key is touched, as Redis
//! does. A command with a SET or INCRBY grows the value to its farthest written bit first
//! (zero-filled, even when every write then fails under OVERFLOW FAIL) and writes the result
//! once, atomically, through [`flin_engine::Engine::update`].

use flin_engine::{Update, VALUE_LEN_MAX};

use super::bits::bit_offset;
use super::{c_str, eq_ignore_case, parse_i64, syntax_error, Ctx};
use crate::bitmap::{self, FieldType, Overflow};
use crate::protocol::{parse::string_to_i64, reply};

#[derive(Clone, Copy)]
enum Op {
    Get,
    Set(i64),
    IncrBy(i64),
}

struct FieldOp {
    op: Op,
    ty: FieldType,
    offset: u64,
    overflow: Overflow,
}

const TYPE_ERROR: &str =
    "Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

/// `i<bits>` or `u<bits>`, as `getBitfieldTypeFromArgument` (the number ends at a NUL).
fn field_type(arg: &[u8]) -> Option<FieldType> {
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return None,
    };
    let bits = string_to_i64(c_str(&arg[1..], usize::MAX))?;
    let max = if signed { 64 } else { 63 };
    (1..=max).contains(&bits).then_some(FieldType {
        signed,
        bits: bits as u32,
    })
}

/// Parses the operations; `None` once an error has been replied.
fn parse_ops(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Option<Vec<FieldOp>> {
    let mut ops = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let more = args.len() - j - 1;
        let sub = args[j];
        let kind = if eq_ignore_case(sub, "get") && more >= 2 {
            0
        } else if eq_ignore_case(sub, "set") && more >= 3 {
            1
        } else if eq_ignore_case(sub, "incrby") && more >= 3 {
            2
        } else if eq_ignore_case(sub, "overflow") && more >= 1 {
            let name = args[j + 1];
            overflow = if eq_ignore_case(name, "wrap") {
                Overflow::Wrap
            } else if eq_ignore_case(name, "sat") {
                Overflow::Sat
            } else if eq_ignore_case(name, "fail") {
                Overflow::Fail
            } else {
                reply::err(ctx.out, "Invalid OVERFLOW type specified");
                return None;
            };
            j += 2;
            continue;
        } else {
            syntax_error(ctx.out);
            return None;
        };
        let Some(ty) = field_type(args[j + 1]) else {
            reply::err(ctx.out, TYPE_ERROR);
            return None;
        };
        let offset = bit_offset(ctx, args[j + 2], Some(ty.bits))?;
        let op = if kind == 0 {
            Op::Get
        } else {
            let Some(v) = parse_i64(args[j + 3]) else {
                super::not_integer(ctx.out);
                return None;
            };
            if kind == 1 {
                Op::Set(v)
            } else {
                Op::IncrBy(v)
            }
        };
        ops.push(FieldOp {
            op,
            ty,
            offset,
            overflow,
        });
        j += if kind == 0 { 3 } else { 4 };
    }
    Some(ops)
}

pub fn bitfield(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    generic(ctx, args, false);
}

pub fn bitfield_ro(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    generic(ctx, args, true);
}

fn generic(ctx: &mut Ctx<'_>, args: &[&[u8]], read_only: bool) {
    let Some(ops) = parse_ops(ctx, args) else {
        return;
    };
    let highest_write = ops
        .iter()
        .filter(|o| !matches!(o.op, Op::Get))
        .map(|o| o.offset + u64::from(o.ty.bits) - 1)
        .max();
    let Some(highest) = highest_write else {
        let db = ctx.db();
        let out = &mut *ctx.out;
        let found = db.get_with(args[1], |e| {
            let s = e.map_or(&[][..], |e| e.value);
            reply::array_len(out, ops.len());
            for o in &ops {
                reply::integer(out, bitmap::get_field(s, o.offset, o.ty));
            }
            e.is_some()
        });
        ctx.hit(found);
        return;
    };
    if read_only {
        return reply::err(ctx.out, "BITFIELD_RO only supports the GET subcommand");
    }
    let need = (highest >> 3) as usize + 1;
    if need > VALUE_LEN_MAX {
        // proto-max-bulk-len was raised past what the engine stores: refused before the
        // value is built.
        return super::strings::string_too_long(ctx.out);
    }
    let mark = ctx.out.len();
    let db = ctx.db();
    let (out, resp) = (&mut *ctx.out, ctx.client.resp);
    let mut buf: Vec<u8> = Vec::new();
    let buf_ref = &mut buf;
    let res = db.update(args[1], |cur| {
        let old = cur.map_or(&[][..], |e| e.value);
        buf_ref.reserve_exact(old.len().max(need));
        buf_ref.extend_from_slice(old);
        if buf_ref.len() < need {
            buf_ref.resize(need, 0);
        }
        reply::array_len(out, ops.len());
        for o in &ops {
            run(buf_ref, o, out, resp);
        }
        if cur.is_some() && buf_ref[..] == *old {
            return (Update::Keep, ());
        }
        let value: &[u8] = buf_ref;
        (
            Update::Put {
                value,
                expire_at_ms: cur.map_or(0, |e| e.expire_at_ms),
            },
            (),
        )
    });
    match res {
        Ok(((), token)) => ctx.wrote(token),
        Err(e) => {
            ctx.out.truncate(mark);
            ctx.write_error(&e);
        }
    }
}

/// One operation on the grown value, with its reply.
fn run(s: &mut [u8], o: &FieldOp, out: &mut Vec<u8>, resp: u8) {
    let old = bitmap::get_field(s, o.offset, o.ty);
    let (stored, replied) = match o.op {
        Op::Get => return reply::integer(out, old),
        Op::Set(v) => (bitmap::add_field(v, 0, o.ty, o.overflow), old),
        Op::IncrBy(by) => {
            let new = bitmap::add_field(old, by, o.ty, o.overflow);
            (new, new.unwrap_or(0))
        }
    };
    match stored {
        Some(v) => {
            reply::integer(out, replied);
            bitmap::set_field(s, o.offset, o.ty, v);
        }
        None => reply::null(out, resp),
    }
}
