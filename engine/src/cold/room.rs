//! Whether the page cache can hold the whole store.
//!
//! Cold reads skip the page cache (`O_DIRECT`) so that a store larger than memory does not
//! thrash it. A store that fits must not: after a restart its records are not resident
//! either, and reads through the page cache are what brings it back into memory. So the pool
//! compares, about once a second, the store's size with the memory its page cache could get:
//! the memory cgroup's limit less the cgroup's anonymous memory (a container's limit counts
//! the page cache), and the system's `MemAvailable`, whichever is smaller.

use std::path::{Path, PathBuf};

/// The memory this process's page cache could get, in bytes; `None` when neither the cgroup
/// nor `/proc/meminfo` says.
pub(super) fn cache_room() -> Option<u64> {
    match (mem_available(), cgroup_room()) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `MemAvailable` of `/proc/meminfo`.
fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The memory cgroup's limit less its anonymous memory, for cgroup v2 (the smallest
/// `memory.max` from this group up) or the v1 memory controller
/// (`hierarchical_memory_limit`); `None` without a limit.
fn cgroup_room() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if id == "0" && controllers.is_empty() {
            if let Some(room) = v2_room(&Path::new("/sys/fs/cgroup").join(rel)) {
                return Some(room);
            }
        } else if controllers.split(',').any(|c| c == "memory") {
            return v1_room(&Path::new("/sys/fs/cgroup/memory").join(rel));
        }
    }
    None
}

fn v2_room(dir: &Path) -> Option<u64> {
    let mut limit: Option<u64> = None;
    let mut at: Option<PathBuf> = Some(dir.to_path_buf());
    while let Some(d) = at {
        if let Ok(v) = std::fs::read_to_string(d.join("memory.max")) {
            if let Ok(n) = v.trim().parse::<u64>() {
                limit = Some(limit.map_or(n, |l| l.min(n)));
            }
        }
        at = d
            .parent()
            .filter(|p| p.starts_with("/sys/fs/cgroup"))
            .map(Path::to_path_buf);
    }
    let anon = stat_field(&dir.join("memory.stat"), "anon").unwrap_or(0);
    Some(limit?.saturating_sub(anon))
}

fn v1_room(dir: &Path) -> Option<u64> {
    let stat = dir.join("memory.stat");
    let limit = stat_field(&stat, "hierarchical_memory_limit").or_else(|| {
        std::fs::read_to_string(dir.join("memory.limit_in_bytes"))
            .ok()?
            .trim()
            .parse()
            .ok()
    })?;
    // "No limit" is the largest page-aligned i64.
    if limit >= 1 << 60 {
        return None;
    }
    let anon = stat_field(&stat, "rss").unwrap_or(0);
    Some(limit.saturating_sub(anon))
}

/// The value of `name` in a cgroup `memory.stat` file.
fn stat_field(path: &Path, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == name).then(|| v.trim().parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_reports_some_room() {
        // Every Linux kernel since 3.14 has MemAvailable.
        let room = cache_room().expect("room from /proc/meminfo at least");
        assert!(room > 0);
    }

    #[test]
    fn memory_stat_fields_are_read_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("memory.stat");
        std::fs::write(&p, "cache 100\nrss 2048\nrss_huge 0\nanon 7\n").unwrap();
        assert_eq!(stat_field(&p, "rss"), Some(2048));
        assert_eq!(stat_field(&p, "anon"), Some(7));
        assert_eq!(stat_field(&p, "rs"), None);
        std::fs::write(dir.path().join("memory.limit_in_bytes"), "268435456\n").unwrap();
        assert_eq!(v1_room(dir.path()), Some(268435456 - 2048));
        std::fs::write(
            dir.path().join("memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        assert_eq!(v1_room(dir.path()), None, "no limit");
    }
}
