//! Flavors and image properties into a guest NUMA topology, with the checks
//! and errors of Nova's `numa_get_constraints` (nova 34.0.0), in the same
//! order, so an invalid request fails with the exception Nova raises.

pub mod pci;
pub mod py;

use crate::fit::pyset::PySet;
use py::{bool_from_string, is_int_like, parse_cpu_spec, py_int, string_to_bytes_iec};
use std::collections::{BTreeMap, BTreeSet};

/// Nova's page size sentinels (`hardware.MEMPAGES_*`).
pub const MEMPAGES_SMALL: i64 = -1;
pub const MEMPAGES_LARGE: i64 = -2;
pub const MEMPAGES_ANY: i64 = -3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CpuPolicy {
    Shared,
    Dedicated,
    Mixed,
}

impl CpuPolicy {
    pub fn parse(s: &str) -> Option<CpuPolicy> {
        match s {
            "shared" => Some(CpuPolicy::Shared),
            "dedicated" => Some(CpuPolicy::Dedicated),
            "mixed" => Some(CpuPolicy::Mixed),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            CpuPolicy::Shared => "shared",
            CpuPolicy::Dedicated => "dedicated",
            CpuPolicy::Mixed => "mixed",
        }
    }
    /// Dedicated or mixed: some vCPUs are pinned.
    pub fn pins(policy: Option<CpuPolicy>) -> bool {
        matches!(policy, Some(CpuPolicy::Dedicated | CpuPolicy::Mixed))
    }
    /// Shared, mixed or none: some vCPUs float.
    pub fn floats(policy: Option<CpuPolicy>) -> bool {
        !matches!(policy, Some(CpuPolicy::Dedicated))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadPolicy {
    Prefer,
    Isolate,
    Require,
}

impl ThreadPolicy {
    pub fn parse(s: &str) -> Option<ThreadPolicy> {
        match s {
            "prefer" => Some(ThreadPolicy::Prefer),
            "isolate" => Some(ThreadPolicy::Isolate),
            "require" => Some(ThreadPolicy::Require),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadPolicy::Prefer => "prefer",
            ThreadPolicy::Isolate => "isolate",
            ThreadPolicy::Require => "require",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmulatorPolicy {
    Share,
    Isolate,
}

impl EmulatorPolicy {
    pub fn parse(s: &str) -> Option<EmulatorPolicy> {
        match s {
            "share" => Some(EmulatorPolicy::Share),
            "isolate" => Some(EmulatorPolicy::Isolate),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            EmulatorPolicy::Share => "share",
            EmulatorPolicy::Isolate => "isolate",
        }
    }
}

pub const PCI_POLICIES: [&str; 4] = ["required", "legacy", "preferred", "socket"];

/// One guest NUMA cell (Nova's `InstanceNUMACell`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestCell {
    /// The id Nova sees; the fit overwrites it with the host cell's id.
    pub id: i64,
    /// Floating vCPUs.
    pub cpuset: BTreeSet<u32>,
    /// Pinned vCPUs.
    pub pcpuset: BTreeSet<u32>,
    pub memory_mb: i64,
    /// `None`, 0 (no page size), a size in KiB, or a `MEMPAGES_*` sentinel.
    pub pagesize: Option<i64>,
    pub cpu_policy: Option<CpuPolicy>,
    pub cpu_thread_policy: Option<ThreadPolicy>,
    pub cpu_pinning: Option<BTreeMap<u32, u32>>,
    pub cpuset_reserved: Option<BTreeSet<u32>>,
}

/// A guest NUMA topology (Nova's `InstanceNUMATopology`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestTopology {
    pub cells: Vec<GuestCell>,
    pub emulator_threads_policy: Option<EmulatorPolicy>,
}

impl GuestTopology {
    pub fn emulator_threads_isolated(&self) -> bool {
        self.emulator_threads_policy == Some(EmulatorPolicy::Isolate)
    }
}

/// A flavor: vCPUs, memory and extra specs in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flavor {
    pub name: String,
    pub vcpus: i64,
    pub memory_mb: i64,
    pub extra_specs: Vec<(String, String)>,
}

impl Flavor {
    pub fn spec(&self, key: &str) -> Option<&str> {
        self.extra_specs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Where Nova raised: `image` (ImageMeta.from_dict), `constraints`
/// (numa_get_constraints) or `pci` (get_pci_numa_policy_constraint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Input,
    Image,
    Constraints,
    Pci,
    Fit,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Input => "input",
            Phase::Image => "image",
            Phase::Constraints => "constraints",
            Phase::Pci => "pci",
            Phase::Fit => "fit",
        }
    }
}

/// A request Nova refuses: the phase, the exception class name, and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct RequestError {
    pub phase: Phase,
    pub kind: &'static str,
    pub message: String,
}

fn fail<T>(kind: &'static str, message: impl Into<String>) -> Result<T, RequestError> {
    Err(RequestError {
        phase: Phase::Constraints,
        kind,
        message: message.into(),
    })
}

fn image_fail<T>(kind: &'static str, message: impl Into<String>) -> Result<T, RequestError> {
    Err(RequestError {
        phase: Phase::Image,
        kind,
        message: message.into(),
    })
}

/// The image properties Nova's NUMA code reads, after `ImageMetaProps.from_dict`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageProps {
    pub cpu_policy: Option<String>,
    pub cpu_thread_policy: Option<String>,
    pub cpu_realtime_mask: Option<String>,
    pub mem_page_size: Option<String>,
    pub numa_nodes: Option<i64>,
    pub numa_cpus: Option<Vec<PySet>>,
    pub numa_mem: Option<Vec<i64>>,
    pub locked_memory: Option<bool>,
    pub pci_numa_affinity_policy: Option<String>,
    pub traits_required: Vec<String>,
}

impl ImageProps {
    /// `ImageMetaProps.from_dict` for the NUMA-related properties: values are
    /// Glance strings; enum and integer fields are validated here (phase `image`).
    pub fn from_pairs(props: &[(String, String)]) -> Result<ImageProps, RequestError> {
        let get = |k: &str| {
            props
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let mut out = ImageProps::default();
        if let Some(v) = get("hw_cpu_policy") {
            if CpuPolicy::parse(&v).is_none() {
                return image_fail("ValueError", format!("Field value {v} is invalid"));
            }
            out.cpu_policy = Some(v);
        }
        if let Some(v) = get("hw_cpu_thread_policy") {
            if ThreadPolicy::parse(&v).is_none() {
                return image_fail("ValueError", format!("Field value {v} is invalid"));
            }
            out.cpu_thread_policy = Some(v);
        }
        out.cpu_realtime_mask = get("hw_cpu_realtime_mask");
        out.mem_page_size = get("hw_mem_page_size");
        if let Some(v) = get("hw_numa_nodes") {
            match py_int(&v) {
                Some(n) => out.numa_nodes = Some(n),
                None => {
                    return image_fail(
                        "ValueError",
                        format!("invalid literal for int() with base 10: '{v}'"),
                    );
                }
            }
        }
        // hw_numa_mem.N then hw_numa_cpus.N, consecutive from 0 (fields order).
        let mut mem = Vec::new();
        for i in 0..128 {
            let Some(v) = get(&format!("hw_numa_mem.{i}")) else {
                break;
            };
            match py_int(&v) {
                Some(n) => mem.push(n),
                None => {
                    return image_fail(
                        "ValueError",
                        format!("invalid literal for int() with base 10: '{v}'"),
                    );
                }
            }
        }
        if !mem.is_empty() {
            out.numa_mem = Some(mem);
        }
        let mut cpus = Vec::new();
        for i in 0..128 {
            let Some(v) = get(&format!("hw_numa_cpus.{i}")) else {
                break;
            };
            match parse_cpu_spec(&v) {
                Ok(s) => cpus.push(s),
                Err(m) => return image_fail("Invalid", m),
            }
        }
        if !cpus.is_empty() {
            out.numa_cpus = Some(cpus);
        }
        if let Some(v) = get("hw_locked_memory") {
            out.locked_memory = Some(bool_from_string(&v));
        }
        if let Some(v) = get("hw_pci_numa_affinity_policy") {
            if !PCI_POLICIES.contains(&v.as_str()) {
                return image_fail("ValueError", format!("Field value {v} is invalid"));
            }
            out.pci_numa_affinity_policy = Some(v);
        }
        for (k, v) in props {
            if let Some(t) = k.strip_prefix("trait:")
                && v == "required"
            {
                out.traits_required.push(t.to_string());
            }
        }
        Ok(out)
    }
}

/// `get_pci_numa_policy_constraint`: the flavor's or image's PCI NUMA affinity policy.
pub fn pci_numa_policy(
    flavor: &Flavor,
    image: &ImageProps,
) -> Result<Option<String>, RequestError> {
    let f = flavor
        .spec("hw:pci_numa_affinity_policy")
        .filter(|s| !s.is_empty());
    let i = image
        .pci_numa_affinity_policy
        .as_deref()
        .filter(|s| !s.is_empty());
    let pci_fail = |kind, message: String| {
        Err(RequestError {
            phase: Phase::Pci,
            kind,
            message,
        })
    };
    if let (Some(f), Some(i)) = (f, i)
        && f != i
    {
        return pci_fail(
            "ImagePCINUMAPolicyForbidden",
            "Image and flavor PCI NUMA affinity policies conflict".into(),
        );
    }
    let policy = f.or(i);
    if let Some(p) = policy
        && !PCI_POLICIES.contains(&p)
    {
        return pci_fail(
            "InvalidPCINUMAAffinity",
            format!("Invalid PCI NUMA affinity policy '{p}'"),
        );
    }
    Ok(policy.map(str::to_string))
}

fn nonempty(v: Option<&str>) -> Option<&str> {
    v.filter(|s| !s.is_empty())
}

/// `re.match('<prefix>([1-9][0-9]*)?:<name>', key)`: group-numbered spec keys.
fn matches_grouped(key: &str, prefix: &str, name: &str) -> bool {
    let Some(rest) = key.strip_prefix(prefix) else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && rest.as_bytes()[0] == b'0' {
        return false;
    }
    rest[digits..]
        .strip_prefix(':')
        .is_some_and(|r| r.starts_with(name))
}

/// A vCPU mask (`0-3`, or `^0` meaning all but vCPU 0); bad syntax raises `Invalid`.
fn parse_mask(spec: &str, vcpus: i64) -> Result<BTreeSet<u32>, RequestError> {
    let full = if spec.trim().starts_with('^') {
        format!("0-{},{}", vcpus - 1, spec)
    } else {
        spec.to_string()
    };
    match parse_cpu_spec(&full) {
        Ok(s) => Ok(s.iter().collect()),
        Err(m) => fail("Invalid", m),
    }
}

/// `numa_get_constraints`: the guest topology a flavor and image ask for,
/// `None` when they ask for none.
pub fn numa_get_constraints(
    flavor: &Flavor,
    image: &ImageProps,
) -> Result<Option<GuestTopology>, RequestError> {
    let cpu_policy = cpu_policy_constraint(flavor, image)?;
    let mut cpu_thread_policy = cpu_thread_policy_constraint(flavor, image)?;
    let realtime_cpus = realtime_constraint(flavor, image)?;
    let mut dedicated_cpus = dedicated_constraint(flavor)?;
    let emu = emulator_policy(flavor)?;

    let (mut req_vcpu, mut req_pcpu) = (0i64, 0i64);
    for (k, v) in &flavor.extra_specs {
        if matches_grouped(k, "resources", "VCPU") {
            req_vcpu += py_int(v).unwrap_or(0);
        }
        if matches_grouped(k, "resources", "PCPU") {
            req_pcpu += py_int(v).unwrap_or(0);
        }
    }
    let mut cpu_policy = cpu_policy;
    if cpu_policy.is_some() && (req_vcpu != 0 || req_pcpu != 0) {
        return fail(
            "InvalidRequest",
            "resources:VCPU/PCPU cannot be combined with hw:cpu_policy",
        );
    }
    if req_vcpu != 0 && req_pcpu != 0 {
        return fail(
            "InvalidRequest",
            "resources:VCPU and resources:PCPU cannot both be given",
        );
    }
    if req_pcpu != 0 {
        let isolate = emu == Some(EmulatorPolicy::Isolate);
        if isolate && flavor.vcpus + 1 != req_pcpu {
            return fail(
                "InvalidRequest",
                "emulator_threads_policy=isolate needs exactly flavor.vcpus + 1 PCPUs",
            );
        }
        if !isolate && flavor.vcpus != req_pcpu {
            return fail("InvalidRequest", "resources:PCPU must equal flavor.vcpus");
        }
        cpu_policy = Some(CpuPolicy::Dedicated);
    }
    if req_vcpu != 0 {
        cpu_policy = Some(CpuPolicy::Shared);
    }

    let mut ht_trait: Option<String> = None;
    for (k, v) in &flavor.extra_specs {
        if matches_grouped(k, "trait", "HW_CPU_HYPERTHREADING") {
            ht_trait = Some(v.clone());
            break;
        }
    }
    if ht_trait.is_none()
        && image
            .traits_required
            .iter()
            .any(|t| t == "HW_CPU_HYPERTHREADING")
    {
        ht_trait = Some("required".into());
    }
    let ht_trait = ht_trait.filter(|t| !t.is_empty());
    if cpu_thread_policy.is_some() && ht_trait.is_some() {
        return fail(
            "InvalidRequest",
            "trait:HW_CPU_HYPERTHREADING cannot be combined with hw:cpu_thread_policy",
        );
    }
    match ht_trait.as_deref() {
        Some("forbidden") => cpu_thread_policy = Some(ThreadPolicy::Isolate),
        Some("required") => cpu_thread_policy = Some(ThreadPolicy::Require),
        _ => {}
    }

    match cpu_policy {
        None | Some(CpuPolicy::Shared) => {
            if cpu_thread_policy.is_some() {
                return fail(
                    "CPUThreadPolicyConfigurationInvalid",
                    "a CPU thread policy needs dedicated CPUs",
                );
            }
            if emu == Some(EmulatorPolicy::Isolate) {
                return fail(
                    "BadRequirementEmulatorThreadsPolicy",
                    "emulator thread isolation needs dedicated CPUs",
                );
            }
            if dedicated_cpus.is_some() {
                return fail(
                    "RequiredMixedInstancePolicy",
                    "hw:cpu_dedicated_mask needs hw:cpu_policy=mixed",
                );
            }
            if realtime_cpus.is_some() {
                return fail(
                    "RealtimeConfigurationInvalid",
                    "realtime needs dedicated CPUs",
                );
            }
        }
        Some(CpuPolicy::Dedicated) => {
            if dedicated_cpus.is_some() {
                return fail(
                    "RequiredMixedInstancePolicy",
                    "hw:cpu_dedicated_mask needs hw:cpu_policy=mixed",
                );
            }
        }
        Some(CpuPolicy::Mixed) => {
            if realtime_cpus.is_some() == dedicated_cpus.is_some() {
                return fail(
                    "RequiredMixedOrRealtimeCPUMask",
                    "mixed policy needs exactly one of hw:cpu_realtime_mask and hw:cpu_dedicated_mask",
                );
            }
            dedicated_cpus = dedicated_cpus.or(realtime_cpus);
        }
    }

    let nodes = node_count_constraint(flavor, image)?;
    let pagesize = pagesize_constraint(flavor, image)?;
    let vpmems = flavor
        .spec("hw:pmem")
        .map(|v| v.split(',').any(|l| !l.trim().is_empty()))
        .unwrap_or(false);
    locked_memory_constraint(flavor, image)?;

    let mut dedicated = dedicated_cpus.unwrap_or_default();
    if cpu_policy == Some(CpuPolicy::Dedicated) {
        dedicated = (0..flavor.vcpus.max(0) as u32).collect();
    }
    let pagesize_truthy = pagesize.is_some_and(|p| p != 0.0);
    if !(nodes.is_some_and(|n| n != 0) || pagesize_truthy || vpmems || CpuPolicy::pins(cpu_policy))
    {
        return Ok(None);
    }
    let all: BTreeSet<u32> = (0..flavor.vcpus.max(0) as u32).collect();
    let pcpus = dedicated;
    let vcpus: BTreeSet<u32> = all.difference(&pcpus).copied().collect();
    let nodes = nodes.filter(|n| *n != 0).unwrap_or(1);
    let cpu_list = numa_cpu_constraint(flavor, image)?;
    let mem_list = numa_mem_constraint(flavor, image)?;
    let mut cells = match (cpu_list, mem_list) {
        (None, None) => topology_auto(nodes, flavor, &vcpus, &pcpus)?,
        (Some(c), Some(m)) => {
            if c.len() as i64 != nodes || m.len() as i64 != nodes {
                return fail(
                    "ImageNUMATopologyIncomplete",
                    "the NUMA CPU and memory lists do not cover every node",
                );
            }
            topology_manual(nodes, flavor, &vcpus, &pcpus, &c, &m)?
        }
        _ => {
            return fail(
                "ImageNUMATopologyIncomplete",
                "both hw:numa_cpus.N and hw:numa_mem.N are needed",
            );
        }
    };
    // The cell field is an integer: Nova truncates fractional KiB sizes.
    let cell_pagesize = pagesize.map(|p| p.trunc() as i64);
    for c in &mut cells {
        c.pagesize = cell_pagesize;
        c.cpu_policy = cpu_policy;
        c.cpu_thread_policy = cpu_thread_policy;
    }
    Ok(Some(GuestTopology {
        cells,
        emulator_threads_policy: emu,
    }))
}

fn cpu_policy_constraint(
    flavor: &Flavor,
    image: &ImageProps,
) -> Result<Option<CpuPolicy>, RequestError> {
    let f = nonempty(flavor.spec("hw:cpu_policy"));
    let i = nonempty(image.cpu_policy.as_deref());
    let fp = match f {
        Some(v) => match CpuPolicy::parse(v) {
            Some(p) => Some(p),
            None => {
                return fail(
                    "InvalidCPUAllocationPolicy",
                    format!("CPU policy '{v}' in flavor extra specs is invalid"),
                );
            }
        },
        None => None,
    };
    let ip = match i {
        Some(v) => match CpuPolicy::parse(v) {
            Some(p) => Some(p),
            None => {
                return fail(
                    "InvalidCPUAllocationPolicy",
                    format!("CPU policy '{v}' in image properties is invalid"),
                );
            }
        },
        None => None,
    };
    Ok(match fp {
        Some(CpuPolicy::Dedicated) => fp,
        Some(CpuPolicy::Mixed) => {
            if ip == Some(CpuPolicy::Dedicated) {
                return fail(
                    "ImageCPUPinningForbidden",
                    "image cannot ask for dedicated CPUs when the flavor says mixed",
                );
            }
            fp
        }
        Some(CpuPolicy::Shared) => {
            if matches!(ip, Some(CpuPolicy::Mixed | CpuPolicy::Dedicated)) {
                return fail(
                    "ImageCPUPinningForbidden",
                    "image cannot ask for pinned CPUs when the flavor says shared",
                );
            }
            fp
        }
        None => ip,
    })
}

fn cpu_thread_policy_constraint(
    flavor: &Flavor,
    image: &ImageProps,
) -> Result<Option<ThreadPolicy>, RequestError> {
    let f = nonempty(flavor.spec("hw:cpu_thread_policy"));
    let i = nonempty(image.cpu_thread_policy.as_deref());
    let parse = |v: &str, src: &str| match ThreadPolicy::parse(v) {
        Some(p) => Ok(p),
        None => fail(
            "InvalidCPUThreadAllocationPolicy",
            format!("CPU thread policy '{v}' in {src} is invalid"),
        ),
    };
    let fp = f.map(|v| parse(v, "flavor extra specs")).transpose()?;
    let ip = i.map(|v| parse(v, "image properties")).transpose()?;
    match fp {
        None | Some(ThreadPolicy::Prefer) => Ok(fp.or(ip)),
        Some(p) => {
            if ip.is_some_and(|i| i != p) {
                return fail(
                    "ImageCPUThreadPolicyForbidden",
                    "image thread policy conflicts with the flavor's",
                );
            }
            Ok(Some(p))
        }
    }
}

fn emulator_policy(flavor: &Flavor) -> Result<Option<EmulatorPolicy>, RequestError> {
    match nonempty(flavor.spec("hw:emulator_threads_policy")) {
        None => Ok(None),
        Some(v) => match EmulatorPolicy::parse(v) {
            Some(p) => Ok(Some(p)),
            None => fail(
                "InvalidEmulatorThreadsPolicy",
                format!("emulator threads policy '{v}' is invalid"),
            ),
        },
    }
}

/// The realtime vCPUs (`hw:cpu_realtime` with its mask), `None` when the
/// guest is not realtime; raises what Nova raises.
pub fn realtime_constraint(
    flavor: &Flavor,
    image: &ImageProps,
) -> Result<Option<BTreeSet<u32>>, RequestError> {
    if !flavor.spec("hw:cpu_realtime").is_some_and(bool_from_string) {
        return Ok(None);
    }
    let mask = nonempty(image.cpu_realtime_mask.as_deref())
        .or(nonempty(flavor.spec("hw:cpu_realtime_mask")));
    let all: BTreeSet<u32> = (0..flavor.vcpus.max(0) as u32).collect();
    let rt = match mask {
        Some(m) => parse_mask(m, flavor.vcpus)?,
        None => all.clone(),
    };
    if rt.is_empty() {
        return fail(
            "RealtimeMaskNotFoundOrInvalid",
            "realtime mask selects no vCPU",
        );
    }
    let emu = emulator_policy(flavor)?;
    if rt == all && emu.is_none() {
        return fail(
            "RealtimeMaskNotFoundOrInvalid",
            "realtime needs a mask leaving a non-realtime vCPU, or an emulator threads policy",
        );
    }
    if !rt.is_subset(&all) {
        return fail(
            "RealtimeMaskNotFoundOrInvalid",
            "realtime mask names vCPUs the flavor does not have",
        );
    }
    Ok(Some(rt))
}

fn dedicated_constraint(flavor: &Flavor) -> Result<Option<BTreeSet<u32>>, RequestError> {
    let Some(mask) = nonempty(flavor.spec("hw:cpu_dedicated_mask")) else {
        return Ok(None);
    };
    let pcpus = parse_mask(mask, flavor.vcpus)?;
    let all: BTreeSet<u32> = (0..flavor.vcpus.max(0) as u32).collect();
    let vcpus: BTreeSet<u32> = all.difference(&pcpus).copied().collect();
    if pcpus.is_empty() || vcpus.is_empty() {
        return fail(
            "InvalidMixedInstanceDedicatedMask",
            "the dedicated mask must leave both shared and dedicated vCPUs",
        );
    }
    if !pcpus.is_subset(&all) {
        return fail(
            "InvalidMixedInstanceDedicatedMask",
            "the dedicated mask names vCPUs the flavor does not have",
        );
    }
    Ok(Some(pcpus))
}

fn node_count_constraint(flavor: &Flavor, image: &ImageProps) -> Result<Option<i64>, RequestError> {
    let f = flavor.spec("hw:numa_nodes");
    let f_truthy = f.is_some_and(|s| !s.is_empty());
    let i = image.numa_nodes;
    if f_truthy && i.is_some_and(|n| n != 0) {
        return fail(
            "ImageNUMATopologyForbidden",
            "hw_numa_nodes cannot be set on both flavor and image",
        );
    }
    // `flavor_nodes or image_nodes`: an empty flavor string falls through to the image.
    let as_text: Option<String> = if f_truthy {
        f.map(str::to_string)
    } else {
        i.map(|n| n.to_string())
    };
    let Some(nodes) = as_text else {
        return Ok(None);
    };
    if !is_int_like(&nodes) || py_int(&nodes).is_none_or(|n| n < 1) {
        return fail(
            "InvalidNUMANodesNumber",
            format!("hw:numa_nodes '{nodes}' is not a positive integer"),
        );
    }
    Ok(py_int(&nodes))
}

/// Nova's page size: `None`, 0.0 (`"0"`), a KiB size (possibly fractional
/// before Nova truncates it), or a `MEMPAGES_*` sentinel.
fn pagesize_constraint(flavor: &Flavor, image: &ImageProps) -> Result<Option<f64>, RequestError> {
    let f = nonempty(flavor.spec("hw:mem_page_size"));
    let i = nonempty(image.mem_page_size.as_deref());
    if f.is_none() && i.is_some() {
        return fail(
            "MemoryPageSizeForbidden",
            "the image asks for a page size the flavor does not allow",
        );
    }
    let Some(f) = f else { return Ok(None) };
    let size = page_size_value(f)?;
    if let Some(i) = i {
        if size == MEMPAGES_ANY as f64 || size == MEMPAGES_LARGE as f64 {
            return page_size_value(i).map(Some);
        }
        return fail(
            "MemoryPageSizeForbidden",
            format!("image page size {i} conflicts with flavor page size {f}"),
        );
    }
    Ok(Some(size))
}

fn page_size_value(request: &str) -> Result<f64, RequestError> {
    match request {
        "any" => Ok(MEMPAGES_ANY as f64),
        "large" => Ok(MEMPAGES_LARGE as f64),
        "small" => Ok(MEMPAGES_SMALL as f64),
        _ if !request.is_empty() && request.bytes().all(|b| b.is_ascii_digit()) => {
            match request.parse::<i64>() {
                Ok(v) => Ok(v as f64),
                Err(_) => fail(
                    "MemoryPageSizeInvalid",
                    format!("page size {request} is too large"),
                ),
            }
        }
        _ => match string_to_bytes_iec(request) {
            Some(b) => Ok(b as f64 / 1024.0),
            None => fail(
                "MemoryPageSizeInvalid",
                format!("Invalid memory page size '{request}'"),
            ),
        },
    }
}

/// Whether the guest's memory is locked (`hw:locked_memory`, flavor or
/// image); raises what Nova raises.
pub fn locked_memory_constraint(
    flavor: &Flavor,
    image: &ImageProps,
) -> Result<Option<bool>, RequestError> {
    let page_f = nonempty(flavor.spec("hw:mem_page_size"));
    let page_i = nonempty(image.mem_page_size.as_deref());
    let locked = match flavor.spec("hw:locked_memory") {
        Some(v) => {
            let f = bool_from_string(v);
            if let Some(i) = image.locked_memory
                && i != f
            {
                return fail(
                    "FlavorImageLockedMemoryConflict",
                    "flavor and image disagree on locked memory",
                );
            }
            Some(f)
        }
        None => image.locked_memory,
    };
    if locked == Some(true) && page_f.is_none() && page_i.is_none() {
        return fail(
            "LockMemoryForbidden",
            "locked memory needs hw:mem_page_size",
        );
    }
    Ok(locked)
}

fn numa_cpu_constraint(
    flavor: &Flavor,
    image: &ImageProps,
) -> Result<Option<Vec<PySet>>, RequestError> {
    let mut list = Vec::new();
    for i in 0..128 {
        let Some(v) = flavor.spec(&format!("hw:numa_cpus.{i}")) else {
            break;
        };
        match parse_cpu_spec(v) {
            Ok(s) => list.push(s),
            Err(m) => return fail("Invalid", m),
        }
    }
    if list.is_empty() {
        return Ok(image.numa_cpus.clone());
    }
    if image.numa_cpus.is_some() {
        return fail(
            "ImageNUMATopologyForbidden",
            "hw_numa_cpus cannot be set on both flavor and image",
        );
    }
    Ok(Some(list))
}

fn numa_mem_constraint(
    flavor: &Flavor,
    image: &ImageProps,
) -> Result<Option<Vec<i64>>, RequestError> {
    let mut list = Vec::new();
    for i in 0..128 {
        let Some(v) = flavor.spec(&format!("hw:numa_mem.{i}")) else {
            break;
        };
        match py_int(v) {
            Some(n) => list.push(n),
            None => {
                return fail(
                    "ValueError",
                    format!("invalid literal for int() with base 10: '{v}'"),
                );
            }
        }
    }
    if list.is_empty() {
        return Ok(image.numa_mem.clone());
    }
    if image.numa_mem.is_some() {
        return fail(
            "ImageNUMATopologyForbidden",
            "hw_numa_mem cannot be set on both flavor and image",
        );
    }
    Ok(Some(list))
}

fn new_cell(
    id: i64,
    cpus: &BTreeSet<u32>,
    vcpus: &BTreeSet<u32>,
    pcpus: &BTreeSet<u32>,
    memory_mb: i64,
) -> GuestCell {
    GuestCell {
        id,
        cpuset: cpus.intersection(vcpus).copied().collect(),
        pcpuset: cpus.intersection(pcpus).copied().collect(),
        memory_mb,
        pagesize: None,
        cpu_policy: None,
        cpu_thread_policy: None,
        cpu_pinning: None,
        cpuset_reserved: None,
    }
}

fn topology_auto(
    nodes: i64,
    flavor: &Flavor,
    vcpus: &BTreeSet<u32>,
    pcpus: &BTreeSet<u32>,
) -> Result<Vec<GuestCell>, RequestError> {
    if flavor.vcpus.rem_euclid(nodes) > 0 || flavor.memory_mb.rem_euclid(nodes) > 0 {
        return fail(
            "ImageNUMATopologyAsymmetric",
            "vCPUs and memory must divide evenly over the NUMA nodes",
        );
    }
    let ncpus = flavor.vcpus / nodes;
    let mem = flavor.memory_mb / nodes;
    Ok((0..nodes)
        .map(|node| {
            let start = (node * ncpus).max(0) as u32;
            let cpus: BTreeSet<u32> = (start..start + ncpus.max(0) as u32).collect();
            new_cell(node, &cpus, vcpus, pcpus, mem)
        })
        .collect())
}

fn topology_manual(
    nodes: i64,
    flavor: &Flavor,
    vcpus: &BTreeSet<u32>,
    pcpus: &BTreeSet<u32>,
    cpu_list: &[PySet],
    mem_list: &[i64],
) -> Result<Vec<GuestCell>, RequestError> {
    let mut cells = Vec::new();
    let mut total = 0i64;
    let mut avail: BTreeSet<u32> = (0..flavor.vcpus.max(0) as u32).collect();
    for node in 0..nodes as usize {
        let mem = mem_list[node];
        // Nova walks the CPU set in its iteration order; the first bad CPU decides the error.
        for cpu in cpu_list[node].iter() {
            if i64::from(cpu) > flavor.vcpus - 1 {
                return fail(
                    "ImageNUMATopologyCPUOutOfRange",
                    format!("CPU number {cpu} is larger than max {}", flavor.vcpus - 1),
                );
            }
            if !avail.remove(&cpu) {
                return fail(
                    "ImageNUMATopologyCPUDuplicates",
                    format!("CPU number {cpu} is assigned to two nodes"),
                );
            }
        }
        let cpus: BTreeSet<u32> = cpu_list[node].iter().collect();
        cells.push(new_cell(node as i64, &cpus, vcpus, pcpus, mem));
        total += mem;
    }
    if !avail.is_empty() {
        return fail(
            "ImageNUMATopologyCPUsUnassigned",
            format!("CPU number {avail:?} is not assigned to any node"),
        );
    }
    if total != flavor.memory_mb {
        return fail(
            "ImageNUMATopologyMemoryOutOfRange",
            format!(
                "{total} MB of NUMA memory differs from the flavor's {} MB",
                flavor.memory_mb
            ),
        );
    }
    Ok(cells)
}
