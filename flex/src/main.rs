//! `flex-provisioner`: a cluster-wide provisioner (leader election on by
//! default) that makes volumes by running a driver executable. See README.md
//! for the driver protocol.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use flex_provisioner::driver::{allowed_env, check_executable, Driver, Limits, DEFAULT_ENV_ALLOW};
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
    /// Extra environment variables (comma-separated names) the driver gets
    /// besides PATH, HOME, LANG, LC_ALL, TZ and TMPDIR; nothing else of the
    /// provisioner's environment reaches it.
    #[arg(long, env = "FLEX_DRIVER_ENV", value_delimiter = ',')]
    driver_env: Vec<String>,
    #[command(flatten)]
    common: external_storage::Args,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli: Cli = external_storage::args::parse_command_line(flex_provisioner::PROVISIONER_NAME);
    if cli.driver_name.trim().is_empty() {
        bail!("--driver-name (FLEX_DRIVER_NAME) must not be empty: it becomes the PV's flexVolume.driver, e.g. example.com/lvm");
    }
    if cli.driver_timeout.is_zero() {
        bail!("--driver-timeout must be greater than zero");
    }
    let path = check_executable(&cli.driver).context("the driver cannot be used")?;
    let common = cli.common;
    let allow: Vec<String> = DEFAULT_ENV_ALLOW
        .iter()
        .map(|s| s.to_string())
        .chain(cli.driver_env.iter().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .collect();
    let driver = Driver::new(path, cli.driver_timeout, Limits::default())
        .with_env(allowed_env(std::env::vars_os(), &allow));
    external_storage::run(common, Flex::new(driver, cli.driver_name)).await?;
    Ok(())
}
