//! Statistics over replications: mean, sample standard deviation and the
//! two-sided 95% confidence interval of the mean (Student's t).

use statrs::distribution::{ContinuousCDF, StudentsT};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanCi {
    pub n: usize,
    pub mean: f64,
    /// Sample standard deviation (n - 1); NaN for a single value.
    pub std: f64,
    /// Bounds of the 95% interval; both equal the mean for a single value
    /// (what capacity targets compare it with); reports show `interval`.
    pub low: f64,
    pub high: f64,
}

impl MeanCi {
    /// The 95% interval, or `None` for a single run: one value (a single
    /// seed, or a run nothing in which depends on the seed) has no spread
    /// to estimate, and is not shown as a zero-width interval.
    pub fn interval(&self) -> Option<(f64, f64)> {
        (self.n >= 2).then_some((self.low, self.high))
    }
}

/// Summarises replications. `None` for no values or a non-finite one.
pub fn mean_ci95(values: &[f64]) -> Option<MeanCi> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n == 1 {
        return Some(MeanCi {
            n,
            mean,
            std: f64::NAN,
            low: mean,
            high: mean,
        });
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    let std = var.sqrt();
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
        .expect("n >= 2 gives positive degrees of freedom")
        .inverse_cdf(0.975);
    let half = t * std / (n as f64).sqrt();
    Some(MeanCi {
        n,
        mean,
        std,
        low: mean - half,
        high: mean + half,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_textbook_t_interval() {
        // n = 5: t(0.975, 4) = 2.776445; mean 3, sd sqrt(2.5).
        let ci = mean_ci95(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert!((ci.mean - 3.0).abs() < 1e-12);
        assert!((ci.std - 2.5f64.sqrt()).abs() < 1e-12);
        let half = 2.776445 * 2.5f64.sqrt() / 5f64.sqrt();
        assert!((ci.high - (3.0 + half)).abs() < 1e-5, "{ci:?}");
        assert!((ci.low - (3.0 - half)).abs() < 1e-5);
    }

    #[test]
    fn degenerate_inputs() {
        assert!(mean_ci95(&[]).is_none());
        assert!(mean_ci95(&[1.0, f64::NAN]).is_none());
        let one = mean_ci95(&[0.25]).unwrap();
        assert_eq!((one.low, one.high), (0.25, 0.25));
        let same = mean_ci95(&[2.0, 2.0, 2.0]).unwrap();
        assert_eq!((same.low, same.high), (2.0, 2.0));
    }
}
