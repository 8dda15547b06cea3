//! The replication position a clean shutdown leaves for the next start: `<dir>/REPL-RESUME`,
//! so that a restarted replica asks its primary for `PSYNC <replid> <offset+1>` and gets
//! `+CONTINUE`, and a restarted primary's replicas that were caught up continue with it
//! (Redis keeps the same in its RDB's `repl-id` / `repl-offset` aux fields).
//!
//! # Why only a clean shutdown
//! The position is true only together with the data it describes: every write up to the
//! offset, and none after. A clean shutdown writes the file after the engine synced every
//! write the server made, and the start reads it, then removes it durably once nothing can stop
//! the start any more and before anything new is applied (a start that fails, on a port in
//! use say, leaves it for the next). After a crash there is no file, and a full sync is the right
//! answer: with `--fsync everysec` the log may hold a shorter prefix of the stream than any
//! offset the server knew. So the file is never there while the server runs.
//!
//! # Format
//! One line: `flin-repl-resume 1 <primary|replica> <replid> <offset> <db> <crc>`, where `crc`
//! is the CRC-64 (Redis's, `rdb::crc64`) of everything before it in hex: written to a
//! temporary file, synced, renamed over the old one, the directory synced.

use std::io::{self, Write as _};
use std::path::Path;

use crate::rdb::crc64;

/// The file, in the data directory.
pub const RESUME_FILE: &str = "REPL-RESUME";
const MAGIC: &str = "flin-repl-resume";
const VERSION: &str = "1";
/// Redis's replication ids are this many hex digits.
const REPLID_LEN: usize = 40;

/// Which side wrote the position: a primary's own stream, or the stream a replica applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Primary,
    Replica,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Replica => "replica",
        }
    }
}

/// A stream position: the store holds exactly the stream `replid` up to `offset`, whose last
/// SELECT chose `db`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    pub side: Side,
    pub replid: String,
    pub offset: i64,
    pub db: u32,
}

impl Resume {
    fn line(&self) -> String {
        let body = format!(
            "{MAGIC} {VERSION} {} {} {} {}",
            self.side.name(),
            self.replid,
            self.offset,
            self.db
        );
        let crc = crc64(0, body.as_bytes());
        format!("{body} {crc:016x}\n")
    }

    fn parse(text: &str) -> Option<Resume> {
        let text = text.strip_suffix('\n')?;
        let (body, crc) = text.rsplit_once(' ')?;
        if u64::from_str_radix(crc, 16).ok()? != crc64(0, body.as_bytes()) {
            return None;
        }
        let words: Vec<&str> = body.split(' ').collect();
        let [MAGIC, VERSION, side, replid, offset, db] = words[..] else {
            return None;
        };
        let side = match side {
            "primary" => Side::Primary,
            "replica" => Side::Replica,
            _ => return None,
        };
        let hex = replid.len() == REPLID_LEN && replid.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            return None;
        }
        Some(Resume {
            side,
            replid: replid.to_owned(),
            offset: offset.parse().ok().filter(|o: &i64| *o >= 0)?,
            db: db.parse().ok()?,
        })
    }
}

/// Records `resume` in `<dir>/REPL-RESUME`, durably.
///
/// # Errors
/// The write, sync or rename failed (the temporary file may be left; the next save replaces
/// it, and a start ignores it).
pub fn save(dir: &Path, resume: &Resume) -> io::Result<()> {
    let tmp = dir.join(format!("{RESUME_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(resume.line().as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(RESUME_FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads the position a clean shutdown left in `<dir>/REPL-RESUME`, leaving the file there:
/// a start that fails after this keeps it for the next. The start must [`consume`] it before
/// anything new is applied. `Ok(None)`: no file.
///
/// # Errors
/// The file is there but damaged (then removed), or cannot be read: the message names the
/// file and says what happens (a full sync); the caller logs it and starts without a position.
pub fn read(dir: &Path) -> Result<Option<Resume>, String> {
    let path = dir.join(RESUME_FILE);
    let _ = std::fs::remove_file(dir.join(format!("{RESUME_FILE}.tmp")));
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot read {}: {e}; replicas will full-sync",
                path.display()
            ))
        }
    };
    Resume::parse(&text).map(Some).ok_or_else(|| {
        let removed = match std::fs::remove_file(&path) {
            Ok(()) => "removed it".to_owned(),
            Err(e) => format!("could not remove it ({e}; remove it by hand)"),
        };
        format!(
            "{} is damaged (holds {text:?}); {removed}, replicas will full-sync",
            path.display()
        )
    })
}

/// Removes `<dir>/REPL-RESUME` durably, so that a crash from here on cannot use a position the
/// store may no longer match.
///
/// # Errors
/// It could not be removed: the message names the file and says not to use the position
/// (replicas full-sync).
pub fn consume(dir: &Path) -> Result<(), String> {
    let path = dir.join(RESUME_FILE);
    std::fs::remove_file(&path)
        .and_then(|()| std::fs::File::open(dir)?.sync_all())
        .map_err(|e| {
            format!(
                "cannot remove {} after reading it: {e}; not using it (a crash could reuse a \
                 stale position), replicas will full-sync; check the directory's permissions",
                path.display()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resume(side: Side) -> Resume {
        Resume {
            side,
            replid: "0123456789abcdef0123456789abcdef01234567".into(),
            offset: 12345,
            db: 3,
        }
    }

    /// What a start does: read, then consume.
    fn take(dir: &Path) -> Result<Option<Resume>, String> {
        let resume = read(dir)?;
        if resume.is_some() {
            consume(dir)?;
        }
        Ok(resume)
    }

    #[test]
    fn a_saved_position_is_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(take(dir.path()), Ok(None));
        for side in [Side::Primary, Side::Replica] {
            save(dir.path(), &resume(side)).unwrap();
            assert_eq!(take(dir.path()), Ok(Some(resume(side))));
            assert_eq!(take(dir.path()), Ok(None), "removed when taken");
        }
    }

    #[test]
    fn a_read_position_stays_until_consumed() {
        let dir = tempfile::tempdir().unwrap();
        save(dir.path(), &resume(Side::Replica)).unwrap();
        assert_eq!(read(dir.path()), Ok(Some(resume(Side::Replica))));
        assert_eq!(
            read(dir.path()),
            Ok(Some(resume(Side::Replica))),
            "still there"
        );
        consume(dir.path()).unwrap();
        assert_eq!(read(dir.path()), Ok(None));
    }

    #[test]
    fn a_damaged_file_is_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let good = resume(Side::Replica).line();
        let mut flipped = good.clone().into_bytes();
        flipped[40] ^= 1;
        let cases = [
            String::from_utf8(flipped).unwrap(),
            good.replace("12345", "12346"),
            good[..good.len() - 1].to_owned(),
            good[..good.len() / 2].to_owned(),
            String::new(),
        ];
        for bad in cases {
            std::fs::write(dir.path().join(RESUME_FILE), &bad).unwrap();
            let err = take(dir.path()).unwrap_err();
            assert!(
                err.contains(RESUME_FILE) && err.contains("full-sync"),
                "{bad:?}: {err}"
            );
            assert_eq!(take(dir.path()), Ok(None), "{bad:?} removed");
        }
    }
}
