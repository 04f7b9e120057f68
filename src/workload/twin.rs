//! Synthetic twins of traces: a workload with a trace's arrival process,
//! lifetime distribution and flavor mix, scaled by a load factor, so a
//! planner can ask "what if our traffic doubles". Pure: takes the trace's
//! rows, returns the fitted model.
//!
//! - Arrivals: Poisson at the trace's mean rate (the MLE: arrivals over span).
//! - Lifetimes of guests that leave (censored ones are left out): an
//!   exponential and a lognormal are fitted by maximum likelihood; the one
//!   with the smaller Kolmogorov-Smirnov distance is kept if it passes the
//!   test at 1% and its mean is within 2% of the sample mean; otherwise the
//!   empirical distribution is resampled (heavy-tailed real traces end here).
//! - Flavor mix: the trace's counts per flavor.

use crate::workload::synthetic::{Lifetime, Synthetic};
use crate::workload::trace::{Catalog, CsvError, TraceRow};
use statrs::distribution::{ContinuousCDF, Exp, LogNormal};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Twin {
    pub workload: Synthetic,
    /// The trace's own figures, for the report and the tests.
    pub source_guests: u64,
    pub source_rate_per_hour: f64,
    pub source_mean_lifetime_s: f64,
    /// Which lifetime model won, with its KS distance.
    pub lifetime_model: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    #[error(transparent)]
    Trace(#[from] CsvError),
    #[error("{0}")]
    TooSmall(String),
}

/// Kolmogorov-Smirnov distance between the sorted sample and a CDF.
fn ks_distance(sorted: &[f64], cdf: impl Fn(f64) -> f64) -> f64 {
    let n = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = cdf(x);
            (f - i as f64 / n).abs().max(((i + 1) as f64 / n - f).abs())
        })
        .fold(0.0, f64::max)
}

/// Asymptotic p-value of the KS statistic (Kolmogorov's series).
fn ks_p_value(d: f64, n: usize) -> f64 {
    let n = n as f64;
    let lambda = (n.sqrt() + 0.12 + 0.11 / n.sqrt()) * d;
    let mut sum = 0.0;
    for k in 1..=100 {
        let k = f64::from(k);
        let term = 2.0 * (-1.0f64).powf(k - 1.0) * (-2.0 * k * k * lambda * lambda).exp();
        sum += term;
        if term.abs() < 1e-12 {
            break;
        }
    }
    sum.clamp(0.0, 1.0)
}

/// Fits the twin of a trace. `load` scales the arrival rate; `guests`
/// defaults to the trace's count times `load`.
pub fn fit(
    rows: impl Iterator<Item = Result<TraceRow, CsvError>>,
    catalog: &Catalog,
    load: f64,
    guests: Option<u64>,
) -> Result<Twin, TwinError> {
    let mut n = 0u64;
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut lifetimes = Vec::new();
    let mut mix: BTreeMap<String, f64> = BTreeMap::new();
    for row in rows {
        let row = row?;
        n += 1;
        first = first.min(row.arrival_s);
        last = last.max(row.arrival_s);
        if let Some(d) = row.departure_s {
            lifetimes.push(d - row.arrival_s);
        }
        *mix.entry(catalog.flavors[row.flavor].name.clone())
            .or_default() += 1.0;
    }
    if n < 2 || last <= first {
        return Err(TwinError::TooSmall(format!(
            "{n} arrivals over {:.0} s: a twin needs at least two arrivals at different times",
            (last - first).max(0.0)
        )));
    }
    if lifetimes.len() < 10 {
        return Err(TwinError::TooSmall(format!(
            "{} guests with a departure: a lifetime fit needs at least 10",
            lifetimes.len()
        )));
    }
    let rate_per_s = (n - 1) as f64 / (last - first);
    lifetimes.sort_by(f64::total_cmp);
    let m = lifetimes.len() as f64;
    let mean = lifetimes.iter().sum::<f64>() / m;
    let logs: Vec<f64> = lifetimes.iter().map(|l| l.max(1e-3).ln()).collect();
    let mu = logs.iter().sum::<f64>() / m;
    let sigma = (logs.iter().map(|x| (x - mu).powi(2)).sum::<f64>() / m).sqrt();
    let mut candidates: Vec<(f64, Lifetime, String)> = Vec::new();
    if let Ok(exp) = Exp::new(1.0 / mean) {
        let d = ks_distance(&lifetimes, |x| exp.cdf(x));
        candidates.push((
            d,
            Lifetime::Exponential { mean_s: mean },
            format!("exponential(mean {mean:.0} s)"),
        ));
    }
    if sigma > 0.0
        && let Ok(ln) = LogNormal::new(mu, sigma)
    {
        let d = ks_distance(&lifetimes, |x| ln.cdf(x));
        candidates.push((
            d,
            Lifetime::Lognormal {
                median_s: mu.exp(),
                sigma,
            },
            format!("lognormal(median {:.0} s, sigma {sigma:.2})", mu.exp()),
        ));
    }
    candidates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let chosen = candidates.into_iter().next().filter(|(d, l, _)| {
        ks_p_value(*d, lifetimes.len()) >= 0.01 && (l.mean_s() - mean).abs() <= 0.02 * mean
    });
    let (lifetime, lifetime_model) = match chosen {
        Some((d, l, name)) => (l, format!("{name}, KS distance {d:.3}")),
        None => (
            Lifetime::Empirical {
                sorted_s: lifetimes.clone(),
            },
            format!(
                "empirical ({} lifetimes, mean {mean:.0} s; no exponential or lognormal fits)",
                lifetimes.len()
            ),
        ),
    };
    Ok(Twin {
        workload: Synthetic {
            guests: guests.unwrap_or(((n as f64) * load).round() as u64),
            arrivals_per_hour: Some(rate_per_s * load * 3600.0),
            offered_load: None,
            lifetime,
            mix,
        },
        source_guests: n,
        source_rate_per_hour: rate_per_s * 3600.0,
        source_mean_lifetime_s: mean,
        lifetime_model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ks_of_a_perfect_fit_is_small_and_of_a_bad_one_large() {
        let sample: Vec<f64> = (1..=1000).map(|i| i as f64 / 1001.0).collect();
        assert!(ks_distance(&sample, |x| x) < 0.002);
        assert!(ks_distance(&sample, |x| x * x) > 0.2);
        assert!(ks_p_value(0.01, 1000) > 0.5);
        assert!(ks_p_value(0.2, 1000) < 1e-6);
    }
}
