//! A built-in episode: a world, its scenario, and the score so far.

use super::scenario::Scenario;
use crate::environment::{EnvError, LiveEpisode, Observation, StepOutcome};
use crate::world::plan::Planner;
use crate::world::{Command, World};

/// What a step says when the action is not one the world knows (ScienceWorld's wording).
pub(crate) const UNKNOWN_ACTION: &str = "No known action matches that input.";

/// Which solution `GoldPath` answers (the `gold_path` reset option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GoldPath {
    /// The shortest, knowing where everything is.
    Direct,
    /// Searching rooms nearest first, knowing only what to look for.
    Search,
}

/// One built-in episode.
pub(crate) struct BuiltinEpisode {
    world: World,
    start: World,
    gold: GoldPath,
    scenario: Box<dyn Scenario>,
    met: Vec<bool>,
    score: f32,
    commands: Vec<Command>,
    observation: Observation,
}

impl BuiltinEpisode {
    /// Starts an episode in `world`; the first observation describes the start room.
    pub(crate) fn new(world: World, scenario: Box<dyn Scenario>, gold: GoldPath) -> Self {
        let met = vec![false; scenario.brief().subgoals.len()];
        let text = world.describe_room();
        let mut episode = Self {
            start: world.clone(),
            gold,
            world,
            scenario,
            met,
            score: 0.0,
            commands: Vec::new(),
            observation: Observation::default(),
        };
        episode.observe(text);
        episode
    }

    /// The command an action text names: exact (case- and space-insensitive) match against the
    /// valid actions, with `connect A to B` also accepted as `connect B to A`.
    fn lookup(&self, action: &str) -> Option<Command> {
        let wanted: Vec<String> = action.split_whitespace().map(str::to_lowercase).collect();
        let wanted = wanted.join(" ");
        let find = |text: &str| {
            self.observation
                .valid_actions
                .iter()
                .position(|a| a == text)
                .map(|i| self.commands[i])
        };
        find(&wanted).or_else(|| {
            let (a, b) = wanted.strip_prefix("connect ")?.split_once(" to ")?;
            find(&format!("connect {b} to {a}"))
        })
    }

    /// Scores newly met subgoals; returns (done, success).
    fn rescore(&mut self) -> (bool, bool) {
        let subgoals = &self.scenario.brief().subgoals;
        for (i, subgoal) in subgoals.iter().enumerate() {
            if !self.met[i] && subgoal.check.holds(&self.world) {
                self.met[i] = true;
                self.score += subgoal.points;
            }
        }
        if self.met.last().copied().unwrap_or(false) {
            self.score = 100.0;
            (true, true)
        } else {
            (false, false)
        }
    }

    fn observe(&mut self, text: String) {
        self.commands = self.world.valid_commands();
        self.observation = Observation {
            text,
            task_description: self.scenario.brief().text.clone(),
            valid_actions: self.commands.iter().map(|c| self.world.render(c)).collect(),
        };
    }
}

impl LiveEpisode for BuiltinEpisode {
    fn observation(&self) -> &Observation {
        &self.observation
    }

    fn score(&self) -> f32 {
        self.score
    }

    fn step(&mut self, action: &str) -> Result<StepOutcome, EnvError> {
        let before = self.score;
        let (text, done, success) = match self.lookup(action) {
            None => (UNKNOWN_ACTION.to_string(), false, false),
            Some(Command::Focus(obj)) if !self.scenario.brief().focus_ok(&self.world, obj) => {
                self.world.focus = Some(obj);
                self.score = -100.0;
                let text = format!(
                    "You focus on the {}. That is not what the task is about: the task has failed.",
                    self.world.objects[obj].name
                );
                (text, true, false)
            }
            Some(command) => {
                let text = self.world.apply(&command);
                let (done, success) = self.rescore();
                (text, done, success)
            }
        };
        self.observe(text);
        Ok(StepOutcome {
            observation: self.observation.clone(),
            reward: self.score - before,
            score: self.score,
            done,
            success,
            steps: 0,
        })
    }

    fn gold_path(&self) -> Result<Vec<String>, EnvError> {
        let mut planner = Planner::new(self.start.clone());
        match self.gold {
            GoldPath::Direct => self.scenario.solve(&mut planner),
            GoldPath::Search => self.scenario.search(&mut planner),
        }
        Ok(planner.into_actions())
    }
}
