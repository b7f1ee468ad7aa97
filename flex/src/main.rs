//! `flex-provisioner`: a cluster-wide provisioner (leader election on by
//! default) that makes volumes by running a driver executable. See README.md
//! for the driver protocol.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use flex_provisioner::driver::{check_executable, Driver, Limits};
use flex_provisioner::provisioner::Flex;

/// Dynamic provisioner backed by a FlexVolume-style driver executable.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    /// The driver executable; called as `DRIVER provision JSON` and
    /// `DRIVER delete JSON`.
    #[arg(long, env = "FLEX_DRIVER")]
    driver: PathBuf,
    /// The PV's `flexVolume.driver` (e.g. `example.com/lvm`): the FlexVolume
    /// driver that mounts the volume on nodes.
    #[arg(long, env = "FLEX_DRIVER_NAME")]
    driver_name: String,
    /// Longest a driver call may take; then it is killed with its process
    /// group (e.g. 500ms, 30s, 2m).
    #[arg(long, env = "FLEX_DRIVER_TIMEOUT", default_value = "30s",
          value_parser = external_storage::args::parse_duration)]
    driver_timeout: Duration,
    #[command(flatten)]
    common: external_storage::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.driver_name.trim().is_empty() {
        bail!("--driver-name (FLEX_DRIVER_NAME) must not be empty: it becomes the PV's flexVolume.driver, e.g. example.com/lvm");
    }
    if cli.driver_timeout.is_zero() {
        bail!("--driver-timeout must be greater than zero");
    }
    let path = check_executable(&cli.driver).context("the driver cannot be used")?;
    let common = cli
        .common
        .with_default_provisioner_name(flex_provisioner::PROVISIONER_NAME);
    let driver = Driver::new(path, cli.driver_timeout, Limits::default());
    external_storage::run(common, Flex::new(driver, cli.driver_name)).await?;
    Ok(())
}
