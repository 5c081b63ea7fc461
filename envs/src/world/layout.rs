//! The house every built-in world starts from: ten rooms in ScienceWorld's plan, their
//! furniture, and everyday clutter. Which doors are closed and where clutter lies is drawn
//! from the variation's random stream.

use rand::Rng;
use rand::seq::IndexedRandom;

use super::{Door, ObjId, Object, Place, Room, RoomId, World};

/// Room names; index = [`RoomId`].
pub const ROOMS: [&str; 10] = [
    "kitchen",
    "hallway",
    "living room",
    "bedroom",
    "bathroom",
    "workshop",
    "greenhouse",
    "art studio",
    "outside",
    "foundry",
];

/// Doors as pairs of room names.
const DOORS: [(&str, &str); 10] = [
    ("hallway", "kitchen"),
    ("hallway", "living room"),
    ("hallway", "bedroom"),
    ("hallway", "art studio"),
    ("hallway", "greenhouse"),
    ("hallway", "workshop"),
    ("kitchen", "bathroom"),
    ("kitchen", "outside"),
    ("greenhouse", "outside"),
    ("outside", "foundry"),
];

/// Furniture per room: (name, closed with a lid?). Open ones are boxes, tables, pots.
const FURNITURE: [(&str, &[(&str, bool)]); 10] = [
    (
        "kitchen",
        &[
            ("fridge", true),
            ("cupboard", true),
            ("kitchen drawer", true),
            ("counter", false),
        ],
    ),
    ("hallway", &[("coat rack", false)]),
    (
        "living room",
        &[
            ("chest", true),
            ("bookcase", false),
            ("coffee table", false),
        ],
    ),
    (
        "bedroom",
        &[("closet", true), ("bedside drawer", true), ("bed", false)],
    ),
    (
        "bathroom",
        &[("bathroom cabinet", true), ("bathtub", false)],
    ),
    ("workshop", &[("toolbox", true), ("workbench", false)]),
    (
        "greenhouse",
        &[
            ("seed cabinet", true),
            ("flower pot 1", false),
            ("flower pot 2", false),
        ],
    ),
    (
        "art studio",
        &[("art cabinet", true), ("paint table", false)],
    ),
    ("outside", &[("picnic basket", true), ("fire pit", false)]),
    ("foundry", &[("blast furnace", true), ("metal bin", false)]),
];

/// Everyday non-living things scattered around.
const CLUTTER: [&str; 18] = [
    "pencil",
    "spoon",
    "plate",
    "towel",
    "hammer",
    "screwdriver",
    "paint brush",
    "candle",
    "glass jar",
    "thermometer",
    "umbrella",
    "shoe",
    "pillow",
    "ruler",
    "scissors",
    "bowl",
    "kettle",
    "lantern",
];

/// The house with the agent in `start`: doors closed with probability 0.3, furniture in place,
/// and one to three pieces of clutter per room (on the floor or in furniture).
pub fn house(rng: &mut impl Rng, start: RoomId) -> World {
    let rooms = ROOMS.iter().map(|&name| Room { name }).collect();
    let doors = DOORS
        .iter()
        .map(|(a, b)| Door {
            between: [room_id(a), room_id(b)],
            open: !rng.random_bool(0.3),
        })
        .collect();
    let mut world = World::new(rooms, doors, start);
    for (room, items) in FURNITURE {
        for &(name, closed) in items {
            world.add(Object::container(name, Place::Room(room_id(room)), closed));
        }
    }
    let mut clutter: Vec<&str> = CLUTTER.to_vec();
    for room in 0..ROOMS.len() {
        for _ in 0..rng.random_range(1..=3) {
            let Some(i) = (!clutter.is_empty()).then(|| rng.random_range(0..clutter.len())) else {
                break;
            };
            let name = clutter.swap_remove(i);
            let place = spot_in(&world, rng, room, true);
            world.add(Object::thing(name, place, true));
        }
    }
    world
}

/// The id of a room of the house by name. Panics on a name not in [`ROOMS`] (a programming
/// error in a task table).
pub fn room_id(name: &str) -> RoomId {
    ROOMS
        .iter()
        .position(|&r| r == name)
        .unwrap_or_else(|| panic!("`{name}` is not a room of the house"))
}

/// The containers in `room`, optionally only closed ones.
pub fn furniture_in(world: &World, room: RoomId, closed_only: bool) -> Vec<usize> {
    (0..world.objects.len())
        .filter(|&o| {
            let object = &world.objects[o];
            object.place == Place::Room(room)
                && object.container.is_some_and(|c| !closed_only || c.openable)
        })
        .collect()
}

/// A random place in `room`: its floor, or (if `in_furniture`) maybe one of its containers.
pub fn spot_in(world: &World, rng: &mut impl Rng, room: RoomId, in_furniture: bool) -> Place {
    let furniture = furniture_in(world, room, false);
    match furniture.choose(rng) {
        Some(&c) if in_furniture && rng.random_bool(0.5) => Place::In(c),
        _ => Place::Room(room),
    }
}

/// A random place in `room` in plain sight: its floor or an open container (never behind a lid).
pub fn open_spot_in(world: &World, rng: &mut impl Rng, room: RoomId) -> Place {
    match spot_in(world, rng, room, true) {
        Place::In(c) if world.objects[c].container.is_some_and(|l| l.openable) => Place::Room(room),
        open => open,
    }
}

/// Puts the agent in a random room not in `avoid`, as the only room visited so far.
pub fn start_agent(world: &mut World, rng: &mut impl Rng, avoid: &[RoomId]) {
    let starts: Vec<RoomId> = (0..world.rooms.len())
        .filter(|r| !avoid.contains(r))
        .collect();
    let start = *starts.choose(rng).expect("some room is not avoided");
    world.agent = start;
    world.visited = 1 << start;
}

/// Closed furniture in a random room other than `not_in`: where things are hidden.
pub fn hiding_place(world: &World, rng: &mut impl Rng, not_in: RoomId) -> ObjId {
    let rooms: Vec<RoomId> = (0..world.rooms.len())
        .filter(|&r| r != not_in && !furniture_in(world, r, true).is_empty())
        .collect();
    let room = *rooms
        .choose(rng)
        .expect("the house has closed furniture in several rooms");
    *furniture_in(world, room, true)
        .choose(rng)
        .expect("chosen for closed furniture")
}
