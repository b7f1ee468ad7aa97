//! cargo-fuzz harness: `external_storage_fuzz::flex_reply` (see its docs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| external_storage_fuzz::flex_reply::check(data));
