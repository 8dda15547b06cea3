//! One driver thread: owns a share of the connections and multiplexes them with epoll. Every
//! connection keeps one batch in flight; when its last reply arrives the next batch is written
//! at once, without waiting for a writable event.

use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::conn::{Conn, ReadOutcome, State};
use crate::epoll::{Epoll, Event, EVENTS_PER_WAIT_MAX};
use crate::shared::Shared;
use crate::tally::Tally;

/// Longest epoll wait: how often reply timeouts are checked when nothing happens.
pub const TICK: Duration = Duration::from_millis(50);

/// Drives `streams` (connection ids `first_id..`) until the run has no work left for them or
/// they all failed. Failures are counted in the returned tally, never raised.
pub fn drive(streams: Vec<TcpStream>, first_id: usize, thread: usize, shared: &Shared) -> Tally {
    let mut tally = Tally::new();
    let total = streams.len() as u64;
    let mut epoll = match Epoll::new() {
        Ok(epoll) => epoll,
        Err(e) => {
            tally.fail(total, || format!("thread {thread}: epoll_create1: {e}"));
            return tally;
        }
    };
    let mut conns = Vec::with_capacity(streams.len());
    for (token, stream) in streams.into_iter().enumerate() {
        match Conn::new(stream, first_id + token, token as u64, shared, &epoll) {
            Ok(conn) => conns.push(conn),
            Err(e) => tally.fail(1, || {
                format!("connection {}: epoll_ctl: {e}", first_id + token)
            }),
        }
    }
    for conn in &mut conns {
        if let Err(e) = conn.start_batch(shared, &epoll) {
            fail(conn, &epoll, &mut tally, &e);
        }
    }
    let mut events: Vec<Event> = Vec::with_capacity(EVENTS_PER_WAIT_MAX);
    let mut last_timeout_check = Instant::now();
    let tick_ms = TICK.as_millis() as i32;
    while conns.iter().any(|conn| conn.state() == State::Busy) {
        if let Err(e) = epoll.wait(tick_ms, |event| events.push(event)) {
            for conn in conns.iter_mut().filter(|conn| conn.state() == State::Busy) {
                fail(conn, &epoll, &mut tally, &format!("epoll_wait: {e}"));
            }
            break;
        }
        for event in events.drain(..) {
            let conn = &mut conns[event.token as usize];
            if conn.state() != State::Busy {
                continue;
            }
            if let Err(e) = on_event(conn, event, shared, &epoll, &mut tally) {
                fail(conn, &epoll, &mut tally, &e);
            }
        }
        shared.progress[thread]
            .0
            .store(tally.completed(), Ordering::Relaxed);
        let now = Instant::now();
        if now.duration_since(last_timeout_check) >= TICK {
            last_timeout_check = now;
            expire(&mut conns, now, shared, &epoll, &mut tally);
        }
    }
    tally
}

/// Handles one readiness event of a busy connection.
fn on_event(
    conn: &mut Conn,
    event: Event,
    shared: &Shared,
    epoll: &Epoll,
    tally: &mut Tally,
) -> Result<(), String> {
    if event.writable {
        conn.flush(epoll)?;
    }
    let readable = event.readable || event.closed;
    if readable && conn.on_readable(shared, tally)? == ReadOutcome::BatchDone {
        conn.start_batch(shared, epoll)?;
    }
    Ok(())
}

/// Fails busy connections whose batch waited longer than `--timeout`.
fn expire(conns: &mut [Conn], now: Instant, shared: &Shared, epoll: &Epoll, tally: &mut Tally) {
    let timeout = shared.config.timeout;
    for conn in conns.iter_mut() {
        if conn.state() == State::Busy && now.duration_since(conn.batch_sent_at()) > timeout {
            let message = format!("no reply within {:.1} s", timeout.as_secs_f64());
            fail(conn, epoll, tally, &message);
        }
    }
}

/// Counts a connection's outstanding requests as failed and closes it.
fn fail(conn: &mut Conn, epoll: &Epoll, tally: &mut Tally, reason: &str) {
    let outstanding = conn.outstanding().max(1);
    let id = conn.id();
    tally.fail(outstanding, || format!("connection {id}: {reason}"));
    conn.finish(epoll, State::Dead);
}
