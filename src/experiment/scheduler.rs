//! A scenario's `[scheduler]` section (and a policy's own
//! `[policies.scheduler]`): Nova's scheduler options under Nova's names.
//! Every value is checked while the TOML is read, so a bad one (an
//! unknown filter or weigher, a subset size below 1, a NaN multiplier) is
//! refused with its key and line.

use crate::sim::scheduler::{Filter, SchedulerConfig, Weigher};
use serde::{Deserialize, Deserializer};
use std::num::NonZeroUsize;

/// Nova's scheduler options; absent keys keep Nova 34's defaults (or, in
/// a policy's table, the scenario's `[scheduler]`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSpec {
    /// `[filter_scheduler] enabled_filters`: filter class names, in order.
    /// Default: ComputeFilter, ComputeCapabilitiesFilter,
    /// ImagePropertiesFilter, ServerGroupAntiAffinityFilter,
    /// ServerGroupAffinityFilter, NUMATopologyFilter.
    pub enabled_filters: Option<Vec<FilterName>>,
    /// `[filter_scheduler] weight_classes`: weigher class names, or `all`
    /// (the default: every weigher, summed in module and class name order).
    pub weight_classes: Option<Vec<WeigherName>>,
    /// `[filter_scheduler] host_subset_size`: the choice is uniform among
    /// the best N hosts (CPython's `random.Random(seed)`, the run's seed). Default 1.
    #[schemars(range(min = 1))]
    pub host_subset_size: Option<NonZeroUsize>,
    /// `[filter_scheduler] shuffle_best_same_weighed_hosts`. Default false.
    pub shuffle_best_same_weighed_hosts: Option<bool>,
    /// `[scheduler] max_placement_results`: Placement returns only the first
    /// N candidates in fleet order. Default: all.
    #[schemars(range(min = 1))]
    pub max_placement_results: Option<NonZeroUsize>,
    /// `reserved_host_memory_mb`: MB per host Placement and the RAM weigher
    /// leave out. Default 512.
    pub reserved_host_memory_mb: Option<u32>,
    /// `reserved_host_cpus`: VCPUs per host Placement leaves out. Default 0.
    pub reserved_host_cpus: Option<u32>,
    /// `reserved_host_disk_mb`. Default 0.
    pub reserved_host_disk_mb: Option<u32>,
    /// `[workarounds] disable_fallback_pcpu_query`: no second Placement
    /// query with VCPU for guests with dedicated CPUs. Default false.
    pub disable_fallback_pcpu_query: Option<bool>,
    /// `[filter_scheduler] max_instances_per_host` (NumInstancesFilter). Default 50.
    #[schemars(range(min = 1))]
    pub max_instances_per_host: Option<NonZeroUsize>,
    /// `[filter_scheduler] max_io_ops_per_host` (IoOpsFilter). Default 8.
    pub max_io_ops_per_host: Option<u32>,
    /// `[filter_scheduler] ram_weight_multiplier` (RAMWeigher; -1 packs). Default 1.0.
    pub ram_weight_multiplier: Option<Multiplier>,
    /// `[filter_scheduler] cpu_weight_multiplier` (CPUWeigher). Default 1.0.
    pub cpu_weight_multiplier: Option<Multiplier>,
    /// `[filter_scheduler] disk_weight_multiplier` (DiskWeigher). Default 1.0.
    pub disk_weight_multiplier: Option<Multiplier>,
    /// `[filter_scheduler] io_ops_weight_multiplier` (IoOpsWeigher). Default -1.0.
    pub io_ops_weight_multiplier: Option<Multiplier>,
    /// `[filter_scheduler] hypervisor_version_weight_multiplier`. Default 1.0.
    pub hypervisor_version_weight_multiplier: Option<Multiplier>,
    /// `[filter_scheduler] num_instances_weight_multiplier` (positive: prefer
    /// hosts with more instances). Default 0.0.
    pub num_instances_weight_multiplier: Option<Multiplier>,
    /// `[filter_scheduler] pci_weight_multiplier` (PCIWeigher). Default 1.0.
    pub pci_weight_multiplier: Option<Multiplier>,
    /// `[filter_scheduler] build_failure_weight_multiplier` (negated by Nova). Default 1000000.0.
    pub build_failure_weight_multiplier: Option<Multiplier>,
    /// `[filter_scheduler] cross_cell_move_weight_multiplier`. Default 1000000.0.
    pub cross_cell_move_weight_multiplier: Option<Multiplier>,
    /// `[filter_scheduler] soft_affinity_weight_multiplier`. Default 1.0.
    pub soft_affinity_weight_multiplier: Option<Multiplier>,
    /// `[filter_scheduler] soft_anti_affinity_weight_multiplier`. Default 1.0.
    pub soft_anti_affinity_weight_multiplier: Option<Multiplier>,
    /// `[metrics] weight_multiplier`. Default 1.0.
    pub metrics_weight_multiplier: Option<Multiplier>,
}

/// A filter class name Nova knows and numasim models.
#[derive(Debug, Clone, Copy, PartialEq, schemars::JsonSchema)]
#[schemars(with = "String")]
pub struct FilterName(pub Filter);

impl<'de> Deserialize<'de> for FilterName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Filter::by_name(&s).map(FilterName).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown filter `{s}` (known: {})",
                Filter::ALL.map(Filter::name).join(", ")
            ))
        })
    }
}

/// A weigher class name, or `all`.
#[derive(Debug, Clone, PartialEq, schemars::JsonSchema)]
#[schemars(with = "String")]
pub struct WeigherName(pub Vec<Weigher>);

impl<'de> Deserialize<'de> for WeigherName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "all" || s == "nova.scheduler.weights.all_weighers" {
            return Ok(WeigherName(Weigher::ALL.to_vec()));
        }
        Weigher::by_name(&s)
            .map(|w| WeigherName(vec![w]))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown weigher `{s}` (known: all, {})",
                    Weigher::ALL.map(Weigher::name).join(", ")
                ))
            })
    }
}

/// A weigher multiplier: a finite number.
#[derive(Debug, Clone, Copy, PartialEq, schemars::JsonSchema)]
#[schemars(with = "f64")]
pub struct Multiplier(pub f64);

impl<'de> Deserialize<'de> for Multiplier {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let x = f64::deserialize(d)?;
        if x.is_finite() {
            Ok(Multiplier(x))
        } else {
            Err(serde::de::Error::custom(format!(
                "{x}: expected a finite number"
            )))
        }
    }
}

impl SchedulerSpec {
    /// `self` with the keys `over` sets replaced.
    pub fn overridden_by(&self, over: &SchedulerSpec) -> SchedulerSpec {
        macro_rules! pick {
            ($($f:ident),*) => {
                SchedulerSpec { $($f: over.$f.clone().or_else(|| self.$f.clone())),* }
            };
        }
        pick!(
            enabled_filters,
            weight_classes,
            host_subset_size,
            shuffle_best_same_weighed_hosts,
            max_placement_results,
            reserved_host_memory_mb,
            reserved_host_cpus,
            reserved_host_disk_mb,
            disable_fallback_pcpu_query,
            max_instances_per_host,
            max_io_ops_per_host,
            ram_weight_multiplier,
            cpu_weight_multiplier,
            disk_weight_multiplier,
            io_ops_weight_multiplier,
            hypervisor_version_weight_multiplier,
            num_instances_weight_multiplier,
            pci_weight_multiplier,
            build_failure_weight_multiplier,
            cross_cell_move_weight_multiplier,
            soft_affinity_weight_multiplier,
            soft_anti_affinity_weight_multiplier,
            metrics_weight_multiplier
        )
    }

    /// The scheduler configuration these options give; the error names the key.
    pub fn config(&self) -> Result<SchedulerConfig, String> {
        let mut c = SchedulerConfig::default();
        if let Some(f) = &self.enabled_filters {
            c.filters = f.iter().map(|f| f.0).collect();
        }
        if let Some(w) = &self.weight_classes {
            if w.is_empty() {
                return Err("weight_classes: give `all` or at least one weigher".into());
            }
            c.weighers = w.iter().flat_map(|w| w.0.iter().copied()).collect();
        }
        if let Some(n) = self.host_subset_size {
            c.host_subset_size = n.get();
        }
        if let Some(b) = self.shuffle_best_same_weighed_hosts {
            c.shuffle_best_same_weighed_hosts = b;
        }
        c.max_placement_results = self.max_placement_results.map(NonZeroUsize::get);
        if let Some(n) = self.reserved_host_memory_mb {
            c.reserved_host_memory_mb = i64::from(n);
        }
        if let Some(n) = self.reserved_host_cpus {
            c.reserved_host_cpus = i64::from(n);
        }
        if let Some(n) = self.reserved_host_disk_mb {
            c.reserved_host_disk_mb = i64::from(n);
        }
        if let Some(b) = self.disable_fallback_pcpu_query {
            c.disable_fallback_pcpu_query = b;
        }
        if let Some(n) = self.max_instances_per_host {
            c.max_instances_per_host = i64::try_from(n.get()).unwrap_or(i64::MAX);
        }
        if let Some(n) = self.max_io_ops_per_host {
            c.max_io_ops_per_host = i64::from(n);
        }
        for (w, m) in [
            (Weigher::Ram, self.ram_weight_multiplier),
            (Weigher::Cpu, self.cpu_weight_multiplier),
            (Weigher::Disk, self.disk_weight_multiplier),
            (Weigher::IoOps, self.io_ops_weight_multiplier),
            (
                Weigher::HypervisorVersion,
                self.hypervisor_version_weight_multiplier,
            ),
            (Weigher::NumInstances, self.num_instances_weight_multiplier),
            (Weigher::Pci, self.pci_weight_multiplier),
            (Weigher::BuildFailure, self.build_failure_weight_multiplier),
            (Weigher::CrossCell, self.cross_cell_move_weight_multiplier),
            (Weigher::SoftAffinity, self.soft_affinity_weight_multiplier),
            (
                Weigher::SoftAntiAffinity,
                self.soft_anti_affinity_weight_multiplier,
            ),
            (Weigher::Metrics, self.metrics_weight_multiplier),
        ] {
            if let Some(Multiplier(m)) = m {
                c.multipliers.insert(w, m);
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SchedulerSpec, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn bad_values_are_refused_with_key_and_line() {
        for (text, needle) in [
            ("\n\nhost_subset_size = 0", "nonzero"),
            ("\n\nhost_subset_size = -1", "-1"),
            (
                "\n\nenabled_filters = [\"RamFilter\"]",
                "unknown filter `RamFilter`",
            ),
            (
                "\n\nweight_classes = [\"Heavy\"]",
                "unknown weigher `Heavy`",
            ),
            ("\n\ncpu_weight_multiplier = nan", "finite"),
            ("\n\nram_weight_multiplier = -inf", "finite"),
            ("\n\nram_weight = 1.0", "unknown field `ram_weight`"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains("line 3") && e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn options_map_to_nova_names_and_policy_tables_override() {
        let base = parse(
            "weight_classes = [\"RAMWeigher\", \"CPUWeigher\"]\nram_weight_multiplier = -1.0\nhost_subset_size = 3",
        )
        .unwrap();
        let own =
            parse("ram_weight_multiplier = 2.5\nbuild_failure_weight_multiplier = 4.0").unwrap();
        let c = base.overridden_by(&own).config().unwrap();
        assert_eq!(c.weighers, vec![Weigher::Ram, Weigher::Cpu]);
        assert_eq!(c.multiplier(Weigher::Ram), 2.5);
        // Nova negates the build-failure option.
        assert_eq!(c.multiplier(Weigher::BuildFailure), -4.0);
        assert_eq!(c.host_subset_size, 3);
        let all = parse("weight_classes = [\"all\"]")
            .unwrap()
            .config()
            .unwrap();
        assert_eq!(all.weighers, Weigher::ALL.to_vec());
        assert_eq!(
            SchedulerSpec::default().config().unwrap(),
            SchedulerConfig::default()
        );
    }
}
