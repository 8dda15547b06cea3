//! Guards against losing acknowledged writes across a clean restart on the same directory.

mod common;

use common::{config, start};
use flin_server::Server;
use redis::Commands;

#[test]
fn data_survives_a_restart() {
    let mut srv = start();
    {
        let mut con = srv.client();
        for i in 0..1000 {
            let _: () = con.set(format!("k{i}"), format!("v{i}")).unwrap();
        }
        let _: () = con.set_ex("with-ttl", "t", 1000).unwrap();
        let _: () = con.del("k7").unwrap();
        let _: () = con.set("k8", "overwritten").unwrap();
    }
    srv.stop();
    let handle = Server::start(config(srv.dir.path())).expect("restart");
    assert_eq!(handle.stats().engine.recovery.keys, 1000);
    srv.addr = handle.local_addr();
    srv.handle = Some(handle);
    let mut con = srv.client();
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 1000);
    let v: String = con.get("k999").unwrap();
    assert_eq!(v, "v999");
    let v: Option<String> = con.get("k7").unwrap();
    assert_eq!(v, None);
    let v: String = con.get("k8").unwrap();
    assert_eq!(v, "overwritten");
    let ttl: i64 = con.ttl("with-ttl").unwrap();
    assert!((990..=1000).contains(&ttl), "ttl {ttl}");
}
