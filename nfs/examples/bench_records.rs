//! Benchmark (not a test): what a fresh claim's allocation of an export id
//! and GID costs with N volumes on the export root. Every claim allocates
//! against all records; before they were held in memory, each allocation
//! read every record file (what a cold [`ExportRoot::open`] still does once
//! at start), so provisioning was quadratic in the number of volumes.
//! Prints numbers; asserts nothing. Needs no Ganesha and no root.
//!
//! ```text
//! cargo run --release -p nfs-provisioner --example bench_records -- [records=10000] [allocations=1000]
//! ```

use std::time::Instant;

use nfs_provisioner::exports::ExportRoot;
use nfs_provisioner::ganesha::{ClientList, ExportRecord};
use nfs_provisioner::params::ClassParams;
use nfs_provisioner::provisioner::new_record;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let records: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let allocations: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1000);
    let tmp = tempfile::tempdir()?;
    let clients = ClientList::parse("127.0.0.1")?;
    let root = ExportRoot::open(tmp.path(), clients.clone())?;
    let params = ClassParams::parse(None)?;

    let t = Instant::now();
    for i in 0..records {
        let pv = format!("pvc-{i:06}");
        let r = ExportRecord {
            // Ganesha reserves 0 and 152 (its pseudo root).
            export_id: u16::try_from(if i + 1 >= 152 { i + 2 } else { i + 1 })?,
            path: root.volume_path(&pv),
            pv,
            root_squash: true,
            gid: None,
        };
        root.write_record(&r)?;
    }
    println!("write {records} records: {:.2?}", t.elapsed());

    let t = Instant::now();
    let reopened = ExportRoot::open(tmp.path(), clients)?;
    let (all, damaged) = reopened.records()?;
    let took = t.elapsed();
    anyhow::ensure!(damaged.is_empty(), "damaged records: {damaged:?}");
    println!(
        "read all {} records from disk (start-up; every allocation's cost before they were held in memory): {took:.2?}",
        all.len(),
    );

    let t = Instant::now();
    for i in 0..allocations {
        let pv = format!("pvc-new-{i:06}");
        let (r, damaged) =
            root.with_records(|existing| new_record(&root, &pv, &params, existing))?;
        anyhow::ensure!(damaged.is_empty(), "damaged records: {damaged:?}");
        root.write_record(&r?)?;
    }
    let took = t.elapsed();
    println!(
        "{allocations} allocations (id from memory + record written) with {records}+ records: {took:.2?} ({:.1} µs each)",
        took.as_secs_f64() * 1e6 / allocations as f64
    );
    Ok(())
}
