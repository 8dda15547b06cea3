//! The RESP2 request parser on arbitrary bytes, whole and in arbitrary chunks fed as the
//! connection feeds them: it never panics, and its heap stays within a multiple of the bytes
//! it was given whatever lengths they declare; every frame
//! consumes bytes within its input; a chunked parse gives the same commands, the same error
//! and the same consumed count as a whole one; no argument breaks the limits in force; and
//! every command, re-encoded as a RESP multibulk, parses back to the same arguments.

#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use flin_server::protocol::parse::{
    ARRAY_LEN_MAX, INLINE_LEN_MAX, UNAUTH_ARRAY_LEN_MAX, UNAUTH_BULK_LEN_MAX,
};
use flin_server::protocol::{Bump, Frame, Limits, Parser, ProtocolError};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: flin_fuzz::alloc::CappedAlloc = flin_fuzz::alloc::CappedAlloc;

/// Heap the two parses (and this harness's copies of their results) may hold at once: a fixed
/// allowance plus a multiple of the input. A parser that sized anything from a declared length
/// (`*1048576`, `$536870912`) would exceed it by orders of magnitude.
const HEAP_FIXED_BYTES: usize = 64 * 1024;
const HEAP_PER_INPUT_BYTE: usize = 64;

/// Chunks per input at most; the bytes after the last cut form one more.
const CHUNKS_MAX: usize = 64;

/// The request bytes are the input's tail, verbatim, so seeds and crash files read as RESP.
#[derive(Debug)]
struct Input {
    authenticated: bool,
    /// `Some(n)`: `--proto-max-bulk-len n` (small, so the limit is hit); `None`: the default.
    bulk_len_max: Option<u16>,
    /// Chunk lengths.
    chunks: Vec<u8>,
    bytes: Vec<u8>,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let authenticated = u.arbitrary()?;
        let bulk_len_max = u.arbitrary()?;
        let chunks = u
            .arbitrary_iter()?
            .take(CHUNKS_MAX)
            .collect::<Result<Vec<u8>>>()?;
        let bytes = u.bytes(u.len())?.to_vec();
        Ok(Input {
            authenticated,
            bulk_len_max,
            chunks,
            bytes,
        })
    }
}

/// One parsed command, copied out of the buffer, and whether it came as a multibulk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Command {
    args: Vec<Vec<u8>>,
    multibulk: bool,
}

/// Everything a parse of a byte stream produced.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    commands: Vec<Command>,
    /// Bytes consumed by complete frames (up to the error, when there is one).
    consumed: usize,
    error: Option<ProtocolError>,
}

fuzz_target!(|input: Input| {
    let limits = Limits {
        bulk_len_max: input
            .bulk_len_max
            .map_or(Limits::default().bulk_len_max, usize::from),
        authenticated: input.authenticated,
    };
    let heap_base = flin_fuzz::alloc::reset_peak();
    let whole = parse_chunks(&[&input.bytes], limits);
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut rest = &input.bytes[..];
    for &n in &input.chunks {
        let (chunk, tail) = rest.split_at(usize::from(n).min(rest.len()));
        chunks.push(chunk);
        rest = tail;
    }
    chunks.push(rest);
    let chunked = parse_chunks(&chunks, limits);
    assert_eq!(chunked, whole, "chunks {:?}", input.chunks);
    let heap = flin_fuzz::alloc::peak_since(heap_base);
    let heap_max = HEAP_FIXED_BYTES + HEAP_PER_INPUT_BYTE * input.bytes.len();
    assert!(
        heap <= heap_max,
        "parsing {} bytes held {heap} heap bytes at once (allowed {heap_max})",
        input.bytes.len()
    );
    for c in &whole.commands {
        assert_within_limits(c, limits);
        assert_round_trips(c);
    }
});

/// Feeds `chunks` one after another into one buffer, parsing every complete frame after each
/// and moving the unconsumed tail to the front, as the connection does.
fn parse_chunks(chunks: &[&[u8]], limits: Limits) -> Outcome {
    let mut parser = Parser::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Outcome {
        commands: Vec::new(),
        consumed: 0,
        error: None,
    };
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        let arena = Bump::new();
        let mut pos = 0;
        loop {
            // The frame starts at `pos` even when resumed (the tail was moved to the front).
            let starts_multibulk = buf.get(pos) == Some(&b'*');
            match parser.parse(&buf[pos..], &arena, limits) {
                Ok(Some(Frame::Command { args, consumed })) => {
                    check_consumed(consumed, buf.len() - pos);
                    assert!(!args.is_empty(), "a command without arguments");
                    out.commands.push(Command {
                        args: args.iter().map(|a| a.to_vec()).collect(),
                        multibulk: starts_multibulk,
                    });
                    pos += consumed;
                }
                Ok(Some(Frame::Empty { consumed })) => {
                    check_consumed(consumed, buf.len() - pos);
                    pos += consumed;
                }
                Ok(None) => break,
                Err(e) => {
                    out.consumed += pos;
                    out.error = Some(e);
                    return out;
                }
            }
        }
        out.consumed += pos;
        buf.drain(..pos);
    }
    out
}

fn check_consumed(consumed: usize, available: usize) {
    assert!(consumed > 0, "a frame that consumes nothing would loop");
    assert!(
        consumed <= available,
        "frame consumed {consumed} bytes of {available}"
    );
}

fn assert_within_limits(c: &Command, limits: Limits) {
    if c.multibulk {
        assert!(c.args.len() <= ARRAY_LEN_MAX);
        for a in &c.args {
            assert!(a.len() <= limits.bulk_len_max, "bulk of {} bytes", a.len());
        }
        if !limits.authenticated {
            assert!(c.args.len() <= UNAUTH_ARRAY_LEN_MAX);
            assert!(c.args.iter().all(|a| a.len() <= UNAUTH_BULK_LEN_MAX));
        }
    } else {
        // Escapes only shrink an argument, so none outgrows the line.
        assert!(c.args.iter().all(|a| a.len() <= INLINE_LEN_MAX));
    }
}

/// The command as a RESP multibulk parses back to exactly the same arguments, consuming it all.
fn assert_round_trips(c: &Command) {
    let mut encoded = format!("*{}\r\n", c.args.len()).into_bytes();
    for a in &c.args {
        encoded.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        encoded.extend_from_slice(a);
        encoded.extend_from_slice(b"\r\n");
    }
    let arena = Bump::new();
    let mut parser = Parser::new();
    match parser.parse(&encoded, &arena, Limits::default()) {
        Ok(Some(Frame::Command { args, consumed })) => {
            assert_eq!(
                consumed,
                encoded.len(),
                "re-encoded command not consumed whole"
            );
            let back: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
            assert_eq!(back, c.args, "re-encoded command parses differently");
        }
        other => panic!("re-encoded command {:?} parses as {other:?}", c.args),
    }
}
