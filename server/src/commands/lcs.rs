//! LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]: the longest common subsequence
//! of two strings, Redis 7.0's dynamic programme and walk back through its table, so the
//! string and the ranges IDX reports are the ones Redis picks among equally long answers.
//!
//! The table takes 4 bytes per pair of positions; like Redis, a table larger than
//! proto-max-bulk-len is refused before anything is allocated. The two values are copied out
//! of the engine first, so the engine's locks are not held while the table is filled.

use super::{eq_ignore_case, not_integer, parse_i64, syntax_error, Ctx};
use crate::protocol::reply;

#[derive(Default)]
struct Options {
    len: bool,
    idx: bool,
    with_match_len: bool,
    min_match_len: u64,
}

/// Parses the options after the two keys; `None` once an error has been replied.
fn parse(ctx: &mut Ctx<'_>, args: &[&[u8]]) -> Option<Options> {
    let mut o = Options::default();
    let mut j = 3;
    while j < args.len() {
        let opt = args[j];
        let more = j + 1 < args.len();
        if eq_ignore_case(opt, "idx") {
            o.idx = true;
        } else if eq_ignore_case(opt, "len") {
            o.len = true;
        } else if eq_ignore_case(opt, "withmatchlen") {
            o.with_match_len = true;
        } else if eq_ignore_case(opt, "minmatchlen") && more {
            let Some(n) = parse_i64(args[j + 1]) else {
                not_integer(ctx.out);
                return None;
            };
            o.min_match_len = n.max(0) as u64;
            j += 1;
        } else {
            syntax_error(ctx.out);
            return None;
        }
        j += 1;
    }
    if o.idx && o.len {
        reply::err(
            ctx.out,
            "If you want both the length and indexes, please just use IDX.",
        );
        return None;
    }
    Some(o)
}

pub fn lcs(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    let Some(o) = parse(ctx, args) else {
        return;
    };
    let (a, b, hits) = ctx.db().get_many_with(&args[1..3], |e| {
        let copy = |i: usize| e[i].map_or_else(Vec::new, |e| e.value.to_vec());
        (copy(0), copy(1), [e[0].is_some(), e[1].is_some()])
    });
    hits.into_iter().for_each(|h| ctx.hit(h));
    let cells = (a.len() as u64 + 1) * (b.len() as u64 + 1);
    if cells.saturating_mul(4) > ctx.server.proto_max_bulk_len() {
        return reply::err(
            ctx.out,
            "Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        );
    }
    let mut table: Vec<u32> = Vec::new();
    if table.try_reserve_exact(cells as usize).is_err() {
        return reply::err(
            ctx.out,
            "Insufficient memory, failed allocating transient memory for LCS",
        );
    }
    fill(&mut table, &a, &b);
    let total = table[table.len() - 1];
    if o.len {
        return reply::integer(ctx.out, i64::from(total));
    }
    let walk = walk_back(&table, &a, &b, &o);
    if o.idx {
        reply::map_len(ctx.out, ctx.client.resp, 2);
        reply::bulk(ctx.out, b"matches");
        reply::array_len(ctx.out, walk.ranges);
        ctx.out.extend_from_slice(&walk.ranges_reply);
        reply::bulk(ctx.out, b"len");
        reply::integer(ctx.out, i64::from(total));
    } else {
        reply::bulk(ctx.out, &walk.common);
    }
}

/// The table: `t[i * (b.len() + 1) + j]` is the LCS length of `a[..i]` and `b[..j]`.
fn fill(t: &mut Vec<u32>, a: &[u8], b: &[u8]) {
    let w = b.len() + 1;
    t.resize(w, 0);
    for (i, &ca) in a.iter().enumerate() {
        let row = (i + 1) * w;
        t.push(0);
        for (j, &cb) in b.iter().enumerate() {
            let v = if ca == cb {
                t[row - w + j] + 1
            } else {
                t[row - w + j + 1].max(t[row + j])
            };
            t.push(v);
        }
    }
}

/// What the walk back through the table found.
struct Walk {
    /// The common subsequence.
    common: Vec<u8>,
    /// IDX's ranges, already encoded, and how many.
    ranges_reply: Vec<u8>,
    ranges: usize,
}

/// Redis's walk from the table's last cell: on a match, take the byte and extend the current
/// range backwards; otherwise step towards the larger neighbour (`j` on a tie) and close the
/// range. A range is emitted when closed, when it reaches the start of either string, and only
/// when at least MINMATCHLEN long.
fn walk_back(t: &[u32], a: &[u8], b: &[u8], o: &Options) -> Walk {
    let w = b.len() + 1;
    let at = |i: usize, j: usize| t[i * w + j];
    let mut idx = at(a.len(), b.len()) as usize;
    let mut common = vec![0u8; idx];
    let mut out = Walk {
        common: Vec::new(),
        ranges_reply: Vec::new(),
        ranges: 0,
    };
    // `a_start == a.len()` means no range is open.
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (a.len(), 0, 0, 0);
    let (mut i, mut j) = (a.len(), b.len());
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            common[idx - 1] = a[i - 1];
            if a_start == a.len() {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if at(i - 1, j) > at(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != a.len() {
                emit = true;
            }
        }
        if emit {
            let match_len = (a_end - a_start + 1) as u64;
            if o.idx && (o.min_match_len == 0 || match_len >= o.min_match_len) {
                let r = &mut out.ranges_reply;
                reply::array_len(r, 2 + usize::from(o.with_match_len));
                reply::array_len(r, 2);
                reply::integer(r, a_start as i64);
                reply::integer(r, a_end as i64);
                reply::array_len(r, 2);
                reply::integer(r, b_start as i64);
                reply::integer(r, b_end as i64);
                if o.with_match_len {
                    reply::integer(r, match_len as i64);
                }
                out.ranges += 1;
            }
            a_start = a.len();
        }
    }
    out.common = common;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcs_of(a: &[u8], b: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        fill(&mut t, a, b);
        walk_back(&t, a, b, &Options::default()).common
    }

    #[test]
    fn finds_the_common_subsequence() {
        assert_eq!(lcs_of(b"ohmytext", b"mynewtext"), b"mytext");
        assert_eq!(lcs_of(b"", b"abc"), b"");
        assert_eq!(lcs_of(b"abc", b"abc"), b"abc");
        assert_eq!(lcs_of(b"abc", b"xyz"), b"");
    }
}
