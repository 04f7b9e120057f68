//! `strategy = "nova"`: the host chosen by Nova's scheduling path
//! (`sim::scheduler`): Placement's candidates, the enabled filters (the
//! NUMA filter is the policy's bind, the one host check's fit), the
//! weighers and the seeded choice; then Placement's allocation and the
//! resource tracker's usage, kept beside the fit engine's accounting.

use super::{SimError, Simulation};
use crate::fit::FitError;
use crate::request::GuestTopology;
use crate::sim::binding::Binding;
use crate::sim::explain::Weighed;
use crate::sim::policy::GuestView;
use crate::sim::refusal::Refusal;
use crate::sim::scheduler::placement::{CLASSES, GuestUsage, NovaHost, ResourceRequest};
use crate::sim::scheduler::select;
use crate::sim::scheduler::{Filter, HostIndex, PyRandom, SchedulerConfig, Weighing};
use crate::workload::model::TraceRow;
use std::collections::HashMap;
use std::sync::Arc;

/// Nova's view of the fleet during a run.
#[derive(Clone)]
pub(super) struct NovaState {
    pub config: Arc<SchedulerConfig>,
    pub weighing: Weighing,
    pub hosts: Vec<NovaHost>,
    /// `None` when Placement truncates its candidates (the full scan then).
    pub index: Option<HostIndex>,
    pub rng: PyRandom,
}

/// A host chosen by Nova, with what its claim records.
pub(super) struct NovaPick {
    pub host: usize,
    pub binding: Binding,
    pub alloc: [i64; 4],
    pub usage: GuestUsage,
}

/// One host's outcome for one guest in Nova's path.
pub(super) enum Outcome {
    Passes(Binding),
    Refused(Refusal),
}

impl NovaState {
    /// `pci_changes`: some guest asks for PCI devices (free counts change).
    pub fn new(
        config: Arc<SchedulerConfig>,
        hosts: Vec<NovaHost>,
        seed: u64,
        pci_changes: bool,
    ) -> NovaState {
        // Flavors carry no disk here, so free disk never changes in a run.
        let weighing = Weighing::new(&config).without_constant(&hosts, false, pci_changes);
        let index = (!config.scans_all(hosts.len())).then(|| HostIndex::new(&weighing, &hosts));
        NovaState {
            weighing,
            index,
            hosts,
            rng: PyRandom::new(seed),
            config,
        }
    }
}

impl Simulation {
    /// The resources `resources_from_request_spec` asks for the row's guest.
    fn nova_request(
        &self,
        config: &SchedulerConfig,
        row: &TraceRow,
        request: Option<&GuestTopology>,
    ) -> ResourceRequest {
        let flavor = &self.catalog.flavors[row.flavor];
        let socket = flavor.spec("hw:pci_numa_affinity_policy") == Some("socket")
            || row
                .image_props
                .iter()
                .any(|(k, v)| k == "hw_pci_numa_affinity_policy" && v == "socket");
        let usage = GuestUsage {
            vcpus: flavor.vcpus,
            memory_mb: flavor.memory_mb,
            ..GuestUsage::default()
        };
        ResourceRequest::new(usage, request, socket, config)
    }

    /// Host `i` through Placement's check and the enabled filters.
    fn nova_outcome(
        &self,
        nova: &NovaState,
        i: usize,
        req: &ResourceRequest,
        guest: &GuestView,
        fit_calls: &mut u64,
    ) -> Result<Outcome, FitError> {
        let h = &nova.hosts[i];
        if req.allocation(h).is_none() {
            return Ok(Outcome::Refused(placement_refusal(h, req)));
        }
        let mut binding = None;
        for &f in &nova.config.filters {
            let refused = match f {
                Filter::Compute => h.compute.disabled || h.compute.forced_down,
                Filter::NumInstances => h.num_instances >= nova.config.max_instances_per_host,
                Filter::IoOps => nova.config.max_io_ops_per_host <= 0,
                Filter::PciPassthrough => {
                    if let Some(r) = super::pci_refusal(&self.hosts[i], guest) {
                        return Ok(Outcome::Refused(r));
                    }
                    false
                }
                Filter::NumaTopology => match self.bind_nova(i, guest, fit_calls)? {
                    Ok(b) => {
                        binding = Some(b);
                        false
                    }
                    Err(r) => return Ok(Outcome::Refused(r)),
                },
                _ => false,
            };
            if refused {
                return Ok(Outcome::Refused(Refusal::Filter { filter: f.name() }));
            }
        }
        // Without the NUMA filter the compute claim fits the guest after the
        // choice; a host whose fit fails then fails the build (see `nova_choose`).
        Ok(Outcome::Passes(match binding {
            Some(b) => b,
            None => Binding::Float,
        }))
    }

    fn bind_nova(
        &self,
        i: usize,
        guest: &GuestView,
        fit_calls: &mut u64,
    ) -> Result<Result<Binding, Refusal>, FitError> {
        if guest.request.filter(|_| self.numa_policy).is_some() {
            *fit_calls += 1;
        }
        self.config.policy.bind(&self.host_view(i), guest)
    }

    /// Nova's choice for the row's guest; `None` when no host survives or
    /// the compute claim fails. With `refused`, each host's refusal when
    /// the guest is rejected.
    pub(super) fn nova_choose(
        &mut self,
        row: &TraceRow,
        request: Option<&GuestTopology>,
        fit_calls: &mut u64,
        refused: Option<&mut Vec<(usize, Refusal)>>,
    ) -> Result<Option<NovaPick>, SimError> {
        let mut nova = self.nova.take().expect("nova strategy");
        let result = self.nova_choose_with(&mut nova, row, request, fit_calls, refused);
        self.nova = Some(nova);
        result
    }

    fn nova_choose_with(
        &self,
        nova: &mut NovaState,
        row: &TraceRow,
        request: Option<&GuestTopology>,
        fit_calls: &mut u64,
        refused: Option<&mut Vec<(usize, Refusal)>>,
    ) -> Result<Option<NovaPick>, SimError> {
        let req = self.nova_request(&nova.config, row, request);
        let guest = self.guest_view(row, request);
        let mut tested: HashMap<usize, Option<Binding>> = HashMap::new();
        let mut error: Option<FitError> = None;
        let mut passes = |i: usize| -> bool {
            if let Some(t) = tested.get(&i) {
                return t.is_some();
            }
            let outcome = match self.nova_outcome(nova, i, &req, &guest, fit_calls) {
                Ok(Outcome::Passes(b)) => Some(b),
                Ok(Outcome::Refused(_)) => None,
                Err(e) => {
                    error.get_or_insert(e);
                    None
                }
            };
            let pass = outcome.is_some();
            tested.insert(i, outcome);
            pass
        };
        let queries: Vec<_> = std::iter::once(req.primary).chain(req.fallback).collect();
        // Pinned guest cells need a host cell with that many free pCPUs
        // (when the NUMA filter runs Nova's fit).
        let pins = self.numa_policy && nova.config.filters.contains(&Filter::NumaTopology);
        let cell_pcpus = request
            .filter(|_| pins)
            .and_then(|t| t.cells.iter().map(|c| c.pcpuset.len() as i64).max())
            .unwrap_or(0);
        let cell_hugepages_mb = request
            .filter(|_| pins)
            .and_then(|t| {
                t.cells
                    .iter()
                    .filter(|c| {
                        c.pagesize
                            .is_some_and(|s| s == crate::request::MEMPAGES_LARGE || s > 4)
                    })
                    .map(|c| c.memory_mb)
                    .max()
            })
            .unwrap_or(0);
        // A floating guest cell fits only where `usage + memory <= memory *
        // ratio` (checked when the fit checks cell memory and has limits).
        let cell_memory_mb = request
            .filter(|_| pins && self.checks_cell_memory() && self.config.limits.is_some())
            .and_then(|t| {
                t.cells
                    .iter()
                    .filter(|c| crate::request::CpuPolicy::floats(c.cpu_policy))
                    .filter(|c| !crate::request::CpuPolicy::pins(c.cpu_policy))
                    .map(|c| c.memory_mb)
                    .max()
            })
            .unwrap_or(0);
        // A pinned small-page guest cell takes its memory from one host
        // cell's smallest pages, without overcommit.
        let cell_pinned_memory_mb = request
            .filter(|_| pins && self.checks_cell_memory())
            .and_then(|t| {
                t.cells
                    .iter()
                    .filter(|c| crate::request::CpuPolicy::pins(c.cpu_policy))
                    .filter(|c| matches!(c.pagesize, None | Some(0)))
                    .map(|c| c.memory_mb)
                    .max()
            })
            .unwrap_or(0);
        let need = crate::sim::scheduler::Need {
            queries: &queries,
            cell_pcpus,
            cell_hugepages_mb,
            cell_memory_mb,
            cell_pinned_memory_mb,
        };
        let (_, ranked) = match &nova.index {
            Some(index) => index.rank(&nova.weighing, &nova.config, &need, &mut passes),
            None => {
                let survivors = self.nova_survivors(nova, &req, &mut passes);
                select::rank_all(&nova.weighing, &nova.hosts, &survivors)
            }
        };
        if let Some(e) = error {
            return Err(e.into());
        }
        if ranked.is_empty() {
            if let Some(out) = refused {
                for i in 0..self.hosts.len() {
                    if let Outcome::Refused(r) = self.nova_outcome(nova, i, &req, &guest, &mut 0)? {
                        out.push((i, r));
                    }
                }
            }
            return Ok(None);
        }
        let choice = select::choose(&nova.config, &ranked, &mut nova.rng);
        let host = choice.host;
        let alloc = req
            .allocation(&nova.hosts[host])
            .expect("a survivor is a Placement candidate");
        let binding = match tested.remove(&host).flatten() {
            Some(b) if nova.config.filters.contains(&Filter::NumaTopology) => b,
            // The compute claim's fit.
            _ => match self.bind_nova(host, &guest, fit_calls)? {
                Ok(b) => b,
                Err(r) => {
                    if let Some(out) = refused {
                        out.push((host, r));
                    }
                    return Ok(None);
                }
            },
        };
        Ok(Some(NovaPick {
            host,
            binding,
            alloc,
            usage: req.usage,
        }))
    }

    /// The survivors in fleet order, as Nova finds them: each query's
    /// candidates (the first `max_placement_results`), merged, then the filters.
    fn nova_survivors(
        &self,
        nova: &NovaState,
        req: &ResourceRequest,
        passes: &mut impl FnMut(usize) -> bool,
    ) -> Vec<usize> {
        let limit = nova.config.max_placement_results.unwrap_or(usize::MAX);
        let mut candidate = vec![false; nova.hosts.len()];
        for query in std::iter::once(&req.primary).chain(req.fallback.as_ref()) {
            let mut taken = 0;
            for (i, h) in nova.hosts.iter().enumerate() {
                if taken >= limit {
                    break;
                }
                if h.candidate(query) {
                    candidate[i] = true;
                    taken += 1;
                }
            }
        }
        (0..nova.hosts.len())
            .filter(|&i| candidate[i] && passes(i))
            .collect()
    }

    /// Records a claim (`sign` 1) or its release (-1) in Nova's view.
    pub(super) fn nova_apply(
        &mut self,
        host: usize,
        alloc: &[i64; 4],
        usage: &GuestUsage,
        devices: i64,
        sign: i64,
    ) {
        let topo = &self.hosts[host].topo;
        let (pcpus, hugepages, memory) = (
            crate::sim::scheduler::placement::cell_pcpus_free(topo),
            crate::sim::scheduler::placement::cell_hugepages_free_mb(topo),
            crate::sim::scheduler::placement::cell_memory_free_mb(
                topo,
                self.limits_of(&self.hosts[host])
                    .map_or(f64::INFINITY, |l| l.ram_allocation_ratio),
            ),
        );
        let pinned_memory = crate::sim::scheduler::placement::cell_pinned_memory_free_mb(topo);
        if let Some(nova) = self.nova.as_mut() {
            nova.hosts[host].apply(alloc, usage, devices, sign);
            nova.hosts[host].cell_pcpus_free = pcpus;
            nova.hosts[host].cell_hugepages_free_mb = hugepages;
            nova.hosts[host].cell_memory_free_mb = memory;
            nova.hosts[host].cell_pinned_memory_free_mb = pinned_memory;
            if let Some(index) = nova.index.as_mut() {
                index.update(host, &nova.hosts[host]);
            }
        }
    }

    /// Every host's verdict for the row's guest in Nova's path (fleet
    /// order) and the survivors' ranking with each weigher's normalised
    /// score; changes nothing. `None` unless the strategy is Nova's.
    pub(super) fn explain_nova(
        &self,
        guest: &GuestView,
    ) -> Option<(Vec<crate::sim::policy::Verdict>, Weighed)> {
        let nova = self.nova.as_ref()?;
        let req = self.nova_request(&nova.config, guest.row, guest.request);
        let verdicts: Vec<crate::sim::policy::Verdict> = (0..self.hosts.len())
            .map(|i| match self.nova_outcome(nova, i, &req, guest, &mut 0) {
                Ok(Outcome::Passes(b)) => Ok(b),
                Ok(Outcome::Refused(r)) => Err(r),
                // An error of the fit engine counts as no fit here.
                Err(_) => Err(Refusal::NoFit(
                    crate::sim::refusal::FitShortfall::Unexplained,
                )),
            })
            .collect();
        let mut passes = |i: usize| verdicts[i].is_ok();
        let survivors = self.nova_survivors(nova, &req, &mut passes);
        let (norms, ranked) = select::rank_all(&nova.weighing, &nova.hosts, &survivors);
        let ranked = ranked
            .into_iter()
            .map(|(h, w)| {
                let scores = if norms.is_empty() {
                    Vec::new()
                } else {
                    nova.weighing.scores(&norms, &nova.hosts[h])
                };
                (h, w, scores)
            })
            .collect();
        let weighed = Weighed {
            weighers: nova
                .weighing
                .terms
                .iter()
                .map(|t| t.weigher.name())
                .collect(),
            multipliers: nova.weighing.terms.iter().map(|t| t.multiplier).collect(),
            ranked,
        };
        Some((verdicts, weighed))
    }

    /// Nova's view of host `i` (for tests and reports).
    pub fn nova_host(&self, i: usize) -> Option<&NovaHost> {
        self.nova.as_ref().map(|n| &n.hosts[i])
    }
}

/// Why Placement does not return a host: the first requirement it fails.
fn placement_refusal(h: &NovaHost, req: &ResourceRequest) -> Refusal {
    let q = &req.primary;
    if h.compute.disabled {
        return Refusal::PlacementTrait {
            name: "COMPUTE_STATUS_DISABLED",
            required: false,
        };
    }
    if q.unsatisfiable_trait {
        return Refusal::PlacementTrait {
            name: "COMPUTE_SOCKET_PCI_NUMA_AFFINITY",
            required: true,
        };
    }
    if let Some(need) = q.needs_hyperthreading
        && need != h.hyperthreading
    {
        return Refusal::PlacementTrait {
            name: "HW_CPU_HYPERTHREADING",
            required: need,
        };
    }
    for (class, &amount) in q.amounts.iter().enumerate() {
        if amount != 0 && !h.inventory[class].is_some_and(|inv| inv.fits(h.used[class], amount)) {
            return Refusal::Placement {
                class: CLASSES[class],
                asked: amount,
            };
        }
    }
    // The primary query fits but the guest is refused: only the fallback
    // decides, and it failed on VCPU.
    Refusal::Placement {
        class: CLASSES[0],
        asked: req.usage.vcpus,
    }
}
