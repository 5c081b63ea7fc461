//! The gold-path planner: a copy of the world plus the actions taken on it. Task solvers are
//! written with its moves (go to a room, reach an object, take it), and every action is played
//! through the same engine the agent uses, so a plan is valid by construction.

use std::collections::VecDeque;

use super::{Command, ObjId, Place, RoomId, World};

/// A world being solved and the actions taken so far.
#[derive(Debug, Clone)]
pub struct Planner {
    /// The world after the actions so far.
    pub world: World,
    actions: Vec<String>,
    /// Rooms [`Planner::search`] has searched (bit per room), kept across searches.
    searched: u64,
}

impl Planner {
    /// Starts planning from `world`'s current state.
    pub fn new(world: World) -> Self {
        Self {
            world,
            actions: Vec::new(),
            searched: 0,
        }
    }

    /// Takes one action.
    pub fn act(&mut self, command: Command) {
        self.actions.push(self.world.render(&command));
        self.world.apply(&command);
    }

    /// Walks to `room` by the fewest doors, opening closed ones on the way.
    pub fn go_to(&mut self, room: RoomId) {
        for (door, next) in self.route(room) {
            if !self.world.doors[door].open {
                self.act(Command::OpenDoor(door));
            }
            self.act(Command::GoTo(next));
        }
    }

    /// Goes to `obj` and opens whatever closed containers hide it, outermost first.
    pub fn reach(&mut self, obj: ObjId) {
        if let Some(room) = self.world.room_of(obj) {
            self.go_to(room);
        }
        let mut closed = Vec::new();
        let mut place = self.world.objects[obj].place;
        while let Place::In(parent) = place {
            if self.world.objects[parent]
                .container
                .is_some_and(|c| !c.open)
            {
                closed.push(parent);
            }
            place = self.world.objects[parent].place;
        }
        for container in closed.into_iter().rev() {
            self.act(Command::Open(container));
        }
    }

    /// Reaches `obj` and takes it, unless it is already carried.
    pub fn take(&mut self, obj: ObjId) {
        if !self.world.is_carried(obj) {
            self.reach(obj);
            self.act(Command::Take(obj));
        }
    }

    /// Searches as an agent that does not know where things are: until `found` holds, it
    /// looks around each room it enters, opens the room's closed containers in listing order
    /// (when `open_containers`), then walks one door at a time towards the nearest room it has
    /// not searched yet (ties to the lower room id). Stops when `found` holds or every room
    /// is searched; a later search skips the rooms an earlier one searched. `found` may act
    /// (e.g. look at what it sees) before it answers.
    pub fn search(&mut self, open_containers: bool, mut found: impl FnMut(&mut Planner) -> bool) {
        let mut target: Option<RoomId> = None;
        loop {
            let room = self.world.agent;
            if self.searched & (1 << room) == 0 {
                self.searched |= 1 << room;
                // Moving in only names the room: the agent looks to see what is there (the
                // first observation already describes the start room).
                if !self.actions.is_empty() {
                    self.act(Command::Look);
                }
                if found(self) {
                    return;
                }
                if open_containers {
                    for obj in self.world.contents(Place::Room(room)) {
                        let closed = self.world.objects[obj]
                            .container
                            .is_some_and(|c| c.openable && !c.open);
                        if closed {
                            self.act(Command::Open(obj));
                            if found(self) {
                                return;
                            }
                        }
                    }
                }
            } else if found(self) {
                return;
            }
            if target.is_none_or(|t| self.searched & (1 << t) != 0) {
                target = (0..self.world.rooms.len())
                    .filter(|&r| self.searched & (1 << r) == 0)
                    .min_by_key(|&r| (self.distance(r), r));
            }
            let Some(goal) = target else { return };
            let Some(&(door, next)) = self.route(goal).first() else {
                return;
            };
            if !self.world.doors[door].open {
                self.act(Command::OpenDoor(door));
            }
            self.act(Command::GoTo(next));
        }
    }

    /// Doors between the agent and `room`.
    pub fn distance(&self, room: RoomId) -> usize {
        self.route(room).len()
    }

    /// The actions taken.
    pub fn into_actions(self) -> Vec<String> {
        self.actions
    }

    /// Doors to pass and rooms to enter, from the agent's room to `goal` (breadth-first).
    fn route(&self, goal: RoomId) -> Vec<(usize, RoomId)> {
        let start = self.world.agent;
        let mut came_from: Vec<Option<(usize, RoomId)>> = vec![None; self.world.rooms.len()];
        let mut queue = VecDeque::from([start]);
        while let Some(room) = queue.pop_front() {
            if room == goal {
                break;
            }
            for (door, next) in self.world.exits(room) {
                if next != start && came_from[next].is_none() {
                    came_from[next] = Some((door, room));
                    queue.push_back(next);
                }
            }
        }
        let mut route = Vec::new();
        let mut room = goal;
        while let Some((door, previous)) = came_from[room] {
            route.push((door, room));
            room = previous;
        }
        route.reverse();
        route
    }
}
