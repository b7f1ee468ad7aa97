//! The `kube-testserver` binary: serves the fake API server on a fixed
//! address and writes a kubeconfig, until SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use kube_testserver::{Config, TestServer};

/// Command line.
#[derive(Parser, Debug)]
#[command(about = "A fake but faithful Kubernetes API server for tests")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the kubeconfig.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Disable the PV binder loop.
    #[arg(long)]
    no_binder: bool,
    /// Disable the scheduler loop.
    #[arg(long)]
    no_scheduler: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = Config {
        binder: !args.no_binder,
        scheduler: !args.no_scheduler,
        ..Config::default()
    };
    let server = TestServer::start_on(args.listen, config, args.kubeconfig_out.clone()).await?;
    println!("{}", server.url());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    drop(server);
    Ok(())
}
