//! Whether two answers to one step count as the same under its [`Mode`], and the
//! [`Difference`] reported when they do not.

use super::cases::{Mode, Step};
use super::conn::Answer;
use super::value::{head_reply, sorted_reply, Value};

/// Whether two single replies count as the same under `mode`.
pub fn same_reply(mode: Mode, r: &[u8], f: &[u8]) -> bool {
    match mode {
        Mode::Exact | Mode::ScanAll => r == f,
        Mode::Skip => true,
        Mode::Type => r.first() == f.first(),
        Mode::Shape => match (Value::parse(r), Value::parse(f)) {
            (Some(a), Some(b)) => a.same_shape(&b),
            _ => r == f,
        },
        Mode::Sorted => sorted_reply(r) == sorted_reply(f),
        Mode::Head(n) => head_reply(r, n) == head_reply(f, n),
        Mode::Keyspace => match (Value::parse(r), Value::parse(f)) {
            (Some(Value::Bulk(Some(a))), Some(Value::Bulk(Some(b)))) => {
                mask_avg_ttl(&a) == mask_avg_ttl(&b)
            }
            _ => r == f,
        },
        Mode::Approx(tolerance) => match (Value::parse(r), Value::parse(f)) {
            (Some(Value::Integer(a)), Some(Value::Integer(b))) => {
                a.abs_diff(b) <= tolerance.unsigned_abs()
            }
            _ => r == f,
        },
    }
}

/// `text` with the digits after each `avg_ttl=` replaced by one `#`.
fn mask_avg_ttl(text: &[u8]) -> Vec<u8> {
    const FIELD: &[u8] = b"avg_ttl=";
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(FIELD) {
            out.extend_from_slice(FIELD);
            i += FIELD.len();
            let digits = text[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > 0 {
                out.push(b'#');
            }
            i += digits;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// Whether two answers count as the same under `mode`: the mode applies when each server
/// gave one reply; otherwise (no reply, several) every reply must be identical. How the
/// step ended must match too.
pub fn same(mode: Mode, redis: &Answer, flin: &Answer) -> bool {
    if redis.end != flin.end {
        return false;
    }
    match (redis.replies.as_slice(), flin.replies.as_slice()) {
        ([r], [f]) => same_reply(mode, r, f),
        (r, f) => r == f,
    }
}

/// One step whose replies differ.
#[derive(Debug, Clone)]
pub struct Difference {
    /// The step's line in its case file.
    pub line: usize,
    /// The step as written.
    pub text: String,
    /// What redis-server answered, printable.
    pub redis: String,
    /// What flin answered, printable.
    pub flin: String,
}

/// Payload bytes shown per reply in a difference.
pub const SHOWN_MAX_BYTES: usize = 600;

/// The difference between the answers redis (`r`) and flin (`f`) gave to `step`, or `None` when they
/// count as the same. A step that must close the connection differs unless both closed it.
pub fn difference(step: &Step, r: &Answer, f: &Answer) -> Option<Difference> {
    let mut differ = !same(step.mode, r, f);
    let (mut r_text, mut f_text) = (r.describe(SHOWN_MAX_BYTES), f.describe(SHOWN_MAX_BYTES));
    if let ([rb], [fb], Mode::Exact, true) = (
        r.replies.as_slice(),
        f.replies.as_slice(),
        step.mode,
        differ,
    ) {
        if let Some(at) = rb.iter().zip(fb.iter()).position(|(a, b)| a != b) {
            r_text.push_str(&format!("  [first difference at byte {at}]"));
        }
    }
    if step.closes && !(r.closed() && f.closed()) {
        differ = true;
        let note = "  [the case expects the connection to close after one reply]";
        r_text.push_str(note);
        f_text.push_str(note);
    }
    differ.then(|| Difference {
        line: step.line,
        text: step.text.clone(),
        redis: r_text,
        flin: f_text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compat::{End, Outcome};

    fn one(reply: &[u8]) -> Answer {
        Answer {
            replies: vec![reply.to_vec()],
            end: End::Synced,
        }
    }

    #[test]
    fn modes_compare_what_they_say() {
        let r = one;
        assert!(same(Mode::Exact, &r(b"+OK\r\n"), &r(b"+OK\r\n")));
        assert!(!same(Mode::Exact, &r(b"+OK\r\n"), &r(b"+Ok\r\n")));
        assert!(same(Mode::Type, &r(b":1\r\n"), &r(b":7\r\n")));
        assert!(!same(Mode::Type, &r(b":1\r\n"), &r(b"$1\r\n1\r\n")));
        assert!(same(Mode::Skip, &r(b":1\r\n"), &r(b"$1\r\n1\r\n")));
        let timed_out = Answer {
            replies: Vec::new(),
            end: End::Lost(Outcome::Timeout(Vec::new())),
        };
        assert!(!same(Mode::Skip, &r(b":1\r\n"), &timed_out));
        let ab = b"*2\r\n$1\r\na\r\n$1\r\nb\r\n";
        let ba = b"*2\r\n$1\r\nb\r\n$1\r\na\r\n";
        assert!(same(Mode::Sorted, &r(ab), &r(ba)));
        assert!(!same(Mode::Exact, &r(ab), &r(ba)));
        let scan_ab = b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n";
        let scan_ba = b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\nb\r\n$1\r\na\r\n";
        assert!(same(Mode::Sorted, &r(scan_ab), &r(scan_ba)));
        let abc = b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n";
        assert!(!same(Mode::Sorted, &r(ab), &r(abc)));
        assert!(same(Mode::Approx(10), &r(b":100\r\n"), &r(b":95\r\n")));
        let ks = |s: &str| r(format!("${}\r\n{s}\r\n", s.len()).as_bytes());
        let a = ks("# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=0\r\n");
        let b = ks("# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=99812\r\n");
        let c = ks("# Keyspace\r\ndb0:keys=2,expires=0,avg_ttl=0\r\n");
        assert!(same(Mode::Keyspace, &a, &b));
        assert!(!same(Mode::Keyspace, &a, &c));
        assert!(!same(
            Mode::Keyspace,
            &a,
            &ks("# Keyspace\r\ndb0:keys=2,expires=1,avg_ttl=\r\n")
        ));
        assert!(!same(Mode::Approx(10), &r(b":100\r\n"), &r(b":80\r\n")));
        assert!(!same(
            Mode::Approx(10),
            &r(b":100\r\n"),
            &r(b"$3\r\n100\r\n")
        ));
        let info_a = b"*1\r\n*3\r\n$3\r\nget\r\n:2\r\n*1\r\n+x\r\n";
        let info_b = b"*1\r\n*3\r\n$3\r\nget\r\n:2\r\n*0\r\n";
        let info_c = b"*1\r\n*3\r\n$3\r\nget\r\n:3\r\n*0\r\n";
        assert!(same(Mode::Head(2), &r(info_a), &r(info_b)));
        assert!(!same(Mode::Head(3), &r(info_a), &r(info_b)));
        assert!(!same(Mode::Head(2), &r(info_a), &r(info_c)));
        // Reply counts and endings are compared exactly whatever the mode.
        let two = Answer {
            replies: vec![b":1\r\n".to_vec(), b":1\r\n".to_vec()],
            end: End::Synced,
        };
        assert!(!same(Mode::Skip, &r(b":1\r\n"), &two));
        let mut closed = r(b"+OK\r\n");
        closed.end = End::Lost(Outcome::Closed(Vec::new()));
        assert!(closed.closed());
        assert!(!same(Mode::Exact, &r(b"+OK\r\n"), &closed));
        assert!(same(Mode::Exact, &closed, &closed.clone()));
    }
}
