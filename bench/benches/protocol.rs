//! flin-server's protocol code alone (no sockets): parsing RESP2 requests and encoding
//! replies, per command. The target is at most 50 ns to parse a pipelined SET or GET.

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use flin_bench::resp::encode_command;
use flin_server::commands::lookup;
use flin_server::protocol::{reply, Bump, Frame, Limits, Parser};

/// `args` as one request; names the element type that mixed array literals need.
fn multibulk(args: &[&[u8]]) -> Vec<u8> {
    encode_command(args)
}

/// Parses every frame of `input`, looking each command up as the server does; returns the
/// number of commands.
fn parse_all(parser: &mut Parser, arena: &mut Bump, input: &[u8]) -> usize {
    let mut pos = 0;
    let mut n = 0;
    while let Ok(Some(frame)) = parser.parse(&input[pos..], arena, Limits::default()) {
        match frame {
            Frame::Command { args, consumed } => {
                black_box(lookup(args[0]));
                black_box(args);
                pos += consumed;
                n += 1;
            }
            Frame::Empty { consumed } => pos += consumed,
        }
    }
    arena.reset();
    n
}

fn bench_parse(c: &mut Criterion) {
    let key = b"key:000000012345";
    let v16 = vec![b'v'; 16];
    let v1k = vec![b'v'; 1024];
    let mset_args: Vec<Vec<u8>> = std::iter::once(b"MSET".to_vec())
        .chain((0..100).flat_map(|i| [format!("key:{i:012}").into_bytes(), v16.clone()]))
        .collect();
    let mset_refs: Vec<&[u8]> = mset_args.iter().map(|a| a.as_slice()).collect();
    let mut pipeline = Vec::new();
    for i in 0..64 {
        if i % 2 == 0 {
            pipeline.extend_from_slice(&multibulk(&[b"SET", key, &v16]));
        } else {
            pipeline.extend_from_slice(&multibulk(&[b"GET", key]));
        }
    }
    let cases: Vec<(&str, Vec<u8>, u64)> = vec![
        ("get", multibulk(&[b"GET", key]), 1),
        ("set_16B", multibulk(&[b"SET", key, &v16]), 1),
        ("set_1KiB", multibulk(&[b"SET", key, &v1k]), 1),
        ("mset_100_keys", multibulk(&mset_refs), 1),
        (
            "inline_set",
            b"SET key:000000012345 vvvvvvvvvvvvvvvv\r\n".to_vec(),
            1,
        ),
        (
            "inline_quoted",
            b"SET \"key with space\" \"a\\x41\\n\"\r\n".to_vec(),
            1,
        ),
        ("pipeline_64_set_get", pipeline, 64),
    ];
    let mut g = c.benchmark_group("parse");
    for (name, input, commands) in cases {
        g.throughput(Throughput::Elements(commands));
        let mut parser = Parser::new();
        let mut arena = Bump::new();
        assert_eq!(parse_all(&mut parser, &mut arena, &input) as u64, commands);
        g.bench_function(name, |b| {
            b.iter(|| parse_all(&mut parser, &mut arena, black_box(&input)))
        });
    }
    g.finish();
}

fn bench_encode(c: &mut Criterion) {
    let v16 = vec![b'v'; 16];
    let v1k = vec![b'v'; 1024];
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(64));
    g.bench_function("64_ok", |b| {
        b.iter_batched_ref(
            || Vec::with_capacity(4096),
            |out| {
                for _ in 0..64 {
                    reply::ok(out);
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("64_bulk_16B", |b| {
        b.iter_batched_ref(
            || Vec::with_capacity(4096),
            |out| {
                for _ in 0..64 {
                    reply::bulk(out, black_box(&v16));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("64_bulk_1KiB", |b| {
        b.iter_batched_ref(
            || Vec::with_capacity(80 * 1024),
            |out| {
                for _ in 0..64 {
                    reply::bulk(out, black_box(&v1k));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("64_integer", |b| {
        b.iter_batched_ref(
            || Vec::with_capacity(4096),
            |out| {
                for i in 0..64i64 {
                    reply::integer(out, black_box(i * 1_000_003));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_parse, bench_encode);
criterion_main!(benches);
