//! Fetch-and-place: move a named object to a container in a named room.
//!
//! The object is shut inside furniture in a room the text does not name. The named room holds a
//! look-alike of another colour in plain sight: going there is the easy 10 points, focusing on
//! the look-alike fails the task.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::scenario::{Check, Scenario, Split, Subgoal, subgoals};
use crate::world::layout::{self, furniture_in};
use crate::world::plan::Planner;
use crate::world::{Command, ObjId, Object, Place, RoomId, World};

const ITEMS: (&[&str], &[&str]) = (
    &["mug", "scarf", "ball", "notebook", "candle holder"],
    &["vase", "hat", "teapot"],
);
const COLOURS: [&str; 8] = [
    "red", "blue", "green", "yellow", "white", "black", "orange", "purple",
];

/// One fetch-and-place episode.
pub(crate) struct Fetch {
    text: String,
    target: ObjId,
    container: ObjId,
    room: RoomId,
    subgoals: Vec<Subgoal>,
}

/// Builds a fetch world: `variation` draws the world, `episode` the start room.
pub(crate) fn build(
    variation: &mut impl Rng,
    episode: &mut impl Rng,
    split: Split,
) -> (World, Fetch) {
    let mut world = layout::house(variation, 0);
    let rooms = world.rooms.len();
    let room = variation.random_range(0..rooms);
    let container = *furniture_in(&world, room, false)
        .choose(variation)
        .expect("every room has furniture");

    let item = split
        .pick(ITEMS.0, ITEMS.1)
        .choose(variation)
        .expect("non-empty");
    let mut colours = COLOURS;
    colours.shuffle(variation);
    let hiding_rooms: Vec<RoomId> = (0..rooms)
        .filter(|&r| r != room && !furniture_in(&world, r, true).is_empty())
        .collect();
    let hiding_room = *hiding_rooms
        .choose(variation)
        .expect("rooms with closed furniture");
    let hiding = *furniture_in(&world, hiding_room, true)
        .choose(variation)
        .expect("chosen for closed furniture");
    let target = world.add(Object::thing(
        format!("{} {item}", colours[0]),
        Place::In(hiding),
        true,
    ));
    world.add(Object::thing(
        format!("{} {item}", colours[1]),
        Place::Room(room),
        true,
    ));
    let third = variation.random_range(0..rooms);
    let spot = layout::spot_in(&world, variation, third, false);
    world.add(Object::thing(format!("{} {item}", colours[2]), spot, true));

    let mut starts: Vec<RoomId> = (0..rooms).filter(|&r| r != hiding_room).collect();
    starts.shuffle(episode);
    world.enter(starts[0]);
    world.visited = 1 << starts[0];

    let target_name = world.objects[target].name.clone();
    let text = format!(
        "Your task is to move the {target_name} to the {} in the {}. First, focus on the \
         {target_name}.",
        world.objects[container].name, world.rooms[room].name
    );
    let subgoals = subgoals([
        (Check::Visited(room), 10.0),
        (Check::Focused, 30.0),
        (Check::CarryingFocus, 30.0),
        (Check::FocusIn(container), 30.0),
    ]);
    let fetch = Fetch {
        text,
        target,
        container,
        room,
        subgoals,
    };
    (world, fetch)
}

impl Scenario for Fetch {
    fn description(&self) -> &str {
        &self.text
    }

    fn focus_ok(&self, _world: &World, obj: ObjId) -> bool {
        obj == self.target
    }

    fn subgoals(&self) -> &[Subgoal] {
        &self.subgoals
    }

    fn solve(&self, planner: &mut Planner) {
        planner.reach(self.target);
        planner.act(Command::Focus(self.target));
        planner.take(self.target);
        planner.go_to(self.room);
        if planner.world.objects[self.container]
            .container
            .is_some_and(|c| !c.open)
        {
            planner.act(Command::Open(self.container));
        }
        planner.act(Command::Put(self.target, self.container));
    }
}
