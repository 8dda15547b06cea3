//! Stopping with replicas that lag, as Redis 7 does: SHUTDOWN (without NOW), SIGTERM and
//! SIGINT pause clients' writes and wait up to `shutdown-timeout` seconds (10 by default,
//! `--shutdown-timeout`, `CONFIG SET shutdown-timeout`; 0: no wait) for every online replica
//! to acknowledge the whole stream, asking them with `REPLCONF GETACK`; then the server stops
//! as before. Replicas that had everything continue with `+CONTINUE` after a restart (see
//! `docs/REPLICATION.md`, Restarts); without the wait, writes in flight at the SIGTERM made
//! them full-sync.
//!
//! `SHUTDOWN NOW` (or `FORCE`, which flin treats the same: it has no RDB save to fail), a
//! second signal, or [`crate::ServerHandle::request_shutdown`] stop at once, a wait in
//! progress included. `SHUTDOWN ABORT` ends a wait: writes go on and the server keeps running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backlog::ReplicaState;
use crate::pause::PauseMode;
use crate::shared::Shared;

/// How often the wait looks at the clock, a NOW or an ABORT when no ACK arrives.
const TICK: Duration = Duration::from_millis(100);

/// SHUTDOWN, SIGTERM, SIGINT: stops the server, after waiting for lagging replicas unless
/// `now` (see the module's documentation). A request while a wait runs joins it, or with
/// `now` ends it and stops at once.
pub fn begin(shared: &Arc<Shared>, now: bool) {
    if shared.is_shutting_down() {
        return;
    }
    let timeout = Duration::from_secs(shared.settings.shutdown_timeout_secs());
    if now || timeout.is_zero() || lagging(shared, offset(shared)).is_empty() {
        return shared.request_shutdown();
    }
    let id = {
        let mut running = shared.shutdown_wait.lock();
        if running.is_some() {
            return;
        }
        let id = shared.shutdown_wait.next_id();
        *running = Some(id);
        id
    };
    let deadline = Instant::now() + timeout;
    // Writes wait until the server stops (or an ABORT): the stream's end stays put.
    let now_ms = crate::clock::now_ms();
    let end_ms = now_ms.saturating_add(timeout.as_millis() as i64 + 60_000);
    shared.pause.pause(end_ms, PauseMode::Write, now_ms);
    tracing::info!(
        timeout_secs = timeout.as_secs(),
        "shutting down: writes paused, waiting for the replicas to acknowledge the whole \
         stream (SHUTDOWN NOW or a second signal stops at once, SHUTDOWN ABORT cancels)"
    );
    let for_thread = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("flin-shutdown".into())
        .spawn(move || wait(&for_thread, id, deadline));
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the wait for replicas; stopping without it");
        *shared.shutdown_wait.lock() = None;
        shared.request_shutdown();
    }
}

/// A second signal: stops at once if a wait runs, else as [`begin`] without NOW.
pub fn on_signal(shared: &Arc<Shared>) {
    let waiting = shared.shutdown_wait.is_waiting();
    if waiting {
        tracing::info!("second signal: stopping without waiting for the replicas");
    }
    begin(shared, waiting);
}

/// SHUTDOWN ABORT: ends a running wait and lifts its pause of writes; false when none runs.
/// A SHUTDOWN after it starts a new wait.
pub fn abort(shared: &Shared) -> bool {
    let mut running = shared.shutdown_wait.lock();
    if running.is_none() || shared.is_shutting_down() {
        return false;
    }
    *running = None;
    shared.pause.unpause();
    drop(running);
    tracing::info!("SHUTDOWN ABORT: the server goes on; writes resume");
    // The wait's thread sees it now rather than at its next tick.
    shared.primary.wake_ack_waiters();
    true
}

/// The wait's thread: until every online replica acknowledged the stream's end, the deadline,
/// a NOW (the server already stopping) or an ABORT.
fn wait(shared: &Arc<Shared>, id: u64, deadline: Instant) {
    let current = || *shared.shutdown_wait.lock() == Some(id);
    // A write that passed the pause's check before it was set is in a worker's batch: done
    // once every worker is between batches.
    drop(shared.exec_gate.exclusive());
    // The offset to be acknowledged, and the stream's end after the GETACK that asks for it:
    // anything written after that (an expired key's DEL, a PING) is asked for again.
    let (mut target, mut asked_end) = ask(shared);
    loop {
        if !current() {
            // Aborted: the server goes on.
            return;
        }
        if shared.is_shutting_down() {
            // Stopped by other means (SHUTDOWN NOW, a second signal).
            break;
        }
        let behind = lagging(shared, target);
        if behind.is_empty() {
            tracing::info!(
                offset = target,
                "every replica acknowledged the stream; stopping"
            );
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            tracing::warn!(
                offset = target,
                replicas = %behind.join(", "),
                "stopping although these replicas have not acknowledged the whole stream \
                 within shutdown-timeout; they will need a full sync when they reconnect \
                 (a larger CONFIG SET shutdown-timeout gives them longer)"
            );
            break;
        }
        shared.primary.wait_ack(TICK.min(deadline - now));
        if offset(shared) > asked_end {
            (target, asked_end) = ask(shared);
        }
    }
    let mut running = shared.shutdown_wait.lock();
    if *running != Some(id) {
        // Aborted just now: the server goes on.
        return;
    }
    *running = None;
    drop(running);
    shared.request_shutdown();
}

/// Sends `REPLCONF GETACK *` down the stream; returns the offset before it and after it.
fn ask(shared: &Shared) -> (i64, i64) {
    let mut stream = shared.primary.lock();
    let before = stream.offset;
    if !stream.replicas.is_empty() && !stream.mirroring {
        stream.feed(None, &[b"REPLCONF", b"GETACK", b"*"]);
    }
    (before, stream.offset)
}

/// The primary's stream offset now.
fn offset(shared: &Shared) -> i64 {
    shared.primary.lock().offset
}

/// The online replicas (`ip:port`) that have not acknowledged `target` yet.
fn lagging(shared: &Shared, target: i64) -> Vec<String> {
    if !shared.primary.is_active() {
        return Vec::new();
    }
    let stream = shared.primary.lock();
    if stream.mirroring {
        return Vec::new();
    }
    stream
        .replicas
        .iter()
        .filter(|r| r.dropped.is_none() && r.state == ReplicaState::Online && r.ack < target)
        .map(|r| r.name())
        .collect()
}
