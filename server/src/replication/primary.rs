//! The primary's side of a replica's link: after SYNC / PSYNC on a client connection, the
//! worker hands the socket here (`connection::Handoff`) and two std threads take it over, off
//! the workers: a sender (the `+FULLRESYNC` or `+CONTINUE` line, the RDB payload of a full
//! sync, then the stream from the replica's position in `crate::backlog`) and a reader (the
//! replica's `REPLCONF ACK <offset>`, for WAIT, INFO and ROLE). Either ending ends both: the
//! sender shuts the socket down, the reader marks the replica gone.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bumpalo::Bump;

use super::snapshot;
use crate::backlog::{ReplicaState, SyncRequest};
use crate::clients::ClientEntry;
use crate::connection::Handoff;
use crate::protocol::{Frame, Limits, Parser};
use crate::shared::Shared;

/// Redis's `repl-timeout`: a replica that reads nothing or acknowledges nothing for this long
/// is dropped.
const REPL_TIMEOUT: Duration = Duration::from_secs(60);
/// Most stream bytes copied out of the backlog per write to the socket.
const SEND_CHUNK_BYTES: usize = 256 * 1024;
/// How often a waiting sender looks at the server's state.
const SENDER_TICK: Duration = Duration::from_millis(100);
/// The longest request a replica may send on its link (REPLCONF ACK and friends).
const ACK_REQUEST_BYTES_MAX: usize = 4096;

/// Most replica links at once (two threads each): a replica's connection leaves the client
/// count, so `--maxclients` does not bound them.
const REPLICA_LINKS_MAX: usize = 128;
/// Most full syncs at once (each holds a checkpoint and an RDB file until sent); a replica
/// past it is closed and retries, as after any dropped link.
const FULL_SYNCS_MAX: usize = 4;

/// Counts one more in `counter` unless it is at `max` already; the caller gives it back with
/// a [`Release`].
fn take_slot(counter: &AtomicUsize, max: usize) -> bool {
    if counter.fetch_add(1, Relaxed) >= max {
        counter.fetch_sub(1, Relaxed);
        return false;
    }
    true
}

/// Gives back a slot [`take_slot`] counted, on drop.
struct Release<'a>(&'a AtomicUsize);

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// Takes a replica's entry out of CLIENT LIST when its link ends.
struct Listed(Arc<Shared>, Arc<ClientEntry>);

impl Drop for Listed {
    fn drop(&mut self) {
        self.0.registry.remove(self.1.id);
    }
}

/// Takes over a client that sent SYNC or PSYNC: its threads serve it from now on.
pub(crate) fn attach(shared: Arc<Shared>, h: Handoff) {
    let Handoff {
        mut socket,
        request,
        entry,
    } = h;
    let listed = Listed(shared.clone(), entry.clone());
    let addr = match socket.peer_addr() {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "a replica left before its sync started");
            return;
        }
    };
    let name = format!("{}:{}", addr.ip(), request.port);
    if !take_slot(&shared.primary.links, REPLICA_LINKS_MAX) {
        tracing::warn!(replica = %name, max = REPLICA_LINKS_MAX,
                       "refusing a replica: as many replicas as flin serves are attached");
        let _ = socket.write_all(b"-ERR too many replicas attached to this primary\r\n");
        return;
    }
    let counted = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("flin-repl-send".into())
        .spawn(move || {
            let _listed = listed;
            let _release = Release(&shared.primary.links);
            let mut id = None;
            if let Err(e) = serve(&shared, socket, &request, addr, &entry, &mut id) {
                tracing::warn!(replica = %name, error = %e,
                               "replica link ended; the replica reconnects and resyncs by itself");
            }
            if let Some(id) = id {
                shared.primary.lock().detach(id);
            }
        });
    if let Err(e) = spawned {
        counted.primary.links.fetch_sub(1, Relaxed);
        tracing::error!(error = %e, "cannot start a replica's thread; the replica will retry");
    }
}

fn serve(
    shared: &Arc<Shared>,
    socket: TcpStream,
    request: &SyncRequest,
    addr: SocketAddr,
    entry: &Arc<ClientEntry>,
    id: &mut Option<u64>,
) -> io::Result<()> {
    socket.set_write_timeout(Some(REPL_TIMEOUT))?;
    socket.set_nodelay(true)?;
    let mut out = socket.try_clone()?;
    let name = format!("{}:{}", addr.ip(), request.port);
    let counters = &shared.primary;
    let continued = request.continue_from.as_ref().and_then(|(replid, from)| {
        let mut stream = shared.primary.lock();
        if !stream.can_continue(replid, *from) {
            return None;
        }
        let shut = socket.try_clone().ok();
        *id = Some(stream.attach(addr, request.port, *from, ReplicaState::Online, shut));
        Some((stream.replid.clone(), *from))
    });
    if let Some((replid, from)) = continued {
        counters.sync_partial_ok.fetch_add(1, Relaxed);
        let line = if request.psync2 {
            format!("+CONTINUE {replid}\r\n")
        } else {
            "+CONTINUE\r\n".to_owned()
        };
        out.write_all(line.as_bytes())?;
        tracing::info!(replica = %name, from, "partial resync: sending the backlog from the replica's offset");
    } else {
        if request.continue_from.is_some() {
            counters.sync_partial_err.fetch_add(1, Relaxed);
        }
        full_sync(shared, &socket, &mut out, request, addr, id)?;
    }
    let Some(me) = *id else {
        return Ok(());
    };
    let reader = {
        let (shared, socket, entry) = (shared.clone(), socket.try_clone()?, entry.clone());
        std::thread::Builder::new()
            .name("flin-repl-acks".into())
            .spawn(move || read_acks(&shared, me, socket, &entry))?
    };
    let sent = send_stream(shared, me, &mut out, entry);
    let _ = socket.shutdown(std::net::Shutdown::Both);
    let _ = reader.join();
    sent
}

/// `+FULLRESYNC`, the snapshot, its RDB as `$<len>` and the bytes.
fn full_sync(
    shared: &Shared,
    socket: &TcpStream,
    out: &mut TcpStream,
    request: &SyncRequest,
    addr: SocketAddr,
    id: &mut Option<u64>,
) -> io::Result<()> {
    let name = format!("{}:{}", addr.ip(), request.port);
    let started = Instant::now();
    if !take_slot(&shared.primary.full_syncs, FULL_SYNCS_MAX) {
        return Err(io::Error::other(format!(
            "{FULL_SYNCS_MAX} full syncs are running; this replica retries in a moment"
        )));
    }
    let _release = Release(&shared.primary.full_syncs);
    let snap = snapshot::take(shared, addr, request, socket.try_clone().ok())?;
    *id = Some(snap.replica);
    shared.primary.sync_full.fetch_add(1, Relaxed);
    tracing::info!(replica = %name, replid = %snap.replid, offset = snap.offset,
                   "full sync: snapshot taken, encoding it as RDB");
    if request.psync {
        out.write_all(format!("+FULLRESYNC {} {}\r\n", snap.replid, snap.offset).as_bytes())?;
    }
    let (mut file, len) = snapshot::encode(shared, &snap, || out.write_all(b"\n"))?;
    set_state(shared, snap.replica, ReplicaState::SendBulk);
    out.write_all(format!("${len}\r\n").as_bytes())?;
    let copied = io::copy(&mut file, out)?;
    if copied != len {
        return Err(io::Error::other(format!(
            "the RDB file shrank while being sent ({copied} of {len} bytes)"
        )));
    }
    set_state(shared, snap.replica, ReplicaState::Online);
    tracing::info!(replica = %name, bytes = len, ms = started.elapsed().as_millis() as u64,
                   "full sync sent; streaming from the snapshot's offset");
    Ok(())
}

fn set_state(shared: &Shared, id: u64, state: ReplicaState) {
    if let Some(r) = shared.primary.lock().replica(id) {
        r.state = state;
    }
}

/// Sends the stream from the replica's position until it is cut off, the socket fails or the
/// server stops.
fn send_stream(
    shared: &Shared,
    id: u64,
    out: &mut TcpStream,
    entry: &ClientEntry,
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(SEND_CHUNK_BYTES);
    loop {
        if entry.is_killed() {
            // It reconnects and continues, as a Redis replica killed by CLIENT KILL does.
            return Err(io::Error::other("killed by CLIENT KILL"));
        }
        buf.clear();
        let taken = {
            let mut stream = shared.primary.lock();
            match stream.take_for(id, SEND_CHUNK_BYTES, &mut buf) {
                Some(n) => Ok(n),
                None => Err(stream
                    .replicas
                    .iter()
                    .find(|r| r.id == id)
                    .and_then(|r| r.dropped.clone())
                    .unwrap_or_else(|| "detached".to_owned())),
            }
        };
        match taken {
            Err(why) => return Err(io::Error::other(why)),
            Ok(0) => {
                if shared.is_shutting_down() {
                    return Ok(());
                }
                shared.primary.wait_more(id, SENDER_TICK);
            }
            Ok(_) => out.write_all(&buf)?,
        }
    }
}

/// Reads the replica's requests: `REPLCONF ACK <offset> [FACK <offset>]` is recorded, the
/// rest ignored. Ends when the link fails or is silent past [`REPL_TIMEOUT`], and then cuts
/// the replica off (which ends the sender).
fn read_acks(shared: &Shared, id: u64, mut socket: TcpStream, entry: &ClientEntry) {
    let why = match ack_loop(shared, id, &mut socket, entry) {
        Ok(()) => "the replica closed the link".to_owned(),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            format!("no ACK for {} s (repl-timeout)", REPL_TIMEOUT.as_secs())
        }
        Err(e) => format!("reading its ACKs failed: {e}"),
    };
    if let Some(r) = shared.primary.lock().replica(id) {
        r.cut_off(why);
    }
    shared.primary.wake_senders();
}

fn ack_loop(
    shared: &Shared,
    id: u64,
    socket: &mut TcpStream,
    entry: &ClientEntry,
) -> io::Result<()> {
    socket.set_read_timeout(Some(REPL_TIMEOUT))?;
    let limits = Limits {
        bulk_len_max: ACK_REQUEST_BYTES_MAX,
        authenticated: true,
    };
    let mut parser = Parser::new();
    let mut arena = Bump::new();
    let mut buf = Vec::with_capacity(ACK_REQUEST_BYTES_MAX);
    let mut chunk = [0u8; 1024];
    loop {
        if shared.is_shutting_down() {
            return Ok(());
        }
        let n = socket.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        entry.touch(crate::clock::now_ms() as u64);
        buf.extend_from_slice(&chunk[..n]);
        let mut pos = 0;
        loop {
            let frame = parser
                .parse(&buf[pos..], &arena, limits)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.message()))?;
            match frame {
                None => break,
                Some(Frame::Empty { consumed }) => pos += consumed,
                Some(Frame::Command { args, consumed }) => {
                    pos += consumed;
                    if let Some(offset) = ack_offset(args) {
                        shared.primary.ack(id, offset);
                    }
                }
            }
        }
        buf.drain(..pos);
        arena.reset();
        if buf.len() > ACK_REQUEST_BYTES_MAX * 2 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the replica sent a request too long for its link",
            ));
        }
    }
}

/// The offset of `REPLCONF ACK <offset> ...`.
fn ack_offset(args: &[&[u8]]) -> Option<i64> {
    if args.len() >= 3
        && args[0].eq_ignore_ascii_case(b"REPLCONF")
        && args[1].eq_ignore_ascii_case(b"ACK")
    {
        crate::commands::parse_i64(args[2])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_are_recognised() {
        assert_eq!(ack_offset(&[b"REPLCONF", b"ACK", b"42"]), Some(42));
        assert_eq!(
            ack_offset(&[b"replconf", b"ack", b"7", b"FACK", b"7"]),
            Some(7)
        );
        assert_eq!(ack_offset(&[b"REPLCONF", b"ACK", b"x"]), None);
        assert_eq!(ack_offset(&[b"REPLCONF", b"GETACK", b"*"]), None);
        assert_eq!(ack_offset(&[b"PING"]), None);
    }
}
