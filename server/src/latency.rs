//! The latency monitor (LATENCY): events whose latency reached `latency-monitor-threshold`,
//! each with a history of up to 160 samples, one per second (the worst of that second), and
//! its worst ever. One monitor per worker, locked only when a sample is added; LATENCY merges
//! them, keeping for each second the worst any worker saw.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
pub const HISTORY_LEN: usize = 160;

/// One sample: a second and the worst latency in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub unix_secs: i64,
    pub ms: u64,
}

/// One event's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Oldest first.
    pub samples: VecDeque<Sample>,
    pub max_ms: u64,
}

impl History {
    fn add(&mut self, s: Sample) {
        self.max_ms = self.max_ms.max(s.ms);
        if let Some(last) = self.samples.back_mut() {
            if last.unix_secs == s.unix_secs {
                last.ms = last.ms.max(s.ms);
                return;
            }
        }
        self.samples.push_back(s);
        if self.samples.len() > HISTORY_LEN {
            self.samples.pop_front();
        }
    }
}

/// The server's latency monitors, one per worker.
pub struct LatencyMonitor {
    workers: Box<[Mutex<BTreeMap<&'static str, History>>]>,
}

impl LatencyMonitor {
    pub fn new(workers: usize) -> LatencyMonitor {
        LatencyMonitor {
            workers: (0..workers).map(|_| Mutex::default()).collect(),
        }
    }

    /// Worker `worker` saw `event` take `ms` at `unix_secs`.
    pub fn add(&self, worker: usize, event: &'static str, unix_secs: i64, ms: u64) {
        if let Ok(mut events) = self.workers[worker].lock() {
            events
                .entry(event)
                .or_default()
                .add(Sample { unix_secs, ms });
        }
    }

    /// Every event's history, merged over the workers.
    pub fn merged(&self) -> BTreeMap<&'static str, History> {
        let mut per_second: BTreeMap<&'static str, (BTreeMap<i64, u64>, u64)> = BTreeMap::new();
        for w in self.workers.iter() {
            let Ok(events) = w.lock() else { continue };
            for (name, h) in events.iter() {
                let (seconds, max) = per_second.entry(name).or_default();
                *max = (*max).max(h.max_ms);
                for s in &h.samples {
                    let worst = seconds.entry(s.unix_secs).or_default();
                    *worst = (*worst).max(s.ms);
                }
            }
        }
        per_second
            .into_iter()
            .map(|(name, (seconds, max_ms))| {
                let skip = seconds.len().saturating_sub(HISTORY_LEN);
                let samples = seconds
                    .into_iter()
                    .skip(skip)
                    .map(|(unix_secs, ms)| Sample { unix_secs, ms })
                    .collect();
                (name, History { samples, max_ms })
            })
            .collect()
    }

    /// Forgets the named events (all when `names` is empty); returns how many had data.
    pub fn reset(&self, names: &[&[u8]]) -> usize {
        let mut reset = std::collections::BTreeSet::new();
        for w in self.workers.iter() {
            let Ok(mut events) = w.lock() else { continue };
            events.retain(|name, _| {
                let drop = names.is_empty() || names.contains(&name.as_bytes());
                if drop {
                    reset.insert(*name);
                }
                !drop
            });
        }
        reset.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sample_per_second_merged_across_workers() {
        let m = LatencyMonitor::new(2);
        m.add(0, "command", 100, 5);
        m.add(0, "command", 100, 3);
        m.add(1, "command", 100, 9);
        m.add(1, "command", 101, 2);
        m.add(0, "fast-command", 102, 1);
        let merged = m.merged();
        let c = &merged["command"];
        assert_eq!(
            c.samples.iter().copied().collect::<Vec<_>>(),
            [
                Sample {
                    unix_secs: 100,
                    ms: 9
                },
                Sample {
                    unix_secs: 101,
                    ms: 2
                }
            ]
        );
        assert_eq!(c.max_ms, 9);
        assert_eq!(m.reset(&[b"command", b"nosuch"]), 1);
        assert_eq!(m.merged().len(), 1);
        assert_eq!(m.reset(&[]), 1);
        assert!(m.merged().is_empty());
    }

    #[test]
    fn history_keeps_the_newest() {
        let m = LatencyMonitor::new(1);
        for s in 0..200 {
            m.add(0, "command", s, 1);
        }
        let h = &m.merged()["command"];
        assert_eq!(h.samples.len(), HISTORY_LEN);
        assert_eq!(h.samples[0].unix_secs, 40);
    }
}
