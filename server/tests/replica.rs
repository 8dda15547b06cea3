//! flin as a replica of a primary that speaks Redis's replication protocol: a fake primary in
//! the test (a TcpListener) checks the handshake byte by byte, sends a full-sync payload built
//! with `rdb::FileWriter` (diskless `$EOF:` form after keepalives), then a command stream with
//! SELECT and MULTI/EXEC, and asks for ACKs; after a dropped link the replica must ask for a
//! partial resync from its offset, and take `+CONTINUE`.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::{cmd, info_field, read_command, start_with, wait_for, Raw};
use flin_server::rdb::FileWriter;
use redis::Commands;

const REPLID: &str = "0123456789abcdef0123456789abcdef01234567";

fn accept(listener: &TcpListener) -> Raw {
    let (stream, _) = listener.accept().expect("the replica connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    Raw::from_stream(stream)
}

/// Reads ACKs until one acknowledges `offset` (fails on a later one or after 30 s).
fn wait_ack(raw: &mut Raw, offset: i64) {
    loop {
        let req = read_command(raw);
        assert_eq!(&req[..2], ["REPLCONF", "ACK"], "{req:?}");
        let got: i64 = req[2].parse().unwrap();
        assert!(got <= offset, "acked {got}, past {offset}");
        if got == offset {
            return;
        }
    }
}

/// Accepts the replica's connection, answers its handshake (no AUTH) and sends `file` as a
/// full sync (the `$<len>` form) from offset 0.
fn full_sync(listener: &TcpListener, file: &[u8]) -> Raw {
    let mut p = accept(listener);
    answer_until_fullresync(&mut p);
    p.send(format!("\n${}\r\n", file.len()).as_bytes());
    p.send(file);
    p
}

/// Answers a connected replica's PING and two REPLCONFs, checks that it asks for a full
/// sync, and announces one from offset 0 (the payload is the caller's).
fn answer_until_fullresync(p: &mut Raw) {
    answer_handshake(p);
    assert_eq!(read_command(p), ["PSYNC", "?", "-1"]);
    p.send(format!("+FULLRESYNC {REPLID} 0\r\n").as_bytes());
}

/// Answers a connected replica's PING and two REPLCONFs (no AUTH), up to its PSYNC.
fn answer_handshake(p: &mut Raw) {
    for answer in ["+PONG", "+OK", "+OK"] {
        read_command(p);
        p.send(format!("{answer}\r\n").as_bytes());
    }
}

fn rdb() -> Vec<u8> {
    let far = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 100_000_000;
    let mut w = FileWriter::new(Vec::new(), &[("redis-ver", b"7.0.15")], true).unwrap();
    w.select_db(0, 3, 1).unwrap();
    w.string(b"a", b"1", None).unwrap();
    w.string(b"ttl", b"v", Some(far)).unwrap();
    w.string(b"long", "xy".repeat(5000).as_bytes(), None)
        .unwrap();
    w.select_db(2, 1, 0).unwrap();
    w.string(b"b", b"two", None).unwrap();
    w.finish().unwrap()
}

#[test]
fn follows_a_primary_through_full_sync_stream_and_partial_resync() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let primary = listener.local_addr().unwrap();
    let srv = start_with(|c| {
        c.replicaof = vec!["127.0.0.1".into(), primary.port().to_string()];
        c.masterauth = Some("secret".into());
    });
    let mut p = accept(&listener);

    // The handshake, as Redis 7's replica sends it.
    assert_eq!(read_command(&mut p), ["PING"]);
    p.send(b"+PONG\r\n");
    assert_eq!(read_command(&mut p), ["AUTH", "secret"]);
    p.send(b"+OK\r\n");
    let port = srv.addr.port().to_string();
    assert_eq!(
        read_command(&mut p),
        ["REPLCONF", "listening-port", port.as_str()]
    );
    p.send(b"+OK\r\n");
    assert_eq!(
        read_command(&mut p),
        ["REPLCONF", "capa", "eof", "capa", "psync2"]
    );
    p.send(b"+OK\r\n");
    assert_eq!(read_command(&mut p), ["PSYNC", "?", "-1"]);
    // Redis's keepalives while its full sync waits (repl-diskless-sync-delay), then the
    // answer.
    p.send(b"\n\n");
    p.send(format!("+FULLRESYNC {REPLID} 100\r\n").as_bytes());

    // Keepalives, then a diskless payload.
    let mark = [b'm'; 40];
    let mut payload = b"\n\n$EOF:".to_vec();
    payload.extend_from_slice(&mark);
    payload.extend_from_slice(b"\r\n");
    payload.extend_from_slice(&rdb());
    payload.extend_from_slice(&mark);
    p.send(&payload);

    // The stream: SELECT, a transaction, an expiry, a delete; then GETACK.
    let stream = [
        cmd(&[b"SELECT", b"0"]),
        cmd(&[b"SET", b"c", b"3"]),
        cmd(&[b"MULTI"]),
        cmd(&[b"SET", b"d", b"4"]),
        cmd(&[b"INCR", b"a"]),
        cmd(&[b"EXEC"]),
        cmd(&[b"PEXPIREAT", b"c", b"99999999999999"]),
        cmd(&[b"SELECT", b"2"]),
        cmd(&[b"DEL", b"b"]),
        cmd(&[b"SET", b"e", b"5"]),
        cmd(&[b"PING"]),
    ]
    .concat();
    p.send(&stream);
    let getack = cmd(&[b"REPLCONF", b"GETACK", b"*"]);
    p.send(&getack);
    // The first ACK comes as soon as the payload is loaded, before the stream is applied (a
    // Redis primary streams nothing to a diskless replica until it ACKs).
    assert_eq!(read_command(&mut p), ["REPLCONF", "ACK", "100"]);
    // The ACK covers what came before the GETACK; the offset then moves past it.
    wait_ack(&mut p, 100 + stream.len() as i64);
    let offset = 100 + (stream.len() + getack.len()) as i64;

    let mut con = srv.client();
    assert_eq!(
        con.get::<_, Option<String>>("a").unwrap().as_deref(),
        Some("2")
    );
    assert_eq!(
        con.get::<_, Option<String>>("c").unwrap().as_deref(),
        Some("3")
    );
    assert_eq!(
        con.get::<_, Option<String>>("d").unwrap().as_deref(),
        Some("4")
    );
    assert_eq!(con.get::<_, String>("long").unwrap(), "xy".repeat(5000));
    assert!(con.ttl::<_, i64>("ttl").unwrap() > 90_000);
    assert!(con.ttl::<_, i64>("c").unwrap() > 90_000);
    let _: () = redis::cmd("SELECT").arg(2).query(&mut con).unwrap();
    assert_eq!(con.get::<_, Option<String>>("b").unwrap(), None);
    assert_eq!(
        con.get::<_, Option<String>>("e").unwrap().as_deref(),
        Some("5")
    );

    // Read-only for clients, inside MULTI too.
    let err = con.set::<_, _, ()>("x", "y").unwrap_err();
    assert_eq!(err.code(), Some("READONLY"), "{err:?}");
    let mut raw = srv.raw();
    raw.expect(&cmd(&[b"MULTI"]), b"+OK\r\n");
    raw.expect(
        &cmd(&[b"SET", b"x", b"y"]),
        b"-READONLY You can't write against a read only replica.\r\n",
    );
    raw.expect(
        &cmd(&[b"EXEC"]),
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );

    let mut info = String::new();
    wait_for("the offset past GETACK", Duration::from_secs(10), || {
        info = redis::cmd("INFO")
            .arg("replication")
            .query(&mut con)
            .unwrap();
        info_field(&info, "slave_repl_offset") == offset.to_string()
    });
    assert_eq!(info_field(&info, "role"), "slave");
    assert_eq!(info_field(&info, "master_link_status"), "up");
    assert_eq!(info_field(&info, "master_port"), primary.port().to_string());
    assert_eq!(info_field(&info, "slave_repl_offset"), offset.to_string());
    assert_eq!(info_field(&info, "master_replid"), REPLID);
    let role: redis::Value = redis::cmd("ROLE").query(&mut con).unwrap();
    assert_eq!(
        format!("{role:?}"),
        format!(
            "{:?}",
            redis::Value::Array(vec![
                redis::Value::BulkString(b"slave".to_vec()),
                redis::Value::BulkString(b"127.0.0.1".to_vec()),
                redis::Value::Int(i64::from(primary.port())),
                redis::Value::BulkString(b"connected".to_vec()),
                redis::Value::Int(offset),
            ])
        )
    );

    // The link drops: the replica comes back asking to continue from its offset.
    drop(p);
    let mut p = accept(&listener);
    assert_eq!(read_command(&mut p), ["PING"]);
    p.send(b"+PONG\r\n");
    assert_eq!(read_command(&mut p)[0], "AUTH");
    p.send(b"+OK\r\n");
    assert_eq!(read_command(&mut p)[0], "REPLCONF");
    p.send(b"+OK\r\n");
    assert_eq!(read_command(&mut p)[0], "REPLCONF");
    p.send(b"+OK\r\n");
    let from = (offset + 1).to_string();
    assert_eq!(read_command(&mut p), ["PSYNC", REPLID, from.as_str()]);
    p.send(b"+CONTINUE\r\n");
    let more = [cmd(&[b"SELECT", b"0"]), cmd(&[b"SET", b"f", b"6"])].concat();
    p.send(&more);
    // Acknowledged without a GETACK: the replica ACKs every second.
    wait_ack(&mut p, offset + more.len() as i64);
    let _: () = redis::cmd("SELECT").arg(0).query(&mut con).unwrap();
    assert_eq!(
        con.get::<_, Option<String>>("f").unwrap().as_deref(),
        Some("6")
    );

    // REPLICAOF NO ONE: a primary again, writable; the link is dropped.
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut con)
        .unwrap();
    let _: () = con.set("x", "y").unwrap();
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut con)
        .unwrap();
    assert_eq!(info_field(&info, "role"), "master");
    p.read_to_close();
}

#[test]
fn full_sync_with_a_length_payload_replaces_the_data() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let primary = listener.local_addr().unwrap();
    // Under `--fsync always` an ACK waits for the applied writes to be on disk.
    let srv = start_with(|c| c.fsync = flin_server::FsyncPolicy::Always);
    let mut con = srv.client();
    let _: () = con.set("stale", "old").unwrap();
    let port = primary.port().to_string();
    let replicaof = cmd(&[b"REPLICAOF", b"127.0.0.1", port.as_bytes()]);
    let mut raw = srv.raw();
    raw.expect(&replicaof, b"+OK\r\n");
    raw.expect(&replicaof, b"+OK Already connected to specified master\r\n");
    raw.expect(
        &cmd(&[b"REPLICAOF", b"127.0.0.1", b"65536"]),
        b"-ERR Invalid master port\r\n",
    );
    let mut p = full_sync(&listener, &rdb());
    let set = cmd(&[b"SET", b"g", b"7"]);
    p.send(&set);
    p.send(&cmd(&[b"REPLCONF", b"GETACK", b"*"]));
    wait_ack(&mut p, set.len() as i64);
    assert_eq!(
        con.get::<_, Option<String>>("g").unwrap().as_deref(),
        Some("7")
    );
    assert_eq!(con.get::<_, Option<String>>("stale").unwrap(), None);
    assert_eq!(
        con.get::<_, Option<String>>("a").unwrap().as_deref(),
        Some("1")
    );
}

/// The role survives a restart (flin keeps it in `<dir>/REPLICAOF`): REPLICAOF's primary is
/// followed again without --replicaof, and REPLICAOF NO ONE's primary stays a primary.
#[test]
fn the_role_survives_a_restart() {
    let role = |addr: std::net::SocketAddr| -> (String, String) {
        let mut raw = Raw::connect(addr);
        let info = raw.request(&[b"INFO", b"replication"]).unwrap();
        (
            info_field(&info, "role").to_owned(),
            info.lines()
                .find_map(|l| l.strip_prefix("master_port:"))
                .unwrap_or("")
                .trim()
                .to_owned(),
        )
    };
    // A primary that is never there: the link keeps trying, the role is what matters.
    let nobody = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = nobody.local_addr().unwrap().port().to_string();
    drop(nobody);

    let mut srv = start_with(|_| {});
    let mut raw = srv.raw();
    assert_eq!(
        raw.request(&[b"REPLICAOF", b"127.0.0.1", port.as_bytes()]),
        Some("+OK\r\n".into())
    );
    let dir = srv.dir.path().to_owned();
    srv.stop();

    let again = flin_server::Server::start(common::config(&dir)).expect("restart");
    assert_eq!(role(again.local_addr()), ("slave".into(), port.clone()));
    let mut raw = Raw::connect(again.local_addr());
    assert_eq!(
        raw.request(&[b"SET", b"k", b"v"]),
        Some("-READONLY You can't write against a read only replica.\r\n".into())
    );
    assert_eq!(
        raw.request(&[b"REPLICAOF", b"NO", b"ONE"]),
        Some("+OK\r\n".into())
    );
    again.shutdown().unwrap();

    let third = flin_server::Server::start(common::config(&dir)).expect("restart");
    assert_eq!(role(third.local_addr()).0, "master");
    third.shutdown().unwrap();
}

/// A replica leaves expiry to its primary, as Redis's do: a key past its time stays in the
/// store (DBSIZE counts it, reads hide it) until the primary's DEL, and a write the primary
/// sends for such a key acts on its value (the primary saw it alive). Promoted, the server
/// expires keys itself again.
#[test]
fn a_replica_leaves_expiry_to_its_primary() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let primary = listener.local_addr().unwrap();
    let srv = start_with(|c| {
        c.replicaof = vec!["127.0.0.1".into(), primary.port().to_string()];
    });
    // Two keys whose time passed (a second ago) by the replica's clock.
    let past = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 1_000;
    let mut w = FileWriter::new(Vec::new(), &[("redis-ver", b"7.0.15")], true).unwrap();
    w.select_db(0, 3, 2).unwrap();
    w.string(b"counter", b"5", Some(past)).unwrap();
    w.string(b"gone", b"x", Some(past)).unwrap();
    w.string(b"kept", b"y", None).unwrap();
    let mut p = full_sync(&listener, &w.finish().unwrap());
    // The primary still sees `counter` alive: INCR acts on 5, then PERSIST makes it visible.
    let stream = [cmd(&[b"INCR", b"counter"]), cmd(&[b"PERSIST", b"counter"])].concat();
    p.send(&stream);
    p.send(&cmd(&[b"REPLCONF", b"GETACK", b"*"]));
    wait_ack(&mut p, stream.len() as i64);
    let mut con = srv.client();
    assert_eq!(
        con.get::<_, Option<String>>("counter").unwrap().as_deref(),
        Some("6"),
        "the primary's INCR acted on the value it saw"
    );
    // `gone` is hidden from clients but kept: no sweep, lazy expiry or restart removed it.
    assert_eq!(con.get::<_, Option<String>>("gone").unwrap(), None);
    assert!(!con.exists::<_, bool>("gone").unwrap());
    let dbsize = || -> i64 { redis::cmd("DBSIZE").query(&mut srv.client()).unwrap() };
    assert_eq!(dbsize(), 3);
    // The primary's DEL removes it.
    let del = cmd(&[b"DEL", b"gone"]);
    p.send(&del);
    p.send(&cmd(&[b"REPLCONF", b"GETACK", b"*"]));
    let getack_len = cmd(&[b"REPLCONF", b"GETACK", b"*"]).len() as i64;
    wait_ack(&mut p, stream.len() as i64 + getack_len + del.len() as i64);
    assert_eq!(dbsize(), 2);
    // Promoted, the server expires keys itself: `kept`, past its time, leaves DBSIZE.
    let expire = cmd(&[b"PEXPIREAT", b"kept", past.to_string().as_bytes()]);
    p.send(&expire);
    p.send(&cmd(&[b"REPLCONF", b"GETACK", b"*"]));
    let acked = stream.len() as i64 + 2 * getack_len + (del.len() + expire.len()) as i64;
    wait_ack(&mut p, acked);
    assert_eq!(dbsize(), 2);
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut con)
        .unwrap();
    wait_for(
        "the promoted server to expire `kept`",
        Duration::from_secs(20),
        || dbsize() == 1,
    );
}

/// A full sync keeps the replica's data until the whole payload arrived (a link that drops
/// mid-transfer loses nothing), then loads it with clients answered `-LOADING` for what Redis
/// refuses during a load (INFO still answers), and only then serves the new data.
#[test]
fn a_full_sync_replaces_the_data_only_once_received_and_loading_is_visible() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let primary = listener.local_addr().unwrap();
    let srv = start_with(|_| {});
    let mut con = srv.client();
    let _: () = con.set("stale", "old").unwrap();
    let port = primary.port().to_string();
    srv.raw().expect(
        &cmd(&[b"REPLICAOF", b"127.0.0.1", port.as_bytes()]),
        b"+OK\r\n",
    );
    // The first link sends half the payload and drops.
    let mut p = accept(&listener);
    answer_until_fullresync(&mut p);
    let file = rdb();
    p.send(format!("\n${}\r\n", file.len()).as_bytes());
    p.send(&file[..file.len() / 2]);
    drop(p);
    // The replica connects again: the first sync failed, and kept the data.
    srv.handle().hold_replica_load(true);
    let mut p = full_sync(&listener, &file);
    let mut raw = srv.raw();
    raw.expect(&cmd(&[b"GET", b"stale"]), b"$3\r\nold\r\n");
    wait_for("the load to begin", Duration::from_secs(20), || {
        let info = raw.request(&[b"INFO", b"persistence"]).unwrap();
        info_field(&info, "loading") == "1"
    });
    raw.expect(
        &cmd(&[b"GET", b"stale"]),
        b"-LOADING Redis is loading the dataset in memory\r\n",
    );
    // As on Redis 7.0, PING is refused too; INFO (above) answers.
    raw.expect(
        &cmd(&[b"PING"]),
        b"-LOADING Redis is loading the dataset in memory\r\n",
    );
    srv.handle().hold_replica_load(false);
    let set = cmd(&[b"SET", b"g", b"7"]);
    p.send(&set);
    p.send(&cmd(&[b"REPLCONF", b"GETACK", b"*"]));
    wait_ack(&mut p, set.len() as i64);
    assert_eq!(con.get::<_, Option<String>>("stale").unwrap(), None);
    assert_eq!(
        con.get::<_, Option<String>>("a").unwrap().as_deref(),
        Some("1")
    );
    let info = raw.request(&[b"INFO", b"persistence"]).unwrap();
    assert_eq!(info_field(&info, "loading"), "0");
}

/// A payload that arrives whole but would not load (here a flipped byte the checksum catches)
/// is refused before the store is touched: the replica keeps its data and serves it, then
/// syncs again and takes the next, good payload.
#[test]
fn a_full_sync_that_would_not_load_keeps_the_data() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let primary = listener.local_addr().unwrap();
    let srv = start_with(|_| {});
    let mut con = srv.client();
    let _: () = con.set("stale", "old").unwrap();
    let port = primary.port().to_string();
    srv.raw().expect(
        &cmd(&[b"REPLICAOF", b"127.0.0.1", port.as_bytes()]),
        b"+OK\r\n",
    );
    let file = rdb();
    let mut bad = file.clone();
    // Inside a value: the format still parses, only the checksum fails.
    let at = bad.windows(3).position(|w| w == b"two").unwrap() + 2;
    bad[at] ^= 0x01;
    let p = full_sync(&listener, &bad);
    // The replica drops that link and connects again; the store was never flushed.
    let mut p2 = accept(&listener);
    drop(p);
    let mut raw = srv.raw();
    raw.expect(&cmd(&[b"GET", b"stale"]), b"$3\r\nold\r\n");
    raw.expect(&cmd(&[b"GET", b"a"]), b"$-1\r\n");
    answer_until_fullresync(&mut p2);
    p2.send(format!("\n${}\r\n", file.len()).as_bytes());
    p2.send(&file);
    let set = cmd(&[b"SET", b"g", b"7"]);
    p2.send(&set);
    p2.send(&cmd(&[b"REPLCONF", b"GETACK", b"*"]));
    wait_ack(&mut p2, set.len() as i64);
    assert_eq!(con.get::<_, Option<String>>("stale").unwrap(), None);
    assert_eq!(
        con.get::<_, Option<String>>("a").unwrap().as_deref(),
        Some("1")
    );
}

/// With `--masteruser` the link authenticates as that ACL user (`AUTH user password`), as a
/// Redis 6+ replica does with `masteruser`.
#[test]
fn masteruser_authenticates_as_an_acl_user() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let primary = listener.local_addr().unwrap();
    let _srv = start_with(|c| {
        c.replicaof = vec!["127.0.0.1".into(), primary.port().to_string()];
        c.masterauth = Some("pw".into());
        c.masteruser = Some("repl".into());
    });
    let mut p = accept(&listener);
    assert_eq!(read_command(&mut p), ["PING"]);
    p.send(b"+PONG\r\n");
    assert_eq!(read_command(&mut p), ["AUTH", "repl", "pw"]);
}

/// CONFIG SET masterauth / masteruser apply from the next connection to the primary (Redis
/// changes them at run time too), and CONFIG SET replica-priority is what INFO gives
/// Sentinel as `slave_priority`.
#[test]
fn config_set_changes_the_links_credentials_and_the_priority() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let primary = listener.local_addr().unwrap();
    let srv = start_with(|c| {
        c.replicaof = vec!["127.0.0.1".into(), primary.port().to_string()];
        c.masterauth = Some("old".into());
    });
    let mut p = accept(&listener);
    assert_eq!(read_command(&mut p), ["PING"]);
    p.send(b"+PONG\r\n");
    assert_eq!(read_command(&mut p), ["AUTH", "old"]);
    let mut con = srv.client();
    let set = |con: &mut redis::Connection, k: &str, v: &str| -> String {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(k)
            .arg(v)
            .query(con)
            .unwrap()
    };
    assert_eq!(set(&mut con, "masterauth", "new"), "OK");
    assert_eq!(set(&mut con, "masteruser", "repl"), "OK");
    assert_eq!(set(&mut con, "replica-priority", "0"), "OK");
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("masteruser")
        .query(&mut con)
        .unwrap();
    assert_eq!(got, ["masteruser", "repl"]);
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut con)
        .unwrap();
    assert_eq!(info_field(&info, "slave_priority"), "0");
    let bad: redis::RedisResult<String> = redis::cmd("CONFIG")
        .arg("SET")
        .arg("replica-priority")
        .arg("-1")
        .query(&mut con);
    assert!(bad
        .unwrap_err()
        .to_string()
        .contains("between 0 and 2147483647"));
    // The primary drops the link (the AUTH was refused): the next handshake uses the new pair.
    p.send(b"-WRONGPASS invalid username-password pair\r\n");
    drop(p);
    let mut p = accept(&listener);
    assert_eq!(read_command(&mut p), ["PING"]);
    p.send(b"+PONG\r\n");
    assert_eq!(read_command(&mut p), ["AUTH", "repl", "new"]);
}

/// A link that drops inside a transaction: the commands MULTI queued die with the link's
/// client, so the replica's offset stays before the MULTI (as Redis's `reploff`) and the
/// partial resync asks for the transaction again; the new link starts in the database the
/// stream had selected.
#[test]
fn a_link_dropped_inside_a_transaction_continues_from_its_multi() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let primary = listener.local_addr().unwrap();
    let srv = start_with(|c| {
        c.replicaof = vec!["127.0.0.1".into(), primary.port().to_string()];
    });
    let mut p = full_sync(&listener, &rdb());
    let before = [cmd(&[b"SELECT", b"2"]), cmd(&[b"SET", b"g", b"1"])].concat();
    let open = [cmd(&[b"MULTI"]), cmd(&[b"SET", b"h", b"2"])].concat();
    p.send(&before);
    p.send(&open);
    let mut con = srv.client();
    let sent = (before.len() + open.len()).to_string();
    let mut info = String::new();
    wait_for("the open transaction read", Duration::from_secs(10), || {
        info = redis::cmd("INFO")
            .arg("replication")
            .query(&mut con)
            .unwrap();
        info_field(&info, "slave_read_repl_offset") == sent
    });
    let applied = before.len() as i64;
    assert_eq!(info_field(&info, "slave_repl_offset"), applied.to_string());

    drop(p);
    let mut p = accept(&listener);
    answer_handshake(&mut p);
    let from = (applied + 1).to_string();
    assert_eq!(read_command(&mut p), ["PSYNC", REPLID, from.as_str()]);
    p.send(b"+CONTINUE\r\n");
    let tx = [open, cmd(&[b"SET", b"i", b"3"]), cmd(&[b"EXEC"])].concat();
    p.send(&tx);
    wait_ack(&mut p, applied + tx.len() as i64);
    let _: () = redis::cmd("SELECT").arg(2).query(&mut con).unwrap();
    let got: Vec<Option<String>> = redis::cmd("MGET")
        .arg(&["g", "h", "i"])
        .query(&mut con)
        .unwrap();
    assert_eq!(got, [Some("1".into()), Some("2".into()), Some("3".into())]);
}
