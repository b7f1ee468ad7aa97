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
//! - Every export, and the NFSv4 pseudo root, is `Access_Type = None` for
//!   everyone, with one `CLIENT` block granting access to the operator's
//!   [`ClientList`] only (docs/security.md): with `sec=sys` any host that
//!   can reach the server can claim any uid, so *who* may connect is the
//!   access control. Clients are validated IP networks rendered in
//!   canonical form, so no operator text reaches Ganesha's parser verbatim.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One export: what we persist per volume and render into Ganesha's syntax.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRecord {
    /// The PV this export serves (also the directory's name).
    pub pv: String,
    /// Ganesha's export id (1..=65534, never 152; 65535 is the canary's).
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

/// A path that cannot go into a Ganesha config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not absolute.
    #[error("`{0}` is not absolute")]
    NotAbsolute(String),
    /// Holds a character Ganesha's syntax cannot quote.
    #[error("`{path}` contains {found:?}, which Ganesha's config syntax cannot hold")]
    Unquotable {
        /// The path.
        path: String,
        /// The first such character.
        found: char,
    },
}

/// Why a path cannot go into a Ganesha config.
pub fn check_config_path(path: &str) -> Result<(), PathError> {
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute(path.to_string()));
    }
    if let Some(found) = path
        .chars()
        .find(|c| matches!(c, '"' | '\\' | '\n' | '\r' | '#' | '{' | '}' | ';') || c.is_control())
    {
        return Err(PathError::Unquotable {
            path: path.to_string(),
            found,
        });
    }
    Ok(())
}

/// An `--allowed-clients` entry or list that is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientsError {
    /// Neither an IP address nor a CIDR network.
    #[error("`{0}` is not an IP address or CIDR network (e.g. 10.0.0.0/8)")]
    NotAnAddress(String),
    /// A prefix length that is no number or too long for the address.
    #[error("`{net}`: the prefix length must be 0-{max}")]
    Prefix {
        /// The entry.
        net: String,
        /// 32 or 128.
        max: u8,
    },
    /// Host bits set beyond the prefix: a typo, not widened or narrowed.
    #[error("`{net}` has host bits set beyond /{prefix}; did you mean {masked}/{prefix}?")]
    HostBits {
        /// The entry.
        net: String,
        /// Its prefix length.
        prefix: u8,
        /// The network it probably means.
        masked: IpAddr,
    },
    /// The unspecified address with a prefix: Ganesha would read it as
    /// every client.
    #[error("`{0}`: Ganesha reads the unspecified address as every client; write 0.0.0.0/0 (or ::/0) if that is what you mean")]
    Unspecified(String),
    /// No entry at all: every client would be locked out.
    #[error("the client list is empty: name the networks of your nodes, e.g. 10.0.0.0/16")]
    Empty,
}

/// An export file whose record cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The first line is not the record header.
    #[error("the first line is not an nfs-provisioner record")]
    NoHeader,
    /// The record is not the JSON of an [`ExportRecord`].
    #[error("the record does not parse: {0}")]
    Json(String),
    /// Export id 0 (the pseudo root), 152 (Ganesha's own) or
    /// [`CANARY_EXPORT_ID`].
    #[error("export id {0} is reserved")]
    ReservedId(u16),
    /// The recorded path could not be written back into a config.
    #[error(transparent)]
    Path(#[from] PathError),
}

/// One allowed client: an IP network (a single address is a full-length
/// prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientNet {
    addr: IpAddr,
    prefix: u8,
}

impl ClientNet {
    /// Parses `ADDR` or `ADDR/PREFIX`; host bits beyond the prefix must be
    /// zero (a typo like `10.1.2.3/8` is refused rather than silently
    /// widened or narrowed).
    pub fn parse(s: &str) -> Result<Self, ClientsError> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| ClientsError::NotAnAddress(s.to_string()))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix =
            match p {
                None => max,
                Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                    ClientsError::Prefix {
                        net: s.to_string(),
                        max,
                    }
                })?,
            };
        // Ganesha reads a bare `0.0.0.0` (or `::`) as "any client": only
        // the explicit /0 may mean everyone (and is warned about).
        if addr.is_unspecified() && prefix != 0 {
            return Err(ClientsError::Unspecified(s.to_string()));
        }
        let masked = mask(addr, prefix);
        if masked != addr {
            return Err(ClientsError::HostBits {
                net: s.to_string(),
                prefix,
                masked,
            });
        }
        Ok(ClientNet { addr, prefix })
    }

    /// The network of the one address `ip`.
    pub fn host(ip: IpAddr) -> Self {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        ClientNet { addr: ip, prefix }
    }

    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }

    /// The number of leading bits fixed by the network.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

impl std::fmt::Display for ClientNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let full = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == full {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

/// Who may mount: a list of IP networks, written into every export's
/// `CLIENT` block and the pseudo root's. An empty list (no Node known yet,
/// and no `--allowed-clients`) renders no `CLIENT` block: nobody mounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientList(Vec<ClientNet>);

impl ClientList {
    /// The operator's networks plus each of `hosts` (the Nodes'
    /// addresses), sorted and without repeats, so the same cluster always
    /// renders the same text (no rewrite, no reload when nothing changed).
    pub fn with_hosts(&self, hosts: impl IntoIterator<Item = IpAddr>) -> Self {
        let mut nets: Vec<ClientNet> = self
            .0
            .iter()
            .copied()
            .chain(
                hosts
                    .into_iter()
                    .filter(|ip| !ip.is_unspecified())
                    .map(ClientNet::host),
            )
            .collect();
        nets.sort();
        nets.dedup();
        ClientList(nets)
    }

    /// Whether nobody may mount.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Everyone on this list or on `other`, sorted, without repeats.
    pub fn union(&self, other: &ClientList) -> Self {
        let mut nets: Vec<ClientNet> = self.0.iter().chain(&other.0).copied().collect();
        nets.sort();
        nets.dedup();
        ClientList(nets)
    }

    /// The list as [`ClientList::parse`] reads it back (empty for nobody).
    pub fn to_config_list(&self) -> String {
        self.0
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Parses a comma-separated list (`--allowed-clients`); blanks around
    /// entries are ignored, an empty list is refused (it would lock every
    /// client out, which is never what an operator means).
    pub fn parse(s: &str) -> Result<Self, ClientsError> {
        let nets = s
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(ClientNet::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if nets.is_empty() {
            return Err(ClientsError::Empty);
        }
        Ok(ClientList(nets))
    }

    /// Whether `ip` may mount.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(ip))
    }

    /// Whether some entry admits every address (`0.0.0.0/0` or `::/0`).
    pub fn admits_everyone(&self) -> bool {
        self.0.iter().any(|n| n.prefix() == 0)
    }

    /// The entries, in the order given.
    pub fn nets(&self) -> &[ClientNet] {
        &self.0
    }
}

impl std::fmt::Display for ClientList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(nobody)");
        }
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for ClientList {
    type Err = ClientsError;
    fn from_str(s: &str) -> Result<Self, ClientsError> {
        ClientList::parse(s)
    }
}

/// The `EXPORT { ... }` block of one record: no access for anyone, read-write
/// for `clients`.
pub fn export_block(r: &ExportRecord, clients: &ClientList) -> String {
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
         \tAccess_Type = None;\n\
         \tSquash = {squash};\n\
         \tAnonymous_Uid = 65534;\n\
         \tAnonymous_Gid = 65534;\n\
         \tSecType = sys;\n\
         \tProtocols = 3, 4;\n\
         \tFilesystem_Id = {id}.{id};\n\
         \tFSAL {{ Name = VFS; }}\n\
         {client}\
         }}\n",
        id = r.export_id,
        path = r.path,
        client = client_block(
            clients,
            &format!("\t\tAccess_Type = RW;\n\t\tSquash = {squash};\n")
        ),
    )
}

/// The `CLIENT` block admitting `clients` with `grants` (its inner lines);
/// nothing for an empty list (the export's own `Access_Type = None` then
/// refuses everyone).
fn client_block(clients: &ClientList, grants: &str) -> String {
    if clients.is_empty() {
        return String::new();
    }
    format!("\tCLIENT {{\n\t\tClients = {clients};\n{grants}\t}}\n")
}

/// The export id of the readiness canary ([`canary_block`]): never a
/// volume's (the allocation counts up from 1 and skips it).
pub const CANARY_EXPORT_ID: u16 = u16::MAX;

/// The `EXPORT` block of the readiness canary: an empty directory of the
/// state directory, exported for a moment to prove that Ganesha can export
/// (the VFS FSAL takes a file handle of it, as of every volume), and
/// withdrawn at once. No `CLIENT` block and `Access_Type = None`: no client
/// may mount or read it while it is live.
pub fn canary_block(path: &str) -> String {
    format!(
        "EXPORT {{\n\
         \tExport_Id = {id};\n\
         \tPath = \"{path}\";\n\
         \tPseudo = \"{path}\";\n\
         \tAccess_Type = None;\n\
         \tSquash = Root_Squash;\n\
         \tSecType = sys;\n\
         \tProtocols = 3, 4;\n\
         \tFilesystem_Id = {id}.{id};\n\
         \tFSAL {{ Name = VFS; }}\n\
         }}\n",
        id = CANARY_EXPORT_ID,
    )
}

/// The NFSv4 pseudo root (export 0): without it Ganesha makes one that any
/// client may list, and its listing names every export. Only `clients` may
/// read its directory structure (`MDONLY_RO`, Ganesha's default for it).
pub fn pseudo_root_block(clients: &ClientList) -> String {
    format!(
        "EXPORT {{\n\
         \tExport_Id = 0;\n\
         \tPath = \"/\";\n\
         \tPseudo = \"/\";\n\
         \tProtocols = 4;\n\
         \tTransports = TCP;\n\
         \tSecType = sys;\n\
         \tAccess_Type = None;\n\
         \tSquash = Root_Squash;\n\
         \tFSAL {{ Name = PSEUDO; }}\n\
         {client}\
         }}\n",
        client = client_block(clients, "\t\tAccess_Type = MDONLY_RO;\n"),
    )
}

/// The whole export file: the record as a JSON comment line, then the block.
pub fn export_file(r: &ExportRecord, clients: &ClientList) -> String {
    let json = serde_json::to_string(r).expect("records serialize");
    format!("{RECORD_HEADER}{json}\n{}", export_block(r, clients))
}

/// Reads the record back from an export file.
pub fn parse_export_file(text: &str) -> Result<ExportRecord, RecordError> {
    let first = text.lines().next().unwrap_or_default();
    let json = first
        .strip_prefix(RECORD_HEADER)
        .ok_or(RecordError::NoHeader)?;
    let r: ExportRecord =
        serde_json::from_str(json).map_err(|e| RecordError::Json(e.to_string()))?;
    if r.export_id == 0 || r.export_id == 152 || r.export_id == CANARY_EXPORT_ID {
        return Err(RecordError::ReservedId(r.export_id));
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
/// the restricted pseudo root, and every export inline (so the server never
/// answers without them), all admitting only `clients`.
pub fn main_config(
    core: &CoreConfig,
    recovery_root: &Path,
    clients: &ClientList,
    exports: &[ExportRecord],
) -> String {
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
    s.push_str(&pseudo_root_block(clients));
    for r in exports {
        s.push_str(&export_block(r, clients));
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

    fn clients() -> ClientList {
        ClientList::parse("10.0.0.0/16, 192.168.1.7").unwrap()
    }

    #[test]
    fn export_block_has_stable_fsid_and_same_path_for_v3_and_v4() {
        let b = export_block(&record(), &clients());
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
        assert!(export_block(&r, &clients()).contains("Squash = Root_Id_Squash;"));
    }

    #[test]
    fn only_the_listed_clients_get_access_to_exports_and_the_pseudo_root() {
        let b = export_block(&record(), &clients());
        // Everyone else: no access (the export-level default).
        let (outer, client) = b.split_once("CLIENT {").expect("a CLIENT block");
        assert!(outer.contains("Access_Type = None;"), "{b}");
        assert!(!outer.contains("Access_Type = RW"), "{b}");
        assert!(
            client.contains("Clients = 10.0.0.0/16, 192.168.1.7;")
                && client.contains("Access_Type = RW;"),
            "{b}"
        );
        let p = pseudo_root_block(&clients());
        for line in [
            "Export_Id = 0;",
            "FSAL { Name = PSEUDO; }",
            "Access_Type = None;",
            "Clients = 10.0.0.0/16, 192.168.1.7;",
            "Access_Type = MDONLY_RO;",
        ] {
            assert!(p.contains(line), "missing {line:?} in\n{p}");
        }
    }

    #[test]
    fn client_lists_join_and_read_back() {
        let a = ClientList::parse("10.0.0.2, 10.0.0.0/24").unwrap();
        let b = ClientList::parse("10.0.0.2,fd00::1").unwrap();
        let u = a.union(&b);
        assert_eq!(u.to_string(), "10.0.0.0/24, 10.0.0.2, fd00::1");
        assert_eq!(ClientList::parse(&u.to_config_list()).unwrap(), u);
        assert_eq!(ClientList::default().to_config_list(), "");
        // A Node at the unspecified address adds nobody.
        let none = ClientList::default().with_hosts(["0.0.0.0".parse().unwrap()]);
        assert!(none.is_empty());
    }

    #[test]
    fn client_lists_are_validated_and_rendered_canonically() {
        let l = ClientList::parse(" 10.0.0.0/8 ,fd00::/8,127.0.0.1/32,::1").unwrap();
        assert_eq!(l.to_string(), "10.0.0.0/8, fd00::/8, 127.0.0.1, ::1");
        assert!(l.allows("10.200.3.4".parse().unwrap()));
        assert!(l.allows("fd12::1".parse().unwrap()));
        assert!(l.allows("127.0.0.1".parse().unwrap()));
        assert!(!l.allows("127.0.0.2".parse().unwrap()));
        assert!(!l.allows("11.0.0.1".parse().unwrap()));
        assert!(!l.allows("::ffff:10.0.0.1".parse().unwrap()));
        assert!(!l.admits_everyone());
        assert!(ClientList::parse("0.0.0.0/0").unwrap().admits_everyone());
        let d = ClientList::parse("10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7").unwrap();
        assert!(!d.admits_everyone());
        assert!(!d.allows("8.8.8.8".parse().unwrap()));
        assert!(d.allows("172.18.0.2".parse().unwrap()));
        for bad in [
            "",
            " , ",
            "*",
            "10.0.0.0/33",
            "10.1.2.3/8",
            "host.example.com",
            "10.0.0.0/8; Access_Type = RW",
            "10.0.0.0/8\n}",
            "0.0.0.0",
            "0.0.0.0/8",
            "::",
            "@netgroup",
            "::/129",
        ] {
            assert!(ClientList::parse(bad).is_err(), "{bad:?} must be refused");
        }
        let e = ClientList::parse("10.1.2.3/8").unwrap_err();
        assert!(matches!(e, ClientsError::HostBits { prefix: 8, .. }), "{e}");
        assert!(e.to_string().contains("did you mean 10.0.0.0/8"), "{e}");
        assert_eq!(ClientList::parse(" , "), Err(ClientsError::Empty));
    }

    #[test]
    fn export_file_round_trips_and_rejects_damage() {
        let text = export_file(&record(), &clients());
        assert!(text.starts_with(RECORD_HEADER));
        assert_eq!(parse_export_file(&text).unwrap(), record());
        assert_eq!(parse_export_file("EXPORT { }"), Err(RecordError::NoHeader));
        assert_eq!(
            parse_export_file(&text.replace("\"export_id\":3", "\"export_id\":152")),
            Err(RecordError::ReservedId(152))
        );
        assert!(matches!(
            parse_export_file(&text.replace("/export/pvc-1", "/x\\\"y")),
            Err(RecordError::Path(PathError::Unquotable { found: '"', .. }))
        ));
        assert!(matches!(
            parse_export_file(&text.replace("\"gid\"", "\"other\"")),
            Err(RecordError::Json(_))
        ));
    }

    #[test]
    fn config_paths_must_be_plain() {
        assert!(check_config_path("/export/pvc-1").is_ok());
        assert_eq!(
            check_config_path("relative"),
            Err(PathError::NotAbsolute("relative".into()))
        );
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
            &clients(),
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
            &clients(),
            &[],
        );
        assert!(graceless.contains("Graceless = true;"));
        // Only the restricted pseudo root.
        assert_eq!(graceless.matches("EXPORT {").count(), 1, "{graceless}");
        assert!(graceless.contains("Export_Id = 0;"));
    }

    #[test]
    fn bus_config_listens_on_the_socket_and_lets_root_own_ganesha() {
        let c = bus_config(Path::new("/run/x/bus.sock"));
        assert!(c.contains("<listen>unix:path=/run/x/bus.sock</listen>"));
        assert!(c.contains(r#"<allow own="org.ganesha.nfsd"/>"#));
    }
}
