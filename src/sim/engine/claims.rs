//! Claims and releases: the fit engine's cell accounting, the host-level
//! counters, the fleet totals, the host index, and where a guest's pages
//! land (or that they do not fit: an OOM kill).

use super::{Placed, SimError, Simulation};
use crate::fit::apply_usage;
use crate::request::GuestTopology;
use crate::sim::binding::Binding;
use crate::sim::memory::place;

impl Simulation {
    pub(super) fn count_claim(
        &mut self,
        host: usize,
        fitted: Option<&GuestTopology>,
        vcpus: i64,
        mem: i64,
        sign: i64,
    ) {
        let cpus = match fitted {
            Some(f) => f
                .cells
                .iter()
                .map(|c| {
                    (c.cpuset.len()
                        + c.pcpuset.len()
                        + c.cpuset_reserved.as_ref().map_or(0, |r| r.len()))
                        as i64
                })
                .sum(),
            None => vcpus,
        };
        self.claimed_cpus += sign * cpus;
        self.claimed_mem += sign * mem;
        let before = self.guests_on[host];
        self.guests_on[host] = (i64::from(before) + sign) as u32;
        match (before, self.guests_on[host]) {
            (0, 1) => self.hosts_in_use += 1,
            (1, 0) => self.hosts_in_use -= 1,
            _ => {}
        }
    }

    /// Claims (`free == false`) or releases a guest's usage on a host: the
    /// fit engine's cell accounting, the host-level counters, the fleet
    /// totals and the host's place in the index; a release also returns the
    /// guest's resident pages.
    pub(super) fn change_usage(
        &mut self,
        host: usize,
        fitted: Option<&GuestTopology>,
        vcpus: i64,
        mem: i64,
        free: bool,
        pages: Option<&[f64]>,
    ) -> Result<(), SimError> {
        let sign = if free { -1 } else { 1 };
        self.count_claim(host, fitted, vcpus, mem, sign);
        self.order.remove(&(self.order_keys[host], host));
        self.host_changed(host);
        let h = &mut self.hosts[host];
        let vcpu = match fitted {
            Some(f) => {
                apply_usage(&mut h.topo, f, free).map_err(|source| SimError::Usage {
                    host: h.name.clone(),
                    source,
                })?;
                f.cells.iter().map(|c| c.cpuset.len() as i64).sum::<i64>()
            }
            None => vcpus,
        };
        let before = h.vcpu_used;
        h.vcpu_used += sign * vcpu;
        if let Some(room) = &mut self.vcpu_room {
            room.moved(host, h.total_cpus, before, h.vcpu_used);
        }
        h.mem_used += sign * mem;
        if let Some(p) = pages {
            for (free_mb, used) in self.free_mb[host].iter_mut().zip(p) {
                *free_mb += used;
            }
        }
        self.order_keys[host] = self.order_key(host);
        self.order.insert((self.order_keys[host], host));
        Ok(())
    }

    /// Takes the guest out of `slot` and returns its claims and pages (a
    /// departure or a kill).
    pub(super) fn release(&mut self, slot: usize) -> Result<Option<Placed>, SimError> {
        let Some(p) = self.placed.get_mut(slot).and_then(Option::take) else {
            return Ok(None);
        };
        self.free_slots.push(slot);
        self.running -= 1;
        let on_host = &mut self.guests_by_host[p.host];
        if let Some(i) = on_host.iter().position(|&s| s == slot) {
            on_host.swap_remove(i);
        }
        for (load, v) in self.cpu_load[p.host].iter_mut().zip(&p.cpu_cells) {
            *load -= v;
        }
        if let Some((remote, latency)) = p.cost {
            self.running_remote -= remote;
            self.running_latency -= latency;
            self.running_costed -= 1;
        }
        self.change_usage(
            p.host,
            p.binding.fitted(),
            p.vcpu,
            p.mem,
            true,
            Some(&p.pages),
        )?;
        self.give_back_devices(p.host, &p.pci_taken);
        if let Some((alloc, usage)) = &p.nova {
            let devices = p.pci_taken.iter().map(|t| t.1).sum();
            self.nova_apply(p.host, alloc, usage, devices, -1);
        }
        Ok(Some(p))
    }

    /// Takes the guest's PCI devices on `host` as Nova's claim would: the
    /// pools its requests' NUMA policy allows for the binding's cells
    /// (any pool, if the binding keeps no cells the plan can serve).
    pub(super) fn take_devices(
        &mut self,
        host: usize,
        row: &crate::workload::model::TraceRow,
        binding: &Binding,
    ) -> Vec<(usize, i64)> {
        let requests = self.pci_requests_of(row).to_vec();
        if requests.is_empty() {
            return Vec::new();
        }
        let h = &self.hosts[host];
        let cells: Vec<i64> = match binding.fitted() {
            Some(f) => f.cells.iter().map(|c| c.id).collect(),
            None => binding
                .own_cells(&h.model)
                .into_iter()
                .map(|p| h.model.cell_ids[p])
                .collect(),
        };
        let taken = crate::fit::pci::plan(&h.pci, &requests, &cells, &h.topo.cells)
            .or_else(|| crate::fit::pci::plan(&h.pci, &requests, &[], &h.topo.cells))
            .unwrap_or_default();
        crate::fit::pci::apply_plan(&mut self.hosts[host].pci, &taken, 1);
        self.host_changed(host);
        taken
    }

    pub(super) fn give_back_devices(&mut self, host: usize, taken: &[(usize, i64)]) {
        if !taken.is_empty() {
            crate::fit::pci::apply_plan(&mut self.hosts[host].pci, taken, -1);
            self.host_changed(host);
        }
    }

    /// Where the guest's pages land: resident MB per host cell and, per
    /// page demand of its binding, MB per host cell; `None` = OOM kill.
    /// Without page modelling every guest gets an empty placement.
    pub(super) fn place_pages(
        &mut self,
        host: usize,
        binding: &Binding,
        touched_mb: f64,
    ) -> Option<(Vec<f64>, Vec<Vec<f64>>)> {
        let Some(mode) = self.config.memory_mode else {
            return Some((Vec::new(), Vec::new()));
        };
        let model = &self.hosts[host].model;
        let n = model.cell_ids.len();
        let demands = binding.demands(model, touched_mb, mode);
        let placed = place(&self.free_mb[host], &model.distances, &demands)?;
        // Only general memory is tracked as free/used; reserved hugepages are the fit's.
        let total: Vec<f64> = (0..n)
            .map(|c| {
                placed
                    .iter()
                    .zip(&demands)
                    .filter(|(_, d)| !d.reserved)
                    .map(|(p, _)| p[c])
                    .sum()
            })
            .collect();
        for (free, used) in self.free_mb[host].iter_mut().zip(&total) {
            *free -= used;
        }
        Some((total, placed))
    }
}
