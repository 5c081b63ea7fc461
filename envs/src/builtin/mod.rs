//! The built-in text worlds: a ten-room house in ScienceWorld's plan, and tasks in three
//! families that reward exploring it.
//!
//! | task | family | the deceptive easy subgoal |
//! |---|---|---|
//! | `find-living-thing`, `find-animal`, `find-plant` | find-and-focus | the named room, full of decoys |
//! | `fetch-and-place` | fetch-and-place | the named room, with a look-alike |
//! | `power-component` | device | a loop through the flat battery at hand |
//!
//! Every task has variations `0..200` for training and `200..300` for testing; test variations
//! draw objects (and for `power-component` rooms) from pools that training never shows. A
//! variation fixes the world; the seed picks the start room and the order things are listed in.
//! Scores run 0–100 with partial credit per subgoal, and −100 for focusing on the wrong thing.

mod episode;
mod fetch;
mod find;
mod power;
mod scenario;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use self::episode::{BuiltinEpisode, GoldPath};
use self::scenario::{Category, Scenario, Split};
use crate::environment::{EnvError, Environment, LiveEpisode, ResetSpec, TaskInfo};
use crate::world::World;

/// Variations per task; the first [`TRAIN_VARIATIONS`] are for training.
pub const VARIATIONS: u32 = 300;
/// Training variations per task.
pub const TRAIN_VARIATIONS: u32 = 200;
/// The step budget of every built-in task (gold paths need at most about 20).
pub const MAX_STEPS: u32 = 40;

type Build = fn(&mut ChaCha8Rng, &mut ChaCha8Rng, Split) -> (World, Box<dyn Scenario>);

/// A task: its name, one-line description and world builder.
struct TaskDef {
    name: &'static str,
    description: &'static str,
    build: Build,
}

const TASKS: [TaskDef; 5] = [
    TaskDef {
        name: "find-living-thing",
        description: "Find a living thing, focus on it, and move it to a named box.",
        build: |v, e, s| boxed(find::build(Category::Living, v, e, s)),
    },
    TaskDef {
        name: "find-animal",
        description: "Find an animal, focus on it, and move it to a named box.",
        build: |v, e, s| boxed(find::build(Category::Animal, v, e, s)),
    },
    TaskDef {
        name: "find-plant",
        description: "Find a plant, focus on it, and move it to a named box.",
        build: |v, e, s| boxed(find::build(Category::Plant, v, e, s)),
    },
    TaskDef {
        name: "fetch-and-place",
        description: "Find a named object hidden in another room and put it in a named container.",
        build: |v, e, s| boxed(fetch::build(v, e, s)),
    },
    TaskDef {
        name: "power-component",
        description: "Light a bulb by building a circuit with a charged battery found elsewhere.",
        build: |v, e, s| boxed(power::build(v, e, s)),
    },
];

fn boxed<S: Scenario + 'static>((world, scenario): (World, S)) -> (World, Box<dyn Scenario>) {
    (world, Box::new(scenario))
}

/// The built-in environment (`builtin`).
#[derive(Debug, Clone)]
pub struct Builtin {
    tasks: Vec<TaskInfo>,
}

impl Default for Builtin {
    fn default() -> Self {
        Self::new()
    }
}

impl Builtin {
    /// All built-in tasks.
    pub fn new() -> Self {
        let tasks = TASKS
            .iter()
            .map(|t| TaskInfo {
                name: t.name.into(),
                description: t.description.into(),
                train_variations: (0..TRAIN_VARIATIONS).collect(),
                test_variations: (TRAIN_VARIATIONS..VARIATIONS).collect(),
                max_steps: MAX_STEPS,
            })
            .collect();
        Self { tasks }
    }

    /// The world and task text of a variation and seed, without starting an episode (for
    /// tests and inspection). `None` for an unknown task or variation.
    pub fn world(&self, task: &str, variation: u32, seed: u64) -> Option<(World, String)> {
        let (world, scenario) = self.build(task, variation, seed)?;
        Some((world, scenario.brief().text.clone()))
    }

    fn build(&self, task: &str, variation: u32, seed: u64) -> Option<(World, Box<dyn Scenario>)> {
        let def = TASKS.iter().find(|t| t.name == task)?;
        if variation >= VARIATIONS {
            return None;
        }
        let split = if variation < TRAIN_VARIATIONS {
            Split::Train
        } else {
            Split::Test
        };
        let task_key = fnv1a(task.as_bytes());
        let mut variation_rng = ChaCha8Rng::seed_from_u64(task_key ^ u64::from(variation));
        let mut episode_rng = ChaCha8Rng::seed_from_u64(
            task_key.rotate_left(17) ^ seed ^ (u64::from(variation) << 40),
        );
        let (mut world, scenario) = (def.build)(&mut variation_rng, &mut episode_rng, split);
        for object in &mut world.objects {
            object.rank = episode_rng.random();
        }
        Some((world, scenario))
    }
}

/// The reset option that picks the gold path `GoldPath` answers: `direct` (the default: the
/// shortest solution, knowing where everything is) or `search` (rooms searched nearest first
/// by an agent that knows only what it looks for — what a policy can imitate).
pub const GOLD_PATH_OPTION: &str = "gold_path";

/// The built-in worlds' one name: what ListTasks answers, the learner's registry entry and
/// `RegisterEnvironment.builtin` all use it.
pub const WORLD_NAME: &str = "house";

impl Environment for Builtin {
    fn name(&self) -> &str {
        WORLD_NAME
    }

    fn tasks(&self) -> &[TaskInfo] {
        &self.tasks
    }

    fn reset(&self, spec: &ResetSpec) -> Result<Box<dyn LiveEpisode>, EnvError> {
        let mut gold = GoldPath::Direct;
        for (key, value) in &spec.options {
            gold = match (key.as_str(), value.as_str()) {
                (GOLD_PATH_OPTION, "direct") => GoldPath::Direct,
                (GOLD_PATH_OPTION, "search") => GoldPath::Search,
                (GOLD_PATH_OPTION, other) => {
                    return Err(EnvError::InvalidOption(format!(
                        "{GOLD_PATH_OPTION} is `direct` or `search`, not `{}`",
                        other.chars().take(32).collect::<String>()
                    )));
                }
                (other, _) => {
                    return Err(EnvError::InvalidOption(format!(
                        "the house takes one option, {GOLD_PATH_OPTION}; got `{}`",
                        other.chars().take(32).collect::<String>()
                    )));
                }
            };
        }
        let (world, scenario) = self
            .build(&spec.task, spec.variation, spec.seed)
            .ok_or_else(|| match TASKS.iter().any(|t| t.name == spec.task) {
                true => EnvError::UnknownVariation {
                    task: spec.task.clone(),
                    variation: spec.variation,
                    train: format!("0..{TRAIN_VARIATIONS}"),
                    test: format!("{TRAIN_VARIATIONS}..{VARIATIONS}"),
                },
                false => EnvError::UnknownTask {
                    task: spec.task.clone(),
                    known: TASKS.map(|t| t.name).join(", "),
                },
            })?;
        Ok(Box::new(BuiltinEpisode::new(world, scenario, gold)))
    }
}

/// FNV-1a: a stable hash of the task name for seeding (std's hasher may change between
/// releases, and variations must not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
