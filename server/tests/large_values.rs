//! Guards against buffer handling bugs with 1 MiB and 64 MiB values (growth, shrink, writes),
//! and against bit offsets that would build values larger than the engine stores.

mod common;

use common::start;
use redis::Commands;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn one_and_sixty_four_mebibyte_values() {
    let srv = start();
    let mut con = srv.client();
    for len in [1 << 20, 64 << 20] {
        let value = pattern(len);
        let key = format!("big:{len}");
        let _: () = con.set(&key, &value).unwrap();
        let got: Vec<u8> = con.get(&key).unwrap();
        assert!(got == value, "value of {len} bytes differs");
        let n: i64 = con.strlen(&key).unwrap();
        assert_eq!(n, len as i64);
    }
    // The connection still serves small requests after the big ones.
    let _: () = con.set("small", "x").unwrap();
    let got: String = con.get("small").unwrap();
    assert_eq!(got, "x");
}

/// With proto-max-bulk-len raised past what the engine stores, SETBIT and BITFIELD offsets
/// beyond 512 MiB are refused before the value is built (no gigabyte allocation), and
/// RESTORE's payload limit stays the engine's.
#[test]
fn bit_offsets_past_the_engine_limit_are_refused_before_building_the_value() {
    let srv = common::start();
    let mut con = srv.client();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("proto-max-bulk-len")
        .arg("2gb")
        .query(&mut con)
        .unwrap();
    let past = (600u64 << 20) * 8;
    for cmd in [
        redis::cmd("SETBIT").arg("k").arg(past).arg(1).clone(),
        redis::cmd("BITFIELD")
            .arg("k")
            .arg("SET")
            .arg("u8")
            .arg(past)
            .arg(1)
            .clone(),
    ] {
        let err = cmd.query::<redis::Value>(&mut con).unwrap_err();
        assert!(
            err.to_string()
                .contains("string exceeds maximum allowed size"),
            "{err}"
        );
    }
    let exists: bool = redis::cmd("EXISTS").arg("k").query(&mut con).unwrap();
    assert!(!exists);
    // Within the engine's limit the offset is fine: the value grows, zero-filled.
    let old: i64 = redis::cmd("SETBIT")
        .arg("k")
        .arg(8 * 1024 * 1024 - 1)
        .arg(1)
        .query(&mut con)
        .unwrap();
    assert_eq!(old, 0);
    let len: usize = redis::cmd("STRLEN").arg("k").query(&mut con).unwrap();
    assert_eq!(len, 1024 * 1024);
}
