//! What makes a world a task: the text, what may be focused on, the scored subgoals, and the
//! gold-path solver. Each task family implements [`Scenario`]; scoring is shared.

use crate::world::plan::Planner;
use crate::world::{Kind, ObjId, RoomId, World};

/// A task family's episode: what the agent is told and scored on, and how to solve it.
pub(crate) trait Scenario: Send + Sync {
    /// The text, focus rule and subgoals.
    fn brief(&self) -> &Brief;
    /// Plays a full solution on `planner` from the reset state, knowing where everything is.
    fn solve(&self, planner: &mut Planner);
    /// Plays a full solution as an agent that knows what it looks for but not where it is:
    /// rooms are searched nearest first (`Planner::search`) before the same endgame.
    fn search(&self, planner: &mut Planner);
}

/// What every scenario has: the task text, what may be focused on, and the scored subgoals.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Brief {
    /// The task text the agent reads.
    pub(crate) text: String,
    /// What a right focus is (a wrong focus fails the episode).
    pub(crate) focus: Focus,
    /// Scored subgoals; the last one completes the task. Points add up to 100.
    pub(crate) subgoals: Vec<Subgoal>,
}

/// What the agent may focus on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Focus {
    /// Anything of this category.
    Category(Category),
    /// Exactly this object.
    Object(ObjId),
}

impl Brief {
    /// A brief; `subgoals` lists (condition, points) with points adding up to 100.
    pub(crate) fn new<const N: usize>(
        text: String,
        focus: Focus,
        subgoals: [(Check, f32); N],
    ) -> Self {
        let subgoals: Vec<Subgoal> = subgoals
            .into_iter()
            .map(|(check, points)| Subgoal { check, points })
            .collect();
        debug_assert_eq!(subgoals.iter().map(|s| s.points).sum::<f32>(), 100.0);
        Self {
            text,
            focus,
            subgoals,
        }
    }

    /// Whether focusing on `obj` is right.
    pub(crate) fn focus_ok(&self, world: &World, obj: ObjId) -> bool {
        match self.focus {
            Focus::Category(category) => category.contains(world.objects[obj].kind),
            Focus::Object(target) => obj == target,
        }
    }
}

/// Points for a condition, earned the first time it holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Subgoal {
    /// The condition.
    pub(crate) check: Check,
    /// Points it earns.
    pub(crate) points: f32,
}

/// A condition on the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// The agent has been in the room.
    Visited(RoomId),
    /// The agent has focused (on a right object: a wrong focus already ended the episode).
    Focused,
    /// The agent carries what it focused on.
    CarryingFocus,
    /// What the agent focused on is inside this container.
    FocusIn(ObjId),
    /// The agent carries this object.
    Carrying(ObjId),
    /// This bulb is in a closed loop with some battery (charged or not).
    ClosedCircuit(ObjId),
    /// This bulb is lit.
    Lit(ObjId),
}

impl Check {
    /// Whether the condition holds in `world`.
    pub(crate) fn holds(self, world: &World) -> bool {
        match self {
            Check::Visited(room) => world.has_visited(room),
            Check::Focused => world.focus.is_some(),
            Check::CarryingFocus => world.focus.is_some_and(|o| world.is_carried(o)),
            Check::FocusIn(container) => world.focus.is_some_and(|o| world.is_inside(o, container)),
            Check::Carrying(obj) => world.is_carried(obj),
            Check::ClosedCircuit(bulb) => world.is_closed_circuit(bulb),
            Check::Lit(bulb) => world.is_lit(bulb),
        }
    }
}

/// Classification categories of the find family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    /// Animals or plants.
    Living,
    /// Animals.
    Animal,
    /// Plants.
    Plant,
}

impl Category {
    /// The words the task text uses.
    pub(crate) fn phrase(self) -> &'static str {
        match self {
            Category::Living => "a living thing",
            Category::Animal => "an animal",
            Category::Plant => "a plant",
        }
    }

    /// Whether an object of `kind` belongs.
    pub(crate) fn contains(self, kind: Kind) -> bool {
        match self {
            Category::Living => kind.is_living(),
            Category::Animal => kind == Kind::Animal,
            Category::Plant => kind == Kind::Plant,
        }
    }
}

/// Which half of a task's variations: train and test draw from disjoint pools of objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// Training variations.
    Train,
    /// Held-out test variations.
    Test,
}

impl Split {
    /// This split's half of a pool.
    pub(crate) fn pick<'a>(self, train: &'a [&'a str], test: &'a [&'a str]) -> &'a [&'a str] {
        match self {
            Split::Train => train,
            Split::Test => test,
        }
    }
}
