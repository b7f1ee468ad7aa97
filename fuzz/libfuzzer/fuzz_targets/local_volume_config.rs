//! cargo-fuzz harness: `external_storage_fuzz::local_volume_config` (see its docs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| external_storage_fuzz::local_volume_config::check(data));
