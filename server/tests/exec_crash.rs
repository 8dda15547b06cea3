//! EXEC on disk is all or nothing: after a crash anywhere in the middle of a transaction's
//! records (here: its log cut at many points, later segments gone), a restarted server shows
//! every effect of the EXEC or none of it, never a part.

mod common;

use std::path::Path;

use common::{config, start_with};
use flin_server::{Config, Server};
use redis::Commands;

/// Small segments: the EXEC's records span several.
fn small(c: &mut Config) {
    c.segment_size = 4096;
}

/// What the EXEC changes: a0..a9, `gone`, `counter`, and `other` in database 1.
fn snapshot(con: &mut redis::Connection) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = (0..10).map(|i| con.get(format!("a{i}")).unwrap()).collect();
    out.push(con.get("gone").unwrap());
    out.push(con.get("counter").unwrap());
    let _: () = redis::cmd("SELECT").arg(1).query(con).unwrap();
    out.push(con.get("other").unwrap());
    let _: () = redis::cmd("SELECT").arg(0).query(con).unwrap();
    out
}

fn segment_ids(dir: &Path) -> Vec<u32> {
    let mut ids: Vec<u32> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn restart(srv: &mut common::TestServer, dir: &Path) -> redis::Connection {
    let mut c = config(dir);
    small(&mut c);
    let handle = Server::start(c).expect("restart");
    srv.addr = handle.local_addr();
    srv.handle = Some(handle);
    srv.client()
}

#[test]
fn exec_survives_a_crash_whole_or_not_at_all() {
    let mut srv = start_with(small);
    let before = {
        let mut con = srv.client();
        for i in 0..10 {
            let _: () = con.set(format!("a{i}"), "old").unwrap();
        }
        let _: () = con.set("gone", "here").unwrap();
        let _: () = con.set("counter", 5).unwrap();
        // Keys the EXEC leaves alone keep the old segments mostly live: compaction, which
        // runs once the EXEC is committed, leaves them be, so cutting the EXEC's records
        // off afterwards shows what a crash in its middle would have left.
        for i in 0..200 {
            let _: () = con.set(format!("filler{i}"), "x".repeat(20)).unwrap();
        }
        snapshot(&mut con)
    };
    srv.stop();
    let last_before = *segment_ids(srv.dir.path()).last().unwrap();
    let dir = srv.dir.path().to_path_buf();
    let after = {
        let mut con = restart(&mut srv, &dir);
        let big = "n".repeat(2000);
        let mut pipe = redis::pipe();
        pipe.atomic();
        for i in 0..10 {
            pipe.set(format!("a{i}"), &big).ignore();
        }
        pipe.del("gone").ignore();
        pipe.incr("counter", 1).ignore();
        pipe.cmd("SELECT").arg(1).ignore();
        pipe.set("other", "x").ignore();
        pipe.cmd("SELECT").arg(0).ignore();
        let () = pipe.query(&mut con).unwrap();
        snapshot(&mut con)
    };
    srv.stop();
    assert_ne!(before, after);
    let written: Vec<u32> = segment_ids(&dir)
        .into_iter()
        .filter(|&id| id > last_before)
        .collect();
    assert!(written.len() >= 3, "the EXEC spans segments: {written:?}");

    let scratch = tempfile::tempdir().unwrap();
    let (mut whole, mut none) = (0, 0);
    for (n, &id) in written.iter().enumerate() {
        let name = format!("{id:010}.seg");
        let len = std::fs::metadata(dir.join(&name)).unwrap().len();
        for cut in (32..len).step_by(1009).chain([len]) {
            let copy = scratch.path().join(format!("{id}-{cut}"));
            std::fs::create_dir_all(&copy).unwrap();
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                let file = p.file_name().unwrap().to_str().unwrap().to_string();
                let later = written[n..].iter().any(|&w| {
                    file.starts_with(&format!("{w:010}.")) && (w > id || file.ends_with(".hint"))
                });
                if p.is_file() && file != "LOCK" && !later {
                    std::fs::copy(&p, copy.join(&file)).unwrap();
                }
            }
            std::fs::OpenOptions::new()
                .write(true)
                .open(copy.join(&name))
                .unwrap()
                .set_len(cut)
                .unwrap();
            let mut con = restart(&mut srv, &copy);
            let got = snapshot(&mut con);
            drop(con);
            srv.stop();
            if got == after {
                whole += 1;
            } else {
                assert_eq!(got, before, "segment {id} cut at {cut}: part of the EXEC");
                none += 1;
            }
        }
    }
    assert!(whole > 0 && none > 3, "whole {whole}, none {none}");
}
