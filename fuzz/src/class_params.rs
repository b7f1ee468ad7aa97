//! StorageClass parameters of each provisioner (hostpath, nfs): any map of
//! strings is either accepted or refused with an error naming a parameter
//! that is in the map (so the Warning points at something the author
//! wrote); never a panic.

use std::collections::BTreeMap;

/// One input; panics if an invariant is broken.
pub fn check(data: &[u8]) {
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
}

/// Classes as the shipped examples write them.
pub fn seeds() -> Vec<Vec<u8>> {
    crate::lines(&[
        "pathPattern={{ .PVC.Namespace }}/{{ .PVC.Name }}\nmode=0770\nvolumeType=local",
        "enforceCapacity=true\nallowSlashInValues=false",
        "gid=2001\nrootSquash=true\nenforceCapacity=false",
        "gidMin=3000\ngidMax=4000",
    ])
}

/// Parameter names of both provisioners and values at their edges.
pub const TOKENS: &[&str] = &[
    "pathPattern=",
    "allowSlashInValues=",
    "volumeType=",
    "mode=",
    "enforceCapacity=",
    "gid=",
    "gidMin=",
    "gidMax=",
    "rootSquash=",
    "\n",
    "=",
    "true",
    "false",
    "0777",
    "07777",
    "-1",
    "4294967296",
    "none",
    "local",
    "hostPath",
    "{{ .PVName }}",
];
