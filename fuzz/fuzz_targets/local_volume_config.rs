//! local-volume's configuration (the ConfigMap's YAML): any document is
//! either refused naming a key or validated; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use local_volume_provisioner::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(text) else {
        return;
    };
    if let Ok(config) = Config::from_value(value) {
        for class in config.classes.values() {
            assert!(class.host_dir.is_absolute(), "{:?}", class.host_dir);
            assert!(class.mount_dir.is_absolute(), "{:?}", class.mount_dir);
        }
    }
});
