//! `loadtest`: load tests for the syncer (see `loadtest --help` and loadtest/README.md).

use anyhow::{Context, Result};
use clap::Parser;

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = loadtest::cli::Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    let (_, complete) = runtime.block_on(loadtest::run(cli))?;
    if !complete {
        std::process::exit(2);
    }
    Ok(())
}
