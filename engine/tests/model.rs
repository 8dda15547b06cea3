//! Random operations, reopens and compactions checked against a `BTreeMap`: guards against
//! any divergence between what the engine returns and what was written, across restarts and
//! segment rewrites.

use std::collections::BTreeMap;

use flin_engine::{Engine, Fsync, Options, Update};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Put(u8, Vec<u8>),
    PutExpired(u8),
    Delete(u8),
    Get(u8),
    /// An atomic multi-key write: a value to put, or `None` to delete; repeats allowed.
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Reopen,
    Compact,
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(|(k, v)| Op::Put(k % 40, v)),
        1 => any::<u8>().prop_map(|k| Op::PutExpired(k % 40)),
        4 => any::<u8>().prop_map(|k| Op::Delete(k % 40)),
        6 => any::<u8>().prop_map(|k| Op::Get(k % 40)),
        3 => proptest::collection::vec(
            (any::<u8>(), proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200))),
            1..8,
        )
        .prop_map(|ops| Op::Batch(ops.into_iter().map(|(k, v)| (k % 40, v)).collect())),
        1 => Just(Op::Reopen),
        1 => Just(Op::Compact),
        1 => (0..30u8).prop_filter("rare", |x| *x == 0).prop_map(|_| Op::Clear),
    ]
}

fn key(k: u8) -> Vec<u8> {
    // Mixed lengths, and one empty key, as Redis allows.
    if k == 0 {
        Vec::new()
    } else {
        format!("key-{k}-{}", "x".repeat(usize::from(k % 7))).into_bytes()
    }
}

fn options() -> Options {
    Options {
        fsync: Fsync::Never,
        segment_size_bytes: 4096,
        compaction: false,
        ..Options::default()
    }
}

fn check_all(engine: &Engine, model: &BTreeMap<Vec<u8>, Vec<u8>>) {
    for k in 0..40u8 {
        let k = key(k);
        assert_eq!(
            engine.get(&k),
            model.get(&k).cloned(),
            "key {:?}",
            String::from_utf8_lossy(&k)
        );
    }
    let mut scanned = Vec::new();
    let mut cursor = 0;
    loop {
        cursor = engine.scan(cursor, 7, |k, _| scanned.push(k.to_vec()));
        if cursor == 0 {
            break;
        }
    }
    scanned.sort();
    scanned.dedup();
    let expected: Vec<Vec<u8>> = model.keys().cloned().collect();
    assert_eq!(scanned, expected, "scan must return every live key");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_btreemap(ops in proptest::collection::vec(op(), 1..250)) {
        let dir = tempfile::tempdir().unwrap();
        let mut engine = Engine::open(dir.path(), options()).unwrap();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    engine.put(&key(k), &v, 0).unwrap();
                    model.insert(key(k), v);
                }
                Op::PutExpired(k) => {
                    engine.put(&key(k), b"gone", 1).unwrap();
                    model.remove(&key(k));
                }
                Op::Delete(k) => {
                    let existed = engine.delete(&key(k)).unwrap().is_some();
                    prop_assert_eq!(existed, model.remove(&key(k)).is_some());
                }
                Op::Get(k) => {
                    // A prefetch is a hint: it must change nothing, whatever it is given.
                    let ahead: Vec<Vec<u8>> = (0..40u8).map(|i| key(k.wrapping_add(i))).collect();
                    let ahead: Vec<&[u8]> = ahead.iter().map(|k| &k[..]).collect();
                    engine.prefetch(&ahead);
                    prop_assert_eq!(engine.get(&key(k)), model.get(&key(k)).cloned());
                }
                Op::Batch(ops) => {
                    let keys: Vec<Vec<u8>> = ops.iter().map(|(k, _)| key(*k)).collect();
                    let key_refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
                    let before: Vec<Option<Vec<u8>>> =
                        keys.iter().map(|k| model.get(k).cloned()).collect();
                    let (seen, _) = engine
                        .update_many(&key_refs, |cur| {
                            let seen: Vec<Option<Vec<u8>>> =
                                cur.iter().map(|e| e.map(|e| e.value.to_vec())).collect();
                            let updates = ops
                                .iter()
                                .map(|(_, v)| match v {
                                    Some(v) => Update::Put { value: v, expire_at_ms: 0 },
                                    None => Update::Delete,
                                })
                                .collect();
                            (updates, seen)
                        })
                        .unwrap();
                    prop_assert_eq!(seen, before);
                    for (k, v) in keys.iter().zip(&ops) {
                        match &v.1 {
                            Some(v) => model.insert(k.clone(), v.clone()),
                            None => model.remove(k),
                        };
                    }
                    let read = engine.get_many_with(&key_refs, |cur| {
                        cur.iter().map(|e| e.map(|e| e.value.to_vec())).collect::<Vec<_>>()
                    });
                    let expected: Vec<Option<Vec<u8>>> =
                        keys.iter().map(|k| model.get(k).cloned()).collect();
                    prop_assert_eq!(read, expected);
                }
                Op::Reopen => {
                    engine.close().unwrap();
                    engine = Engine::open(dir.path(), options()).unwrap();
                    check_all(&engine, &model);
                }
                Op::Compact => {
                    engine.compact_now().unwrap();
                    check_all(&engine, &model);
                }
                Op::Clear => {
                    engine.clear().unwrap();
                    model.clear();
                }
            }
        }
        check_all(&engine, &model);
        engine.close().unwrap();
        let engine = Engine::open(dir.path(), options()).unwrap();
        check_all(&engine, &model);
        prop_assert_eq!(engine.len(), model.len() as u64);
    }
}
