//! CPython's `random.Random(seed)` for a non-negative integer seed, as far as
//! Nova's scheduler draws from it: `choice` (for `host_subset_size`) and
//! `shuffle` (for `shuffle_best_same_weighed_hosts`). Exact equality with
//! CPython is what lets a replay pick the host Nova picks with the same seed.
//! Mersenne Twister MT19937 with `init_by_array` seeding, and
//! `_randbelow_with_getrandbits`, as CPython 3.11 implements them.

const N: usize = 624;
const M: usize = 397;

#[derive(Clone)]
pub struct PyRandom {
    state: Box<[u32; N]>,
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)`: the seed's 32-bit words, least significant
    /// first (one zero word for 0), fed to `init_by_array`.
    pub fn new(seed: u64) -> PyRandom {
        let mut key = vec![seed as u32];
        if seed >> 32 != 0 {
            key.push((seed >> 32) as u32);
        }
        let mut r = PyRandom {
            state: Box::new([0; N]),
            index: N,
        };
        r.init_by_array(&key);
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.state[0] = s;
        for i in 1..N {
            let prev = self.state[i - 1];
            self.state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = N;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            let prev = self.state[i - 1];
            self.state[i] = (self.state[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                self.state[0] = self.state[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            let prev = self.state[i - 1];
            self.state[i] = (self.state[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                self.state[0] = self.state[N - 1];
                i = 1;
            }
        }
        self.state[0] = 0x8000_0000;
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for k in 0..N {
            let y = (self.state[k] & UPPER) | (self.state[(k + 1) % N] & LOWER);
            let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
            self.state[k] = self.state[(k + M) % N] ^ (y >> 1) ^ mag;
        }
        self.index = 0;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for 1 <= k <= 32.
    fn getrandbits(&mut self, k: u32) -> u32 {
        self.next_u32() >> (32 - k)
    }

    /// `_randbelow(n)`: uniform in `0..n` by rejection (CPython draws
    /// `n.bit_length()` bits, so even `n = 1` consumes words).
    pub fn randbelow(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let k = 32 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// The index `random.choice(seq)` takes for a sequence of `len` items (`len >= 1`).
    pub fn choice(&mut self, len: usize) -> usize {
        self.randbelow(u32::try_from(len).unwrap_or(u32::MAX)) as usize
    }

    /// `random.shuffle(items)`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.randbelow(u32::try_from(i + 1).unwrap_or(u32::MAX)) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors printed by CPython 3.11 (`random.Random(seed)`).
    #[test]
    fn equals_cpython() {
        let mut r = PyRandom::new(0);
        let words: Vec<u32> = (0..3).map(|_| r.getrandbits(32)).collect();
        assert_eq!(words, [3626764237, 1654615998, 3255389356]);
        let mut r = PyRandom::new(12345678901234);
        let words: Vec<u32> = (0..3).map(|_| r.getrandbits(32)).collect();
        assert_eq!(words, [107551873, 2403399316, 624174316]);
        let mut r = PyRandom::new(7);
        let picks: Vec<usize> = [1, 2, 3, 5, 17, 1000, 1, 3]
            .iter()
            .map(|&n| r.choice(n))
            .collect();
        assert_eq!(picks, [0, 0, 1, 0, 2, 840, 0, 1]);
        let mut r = PyRandom::new(3);
        let mut x: Vec<u32> = (0..10).collect();
        r.shuffle(&mut x);
        assert_eq!(x, [1, 5, 6, 0, 9, 4, 7, 2, 8, 3]);
        assert_eq!(r.choice(3), 1);
    }
}
