//! Pub/Sub across workers: which clients listen to which channels and patterns, and each
//! subscriber's inbox.
//!
//! The registry maps a channel (or a pattern, or a shard channel) to its subscribers, behind
//! a read-write lock: PUBLISH takes it for reading, (UN)SUBSCRIBE for writing. A subscriber
//! is an [`Inbox`] its client's connection owns on its own worker: PUBLISH, on whatever
//! worker runs it, encodes the message into each matching inbox (under that inbox's mutex,
//! for as long as a copy takes) and wakes the connection's forwarding task, which moves the
//! bytes into the connection's replies. The publisher never waits for a subscriber's
//! socket. Messages from one publisher reach an inbox in the order they were published
//! (each PUBLISH finishes its pushes before the publisher's next command runs).
//!
//! An inbox holds at most the pubsub class's hard output limit: a subscriber whose worker
//! falls that far behind is closed, as is one whose unsent replies pass the limits (see
//! [`OutputLimits`]), as Redis closes a client over `client-output-buffer-limit pubsub`.
//!
//! Wake-ups are batched: while a connection runs a batch of commands (inside
//! [`deferring_wakes`]), the subscribers its PUBLISHes fill are woken once, at the end of the
//! batch, instead of once per message: a subscriber on another worker then gets one
//! cross-thread wake and one socket write for the whole batch.
//!
//! Publishing to a client from its own command (RESP3 lets a subscriber PUBLISH, and
//! keyspace notifications of its own writes) goes straight into its replies, before the
//! command's reply, as Redis does: see [`PubSub::publish`]'s `me`.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::task::{Context, Poll, Waker};

use crate::glob;
use crate::notify::{self, KeyspaceEvents};
use crate::protocol::reply;

/// The three kinds of subscription, each with its own namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// SUBSCRIBE / PUBLISH.
    Channel,
    /// PSUBSCRIBE: glob patterns matched against PUBLISH's channel.
    Pattern,
    /// SSUBSCRIBE / SPUBLISH (cluster mode off: plain channels of their own).
    Shard,
}

/// Writes the header of a pub/sub message of `n` elements: `*n` in RESP2, `>n` (a push) in
/// RESP3. The one place that knows how the two protocols frame them.
pub fn push_header(out: &mut Vec<u8>, resp3: bool, n: usize) {
    reply::aggregate_len(out, if resp3 { b'>' } else { b'*' }, n);
}

/// `message channel payload`, `smessage channel payload` or `pmessage pattern channel
/// payload`.
fn encode_message(
    out: &mut Vec<u8>,
    resp3: bool,
    kind: Kind,
    pattern: &[u8],
    channel: &[u8],
    msg: &[u8],
) {
    match kind {
        Kind::Channel => {
            push_header(out, resp3, 3);
            reply::bulk(out, b"message");
        }
        Kind::Shard => {
            push_header(out, resp3, 3);
            reply::bulk(out, b"smessage");
        }
        Kind::Pattern => {
            push_header(out, resp3, 4);
            reply::bulk(out, b"pmessage");
            reply::bulk(out, pattern);
        }
    }
    reply::bulk(out, channel);
    reply::bulk(out, msg);
}

thread_local! {
    /// Inside [`deferring_wakes`] on this thread: inbox wakers are queued, not woken.
    static DEFERRING: Cell<bool> = const { Cell::new(false) };
    /// The wakers queued by inbox pushes while deferring; woken when the scope ends.
    static DEFERRED: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` (one connection's batch of commands) with the wake-ups of the subscribers its
/// publishes fill deferred to its end: each subscriber is woken once per batch however many
/// messages it got. Nested calls defer to the outermost one. The wakers are woken even if `f`
/// panics.
pub fn deferring_wakes<R>(f: impl FnOnce() -> R) -> R {
    /// Wakes the deferred wakers when the outermost scope ends.
    struct Flush {
        nested: bool,
    }
    impl Drop for Flush {
        fn drop(&mut self) {
            if self.nested {
                return;
            }
            DEFERRING.with(|d| d.set(false));
            let mut wakers = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
            for waker in wakers.drain(..) {
                waker.wake();
            }
            // Keep the capacity for the next batch.
            DEFERRED.with(|d| *d.borrow_mut() = wakers);
        }
    }
    let nested = DEFERRING.with(|d| d.replace(true));
    let _flush = Flush { nested };
    f()
}

/// Wakes `waker` now, or at the end of the [`deferring_wakes`] scope this thread is in.
fn wake_or_defer(waker: Waker) {
    if DEFERRING.with(Cell::get) {
        DEFERRED.with(|d| d.borrow_mut().push(waker));
    } else {
        waker.wake();
    }
}

/// The pubsub class of `client-output-buffer-limit`, read by every push (relaxed loads).
#[derive(Debug)]
pub struct OutputLimits {
    hard_bytes: AtomicU64,
    soft_bytes: AtomicU64,
    soft_secs: AtomicU64,
}

impl Default for OutputLimits {
    /// Redis's default: `pubsub 32mb 8mb 60`.
    fn default() -> OutputLimits {
        OutputLimits {
            hard_bytes: AtomicU64::new(32 << 20),
            soft_bytes: AtomicU64::new(8 << 20),
            soft_secs: AtomicU64::new(60),
        }
    }
}

impl OutputLimits {
    /// Hard bytes, soft bytes, soft seconds; a 0 byte limit is no limit.
    pub fn get(&self) -> [u64; 3] {
        [
            self.hard_bytes.load(Ordering::Relaxed),
            self.soft_bytes.load(Ordering::Relaxed),
            self.soft_secs.load(Ordering::Relaxed),
        ]
    }

    pub fn set(&self, [hard, soft, secs]: [u64; 3]) {
        self.hard_bytes.store(hard, Ordering::Relaxed);
        self.soft_bytes.store(soft, Ordering::Relaxed);
        self.soft_secs.store(secs, Ordering::Relaxed);
    }

    /// Redis's `checkClientOutputBufferLimits`: whether a client with `queued_bytes` unsent
    /// must be closed now; `soft_since_ms` remembers since when it has been over the soft
    /// limit (0: it is not).
    pub fn exceeded(&self, queued_bytes: u64, soft_since_ms: &mut u64, now_ms: u64) -> bool {
        let [hard, soft, secs] = self.get();
        if hard > 0 && queued_bytes >= hard {
            return true;
        }
        if soft > 0 && queued_bytes >= soft {
            if *soft_since_ms == 0 {
                *soft_since_ms = now_ms.max(1);
                return false;
            }
            return now_ms.saturating_sub(*soft_since_ms) / 1000 > secs;
        }
        *soft_since_ms = 0;
        false
    }
}

#[derive(Default)]
struct InboxState {
    bytes: Vec<u8>,
    waker: Option<Waker>,
    /// More arrived than the hard limit allows before the connection took it: close it.
    overflowed: bool,
    /// The client left: drop what arrives.
    closed: bool,
}

/// What a subscriber's connection finds in its inbox.
#[derive(Debug, PartialEq, Eq)]
pub enum InboxEvent {
    /// Messages were moved out.
    Messages,
    /// The inbox passed the hard limit: close the connection.
    Overflowed,
    /// The client left.
    Closed,
}

/// The messages waiting for one subscribed client, filled by any worker.
pub struct Inbox {
    pub client_id: u64,
    /// The client's protocol is RESP3: messages are pushes (`>`).
    resp3: AtomicBool,
    state: Mutex<InboxState>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Inbox {
    pub fn new(client_id: u64, resp3: bool) -> Inbox {
        Inbox {
            client_id,
            resp3: AtomicBool::new(resp3),
            state: Mutex::default(),
        }
    }

    /// The client switched protocol (HELLO): later messages use the new framing.
    pub fn set_resp3(&self, resp3: bool) {
        self.resp3.store(resp3, Ordering::Relaxed);
    }

    fn resp3(&self) -> bool {
        self.resp3.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves waiting messages to the end of `into`, or says why there will be none.
    pub fn poll_take(&self, cx: &mut Context<'_>, into: &mut Vec<u8>) -> Poll<InboxEvent> {
        let mut s = self.lock();
        if s.closed {
            return Poll::Ready(InboxEvent::Closed);
        }
        if s.overflowed {
            return Poll::Ready(InboxEvent::Overflowed);
        }
        if !s.bytes.is_empty() {
            into.extend_from_slice(&s.bytes);
            s.bytes.clear();
            return Poll::Ready(InboxEvent::Messages);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Moves waiting messages to the end of `into` (before a reply of the client's own
    /// command, which must follow the messages published before it).
    pub fn drain_into(&self, into: &mut Vec<u8>) {
        let mut s = self.lock();
        if !s.bytes.is_empty() && !s.overflowed {
            into.extend_from_slice(&s.bytes);
            s.bytes.clear();
        }
    }

    fn push(&self, limits: &OutputLimits, encode: impl FnOnce(&mut Vec<u8>, bool)) {
        let resp3 = self.resp3();
        let waker = {
            let mut s = self.lock();
            if s.overflowed || s.closed {
                return;
            }
            encode(&mut s.bytes, resp3);
            let hard = limits.hard_bytes.load(Ordering::Relaxed);
            if hard > 0 && s.bytes.len() as u64 >= hard {
                s.overflowed = true;
                s.bytes = Vec::new();
            }
            s.waker.take()
        };
        if let Some(w) = waker {
            wake_or_defer(w);
        }
    }

    fn close(&self) {
        let mut s = self.lock();
        s.closed = true;
        s.bytes = Vec::new();
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

/// One client's subscriptions, kept in its session.
#[derive(Debug, Default)]
pub struct Subscriptions {
    /// Created at the first subscription, kept until the client leaves.
    pub inbox: Option<Arc<Inbox>>,
    /// A set, as Redis's dict: a client may subscribe to many channels in one command.
    channels: HashSet<Box<[u8]>>,
    /// In the order subscribed (PUNSUBSCRIBE without arguments answers in this order), and
    /// searched linearly, as Redis 7.0's list of a client's patterns.
    patterns: Vec<Box<[u8]>>,
    shard_channels: HashSet<Box<[u8]>>,
}

impl Subscriptions {
    fn contains(&self, kind: Kind, name: &[u8]) -> bool {
        match kind {
            Kind::Channel => self.channels.contains(name),
            Kind::Pattern => self.patterns.iter().any(|p| &**p == name),
            Kind::Shard => self.shard_channels.contains(name),
        }
    }

    /// Adds `name`; false when it was there already.
    fn insert(&mut self, kind: Kind, name: &[u8]) -> bool {
        match kind {
            Kind::Channel => self.channels.insert(name.into()),
            Kind::Shard => self.shard_channels.insert(name.into()),
            Kind::Pattern if self.contains(kind, name) => false,
            Kind::Pattern => {
                self.patterns.push(name.into());
                true
            }
        }
    }

    /// Removes `name`; false when it was not there.
    fn remove(&mut self, kind: Kind, name: &[u8]) -> bool {
        match kind {
            Kind::Channel => self.channels.remove(name),
            Kind::Shard => self.shard_channels.remove(name),
            Kind::Pattern => match self.patterns.iter().position(|p| &**p == name) {
                Some(i) => {
                    self.patterns.remove(i);
                    true
                }
                None => false,
            },
        }
    }

    /// Channels and patterns: the count SUBSCRIBE and PSUBSCRIBE reply with.
    pub fn count(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    pub fn channels(&self) -> usize {
        self.channels.len()
    }

    pub fn patterns(&self) -> usize {
        self.patterns.len()
    }

    pub fn shard_channels(&self) -> usize {
        self.shard_channels.len()
    }

    /// In subscribed mode (Redis's `CLIENT_PUBSUB` flag): any subscription of any kind.
    pub fn active(&self) -> bool {
        self.count() + self.shard_channels.len() > 0
    }

    /// The names of one kind, for UNSUBSCRIBE without arguments.
    pub fn names(&self, kind: Kind) -> Vec<Box<[u8]>> {
        match kind {
            Kind::Channel => self.channels.iter().cloned().collect(),
            Kind::Pattern => self.patterns.clone(),
            Kind::Shard => self.shard_channels.iter().cloned().collect(),
        }
    }
}

type Map = HashMap<Box<[u8]>, Vec<Arc<Inbox>>>;

/// Every subscription of every client.
#[derive(Default)]
pub struct PubSub {
    channels: RwLock<Map>,
    patterns: RwLock<Map>,
    shard_channels: RwLock<Map>,
    /// The pubsub class's output limits.
    pub limits: OutputLimits,
    /// `notify-keyspace-events`.
    pub events: KeyspaceEvents,
}

impl PubSub {
    fn map(&self, kind: Kind) -> &RwLock<Map> {
        match kind {
            Kind::Channel => &self.channels,
            Kind::Pattern => &self.patterns,
            Kind::Shard => &self.shard_channels,
        }
    }

    fn read(&self, kind: Kind) -> RwLockReadGuard<'_, Map> {
        self.map(kind).read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, kind: Kind) -> RwLockWriteGuard<'_, Map> {
        self.map(kind).write().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes the client to `name`; false when it already was.
    pub fn subscribe(
        &self,
        subs: &mut Subscriptions,
        inbox: &Arc<Inbox>,
        kind: Kind,
        name: &[u8],
    ) -> bool {
        if !subs.insert(kind, name) {
            return false;
        }
        self.write(kind)
            .entry(name.into())
            .or_default()
            .push(inbox.clone());
        true
    }

    /// Unsubscribes the client from `name`; false when it was not subscribed.
    pub fn unsubscribe(&self, subs: &mut Subscriptions, kind: Kind, name: &[u8]) -> bool {
        if !subs.remove(kind, name) {
            return false;
        }
        let Some(id) = subs.inbox.as_ref().map(|i| i.client_id) else {
            return true;
        };
        let mut map = self.write(kind);
        if let Some(inboxes) = map.get_mut(name) {
            inboxes.retain(|i| i.client_id != id);
            if inboxes.is_empty() {
                map.remove(name);
            }
        }
        true
    }

    /// The client left: drops its subscriptions and closes its inbox.
    pub fn leave(&self, subs: &mut Subscriptions) {
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            for name in subs.names(kind) {
                self.unsubscribe(subs, kind, &name);
            }
        }
        if let Some(inbox) = subs.inbox.take() {
            inbox.close();
        }
    }

    /// Delivers `msg` on `channel` (of `kind` Channel or Shard) to every subscriber of the
    /// channel and, for Channel, of every pattern matching it; returns how many received it
    /// (a client counted once per subscription that matched, as Redis counts). A message
    /// for `me` (the publishing client, by id) is written to `me`'s replies instead.
    pub fn publish(
        &self,
        kind: Kind,
        channel: &[u8],
        msg: &[u8],
        mut me: Option<(u64, &mut Vec<u8>, bool)>,
    ) -> usize {
        debug_assert!(kind != Kind::Pattern);
        let mut receivers = 0;
        let mut deliver =
            |inbox: &Inbox, pattern: &[u8], kind: Kind, encoded: &mut [Vec<u8>; 2]| {
                receivers += 1;
                match &mut me {
                    Some((id, out, resp3)) if *id == inbox.client_id => {
                        encode_message(out, *resp3, kind, pattern, channel, msg);
                    }
                    _ => inbox.push(&self.limits, |out, resp3| {
                        let frame = &mut encoded[usize::from(resp3)];
                        if frame.is_empty() {
                            encode_message(frame, resp3, kind, pattern, channel, msg);
                        }
                        out.extend_from_slice(frame);
                    }),
                }
            };
        // The message as each framing sends it (index: RESP3), encoded once for all the
        // subscribers of the channel, then once for all those of each matching pattern.
        let mut encoded: [Vec<u8>; 2] = Default::default();
        if let Some(inboxes) = self.read(kind).get(channel) {
            for inbox in inboxes {
                deliver(inbox, b"", kind, &mut encoded);
            }
        }
        if kind == Kind::Channel {
            let patterns = self.read(Kind::Pattern);
            for (pattern, inboxes) in patterns.iter() {
                if glob::matches(pattern, channel, false) {
                    encoded.iter_mut().for_each(Vec::clear);
                    for inbox in inboxes {
                        deliver(inbox, pattern, Kind::Pattern, &mut encoded);
                    }
                }
            }
        }
        receivers
    }

    /// A keyspace notification: `event` (of `class`, see `crate::notify`) happened to `key`
    /// in database `db`; published on `__keyspace@<db>__:<key>` and
    /// `__keyevent@<db>__:<event>` as `notify-keyspace-events` asks. `me` as for
    /// [`PubSub::publish`].
    pub fn key_event(
        &self,
        class: u32,
        event: &str,
        key: &[u8],
        db: u32,
        mut me: Option<(u64, &mut Vec<u8>, bool)>,
    ) {
        if !self.events.wants(class) {
            return;
        }
        let flags = self.events.flags();
        let mut channel = Vec::with_capacity(24 + key.len().max(event.len()));
        if flags & notify::KEYSPACE != 0 {
            let _ = write!(channel, "__keyspace@{db}__:");
            channel.extend_from_slice(key);
            let me = me.as_mut().map(|(id, out, r)| (*id, &mut **out, *r));
            self.publish(Kind::Channel, &channel, event.as_bytes(), me);
        }
        if flags & notify::KEYEVENT != 0 {
            channel.clear();
            let _ = write!(channel, "__keyevent@{db}__:{event}");
            self.publish(Kind::Channel, &channel, key, me);
        }
    }

    /// Channels (or shard channels) with subscribers, matching `pattern` if given.
    pub fn channels(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Box<[u8]>> {
        self.read(kind)
            .keys()
            .filter(|c| pattern.is_none_or(|p| glob::matches(p, c, false)))
            .cloned()
            .collect()
    }

    /// Subscribers of one channel (patterns not counted).
    pub fn subscribers(&self, kind: Kind, channel: &[u8]) -> usize {
        self.read(kind).get(channel).map_or(0, Vec::len)
    }

    /// Channels, patterns or shard channels with at least one subscriber.
    pub fn len(&self, kind: Kind) -> usize {
        self.read(kind).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(ps: &PubSub, id: u64, kind: Kind, names: &[&[u8]]) -> Subscriptions {
        let mut subs = Subscriptions::default();
        let inbox = Arc::new(Inbox::new(id, false));
        subs.inbox = Some(inbox.clone());
        for n in names {
            ps.subscribe(&mut subs, &inbox, kind, n);
        }
        subs
    }

    fn take(subs: &Subscriptions) -> Vec<u8> {
        let mut out = Vec::new();
        subs.inbox.as_ref().unwrap().drain_into(&mut out);
        out
    }

    #[test]
    fn publish_counts_channel_and_pattern_subscriptions() {
        let ps = PubSub::default();
        let a = client(&ps, 1, Kind::Channel, &[b"ch"]);
        let b = client(&ps, 2, Kind::Pattern, &[b"c*", b"*"]);
        assert_eq!(ps.publish(Kind::Channel, b"ch", b"hi", None), 3);
        assert_eq!(take(&a), b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
        let got = take(&b);
        assert_eq!(
            got.len(),
            2 * b"*4\r\n$8\r\npmessage\r\n$1\r\n*\r\n$2\r\nch\r\n$2\r\nhi\r\n".len() + 1
        );
        assert_eq!(ps.publish(Kind::Shard, b"ch", b"hi", None), 0);
        assert_eq!(ps.len(Kind::Pattern), 2);
        assert_eq!(ps.subscribers(Kind::Channel, b"ch"), 1);
    }

    #[test]
    fn leaving_removes_every_subscription_and_closes_the_inbox() {
        let ps = PubSub::default();
        let mut a = client(&ps, 1, Kind::Channel, &[b"x", b"y"]);
        let inbox = a.inbox.clone().unwrap();
        ps.leave(&mut a);
        assert_eq!(ps.len(Kind::Channel), 0);
        assert_eq!(ps.publish(Kind::Channel, b"x", b"m", None), 0);
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(
            inbox.poll_take(&mut cx, &mut Vec::new()),
            Poll::Ready(InboxEvent::Closed)
        );
    }

    #[test]
    fn an_inbox_overflows_at_the_hard_limit() {
        let ps = PubSub::default();
        ps.limits.set([100, 0, 0]);
        let a = client(&ps, 1, Kind::Channel, &[b"x"]);
        ps.publish(Kind::Channel, b"x", &[b'a'; 40], None);
        ps.publish(Kind::Channel, b"x", &[b'a'; 40], None);
        let mut cx = Context::from_waker(Waker::noop());
        let inbox = a.inbox.as_ref().unwrap();
        assert_eq!(
            inbox.poll_take(&mut cx, &mut Vec::new()),
            Poll::Ready(InboxEvent::Overflowed)
        );
    }

    #[test]
    fn soft_limit_closes_after_its_seconds() {
        let l = OutputLimits::default();
        l.set([0, 10, 2]);
        let mut since = 0;
        assert!(!l.exceeded(5, &mut since, 1000));
        assert!(!l.exceeded(10, &mut since, 1000));
        assert!(!l.exceeded(10, &mut since, 3000));
        assert!(l.exceeded(10, &mut since, 4000));
        assert!(!l.exceeded(9, &mut since, 5000));
        assert_eq!(since, 0);
    }

    #[test]
    fn resp3_messages_are_pushes() {
        let mut out = Vec::new();
        encode_message(&mut out, true, Kind::Pattern, b"p*", b"pq", b"m");
        assert_eq!(
            out,
            b">4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npq\r\n$1\r\nm\r\n"
        );
    }

    /// Counts its wakes.
    struct CountingWaker(AtomicU64);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_batch_wakes_each_subscriber_once_at_its_end() {
        let ps = PubSub::default();
        let a = client(&ps, 1, Kind::Channel, &[b"c"]);
        let b = client(&ps, 2, Kind::Pattern, &[b"c*"]);
        let counter = Arc::new(CountingWaker(AtomicU64::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        for subs in [&a, &b] {
            let inbox = subs.inbox.as_ref().unwrap();
            assert_eq!(inbox.poll_take(&mut cx, &mut Vec::new()), Poll::Pending);
        }
        deferring_wakes(|| {
            for _ in 0..3 {
                assert_eq!(ps.publish(Kind::Channel, b"c", b"m", None), 2);
            }
            deferring_wakes(|| ps.publish(Kind::Channel, b"c", b"m", None));
            assert_eq!(
                counter.0.load(Ordering::SeqCst),
                0,
                "woken inside the batch"
            );
        });
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            2,
            "one wake per subscriber"
        );
        let message = b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n";
        assert_eq!(take(&a), message.repeat(4));
        let pmessage = b"*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$1\r\nc\r\n$1\r\nm\r\n";
        assert_eq!(take(&b), pmessage.repeat(4));
        // Outside a batch, a push wakes at once.
        let inbox = a.inbox.as_ref().unwrap();
        assert_eq!(inbox.poll_take(&mut cx, &mut Vec::new()), Poll::Pending);
        ps.publish(Kind::Channel, b"c", b"m", None);
        assert_eq!(counter.0.load(Ordering::SeqCst), 3);
    }
}
