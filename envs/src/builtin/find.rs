//! Find-and-focus (ScienceWorld's find-living-thing / find-animal / find-plant): find a thing
//! of a category, focus on it, and move it to a box in a named room.
//!
//! The text names only the box's room, which holds look-alike decoys (a toy cat, a plastic
//! fern): going there first earns the easy 10 points, focusing on a decoy fails the task. The
//! real targets live in rooms the text never mentions.

use rand::Rng;
use rand::seq::IndexedRandom;

use super::scenario::{Brief, Category, Check, Focus, Scenario, Split};
use crate::world::layout::{self, room_id};
use crate::world::plan::Planner;
use crate::world::{Command, Kind, ObjId, Object, Place, RoomId, World};

const ANIMALS: (&[&str], &[&str]) = (
    &["cat", "dog", "parrot", "frog", "rabbit", "hamster"],
    &["turtle", "lizard", "owl"],
);
const PLANTS: (&[&str], &[&str]) = (
    &["fern", "cactus", "tomato plant", "sunflower", "rose bush"],
    &["orchid", "bamboo plant", "basil plant"],
);
const ANIMAL_HOMES: [&str; 5] = [
    "outside",
    "living room",
    "bedroom",
    "greenhouse",
    "bathroom",
];
const PLANT_HOMES: [&str; 5] = ["greenhouse", "outside", "living room", "bedroom", "kitchen"];
const BOX_ROOMS: [&str; 7] = [
    "bedroom",
    "living room",
    "workshop",
    "art studio",
    "kitchen",
    "bathroom",
    "hallway",
];
const BOX_COLOURS: [&str; 6] = ["green", "purple", "orange", "red", "blue", "yellow"];
const ANIMAL_DECOYS: [&str; 3] = ["toy", "stuffed", "ceramic"];
const PLANT_DECOYS: [&str; 2] = ["plastic", "painting of a"];

/// One find episode.
pub(crate) struct Find {
    brief: Brief,
    targets: Vec<ObjId>,
    /// The look-alikes (what a searching agent must look at to tell from a target).
    decoys: Vec<ObjId>,
    box_id: ObjId,
    box_room: RoomId,
}

/// Builds a find world for `category`: `variation` draws the world, `episode` the start room.
pub(crate) fn build(
    category: Category,
    variation: &mut impl Rng,
    episode: &mut impl Rng,
    split: Split,
) -> (World, Find) {
    let mut world = layout::house(variation, 0);
    let box_room = room_id(BOX_ROOMS.choose(variation).expect("non-empty"));
    let colour = BOX_COLOURS.choose(variation).expect("non-empty");
    let box_id = world.add(Object::container(
        format!("{colour} box"),
        Place::Room(box_room),
        false,
    ));

    let mut targets = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for _ in 0..variation.random_range(1..=2) {
        let kind = match category {
            Category::Animal => Kind::Animal,
            Category::Plant => Kind::Plant,
            Category::Living if variation.random_bool(0.5) => Kind::Animal,
            Category::Living => Kind::Plant,
        };
        let (pool, homes) = match kind {
            Kind::Animal => (split.pick(ANIMALS.0, ANIMALS.1), &ANIMAL_HOMES),
            _ => (split.pick(PLANTS.0, PLANTS.1), &PLANT_HOMES),
        };
        let fresh: Vec<&str> = pool
            .iter()
            .copied()
            .filter(|n| !names.contains(n))
            .collect();
        let homes: Vec<&str> = homes
            .iter()
            .copied()
            .filter(|&h| room_id(h) != box_room)
            .collect();
        let (Some(&name), Some(&home)) = (fresh.choose(variation), homes.choose(variation)) else {
            continue;
        };
        names.push(name);
        let place = match kind {
            Kind::Plant => layout::open_spot_in(&world, variation, room_id(home)),
            _ => Place::Room(room_id(home)),
        };
        let id = world.add(Object {
            kind,
            note: format!(
                "It is {}. It is alive.",
                crate::world::describe::with_article(name)
            ),
            ..Object::thing(name, place, true)
        });
        targets.push(id);
    }

    // Decoys: two beside the box, one somewhere else.
    let elsewhere = *[
        room_id("hallway"),
        room_id("living room"),
        room_id("greenhouse"),
    ]
    .choose(variation)
    .expect("non-empty");
    let mut decoys = Vec::new();
    for room in [box_room, box_room, elsewhere] {
        let decoy = decoy_name(category, variation, split);
        if world.object(&decoy).is_none() {
            decoys.push(world.add(Object::thing(decoy, Place::Room(room), true)));
        }
    }

    let target_rooms: Vec<RoomId> = targets.iter().filter_map(|&t| world.room_of(t)).collect();
    layout::start_agent(&mut world, episode, &target_rooms);

    let text = format!(
        "Your task is to find {}. First, focus on the thing. Then, move it to the {colour} box in \
         the {}.",
        category.phrase(),
        world.rooms[box_room].name
    );
    let brief = Brief::new(
        text,
        Focus::Category(category),
        [
            (Check::Visited(box_room), 10.0),
            (Check::Focused, 40.0),
            (Check::CarryingFocus, 20.0),
            (Check::FocusIn(box_id), 30.0),
        ],
    );
    let find = Find {
        brief,
        targets,
        decoys,
        box_id,
        box_room,
    };
    (world, find)
}

/// A non-living look-alike: `toy rabbit`, `plastic fern`.
fn decoy_name(category: Category, rng: &mut impl Rng, split: Split) -> String {
    let animal = match category {
        Category::Animal => true,
        Category::Plant => false,
        Category::Living => rng.random_bool(0.5),
    };
    let (forms, pool): (&[&str], _) = if animal {
        (&ANIMAL_DECOYS, split.pick(ANIMALS.0, ANIMALS.1))
    } else {
        (&PLANT_DECOYS, split.pick(PLANTS.0, PLANTS.1))
    };
    let form = forms.choose(rng).expect("non-empty");
    let name = pool.choose(rng).expect("non-empty");
    format!("{form} {name}")
}

impl Scenario for Find {
    fn brief(&self) -> &Brief {
        &self.brief
    }

    fn solve(&self, planner: &mut Planner) {
        let nearest = self
            .targets
            .iter()
            .copied()
            .min_by_key(|&t| planner.world.room_of(t).map(|r| planner.distance(r)))
            .expect("every find world has a target");
        self.finish(planner, nearest);
    }

    fn search(&self, planner: &mut Planner) {
        // Names do not tell a turtle from a toy turtle: the agent looks at each animal- or
        // plant-like thing it sees (not at rulers and kettles) until one is alive.
        let mut looked_at = Vec::new();
        let mut found = None;
        planner.search(false, |p| {
            let mut seen: Vec<ObjId> = self
                .targets
                .iter()
                .chain(&self.decoys)
                .copied()
                .filter(|&o| p.world.is_visible(o) && !looked_at.contains(&o))
                .collect();
            seen.sort_by_key(|&o| p.world.objects[o].rank);
            for o in seen {
                looked_at.push(o);
                p.act(Command::LookAt(o));
                if self.targets.contains(&o) {
                    found = Some(o);
                    return true;
                }
            }
            false
        });
        self.finish(planner, found.unwrap_or(self.targets[0]));
    }
}

impl Find {
    /// Reaches `target`, focuses on it and puts it in the box.
    fn finish(&self, planner: &mut Planner, target: ObjId) {
        planner.reach(target);
        planner.act(Command::Focus(target));
        planner.take(target);
        planner.go_to(self.box_room);
        planner.act(Command::Put(target, self.box_id));
    }
}
