//! Power-component (ScienceWorld's power-component): light a bulb by building a circuit.
//!
//! The bulb's room has two wires and an old, flat battery: a loop through it is the easy
//! 30 points but lights nothing. The charged battery is shut in furniture in another room, and
//! the text names no room at all.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::scenario::{Check, Scenario, Split, Subgoal, subgoals};
use crate::world::layout::{self, furniture_in, room_id};
use crate::world::plan::Planner;
use crate::world::{Command, ObjId, Object, Part, Place, RoomId, Terminal, World};

const BULB_COLOURS: (&[&str], &[&str]) =
    (&["red", "green", "blue"], &["yellow", "white", "orange"]);
const BULB_ROOMS: (&[&str], &[&str]) = (
    &["workshop", "art studio", "living room"],
    &["bedroom", "kitchen", "foundry"],
);
const WIRE_COLOURS: [&str; 6] = ["red", "black", "blue", "yellow", "green", "orange"];

/// One power-component episode.
pub(crate) struct Power {
    text: String,
    bulb: ObjId,
    battery: ObjId,
    wires: [ObjId; 2],
    room: RoomId,
    subgoals: Vec<Subgoal>,
}

/// Builds a power world: `variation` draws the world, `episode` the start room.
pub(crate) fn build(
    variation: &mut impl Rng,
    episode: &mut impl Rng,
    split: Split,
) -> (World, Power) {
    let mut world = layout::house(variation, 0);
    let room = room_id(
        split
            .pick(BULB_ROOMS.0, BULB_ROOMS.1)
            .choose(variation)
            .expect("non-empty"),
    );
    let colour = split
        .pick(BULB_COLOURS.0, BULB_COLOURS.1)
        .choose(variation)
        .expect("non-empty");
    let part = |name: String, note: &str, part: Part, place: Place| Object {
        note: note.into(),
        part: Some(part),
        ..Object::thing(name, place, true)
    };
    let bulb = world.add(part(
        format!("{colour} light bulb"),
        "It is a light bulb with two terminals.",
        Part::Bulb,
        Place::Room(room),
    ));
    world.add(part(
        "old battery".into(),
        "It is a battery. Its charge indicator reads 0%.",
        Part::Battery { charged: false },
        layout::open_spot_in(&world, variation, room),
    ));
    let mut wire_colours = WIRE_COLOURS;
    wire_colours.shuffle(variation);
    let wires = [0, 1].map(|i| {
        let spot = layout::open_spot_in(&world, variation, room);
        world.add(part(
            format!("{} wire", wire_colours[i]),
            "It is an electrical wire with two terminals.",
            Part::Wire,
            spot,
        ))
    });
    let hiding_rooms: Vec<RoomId> = (0..world.rooms.len())
        .filter(|&r| r != room && !furniture_in(&world, r, true).is_empty())
        .collect();
    let hiding_room = *hiding_rooms
        .choose(variation)
        .expect("rooms with closed furniture");
    let hiding = *furniture_in(&world, hiding_room, true)
        .choose(variation)
        .expect("chosen for closed furniture");
    let battery = world.add(part(
        "new battery".into(),
        "It is a battery. Its charge indicator reads 100%.",
        Part::Battery { charged: true },
        Place::In(hiding),
    ));

    let mut starts: Vec<RoomId> = (0..world.rooms.len())
        .filter(|&r| r != hiding_room)
        .collect();
    starts.shuffle(episode);
    world.enter(starts[0]);
    world.visited = 1 << starts[0];

    let name = world.objects[bulb].name.clone();
    let text = format!(
        "Your task is to turn on the {name} by powering it with a battery. First, focus on the \
         {name}. Then, create an electrical circuit that powers it on."
    );
    let subgoals = subgoals([
        (Check::Focused, 10.0),
        (Check::ClosedCircuit(bulb), 30.0),
        (Check::Carrying(battery), 20.0),
        (Check::Lit(bulb), 40.0),
    ]);
    let power = Power {
        text,
        bulb,
        battery,
        wires,
        room,
        subgoals,
    };
    (world, power)
}

impl Scenario for Power {
    fn description(&self) -> &str {
        &self.text
    }

    fn focus_ok(&self, _world: &World, obj: ObjId) -> bool {
        obj == self.bulb
    }

    fn subgoals(&self) -> &[Subgoal] {
        &self.subgoals
    }

    fn solve(&self, planner: &mut Planner) {
        planner.reach(self.bulb);
        planner.act(Command::Focus(self.bulb));
        planner.take(self.battery);
        planner.go_to(self.room);
        let end = |obj, end| Terminal { obj, end };
        let [first, second] = self.wires;
        for (a, b) in [
            (end(self.battery, 0), end(first, 0)),
            (end(first, 1), end(self.bulb, 0)),
            (end(self.bulb, 1), end(second, 0)),
            (end(second, 1), end(self.battery, 1)),
        ] {
            planner.act(Command::connect(a, b));
        }
    }
}
