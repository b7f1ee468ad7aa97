//! cargo-fuzz harness: `external_storage_fuzz::nfs_export_record` (see its docs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| external_storage_fuzz::nfs_export_record::check(data));
