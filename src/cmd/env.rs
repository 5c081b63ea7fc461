//! `empo2 env serve | play | register`: serve the built-in worlds over env.proto, play any
//! served environment in the terminal, or add one to a running learner (`super::register`).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use envs::client::Started;
use envs::correct::nearest_action;
use envs::server::ServerConfig;
use envs::{Builtin, EnvClient, ResetSpec, StepOutcome};
use tokio::io::{AsyncBufReadExt, BufReader};

/// `println!` that returns an error instead of panicking when stdout is gone (e.g. `| head`).
macro_rules! say {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)?
    };
}

/// The env subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Serve the built-in text worlds (gRPC `empo2.env.v1.Environment`).
    Serve {
        /// Address to listen on (default 127.0.0.1:50061; port 0 picks a free one).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Most sessions open at once.
        #[arg(long)]
        max_sessions: Option<usize>,
    },
    /// Play an environment in the terminal: type actions, see observations and the score.
    /// Free text is mapped to the nearest valid action, as actors do. Type `:valid` for the
    /// valid actions, `:gold` for a solution, `:quit` to stop.
    Play {
        /// Environment server (e.g. http://127.0.0.1:50061, or a ScienceWorld bridge). Without
        /// it, the built-in worlds are served in-process.
        #[arg(long)]
        endpoint: Option<String>,
        /// Task name (without it, the tasks are listed).
        #[arg(long)]
        task: Option<String>,
        /// Variation id.
        #[arg(long, default_value_t = 0)]
        variation: u32,
        /// Episode seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Environment option `KEY=VALUE` (repeatable), e.g. simplifications=easy.
        #[arg(long = "option", value_parser = parse_option)]
        options: Vec<(String, String)>,
        /// Play the environment's gold path instead of reading actions.
        #[arg(long)]
        gold: bool,
    },
    /// Add an environment server to a running learner's pool (its tasks join from the next
    /// lease). Sends `[train] auth_token` if set.
    Register(super::register::Args),
}

fn parse_option(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

/// Runs an env subcommand; `learner_token` is what `register` sends (`[train] auth_token`).
pub async fn run(
    command: Command,
    mut cfg: ServerConfig,
    learner_token: Option<String>,
) -> anyhow::Result<()> {
    match command {
        Command::Serve {
            listen,
            max_sessions,
        } => {
            cfg.listen = listen.unwrap_or(cfg.listen);
            cfg.max_sessions = max_sessions.unwrap_or(cfg.max_sessions);
            let listener = tokio::net::TcpListener::bind(cfg.listen)
                .await
                .with_context(|| format!("cannot listen on {}", cfg.listen))?;
            // Scripts and tests read the bound address (port 0 picks one) from this line.
            println!("empo2 env listening on {}", listener.local_addr()?);
            envs::serve(
                listener,
                Arc::new(Builtin::new()),
                cfg,
                crate::shutdown::signal(),
            )
            .await?;
            Ok(())
        }
        Command::Play {
            endpoint,
            task,
            variation,
            seed,
            options,
            gold,
        } => {
            let mut client = match endpoint {
                Some(endpoint) => EnvClient::connect(&endpoint).await?,
                None => envs::serve_loopback().await?,
            };
            let Some(task) = task else {
                return list_tasks(&mut client).await;
            };
            let spec = ResetSpec {
                task,
                variation,
                seed,
                options: options.into_iter().collect(),
            };
            play(&mut client, &spec, gold).await
        }
        Command::Register(args) => super::register::run(args, learner_token.as_deref()).await,
    }
}

async fn list_tasks(client: &mut EnvClient) -> anyhow::Result<()> {
    let (name, tasks) = client.list_tasks().await?;
    say!(
        "{name} at {}: {} tasks (pick one with --task)",
        client.endpoint(),
        tasks.len()
    );
    for t in tasks {
        say!(
            "  {:<28} train {:>4}, test {:>4}, ≤{} steps — {}",
            t.name,
            t.train_variations.len(),
            t.test_variations.len(),
            t.max_steps,
            t.description
        );
    }
    Ok(())
}

async fn play(client: &mut EnvClient, spec: &ResetSpec, gold: bool) -> anyhow::Result<()> {
    let Started {
        session,
        mut observation,
        score,
    } = client.reset(spec).await?;
    say!(
        "Task: {}\n\n{}",
        observation.task_description,
        observation.text.trim_end()
    );
    say!("[score {score}]");
    let result = if gold {
        let path = client.gold_path(&session).await?;
        let mut last = None;
        for action in path {
            say!("> {action}");
            let outcome = client.step(&session, &action).await?;
            report(&outcome)?;
            last = Some(outcome);
        }
        last.map(|o| (o.score, o.success))
    } else {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut result = None;
        loop {
            print!("> ");
            std::io::stdout().flush()?;
            let Some(line) = lines.next_line().await? else {
                break;
            };
            let typed = line.trim();
            match typed {
                "" => continue,
                ":quit" | ":q" => break,
                ":valid" => {
                    say!("{}", observation.valid_actions.join("\n"));
                    continue;
                }
                ":gold" => {
                    say!("{}", client.gold_path(&session).await?.join("\n"));
                    continue;
                }
                _ => {}
            }
            let action = match nearest_action(typed, &observation.valid_actions) {
                Some((action, similarity)) if similarity < 1.0 => {
                    say!("(→ {action})");
                    action.to_string()
                }
                _ => typed.to_string(),
            };
            match client.step(&session, &action).await {
                Ok(outcome) => {
                    report(&outcome)?;
                    observation = outcome.observation.clone();
                    if outcome.done {
                        result = Some((outcome.score, outcome.success));
                        break;
                    }
                }
                Err(err) => say!("error: {err}"),
            }
        }
        result
    };
    client.close(&session).await.ok();
    match result {
        Some((score, success)) => say!(
            "Episode over: score {score}, {}.",
            if success { "solved" } else { "not solved" }
        ),
        None => say!("Stopped."),
    }
    Ok(())
}

fn report(outcome: &StepOutcome) -> std::io::Result<()> {
    say!("{}", outcome.observation.text.trim_end());
    say!(
        "[score {} ({:+}), step {}{}]",
        outcome.score,
        outcome.reward,
        outcome.steps,
        if outcome.done { ", done" } else { "" }
    );
    Ok(())
}
