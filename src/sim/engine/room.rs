//! Hosts counted by their vCPU room, per class of allocation ratios, so
//! that the rejection reasons of the hosts a scan skipped (those below the
//! RAM floor, thousands per refused guest on a full fleet) are counted in
//! `O(classes × log V)` rather than by checking each host again.
//!
//! A skipped host always fails the host-level check; which of its two
//! checks fails first (vCPUs, then memory) is all its reason says. So per
//! class, the skipped hosts refused for vCPUs are the class's hosts whose
//! room is below the request, minus those the scan met; the rest of the
//! skipped hosts are refused for memory.

/// Classes and room values beyond these bounds are not indexed: the
/// reasons are then worked out host by host, as before.
const MAX_CLASSES: usize = 256;
const MAX_ENTRIES: usize = 1 << 22;

/// One class: the hosts sharing a CPU and a RAM allocation ratio.
pub(super) struct RoomClass {
    pub cpu_ratio: f64,
    pub ram_ratio: f64,
    pub hosts: usize,
    /// Fenwick tree over clamped room values `0..=max_vcpus`.
    tree: Vec<u32>,
}

pub(super) struct VcpuRoom {
    class_of: Vec<u32>,
    pub classes: Vec<RoomClass>,
    /// Requests above this size are not answered (`refused_for_vcpus`
    /// returns `None`); rooms are clamped to it.
    max_vcpus: i64,
}

impl VcpuRoom {
    /// `hosts` gives each host's (CPU ratio, RAM ratio, physical CPUs,
    /// vCPUs used), or `None` for a host without limits (no host-level
    /// check, nothing to index). `max_vcpus`: the largest request.
    pub fn new(
        hosts: impl Iterator<Item = Option<(f64, f64, i64, i64)>>,
        max_vcpus: i64,
    ) -> Option<VcpuRoom> {
        if max_vcpus < 1 {
            return None;
        }
        let size = usize::try_from(max_vcpus).ok()?.checked_add(1)?;
        let mut index = VcpuRoom {
            class_of: Vec::new(),
            classes: Vec::new(),
            max_vcpus,
        };
        let mut rooms = Vec::new();
        for host in hosts {
            let (cpu_ratio, ram_ratio, cpus, used) = host?;
            let c = match index.classes.iter().position(|k| {
                k.cpu_ratio.to_bits() == cpu_ratio.to_bits()
                    && k.ram_ratio.to_bits() == ram_ratio.to_bits()
            }) {
                Some(c) => c,
                None => {
                    if index.classes.len() == MAX_CLASSES
                        || (index.classes.len() + 1) * size > MAX_ENTRIES
                    {
                        return None;
                    }
                    index.classes.push(RoomClass {
                        cpu_ratio,
                        ram_ratio,
                        hosts: 0,
                        tree: vec![0; size + 1],
                    });
                    index.classes.len() - 1
                }
            };
            index.classes[c].hosts += 1;
            index.class_of.push(c as u32);
            rooms.push(index.room(cpu_ratio, cpus, used));
        }
        for (host, room) in rooms.into_iter().enumerate() {
            let c = index.class_of[host] as usize;
            add(&mut index.classes[c].tree, room, 1);
        }
        Some(index)
    }

    pub fn class_of(&self, host: usize) -> usize {
        self.class_of[host] as usize
    }

    /// The host-level vCPU check refuses `v` vCPUs exactly when
    /// `used + v > cpus × ratio`, i.e. when `v > floor(cpus × ratio) − used`:
    /// that difference is the room, clamped to `0..=max_vcpus` (a room of
    /// `max_vcpus` refuses no request this index answers).
    fn room(&self, cpu_ratio: f64, cpus: i64, used: i64) -> usize {
        let cap = (cpus as f64 * cpu_ratio).floor();
        let room = (cap - used as f64).clamp(0.0, self.max_vcpus as f64);
        room as usize
    }

    /// Host `host` (of `cpus` physical CPUs) went from `old` to `new`
    /// vCPUs used.
    pub fn moved(&mut self, host: usize, cpus: i64, old: i64, new: i64) {
        let c = self.class_of[host] as usize;
        let ratio = self.classes[c].cpu_ratio;
        let (from, to) = (self.room(ratio, cpus, old), self.room(ratio, cpus, new));
        if from != to {
            let tree = &mut self.classes[c].tree;
            add(tree, from, -1);
            add(tree, to, 1);
        }
    }

    /// Hosts of class `c` whose vCPU check refuses `v` vCPUs; `None` when
    /// `v` is outside what the index answers.
    pub fn refused_for_vcpus(&self, c: usize, v: i64) -> Option<usize> {
        if !(1..=self.max_vcpus).contains(&v) {
            return None;
        }
        // Rooms 0..v refuse: the prefix sum up to room v - 1.
        let tree = &self.classes[c].tree;
        let mut i = v as usize; // one-based index of room v - 1
        let mut sum = 0u64;
        while i > 0 {
            sum += u64::from(tree[i]);
            i &= i - 1;
        }
        Some(sum as usize)
    }
}

fn add(tree: &mut [u32], room: usize, delta: i32) {
    let mut i = room + 1;
    while i < tree.len() {
        tree[i] = tree[i].wrapping_add_signed(delta);
        i += i & i.wrapping_neg();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index against the check it stands for, on every room and request.
    #[test]
    fn counts_equal_the_host_level_vcpu_check() {
        // (cpu ratio, ram ratio, cpus, used): two classes, rooms below 0,
        // fractional capacities, rooms above the largest request.
        let hosts = vec![
            (4.0, 1.0, 8, 0),
            (4.0, 1.0, 8, 31),
            (4.0, 1.0, 8, 40),
            (1.5, 1.0, 3, 2),
            (1.5, 1.0, 3, 4),
            (1.5, 1.0, 3, 5),
            (4.0, 1.0, 2, 3),
        ];
        let max = 6;
        let mut index = VcpuRoom::new(hosts.iter().map(|&h| Some(h)), max).unwrap();
        let mut hosts = hosts;
        let check = |hosts: &[(f64, f64, i64, i64)], index: &VcpuRoom| {
            for v in 1..=max {
                for (c, class) in index.classes.iter().enumerate() {
                    let expected = hosts
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| index.class_of(*i) == c)
                        .filter(|(_, (r, _, cpus, used))| (used + v) as f64 > *cpus as f64 * r)
                        .count();
                    assert_eq!(
                        index.refused_for_vcpus(c, v),
                        Some(expected),
                        "class {c} ({}), v {v}",
                        class.cpu_ratio
                    );
                }
            }
        };
        check(&hosts, &index);
        for (host, new) in [(0, 30), (3, 0), (6, 9), (0, 2)] {
            let (_, _, cpus, old) = hosts[host];
            index.moved(host, cpus, old, new);
            hosts[host].3 = new;
            check(&hosts, &index);
        }
        assert_eq!(index.refused_for_vcpus(0, max + 1), None);
        assert_eq!(index.refused_for_vcpus(0, 0), None);
        assert!(VcpuRoom::new([Some((1.0, 1.0, 1, 0)), None].into_iter(), 4).is_none());
    }
}
