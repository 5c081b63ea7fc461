//! The observation texts, in ScienceWorld's voice.

use std::fmt::Write;

use super::{ObjId, Part, Place, World};

/// `a red mug`, `an apple`.
pub fn with_article(name: &str) -> String {
    let vowel = name.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {name}", if vowel { "an" } else { "a" })
}

impl World {
    /// `look around`: the room, what is in it, and its doors.
    pub fn describe_room(&self) -> String {
        let mut text = format!(
            "This room is called the {}. In it, you see:\n\tthe agent\n",
            self.rooms[self.agent].name
        );
        for o in self.contents(Place::Room(self.agent)) {
            let _ = writeln!(text, "\t{}", self.phrase(o));
        }
        text.push_str("You also see:\n");
        for (door, other) in self.exits(self.agent) {
            let state = if self.doors[door].open {
                "open"
            } else {
                "closed"
            };
            let _ = writeln!(
                text,
                "\tA door to the {} (that is {state})",
                self.rooms[other].name
            );
        }
        text
    }

    /// `inventory`.
    pub fn describe_inventory(&self) -> String {
        let carried = self.contents(Place::Carried);
        if carried.is_empty() {
            return "Your inventory is empty.".into();
        }
        let mut text = String::from("In your inventory, you see:\n");
        for o in carried {
            let _ = writeln!(text, "\t{}", self.phrase(o));
        }
        text
    }

    /// `look at <object>`: its note and state.
    pub fn describe_object(&self, o: ObjId) -> String {
        let object = &self.objects[o];
        let mut text = object.note.clone();
        let state = self.state(o);
        if !state.is_empty() {
            let _ = write!(text, " It is {state}.");
        }
        let wired: Vec<String> = self
            .links
            .iter()
            .filter_map(|l| match (l[0].obj == o, l[1].obj == o) {
                (true, _) => Some(self.terminal_name(l[1])),
                (_, true) => Some(self.terminal_name(l[0])),
                _ => None,
            })
            .collect();
        if !wired.is_empty() {
            let _ = write!(text, " It is connected to: {}.", wired.join(", "));
        }
        text
    }

    /// The objects directly at `place`, as `a red mug, a plate (containing: …)`.
    pub fn list(&self, place: Place) -> String {
        self.contents(place)
            .into_iter()
            .map(|o| self.phrase(o))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `a fridge, which is closed` / `a box (containing a cat)` / `a light bulb, which is off`.
    fn phrase(&self, o: ObjId) -> String {
        let mut text = with_article(&self.objects[o].name);
        let state = self.state(o);
        if !state.is_empty() {
            let _ = write!(text, ", which is {state}");
        }
        if self.objects[o].container.is_some_and(|c| c.open) {
            let inside = self.list(Place::In(o));
            let inside = if inside.is_empty() {
                "nothing".into()
            } else {
                inside
            };
            let _ = write!(text, " (containing {inside})");
        }
        text
    }

    /// `closed`, `on`, `off`, or empty.
    fn state(&self, o: ObjId) -> &'static str {
        let object = &self.objects[o];
        match (object.container, object.part) {
            (Some(lid), _) if !lid.open => "closed",
            (_, Some(Part::Bulb)) if self.is_lit(o) => "on",
            (_, Some(Part::Bulb)) => "off",
            _ => "",
        }
    }
}
