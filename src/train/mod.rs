//! `empo2 train`: the whole EMPO² job in one process, wired as in a cluster — the tip memory
//! service, the learner and `[local] actors` rollout actors talk gRPC over loopback; each
//! actor serves the built-in worlds to itself and builds the model the learner sends. Before
//! and after training, an evaluation on the test variations.
//!
//! - `eval`: `[eval]`; test variations without memory, and with memory over repeated trials.
//! - `report`: progress bar, curve.png and the evaluation table.
//! - `local`: `[local]`; the services on loopback, and the policy the config describes.

mod eval;
pub(crate) mod local;
mod report;

use anyhow::Context;
use learner::pool::Pool;
use learner::{Learner, LearnerOptions};
use tokio::sync::watch;

pub use self::eval::EvalConfig;
pub(crate) use self::eval::{Evaluation, evaluate};
pub use self::local::LocalConfig;
use self::report::Reporter;
pub(crate) use self::report::write_evaluation;
use crate::cmd::train::Start;
use crate::config::Config;

/// Loads the checkpoint `dir` (a learner checkpoint, into the model `cfg` describes, or a
/// model directory in Hugging Face layout) and evaluates it on the test
/// variations of `train.tasks`, with a fresh memory service storing in `scratch`.
pub(crate) async fn evaluate_checkpoint(
    cfg: &Config,
    dir: &std::path::Path,
    scratch: &std::path::Path,
    label: &str,
) -> anyhow::Result<Evaluation> {
    let policy = if dir.join("config.json").is_file() {
        // A model directory (a warm start, a downloaded model).
        let model = policy::PolicyConfig {
            model: Some(dir.to_path_buf()),
            ..cfg.policy.clone()
        };
        model.load(cfg.train.seed)?
    } else {
        let policy = local::load_policy(cfg)?;
        let weights = std::fs::read(learner::checkpoint::weights_path(dir))
            .with_context(|| format!("cannot read the checkpoint {}", dir.display()))?;
        policy::weights::load_safetensors(&policy.vars, &weights)?;
        policy
    };
    let tasks = Pool::builtin(&cfg.train.tasks)?.tasks;
    let token = cfg.memory.auth_token.clone();
    let scope = local::Scope::new();
    let memory = local::serve_memory(cfg.memory.clone(), scratch.to_path_buf(), &scope).await?;
    let mut memory = actor::MemoryClient::connect(&memory, token.as_deref()).await?;
    let mut env = envs::serve_loopback().await?;
    evaluate(&policy, &mut env, &mut memory, &tasks, cfg, label).await
}

/// What a training job measured: the evaluation before (none when resumed) and after.
pub(crate) struct Outcome {
    pub(crate) before: Option<Evaluation>,
    pub(crate) after: Evaluation,
}

/// Runs a whole training job (or resumes it) and its evaluation; writes eval.md.
pub async fn run(mut cfg: Config, start: Start) -> anyhow::Result<()> {
    if !start.resume {
        // Before the warm start and the first evaluation: they take minutes.
        learner::checkpoint::prepare_fresh(&cfg.train.out_dir, start.overwrite)?;
    }
    crate::sft::warm_start(&mut cfg).await?;
    let outcome = train_and_evaluate(&cfg, start, !start.resume).await?;
    let evals: Vec<_> = outcome.before.into_iter().chain([outcome.after]).collect();
    write_evaluation(&cfg.train.out_dir, &evals, cfg.eval.temperature)
}

/// Trains as `cfg` says (metrics.jsonl, checkpoints and curve.png in `out_dir`), after an
/// evaluation of the starting policy when `evaluate_before`, and evaluates the result.
pub(crate) async fn train_and_evaluate(
    full: &Config,
    start: Start,
    evaluate_before: bool,
) -> anyhow::Result<Outcome> {
    let cfg = &full.train;
    // `run` checked a fresh run's directory before its warm start; `Learner::start` checks
    // again (and deletes what `--overwrite` replaces).
    let Start { resume, overwrite } = start;
    cfg.validate().map_err(anyhow::Error::msg)?;
    full.local.validate().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&cfg.out_dir)
        .with_context(|| format!("cannot create {}", cfg.out_dir.display()))?;
    let builtin = Pool::builtin(&cfg.tasks)?;
    let memory_token = full.memory.auth_token.clone();
    let scope = local::Scope::new();
    let memory_dir = cfg.out_dir.join("memory");
    let memory = local::serve_memory(full.memory.clone(), memory_dir, &scope).await?;
    let mut env = envs::serve_loopback().await?;
    let policy = local::load_policy(full)?;
    eprintln!(
        "empo2 train: {} parameters, tasks {:?}, {} iterations × {} groups × {} episodes, {} actors → {}",
        policy.parameter_count(),
        builtin.tasks.iter().map(|t| &t.name).collect::<Vec<_>>(),
        cfg.iterations,
        cfg.groups_per_iteration,
        cfg.group_size,
        full.local.actors,
        cfg.out_dir.display()
    );
    let mut memory_client = actor::MemoryClient::connect(&memory, memory_token.as_deref()).await?;
    let before = if !evaluate_before {
        None
    } else {
        Some(
            evaluate(
                &policy,
                &mut env,
                &mut memory_client,
                &builtin.tasks,
                full,
                if full.policy.model.is_some() {
                    "base"
                } else {
                    "untrained"
                },
            )
            .await?,
        )
    };
    if !resume {
        // A fresh run starts a fresh metrics file.
        std::fs::remove_file(cfg.out_dir.join("metrics.jsonl")).ok();
    }

    let options = LearnerOptions {
        memory_endpoint: Some(memory.clone()),
        memory_token: memory_token.clone(),
        resume,
        overwrite,
        env_token: full.env.auth_token.clone(),
    };
    let tasks = builtin.tasks.clone();
    let mut learner = Learner::start(cfg.clone(), policy, vec![builtin], options).await?;
    let learner_endpoint = local::serve_learner(&learner, &scope).await?;
    let (stop, stopped) = watch::channel(false);
    let mut actors = Vec::new();
    for i in 0..full.local.actors {
        let options = actor::ActorOptions {
            id: format!("local-{i}"),
            learner: learner_endpoint.clone(),
            memory: Some(memory.clone()),
            learner_token: cfg.auth_token.clone(),
            memory_token: memory_token.clone(),
            env_token: full.env.auth_token.clone(),
            tips: full.actor.tips(),
            device: full.actor.device()?,
        };
        let mut stopped = stopped.clone();
        actors.push(tokio::spawn(actor::run(options, async move {
            stopped.wait_for(|s| *s).await.ok();
        })));
    }
    let mut reporter = Reporter::create(&cfg.out_dir, cfg.iterations)?;
    let mut records = learner.records();
    let trained = loop {
        tokio::select! {
            result = learner.finished() => break result,
            Ok(record) = records.recv() => reporter.iteration(&record),
        }
    };
    while let Ok(record) = records.try_recv() {
        reporter.iteration(&record);
    }
    stop.send_replace(true);
    for actor in actors {
        actor.await.ok();
    }
    trained?;
    reporter.finish();
    let policy = learner.policy();

    let after = evaluate(
        &policy,
        &mut env,
        &mut memory_client,
        &tasks,
        full,
        "trained",
    )
    .await?;
    Ok(Outcome { before, after })
}
