//! The one stable hash numasim uses (FNV-1a, 64 bits): for sweep digests
//! and for per-guest seeded draws. It gives the same value on every
//! machine and Rust version, which std's hasher does not promise.

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StableHasher(u64);

impl StableHasher {
    pub fn new() -> StableHasher {
        StableHasher(OFFSET)
    }

    /// A hasher whose start is mixed with `salt` (a seed, a rule index).
    pub fn salted(salt: u64) -> StableHasher {
        StableHasher(OFFSET ^ salt)
    }

    pub fn write(&mut self, bytes: &[u8]) -> &mut StableHasher {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(PRIME);
        }
        self
    }

    /// Writes `part` and a separator byte, so ("ab", "c") and ("a", "bc") differ.
    pub fn part(&mut self, part: &[u8]) -> &mut StableHasher {
        self.write(part).write(&[0xff])
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher::new()
    }
}

/// Whether the item named `id` draws a share `fraction`, decided by its id
/// and `salt` alone (the same items whatever the order or the other draws).
pub fn draws(id: &str, salt: u64, fraction: f64) -> bool {
    use rand::{RngExt, SeedableRng};
    let h = StableHasher::salted(salt).write(id.as_bytes()).finish();
    rand_chacha::ChaCha8Rng::seed_from_u64(h).random::<f64>() < fraction
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // FNV-1a 64 of "" and "a" (the reference values).
        assert_eq!(StableHasher::new().finish(), 0xcbf2_9ce4_8422_2325);
        assert_eq!(
            StableHasher::new().write(b"a").finish(),
            0xaf63_dc4c_8601_ec8c
        );
        assert_ne!(
            StableHasher::new().part(b"ab").part(b"c").finish(),
            StableHasher::new().part(b"a").part(b"bc").finish()
        );
    }
}
