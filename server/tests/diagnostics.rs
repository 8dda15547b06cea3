//! MONITOR, SLOWLOG, LATENCY and INFO's per-command sections across connections, which the
//! server spreads over its worker threads: each worker keeps its own logs and counters, and
//! these guard that every one of them reaches the merged view (and that a monitor which does
//! not read is cut off at its output limit instead of growing).

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use common::{cmd, info_field, start, start_with, Raw};
use redis::{Commands, Connection, Value};

/// Clients enough that, with two workers, both almost surely serve some.
const CLIENTS: usize = 8;

fn config_set(con: &mut Connection, name: &str, value: &str) {
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(con)
        .unwrap();
}

/// Each client's address as the server sees it (`CLIENT INFO`'s addr).
fn addr_of(con: &mut Connection) -> String {
    let info: String = redis::cmd("CLIENT").arg("INFO").query(con).unwrap();
    info.split(' ')
        .find_map(|f| f.strip_prefix("addr="))
        .expect("addr in CLIENT INFO")
        .to_string()
}

fn next_line(monitor: &mut Raw) -> String {
    let line = monitor.read_line().expect("the monitor is open");
    String::from_utf8(line).expect("a UTF-8 line")
}

#[test]
fn monitor_streams_every_clients_commands_and_redacts_passwords() {
    let srv = start();
    let mut monitor = srv.raw();
    monitor.expect(&cmd(&[b"MONITOR"]), b"+OK\r\n");
    let mut clients: Vec<Connection> = (0..CLIENTS).map(|_| srv.client()).collect();
    let addrs: Vec<String> = clients.iter_mut().map(addr_of).collect();
    // CLIENT INFO and the client library's CLIENT SETINFO are shown too: skipped below.
    let mut expected: HashSet<String> = HashSet::new();
    for (i, con) in clients.iter_mut().enumerate() {
        let () = con.set(format!("k{i}"), format!("v\"{i}")).unwrap();
        let v: String = con.get(format!("k{i}")).unwrap();
        assert_eq!(v, format!("v\"{i}"));
        expected.insert(format!("[0 {}] \"SET\" \"k{i}\" \"v\\\"{i}\"", addrs[i]));
        expected.insert(format!("[0 {}] \"GET\" \"k{i}\"", addrs[i]));
    }
    let err = redis::cmd("AUTH")
        .arg("user")
        .arg("secret")
        .query::<()>(&mut clients[0])
        .unwrap_err();
    assert!(err.to_string().contains("WRONGPASS"), "{err}");
    expected.insert(format!(
        "[0 {}] \"AUTH\" \"(redacted)\" \"(redacted)\"",
        addrs[0]
    ));
    // Administrative: not shown. ECHO marks the end.
    let _: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("timeout")
        .query(&mut clients[1])
        .unwrap();
    let _: String = redis::cmd("ECHO")
        .arg("end")
        .query(&mut clients[1])
        .unwrap();
    let end = format!("[0 {}] \"ECHO\" \"end\"", addrs[1]);
    loop {
        let line = next_line(&mut monitor);
        assert!(line.starts_with('+') && line.ends_with("\r\n"), "{line:?}");
        let (stamp, rest) = line[1..line.len() - 2].split_once(' ').unwrap();
        assert!(
            stamp.split_once('.').is_some_and(|(_, us)| us.len() == 6),
            "{line}"
        );
        assert!(
            !rest.contains("\"CONFIG\""),
            "admin commands are not shown: {line}"
        );
        if rest.contains("\"CLIENT\"") {
            continue;
        }
        if rest == end {
            break;
        }
        assert!(expected.remove(rest), "unexpected line {rest:?}");
    }
    assert!(expected.is_empty(), "never shown: {expected:?}");
}

#[test]
fn a_monitor_that_does_not_read_is_closed_at_its_output_limit() {
    let srv = start_with(|c| c.client_output_limit = 64 * 1024);
    // A small receive buffer, so the kernel holds little of what the server sends.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&srv.addr.into()).unwrap();
    let stream: std::net::TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut monitor_stream = stream.try_clone().unwrap();
    monitor_stream.write_all(&cmd(&[b"MONITOR"])).unwrap();
    let mut flood = srv.raw();
    let value = vec![b'x'; 200];
    let mut batch = Vec::new();
    for i in 0..1000 {
        batch.extend_from_slice(&cmd(&[b"SET", format!("key{i}").as_bytes(), &value]));
    }
    // About 25 MB of monitor lines, far past the limit and the socket buffers.
    for _ in 0..100 {
        flood.send(&batch);
        flood.read_n(1000 * b"+OK\r\n".len());
    }
    let mut monitor = Raw::from_stream(stream);
    let seen = monitor.read_to_close();
    assert!(
        seen.starts_with(b"+OK\r\n"),
        "{:?}",
        &seen[..seen.len().min(40)]
    );
    assert!(
        seen.len() < 16 << 20,
        "the monitor got {} bytes before it was closed",
        seen.len()
    );
    assert_eq!(flood.request(&[b"PING"]).as_deref(), Some("+PONG\r\n"));
}

#[test]
fn slowlog_merges_every_worker_newest_first() {
    let srv = start();
    let mut admin = srv.client();
    config_set(&mut admin, "slowlog-log-slower-than", "0");
    let () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query(&mut admin)
        .unwrap();
    let mut clients: Vec<Connection> = (0..CLIENTS).map(|_| srv.client()).collect();
    let mut addrs = HashSet::new();
    for (i, con) in clients.iter_mut().enumerate() {
        addrs.insert(addr_of(con));
        let () = con.set(format!("slow{i}"), "v").unwrap();
    }
    config_set(&mut admin, "slowlog-log-slower-than", "-1");
    let entries: Vec<Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query(&mut admin)
        .unwrap();
    let mut last_id = i64::MAX;
    let mut set_peers = HashSet::new();
    for e in &entries {
        let Value::Array(fields) = e else {
            panic!("entry {e:?}")
        };
        assert_eq!(fields.len(), 6, "{e:?}");
        let Value::Int(id) = fields[0] else {
            panic!("{e:?}")
        };
        assert!(id < last_id, "newest first: {entries:?}");
        last_id = id;
        let Value::Array(args) = &fields[3] else {
            panic!("{e:?}")
        };
        if args.first() == Some(&Value::BulkString(b"SET".to_vec())) {
            let Value::BulkString(peer) = &fields[4] else {
                panic!("{e:?}")
            };
            set_peers.insert(String::from_utf8(peer.clone()).unwrap());
        }
    }
    assert_eq!(
        set_peers, addrs,
        "every client's SET, whichever worker ran it"
    );
    let len: usize = redis::cmd("SLOWLOG").arg("LEN").query(&mut admin).unwrap();
    assert_eq!(len, entries.len());
    config_set(&mut admin, "slowlog-max-len", "3");
    let newest: Vec<Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query(&mut admin)
        .unwrap();
    assert_eq!(newest.len(), 3);
    let () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query(&mut admin)
        .unwrap();
    let len: usize = redis::cmd("SLOWLOG").arg("LEN").query(&mut admin).unwrap();
    assert_eq!(len, 0);
}

fn info(con: &mut Connection, section: &str) -> String {
    redis::cmd("INFO").arg(section).query(con).unwrap()
}

#[test]
fn info_command_and_error_stats_sum_every_worker_and_reset() {
    let srv = start();
    let mut admin = srv.client();
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut admin)
        .unwrap();
    let mut clients: Vec<Connection> = (0..CLIENTS).map(|_| srv.client()).collect();
    for con in &mut clients {
        for _ in 0..10 {
            let _: Option<String> = con.get("nosuch").unwrap();
        }
        assert!(redis::cmd("GET").query::<()>(con).is_err());
        let () = con.set("text", "abc").unwrap();
        assert!(con.incr::<_, _, i64>("text", 1).is_err());
    }
    let stats = info(&mut admin, "commandstats");
    let get = info_field(&stats, "cmdstat_get");
    assert!(
        get.starts_with(&format!("calls={},usec=", 10 * CLIENTS))
            && get.ends_with(&format!("rejected_calls={CLIENTS},failed_calls=0")),
        "{get}"
    );
    // The client library sends INCR as INCRBY.
    let incr = info_field(&stats, "cmdstat_incrby");
    assert!(incr.starts_with(&format!("calls={CLIENTS},")), "{incr}");
    assert!(
        incr.ends_with(&format!("rejected_calls=0,failed_calls={CLIENTS}")),
        "{incr}"
    );
    let errors = info(&mut admin, "errorstats");
    assert_eq!(
        info_field(&errors, "errorstat_ERR"),
        format!("count={}", 2 * CLIENTS)
    );
    let all = info(&mut admin, "stats");
    assert_eq!(
        info_field(&all, "total_error_replies"),
        (2 * CLIENTS).to_string()
    );
    let latency = info(&mut admin, "latencystats");
    let p = info_field(&latency, "latency_percentiles_usec_get");
    let parts: Vec<&str> = p.split(',').collect();
    assert_eq!(parts.len(), 3, "{p}");
    assert!(
        parts[0].starts_with("p50=") && parts[2].starts_with("p99.9="),
        "{p}"
    );

    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut admin)
        .unwrap();
    let stats = info(&mut admin, "commandstats");
    assert!(!stats.contains("cmdstat_get:"), "{stats}");
    let errors = info(&mut admin, "errorstats");
    assert!(!errors.contains("errorstat_"), "{errors}");
    let _: Option<String> = clients[3].get("nosuch").unwrap();
    let stats = info(&mut admin, "commandstats");
    assert!(
        info_field(&stats, "cmdstat_get").starts_with("calls=1,"),
        "{stats}"
    );
}

#[test]
fn latency_events_from_every_worker_are_merged() {
    let srv = start();
    let mut admin = srv.client();
    config_set(&mut admin, "latency-monitor-threshold", "1");
    let mut clients: Vec<Connection> = (0..4).map(|_| srv.client()).collect();
    // LCS of two 3000-byte strings fills a 9-million-cell table: milliseconds at least.
    let a: String = (0..3000)
        .map(|i| (b'a' + (i * 7 % 26) as u8) as char)
        .collect();
    let b: String = (0..3000)
        .map(|i| (b'a' + (i * 11 % 26) as u8) as char)
        .collect();
    let () = admin.set("a", &a).unwrap();
    let () = admin.set("b", &b).unwrap();
    for con in &mut clients {
        let _: i64 = redis::cmd("LCS")
            .arg("a")
            .arg("b")
            .arg("LEN")
            .query(con)
            .unwrap();
    }
    let latest: Vec<Value> = redis::cmd("LATENCY")
        .arg("LATEST")
        .query(&mut admin)
        .unwrap();
    let command = latest
        .iter()
        .find_map(|e| match e {
            Value::Array(f) if f.first() == Some(&Value::BulkString(b"command".to_vec())) => {
                Some(f.clone())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no command event in {latest:?}"));
    assert_eq!(command.len(), 4);
    let Value::Int(max_ms) = command[3] else {
        panic!("{command:?}")
    };
    assert!(max_ms >= 1, "{command:?}");
    let history: Vec<Vec<i64>> = redis::cmd("LATENCY")
        .arg("HISTORY")
        .arg("command")
        .query(&mut admin)
        .unwrap();
    assert!(!history.is_empty() && history.iter().all(|s| s.len() == 2 && s[1] >= 1));
    let doctor: String = redis::cmd("LATENCY")
        .arg("DOCTOR")
        .query(&mut admin)
        .unwrap();
    assert!(doctor.contains("command:"), "{doctor}");
    let n: i64 = redis::cmd("LATENCY")
        .arg("RESET")
        .query(&mut admin)
        .unwrap();
    assert!(n >= 1);
    let latest: Vec<Value> = redis::cmd("LATENCY")
        .arg("LATEST")
        .query(&mut admin)
        .unwrap();
    assert!(latest.is_empty(), "{latest:?}");
}
