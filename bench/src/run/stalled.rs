//! `--stalled-clients`: connections that write pipelined GETs of one large value and never
//! read a reply, open while the measured clients run.
//!
//! Before the run one SET stores the value (key [`STALLED_KEY`]). Each stalled connection then
//! gets a thread that writes its whole batch of GETs with blocking writes: against a server
//! that stops reading a client whose replies pile up (flin's `--client-output-limit`) the write
//! blocks once the kernel's buffers are full; against one that buffers every reply (Redis by
//! default) it completes. Either way nothing is ever read. [`Stalled`] shuts the sockets
//! down, which ends a blocked write, and joins the threads when dropped.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::BenchError;
use crate::options::Stalled as StalledConfig;
use crate::resp::encode_command;

/// The key the stalled clients GET; outside the measured keys (`key:...`).
pub const STALLED_KEY: &[u8] = b"flin-bench:stalled";

/// The stalled connections of a run.
pub struct Stalled {
    conns: Vec<(TcpStream, JoinHandle<()>)>,
}

/// SETs the value, then opens the connections and starts their writers.
///
/// # Errors
/// [`BenchError::Stalled`] when the SET is not acknowledged, [`BenchError::Connect`] or
/// [`BenchError::Spawn`] when a connection or its thread cannot be made.
pub fn start(
    addr: SocketAddr,
    config: &StalledConfig,
    connect_timeout: Duration,
    reply_timeout: Duration,
) -> Result<Stalled, BenchError> {
    let connect = |client: usize| {
        TcpStream::connect_timeout(&addr, connect_timeout).map_err(|source| BenchError::Connect {
            addr,
            client,
            source,
        })
    };
    let mut setup = connect(0)?;
    let failed = |what: &str| {
        BenchError::Stalled(format!(
            "SET {} at {addr}: {what}",
            String::from_utf8_lossy(STALLED_KEY)
        ))
    };
    setup
        .set_read_timeout(Some(reply_timeout))
        .map_err(|e| failed(&e.to_string()))?;
    let value = vec![b's'; config.value_size_bytes];
    setup
        .write_all(&encode_command(&[b"SET", STALLED_KEY, &value]))
        .map_err(|e| failed(&e.to_string()))?;
    let mut reply = [0u8; 5];
    setup
        .read_exact(&mut reply)
        .map_err(|e| failed(&format!("no reply: {e}")))?;
    if &reply != b"+OK\r\n" {
        let mut rest = vec![0u8; 256];
        let n = setup.read(&mut rest).unwrap_or(0);
        let mut got = reply.to_vec();
        got.extend_from_slice(&rest[..n]);
        return Err(failed(&format!(
            "expected +OK, got {:?}",
            String::from_utf8_lossy(&got)
        )));
    }
    let one = encode_command(&[b"GET", STALLED_KEY]);
    let batch: std::sync::Arc<[u8]> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * config.requests as usize)
        .collect();
    // Built in place, so that a failure halfway closes the connections already open.
    let mut stalled = Stalled {
        conns: Vec::with_capacity(config.clients as usize),
    };
    for client in 0..config.clients as usize {
        let stream = connect(client)?;
        let mut writer = stream.try_clone().map_err(|source| BenchError::Connect {
            addr,
            client,
            source,
        })?;
        let batch = batch.clone();
        let handle = std::thread::Builder::new()
            .name(format!("flin-bench-stalled-{client}"))
            .spawn(move || {
                // Ends when everything went or the socket is shut down; never reads.
                let _ = writer.write_all(&batch);
            })
            .map_err(|source| BenchError::Spawn {
                thread: client,
                source,
            })?;
        stalled.conns.push((stream, handle));
    }
    Ok(stalled)
}

/// Closes the connections and joins their writers, however the run ended.
impl Drop for Stalled {
    fn drop(&mut self) {
        for (stream, handle) in self.conns.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
            let _ = handle.join();
        }
    }
}
