//! `empo2 env register`: adds an environment server to a running learner's pool — what the
//! one-shot registration service of docker compose and Kubernetes runs.

use std::time::{Duration, Instant};

use anyhow::Context;
use empo2_proto::learner::v1 as pb;
use empo2_proto::learner::v1::learner_client::LearnerClient;
use tonic::Code;

/// Flags of `empo2 env register`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The learner.
    #[arg(long, env = "EMPO2_LEARNER", default_value = "http://127.0.0.1:50071")]
    learner: String,
    /// Unique name of the environment in the pool.
    #[arg(long)]
    name: String,
    /// The environment's gRPC endpoint (any `empo2.env.v1.Environment` server).
    #[arg(long, required_unless_present = "builtin", conflicts_with = "builtin")]
    endpoint: Option<String>,
    /// A built-in world instead of an endpoint (`house`).
    #[arg(long)]
    builtin: Option<String>,
    /// A task to use (repeatable; default: every task the environment lists).
    #[arg(long = "task")]
    tasks: Vec<String>,
    /// Relative sampling weight in the pool.
    #[arg(long, default_value_t = 1.0)]
    weight: f32,
    /// Keep trying for this many seconds while the learner or the environment cannot be
    /// reached (services starting side by side). An environment already registered under
    /// this name counts as done, so a restarted job is harmless.
    #[arg(long, default_value_t = 0)]
    wait: u64,
    /// Then stay: register again whenever the learner comes back without the environment (a
    /// learner restarted before its first checkpoint has forgotten it). Ends when the
    /// learner reports that training finished, or has been unreachable for `--wait` seconds.
    #[arg(long)]
    watch: bool,
}

/// How often `--watch` looks at the learner's pool.
const WATCH_EVERY: Duration = Duration::from_secs(5);

/// Registers, retrying while `wait` allows, prints the tasks and the pool; with `--watch`,
/// keeps the registration in place.
pub async fn run(args: Args, token: Option<&str>) -> anyhow::Result<()> {
    empo2_proto::auth::check_token("train.auth_token", token).map_err(anyhow::Error::msg)?;
    let url = empo2_proto::url(&args.learner);
    let wait = Duration::from_secs(args.wait);
    let mut client = register_within(&args, &url, token, wait).await?;
    let pool = client
        .list_environments(pb::ListEnvironmentsRequest {})
        .await
        .context("ListEnvironments")?
        .into_inner();
    let names: Vec<String> = pool
        .environments
        .iter()
        .map(|e| format!("{} ({} tasks)", e.name, e.tasks.len()))
        .collect();
    println!("pool: {}", names.join(", "));
    if !args.watch {
        return Ok(());
    }
    let mut reachable = Instant::now();
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        match look(&mut client, &args.name).await {
            Ok(Look::Finished) => {
                println!("training finished");
                return Ok(());
            }
            Ok(Look::Registered) => reachable = Instant::now(),
            Ok(Look::Forgotten) => {
                eprintln!(
                    "empo2 env register: the learner forgot {}; registering again",
                    args.name
                );
                client = register_within(&args, &url, token, wait).await?;
                reachable = Instant::now();
            }
            Err(status) if reachable.elapsed() < wait => {
                tracing::warn!(%status, "learner unreachable; watching on");
            }
            Err(status) => {
                println!(
                    "the learner has been unreachable for {} s ({}); done",
                    args.wait,
                    status.message()
                );
                return Ok(());
            }
        }
    }
}

/// Registers, retrying for up to `wait` while something is unreachable; prints the tasks.
async fn register_within(
    args: &Args,
    url: &str,
    token: Option<&str>,
    wait: Duration,
) -> anyhow::Result<Client> {
    let deadline = Instant::now() + wait;
    let request = pb::RegisterEnvironmentRequest {
        name: args.name.clone(),
        endpoint: args.endpoint.clone().unwrap_or_default(),
        builtin: args.builtin.clone().unwrap_or_default(),
        tasks: args.tasks.clone(),
        weight: args.weight,
    };
    loop {
        match register(url, token, request.clone()).await {
            Ok((client, tasks)) => {
                println!("registered {}: {} tasks", args.name, tasks.len());
                for task in tasks {
                    println!(
                        "  {}: {} train / {} test variations",
                        task.name,
                        task.train_variations.len(),
                        task.test_variations.len()
                    );
                }
                return Ok(client);
            }
            Err(Attempt::Done(client)) => {
                println!("{} was already registered", args.name);
                return Ok(client);
            }
            Err(Attempt::Retry(message)) if Instant::now() < deadline => {
                tracing::warn!(%message, "cannot register yet; retrying");
                eprintln!("empo2 env register: {message}; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(Attempt::Retry(message) | Attempt::Refused(message)) => {
                anyhow::bail!("cannot register {}: {message}", args.name)
            }
        }
    }
}

/// What `--watch` sees.
enum Look {
    Finished,
    Registered,
    Forgotten,
}

async fn look(client: &mut Client, name: &str) -> Result<Look, tonic::Status> {
    let status = client.status(pb::StatusRequest {}).await?.into_inner();
    if status.finished {
        return Ok(Look::Finished);
    }
    let pool = client
        .list_environments(pb::ListEnvironmentsRequest {})
        .await?
        .into_inner();
    Ok(match pool.environments.iter().any(|e| e.name == name) {
        true => Look::Registered,
        false => Look::Forgotten,
    })
}

type Client = LearnerClient<empo2_proto::auth::AuthChannel>;

/// Why a registration did not go through.
enum Attempt {
    /// The name is taken: an earlier run registered it.
    Done(Client),
    /// The learner or the environment is not reachable (yet).
    Retry(String),
    /// The learner refused the request for good (bad task, bad weight, wrong token …).
    Refused(String),
}

async fn register(
    url: &str,
    token: Option<&str>,
    request: pb::RegisterEnvironmentRequest,
) -> Result<(Client, Vec<empo2_proto::env::v1::TaskInfo>), Attempt> {
    let channel = empo2_proto::auth::connect(url, Duration::from_secs(120), token)
        .await
        .map_err(|m| Attempt::Retry(format!("learner at {url}: {m}")))?;
    let mut client = LearnerClient::new(channel);
    match client.register_environment(request).await {
        Ok(response) => Ok((client, response.into_inner().tasks)),
        Err(status) if status.code() == Code::AlreadyExists => Err(Attempt::Done(client)),
        Err(status) if status.code() == Code::Unavailable => Err(Attempt::Retry(format!(
            "{:?}: {}",
            status.code(),
            status.message()
        ))),
        Err(status) => Err(Attempt::Refused(format!(
            "{:?}: {}",
            status.code(),
            status.message()
        ))),
    }
}
