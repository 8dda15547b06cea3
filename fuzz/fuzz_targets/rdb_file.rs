//! The RDB file reader (a replica's full sync) on arbitrary bytes: it never panics, ends with
//! an error or the end marker, and its heap stays within the allocator's cap whatever lengths
//! the bytes declare (`flin_fuzz::alloc`).

#![no_main]

use flin_server::rdb::{FileReader, Item};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: flin_fuzz::alloc::CappedAlloc = flin_fuzz::alloc::CappedAlloc;

/// The value limit the reader is given: a primary's `proto-max-bulk-len` is far larger, but
/// the point is that nothing is allocated before its bytes arrive.
const VALUE_LEN_MAX: u64 = 512 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = FileReader::new(data, VALUE_LEN_MAX) else {
        return;
    };
    // Every item consumes at least one byte, so this ends.
    for _ in 0..=data.len() {
        match reader.next_item() {
            Ok(Item::End) | Err(_) => return,
            Ok(_) => assert!(reader.position() <= data.len() as u64),
        }
    }
    panic!("more items than bytes");
});
