//! Fetch-and-place: move a named object to a container in a named room.
//!
//! The object is shut inside furniture in a room the text does not name. The named room holds a
//! look-alike of another colour in plain sight: going there is the easy 10 points, focusing on
//! the look-alike fails the task.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::scenario::{Brief, Check, Focus, Scenario, Split};
use crate::world::layout::{self, furniture_in, hiding_place, start_agent};
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
    brief: Brief,
    target: ObjId,
    container: ObjId,
    room: RoomId,
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
    let hiding = hiding_place(&world, variation, room);
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

    let hiding_room = world.room_of(hiding).expect("furniture stands in a room");
    start_agent(&mut world, episode, &[hiding_room]);

    let target_name = world.objects[target].name.clone();
    let text = format!(
        "Your task is to move the {target_name} to the {} in the {}. First, focus on the \
         {target_name}.",
        world.objects[container].name, world.rooms[room].name
    );
    let brief = Brief::new(
        text,
        Focus::Object(target),
        [
            (Check::Visited(room), 10.0),
            (Check::Focused, 30.0),
            (Check::CarryingFocus, 30.0),
            (Check::FocusIn(container), 30.0),
        ],
    );
    let fetch = Fetch {
        brief,
        target,
        container,
        room,
    };
    (world, fetch)
}

impl Scenario for Fetch {
    fn brief(&self) -> &Brief {
        &self.brief
    }

    fn solve(&self, planner: &mut Planner) {
        planner.reach(self.target);
        self.finish(planner);
    }

    fn search(&self, planner: &mut Planner) {
        planner.search(true, |p| p.world.is_visible(self.target));
        planner.reach(self.target);
        self.finish(planner);
    }
}

impl Fetch {
    /// Focuses on the reached target and puts it in the container.
    fn finish(&self, planner: &mut Planner) {
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
