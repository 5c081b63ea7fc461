//! The actions of the built-in worlds: their text, which are valid in a state, and their effect.

use super::{ObjId, Part, Place, RoomId, Terminal, World};

/// One action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `look around`: describe the room.
    Look,
    /// `inventory`: list what the agent carries.
    Inventory,
    /// `go to <room>` through an open door.
    GoTo(RoomId),
    /// `open door to <room>` (the door with this index).
    OpenDoor(usize),
    /// `close door to <room>`.
    CloseDoor(usize),
    /// `open <container>`.
    Open(ObjId),
    /// `close <container>`.
    Close(ObjId),
    /// `take <object>` into the inventory.
    Take(ObjId),
    /// `drop <object>` into the room.
    Drop(ObjId),
    /// `put <object> in <container>`.
    Put(ObjId, ObjId),
    /// `focus on <object>`: declare the object the task is about.
    Focus(ObjId),
    /// `look at <object>`.
    LookAt(ObjId),
    /// `connect <terminal> to <terminal>`.
    Connect(Terminal, Terminal),
    /// `disconnect <object>`: remove every wire at it.
    Disconnect(ObjId),
}

impl Command {
    /// A connection with its terminals in the order [`World::valid_commands`] lists them.
    pub fn connect(a: Terminal, b: Terminal) -> Self {
        if a <= b {
            Command::Connect(a, b)
        } else {
            Command::Connect(b, a)
        }
    }
}

impl World {
    /// The action text of `command`.
    pub fn render(&self, command: &Command) -> String {
        let name = |o: ObjId| self.objects[o].name.as_str();
        let door_to = |d: usize| {
            let other = self.doors[d]
                .other_side(self.agent)
                .unwrap_or(self.doors[d].between[1]);
            self.rooms[other].name
        };
        match *command {
            Command::Look => "look around".into(),
            Command::Inventory => "inventory".into(),
            Command::GoTo(room) => format!("go to {}", self.rooms[room].name),
            Command::OpenDoor(d) => format!("open door to {}", door_to(d)),
            Command::CloseDoor(d) => format!("close door to {}", door_to(d)),
            Command::Open(o) => format!("open {}", name(o)),
            Command::Close(o) => format!("close {}", name(o)),
            Command::Take(o) => format!("take {}", name(o)),
            Command::Drop(o) => format!("drop {}", name(o)),
            Command::Put(o, c) => format!("put {} in {}", name(o), name(c)),
            Command::Focus(o) => format!("focus on {}", name(o)),
            Command::LookAt(o) => format!("look at {}", name(o)),
            Command::Connect(a, b) => {
                format!(
                    "connect {} to {}",
                    self.terminal_name(a),
                    self.terminal_name(b)
                )
            }
            Command::Disconnect(o) => format!("disconnect {}", name(o)),
        }
    }

    /// `battery anode`, `red wire terminal 2`.
    pub fn terminal_name(&self, t: Terminal) -> String {
        let object = &self.objects[t.obj];
        let end = match (object.part, t.end) {
            (Some(Part::Battery { .. }), 0) => "anode",
            (Some(Part::Battery { .. }), _) => "cathode",
            (_, 0) => "terminal 1",
            _ => "terminal 2",
        };
        format!("{} {end}", object.name)
    }

    /// Every action that does something in the current state, in a stable order.
    pub fn valid_commands(&self) -> Vec<Command> {
        let mut commands = vec![Command::Look, Command::Inventory];
        for (door, other) in self.exits(self.agent) {
            if self.doors[door].open {
                commands.push(Command::GoTo(other));
                commands.push(Command::CloseDoor(door));
            } else {
                commands.push(Command::OpenDoor(door));
            }
        }
        let visible: Vec<ObjId> = (0..self.objects.len())
            .filter(|&o| self.is_visible(o))
            .collect();
        for &o in &visible {
            let object = &self.objects[o];
            commands.push(Command::LookAt(o));
            commands.push(Command::Focus(o));
            if let Some(lid) = object.container.filter(|c| c.openable) {
                commands.push(if lid.open {
                    Command::Close(o)
                } else {
                    Command::Open(o)
                });
            }
            if object.portable {
                if object.place == Place::Carried {
                    commands.push(Command::Drop(o));
                    for &c in &visible {
                        let open = self.objects[c].container.is_some_and(|l| l.open);
                        if open && c != o && !self.is_inside(c, o) {
                            commands.push(Command::Put(o, c));
                        }
                    }
                } else {
                    commands.push(Command::Take(o));
                }
            }
            if object.part.is_some() && self.links.iter().any(|l| l[0].obj == o || l[1].obj == o) {
                commands.push(Command::Disconnect(o));
            }
        }
        let terminals: Vec<Terminal> = visible
            .iter()
            .filter(|&&o| self.objects[o].part.is_some())
            .flat_map(|&obj| [Terminal { obj, end: 0 }, Terminal { obj, end: 1 }])
            .collect();
        for (i, &a) in terminals.iter().enumerate() {
            for &b in &terminals[i + 1..] {
                if a.obj != b.obj && !self.links.contains(&[a, b]) {
                    commands.push(Command::Connect(a, b));
                }
            }
        }
        commands
    }

    /// Applies a valid command and returns what the agent observes.
    pub fn apply(&mut self, command: &Command) -> String {
        match *command {
            Command::Look => self.describe_room(),
            Command::Inventory => self.describe_inventory(),
            Command::GoTo(room) => {
                self.enter(room);
                format!("You move to the {}.", self.rooms[room].name)
            }
            Command::OpenDoor(d) | Command::CloseDoor(d) => {
                let open = matches!(command, Command::OpenDoor(_));
                self.doors[d].open = open;
                let other = self.doors[d].other_side(self.agent).unwrap_or(self.agent);
                let state = if open { "open" } else { "closed" };
                format!("The door to the {} is now {state}.", self.rooms[other].name)
            }
            Command::Open(o) => {
                set_open(self, o, true);
                let inside = self.list(Place::In(o));
                format!(
                    "The {} is now open. {}",
                    self.objects[o].name,
                    inside_sentence(&inside)
                )
            }
            Command::Close(o) => {
                set_open(self, o, false);
                format!("The {} is now closed.", self.objects[o].name)
            }
            Command::Take(o) => {
                self.objects[o].place = Place::Carried;
                format!("You move the {} to the inventory.", self.objects[o].name)
            }
            Command::Drop(o) => {
                self.objects[o].place = Place::Room(self.agent);
                format!("You drop the {}.", self.objects[o].name)
            }
            Command::Put(o, c) => {
                self.objects[o].place = Place::In(c);
                format!(
                    "You move the {} to the {}.",
                    self.objects[o].name, self.objects[c].name
                )
            }
            Command::Focus(o) => {
                self.focus = Some(o);
                format!("You focus on the {}.", self.objects[o].name)
            }
            Command::LookAt(o) => self.describe_object(o),
            Command::Connect(a, b) => {
                self.links.push([a, b]);
                format!(
                    "The {} is now connected to the {}.{}",
                    self.terminal_name(a),
                    self.terminal_name(b),
                    self.bulb_news()
                )
            }
            Command::Disconnect(o) => {
                self.links.retain(|l| l[0].obj != o && l[1].obj != o);
                format!(
                    "The {} is now disconnected.{}",
                    self.objects[o].name,
                    self.bulb_news()
                )
            }
        }
    }

    /// " The red light bulb turns on." for each bulb that is lit now.
    fn bulb_news(&self) -> String {
        let lit: Vec<&str> = (0..self.objects.len())
            .filter(|&o| self.objects[o].part == Some(Part::Bulb) && self.is_lit(o))
            .map(|o| self.objects[o].name.as_str())
            .collect();
        lit.iter()
            .map(|name| format!(" The {name} is on."))
            .collect()
    }
}

fn set_open(world: &mut World, o: ObjId, open: bool) {
    if let Some(lid) = world.objects[o].container.as_mut() {
        lid.open = open;
    }
}

fn inside_sentence(inside: &str) -> String {
    if inside.is_empty() {
        "It is empty.".into()
    } else {
        format!("In it, you see: {inside}.")
    }
}
