//! Reading a whole store and checking that its read paths agree.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use flin_engine::{Db, Engine};

/// A live value as the store served it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub value: Vec<u8>,
    pub expire_at_ms: u64,
}

/// Every live key of a store, as `scan` returned it.
pub type Snapshot = BTreeMap<Vec<u8>, Served>;

/// Keys a scan asks for per batch: small, so the cursor logic is exercised on small stores.
const SCAN_BATCH_KEYS: usize = 3;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Scans the whole store, and checks that `get` serves every scanned key with the same value
/// and expiry, that a key scanned twice carries the same value, and that `len` counts at least
/// the keys scanned.
///
/// # Panics
/// When the read paths disagree: that is the bug this reports.
pub fn read_all(engine: &Engine) -> Snapshot {
    read_all_db(engine.db(0))
}

/// As [`read_all`], for one database: its scan, its reads and its count agree.
///
/// # Panics
/// When the read paths disagree.
pub fn read_all_db(engine: Db<'_>) -> Snapshot {
    let mut snap = Snapshot::new();
    let mut cursor = 0;
    loop {
        cursor = engine.scan(cursor, SCAN_BATCH_KEYS, |key, entry| {
            let served = Served {
                value: entry.value.to_vec(),
                expire_at_ms: entry.expire_at_ms,
            };
            if let Some(before) = snap.insert(key.to_vec(), served.clone()) {
                assert_eq!(before, served, "scan served key {key:?} twice, differently");
            }
        });
        if cursor == 0 {
            break;
        }
    }
    for (key, served) in &snap {
        let got = engine.get_with(key, |e| {
            e.map(|e| Served {
                value: e.value.to_vec(),
                expire_at_ms: e.expire_at_ms,
            })
        });
        match got {
            Some(got) => assert_eq!(&got, served, "get and scan disagree on key {key:?}"),
            // Expired between the scan and the get.
            None if expiring(served, now_ms()) => {}
            None => panic!("scan served key {key:?} but get does not find it"),
        }
    }
    assert!(
        engine.len() >= snap.len() as u64,
        "len {} is below the {} keys scanned",
        engine.len(),
        snap.len()
    );
    snap
}

/// True when the value has an expiry at or before `horizon_ms`.
pub fn expiring(served: &Served, horizon_ms: u64) -> bool {
    served.expire_at_ms != 0 && served.expire_at_ms <= horizon_ms
}

/// The entries that cannot expire before `horizon_ms`: comparable between two reads.
pub fn lasting(snap: &Snapshot, horizon_ms: u64) -> Snapshot {
    snap.iter()
        .filter(|(_, s)| !expiring(s, horizon_ms))
        .map(|(k, s)| (k.clone(), s.clone()))
        .collect()
}
