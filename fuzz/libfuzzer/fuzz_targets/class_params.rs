//! cargo-fuzz harness: `external_storage_fuzz::class_params` (see its docs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| external_storage_fuzz::class_params::check(data));
