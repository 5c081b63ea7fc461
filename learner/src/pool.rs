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

    /// Adds an environment after [`check`]; its name must be new, and the pool holds at most
    /// [`MAX_ENVIRONMENTS`].
    pub fn add(&mut self, env: RegisteredEnv) -> Result<(), LearnerError> {
        check(&env)?;
        if self.envs.iter().any(|e| e.name == env.name) {
            return Err(LearnerError::AlreadyExists(format!(
                "environment `{}` is already registered",
                env.name
            )));
        }
        if self.envs.len() >= MAX_ENVIRONMENTS {
            return Err(LearnerError::ResourceExhausted(format!(
                "the pool already holds {MAX_ENVIRONMENTS} environments; unregister one first"
            )));
        }
        let held: usize = self.envs.iter().map(listed_bytes).sum();
        if held + listed_bytes(&env) > MAX_POOL_BYTES {
            return Err(LearnerError::ResourceExhausted(format!(
                "the pool's task lists already take {held} bytes; `{}` would pass \
                 {MAX_POOL_BYTES} (what ListEnvironments can answer)",
                env.name
            )));
        }
        self.envs.push(env);
        self.next_task.push(0);
        Ok(())
    }

    /// Removes the environment `name`; no group is drawn from it again.
    pub fn remove(&mut self, name: &str) -> Result<RegisteredEnv, LearnerError> {
        let Some(index) = self.envs.iter().position(|e| e.name == name) else {
            return Err(LearnerError::NotFound(format!(
                "no environment `{}` is registered",
                empo2_proto::prefix(name, 64)
            )));
        };
        self.next_task.remove(index);
        Ok(self.envs.remove(index))
    }

    /// Draws the environment and task of the next group: an environment by weight, then its
    /// next task in turn. `None` when the pool is empty.
    pub fn draw(&mut self, rng: &mut impl Rng) -> Option<(&RegisteredEnv, &TaskInfo)> {
        // Weights are bounded by `check`, so the sum (in f64) is finite and positive.
        let total: f64 = self.envs.iter().map(|e| f64::from(e.weight)).sum();
        if self.envs.is_empty() || !(total.is_finite() && total > 0.0) {
            return None;
        }
        let mut pick = rng.random_range(0.0..total);
        let mut index = self.envs.len() - 1;
        for (i, env) in self.envs.iter().enumerate() {
            if pick < f64::from(env.weight) {
                index = i;
                break;
            }
            pick -= f64::from(env.weight);
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

/// Most environments in a pool.
pub const MAX_ENVIRONMENTS: usize = 64;
/// Most tasks of one environment (listed, or named in a registration).
pub const MAX_TASKS: usize = 1024;
/// Most training variations of one task.
pub const MAX_VARIATIONS: usize = 1 << 20;
/// Largest sampling weight.
pub const MAX_WEIGHT: f32 = 1e6;
/// Longest environment name (bytes).
pub const MAX_NAME_BYTES: usize = 64;
/// Longest task name (bytes): an environment, a task and a variation make a memory slot of
/// at most 128 bytes.
pub const MAX_TASK_BYTES: usize = 48;

/// Checks what a registration would add to the pool: names that fit a memory slot
/// (`env/task/variation`, alphabet `A-Z a-z 0-9 . _ : -`), a weight in (0, [`MAX_WEIGHT`]],
/// at most [`MAX_TASKS`] tasks of at most [`MAX_VARIATIONS`] variations, one of them with
/// training variations.
pub fn check(env: &RegisteredEnv) -> Result<(), LearnerError> {
    let bad = LearnerError::BadRequest;
    check_name(&env.name)?;
    check_weight(&env.name, env.weight)?;
    if env.tasks.len() > MAX_TASKS {
        return Err(bad(format!(
            "`{}` has {} tasks, more than {MAX_TASKS}",
            env.name,
            env.tasks.len()
        )));
    }
    for task in &env.tasks {
        empo2_proto::check_name("task name", &task.name, MAX_TASK_BYTES).map_err(bad)?;
        if task.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(bad(format!(
                "the description of task `{}` is {} bytes, more than {MAX_DESCRIPTION_BYTES}",
                task.name,
                task.description.len()
            )));
        }
        let variations = task.train_variations.len() + task.test_variations.len();
        if variations > MAX_VARIATIONS {
            return Err(bad(format!(
                "task `{}` has {variations} variations, more than {MAX_VARIATIONS}",
                task.name
            )));
        }
    }
    let bytes = listed_bytes(env);
    if bytes > MAX_TASK_LIST_BYTES {
        return Err(bad(format!(
            "the task list of `{}` takes {bytes} bytes, more than {MAX_TASK_LIST_BYTES}",
            env.name
        )));
    }
    if !env.tasks.iter().any(|t| !t.train_variations.is_empty()) {
        return Err(bad(format!(
            "`{}` has no task with training variations",
            env.name
        )));
    }
    Ok(())
}

/// Longest task description (bytes).
pub const MAX_DESCRIPTION_BYTES: usize = 4096;
/// Most bytes one environment's task list takes on the wire.
pub const MAX_TASK_LIST_BYTES: usize = 1 << 20;
/// Most bytes the task lists of the whole pool take on the wire (ListEnvironments answers
/// them all in one message of at most 8 MiB).
pub const MAX_POOL_BYTES: usize = 6 << 20;

/// The bytes an environment's task list takes on the wire.
fn listed_bytes(env: &RegisteredEnv) -> usize {
    use prost::Message;
    env.tasks
        .iter()
        .map(|t| envs::wire::task_to_pb(t).encoded_len())
        .sum()
}

/// Checks a sampling weight (before anything is dialled).
pub fn check_weight(name: &str, weight: f32) -> Result<(), LearnerError> {
    if weight.is_finite() && weight > 0.0 && weight <= MAX_WEIGHT {
        return Ok(());
    }
    Err(LearnerError::BadRequest(format!(
        "weight {weight} of `{name}` is not in (0, {MAX_WEIGHT:e}]"
    )))
}

/// Checks an environment name (before anything is dialled).
pub fn check_name(name: &str) -> Result<(), LearnerError> {
    empo2_proto::check_name("environment name", name, MAX_NAME_BYTES)
        .map_err(LearnerError::BadRequest)
}

/// The tasks of `all` named in `wanted` (every task when `wanted` is empty); an unknown name
/// is an error that lists the known ones.
pub fn select(
    env: &str,
    all: Vec<TaskInfo>,
    wanted: &[String],
) -> Result<Vec<TaskInfo>, LearnerError> {
    if let Some(unknown) = wanted.iter().find(|w| !all.iter().any(|t| &t.name == *w)) {
        let known: Vec<&str> = all.iter().take(32).map(|t| t.name.as_str()).collect();
        let more = match all.len().saturating_sub(known.len()) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        return Err(LearnerError::BadRequest(format!(
            "`{env}` has no task `{}`; it has {known:?}{more}",
            empo2_proto::prefix(unknown, 64)
        )));
    }
    Ok(all
        .into_iter()
        .filter(|t| wanted.is_empty() || wanted.contains(&t.name))
        .collect())
}
