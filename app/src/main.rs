//! `keel` — the reference app. Run with `cargo run` from the workspace root.
//!
//! Until the backend and identity services land, it starts the web listener with a health
//! endpoint so that the quick start already does something real.

use std::net::SocketAddr;

use anyhow::Context;
use axum::{Router, routing::get};
use clap::Parser;

/// Command-line flags; every flag has an environment fallback.
#[derive(Debug, Parser)]
#[command(name = "keel", version, about = "Keel: SSR + identity + reactive backend in one binary")]
struct Config {
    /// Address of the web tier.
    #[arg(long, env = "KEEL_WEB_ADDR", default_value = "127.0.0.1:3000")]
    web_addr: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let config = Config::parse();
    let listener = tokio::net::TcpListener::bind(config.web_addr)
        .await
        .with_context(|| format!("cannot listen on {} (KEEL_WEB_ADDR)", config.web_addr))?;
    let app = Router::new().route("/health", get(|| async { "ok" }));
    tracing::info!("web: http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
