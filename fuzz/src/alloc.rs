//! A global allocator that refuses any single allocation above [`ALLOCATION_MAX_BYTES`], so
//! "input never sizes an allocation" is checked on every run, with or without a sanitizer.
//! (libFuzzer's `-malloc_limit_mb` needs a sanitizer's malloc hooks, and a huge zeroed `Vec`
//! costs no resident memory until touched, so `-rss_limit_mb` alone would miss it.) It also
//! tracks the peak of live heap bytes, so a target can bound what one input may make the code
//! under test hold ([`reset_peak`], [`peak_since`]).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static PEAK_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Starts a new peak measurement; returns the bytes live now, to pass to [`peak_since`].
pub fn reset_peak() -> usize {
    let live = LIVE_BYTES.load(Ordering::Relaxed);
    PEAK_BYTES.store(live, Ordering::Relaxed);
    live
}

/// The most heap bytes live at once since [`reset_peak`] returned `base`, above `base`.
/// Process-wide: meaningful in a target whose code under test runs on the fuzzing thread.
pub fn peak_since(base: usize) -> usize {
    PEAK_BYTES.load(Ordering::Relaxed).saturating_sub(base)
}

fn grew(bytes: usize) {
    let live = LIVE_BYTES.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK_BYTES.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE_BYTES.fetch_sub(bytes, Ordering::Relaxed);
}

/// Far above anything a fuzz iteration needs (4 KiB segments, values up to 64 KiB, a 1 MiB
/// hint writer buffer), far below what an unchecked 32-bit length asks for.
pub const ALLOCATION_MAX_BYTES: usize = 64 << 20;

pub struct CappedAlloc;

impl CappedAlloc {
    fn check(size: usize) {
        if size > ALLOCATION_MAX_BYTES {
            // No allocation here: stderr is unbuffered and integers format on the stack.
            let _ = writeln!(
                std::io::stderr(),
                "flin-fuzz: allocation of {size} bytes exceeds ALLOCATION_MAX_BYTES \
                 ({ALLOCATION_MAX_BYTES}): a length from the input sized an allocation"
            );
            std::process::abort();
        }
    }
}

// SAFETY: forwards to the system allocator unchanged, after a size check that only aborts, and
// counts bytes in atomics (no allocation).
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::check(layout.size());
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrank(layout.size());
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::check(new_size);
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            // Counted as the new block before the old one goes, as a copying realloc holds both.
            grew(new_size);
            shrank(layout.size());
        }
        p
    }
}
