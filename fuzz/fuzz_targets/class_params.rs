//! StorageClass parameters of each provisioner (hostpath, nfs): any map of
//! strings is either accepted or refused with an error naming a parameter
//! that is in the map (so the Warning points at something the author
//! wrote); never a panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // key=value lines
    let map: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Err(e) = hostpath_provisioner::params::ClassParams::parse(Some(&map)) {
        assert!(map.contains_key(&e.param), "{e}");
    }
    if let Err(e) = nfs_provisioner::params::ClassParams::parse(Some(&map)) {
        assert!(map.contains_key(&e.param), "{e}");
    }
});
