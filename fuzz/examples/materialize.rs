//! Writes the data directory an `engine_open` or `engine_damage` input describes, to look at
//! a crash with ordinary tools: `cargo run --example materialize -- <input> <empty-dir>`.

use std::path::PathBuf;

use arbitrary::{Arbitrary, Unstructured};
use flin_fuzz::check::now_ms;
use flin_fuzz::files::DirSpec;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: materialize <fuzz input> <directory to create>");
        std::process::exit(2);
    }
    let bytes = std::fs::read(&args[1]).expect("read the fuzz input");
    let spec = DirSpec::arbitrary_take_rest(Unstructured::new(&bytes))
        .expect("the input decodes as a directory");
    let dir = PathBuf::from(&args[2]);
    std::fs::create_dir_all(&dir).expect("create the directory");
    spec.write(&dir, now_ms()).expect("write the directory");
    println!("{spec:#?}");
}
