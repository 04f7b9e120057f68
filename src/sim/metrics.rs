//! The metrics observer: counts, time-weighted utilisation over the
//! measured window, per-guest costs, and a time series.

use super::cost::GuestCost;
use super::engine::Simulation;
use super::observer::{Decision, Observer};
use crate::workload::model::TraceRow;
use std::collections::BTreeMap;

/// What one run measured. Means are time-weighted over `[warmup, end]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMetrics {
    /// Guests arriving in the window: `placed + rejected + killed_at_start`.
    pub guests: u64,
    pub placed: u64,
    /// No host took them (or their request was invalid: `errors` of them).
    pub rejected: u64,
    pub errors: u64,
    /// Placed, then OOM-killed at once: their pages did not fit.
    pub killed_at_start: u64,
    /// Bad trace rows skipped (`--skip-bad-rows`).
    pub skipped_rows: u64,
    pub spanning_guests: u64,
    /// PCI devices given to the guests placed in the window: all, on one of
    /// the guest's own cells, on another socket (or a node the firmware
    /// does not name); the local fraction and the mean device access factor
    /// (both 0 when no device was given).
    pub pci_devices: u64,
    pub pci_local_devices: u64,
    pub pci_remote_devices: u64,
    pub pci_local_fraction: f64,
    pub device_access_factor: f64,
    /// NUMA guests with pages outside their host cells, and how many MB in all.
    pub spilled_guests: u64,
    pub spilled_mb: f64,
    pub cpu_alloc_mean: f64,
    pub mem_alloc_mean: f64,
    pub hosts_in_use_mean: f64,
    pub remote_access_fraction: f64,
    pub mean_latency_factor: f64,
    pub p95_latency_factor: f64,
    pub rejected_by_flavor: BTreeMap<String, u64>,
    pub fit_calls: u64,
    /// Per-guest latency factors at quantiles 0, 0.01, ..., 1 (empty when no
    /// guest was costed): the distribution, small enough to keep per run.
    pub latency_quantiles: Vec<f64>,
    /// Memory growth during guests' lives (`flavors.growth`): guests killed
    /// when their new pages found no room, guests whose new pages spilled
    /// outside their cells (and how much), and the mean age at the kill.
    pub late_oom_kills: u64,
    pub late_spilled_guests: u64,
    pub late_spilled_mb: f64,
    pub mean_time_to_late_kill_s: f64,
    /// Remote fraction and latency factor averaged over running guest-time
    /// with each guest's current cost: what numad's moves and autonuma's
    /// migrations change after placement (equal to the per-guest figures
    /// weighted by lifetime for the static placements).
    pub remote_time_weighted: f64,
    pub latency_time_weighted: f64,
    /// numad's moves of running guests, and the MB migrated by numad and
    /// autonuma, also as time at the policy's migration throughput.
    pub numad_moves: u64,
    pub migrated_mb: f64,
    pub migration_s: f64,
    /// Means over the time-series samples in the window of the stranded
    /// CPUs and memory (fractions of the fleet's).
    pub stranded_cpu_mean: f64,
    pub stranded_mem_mean: f64,
    /// The time series' interval in the end (larger than asked when the
    /// window needed more than `MAX_SAMPLES` samples).
    pub timeseries_interval_s: f64,
}

/// The most time-series samples one run keeps; past it the interval doubles.
pub const MAX_SAMPLES: usize = 100_000;

/// Steps of `RunMetrics::latency_quantiles` (101 points).
pub const LATENCY_QUANTILES: usize = 100;

/// One host's stranded capacity, summed over the sampling instants of the
/// measured window (`Simulation::stranded_hosts`): integers, so the sums
/// are exact and the fleet's figures are their totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostStranded {
    /// Instants at which the host took no flavor.
    pub samples: u64,
    /// Its free CPUs and memory (MB) at those instants, summed.
    pub cpus: i64,
    pub mem_mb: i64,
}

/// What a finished collector hands back.
pub struct Finished {
    pub metrics: RunMetrics,
    pub samples: Vec<Sample>,
    /// Per host, in fleet order.
    pub stranded_by_host: Vec<HostStranded>,
    /// Sampling instants in the measured window (the divisor of every
    /// stranded mean).
    pub window_samples: u64,
}

/// One sample of the time series.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub t: f64,
    pub running: usize,
    pub cpu_alloc: f64,
    pub mem_alloc: f64,
    pub hosts_in_use: usize,
    pub placed: u64,
    pub rejected: u64,
    /// Free CPUs and memory no flavor can use (`Simulation::stranded`), as
    /// fractions of the fleet's, and the hosts they are on.
    pub stranded_cpu: f64,
    pub stranded_mem: f64,
    pub stranded_hosts: usize,
}

pub struct MetricsCollector {
    warmup: f64,
    horizon: f64,
    capacity: (f64, f64),
    last_t: f64,
    /// Claimed CPUs and memory (fractions), hosts in use, and the running
    /// guests' summed remote fraction, latency factor and count.
    last: [f64; 6],
    area: [f64; 6],
    migrate_mb_per_s: f64,
    pub metrics: RunMetrics,
    remote_sum: f64,
    device_factor_sum: f64,
    latency_sum: f64,
    latencies: Vec<f64>,
    costed: u64,
    interval: f64,
    next_sample: f64,
    pub samples: Vec<Sample>,
    stranded_by_host: Vec<HostStranded>,
    window_samples: u64,
    /// Rejected and killed guests with the reason, when asked for.
    pub rejections: Option<Vec<RejectedGuest>>,
}

/// A guest refused (or killed at placement) in the measured window, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedGuest {
    pub guest: String,
    pub arrival_s: f64,
    /// Catalog index of its flavor.
    pub flavor: usize,
    pub why: super::refusal::Rejection,
}

impl MetricsCollector {
    /// `horizon`: end of the measured window (the last event when infinite).
    pub fn new(sim: &Simulation, warmup: f64, horizon: f64, interval: f64) -> Self {
        let (cpus, mem) = sim.capacity();
        MetricsCollector {
            warmup,
            horizon,
            capacity: (cpus.max(1) as f64, mem.max(1) as f64),
            last_t: warmup,
            last: [0.0; 6],
            area: [0.0; 6],
            migrate_mb_per_s: sim.config.migrate_mb_per_s,
            metrics: RunMetrics {
                timeseries_interval_s: interval,
                ..RunMetrics::default()
            },
            remote_sum: 0.0,
            device_factor_sum: 0.0,
            latency_sum: 0.0,
            latencies: Vec::new(),
            costed: 0,
            interval,
            next_sample: 0.0,
            samples: Vec::new(),
            stranded_by_host: vec![HostStranded::default(); sim.hosts.len()],
            window_samples: 0,
            rejections: None,
        }
    }

    /// Also records each rejection with its reason.
    pub fn with_reasons(mut self) -> Self {
        self.rejections = Some(Vec::new());
        self
    }

    fn measured(&self, t: f64) -> bool {
        t >= self.warmup && t <= self.horizon
    }

    /// Integrates the previous state up to `t`, then records the new one.
    fn observe(&mut self, t: f64, sim: &Simulation) {
        let t_clip = t.min(self.horizon);
        if t_clip > self.last_t {
            self.integrate(t_clip - self.last_t);
            self.last_t = t_clip;
        }
        self.last = [
            sim.claimed_cpus as f64 / self.capacity.0,
            sim.claimed_mem as f64 / self.capacity.1,
            sim.hosts_in_use as f64,
            sim.running_remote,
            sim.running_latency,
            sim.running_costed as f64,
        ];
        // Stranded capacity costs a check of the fleet: once per sampling.
        let mut stranded: Option<Vec<(usize, i64, i64)>> = None;
        while self.interval > 0.0 && t >= self.next_sample && self.next_sample <= self.horizon {
            if self.samples.len() >= MAX_SAMPLES {
                self.thin();
            }
            let hosts = stranded.get_or_insert_with(|| sim.stranded_hosts().collect());
            let (cpus, mem_mb) = hosts
                .iter()
                .fold((0, 0), |(c, m), &(_, hc, hm)| (c + hc, m + hm));
            // Every instant of the window counts, including those the
            // time series drops when it thins.
            if self.next_sample >= self.warmup {
                self.window_samples += 1;
                for &(i, hc, hm) in hosts.iter() {
                    let h = &mut self.stranded_by_host[i];
                    h.samples += 1;
                    h.cpus += hc;
                    h.mem_mb += hm;
                }
            }
            self.samples.push(Sample {
                stranded_cpu: cpus as f64 / self.capacity.0,
                stranded_mem: mem_mb as f64 / self.capacity.1,
                stranded_hosts: hosts.len(),
                t: self.next_sample,
                running: sim.running(),
                cpu_alloc: self.last[0],
                mem_alloc: self.last[1],
                hosts_in_use: sim.hosts_in_use,
                placed: self.metrics.placed,
                rejected: self.metrics.rejected,
            });
            self.next_sample += self.interval;
        }
    }

    /// Keeps memory bounded on long windows: every other sample goes and
    /// the interval doubles (the samples kept are the new interval's).
    fn thin(&mut self) {
        let mut k = 0;
        self.samples.retain(|_| {
            k += 1;
            k % 2 == 1
        });
        self.interval *= 2.0;
        self.next_sample = self.samples.last().map_or(0.0, |s| s.t) + self.interval;
        self.metrics.timeseries_interval_s = self.interval;
    }

    fn integrate(&mut self, dt: f64) {
        for (a, v) in self.area.iter_mut().zip(&self.last) {
            *a += v * dt;
        }
    }

    /// Ends the measured window at `t` if it is still open (the last arrival
    /// of a trace), so the drain of departures afterwards is not measured.
    pub fn close_at(&mut self, t: f64) {
        self.horizon = self.horizon.min(t);
    }

    /// Closes the window at `end` (the last event time if the horizon is open).
    pub fn finish(mut self, end: f64, fit_calls: u64) -> Finished {
        let end = end.min(self.horizon);
        if end > self.last_t {
            self.integrate(end - self.last_t);
        }
        let span = end - self.warmup;
        let m = &mut self.metrics;
        if span > 0.0 {
            m.cpu_alloc_mean = self.area[0] / span;
            m.mem_alloc_mean = self.area[1] / span;
            m.hosts_in_use_mean = self.area[2] / span;
        }
        if self.area[5] > 0.0 {
            m.remote_time_weighted = self.area[3] / self.area[5];
            m.latency_time_weighted = self.area[4] / self.area[5];
        }
        m.migration_s = m.migrated_mb / self.migrate_mb_per_s.max(1e-12);
        if m.pci_devices > 0 {
            m.pci_local_fraction = m.pci_local_devices as f64 / m.pci_devices as f64;
            m.device_access_factor = self.device_factor_sum / m.pci_devices as f64;
        }
        if self.costed > 0 {
            m.remote_access_fraction = self.remote_sum / self.costed as f64;
            m.mean_latency_factor = self.latency_sum / self.costed as f64;
            self.latencies.sort_by(f64::total_cmp);
            let idx = ((self.latencies.len() as f64 * 0.95).ceil() as usize)
                .clamp(1, self.latencies.len())
                - 1;
            m.p95_latency_factor = self.latencies[idx];
            m.latency_quantiles = (0..=LATENCY_QUANTILES)
                .map(|q| {
                    let i = ((self.latencies.len() as f64 * q as f64 / LATENCY_QUANTILES as f64)
                        .ceil() as usize)
                        .clamp(1, self.latencies.len())
                        - 1;
                    self.latencies[i]
                })
                .collect();
        }
        m.fit_calls = fit_calls;
        if self.window_samples > 0 {
            let n = self.window_samples as f64;
            let (cpus, mem) = self
                .stranded_by_host
                .iter()
                .fold((0i64, 0i64), |(c, m), h| (c + h.cpus, m + h.mem_mb));
            m.stranded_cpu_mean = cpus as f64 / self.capacity.0 / n;
            m.stranded_mem_mean = mem as f64 / self.capacity.1 / n;
        }
        Finished {
            metrics: self.metrics,
            samples: self.samples,
            stranded_by_host: self.stranded_by_host,
            window_samples: self.window_samples,
        }
    }
}

impl Observer for MetricsCollector {
    fn arrival(&mut self, t: f64, row: &TraceRow, decision: &Decision, sim: &Simulation) {
        if self.measured(t) {
            let m = &mut self.metrics;
            m.guests += 1;
            match decision {
                Decision::Placed { .. } => m.placed += 1,
                Decision::Rejected { error } => {
                    m.rejected += 1;
                    m.errors += u64::from(error.is_some());
                    *m.rejected_by_flavor
                        .entry(sim.catalog().flavors[row.flavor].name.clone())
                        .or_default() += 1;
                }
                Decision::OomKilled { .. } => m.killed_at_start += 1,
            }
        }
        self.observe(t, sim);
    }

    fn wants_reasons(&self) -> bool {
        self.rejections.is_some()
    }

    fn rejection(&mut self, t: f64, row: &TraceRow, why: &super::refusal::Rejection) {
        if !self.measured(t) {
            return;
        }
        if let Some(list) = &mut self.rejections {
            list.push(RejectedGuest {
                guest: row.id.clone(),
                arrival_s: t,
                flavor: row.flavor,
                why: why.clone(),
            });
        }
    }

    fn devices(&mut self, t: f64, _row: &TraceRow, used: &super::cost::DeviceUse) {
        if self.measured(t) {
            self.metrics.pci_devices += used.devices as u64;
            self.metrics.pci_local_devices += used.local as u64;
            self.metrics.pci_remote_devices += used.remote as u64;
            self.device_factor_sum += used.factor_sum;
        }
    }

    fn guest_cost(&mut self, t: f64, _row: &TraceRow, cost: &GuestCost) {
        if self.measured(t) {
            self.remote_sum += cost.remote;
            self.latency_sum += cost.latency;
            self.latencies.push(cost.latency);
            self.costed += 1;
            self.metrics.spanning_guests += u64::from(cost.spans);
            self.metrics.spilled_guests += u64::from(cost.spilled_mb > 0.0);
            self.metrics.spilled_mb += cost.spilled_mb;
        }
    }

    fn growth(
        &mut self,
        t: f64,
        _row: usize,
        outcome: super::observer::GrowthOutcome,
        sim: &Simulation,
    ) {
        // A kill frees its claims: the time-weighted state changes here.
        if t <= self.horizon {
            self.observe(t, sim);
        }
        if !self.measured(t) {
            return;
        }
        let m = &mut self.metrics;
        match outcome {
            super::observer::GrowthOutcome::Killed { after_s } => {
                // Running mean of the age at the kill.
                m.late_oom_kills += 1;
                m.mean_time_to_late_kill_s +=
                    (after_s - m.mean_time_to_late_kill_s) / m.late_oom_kills as f64;
            }
            super::observer::GrowthOutcome::Grew { spilled_mb } if spilled_mb > 0.0 => {
                m.late_spilled_guests += 1;
                m.late_spilled_mb += spilled_mb;
            }
            super::observer::GrowthOutcome::Grew { .. } => {}
        }
    }

    fn rebalance(
        &mut self,
        t: f64,
        _row: usize,
        outcome: super::observer::Rebalanced,
        sim: &Simulation,
    ) {
        if self.measured(t) {
            self.metrics.numad_moves += u64::from(outcome.moved);
            self.metrics.migrated_mb += outcome.migrated_mb;
        }
        if t <= self.horizon {
            self.observe(t, sim);
        }
    }

    fn departure(&mut self, t: f64, _row: usize, sim: &Simulation) {
        if t <= self.horizon {
            self.observe(t, sim);
        }
    }
}
