//! What a connection does for replication: hands a client that sent SYNC / PSYNC over to
//! the replication threads (its socket taken out of the runtime), and WAIT's wait for
//! replicas' acknowledgements, which holds this connection only.

use std::future::poll_fn;
use std::task::Poll;

use monoio::io::{OwnedReadHalf, OwnedWriteHalf};
use monoio::net::TcpStream;

use super::ConnShared;
use crate::commands;
use crate::shared::WorkerShared;

/// A client that became a replica (SYNC / PSYNC): its socket, blocking, and what it asked.
pub(crate) struct Handoff {
    pub socket: std::net::TcpStream,
    pub request: crate::backlog::SyncRequest,
    /// Its entry, still in the registry (CLIENT LIST shows it with flag `S`): the
    /// replication threads remove it when the link ends.
    pub entry: std::sync::Arc<crate::clients::ClientEntry>,
}

/// The connection's socket as a blocking std socket, for the replication threads: the two
/// halves put back together and taken out of the runtime (dropping the write half would
/// shut the socket down).
pub(super) fn into_std(
    rd: OwnedReadHalf<TcpStream>,
    wr: OwnedWriteHalf<TcpStream>,
) -> Option<std::net::TcpStream> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let stream = rd.reunite(wr).ok()?;
    let fd = stream.into_raw_fd();
    // SAFETY: `fd` is the connected TCP socket the runtime just gave up; nothing else owns it.
    let socket = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    match socket.set_nonblocking(false) {
        Ok(()) => Some(socket),
        Err(e) => {
            tracing::warn!(error = %e, "cannot hand a replica's socket over");
            None
        }
    }
}

/// WAIT's wait: until `wait.replicas` replicas acknowledged `wait.offset`, its deadline, the
/// client's end or the server's; the number that did.
pub(super) async fn wait_acks(conn: &ConnShared, w: &WorkerShared, wait: commands::WaitFor) -> i64 {
    let primary = &w.shared.primary;
    let enough = || primary.lock().acked(wait.offset) >= wait.replicas;
    loop {
        let now = crate::clock::now_ms();
        if enough()
            || (wait.deadline_ms != 0 && now >= wait.deadline_ms)
            || conn.is_closing()
            || conn.entry.is_killed()
            || w.shared.is_shutting_down()
        {
            break;
        }
        let left = if wait.deadline_ms == 0 {
            WAIT_SLICE
        } else {
            WAIT_SLICE.min(std::time::Duration::from_millis(
                (wait.deadline_ms - now) as u64,
            ))
        };
        let acked = poll_fn(|cx| {
            // Registered before looking, so an ACK in between wakes this.
            primary.on_ack(cx.waker());
            if enough() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        });
        let _ = monoio::time::timeout(left, acked).await;
    }
    primary.lock().acked(wait.offset) as i64
}

/// WAIT looks at the clock, the client and the server at least this often.
const WAIT_SLICE: std::time::Duration = std::time::Duration::from_millis(100);
