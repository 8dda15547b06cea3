//! One segment file: mapped at its full capacity, written through the shared writable map, read
//! through the same map, sealed (truncated to its written length and synced).
//!
//! Writes go straight into the page cache through the map: no system call per record, and a
//! killed process loses nothing the map received. The file itself grows with `posix_fallocate`
//! a chunk ([`ALLOC_CHUNK`]) at a time, always before a writer stores past its end
//! ([`Segment::reserve`]): a full disk is an error returned to that write, never a SIGBUS on a
//! store, and an empty or half-full segment takes a chunk or two of disk, not its capacity.
//!
//! Records are immutable once written. The single writer of a segment (the log, under its lock,
//! or the compaction thread that owns an output) writes only past every published record, and
//! readers read only records the index or a scan has published, so the raw map is never read and
//! written at the same place at once.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{Error, Result};
use crate::format::{SegmentHeader, SegmentKind, SEGMENT_HEADER_LEN};

/// How a segment's bytes are about to be read, for the kernel's read-ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Point reads: bring in only the pages asked for.
    Random,
    /// A scan from start to end.
    Sequential,
}

/// The fields an append writes.
struct Written {
    /// Bytes of the file that hold the header and complete records.
    len: AtomicU64,
    /// Bytes the file has on disk (its size): the writer stores only below this.
    allocated: AtomicU64,
    /// Lowest and highest sequence number of a record in the segment (0 when none).
    min_seq: AtomicU64,
    max_seq: AtomicU64,
    /// Log segments: the prealloc thread faults pages in ahead of the writer, up to this
    /// offset, a chunk at a time (see [`Segment::wants_populate`]).
    populated: AtomicU64,
    populate_requested: AtomicBool,
}

/// Aligns its content to its own pair of cache lines (adjacent-line prefetch included).
#[repr(align(128))]
struct Padded<T>(T);

pub struct Segment {
    pub id: u32,
    pub kind: SegmentKind,
    /// Changes when a prepared or compacted segment is renamed into place.
    path: parking_lot::Mutex<PathBuf>,
    file: File,
    map: MmapRaw,
    /// Written by every append to the active segment: kept off the cache line of the fields
    /// readers load, so two writers and the readers do not pass that line around.
    written: Padded<Written>,
    /// Bytes of records that no index entry points at any more (added to by overwrites from
    /// any thread).
    dead_bytes: Padded<AtomicU64>,
    sealed: AtomicBool,
    /// Set when compaction or FLUSHALL retires the segment: the file is removed on drop, once no
    /// reader holds the segment any more.
    obsolete: AtomicBool,
    /// Set when a compaction run copied what it kept of the segment and leaves the retirement
    /// to the log's next sync (see `Registry::retire_when_durable`): no run takes it again.
    retiring: AtomicBool,
    /// False for a segment loaded from a hint file until its records were checked against
    /// their checksums (and the hint against the records); reads verify records until then.
    verified: AtomicBool,
    /// A hint file describes this segment as it is.
    hinted: AtomicBool,
    /// The segment may hold records that compaction keeps with no index entry pointing at
    /// them (tombstones, flush records, transaction commits: [`crate::format::FLAGS_UNINDEXED`]),
    /// so compaction must walk all its records rather than only those the index points at.
    /// True for a segment opened from disk until recovery has read its records.
    unindexed: AtomicBool,
    corrupt_reads: AtomicU64,
    /// The map's pages below this offset were dropped from the page tables before a sync
    /// (see [`Segment::sync`]); only the syncing thread moves it.
    released: AtomicU64,
    /// Serialises growing the file (the writer and the prealloc thread may both ask).
    growing: parking_lot::Mutex<()>,
    /// The file opened again with `O_DIRECT`, for cold reads (`None`: the file system
    /// refused); opened at the first cold read.
    direct: std::sync::OnceLock<Option<File>>,
}

impl Segment {
    /// Creates `dir/<id>.seg` (or `path` as given) mapped for `capacity_bytes`, with its first
    /// chunk allocated, and writes the header.
    ///
    /// # Errors
    /// I/O errors, including a full disk when allocating.
    pub fn create(path: PathBuf, id: u32, kind: SegmentKind, capacity_bytes: u64) -> Result<Self> {
        assert!(capacity_bytes >= SEGMENT_HEADER_LEN as u64);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create segment", &path, e))?;
        let built = (|| {
            let first = capacity_bytes.min(ALLOC_CHUNK);
            allocate(&file, 0, first).map_err(|e| Error::io("fallocate", &path, e))?;
            let map = MmapOptions::new()
                .len(capacity_bytes as usize)
                .map_raw(&file)
                .map_err(|e| Error::io("mmap", &path, e))?;
            let seg = Segment::from_parts(path.clone(), file, map, id, kind, 0);
            seg.advise(Access::Random);
            seg.written.0.allocated.store(first, Ordering::Release);
            seg.mark_verified();
            seg.unindexed.store(false, Ordering::Relaxed);
            let header = SegmentHeader {
                kind,
                segment_id: id,
            }
            .encode();
            // SAFETY: nothing is published yet; we are the only user of the map.
            unsafe { seg.write_at(0, &header) };
            seg.written
                .0
                .len
                .store(SEGMENT_HEADER_LEN as u64, Ordering::Release);
            Ok(seg)
        })();
        if built.is_err() {
            let _ = std::fs::remove_file(&path);
        }
        built
    }

    /// Maps an existing segment file of `file_len` bytes for recovery; the caller checks the
    /// header and scans the records.
    pub fn open_existing(path: &Path) -> Result<(File, MmapRaw, u64)> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open segment", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat segment", path, e))?
            .len();
        if len == 0 {
            return Err(Error::Corrupt {
                path: path.to_path_buf(),
                offset: 0,
                reason: "empty segment file".into(),
            });
        }
        let map = MmapOptions::new()
            .len(len as usize)
            .map_raw(&file)
            .map_err(|e| Error::io("mmap", path, e))?;
        Ok((file, map, len))
    }

    pub fn from_parts(
        path: PathBuf,
        file: File,
        map: MmapRaw,
        id: u32,
        kind: SegmentKind,
        len: u64,
    ) -> Segment {
        let mapped = map.len() as u64;
        Segment {
            id,
            kind,
            path: parking_lot::Mutex::new(path),
            file,
            map,
            written: Padded(Written {
                len: AtomicU64::new(len),
                allocated: AtomicU64::new(mapped),
                min_seq: AtomicU64::new(0),
                max_seq: AtomicU64::new(0),
                populated: AtomicU64::new(0),
                populate_requested: AtomicBool::new(false),
            }),
            dead_bytes: Padded(AtomicU64::new(0)),
            sealed: AtomicBool::new(false),
            obsolete: AtomicBool::new(false),
            retiring: AtomicBool::new(false),
            verified: AtomicBool::new(false),
            hinted: AtomicBool::new(false),
            unindexed: AtomicBool::new(true),
            corrupt_reads: AtomicU64::new(0),
            released: AtomicU64::new(0),
            growing: parking_lot::Mutex::new(()),
            direct: std::sync::OnceLock::new(),
        }
    }

    /// The file opened for `O_DIRECT` reads (through `/proc/self/fd`, so a rename does not
    /// matter; without access-time updates where the process may ask), or `None` where the
    /// file system does not allow it.
    pub fn direct_file(&self) -> Option<&File> {
        self.direct
            .get_or_init(|| {
                use std::os::unix::fs::OpenOptionsExt;
                let via = format!("/proc/self/fd/{}", self.file.as_raw_fd());
                let open = |path: &Path, flags| {
                    OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_DIRECT | flags)
                        .open(path)
                };
                // O_NOATIME: a read of the segment being written would otherwise update its
                // access time, a journaled inode write (relatime updates it while older than
                // the modification time). Refused (EPERM) when the file is not ours.
                open(Path::new(&via), libc::O_NOATIME)
                    .or_else(|_| open(Path::new(&via), 0))
                    .or_else(|_| open(&self.path(), 0))
                    .map_err(|e| {
                        tracing::debug!(
                            path = %self.path().display(),
                            error = %e,
                            "no O_DIRECT reads for this segment; cold reads use the page cache"
                        );
                    })
                    .ok()
            })
            .as_ref()
    }

    pub fn path(&self) -> PathBuf {
        self.path.lock().clone()
    }

    /// Renames the file (e.g. `x.seg.tmp` to `x.seg`). Sync the directory afterwards.
    ///
    /// # Errors
    /// The rename error; the segment keeps its old name then.
    pub fn rename(&self, to: PathBuf) -> Result<()> {
        let mut path = self.path.lock();
        std::fs::rename(&*path, &to).map_err(|e| Error::io("rename segment", &*path, e))?;
        *path = to;
        Ok(())
    }

    /// Faults in the pages of `[populated, end)` writable, so appends there take no page fault;
    /// only pages the file already holds (see [`Segment::reserve`]).
    pub fn populate_to(&self, end: u64) {
        let page = page_size();
        // Page-aligned, so the next call starts on a page; the file's end may be mid-page.
        let cap = self.allocated();
        let end = if end >= cap { cap } else { end / page * page };
        // Never a page that holds written bytes: the writer faulted those in itself, and
        // under memory pressure they may since have been dropped on purpose (a request that
        // waited for a core while the writer went past `populated` brought evicted records
        // back into memory, found by the cold-read tests under the full suite's load).
        let start = self
            .written
            .0
            .populated
            .load(Ordering::Acquire)
            .max(self.len().div_ceil(page) * page);
        // In steps: the call holds the process's mmap lock (shared) while it faults pages in,
        // 2-8 ms for a 2 MiB chunk here, and any thread that changes a mapping meanwhile waits
        // that long; a worker whose allocator grows its heap (`mprotect`) among them, and with
        // it every client of that worker. A step of [`POPULATE_STEP`] holds it ~0.1 ms.
        let mut at = start;
        while at < end {
            let to = (at + POPULATE_STEP).min(end);
            // Racing the writer in the same pages is harmless: it changes no contents.
            // A failure (a kernel without the advice, a file just cut) gives the range up:
            // the writer faults its pages in itself.
            let to = if self.madvise_pages(at, to, MADV_POPULATE_WRITE, "MADV_POPULATE_WRITE") {
                to
            } else {
                end
            };
            self.written.0.populated.fetch_max(to, Ordering::AcqRel);
            at = to;
        }
        self.written
            .0
            .populate_requested
            .store(false, Ordering::Release);
    }

    /// True, once per chunk, when the writer at `len` is within [`POPULATE_CHUNK`] of the end
    /// of the faulted-in pages: the caller asks the prealloc thread for more. Faulting a whole
    /// segment in up front would leave its unwritten pages dirty: every sync of the active
    /// segment would write them back as zeros and write-protect each one.
    pub fn wants_populate(&self, len: u64) -> bool {
        let w = &self.written.0;
        let populated = w.populated.load(Ordering::Relaxed);
        // A plain load first: while a request is pending (the prealloc thread may be waiting
        // for a core), every append would otherwise do a locked swap.
        len + POPULATE_CHUNK > populated
            && populated < self.capacity()
            && !w.populate_requested.load(Ordering::Relaxed)
            && !w.populate_requested.swap(true, Ordering::AcqRel)
    }

    /// Bytes the map covers.
    pub fn capacity(&self) -> u64 {
        self.map.len() as u64
    }

    /// Bytes the file takes on disk: its written length once sealed, up to a chunk or two more
    /// while written.
    pub fn allocated(&self) -> u64 {
        self.written.0.allocated.load(Ordering::Acquire)
    }

    /// Grows the file so that it holds at least `end` bytes (at most the capacity), a whole
    /// [`ALLOC_CHUNK`] at a time; true when it grew. Every writer calls it before storing past
    /// [`Segment::allocated`], so a store never lands beyond the end of the file (a SIGBUS).
    ///
    /// # Errors
    /// The fallocate error (a full disk): nothing was written, the write can be retried.
    pub fn reserve(&self, end: u64) -> Result<bool> {
        if end <= self.allocated() {
            return Ok(false);
        }
        let _g = self.growing.lock();
        let have = self.allocated();
        // A sealed file keeps the length `seal` cut it to: growing it again (the prealloc
        // thread reserving ahead while the writer seals) left a tail no hint describes, so the
        // next open distrusted the hint and scanned the segment.
        if end <= have || self.is_sealed() {
            return Ok(false);
        }
        let cap = self.capacity();
        assert!(end <= cap, "reserve to {end} past segment capacity {cap}");
        let want = (end.div_ceil(ALLOC_CHUNK) * ALLOC_CHUNK).min(cap);
        allocate(&self.file, have, want - have)
            .map_err(|e| Error::io("fallocate", self.path(), e))?;
        self.written.0.allocated.store(want, Ordering::Release);
        Ok(true)
    }

    pub fn len(&self) -> u64 {
        self.written.0.len.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.len() <= SEGMENT_HEADER_LEN as u64
    }

    pub fn set_len(&self, len: u64) {
        assert!(len <= self.capacity());
        self.written.0.len.store(len, Ordering::Release);
    }

    pub fn dead_bytes(&self) -> u64 {
        self.dead_bytes.0.load(Ordering::Relaxed)
    }

    /// Bytes of records still live: the written length less the dead bytes (which can run
    /// ahead of it briefly, counted from other threads).
    pub fn live_bytes(&self) -> u64 {
        let len = self.len();
        len - self.dead_bytes().min(len)
    }

    /// True when no record of this segment is live: its live bytes are its header's.
    pub fn holds_nothing_live(&self) -> bool {
        self.live_bytes() <= crate::format::SEGMENT_HEADER_LEN as u64
    }

    pub fn add_dead(&self, bytes: u64) {
        self.dead_bytes.0.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn note_seq(&self, seq: u64) {
        let _ = self
            .written
            .0
            .min_seq
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                (m == 0 || seq < m).then_some(seq)
            });
        self.written.0.max_seq.fetch_max(seq, Ordering::Relaxed);
    }

    /// [`Segment::note_seq`] for the segment's only writer, which appends in sequence order:
    /// plain stores instead of read-modify-write atomics on the hot path.
    pub fn note_seq_exclusive(&self, seq: u64) {
        if self.written.0.min_seq.load(Ordering::Relaxed) == 0 {
            self.written.0.min_seq.store(seq, Ordering::Relaxed);
        }
        self.written.0.max_seq.store(seq, Ordering::Relaxed);
    }

    pub fn min_seq(&self) -> u64 {
        self.written.0.min_seq.load(Ordering::Relaxed)
    }

    pub fn max_seq(&self) -> u64 {
        self.written.0.max_seq.load(Ordering::Relaxed)
    }

    pub fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    pub fn is_verified(&self) -> bool {
        self.verified.load(Ordering::Acquire)
    }

    pub fn mark_verified(&self) {
        self.verified.store(true, Ordering::Release);
    }

    /// Notes a record with [`crate::format::FLAGS_UNINDEXED`] flags, before it is published.
    #[inline]
    pub fn note_flags(&self, flags: u8) {
        if flags & crate::format::FLAGS_UNINDEXED != 0 && !self.unindexed.load(Ordering::Relaxed) {
            self.unindexed.store(true, Ordering::Release);
        }
    }

    /// Recovery, before it reads the records again: none noted yet (see [`Segment::note_flags`]).
    pub fn clear_unindexed(&self) {
        self.unindexed.store(false, Ordering::Release);
    }

    /// True when the segment may hold a record that no index entry points at but compaction
    /// may have to keep (a tombstone, a flush record, a transaction's commit).
    pub fn may_hold_unindexed(&self) -> bool {
        self.unindexed.load(Ordering::Acquire)
    }

    pub fn is_hinted(&self) -> bool {
        self.hinted.load(Ordering::Acquire)
    }

    pub fn mark_hinted(&self) {
        self.hinted.store(true, Ordering::Release);
    }

    /// Counts a read that found a damaged record; true for the first few, worth a log line.
    pub fn note_corrupt_read(&self) -> bool {
        self.corrupt_reads.fetch_add(1, Ordering::Relaxed) < 16
    }

    pub fn corrupt_reads(&self) -> u64 {
        self.corrupt_reads.load(Ordering::Relaxed)
    }

    pub fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }

    pub fn is_obsolete(&self) -> bool {
        self.obsolete.load(Ordering::Acquire)
    }

    pub(crate) fn mark_retiring(&self) {
        self.retiring.store(true, Ordering::Release);
    }

    /// Compacted and waiting to be retired, or retired: nothing of it is needed any more
    /// once the log is durable.
    pub fn is_retiring(&self) -> bool {
        self.retiring.load(Ordering::Acquire) || self.is_obsolete()
    }

    /// The bytes from `offset` to the written length.
    pub fn bytes_from(&self, offset: u64) -> &[u8] {
        let len = self.len();
        assert!(offset <= len, "offset {offset} past segment length {len}");
        // SAFETY: [offset, len) lies inside the map and holds published records, which nobody
        // writes again (see the module comment).
        unsafe {
            std::slice::from_raw_parts(
                self.map.as_ptr().add(offset as usize),
                (len - offset) as usize,
            )
        }
    }

    /// The `n` bytes at `offset`, which must lie inside the written length.
    ///
    /// Bounded by the mapping, not by the written length: callers reach here through an index
    /// entry, which points only at published records (the shard lock orders the read after the
    /// write), so the active segment's hot length need not be loaded.
    pub fn bytes(&self, offset: u64, n: usize) -> &[u8] {
        let cap = self.capacity();
        assert!(
            offset + n as u64 <= cap,
            "read of {n} bytes at {offset} past segment capacity {cap}"
        );
        // SAFETY: inside the map, and holding a published record (see above).
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(offset as usize), n) }
    }

    /// Asks the CPU to fetch the first two cache lines of the record at `offset` (its header and,
    /// for short keys, the key and the start of the value). A hint: never reads, never faults.
    pub fn prefetch(&self, offset: u64) {
        if offset < self.capacity() {
            let p = self.map.as_ptr().wrapping_add(offset as usize);
            crate::index::prefetch_line(p);
            crate::index::prefetch_line(p.wrapping_add(64));
        }
    }

    /// The whole map, including bytes past the written length (recovery only: nobody writes).
    pub fn mapped_bytes(&self) -> &[u8] {
        // SAFETY: recovery scans before any writer exists.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.map.len()) }
    }

    /// Copies `bytes` into the map at `offset`.
    ///
    /// # Safety
    /// The caller is the segment's only writer and `[offset, offset + len)` is past every
    /// published byte, so no reader looks at it.
    pub unsafe fn write_at(&self, offset: u64, bytes: &[u8]) {
        let dst = self.slice_mut(offset, bytes.len());
        dst.copy_from_slice(bytes);
    }

    /// A mutable view of unpublished map space, to encode a record in place.
    ///
    /// # Safety
    /// As for [`Segment::write_at`]; the slice must be dropped before the range is published.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, offset: u64, n: usize) -> &mut [u8] {
        assert!(
            offset + n as u64 <= self.capacity(),
            "write of {n} bytes at {offset} past segment capacity {}",
            self.capacity()
        );
        std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(offset as usize), n)
    }

    /// Tells the kernel how the map and the file are read: `Random` for point reads (a fault
    /// or a read brings in its own pages, not megabytes of read-around: one GET of a 1 KB
    /// value pulled in the device's whole `read_ahead_kb`), `Sequential` for a scan.
    pub fn advise(&self, pattern: Access) {
        let (madv, fadv) = match pattern {
            Access::Random => (libc::MADV_RANDOM, libc::POSIX_FADV_RANDOM),
            Access::Sequential => (libc::MADV_SEQUENTIAL, libc::POSIX_FADV_SEQUENTIAL),
        };
        // SAFETY: advice on our own mapping, whole; it changes no contents.
        let rc = unsafe { libc::madvise(self.map.as_mut_ptr().cast(), self.map.len(), madv) };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "madvise failed");
        }
        // SAFETY: plain system call on a descriptor we own.
        unsafe { libc::posix_fadvise(self.file.as_raw_fd(), 0, 0, fadv) };
    }

    /// True when every page of `[offset, offset + len)` is in memory, so reading it through
    /// the map cannot wait for the disk. A system call (`mincore`): ask it only when memory is
    /// short.
    pub fn resident(&self, offset: u64, len: u64) -> bool {
        let mut all = true;
        self.residency(offset, len, |_, in_memory| {
            all &= in_memory.iter().all(|b| b & 1 == 1);
            all
        });
        all
    }

    /// Asks the kernel which pages of `[offset, offset + len)` are in memory, in bounded
    /// steps: `f` gets each step's first page number and one byte per page (bit 0 set when
    /// in memory), and returns whether to go on. A failed call reports its pages absent.
    fn residency(&self, offset: u64, len: u64, mut f: impl FnMut(u64, &[u8]) -> bool) {
        let page = page_size();
        let start = offset / page * page;
        let end = (offset + len.max(1)).min(self.capacity());
        if end <= start {
            return;
        }
        let pages = (end - start).div_ceil(page) as usize;
        // Records are at most 512 MiB (131,072 pages); a segment may be larger still.
        let mut vec = [0u8; 256];
        let mut done = 0usize;
        while done < pages {
            let n = (pages - done).min(vec.len());
            let at = start + done as u64 * page;
            // SAFETY: `[at, at + n pages)` lies inside our mapping (clamped to its capacity,
            // which is page-aligned only at its start: mincore takes any length and rounds up
            // within the mapping), and `vec` holds `n` bytes for the answer.
            let rc = unsafe {
                libc::mincore(
                    self.map.as_mut_ptr().add(at as usize).cast(),
                    ((n as u64 * page).min(self.capacity() - at)) as usize,
                    vec.as_mut_ptr(),
                )
            };
            if rc != 0 {
                vec[..n].fill(0);
            }
            if !f(at / page, &vec[..n]) {
                return;
            }
            done += n;
        }
    }

    /// The pages of `[0, len)` not in memory now, as (offset, length) runs.
    fn absent_runs(&self) -> Vec<(u64, u64)> {
        let page = page_size();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        self.residency(0, self.len(), |first, in_memory| {
            for (i, b) in in_memory.iter().enumerate() {
                if b & 1 == 1 {
                    continue;
                }
                let at = (first + i as u64) * page;
                match runs.last_mut() {
                    Some((from, len)) if *from + *len == at => *len += page,
                    _ => runs.push((at, page)),
                }
            }
            true
        });
        runs
    }

    /// Reads `buf.len()` bytes at `offset` from the file (not the map): a read that fails
    /// returns an error instead of a SIGBUS, and fills the page cache for the map's readers.
    ///
    /// # Errors
    /// The read error, or a short read (the file is shorter than the segment says).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| Error::io("read segment", self.path(), e))
    }

    /// Runs `f` over the segment's bytes read from start to end (compaction's input, a hint
    /// written or checked): with sequential read-ahead while it runs, point-read advice
    /// after, and, when `memory_short`, the pages the scan brought in dropped again so it
    /// does not push what clients read out of memory.
    ///
    /// Pages that were in memory before stay: dropping them evicted data clients were
    /// reading (a segment just sealed, a compaction's output), and the residency sampling
    /// then found those records out of memory and kept memory "short" on its own evidence,
    /// with no pressure at all: in a 15 MB store on a machine with 21 GB free, residency
    /// checks stayed on and took 40-48% of a worker's CPU (`mincore` on every write).
    pub fn scan<R>(&self, memory_short: bool, f: impl FnOnce(&[u8]) -> R) -> R {
        let absent = (memory_short && self.is_sealed()).then(|| self.absent_runs());
        self.advise(Access::Sequential);
        let r = f(self.bytes_from(0));
        self.advise(Access::Random);
        for (offset, len) in absent.into_iter().flatten() {
            self.release(offset, len);
        }
        r
    }

    /// Drops `[offset, offset + len)` from this process's page tables and, once clean, from
    /// the page cache: a scan that will not come back (compaction's inputs, a hint check)
    /// leaves the memory to what clients read. Only for synced, sealed data.
    pub fn release(&self, offset: u64, len: u64) {
        self.advise_range(offset, len, libc::MADV_DONTNEED);
        let page = page_size();
        let start = offset / page * page;
        // Whole pages: the kernel keeps a partly covered last page.
        let end = (offset + len).div_ceil(page) * page;
        // SAFETY: plain system call on a descriptor we own.
        unsafe {
            libc::posix_fadvise(
                self.file.as_raw_fd(),
                start as libc::off_t,
                (end - start) as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            )
        };
    }

    fn advise_range(&self, offset: u64, len: u64, advice: libc::c_int) {
        let page = page_size();
        let start = offset / page * page;
        let end = (offset + len).min(self.capacity());
        if end <= start {
            return;
        }
        // SAFETY: advice on a page-aligned range inside our own mapping. MADV_WILLNEED changes
        // nothing; MADV_DONTNEED on a shared file mapping only unmaps (the data stays in the
        // file and the page cache, and a later read maps it again).
        unsafe {
            libc::madvise(
                self.map.as_mut_ptr().add(start as usize).cast(),
                (end - start) as usize,
                advice,
            )
        };
    }

    /// Starts writing back the complete pages of `[from, to)` without waiting, so written
    /// pages do not pile up dirty: under a memory limit, reclaim cannot free dirty pages and
    /// stalls whoever needs memory until writeback catches up. Not a sync: durability is
    /// still [`Segment::sync`]'s.
    pub fn start_writeback(&self, from: u64, to: u64) {
        let page = page_size();
        let (from, to) = (from / page * page, to / page * page);
        if to <= from {
            return;
        }
        // SAFETY: plain system call on a descriptor we own.
        unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                from as libc::off64_t,
                (to - from) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
    }

    /// Flushes written data to disk (`fdatasync`, which covers pages dirtied through the map).
    ///
    /// # Errors
    /// The fdatasync error; the caller must treat it as fatal for writes.
    ///
    /// First drops from the page tables the pages no write will touch again (every page of a
    /// sealed segment, the complete pages below the active segment's length). Writeback of a
    /// page still mapped writable must write-protect each mapping of it, and on a machine where
    /// another thread of the process is running that is one TLB-shootdown interrupt per page:
    /// a 64 MiB segment cost 16,384 of them, a quarter of all CPU time with two writers. Dropped
    /// pages go in one batched flush; the data stays in the page cache, and a later read maps
    /// the page again with a minor fault.
    pub fn sync(&self) -> Result<()> {
        self.release_written_pages();
        self.sync_data()
    }

    /// [`Segment::sync`] for the once-a-second sync of an active segment: the pages faulted in
    /// ahead of its writer (zeros, dirty: see [`Segment::populate_to`]) are dropped from the
    /// page tables too, in the same kind of batched flush, and faulted in again once the sync
    /// is done. Writeback would otherwise write-protect each of them (a burst of hundreds of
    /// shootdown interrupts on the writer's core, then a write fault per page on the writer's
    /// path; measured in `docs/perf/HISTORY.md`, replication lag under `--fsync everysec`).
    /// Faulting them in again dirties them, so each call writes them (a few MiB of zeros)
    /// again: not for group commit, whose syncs come many times a second.
    pub fn sync_periodic(&self) -> Result<()> {
        self.release_written_pages();
        let ahead = self.unmap_ahead();
        let synced = self.sync_data();
        if let Some((start, end)) = ahead {
            self.madvise_pages(start, end, MADV_POPULATE_WRITE, "MADV_POPULATE_WRITE");
        }
        synced
    }

    fn sync_data(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fdatasync", self.path(), e))
    }

    /// Drops from the page tables the pages of an active segment that lie wholly past its
    /// written length and were faulted in ahead of the writer; the range, to fault in again.
    fn unmap_ahead(&self) -> Option<(u64, u64)> {
        if self.is_sealed() {
            return None;
        }
        let page = page_size();
        let start = self.len().div_ceil(page) * page;
        let end = self
            .written
            .0
            .populated
            .load(Ordering::Acquire)
            .min(self.capacity() / page * page);
        if end <= start {
            return None;
        }
        self.madvise_pages(start, end, libc::MADV_DONTNEED, "MADV_DONTNEED")
            .then_some((start, end))
    }

    /// `madvise(advice)` on `[start, end)` of the map (page-aligned); false, logged, when it
    /// fails.
    fn madvise_pages(&self, start: u64, end: u64, advice: libc::c_int, name: &str) -> bool {
        // SAFETY: advice on our own shared file mapping, page-aligned and inside it. Neither
        // advice changes the file's contents: MADV_DONTNEED on a shared mapping only unmaps
        // (dirty pages stay in the page cache; a writer racing it faults its page back in) and
        // MADV_POPULATE_WRITE only faults pages in (EFAULT past the end of a file just cut).
        let rc = unsafe {
            libc::madvise(
                self.map.as_mut_ptr().add(start as usize).cast(),
                (end - start) as usize,
                advice,
            )
        };
        if rc != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), advice = name, "madvise failed");
        }
        rc == 0
    }

    /// Drops from the page tables the pages no write will touch again (see [`Segment::sync`]);
    /// call before starting their writeback, which would otherwise write-protect each one.
    pub fn release_written_pages(&self) {
        let page = page_size();
        let len = self.len();
        let end = if self.is_sealed() {
            len.div_ceil(page) * page
        } else {
            len / page * page
        }
        .min(self.capacity() / page * page);
        let start = self.released.load(Ordering::Relaxed);
        // Under fsync always a sync finds a page or two complete: one madvise and its flush
        // would cost more than the shootdowns it saves. Wait for a batch worth a call.
        if end <= start || (end - start < RELEASE_MIN_BYTES && !self.is_sealed()) {
            return;
        }
        // Dirty pages stay in the page cache, to be written by the fdatasync that follows, and
        // readers fault them back in. No writer touches these pages again (records are
        // appended past `len`).
        if self.madvise_pages(start, end, libc::MADV_DONTNEED, "MADV_DONTNEED") {
            self.released.fetch_max(end, Ordering::Relaxed);
        }
    }

    /// Cuts the file to its written length and marks it sealed. Sync it afterwards.
    ///
    /// # Errors
    /// The ftruncate error.
    pub fn seal(&self) -> Result<()> {
        // Not while `reserve` grows the file: it would grow it back past the cut.
        let _g = self.growing.lock();
        let len = self.len();
        self.file
            .set_len(len)
            .map_err(|e| Error::io("truncate segment", self.path(), e))?;
        self.written.0.allocated.store(len, Ordering::Release);
        self.sealed.store(true, Ordering::Release);
        Ok(())
    }

    /// Marks a recovered segment sealed without touching the file.
    pub fn mark_sealed(&self) {
        self.sealed.store(true, Ordering::Release);
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.is_obsolete() {
            let path = self.path();
            let _ = std::fs::remove_file(path.with_extension("hint"));
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::debug!(path = %path.display(), "removed retired segment"),
                Err(e) => tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "could not remove retired segment; it will be removed at next open"
                ),
            }
        }
    }
}

/// Reserves `[offset, offset + len)` of the file on disk, growing its size to cover it.
fn allocate(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    // SAFETY: plain system call on a descriptor we own.
    let rc = unsafe {
        libc::posix_fallocate(file.as_raw_fd(), offset as libc::off_t, len as libc::off_t)
    };
    match rc {
        0 => Ok(()),
        // Filesystems without fallocate (tmpfs has it; some FUSE ones do not): fall back to a
        // sized file. A later full disk can then surface as SIGBUS, so warn.
        libc::EOPNOTSUPP => {
            tracing::warn!("fallocate unsupported here; a full disk may crash the server");
            file.set_len(offset + len)
        }
        e => Err(std::io::Error::from_raw_os_error(e)),
    }
}

/// Syncs a directory so a created, renamed or removed file name is durable.
///
/// # Errors
/// The open or fsync error.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(|e| Error::io("open directory", dir, e))?;
    f.sync_all()
        .map_err(|e| Error::io("fsync directory", dir, e))
}

/// The system's page size (4 KiB on x86-64), read once.
fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as u64,
        _ => 4096,
    })
}

/// `madvise` advice (Linux 5.14): fault the range in writable, as a write would.
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// The fewest bytes of complete pages of an active segment worth dropping before a sync.
const RELEASE_MIN_BYTES: u64 = 1 << 20;

/// How far ahead of a log segment's writer the prealloc thread faults pages in.
pub const POPULATE_CHUNK: u64 = 2 << 20;

/// Pages faulted in by one `MADV_POPULATE_WRITE` (see [`Segment::populate_to`]).
const POPULATE_STEP: u64 = 64 << 10;

/// How much a segment file grows at a time. Twice [`POPULATE_CHUNK`], so the prealloc thread,
/// which reserves as far ahead as it faults pages in, grows the file before the writer needs it.
pub const ALLOC_CHUNK: u64 = 2 * POPULATE_CHUNK;

#[cfg(test)]
mod tests {
    use super::*;

    /// A sealed, synced segment of `pages` pages of bytes (no records: `scan` only reads).
    fn written_segment(dir: &Path, pages: u64) -> Segment {
        let page = page_size();
        let seg = Segment::create(dir.join("1.seg"), 1, SegmentKind::Log, pages * page).unwrap();
        seg.reserve(pages * page).unwrap();
        // SAFETY: the test is the segment's only user.
        unsafe { seg.write_at(0, &vec![7u8; (pages * page) as usize]) };
        seg.set_len(pages * page);
        seg.seal().unwrap();
        seg.sync().unwrap();
        seg
    }

    /// When memory is short a scan drops the pages it read in, and only those: pages that were
    /// in memory already (what clients were reading) stay. Dropping them too took records
    /// out of memory that the residency sampling then found missing, which kept the checks
    /// for a short memory on with no pressure at all.
    #[test]
    fn a_scan_under_pressure_drops_only_the_pages_it_read_in() {
        let dir = tempfile::tempdir().unwrap();
        let page = page_size();
        let seg = written_segment(dir.path(), 64);
        seg.release(0, 32 * page);
        if seg.resident(0, page) {
            // The filesystem keeps these pages whatever it is told (tmpfs): nothing to check.
            return;
        }
        assert!(seg.resident(32 * page, 32 * page));
        let sum = seg.scan(true, |bytes| {
            bytes.iter().map(|&b| u64::from(b)).sum::<u64>()
        });
        assert_eq!(sum, 7 * 64 * page);
        assert!(
            seg.resident(32 * page, 32 * page),
            "the scan dropped pages that were in memory before it"
        );
        assert!(
            (0..32).all(|p| !seg.resident(p * page, page)),
            "the scan left in memory pages it read in"
        );
    }

    /// A fault-in that waited while the writer went past the faulted-in pages starts after
    /// what was written: it brought evicted records back into memory (the cold-read tests,
    /// under the full suite's load, found records in memory right after evicting them).
    #[test]
    fn a_late_fault_in_leaves_written_pages_alone() {
        let dir = tempfile::tempdir().unwrap();
        let page = page_size();
        let seg =
            Segment::create(dir.path().join("1.seg"), 1, SegmentKind::Log, 64 * page).unwrap();
        seg.reserve(64 * page).unwrap();
        // The writer got ten and a half pages in before any fault-in ran.
        // SAFETY: the test is the segment's only user.
        unsafe { seg.write_at(0, &vec![7u8; (10 * page + page / 2) as usize]) };
        seg.set_len(10 * page + page / 2);
        seg.sync().unwrap();
        seg.release(0, 11 * page);
        if seg.resident(0, page) {
            return; // the filesystem keeps its pages whatever it is told (tmpfs)
        }
        seg.populate_to(32 * page);
        assert!(
            (0..11).all(|p| !seg.resident(p * page, page)),
            "the fault-in brought written pages back"
        );
        assert!(
            seg.resident(11 * page, 21 * page),
            "nothing past them was faulted in"
        );
    }
}
