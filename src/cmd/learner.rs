//! `empo2 learner`: the learner service on its own (for compose and Kubernetes). It trains
//! the configured iterations on the groups actors bring back, then exits.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use learner::pool::Pool;
use learner::{Learner, LearnerOptions};

use crate::config::Config;

/// How long a learner that has finished training still answers before it exits: three of
/// `env register --watch`'s polls.
const FINISHED_LINGER: Duration = Duration::from_secs(15);

/// Flags of `empo2 learner` (and those shared with `empo2 train`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, env = "EMPO2_LEARNER_LISTEN", default_value = "127.0.0.1:50071")]
    listen: SocketAddr,
    /// The tip memory service, snapshotted with every checkpoint (restored on `--resume`).
    #[arg(long, env = "EMPO2_MEMORY")]
    memory: Option<String>,
    /// Start with an empty pool: environments only come from RegisterEnvironment.
    #[arg(long)]
    no_builtin: bool,
    #[command(flatten)]
    train: super::train::Args,
}

/// Starts (or resumes) the job, prints the bound address, serves until done or a signal.
pub async fn run(args: Args, mut cfg: Config) -> anyhow::Result<()> {
    let Args {
        listen,
        memory,
        no_builtin,
        train: flags,
    } = args;
    let start = flags.apply(&mut cfg);
    let policy = crate::train::local::load_policy(&cfg)?;
    let train = cfg.train;
    std::fs::create_dir_all(&train.out_dir)
        .with_context(|| format!("cannot create {}", train.out_dir.display()))?;
    let environments = match no_builtin {
        true => Vec::new(),
        false => vec![Pool::builtin(&train.tasks)?],
    };
    let options = LearnerOptions {
        memory_endpoint: memory,
        memory_token: cfg.memory.auth_token,
        resume: start.resume,
        overwrite: start.overwrite,
        env_token: cfg.env.auth_token,
    };
    let mut learner = Learner::start(train, policy, environments, options).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    // Scripts and tests read the bound address (port 0 picks one) from this line.
    println!("empo2 learner listening on {}", listener.local_addr()?);
    let mut server = tokio::spawn(learner::service::serve(
        listener,
        &learner,
        crate::shutdown::signal(),
    ));
    tokio::select! {
        done = learner.finished() => {
            done?;
            tracing::info!(linger_secs = FINISHED_LINGER.as_secs(), "training finished");
            // Serve on a little (until a signal at most), so that watchers polling Status
            // (`env register --watch`) read `finished` instead of finding the learner gone.
            let _ = tokio::time::timeout(FINISHED_LINGER, &mut server).await;
            Ok(())
        }
        served = &mut server => {
            served??;
            Ok(())
        }
    }
}
