//! A full disk (simulated with RLIMIT_FSIZE, which makes growing a file fail with EFBIG): writes
//! get a clear, retryable error, reads keep working, the engine is not poisoned, and once space
//! returns writes resume and every acknowledged write survives a reopen.
//!
//! One test per binary: the file-size limit applies to the whole process.

use flin_engine::{Engine, Fsync, Options};

fn set_fsize_limit(bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain system calls with valid arguments.
    unsafe {
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &lim), 0);
    }
}

#[test]
fn full_disk_refuses_writes_clearly_and_recovers() {
    // SAFETY: ignoring SIGXFSZ turns "file too large" into an EFBIG error instead of a kill.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    // No new 64 KiB segment can be created.
    fills_and_recovers(64 * 1024, 16 * 1024);
    // The 16 MiB active segment, whose file grows a 4 MiB chunk at a time, cannot grow past
    // its first chunk (the next segment's first chunk still fits: the writer meets the
    // error inside the segment, not at a roll).
    fills_and_recovers(16 << 20, 6 << 20);
}

/// Writes until the file-size limit stops them, then checks the error, the reads, the retry,
/// and that writes resume and survive a reopen once the limit is lifted.
fn fills_and_recovers(segment_size_bytes: u64, fsize_limit: u64) {
    let dir = tempfile::tempdir().unwrap();
    let opts = || Options {
        fsync: Fsync::Always,
        segment_size_bytes,
        compaction: false,
        hints: false,
        ..Options::default()
    };
    let engine = Engine::open(dir.path(), opts()).unwrap();
    engine.put(b"before", b"the disk filled", 0).unwrap();
    set_fsize_limit(fsize_limit);
    let mut acked = Vec::new();
    let mut failure = None;
    for i in 0..10_000u32 {
        let k = format!("k{i}");
        match engine.put(k.as_bytes(), &[b'x'; 500], 0) {
            Ok(t) => {
                engine.wait_durable(t).unwrap();
                acked.push(k);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let e = failure.expect("writes must fail once the disk is full");
    assert!(e.is_disk_full(), "{e}");
    assert!(!e.is_poisoned());
    let msg = e.to_string();
    assert!(
        msg.contains(".seg") && msg.contains("free disk space"),
        "{msg}"
    );
    // Reads keep working, and a retry fails the same clear way rather than poisoning.
    assert_eq!(
        engine.get(b"before").as_deref(),
        Some(&b"the disk filled"[..])
    );
    assert!(engine
        .put(b"again", &[b'x'; 500], 0)
        .unwrap_err()
        .is_disk_full());
    assert!(engine.stats().poisoned.is_none());
    assert!(engine.stats().write_errors >= 2);

    set_fsize_limit(libc::RLIM_INFINITY);
    let t = engine.put(b"after", b"space returned", 0).unwrap();
    engine.wait_durable(t).unwrap();
    engine.close().unwrap();

    let engine = Engine::open(dir.path(), opts()).unwrap();
    for k in &acked {
        assert!(engine.get(k.as_bytes()).is_some(), "acknowledged {k} lost");
    }
    assert_eq!(
        engine.get(b"after").as_deref(),
        Some(&b"space returned"[..])
    );
    assert_eq!(engine.get(b"again"), None);
}
