//! Damage to stores the engine wrote itself (segments and their hint files): after bit flips,
//! cut files, zeroed ranges and lost files, a store that opens never serves a value that was not written for its key, nor a key
//! that was never written. Undamaged, it serves exactly what was written. A cut through the
//! newest log segment after its last synced record (what a power cut leaves) never stops
//! `open`, even without repair, and every synced write not overwritten since is served.

#![no_main]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Result, Unstructured};
use flin_engine::testing::{SegmentHeader, SegmentKind, SEGMENT_HEADER_LEN};
use flin_engine::testing::scan_records;
use flin_engine::{Engine, Error};
use flin_fuzz::check::read_all;
use flin_fuzz::{options, scratch};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: flin_fuzz::alloc::CappedAlloc = flin_fuzz::alloc::CappedAlloc;

/// Keys live in a small space so that puts overwrite and deletes hit.
const KEYS: u8 = 16;
const OPS_MAX: usize = 200;
const DAMAGE_MAX: usize = 8;
/// Values up to half a segment: a few records roll the log.
const VALUE_LEN_MAX_BYTES: usize = 2048;

#[derive(Arbitrary, Debug)]
enum BuildOp {
    Put { key: u8, len: u16, fill: u8 },
    Delete(u8),
    Reopen,
    Compact,
    Clear,
}

#[derive(Arbitrary, Debug)]
enum Damage {
    Flip { file: u8, at: u32, xor: u8 },
    Truncate { file: u8, at: u32 },
    Zero { file: u8, at: u32, len: u16 },
    Remove { file: u8 },
}

#[derive(Debug)]
struct Input {
    ops: Vec<BuildOp>,
    damage: Vec<Damage>,
    repair: bool,
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let repair = u.arbitrary()?;
        let damage = u
            .arbitrary_iter()?
            .take(DAMAGE_MAX)
            .collect::<Result<Vec<_>>>()?;
        let ops = u
            .arbitrary_iter()?
            .take(OPS_MAX)
            .collect::<Result<Vec<_>>>()?;
        Ok(Input {
            ops,
            damage,
            repair,
        })
    }
}

fn key(k: u8) -> Vec<u8> {
    format!("key{}", k % KEYS).into_bytes()
}

/// One write of a key: its sequence number, and the value or `None` for a delete or FLUSHALL.
type Write = (u64, Option<Vec<u8>>);

/// What the build wrote: each key's writes in order, and the highest sequence number the engine
/// reported durable.
#[derive(Default)]
struct Written {
    events: BTreeMap<Vec<u8>, Vec<Write>>,
    durable_seq: u64,
}

impl Written {
    fn record(&mut self, key: Vec<u8>, seq: u64, value: Option<Vec<u8>>) {
        self.events.entry(key).or_default().push((seq, value));
    }

    /// The key's value after every write up to `seq`.
    fn value_at(&self, key: &[u8], seq: u64) -> Option<&Vec<u8>> {
        let events = self.events.get(key)?;
        let last = events.iter().rev().find(|(s, _)| *s <= seq)?;
        last.1.as_ref()
    }

    fn current(&self, key: &[u8]) -> Option<&Vec<u8>> {
        self.value_at(key, u64::MAX)
    }

    fn ever_written(&self, key: &[u8], value: &[u8]) -> bool {
        self.events
            .get(key)
            .is_some_and(|e| e.iter().any(|(_, v)| v.as_deref() == Some(value)))
    }

    /// What a power cut after `durable_seq` may leave for the key: its value then, or any
    /// value (or absence) written since.
    fn may_survive_cut(&self, key: &[u8], served: Option<&Vec<u8>>) -> bool {
        let at_sync = self.value_at(key, self.durable_seq);
        served == at_sync
            || self.events.get(key).is_some_and(|e| {
                e.iter()
                    .any(|(s, v)| *s > self.durable_seq && v.as_ref() == served)
            })
    }

    fn model(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.events
            .keys()
            .filter_map(|k| Some((k.clone(), self.current(k)?.clone())))
            .collect()
    }
}

fuzz_target!(|input: Input| {
    let dir = scratch::dir();
    let written = build(dir.path(), &input.ops);
    let crash_like = damage(dir.path(), &input.damage, written.durable_seq);
    let engine = match Engine::open(dir.path(), options(input.repair)) {
        Ok(e) => e,
        Err(e) => {
            assert!(
                !input.damage.is_empty() && !crash_like,
                "open failed on a store with no damage, or a power-cut tail only: {e}"
            );
            assert!(
                matches!(e, Error::Corrupt { .. } | Error::Io { .. }),
                "unexpected kind of error: {e:?}"
            );
            return;
        }
    };
    let snap = read_all(&engine);
    for (k, served) in &snap {
        assert!(
            written.ever_written(k, &served.value),
            "served a value never written for key {k:?}"
        );
        assert_eq!(served.expire_at_ms, 0);
    }
    for k in 0..KEYS {
        let k = key(k);
        let got = engine.get(&k);
        assert_eq!(
            got.as_ref(),
            snap.get(&k).map(|s| &s.value),
            "get and scan disagree"
        );
        if crash_like {
            assert!(
                written.may_survive_cut(&k, got.as_ref()),
                "after a cut past the last sync (seq {}), key {k:?} holds neither its value \
                 then nor one written later",
                written.durable_seq
            );
        }
    }
    if input.damage.is_empty() {
        let exact: BTreeMap<Vec<u8>, Vec<u8>> =
            snap.into_iter().map(|(k, s)| (k, s.value)).collect();
        let model = written.model();
        assert_eq!(
            exact, model,
            "undamaged store differs from what was written"
        );
        assert_eq!(engine.len(), model.len() as u64);
    }
});

/// Runs the operations on a fresh store in `dir` and closes it.
fn build(dir: &Path, ops: &[BuildOp]) -> Written {
    let mut w = Written::default();
    let mut engine = Engine::open(dir, options(false)).expect("open");
    for op in ops {
        match *op {
            BuildOp::Put { key: k, len, fill } => {
                let k = key(k);
                let n = w.events.get(&k).map_or(0, Vec::len);
                // The prefix makes every value unique to its key and write.
                let mut v = format!("{}#{n}#", String::from_utf8_lossy(&k)).into_bytes();
                v.resize(v.len() + usize::from(len) % VALUE_LEN_MAX_BYTES, fill);
                let token = engine.put(&k, &v, 0).expect("put");
                w.record(k, token.seq(), Some(v));
            }
            BuildOp::Delete(k) => {
                let k = key(k);
                let token = engine.delete(&k).expect("delete");
                assert_eq!(token.is_some(), w.current(&k).is_some());
                if let Some(t) = token {
                    w.record(k, t.seq(), None);
                }
            }
            BuildOp::Reopen => {
                engine.close().expect("close");
                engine = Engine::open(dir, options(false)).expect("reopen");
            }
            BuildOp::Compact => {
                engine.compact_now().expect("compact");
            }
            BuildOp::Clear => {
                engine.clear().expect("clear");
                let seq = engine.stats().last_seq;
                for k in 0..KEYS {
                    w.record(key(k), seq, None);
                }
            }
        }
        // What the engine has synced by now (at a reopen, a FLUSHALL, a roll, before a
        // compaction deletes its inputs) is what a power cut cannot take back.
        w.durable_seq = w.durable_seq.max(engine.stats().durable_seq);
    }
    engine.close().expect("close");
    w
}

/// The store's segment and hint files, by name: each segment before its hint.
fn store_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list the store")
        .map(|e| e.expect("list the store").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg" || e == "hint"))
        .collect();
    v.sort();
    v
}

/// Applies the damage; returns true when it is only what a power cut can leave: one cut
/// through the newest log segment, after every record that was on disk at `durable_seq`.
fn damage(dir: &Path, damage: &[Damage], durable_seq: u64) -> bool {
    let files = store_files(dir);
    if files.is_empty() {
        return false;
    }
    let pick = |i: u8| &files[usize::from(i) % files.len()];
    let mut crash_like = false;
    for (n, d) in damage.iter().enumerate() {
        match *d {
            Damage::Flip { file, at, xor } => edit(pick(file), |b| {
                let i = at as usize % b.len().max(1);
                if let Some(x) = b.get_mut(i) {
                    *x ^= xor;
                }
            }),
            Damage::Truncate { file, at } => {
                let path = pick(file);
                let Ok(meta) = std::fs::metadata(path) else {
                    continue; // removed by an earlier damage
                };
                let len = meta.len();
                let at = u64::from(at) % (len + 1);
                crash_like = damage.len() == 1
                    && n == 0
                    && Some(path) == newest_log(&files).as_ref()
                    && at >= synced_end(path, durable_seq);
                edit(path, |b| b.truncate(at as usize));
            }
            Damage::Zero { file, at, len } => edit(pick(file), |b| {
                let from = (at as usize % b.len().max(1)).min(b.len());
                let to = (from + usize::from(len)).min(b.len());
                b[from..to].fill(0);
            }),
            Damage::Remove { file } => {
                let path = pick(file);
                if path.exists() {
                    std::fs::remove_file(path).expect("remove");
                }
            }
        }
    }
    crash_like
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let Ok(mut b) = std::fs::read(path) else {
        return; // removed by an earlier damage
    };
    f(&mut b);
    std::fs::write(path, b).expect("write");
}

/// The newest segment written by the log (compaction outputs may have higher ids).
fn newest_log(files: &[PathBuf]) -> Option<PathBuf> {
    let segments = files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "seg"));
    segments.rev().find_map(|p| {
        let b = std::fs::read(p).ok()?;
        let h = SegmentHeader::decode(&b, p).ok()?;
        (h.kind == SegmentKind::Log).then(|| p.clone())
    })
}

/// The offset just past the last record with a sequence number at or below `durable_seq`.
fn synced_end(path: &Path, durable_seq: u64) -> u64 {
    let b = std::fs::read(path).expect("read");
    let mut end = SEGMENT_HEADER_LEN as u64;
    scan_records(&b, SEGMENT_HEADER_LEN as u64, |off, h, rec| {
        if h.seq <= durable_seq {
            end = off + rec.len() as u64;
        }
    });
    end
}
