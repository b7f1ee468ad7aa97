//! Pending records: the provisioning intent, kept on the provisioner's own
//! disk instead of on the claim.
//!
//! Before a volume is made, a record `<state dir>/pending/<pv>` names the
//! claim it is made for (namespace, name, UID); once the PV is saved the
//! record is removed ("saved"). A record still present therefore means "a
//! volume may exist whose PV may not": the controller's intent sweep
//! (`external_storage::controller::intent_sweep`) decides from it, with the
//! API server's word, whether the volume is an orphan. Removing a volume
//! still goes through the ownership record (`root.rs`); this record only
//! says *for whom* it was being made.
//!
//! The format is three `key=value` lines. Names and UIDs come from the API
//! server (DNS names, UUIDs); anything with a line break or NUL is refused
//! at write, and a record that does not parse reads back with an empty UID,
//! which the sweep never acts on.

use std::io;
use std::time::SystemTime;

use cap_std::fs::Dir;

use crate::op::{io_err, OpError};

/// The claim a volume is being made for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Claimant {
    /// The claim's namespace.
    pub namespace: String,
    /// The claim's name.
    pub name: String,
    /// The claim's UID.
    pub uid: String,
}

/// One pending record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The PV name the volume is made for.
    pub pv: String,
    /// For whom (empty UID: the record did not parse).
    pub claimant: Claimant,
    /// When the record was last written (its mtime).
    pub recorded_at: SystemTime,
}

/// The pending records in the directory `path` below `dir`.
pub struct PendingRecords<'a> {
    dir: &'a Dir,
    path: &'a str,
}

/// Whether `pv` can name a record file: not empty, no `/`, no leading `.`,
/// no NUL.
pub fn is_record_name(pv: &str) -> bool {
    !pv.is_empty() && !pv.contains('/') && !pv.starts_with('.') && !pv.contains('\0')
}

fn render(c: &Claimant) -> Option<String> {
    let fields = [&c.namespace, &c.name, &c.uid];
    if fields.iter().any(|f| f.contains(['\n', '\r', '\0'])) {
        return None;
    }
    Some(format!(
        "namespace={}\nname={}\nuid={}\n",
        c.namespace, c.name, c.uid
    ))
}

fn parse(text: &str) -> Claimant {
    let mut c = Claimant::default();
    for line in text.lines() {
        match line.split_once('=') {
            Some(("namespace", v)) => c.namespace = v.to_string(),
            Some(("name", v)) => c.name = v.to_string(),
            Some(("uid", v)) => c.uid = v.to_string(),
            _ => return Claimant::default(),
        }
    }
    if c.namespace.is_empty() || c.name.is_empty() {
        return Claimant::default();
    }
    c
}

impl<'a> PendingRecords<'a> {
    /// The records in `path` (relative to `dir`, created by the caller).
    pub fn new(dir: &'a Dir, path: &'a str) -> Self {
        Self { dir, path }
    }

    fn file(&self, pv: &str) -> Result<String, OpError> {
        if !is_record_name(pv) {
            return Err(io_err("pending record", pv)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a PV name",
            )));
        }
        Ok(format!("{}/{pv}", self.path))
    }

    /// Writes (or rewrites, refreshing its time) the record of `pv`.
    pub fn record(&self, pv: &str, claimant: &Claimant) -> Result<(), OpError> {
        let file = self.file(pv)?;
        let text = render(claimant).ok_or_else(|| {
            io_err("write pending record", pv)(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a claim name or UID with a line break",
            ))
        })?;
        self.dir
            .write(&file, text)
            .map_err(io_err("write pending record", pv))
    }

    /// Removes the record of `pv` (the PV is saved, or the volume is gone);
    /// `false` if there was none.
    pub fn clear(&self, pv: &str) -> Result<bool, OpError> {
        match self.dir.remove_file(self.file(pv)?) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove pending record", pv)(e)),
        }
    }

    /// The record of `pv`, if any.
    pub fn read(&self, pv: &str) -> Result<Option<Pending>, OpError> {
        let file = self.file(pv)?;
        let text = match self.dir.read_to_string(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            // Not UTF-8: a damaged record, read as naming no claim.
            Err(e) if e.kind() == io::ErrorKind::InvalidData => String::new(),
            Err(e) => return Err(io_err("read pending record", pv)(e)),
        };
        let recorded_at = self
            .dir
            .metadata(&file)
            .and_then(|m| m.modified())
            .map(|t| t.into_std())
            .map_err(io_err("stat pending record", pv))?;
        Ok(Some(Pending {
            pv: pv.to_string(),
            claimant: parse(&text),
            recorded_at,
        }))
    }

    /// Every record (one read per record: there are only as many as
    /// volumes being made, plus those a crash left).
    pub fn list(&self) -> Result<Vec<Pending>, OpError> {
        let entries = self
            .dir
            .read_dir(self.path)
            .map_err(io_err("list pending records", self.path))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_err("list pending records", self.path))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if !is_record_name(&name) {
                continue;
            }
            if let Some(p) = self.read(&name)? {
                out.push(p);
            }
        }
        out.sort_by(|a, b| a.pv.cmp(&b.pv));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    fn records() -> (tempfile::TempDir, Dir) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("pending")).unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        (tmp, dir)
    }

    fn alice() -> Claimant {
        Claimant {
            namespace: "ns".into(),
            name: "data".into(),
            uid: "0a1b".into(),
        }
    }

    #[test]
    fn a_record_reads_back_and_clears() {
        let (_t, dir) = records();
        let r = PendingRecords::new(&dir, "pending");
        r.record("pvc-1", &alice()).unwrap();
        let got = r.read("pvc-1").unwrap().unwrap();
        assert_eq!(got.claimant, alice());
        assert_eq!(r.list().unwrap(), vec![got]);
        assert!(r.clear("pvc-1").unwrap());
        assert!(!r.clear("pvc-1").unwrap());
        assert_eq!(r.read("pvc-1").unwrap(), None);
        assert!(r.list().unwrap().is_empty());
    }

    #[test]
    fn hostile_names_and_damaged_records_never_name_a_claim() {
        let (tmp, dir) = records();
        let r = PendingRecords::new(&dir, "pending");
        for bad in ["", "../x", "a/b", ".hidden", "nul\0"] {
            assert!(r.record(bad, &alice()).is_err(), "{bad:?}");
        }
        let mut forged = alice();
        forged.name = "x\nuid=other".into();
        assert!(r.record("pvc-2", &forged).is_err());
        std::fs::write(tmp.path().join("pending/pvc-3"), "garbage\n").unwrap();
        std::fs::write(tmp.path().join("pending/pvc-4"), b"uid=\xff\xfe").unwrap();
        std::fs::write(tmp.path().join("pending/pvc-5"), "uid=u\n").unwrap();
        let listed = r.list().unwrap();
        assert_eq!(listed.len(), 3);
        assert!(
            listed.iter().all(|p| p.claimant.uid.is_empty()),
            "{listed:?}"
        );
    }
}
