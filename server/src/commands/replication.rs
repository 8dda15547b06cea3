//! REPLICAOF / SLAVEOF, and what INFO replication and ROLE show of a replica, as Redis 7.0
//! writes them. The link itself is `crate::replication`'s thread; these commands only change
//! and read `crate::repl_state`.

use std::fmt::Write as _;
use std::time::Instant;

use super::Ctx;
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
    /// The primary's replication id, once a sync gave it.
    pub replid: Option<String>,
    /// The offset applied.
    pub offset: i64,
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
        "slave_priority:100\r\nslave_read_only:1\r\nreplica_announced:1\r\n"
    );
    Some(ReplicaInfo {
        replid: link.replid.clone(),
        offset: link.offset,
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
