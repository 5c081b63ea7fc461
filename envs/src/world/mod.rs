//! The engine of the built-in worlds: rooms joined by doors, objects with properties, and the
//! agent. A world knows its state and how actions change it; what scores is up to the task
//! ([`crate::builtin`]).
//!
//! - [`command`]: the actions, their text, which are valid now, and what they do.
//! - [`layout`]: the house every built-in world starts from.
//! - [`plan`]: the gold-path planner (navigate, open, fetch) the task solvers are written in.
//! - [`describe`]: the observation texts.
//! - [`circuit`]: which terminals are joined, and whether a bulb is lit.

pub mod circuit;
pub mod command;
pub mod describe;
pub mod layout;
pub mod plan;

pub use command::Command;

/// Index of a room in [`World::rooms`].
pub type RoomId = usize;
/// Index of an object in [`World::objects`].
pub type ObjId = usize;

/// A room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Its name, as used in actions (`go to kitchen`).
    pub name: &'static str,
}

/// A door between two rooms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Door {
    /// The rooms it joins.
    pub between: [RoomId; 2],
    /// Whether it is open (closed doors block `go to`).
    pub open: bool,
}

impl Door {
    /// The room on the other side from `room`, if this door touches it.
    pub fn other_side(&self, room: RoomId) -> Option<RoomId> {
        match self.between {
            [a, b] if a == room => Some(b),
            [a, b] if b == room => Some(a),
            _ => None,
        }
    }
}

/// Where an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Directly in a room.
    Room(RoomId),
    /// Inside a container object.
    In(ObjId),
    /// In the agent's inventory.
    Carried,
}

/// What an object is, for classification tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A living animal.
    Animal,
    /// A living plant.
    Plant,
    /// Anything not alive (including toys and pictures of living things).
    Thing,
}

impl Kind {
    /// Animals and plants are alive.
    pub fn is_living(self) -> bool {
        matches!(self, Kind::Animal | Kind::Plant)
    }
}

/// An electrical component; each has two terminals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A battery (terminals: anode, cathode); only a charged one powers anything.
    Battery {
        /// Whether it holds charge.
        charged: bool,
    },
    /// A wire (terminals 1 and 2), conducting between its ends.
    Wire,
    /// A light bulb (terminals 1 and 2); lit when in a circuit with a charged battery.
    Bulb,
}

/// A container's lid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Container {
    /// Whether its contents are visible and reachable.
    pub open: bool,
    /// Whether it can be opened and closed (a box has no lid; a fridge has a door).
    pub openable: bool,
}

/// A thing in the world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Unique name, as used in actions (`take red wire`).
    pub name: String,
    /// What `look at` says about it.
    pub note: String,
    /// Living or not.
    pub kind: Kind,
    /// Where it is.
    pub place: Place,
    /// Whether it can be taken.
    pub portable: bool,
    /// Set for containers.
    pub container: Option<Container>,
    /// Set for electrical components.
    pub part: Option<Part>,
    /// Listing order in room descriptions (seeded per episode).
    pub rank: u32,
}

impl Object {
    /// A non-living object with nothing special about it.
    pub fn thing(name: impl Into<String>, place: Place, portable: bool) -> Self {
        let name = name.into();
        Self {
            note: format!("It is {}.", describe::with_article(&name)),
            name,
            kind: Kind::Thing,
            place,
            portable,
            container: None,
            part: None,
            rank: 0,
        }
    }

    /// A non-portable container, open or closed (closed ones can be opened).
    pub fn container(name: impl Into<String>, place: Place, closed: bool) -> Self {
        Self {
            container: Some(Container {
                open: !closed,
                openable: closed,
            }),
            ..Self::thing(name, place, false)
        }
    }
}

/// One end of an electrical component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Terminal {
    /// The component.
    pub obj: ObjId,
    /// 0 (anode / terminal 1) or 1 (cathode / terminal 2).
    pub end: u8,
}

/// The whole state of one episode's world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    /// Rooms.
    pub rooms: Vec<Room>,
    /// Doors.
    pub doors: Vec<Door>,
    /// Objects.
    pub objects: Vec<Object>,
    /// The room the agent is in.
    pub agent: RoomId,
    /// Rooms the agent has been in (bit per room).
    pub visited: u64,
    /// What the agent focused on, if anything.
    pub focus: Option<ObjId>,
    /// Wires between terminals.
    pub links: Vec<[Terminal; 2]>,
}

impl World {
    /// An empty world of these rooms and doors with the agent in `start`.
    pub fn new(rooms: Vec<Room>, doors: Vec<Door>, start: RoomId) -> Self {
        Self {
            rooms,
            doors,
            objects: Vec::new(),
            agent: start,
            visited: 1 << start,
            focus: None,
            links: Vec::new(),
        }
    }

    /// Adds an object and returns its id.
    pub fn add(&mut self, object: Object) -> ObjId {
        self.objects.push(object);
        self.objects.len() - 1
    }

    /// The room with this name.
    pub fn room(&self, name: &str) -> Option<RoomId> {
        self.rooms.iter().position(|r| r.name == name)
    }

    /// The object with this name.
    pub fn object(&self, name: &str) -> Option<ObjId> {
        self.objects.iter().position(|o| o.name == name)
    }

    /// Moves the agent (and marks the room visited).
    pub fn enter(&mut self, room: RoomId) {
        self.agent = room;
        self.visited |= 1 << room;
    }

    /// Whether the agent has been in `room`.
    pub fn has_visited(&self, room: RoomId) -> bool {
        self.visited & (1 << room) != 0
    }

    /// Doors of `room` with the room each leads to.
    pub fn exits(&self, room: RoomId) -> impl Iterator<Item = (usize, RoomId)> + '_ {
        self.doors
            .iter()
            .enumerate()
            .filter_map(move |(i, d)| d.other_side(room).map(|other| (i, other)))
    }

    /// The room an object is in (through containers); `None` if carried.
    pub fn room_of(&self, obj: ObjId) -> Option<RoomId> {
        match self.outermost(obj) {
            Place::Room(room) => Some(room),
            _ => None,
        }
    }

    /// Whether the agent carries `obj` (directly or inside something carried).
    pub fn is_carried(&self, obj: ObjId) -> bool {
        self.outermost(obj) == Place::Carried
    }

    /// Whether `obj` is (directly or indirectly) inside `container`.
    pub fn is_inside(&self, obj: ObjId, container: ObjId) -> bool {
        let mut place = self.objects[obj].place;
        while let Place::In(parent) = place {
            if parent == container {
                return true;
            }
            place = self.objects[parent].place;
        }
        false
    }

    /// Whether the agent can see and reach `obj`: in its room or inventory, and not inside
    /// anything closed.
    pub fn is_visible(&self, obj: ObjId) -> bool {
        let mut place = self.objects[obj].place;
        loop {
            match place {
                Place::Room(room) => return room == self.agent,
                Place::Carried => return true,
                Place::In(parent) => {
                    let parent = &self.objects[parent];
                    if !parent.container.is_some_and(|c| c.open) {
                        return false;
                    }
                    place = parent.place;
                }
            }
        }
    }

    /// Whether nothing closed hides `obj` (wherever it is).
    pub fn is_revealed(&self, obj: ObjId) -> bool {
        let mut place = self.objects[obj].place;
        while let Place::In(parent) = place {
            if !self.objects[parent].container.is_some_and(|c| c.open) {
                return false;
            }
            place = self.objects[parent].place;
        }
        true
    }

    /// Objects directly at `place`, in listing order.
    pub fn contents(&self, place: Place) -> Vec<ObjId> {
        let mut found: Vec<ObjId> = (0..self.objects.len())
            .filter(|&o| self.objects[o].place == place)
            .collect();
        found.sort_by_key(|&o| self.objects[o].rank);
        found
    }

    fn outermost(&self, obj: ObjId) -> Place {
        let mut place = self.objects[obj].place;
        while let Place::In(parent) = place {
            place = self.objects[parent].place;
        }
        place
    }
}
