//! `empo2 memory`: the tip memory service on its own (for compose and Kubernetes).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use memory_service::MemoryConfig;
use memory_service::config::{BackendKind, EmbedderKind};

/// Flags that override the `[memory]` configuration.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (default 127.0.0.1:50051; port 0 picks a free one).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Directory of the embedded store.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Use a Qdrant server at this gRPC URL instead of the embedded store.
    #[arg(long)]
    qdrant_url: Option<String>,
    /// Embedder: `minilm` (needs the model files) or `hash` (model-free).
    #[arg(long, value_parser = parse_embedder)]
    embedder: Option<EmbedderKind>,
    /// all-MiniLM-L6-v2 directory (Hugging Face layout).
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

fn parse_embedder(s: &str) -> Result<EmbedderKind, String> {
    match s {
        "minilm" => Ok(EmbedderKind::Minilm),
        "hash" => Ok(EmbedderKind::Hash),
        other => Err(format!("unknown embedder `{other}`: use minilm or hash")),
    }
}

/// Applies the flags, binds, prints the bound address on stdout, and serves until a signal.
pub async fn run(args: Args, mut cfg: MemoryConfig) -> anyhow::Result<()> {
    let Args {
        listen,
        data_dir,
        qdrant_url,
        embedder,
        model_dir,
    } = args;
    cfg.listen = listen.unwrap_or(cfg.listen);
    cfg.data_dir = data_dir.unwrap_or(cfg.data_dir);
    if let Some(url) = qdrant_url {
        cfg.backend = BackendKind::Qdrant;
        cfg.qdrant.url = url;
    }
    cfg.embedder.kind = embedder.unwrap_or(cfg.embedder.kind);
    cfg.embedder.model_dir = model_dir.unwrap_or(cfg.embedder.model_dir);
    let listen = cfg.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let opened = memory_service::open(cfg).await?;
    // Printed once the embedder and the store are up. Scripts and tests read the bound
    // address (port 0 picks one) from this line.
    println!("empo2 memory listening on {}", listener.local_addr()?);
    opened.serve(listener, crate::shutdown::signal()).await?;
    Ok(())
}
