//! nfs export records read back from disk, and the client list: any file
//! is either refused or a record whose rendering round-trips, whose path is
//! plain, and whose rendered config holds no text that could end or add a
//! Ganesha block; any client list is refused or renders canonically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nfs_provisioner::ganesha::{check_config_path, export_file, parse_export_file, ClientList};

fuzz_target!(|data: &[u8]| {
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
        // Exactly one export block with one client block.
        assert_eq!(again.matches("EXPORT {").count(), 1, "{again}");
        assert_eq!(again.matches("CLIENT {").count(), 1, "{again}");
    }
});
