//! Guards against buffer handling bugs with 1 MiB and 64 MiB values (growth, shrink, writes).

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
