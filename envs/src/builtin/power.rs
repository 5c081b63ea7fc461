//! Power-component (ScienceWorld's power-component): light a bulb by building a circuit.
//!
//! The bulb's room has two wires and an old, flat battery: a loop through it is the easy
//! 30 points but lights nothing. The charged battery is shut in furniture in another room, and
//! the text names no room at all.

use rand::Rng;
use rand::seq::{IndexedRandom, SliceRandom};

use super::scenario::{Brief, Check, Focus, Scenario, Split};
use crate::world::layout::{self, hiding_place, room_id, start_agent};
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
    brief: Brief,
    bulb: ObjId,
    battery: ObjId,
    wires: [ObjId; 2],
    room: RoomId,
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
    let hiding = hiding_place(&world, variation, room);
    let battery = world.add(part(
        "new battery".into(),
        "It is a battery. Its charge indicator reads 100%.",
        Part::Battery { charged: true },
        Place::In(hiding),
    ));

    let hiding_room = world.room_of(hiding).expect("furniture stands in a room");
    start_agent(&mut world, episode, &[hiding_room]);

    let name = world.objects[bulb].name.clone();
    let text = format!(
        "Your task is to turn on the {name} by powering it with a battery. First, focus on the \
         {name}. Then, create an electrical circuit that powers it on."
    );
    let brief = Brief::new(
        text,
        Focus::Object(bulb),
        [
            (Check::Focused, 10.0),
            (Check::ClosedCircuit(bulb), 30.0),
            (Check::Carrying(battery), 20.0),
            (Check::Lit(bulb), 40.0),
        ],
    );
    let power = Power {
        brief,
        bulb,
        battery,
        wires,
        room,
    };
    (world, power)
}

impl Scenario for Power {
    fn brief(&self) -> &Brief {
        &self.brief
    }

    fn solve(&self, planner: &mut Planner) {
        planner.reach(self.bulb);
        planner.act(Command::Focus(self.bulb));
        planner.take(self.battery);
        self.finish(planner);
    }

    fn search(&self, planner: &mut Planner) {
        // Looking for the bulb, the agent opens what it passes; the battery may turn up.
        planner.search(true, |p| p.world.is_visible(self.bulb));
        planner.reach(self.bulb);
        planner.act(Command::Focus(self.bulb));
        if !planner.world.is_revealed(self.battery) {
            planner.search(true, |p| p.world.is_visible(self.battery));
        }
        planner.take(self.battery);
        self.finish(planner);
    }
}

impl Power {
    /// Carries the battery to the bulb's room and closes the circuit.
    fn finish(&self, planner: &mut Planner) {
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
