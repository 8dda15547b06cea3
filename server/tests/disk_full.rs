//! A full disk under the real binary (RLIMIT_FSIZE set on the running server with prlimit):
//! SETs get a clear `-ERR`, GETs and other clients keep being served, the server stays up, and
//! once space returns writes resume; after a restart every acknowledged write is there.

mod common;

use common::binary::start;
use common::Raw;

fn set_child_fsize_limit(pid: u32, bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes as libc::rlim_t,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit on our own child with a valid struct.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &lim,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// Sends one SET and returns the reply line.
fn set(s: &mut Raw, k: &str, v: &[u8]) -> String {
    s.request(&[b"SET", k.as_bytes(), v])
        .expect("a reply to SET")
}

#[test]
fn full_disk_gives_clear_errors_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--fsync", "always", "--segment-size", "64KiB"];
    let mut srv = start(dir.path(), &flags);
    let mut s = Raw::connect(&srv.addr);
    assert_eq!(set(&mut s, "before", b"full"), "+OK\r\n");

    set_child_fsize_limit(srv.child.id(), 16 * 1024);
    let value = [b'x'; 500];
    let mut acked = Vec::new();
    let mut error = None;
    for i in 0..10_000 {
        let k = format!("k{i}");
        let reply = set(&mut s, &k, &value);
        if reply == "+OK\r\n" {
            acked.push(k);
        } else {
            error = Some(reply);
            break;
        }
    }
    let error = error.expect("SETs must fail once no segment can be created");
    assert!(
        error.starts_with("-ERR ") && error.contains("free disk space"),
        "{error:?}"
    );
    // The same connection, and a new one, are still served.
    assert_eq!(s.get("before").as_deref(), Some("full"));
    let mut other = Raw::connect(&srv.addr);
    assert_eq!(other.get("k0").as_deref().map(str::len), Some(500));

    set_child_fsize_limit(srv.child.id(), libc::RLIM_INFINITY);
    assert_eq!(set(&mut s, "after", b"space returned"), "+OK\r\n");
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();

    let mut srv = start(dir.path(), &flags);
    let mut s = Raw::connect(&srv.addr);
    for k in &acked {
        assert!(s.get(k).is_some(), "acknowledged {k} lost");
    }
    assert_eq!(s.get("after").as_deref(), Some("space returned"));
    srv.child.kill().unwrap();
    srv.child.wait().unwrap();
}
