//! `empo2 train`: the whole EMPO² job in one process, wired as in a cluster — the tip memory
//! service, the learner and `actors` rollout actors talk gRPC over loopback; each actor
//! serves the built-in worlds to itself. Before and after training, an evaluation on the
//! test variations.
//!
//! - `eval`: test variations without memory, and with memory over repeated trials.
//! - `report`: progress bar, curve.png and the evaluation table.
//! - `local`: the services on loopback, and the policy a config describes.

mod eval;
pub(crate) mod local;
mod report;

use anyhow::Context;
use learner::pool::Pool;
use learner::{Learner, LearnerOptions, TrainConfig};
use memory_service::MemoryConfig;
use tokio::sync::watch;

pub(crate) use self::eval::{Evaluation, evaluate};
use self::report::Reporter;
pub(crate) use self::report::write_evaluation;

/// Loads the checkpoint `dir` into the model `cfg` describes and evaluates it on the test
/// variations of `cfg.tasks`, with a fresh memory service storing in `scratch`.
pub(crate) async fn evaluate_checkpoint(
    cfg: &TrainConfig,
    memory_cfg: MemoryConfig,
    dir: &std::path::Path,
    scratch: &std::path::Path,
    label: &str,
) -> anyhow::Result<Evaluation> {
    let policy = local::load_policy(cfg)?;
    let weights = std::fs::read(learner::checkpoint::weights_path(dir))
        .with_context(|| format!("cannot read the checkpoint {}", dir.display()))?;
    policy::weights::load_safetensors(&policy.vars, &weights)?;
    let tasks = Pool::builtin(&cfg.tasks)?.tasks;
    let token = memory_cfg.auth_token.clone();
    let scope = local::Scope::new();
    let memory = local::serve_memory(memory_cfg, scratch.to_path_buf(), &scope).await?;
    let mut memory = actor::MemoryClient::connect(&memory, token.as_deref()).await?;
    let mut env = local::serve_builtin().await?;
    evaluate(&policy, &mut env, &mut memory, &tasks, cfg, label).await
}

/// What a training job measured: the evaluation before (none when resumed) and after.
pub(crate) struct Outcome {
    pub(crate) before: Option<Evaluation>,
    pub(crate) after: Evaluation,
}

/// Runs a whole training job (or resumes it) and its evaluation; writes eval.md.
pub async fn run(cfg: TrainConfig, memory_cfg: MemoryConfig, resume: bool) -> anyhow::Result<()> {
    let outcome = train_and_evaluate(&cfg, memory_cfg, resume).await?;
    let evals: Vec<_> = outcome.before.into_iter().chain([outcome.after]).collect();
    write_evaluation(&cfg.out_dir, &evals, cfg.eval_temperature)
}

/// Trains as `cfg` says (metrics.jsonl, checkpoints and curve.png in `out_dir`) between two
/// evaluations.
pub(crate) async fn train_and_evaluate(
    cfg: &TrainConfig,
    memory_cfg: MemoryConfig,
    resume: bool,
) -> anyhow::Result<Outcome> {
    cfg.validate().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&cfg.out_dir)
        .with_context(|| format!("cannot create {}", cfg.out_dir.display()))?;
    let builtin = Pool::builtin(&cfg.tasks)?;
    let memory_token = memory_cfg.auth_token.clone();
    let scope = local::Scope::new();
    let memory = local::serve_memory(memory_cfg, cfg.out_dir.join("memory"), &scope).await?;
    let mut env = local::serve_builtin().await?;
    let policy = local::load_policy(cfg)?;
    eprintln!(
        "empo2 train: {} parameters, tasks {:?}, {} iterations × {} groups × {} episodes, {} actors → {}",
        policy.parameter_count(),
        builtin.tasks.iter().map(|t| &t.name).collect::<Vec<_>>(),
        cfg.iterations,
        cfg.groups_per_iteration,
        cfg.group_size,
        cfg.actors,
        cfg.out_dir.display()
    );
    let mut memory_client = actor::MemoryClient::connect(&memory, memory_token.as_deref()).await?;
    let before = if resume {
        None
    } else {
        Some(
            evaluate(
                &policy,
                &mut env,
                &mut memory_client,
                &builtin.tasks,
                cfg,
                "untrained",
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
    };
    let tasks = builtin.tasks.clone();
    let mut learner = Learner::start(cfg.clone(), policy, vec![builtin], options).await?;
    let learner_endpoint = local::serve_learner(&learner, &scope).await?;
    let (stop, stopped) = watch::channel(false);
    let mut actors = Vec::new();
    for i in 0..cfg.actors {
        let options = actor::ActorOptions {
            id: format!("local-{i}"),
            learner: learner_endpoint.clone(),
            memory: Some(memory.clone()),
            learner_token: cfg.auth_token.clone(),
            memory_token: memory_token.clone(),
            tip_writer: cfg.tip_writer,
        };
        let policy = local::load_policy(cfg)?;
        let mut stopped = stopped.clone();
        actors.push(tokio::spawn(actor::run(policy, options, async move {
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
        cfg,
        "trained",
    )
    .await?;
    Ok(Outcome { before, after })
}
