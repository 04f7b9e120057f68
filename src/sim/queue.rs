//! The departure queue: a calendar of time buckets. Only the bucket being
//! drained is a heap; later departures are appended to their bucket's list
//! and heapified when its turn comes. A fleet holds hundreds of thousands
//! of running guests, and one big heap pays a cache miss per level on
//! every pop; here the working heap is one bucket, which stays in cache.
//! Pops come out in exactly the (time, row) order of a single heap (tested
//! against one), so results do not depend on the bucket width.

use super::engine::OrderedTime;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// (departure time, trace row, slot of the placed guest).
pub type Departure = (OrderedTime, u32, u32);

/// Seconds per bucket: about a thousand departures per bucket at the
/// arrival rates of large fleets, a few at small ones.
const BUCKET_S: f64 = 64.0;

#[derive(Default)]
pub struct DepartureQueue {
    /// The bucket being drained.
    current: BinaryHeap<Reverse<Departure>>,
    current_bucket: Option<i64>,
    later: BTreeMap<i64, Vec<Reverse<Departure>>>,
    len: usize,
}

fn bucket_of(t: f64) -> i64 {
    // Saturating: times beyond i64 seconds share the last bucket, still ordered by the heap.
    (t / BUCKET_S).floor() as i64
}

impl DepartureQueue {
    pub fn new() -> DepartureQueue {
        DepartureQueue::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push(&mut self, d: Departure) {
        self.len += 1;
        let b = bucket_of(d.0.0);
        match self.current_bucket {
            // At or before the bucket being drained (only possible for a
            // departure due now): the heap orders it.
            Some(c) if b <= c => self.current.push(Reverse(d)),
            _ => self.later.entry(b).or_default().push(Reverse(d)),
        }
    }

    /// Makes the next non-empty bucket current when the current one is drained.
    fn refill(&mut self) {
        if self.current.is_empty()
            && let Some((b, list)) = self.later.pop_first()
        {
            self.current = BinaryHeap::from(list);
            self.current_bucket = Some(b);
        }
    }

    pub fn peek(&mut self) -> Option<Departure> {
        self.refill();
        self.current.peek().map(|r| r.0)
    }

    pub fn pop(&mut self) -> Option<Departure> {
        self.refill();
        let d = self.current.pop().map(|r| r.0);
        if d.is_some() {
            self.len -= 1;
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Interleaved pushes and pops, departures never before "now" (the
        /// last pop), as in a simulation: the same order as one heap.
        #[test]
        fn pops_in_the_order_of_a_single_heap(
            ops in prop::collection::vec((0u8..3, 0.0f64..5000.0), 1..400)
        ) {
            let mut q = DepartureQueue::new();
            let mut h: BinaryHeap<Reverse<Departure>> = BinaryHeap::new();
            let mut now = 0.0f64;
            let mut row = 0u32;
            for (op, dt) in ops {
                if op == 0 {
                    let a = q.pop();
                    let b = h.pop().map(|r| r.0);
                    prop_assert_eq!(a, b);
                    if let Some(d) = a {
                        now = d.0.0;
                    }
                } else {
                    // Integer times make ties (same time, rows in order).
                    let t = now + if op == 1 { dt.floor() } else { dt };
                    let d = (OrderedTime(t), row, row);
                    row += 1;
                    q.push(d);
                    h.push(Reverse(d));
                }
                prop_assert_eq!(q.len(), h.len());
                prop_assert_eq!(q.peek(), h.peek().map(|r| r.0));
            }
            while let Some(d) = h.pop() {
                prop_assert_eq!(q.pop(), Some(d.0));
            }
            prop_assert!(q.is_empty());
        }
    }
}
