//! Electrical circuits: terminals joined by links and by wires' own conduction. A bulb is lit
//! when its two terminals are joined to the two ends of a charged battery, and those ends are
//! not shorted together.

use super::{ObjId, Part, Terminal, World};

impl World {
    /// Whether `bulb` is lit.
    pub fn is_lit(&self, bulb: ObjId) -> bool {
        self.bulb_circuit(bulb, true)
    }

    /// Whether `bulb` sits in a closed loop with any battery, charged or not.
    pub fn is_closed_circuit(&self, bulb: ObjId) -> bool {
        self.bulb_circuit(bulb, false)
    }

    fn bulb_circuit(&self, bulb: ObjId, need_charge: bool) -> bool {
        if self.links.is_empty() {
            return false;
        }
        let nets = Nets::of(self);
        let (b0, b1) = (nets.find(bulb, 0), nets.find(bulb, 1));
        self.objects
            .iter()
            .enumerate()
            .any(|(o, object)| match object.part {
                Some(Part::Battery { charged }) if charged || !need_charge => {
                    let (plus, minus) = (nets.find(o, 0), nets.find(o, 1));
                    plus != minus && ((plus, minus) == (b0, b1) || (plus, minus) == (b1, b0))
                }
                _ => false,
            })
    }
}

/// Union-find over terminals (two per object): which terminals are electrically one net.
struct Nets {
    parent: Vec<usize>,
}

impl Nets {
    fn of(world: &World) -> Self {
        let mut nets = Self {
            parent: (0..world.objects.len() * 2).collect(),
        };
        for (o, object) in world.objects.iter().enumerate() {
            if object.part == Some(Part::Wire) {
                nets.union(2 * o, 2 * o + 1);
            }
        }
        for [a, b] in &world.links {
            nets.union(index(*a), index(*b));
        }
        nets
    }

    fn find(&self, obj: ObjId, end: u8) -> usize {
        self.root(index(Terminal { obj, end }))
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.root(a), self.root(b));
        self.parent[ra] = rb;
    }

    fn root(&self, mut i: usize) -> usize {
        while self.parent[i] != i {
            i = self.parent[i];
        }
        i
    }
}

fn index(t: Terminal) -> usize {
    2 * t.obj + usize::from(t.end)
}
