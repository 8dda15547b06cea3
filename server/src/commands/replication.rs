//! REPLICAOF / SLAVEOF, the primary's side of the handshake (REPLCONF, SYNC, PSYNC), WAIT,
//! and what INFO replication and ROLE show, as Redis 7.0 writes them. The links themselves are
//! `crate::replication`'s threads; these commands only change and read `crate::repl_state`
//! (the replica side) and `crate::backlog` (the primary side).

use std::fmt::Write as _;
use std::time::Instant;

use super::Ctx;
use crate::backlog::ReplicaState;
use crate::protocol::reply;
use crate::repl_state::LinkState;

/// REPLICAOF host port | REPLICAOF NO ONE (SLAVEOF is the same command).
pub fn replicaof(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if args[1].eq_ignore_ascii_case(b"no") && args[2].eq_ignore_ascii_case(b"one") {
        if ctx.server.replica.lock().primary.is_some() {
            if !record_role(ctx, None) {
                return;
            }
            if ctx.server.replica.set_primary(None) {
                // Keeps the data and the stream: replicas of the old primary that have its
                // stream up to here can go on with this one.
                ctx.with_stream(|s| s.shift_replid());
                tracing::info!("MASTER MODE enabled (user request)");
            }
        }
        reply::ok(ctx.out);
        return;
    }
    let port = super::parse_i64(args[2])
        .filter(|p| (0..=65535).contains(p))
        .map(|p| p as u16);
    let Some(port) = port else {
        reply::err(ctx.out, "Invalid master port");
        return;
    };
    let host = String::from_utf8_lossy(args[1]).into_owned();
    let target = Some((host.clone(), port));
    if ctx.server.replica.lock().primary != target && !record_role(ctx, target.as_ref()) {
        return;
    }
    if ctx.server.replica.set_primary(target) {
        // Our replicas would follow a stream that is no longer ours: they reconnect and
        // resync, as Redis's do.
        ctx.with_stream(|s| s.drop_replicas("this server became a replica of another (REPLICAOF)"));
        ctx.server.primary.wake_senders();
        tracing::info!(primary = %format!("{host}:{port}"), "REPLICAOF enabled (user request)");
        reply::ok(ctx.out);
    } else {
        reply::simple(ctx.out, b"OK Already connected to specified master");
    }
}

/// Keeps the new role in the data directory, so it survives a restart; on failure answers an
/// error saying so (the role is then left as it was) and returns false.
fn record_role(ctx: &mut Ctx<'_>, primary: Option<&(String, u16)>) -> bool {
    let dir = &ctx.server.config.dir;
    match crate::repl_state::save_role(dir, primary) {
        Ok(()) => true,
        Err(e) => {
            let path = dir.join(crate::repl_state::ROLE_FILE);
            tracing::error!(file = %path.display(), error = %e, "cannot record the replication role");
            reply::err(
                ctx.out,
                &format!(
                    "cannot record the new role in {}: {e}; the role is unchanged",
                    path.display()
                ),
            );
            false
        }
    }
}

/// What a replica's INFO replication shows after Redis's own lines.
pub struct ReplicaInfo {
    /// Keys of types flin does not store, skipped in full syncs (`flin_skipped_keys`).
    pub skipped_keys: u64,
}

/// The replica's part of INFO replication, from `role` to `replica_announced`; `None` when
/// this server is a primary.
pub fn info_replica(ctx: &Ctx<'_>, s: &mut String) -> Option<ReplicaInfo> {
    let link = ctx.server.replica.lock();
    let (host, port) = link.primary.clone()?;
    let now = Instant::now();
    let connected = link.state == LinkState::Connected;
    let (offset, read_offset) = if link.replid.is_some() {
        (link.offset, link.read_offset)
    } else {
        (1, 1)
    };
    let _ = write!(
        s,
        "role:slave\r\nmaster_host:{host}\r\nmaster_port:{port}\r\n"
    );
    let _ = write!(
        s,
        "master_link_status:{}\r\n",
        if connected { "up" } else { "down" }
    );
    let last_io = match link.last_io {
        Some(t) if connected => now.duration_since(t).as_secs() as i64,
        _ => -1,
    };
    let _ = write!(s, "master_last_io_seconds_ago:{last_io}\r\n");
    let syncing = link.state == LinkState::Sync;
    let _ = write!(s, "master_sync_in_progress:{}\r\n", u8::from(syncing));
    let _ = write!(
        s,
        "slave_read_repl_offset:{read_offset}\r\nslave_repl_offset:{offset}\r\n"
    );
    if syncing {
        let total = link.sync_total_bytes;
        let read = link.sync_read_bytes;
        let perc = if total > 0 {
            read as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let _ = write!(
            s,
            "master_sync_total_bytes:{}\r\nmaster_sync_read_bytes:{read}\r\n\
             master_sync_left_bytes:{}\r\nmaster_sync_perc:{perc:.2}\r\n\
             master_sync_last_io_seconds_ago:0\r\n",
            if total > 0 { total as i64 } else { -1 },
            if total > 0 {
                total as i64 - read as i64
            } else {
                -1
            },
        );
    }
    if !connected {
        let since = link
            .down_since
            .map_or(-1, |t| now.duration_since(t).as_secs() as i64);
        let _ = write!(s, "master_link_down_since_seconds:{since}\r\n");
    }
    let _ = write!(
        s,
        "slave_priority:{}\r\nslave_read_only:{}\r\nreplica_announced:1\r\n",
        ctx.server.settings.replica_priority(),
        u8::from(ctx.server.settings.replica_read_only())
    );
    Some(ReplicaInfo {
        skipped_keys: link.skipped_keys,
    })
}

/// ROLE of a replica: `slave`, host, port, the link's state, the offset applied (-1 before
/// the first sync). False when this server is a primary.
pub fn role_replica(ctx: &mut Ctx<'_>) -> bool {
    let link = ctx.server.replica.lock();
    let Some((host, port)) = link.primary.clone() else {
        return false;
    };
    let state = link.state.name();
    let offset = if link.replid.is_some() && link.state == LinkState::Connected {
        link.offset
    } else {
        -1
    };
    drop(link);
    reply::array_len(ctx.out, 5);
    reply::bulk(ctx.out, b"slave");
    reply::bulk(ctx.out, host.as_bytes());
    reply::integer(ctx.out, i64::from(port));
    reply::bulk(ctx.out, state.as_bytes());
    reply::integer(ctx.out, offset);
    true
}

/// REPLCONF option value ...: what a replica says about itself before SYNC / PSYNC.
pub fn replconf(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if args.len() % 2 == 0 {
        return super::syntax_error(ctx.out);
    }
    for pair in args[1..].chunks(2) {
        let (option, value) = (pair[0], pair[1]);
        if option.eq_ignore_ascii_case(b"listening-port") {
            match super::parse_i64(value) {
                Some(p) => ctx.client.replconf.port = p.clamp(0, 65535) as u16,
                None => return super::not_integer(ctx.out),
            }
        } else if option.eq_ignore_ascii_case(b"capa") {
            if value.eq_ignore_ascii_case(b"psync2") {
                ctx.client.replconf.psync2 = true;
            }
        } else if option.eq_ignore_ascii_case(b"ack")
            || option.eq_ignore_ascii_case(b"fack")
            || option.eq_ignore_ascii_case(b"getack")
        {
            // A replica's ACKs arrive on its link (`replication::primary`), a primary's GETACK
            // on ours (`replication::replica`): on a client connection they mean nothing, and
            // get no reply, as on Redis.
            return;
        } else if !option.eq_ignore_ascii_case(b"ip-address")
            && !option.eq_ignore_ascii_case(b"rdb-only")
            && !option.eq_ignore_ascii_case(b"rdb-filter-only")
        {
            let msg = format!(
                "Unrecognized REPLCONF option: {}",
                String::from_utf8_lossy(super::c_str(option, 128))
            );
            return reply::err(ctx.out, &msg);
        }
    }
    reply::ok(ctx.out);
}

/// SYNC, and PSYNC replid offset: the connection becomes a replica's link, served by the
/// replication threads from the next step on (no reply here: they write `+FULLRESYNC` or
/// `+CONTINUE`).
pub fn sync(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if ctx.server.replica.is_replica() {
        // flin does not chain replicas: a replica's stream is its primary's.
        let link = ctx.server.replica.lock().state;
        if link != LinkState::Connected {
            return reply::error(
                ctx.out,
                b"NOMASTERLINK Can't SYNC while not connected with my master",
            );
        }
        return reply::err(
            ctx.out,
            "this flin-server is a replica and does not serve replicas of its own: point the \
             replica at the primary",
        );
    }
    let psync = args[0].eq_ignore_ascii_case(b"psync");
    let mut request = ctx.client.replconf.clone();
    request.psync = psync;
    if psync {
        let Some(offset) = super::parse_i64(args[2]) else {
            return super::not_integer(ctx.out);
        };
        if args[1] != b"?" {
            let replid = String::from_utf8_lossy(args[1]).into_owned();
            request.continue_from = Some((replid, offset));
        }
    }
    ctx.client.handoff = Some(request);
}

/// WAIT numreplicas timeout: the number of replicas that acknowledged this client's last
/// write, once there are `numreplicas` of them or the timeout (ms; 0: none) passed. Waits on
/// the connection (`connection::Step::Wait`), never on the worker.
pub fn wait(ctx: &mut Ctx<'_>, args: &[&[u8]]) {
    if ctx.server.replica.is_replica() {
        return reply::err(
            ctx.out,
            "WAIT cannot be used with replica instances. Please also note that since Redis 4.0 \
             if a replica is configured to be writable (which is not the default) writes to \
             replicas are just local and are not propagated.",
        );
    }
    let Some(replicas) = super::parse_i64(args[1]) else {
        return super::not_integer(ctx.out);
    };
    let Some(timeout_ms) = super::parse_i64(args[2]) else {
        return reply::err(ctx.out, "timeout is not an integer or out of range");
    };
    if timeout_ms < 0 {
        return reply::err(ctx.out, "timeout is negative");
    }
    let offset = ctx.client.woff;
    let acked = ctx.read_stream(|s| s.acked(offset));
    if acked as i64 >= replicas || ctx.client.in_exec {
        return reply::integer(ctx.out, acked as i64);
    }
    // Ask the replicas for their offsets now rather than at their next second.
    ctx.with_stream(|s| {
        if !s.replicas.is_empty() && !s.mirroring {
            s.feed(None, &[b"REPLCONF", b"GETACK", b"*"]);
        }
    });
    ctx.client.wait = Some(super::WaitFor {
        offset,
        replicas: replicas as usize,
        deadline_ms: if timeout_ms == 0 {
            0
        } else {
            crate::clock::now_ms().saturating_add(timeout_ms)
        },
    });
}

/// A primary's part of INFO replication, from `role` to `repl_backlog_histlen` (a replica's
/// lines come first, from [`info_replica`]).
pub fn info_primary(ctx: &Ctx<'_>, s: &mut String, is_replica: bool) {
    ctx.read_stream(|stream| info_stream(stream, s, is_replica));
}

fn info_stream(stream: &crate::backlog::Stream, s: &mut String, is_replica: bool) {
    if !is_replica {
        s.push_str("role:master\r\n");
    }
    let _ = write!(s, "connected_slaves:{}\r\n", stream.replicas.len());
    let now = Instant::now();
    for (i, r) in stream.replicas.iter().enumerate() {
        let _ = write!(
            s,
            "slave{i}:ip={},port={},state={},offset={},lag={}\r\n",
            r.addr.ip(),
            r.port,
            r.state.name(),
            r.ack,
            now.duration_since(r.ack_at).as_secs()
        );
    }
    let _ = write!(
        s,
        "master_failover_state:no-failover\r\nmaster_replid:{}\r\nmaster_replid2:{}\r\n\
         master_repl_offset:{}\r\nsecond_repl_offset:{}\r\nrepl_backlog_active:{}\r\n\
         repl_backlog_size:{}\r\nrepl_backlog_first_byte_offset:{}\r\n\
         repl_backlog_histlen:{}\r\n",
        stream.replid,
        stream.replid2,
        stream.offset,
        stream.second_offset,
        u8::from(stream.active()),
        stream.backlog_size(),
        stream.backlog_first(),
        stream.backlog_histlen(),
    );
}

/// ROLE of a primary: `master`, its offset, and each online replica's ip, port and
/// acknowledged offset.
pub fn role_primary(ctx: &mut Ctx<'_>) {
    let (offset, online) = ctx.read_stream(|stream| {
        let online: Vec<_> = stream
            .replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Online && r.dropped.is_none())
            .map(|r| (r.addr.ip().to_string(), r.port, r.ack))
            .collect();
        (stream.offset, online)
    });
    reply::array_len(ctx.out, 3);
    reply::bulk(ctx.out, b"master");
    reply::integer(ctx.out, offset);
    reply::array_len(ctx.out, online.len());
    for (ip, port, ack) in online {
        reply::array_len(ctx.out, 3);
        reply::bulk(ctx.out, ip.as_bytes());
        reply::bulk(ctx.out, port.to_string().as_bytes());
        reply::bulk(ctx.out, ack.to_string().as_bytes());
    }
}
