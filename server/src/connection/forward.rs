//! The tasks that move what other threads produce for a client into its replies: MONITOR's
//! lines and pub/sub messages, each closing the client past its output limit.

use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;

use super::ConnShared;
use crate::stats;

/// Streams a monitoring client's lines (MONITOR, see `crate::monitor`) into its replies, until
/// the client leaves; closes the connection when lines pile up past its output limit (it
/// reads them slower than the server runs commands), as Redis closes a client over its output
/// buffer limit.
pub(super) async fn forward_monitor(
    sink: Arc<crate::monitor::Sink>,
    conn: Rc<ConnShared>,
    shared: Arc<crate::shared::Shared>,
    worker: usize,
) {
    use crate::monitor::SinkEvent;
    loop {
        let event = poll_fn(|cx| {
            if conn.is_closing() {
                return Poll::Ready((SinkEvent::Closed, 0));
            }
            let mut pending = conn.pending.borrow_mut();
            let before = pending.len();
            sink.poll_take(cx, &mut pending)
                .map(|e| (e, pending.len() - before))
        })
        .await;
        let limit = shared.settings.client_output_limit() as usize;
        match event {
            (SinkEvent::Lines, added) => {
                stats::add(&shared.workers[worker].output_queued_bytes, added as u64);
                let queued = conn.queued();
                conn.entry.note_unsent(queued);
                conn.wake_writer();
                if queued > limit {
                    tracing::info!(
                        client = sink.client_id,
                        queued,
                        "closing a monitor over the output limit"
                    );
                    conn.shut_both();
                    return;
                }
            }
            (SinkEvent::Overflowed, _) => {
                tracing::info!(
                    client = sink.client_id,
                    "closing a monitor over the output limit"
                );
                conn.shut_both();
                return;
            }
            (SinkEvent::Closed, _) => return,
        }
    }
}

/// Moves a subscriber's messages (see `crate::pubsub`) into its replies as they arrive, until
/// the client leaves; closes the connection when its unsent replies pass the pubsub class of
/// `client-output-buffer-limit` (hard, or soft for longer than its seconds), as Redis does,
/// logging the client's address. The publishers never wait for it.
pub(super) async fn forward_messages(
    inbox: Arc<crate::pubsub::Inbox>,
    conn: Rc<ConnShared>,
    shared: Arc<crate::shared::Shared>,
    worker: usize,
) {
    use crate::pubsub::InboxEvent;
    // Since when the replies have been over the soft limit (Unix ms), 0 when they are not.
    let mut soft_since_ms = 0;
    loop {
        let event = poll_fn(|cx| {
            if conn.is_closing() {
                return Poll::Ready((InboxEvent::Closed, 0));
            }
            let mut pending = conn.pending.borrow_mut();
            let before = pending.len();
            inbox
                .poll_take(cx, &mut pending)
                .map(|e| (e, pending.len() - before))
        })
        .await;
        let over = match event {
            (InboxEvent::Messages, added) => {
                stats::add(&shared.workers[worker].output_queued_bytes, added as u64);
                let queued = conn.queued();
                conn.entry.note_unsent(queued);
                conn.wake_writer();
                let now_ms = crate::clock::now_ms() as u64;
                shared
                    .pubsub
                    .limits
                    .exceeded(queued as u64, &mut soft_since_ms, now_ms)
            }
            (InboxEvent::Overflowed, _) => true,
            (InboxEvent::Closed, _) => return,
        };
        if over {
            tracing::warn!(
                client = inbox.client_id,
                addr = %conn.entry.addr,
                "closing a subscriber over the pubsub output buffer limit \
                 (client-output-buffer-limit pubsub)"
            );
            conn.shut_both();
            return;
        }
    }
}
