//! The environment registry: every environment of the job with its tasks and sampling
//! weight. Groups are drawn from it: an environment by weight, then its tasks in turn.

use envs::{Environment, TaskInfo};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::LearnerError;

/// Name of the built-in worlds (`empo2 env serve`), for `RegisterEnvironment.builtin`.
pub const BUILTIN_WORLD: &str = envs::builtin::WORLD_NAME;

/// One registered environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredEnv {
    /// Unique name.
    pub name: String,
    /// gRPC endpoint; empty for a built-in world (each actor serves it in-process).
    pub endpoint: String,
    /// Built-in world name when `endpoint` is empty.
    pub builtin: String,
    /// Its tasks in the pool.
    pub tasks: Vec<TaskInfo>,
    /// Relative sampling weight (> 0).
    pub weight: f32,
}

/// The environments of a job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    envs: Vec<RegisteredEnv>,
    /// Per environment: the index of the task it hands out next.
    next_task: Vec<usize>,
}

impl Pool {
    /// Every registered environment.
    pub fn environments(&self) -> &[RegisteredEnv] {
        &self.envs
    }

    /// The built-in worlds with the tasks named in `tasks` (all when empty).
    pub fn builtin(tasks: &[String]) -> Result<RegisteredEnv, LearnerError> {
        let all = envs::Builtin::new().tasks().to_vec();
        select(BUILTIN_WORLD, all, tasks).map(|tasks| RegisteredEnv {
            name: BUILTIN_WORLD.into(),
            endpoint: String::new(),
            builtin: BUILTIN_WORLD.into(),
            tasks,
            weight: 1.0,
        })
    }

    /// Adds an environment; its name must be new, its weight positive and finite, and it
    /// must have a task with training variations.
    pub fn add(&mut self, env: RegisteredEnv) -> Result<(), LearnerError> {
        if env.name.is_empty() || env.name.len() > 128 {
            return Err(LearnerError::BadRequest(
                "an environment name is 1 to 128 bytes".into(),
            ));
        }
        if self.envs.iter().any(|e| e.name == env.name) {
            return Err(LearnerError::AlreadyExists(format!(
                "environment `{}` is already registered",
                env.name
            )));
        }
        if !(env.weight.is_finite() && env.weight > 0.0) {
            return Err(LearnerError::BadRequest(format!(
                "weight {} of `{}` is not a positive number",
                env.weight, env.name
            )));
        }
        if !env.tasks.iter().any(|t| !t.train_variations.is_empty()) {
            return Err(LearnerError::BadRequest(format!(
                "`{}` has no task with training variations",
                env.name
            )));
        }
        self.envs.push(env);
        self.next_task.push(0);
        Ok(())
    }

    /// Draws the environment and task of the next group: an environment by weight, then its
    /// next task in turn. `None` when the pool is empty.
    pub fn draw(&mut self, rng: &mut impl Rng) -> Option<(&RegisteredEnv, &TaskInfo)> {
        let total: f32 = self.envs.iter().map(|e| e.weight).sum();
        if self.envs.is_empty() {
            return None;
        }
        let mut pick = rng.random_range(0.0..total);
        let mut index = self.envs.len() - 1;
        for (i, env) in self.envs.iter().enumerate() {
            if pick < env.weight {
                index = i;
                break;
            }
            pick -= env.weight;
        }
        let env = &self.envs[index];
        let trainable: Vec<&TaskInfo> = env
            .tasks
            .iter()
            .filter(|t| !t.train_variations.is_empty())
            .collect();
        let task = trainable[self.next_task[index] % trainable.len()];
        self.next_task[index] += 1;
        Some((env, task))
    }
}

/// The tasks of `all` named in `wanted` (every task when `wanted` is empty); an unknown name
/// is an error that lists the known ones.
pub fn select(
    env: &str,
    all: Vec<TaskInfo>,
    wanted: &[String],
) -> Result<Vec<TaskInfo>, LearnerError> {
    if let Some(unknown) = wanted.iter().find(|w| !all.iter().any(|t| &t.name == *w)) {
        let known: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
        return Err(LearnerError::BadRequest(format!(
            "`{env}` has no task `{unknown}`; it has {known:?}"
        )));
    }
    Ok(all
        .into_iter()
        .filter(|t| wanted.is_empty() || wanted.contains(&t.name))
        .collect())
}
