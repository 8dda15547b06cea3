//! The slow log: commands that ran longer than `slowlog-log-slower-than`, one log per worker
//! (a worker locks only its own, and only for a slow command), merged by id when read.
//! Ids come from one server-wide counter, touched only by slow commands, so the merged view
//! orders entries as they were logged.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Redis's `SLOWLOG_ENTRY_MAX_ARGC`: arguments kept per entry.
pub const ARGS_MAX: usize = 32;
/// Redis's `SLOWLOG_ENTRY_MAX_STRING`: bytes kept per argument.
pub const ARG_BYTES_MAX: usize = 128;

/// One logged command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    pub unix_secs: i64,
    pub duration_us: u64,
    /// The arguments as Redis keeps them (see [`entry_args`]).
    pub args: Vec<Box<[u8]>>,
    /// `ip:port` of the client.
    pub peer: String,
    pub name: Box<[u8]>,
}

/// The arguments an entry keeps: at most [`ARGS_MAX`] (the last then says how many more
/// there were), each cut at [`ARG_BYTES_MAX`] bytes with a note of how many more it had.
pub fn entry_args<'a>(args: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<Box<[u8]>> {
    let argc = args.len();
    let kept = argc.min(ARGS_MAX);
    let mut out = Vec::with_capacity(kept);
    for (j, a) in args.take(kept).enumerate() {
        if kept != argc && j == kept - 1 {
            out.push(
                format!("... ({} more arguments)", argc - kept + 1)
                    .into_bytes()
                    .into(),
            );
        } else if a.len() > ARG_BYTES_MAX {
            let mut s = a[..ARG_BYTES_MAX].to_vec();
            s.extend_from_slice(format!("... ({} more bytes)", a.len() - ARG_BYTES_MAX).as_bytes());
            out.push(s.into());
        } else {
            out.push(a.into());
        }
    }
    out
}

/// One worker's log, newest last.
#[derive(Default)]
pub struct SlowLog {
    entries: VecDeque<Entry>,
}

impl SlowLog {
    /// Adds an entry, dropping the oldest beyond `len_max`.
    pub fn push(&mut self, e: Entry, len_max: usize) {
        self.entries.push_back(e);
        while self.entries.len() > len_max {
            self.entries.pop_front();
        }
    }
}

/// The server's slow logs: one per worker, and the id counter.
pub struct SlowLogs {
    workers: Box<[Mutex<SlowLog>]>,
    next_id: AtomicU64,
}

impl SlowLogs {
    pub fn new(workers: usize) -> SlowLogs {
        SlowLogs {
            workers: (0..workers).map(|_| Mutex::default()).collect(),
            next_id: AtomicU64::new(0),
        }
    }

    /// The id for the next entry.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Logs an entry in worker `worker`'s log.
    pub fn push(&self, worker: usize, e: Entry, len_max: usize) {
        if let Ok(mut log) = self.workers[worker].lock() {
            log.push(e, len_max);
        }
    }

    /// The newest `count` entries of all workers (at most `len_max`), newest first.
    pub fn newest(&self, count: usize, len_max: usize) -> Vec<Entry> {
        let mut all: Vec<Entry> = Vec::new();
        for w in self.workers.iter() {
            if let Ok(log) = w.lock() {
                all.extend(log.entries.iter().rev().take(len_max).cloned());
            }
        }
        all.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
        all.truncate(count.min(len_max));
        all
    }

    /// How many entries the merged log holds.
    pub fn len(&self, len_max: usize) -> usize {
        let n: usize = self
            .workers
            .iter()
            .map(|w| w.lock().map_or(0, |log| log.entries.len()))
            .sum();
        n.min(len_max)
    }

    /// Empties every worker's log.
    pub fn reset(&self) {
        for w in self.workers.iter() {
            if let Ok(mut log) = w.lock() {
                log.entries.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64) -> Entry {
        Entry {
            id,
            unix_secs: 0,
            duration_us: id,
            args: Vec::new(),
            peer: String::new(),
            name: Box::default(),
        }
    }

    #[test]
    fn merges_workers_newest_first_within_the_length() {
        let logs = SlowLogs::new(2);
        for id in 0..6 {
            logs.push((id % 2) as usize, entry(id), 128);
        }
        let ids: Vec<u64> = logs.newest(10, 128).iter().map(|e| e.id).collect();
        assert_eq!(ids, [5, 4, 3, 2, 1, 0]);
        let ids: Vec<u64> = logs.newest(10, 4).iter().map(|e| e.id).collect();
        assert_eq!(ids, [5, 4, 3, 2]);
        assert_eq!(logs.len(4), 4);
        logs.push(0, entry(6), 1);
        assert_eq!(
            logs.len(128),
            4,
            "worker 0 keeps its one newest, worker 1 its three"
        );
        logs.reset();
        assert_eq!(logs.len(128), 0);
    }

    #[test]
    fn long_commands_are_cut_as_redis_cuts_them() {
        let long = vec![b'x'; 130];
        let args: Vec<&[u8]> = vec![b"set", &long];
        let kept = entry_args(args.into_iter());
        assert_eq!(kept[1].len(), 128 + "... (2 more bytes)".len());
        assert!(kept[1].ends_with(b"... (2 more bytes)"));
        let many: Vec<Vec<u8>> = (0..40).map(|i| format!("a{i}").into_bytes()).collect();
        let kept = entry_args(many.iter().map(Vec::as_slice));
        assert_eq!(kept.len(), 32);
        assert_eq!(&*kept[31], b"... (9 more arguments)");
        assert_eq!(&*kept[30], b"a30");
    }
}
