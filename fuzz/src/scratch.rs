//! Throw-away data directories for one fuzz iteration.

use std::path::Path;

/// A fresh empty directory, removed on drop. On tmpfs (`/dev/shm`) when there is one: the
/// engine syncs the directory on every segment it creates, which is free there.
///
/// # Panics
/// When no temporary directory can be made: the fuzzer cannot run at all then.
pub fn dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("flin-fuzz-");
        b
    };
    if shm.is_dir() {
        if let Ok(d) = builder.tempdir_in(shm) {
            return d;
        }
    }
    builder.tempdir().expect("create a temporary directory")
}
