//! nfs export records read back from disk, and the client list: any file
//! is either refused or a record whose rendering round-trips, whose path is
//! plain, and whose rendered config holds no text that could end or add a
//! Ganesha block; any client list is refused or renders canonically.

use nfs_provisioner::ganesha::{check_config_path, export_file, parse_export_file, ClientList};

/// One input; panics if an invariant is broken.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(clients) = ClientList::parse(&text) {
        let shown = clients.to_string();
        assert!(
            !shown.contains([';', '{', '}', '"', '\n', '#']),
            "{shown:?}"
        );
        assert_eq!(
            ClientList::parse(&shown.replace(", ", ",")).unwrap(),
            clients
        );
    }
    if let Ok(r) = parse_export_file(&text) {
        assert!(check_config_path(&r.path).is_ok());
        assert!(r.export_id != 0 && r.export_id != 152);
        let clients = ClientList::parse("127.0.0.1").unwrap();
        let again = export_file(&r, &clients);
        assert_eq!(parse_export_file(&again).unwrap(), r);
        // The record line is a comment: it must stay one line, and the
        // config Ganesha reads (every other line) holds exactly one export
        // block with one client block, whatever the record's fields hold.
        let mut lines = again.lines();
        let header = lines.next().unwrap_or_default();
        assert!(header.starts_with('#'), "{again}");
        let config: Vec<&str> = lines.collect();
        assert!(
            config.iter().all(|l| !l.trim_start().starts_with('#')),
            "{again}"
        );
        let config = config.join("\n");
        assert_eq!(config.matches("EXPORT {").count(), 1, "{again}");
        assert_eq!(config.matches("CLIENT {").count(), 1, "{again}");
    }
}

/// Export files as the provisioner writes them, and client lists.
pub fn seeds() -> Vec<Vec<u8>> {
    let clients = ClientList::parse("10.0.0.0/8, 127.0.0.1").unwrap();
    let record = nfs_provisioner::ganesha::ExportRecord {
        pv: "pvc-1".into(),
        export_id: 7,
        path: "/export/pvc-1".into(),
        root_squash: true,
        gid: Some(2001),
    };
    vec![
        export_file(&record, &clients).into_bytes(),
        b"10.0.0.0/8,192.168.0.0/16".to_vec(),
        b"*".to_vec(),
    ]
}

/// Record fields, Ganesha config syntax and address forms.
pub const TOKENS: &[&str] = &[
    "\"export_id\":",
    "\"path\":",
    "\"pv\":",
    "\"root_squash\":",
    "\"gid\":",
    "152",
    "0",
    "65536",
    "\"/export/a\"",
    "\"relative\"",
    "\"/a;b\"",
    "}",
    "{",
    ";",
    "\"",
    "#",
    "\n",
    "EXPORT {",
    "CLIENT {",
    "/32",
    "::1",
    ",",
    "0.0.0.0/0",
];
