//! Helpers shared by the engine benchmarks and tools (`flin-engine-scale`, `flin-engine-churn`,
//! `benches/engine.rs`): the fixed-width 16-byte keys the engine targets are stated for, and the
//! bytes of a data directory's files by kind.

use std::path::Path;

/// Key `i` as 16 bytes: "k" and 15 decimal digits.
pub fn key16(i: u64) -> [u8; 16] {
    let mut k = *b"k000000000000000";
    let mut n = i;
    for b in k[1..].iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

/// Total size of the files in `dir` whose extension is `ext` ("seg", "hint").
pub fn dir_bytes(dir: &Path, ext: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == ext))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fixed_width_and_distinct() {
        assert_eq!(&key16(0), b"k000000000000000");
        assert_eq!(&key16(1234), b"k000000000001234");
        assert_ne!(key16(7), key16(70));
    }
}
