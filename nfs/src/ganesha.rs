//! The configuration files we render: Ganesha's main config, one `EXPORT`
//! block per volume, and the private D-Bus daemon's config. Pure functions,
//! so every byte Ganesha reads is unit-tested.
//!
//! Choices, and why:
//! - `Path` = `Pseudo` = the directory's path, and `mount_path_pseudo`, so
//!   NFSv3 and NFSv4 clients mount the same path (the one in the PV).
//! - `Filesystem_Id = <id>.<id>` per export and `fsid_device = false`: the
//!   fsid clients see is derived from the export id we persist, never from a
//!   device number, so it survives the pod moving to another node (the
//!   anchor's stale-file-handle complaint). Export id 152 is skipped because
//!   `152.152` is the anchor's pseudo-root fsid.
//! - NLM and RQUOTA are off (no `rpc.statd` in the pod; NFSv4 has locking
//!   built in; NFSv3 clients mount with `nolock`).
//! - Recovery state lives on the export root, so NFSv4 clients reclaim their
//!   state after a restart within the grace period.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One export: what we persist per volume and render into Ganesha's syntax.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRecord {
    /// The PV this export serves (also the directory's name).
    pub pv: String,
    /// Ganesha's export id (1..=65535, never 152).
    pub export_id: u16,
    /// Absolute path of the directory (= NFS path in the PV).
    pub path: String,
    /// Squash root to the anonymous user.
    pub root_squash: bool,
    /// Group owning the directory, if any.
    pub gid: Option<u32>,
}

/// First line of an export file; the JSON record follows it on that line.
pub const RECORD_HEADER: &str = "# nfs-provisioner export record (do not edit): ";

/// Why a path cannot go into a Ganesha config.
pub fn check_config_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` is not absolute"));
    }
    if let Some(c) = path
        .chars()
        .find(|c| matches!(c, '"' | '\\' | '\n' | '\r' | '#' | '{' | '}' | ';') || c.is_control())
    {
        return Err(format!(
            "`{path}` contains {c:?}, which Ganesha's config syntax cannot hold"
        ));
    }
    Ok(())
}

/// The `EXPORT { ... }` block of one record.
pub fn export_block(r: &ExportRecord) -> String {
    let squash = if r.root_squash {
        // uid/gid 0 become anonymous; supplementary groups (e.g. the
        // volume's GID) are kept, so squashed root in a pod with the GID can
        // still write.
        "Root_Id_Squash"
    } else {
        "No_Root_Squash"
    };
    format!(
        "EXPORT {{\n\
         \tExport_Id = {id};\n\
         \tPath = \"{path}\";\n\
         \tPseudo = \"{path}\";\n\
         \tAccess_Type = RW;\n\
         \tSquash = {squash};\n\
         \tAnonymous_Uid = 65534;\n\
         \tAnonymous_Gid = 65534;\n\
         \tSecType = sys;\n\
         \tProtocols = 3, 4;\n\
         \tFilesystem_Id = {id}.{id};\n\
         \tFSAL {{ Name = VFS; }}\n\
         }}\n",
        id = r.export_id,
        path = r.path,
    )
}

/// The whole export file: the record as a JSON comment line, then the block.
pub fn export_file(r: &ExportRecord) -> String {
    let json = serde_json::to_string(r).expect("records serialize");
    format!("{RECORD_HEADER}{json}\n{}", export_block(r))
}

/// Reads the record back from an export file.
pub fn parse_export_file(text: &str) -> Result<ExportRecord, String> {
    let first = text.lines().next().unwrap_or_default();
    let json = first
        .strip_prefix(RECORD_HEADER)
        .ok_or("the first line is not an nfs-provisioner record")?;
    let r: ExportRecord = serde_json::from_str(json).map_err(|e| e.to_string())?;
    if r.export_id == 0 || r.export_id == 152 {
        return Err(format!("export id {} is reserved", r.export_id));
    }
    check_config_path(&r.path)?;
    Ok(r)
}

/// Server settings rendered into the main config.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Address Ganesha listens on.
    pub bind: IpAddr,
    /// NFS port (2049 in production).
    pub nfs_port: u16,
    /// MOUNT port (20048 in production).
    pub mount_port: u16,
    /// Grace period in seconds; 0 skips it (tests only).
    pub grace_period: u32,
}

/// Ganesha's main config: core settings, NFSv4 recovery on the export root,
/// and every export inline (so the server never answers without them).
pub fn main_config(core: &CoreConfig, recovery_root: &Path, exports: &[ExportRecord]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "# Rendered by nfs-provisioner at every (re)start; edits are overwritten.\n\
         NFS_CORE_PARAM {{\n\
         \tProtocols = 3, 4;\n\
         \tNFS_Port = {nfs};\n\
         \tMNT_Port = {mnt};\n\
         \tBind_addr = {bind};\n\
         \tEnable_NLM = false;\n\
         \tEnable_RQUOTA = false;\n\
         \tmount_path_pseudo = true;\n\
         \tfsid_device = false;\n\
         }}\n\
         NFS_KRB5 {{ Active_krb5 = false; }}\n\
         NFSV4 {{\n\
         \tRecoveryBackend = fs;\n\
         \tRecoveryRoot = \"{recovery}\";\n",
        nfs = core.nfs_port,
        mnt = core.mount_port,
        bind = core.bind,
        recovery = recovery_root.display(),
    );
    if core.grace_period == 0 {
        s.push_str("\tGraceless = true;\n");
    } else {
        let _ = writeln!(s, "\tGrace_Period = {};", core.grace_period);
        let _ = writeln!(s, "\tLease_Lifetime = {};", core.grace_period.min(60));
    }
    s.push_str("}\n");
    for r in exports {
        s.push_str(&export_block(r));
    }
    s
}

/// A D-Bus daemon config for a private bus at `socket`: only root may own
/// Ganesha's name and talk to it. Ganesha connects to it through
/// `DBUS_SYSTEM_BUS_ADDRESS`, so no system bus (and no `/run/dbus`) is needed.
pub fn bus_config(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <deny own="*"/>
    <deny send_destination="*"/>
    <allow send_destination="org.freedesktop.DBus"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
  </policy>
  <policy user="root">
    <allow own="org.ganesha.nfsd"/>
    <allow send_destination="*"/>
    <allow receive_type="method_call"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ExportRecord {
        ExportRecord {
            pv: "pvc-1".into(),
            export_id: 3,
            path: "/export/pvc-1".into(),
            root_squash: false,
            gid: Some(2000),
        }
    }

    #[test]
    fn export_block_has_stable_fsid_and_same_path_for_v3_and_v4() {
        let b = export_block(&record());
        for line in [
            "Export_Id = 3;",
            "Path = \"/export/pvc-1\";",
            "Pseudo = \"/export/pvc-1\";",
            "Squash = No_Root_Squash;",
            "Anonymous_Uid = 65534;",
            "Protocols = 3, 4;",
            "Filesystem_Id = 3.3;",
            "FSAL { Name = VFS; }",
        ] {
            assert!(b.contains(line), "missing {line:?} in\n{b}");
        }
        let mut r = record();
        r.root_squash = true;
        assert!(export_block(&r).contains("Squash = Root_Id_Squash;"));
    }

    #[test]
    fn export_file_round_trips_and_rejects_damage() {
        let text = export_file(&record());
        assert!(text.starts_with(RECORD_HEADER));
        assert_eq!(parse_export_file(&text).unwrap(), record());
        assert!(parse_export_file("EXPORT { }").is_err());
        assert!(parse_export_file(&text.replace("\"export_id\":3", "\"export_id\":152")).is_err());
        assert!(parse_export_file(&text.replace("/export/pvc-1", "/x\\\"y")).is_err());
        assert!(parse_export_file(&text.replace("\"gid\"", "\"other\"")).is_err());
    }

    #[test]
    fn config_paths_must_be_plain() {
        assert!(check_config_path("/export/pvc-1").is_ok());
        assert!(check_config_path("relative").is_err());
        for bad in ["/a\"b", "/a;b", "/a\nb", "/a}b"] {
            assert!(check_config_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn main_config_core_recovery_grace_and_exports() {
        let core = CoreConfig {
            bind: "127.0.0.1".parse().unwrap(),
            nfs_port: 20490,
            mount_port: 20048,
            grace_period: 90,
        };
        let c = main_config(
            &core,
            Path::new("/export/.nfs-provisioner/recovery"),
            &[record()],
        );
        for line in [
            "NFS_Port = 20490;",
            "MNT_Port = 20048;",
            "Bind_addr = 127.0.0.1;",
            "Enable_NLM = false;",
            "mount_path_pseudo = true;",
            "fsid_device = false;",
            "RecoveryRoot = \"/export/.nfs-provisioner/recovery\";",
            "Grace_Period = 90;",
            "Lease_Lifetime = 60;",
            "Export_Id = 3;",
        ] {
            assert!(c.contains(line), "missing {line:?} in\n{c}");
        }
        assert!(!c.contains("Graceless"));
        let graceless = main_config(
            &CoreConfig {
                grace_period: 0,
                ..core
            },
            Path::new("/r"),
            &[],
        );
        assert!(graceless.contains("Graceless = true;"));
        assert!(!graceless.contains("EXPORT"));
    }

    #[test]
    fn bus_config_listens_on_the_socket_and_lets_root_own_ganesha() {
        let c = bus_config(Path::new("/run/x/bus.sock"));
        assert!(c.contains("<listen>unix:path=/run/x/bus.sock</listen>"));
        assert!(c.contains(r#"<allow own="org.ganesha.nfsd"/>"#));
    }
}
