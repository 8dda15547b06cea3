//! The heap as the allocator reports it (glibc's `mallinfo2`), for MEMORY STATS and DOCTOR:
//! what the process allocated at start, now, and the most seen when asked.

use std::sync::atomic::{AtomicU64, Ordering};

/// Heap figures the server keeps: the start and the peak seen.
pub struct Heap {
    at_start_bytes: u64,
    peak_bytes: AtomicU64,
}

/// One reading of the heap.
#[derive(Debug, Clone, Copy)]
pub struct HeapFigures {
    /// Bytes handed out by the allocator.
    pub allocated: u64,
    /// Bytes the allocator took from the system (at least `allocated`).
    pub active: u64,
    /// `allocated` when the server started.
    pub at_start: u64,
    /// The most `allocated` seen by a reading.
    pub peak: u64,
}

impl Heap {
    /// Takes the start figure.
    pub fn new() -> Heap {
        let (allocated, _) = read();
        Heap {
            at_start_bytes: allocated,
            peak_bytes: AtomicU64::new(allocated),
        }
    }

    /// Reads the heap now and raises the peak.
    pub fn sample(&self) -> HeapFigures {
        let (allocated, active) = read();
        let peak = self
            .peak_bytes
            .fetch_max(allocated, Ordering::Relaxed)
            .max(allocated);
        HeapFigures {
            allocated,
            active,
            at_start: self.at_start_bytes,
            peak,
        }
    }
}

/// Bytes handed out, bytes taken from the system; zeros where the allocator cannot say.
fn read() -> (u64, u64) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value.
        let m = unsafe { libc::mallinfo2() };
        let allocated = (m.uordblks + m.hblkhd) as u64;
        let active = (m.arena + m.hblkhd) as u64;
        (allocated, active.max(allocated))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        (0, 0)
    }
}

/// glibc's own report of its arenas (MEMORY MALLOC-STATS), or a line saying there is none.
pub fn allocator_report() -> String {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value.
        let m = unsafe { libc::mallinfo2() };
        format!(
            "___ Begin glibc malloc statistics (mallinfo2) ___\n\
             arena: {}\nordblks: {}\nsmblks: {}\nhblks: {}\nhblkhd: {}\nusmblks: {}\n\
             fsmblks: {}\nuordblks: {}\nfordblks: {}\nkeepcost: {}\n\
             --- End glibc malloc statistics ---\n",
            m.arena,
            m.ordblks,
            m.smblks,
            m.hblks,
            m.hblkhd,
            m.usmblks,
            m.fsmblks,
            m.uordblks,
            m.fordblks,
            m.keepcost
        )
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        String::from("Stats not supported for the current allocator")
    }
}

/// Gives free heap pages back to the system (MEMORY PURGE).
pub fn purge() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory the allocator holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}
