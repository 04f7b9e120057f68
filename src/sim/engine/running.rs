//! Running guests after placement: memory growth (and late OOM kills),
//! rebalancing steps and host scans, and the cost updates they cause.

use super::{HOST_SCAN, Simulation};
use super::{OrderedTime, SimError};
use crate::sim::cost::price;
use crate::sim::memory::{MemoryMode, place};
use crate::sim::observer::{GrowthOutcome, Observer, Rebalanced};
use crate::sim::policy::{HostView, RunningGuest, Schedule, Step};
use crate::workload::model::TraceRow;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

impl Simulation {
    /// When a guest's memory grows, if its flavor grows and before it leaves.
    pub(super) fn growth_time(&self, row: &TraceRow) -> Option<f64> {
        let g = self.config.growth.get(row.flavor)?.as_ref()?;
        let touched = self.touched(row.flavor);
        if g.to <= touched || self.config.memory_mode.is_none() {
            return None;
        }
        // Its own stream, so growth never shifts the scheduler's random draws.
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.config.seed ^ (row.row as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let u: f64 = rng.random();
        let t = row.arrival_s - g.mean_delay_s * (1.0 - u).ln();
        row.departure_s.is_none_or(|d| t < d).then_some(t)
    }

    /// The guest in `slot` touches more memory: place the new pages as its
    /// binding and memory mode place pages, or kill it when they do not fit.
    pub(super) fn grow(&mut self, slot: usize) -> Result<GrowthOutcome, SimError> {
        let Some(p) = self.placed.get(slot).and_then(Option::as_ref) else {
            return Ok(GrowthOutcome::Grew { spilled_mb: 0.0 });
        };
        let (host, flavor) = (p.host, p.flavor);
        let touched = self.touched(flavor);
        let to = self.config.growth[flavor]
            .as_ref()
            .map_or(touched, |g| g.to);
        let extra = (to - touched).max(0.0) * self.catalog.flavors[flavor].memory_mb as f64;
        let mode = self.config.memory_mode.unwrap_or(MemoryMode::Strict);
        let model = self.hosts[host].model.clone();
        let demands: Vec<_> = p
            .binding
            .demands(&model, extra, mode)
            .into_iter()
            // Hugepage-backed cells were reserved whole by the fit: nothing grows there.
            .filter(|d| !d.reserved)
            .collect();
        let own = p.binding.own_cells(&model);
        match place(&self.free_mb[host], &model.distances, &demands) {
            Some(added) => {
                let mut spilled_mb = 0.0;
                self.host_changed(host);
                let p = self.placed[slot].as_mut().expect("checked above");
                for placed in &added {
                    for (c, mb) in placed.iter().enumerate() {
                        self.free_mb[host][c] -= mb;
                        if let Some(x) = p.pages.get_mut(c) {
                            *x += mb;
                        }
                        if !own.contains(&c) {
                            spilled_mb += mb;
                        }
                    }
                }
                // Its new pages change what it costs (guests without a NUMA topology).
                self.recost(slot);
                Ok(GrowthOutcome::Grew { spilled_mb })
            }
            None => {
                let arrival_s = self.release(slot)?.map_or(self.now, |p| p.arrival_s);
                Ok(GrowthOutcome::Killed {
                    after_s: self.now - arrival_s,
                })
            }
        }
    }

    /// Records that a host's claims, pages or loads changed; under host
    /// scans, makes sure a scan of the host is due at the next wake-up.
    pub(super) fn host_changed(&mut self, host: usize) {
        self.host_version[host] += 1;
        let Schedule::HostScans { interval_s } = self.schedule else {
            return;
        };
        if self.scan_pending[host] {
            return;
        }
        let next = ((self.now / interval_s).floor() + 1.0) * interval_s;
        self.scan_pending[host] = true;
        self.departures
            .push((OrderedTime(next), u32::MAX, HOST_SCAN | host as u32));
    }

    /// A wake-up steps the guests of a host that changed, in trace order.
    pub(super) fn scan_host(&mut self, host: usize, obs: &mut dyn Observer) {
        self.scan_pending[host] = false;
        let mut guests: Vec<(usize, usize)> = self.guests_by_host[host]
            .iter()
            .filter_map(|&slot| self.placed[slot].as_ref().map(|p| (p.row, slot)))
            .collect();
        guests.sort_unstable();
        for (row, slot) in guests {
            let (outcome, _) = self.rebalance(slot);
            obs.rebalance(self.now, row, outcome, self);
        }
    }

    /// One rebalancing step for the guest in `slot`: what it did, and
    /// whether further steps are due.
    pub(super) fn rebalance(&mut self, slot: usize) -> (Rebalanced, bool) {
        let none = Rebalanced {
            moved: false,
            migrated_mb: 0.0,
        };
        let Some(p) = self.placed.get_mut(slot).and_then(Option::as_mut) else {
            return (none, false);
        };
        let host = p.host;
        if let Schedule::HostScans { .. } = self.schedule {
            let version = self.host_version[host];
            if p.advised_version == Some(version) {
                return (none, true);
            }
            p.advised_version = Some(version);
        }
        let p = self.placed[slot].as_ref().expect("checked above");
        // The host without the guest's own vCPUs.
        let mut load = self.cpu_load[host].clone();
        for (l, v) in load.iter_mut().zip(&p.cpu_cells) {
            *l -= v;
        }
        let view = HostView {
            cpu_load: &load,
            ..self.host_view(host)
        };
        let guest = RunningGuest {
            binding: &p.binding,
            pages: &p.pages,
            vcpus: p.vcpu,
            scan_pos_mb: p.scan_pos_mb,
        };
        let change = match self.config.policy.rebalance(&view, &guest) {
            Step::Stay => return (none, true),
            Step::Done => return (none, false),
            Step::Change(change) => change,
        };
        self.host_changed(host);
        let p = self.placed[slot].as_mut().expect("checked above");
        let mut migrated_mb = 0.0;
        for (c, (old, new)) in p.pages.iter().zip(&change.pages).enumerate() {
            migrated_mb += (old - new).max(0.0);
            self.free_mb[host][c] += old - new;
        }
        for (c, (old, new)) in p.cpu_cells.iter().zip(&change.cpu_cells).enumerate() {
            self.cpu_load[host][c] += new - old;
        }
        p.pages = change.pages;
        p.cpu_cells = change.cpu_cells;
        p.scan_pos_mb = change.scan_pos_mb;
        p.binding = change.binding;
        self.recost(slot);
        let moved = Rebalanced {
            moved: change.moved,
            migrated_mb,
        };
        (moved, !change.last)
    }

    /// Recomputes a running plain guest's cost from where it runs now.
    pub(super) fn recost(&mut self, slot: usize) {
        let Some(p) = self.placed.get(slot).and_then(Option::as_ref) else {
            return;
        };
        if p.cost.is_none() || p.binding.fitted().is_some() {
            return;
        }
        let cost = price(
            &self.hosts[p.host].model,
            &p.binding,
            std::slice::from_ref(&p.pages),
            self.config.numa_aware_guests,
            &self.config.calibration,
        );
        let p = self.placed[slot].as_mut().expect("checked above");
        if let Some((remote, latency)) = p.cost {
            self.running_remote += cost.remote - remote;
            self.running_latency += cost.latency - latency;
        }
        p.cost = Some((cost.remote, cost.latency));
    }
}
