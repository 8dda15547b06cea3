//! Records read from disk for a caller, served from the read's own buffer.
//!
//! A cold read (see `cold`) reads a record that is not in memory with `O_DIRECT`: no page
//! cache insertion, no charge against a memory cap, no reclaim, no read-around. The bytes
//! then exist only in the read's buffer, so the caller that waited for them makes them visible
//! to its next reads with [`with_staged`]: inside it, a lookup that meets the record at that
//! segment and offset reads it from the buffer instead of the map (where the page is not
//! resident, and touching it would wait for the disk on the caller's thread).
//!
//! Records are immutable and segment ids are never reused, so a staged record is the same
//! bytes the map would give: serving one is never wrong, only faster. A lookup that finds
//! nothing staged reads the map as always.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::index::Loc;

/// The alignment and size unit of `O_DIRECT` reads: a multiple of every device's logical
/// block size in use (512 or 4096 bytes).
pub(crate) const BLOCK_BYTES: usize = 4096;

/// One aligned block of a read buffer.
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Block([u8; BLOCK_BYTES]);
const _: () = assert!(std::mem::align_of::<Block>() == BLOCK_BYTES);

/// A buffer of whole blocks, aligned for `O_DIRECT`.
#[derive(Default)]
pub(crate) struct AlignedBuf {
    blocks: Vec<Block>,
}

impl AlignedBuf {
    /// Grows the buffer to at least `bytes` (rounded up to whole blocks); keeps its content.
    pub(crate) fn reserve_bytes(&mut self, bytes: usize) {
        let n = bytes.div_ceil(BLOCK_BYTES);
        if self.blocks.len() < n {
            self.blocks.resize(n, Block([0; BLOCK_BYTES]));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.blocks.len() * BLOCK_BYTES
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `Block` is a plain byte array with no padding (repr(C), size 4096), so
        // `blocks` is `len()` initialised, contiguous bytes, borrowed for as long as `self`.
        unsafe { std::slice::from_raw_parts(self.blocks.as_ptr().cast::<u8>(), self.len()) }
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and the borrow of `self` is exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.blocks.as_mut_ptr().cast::<u8>(), self.len()) }
    }
}

/// One record read from disk, checked against its checksums, held for the callers that
/// waited for it.
pub struct StagedRecord {
    seg: u32,
    off: u32,
    buf: AlignedBuf,
    /// Where the record starts in `buf`, and its length.
    start: usize,
    len: usize,
    /// The engine's count of staged bytes alive, which this record is part of.
    counted: Arc<AtomicU64>,
}

impl StagedRecord {
    /// Takes `buf`, whose bytes `[start, start + len)` are the record at `off` of segment
    /// `seg`, checked; counts its size in `counted` until dropped.
    pub(crate) fn new(
        loc: Loc,
        buf: AlignedBuf,
        start: usize,
        len: usize,
        counted: Arc<AtomicU64>,
    ) -> StagedRecord {
        debug_assert!(start + len <= buf.len());
        counted.fetch_add(buf.len() as u64, Ordering::Relaxed);
        StagedRecord {
            seg: loc.seg,
            off: loc.off,
            buf,
            start,
            len,
            counted,
        }
    }

    /// The record's bytes (header, key, value).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf.as_slice()[self.start..self.start + self.len]
    }
}

impl Drop for StagedRecord {
    fn drop(&mut self) {
        self.counted
            .fetch_sub(self.buf.len() as u64, Ordering::Relaxed);
    }
}

/// Records a cold read produced for one caller (see [`crate::Fetch`]): keep it while the
/// commands that waited for it have not run, and run them inside [`with_staged`].
#[derive(Clone, Default)]
pub struct Staged(pub(crate) Vec<Arc<StagedRecord>>);

impl Staged {
    /// True when it holds no record.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

thread_local! {
    /// The records staged on this thread: a pointer to the first of `len` and the length, or
    /// null while none is (the common case, one load and a compare per lookup).
    static STAGED: Cell<(*const Arc<StagedRecord>, usize)> =
        const { Cell::new((std::ptr::null(), 0)) };
}

/// Runs `f` with `staged`'s records visible to every read this thread makes meanwhile: a
/// lookup of a record among them reads the buffer, not the map. Calls nest (the inner set
/// replaces the outer one until it returns).
///
/// Record bytes that reads hand out inside `f` borrow `staged`; the engine's API never lets
/// such a borrow leave the call that made it (values reach callers inside closures), so none
/// outlives `f`.
pub fn with_staged<R>(staged: &Staged, f: impl FnOnce() -> R) -> R {
    if staged.0.is_empty() {
        return f();
    }
    /// Puts back the outer set, also when `f` panics.
    struct Restore((*const Arc<StagedRecord>, usize));
    impl Drop for Restore {
        fn drop(&mut self) {
            STAGED.with(|s| s.set(self.0));
        }
    }
    let outer = STAGED.with(|s| s.replace((staged.0.as_ptr(), staged.0.len())));
    let _restore = Restore(outer);
    f()
}

/// The staged record at `loc` on this thread, if any. The caller must not keep the bytes past
/// the engine call it serves (see [`with_staged`]); `'a` is the caller's borrow of the
/// segment map, which lives no longer than that call.
#[inline]
pub(crate) fn find<'a>(loc: Loc) -> Option<&'a [u8]> {
    let (ptr, len) = STAGED.with(Cell::get);
    if ptr.is_null() {
        return None;
    }
    // SAFETY: `with_staged` set `(ptr, len)` from a live `&Staged` that it borrows until it
    // returns, and restores the outer value before that borrow ends; we are inside it (the
    // pointer is not null), so the slice and the records it points at are alive and not
    // mutated (`Staged` is only read through this shared borrow).
    let staged = unsafe { std::slice::from_raw_parts(ptr, len) };
    staged
        .iter()
        .find(|r| r.seg == loc.seg && r.off == loc.off)
        // SAFETY: the record is kept alive by the `Staged` borrowed for the whole
        // `with_staged` call, which the caller's use of the bytes does not outlive (see
        // above); the bytes are never written after `StagedRecord::new`.
        .map(|r| unsafe { std::slice::from_raw_parts(r.bytes().as_ptr(), r.len) })
}
