//! Guards against treating keys or values as text: CR, LF, NUL and empty strings round-trip.

mod common;

use common::start;
use redis::Commands;

#[test]
fn binary_keys_and_values_round_trip() {
    let srv = start();
    let mut con = srv.client();
    let key: &[u8] = b"k\r\n\0ey";
    let value: Vec<u8> = (0u8..=255).chain(b"\r\n\0\r\n".iter().copied()).collect();
    let _: () = con.set(key, &value).unwrap();
    let got: Vec<u8> = con.get(key).unwrap();
    assert_eq!(got, value);
    let _: () = con.set(b"", b"").unwrap();
    let got: Option<Vec<u8>> = con.get(b"").unwrap();
    assert_eq!(got, Some(Vec::new()), "empty value is not nil");
    let exists: i64 = con.exists(b"").unwrap();
    assert_eq!(exists, 1, "empty key exists");
    let missing: Option<Vec<u8>> = con.get(b"k\r\n\0").unwrap();
    assert_eq!(missing, None);
}
