//! Synthetic workloads: Poisson arrivals, lifetimes from a distribution,
//! a weighted flavor mix, as a seeded stream of trace rows.

use crate::workload::trace::TraceRow;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use statrs::distribution::{ContinuousCDF, Normal};
use std::collections::BTreeMap;

/// Poisson arrivals, lifetimes from a distribution, a weighted flavor mix.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Synthetic {
    pub guests: u64,
    /// Arrivals per hour; or give `offered_load` instead.
    #[serde(default)]
    pub arrivals_per_hour: Option<f64>,
    /// Target mean memory demand as a fraction of the fleet's memory.
    #[serde(default)]
    pub offered_load: Option<f64>,
    pub lifetime: Lifetime,
    /// Flavor name -> weight.
    pub mix: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, tag = "distribution", rename_all = "lowercase")]
pub enum Lifetime {
    Exponential {
        mean_s: f64,
    },
    Lognormal {
        median_s: f64,
        sigma: f64,
    },
    /// A trace's own lifetimes, resampled (a twin's fallback; not in TOML).
    #[serde(skip)]
    Empirical {
        sorted_s: Vec<f64>,
    },
}

impl Lifetime {
    pub fn mean_s(&self) -> f64 {
        match self {
            Lifetime::Exponential { mean_s } => *mean_s,
            Lifetime::Lognormal { median_s, sigma } => median_s * (sigma * sigma / 2.0).exp(),
            Lifetime::Empirical { sorted_s } => {
                sorted_s.iter().sum::<f64>() / sorted_s.len().max(1) as f64
            }
        }
    }

    /// Inverse-CDF sampling from a uniform draw in (0, 1).
    fn sample(&self, u: f64) -> f64 {
        match self {
            Lifetime::Exponential { mean_s } => -mean_s * (1.0 - u).ln(),
            Lifetime::Lognormal { median_s, sigma } => {
                let z = Normal::standard().inverse_cdf(u);
                median_s * (sigma * z).exp()
            }
            // Uniform over the sample: each lifetime equally likely, so the
            // mean is the sample's.
            Lifetime::Empirical { sorted_s } => {
                let i =
                    ((u * sorted_s.len() as f64) as usize).min(sorted_s.len().saturating_sub(1));
                sorted_s.get(i).copied().unwrap_or(1.0)
            }
        }
    }
}

/// Arrivals per second: given, or from `offered_load` by Little's law
/// (concurrent memory = rate x mean lifetime x mean guest memory).
pub fn arrival_rate_per_s(syn: &Synthetic, mean_memory_mb: f64, fleet_memory_mb: f64) -> f64 {
    match (syn.arrivals_per_hour, syn.offered_load) {
        (Some(r), _) => r / 3600.0,
        (None, Some(load)) => load * fleet_memory_mb / (mean_memory_mb * syn.lifetime.mean_s()),
        (None, None) => 1.0,
    }
}

/// A synthetic workload as a stream of trace rows in arrival order.
pub struct SyntheticStream {
    rng: ChaCha8Rng,
    rate_per_s: f64,
    lifetime: Lifetime,
    /// (cumulative weight, catalog index)
    mix: Vec<(f64, usize)>,
    left: u64,
    next_row: usize,
    t: f64,
    horizon: f64,
}

impl SyntheticStream {
    /// `mean_memory_mb`: the mix's mean flavor memory; `fleet_memory_mb`: the
    /// fleet's memory, for `offered_load`.
    pub fn new(
        syn: &Synthetic,
        seed: u64,
        mix: Vec<(f64, usize)>,
        mean_memory_mb: f64,
        fleet_memory_mb: f64,
        horizon: Option<f64>,
    ) -> SyntheticStream {
        let rate_per_s = arrival_rate_per_s(syn, mean_memory_mb, fleet_memory_mb);
        let total: f64 = mix.iter().map(|m| m.0).sum();
        let mut acc = 0.0;
        let mix = mix
            .into_iter()
            .map(|(w, i)| {
                acc += w / total;
                (acc, i)
            })
            .collect();
        SyntheticStream {
            rng: ChaCha8Rng::seed_from_u64(seed),
            rate_per_s,
            lifetime: syn.lifetime.clone(),
            mix,
            left: syn.guests,
            next_row: 0,
            t: 0.0,
            horizon: horizon.unwrap_or(f64::INFINITY),
        }
    }

    fn uniform(&mut self) -> f64 {
        // (0, 1): never 0, so logs and inverse CDFs stay finite.
        loop {
            let u: f64 = self.rng.random();
            if u > 0.0 {
                return u;
            }
        }
    }
}

impl Iterator for SyntheticStream {
    type Item = Result<TraceRow, crate::workload::trace::CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let gap = -(1.0 - self.uniform()).ln() / self.rate_per_s;
        self.t += gap;
        if self.t > self.horizon {
            return None;
        }
        self.left -= 1;
        let u = self.uniform();
        let flavor = self
            .mix
            .iter()
            .find(|(c, _)| u <= *c)
            .or(self.mix.last())
            .map(|m| m.1)
            .unwrap_or(0);
        let u = self.uniform();
        let life = self.lifetime.sample(u);
        let row = self.next_row;
        self.next_row += 1;
        Some(Ok(TraceRow {
            row,
            line: 0,
            id: format!("g{row:07}"),
            arrival_s: self.t,
            departure_s: Some(self.t + life.max(1e-3)),
            flavor,
            image_props: Vec::new(),
        }))
    }
}
