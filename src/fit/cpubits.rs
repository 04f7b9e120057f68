//! A set of CPU ids as a bitset: membership and counts in O(1). Used where
//! Nova's set order does not matter (pinned CPUs).

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuBits {
    words: Vec<u64>,
    len: usize,
}

impl CpuBits {
    pub fn from_slice(cpus: &[u32]) -> CpuBits {
        let mut b = CpuBits::default();
        for &c in cpus {
            b.insert(c);
        }
        b
    }

    pub fn contains(&self, cpu: u32) -> bool {
        self.words
            .get((cpu / 64) as usize)
            .is_some_and(|w| w & (1 << (cpu % 64)) != 0)
    }

    pub fn insert(&mut self, cpu: u32) -> bool {
        let i = (cpu / 64) as usize;
        if self.words.len() <= i {
            self.words.resize(i + 1, 0);
        }
        let bit = 1u64 << (cpu % 64);
        let fresh = self.words[i] & bit == 0;
        self.words[i] |= bit;
        self.len += usize::from(fresh);
        fresh
    }

    pub fn remove(&mut self, cpu: u32) -> bool {
        let i = (cpu / 64) as usize;
        let bit = 1u64 << (cpu % 64);
        let present = self.words.get(i).is_some_and(|w| w & bit != 0);
        if present {
            self.words[i] &= !bit;
            self.len -= 1;
        }
        present
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            (0..64)
                .filter(move |b| w & (1 << b) != 0)
                .map(move |b| i as u32 * 64 + b)
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn set_operations() {
        let mut b = super::CpuBits::from_slice(&[3, 70, 3]);
        assert_eq!(b.len(), 2);
        assert!(b.contains(70) && !b.contains(4));
        assert!(b.remove(3) && !b.remove(3));
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![70]);
    }
}
