//! PCI device requests against device pools, with NUMA affinity policies
//! (`PciDeviceStats.support_requests` with pools of counts).

use super::host::{HostCell, PciPool, PciRequest};

/// Spec keys Nova leaves to placement.
const IGNORED_SPEC_TAGS: [&str; 3] = ["resource_class", "traits", "rp_uuids"];

fn pool_value(pool: &PciPool, key: &str) -> Option<String> {
    match key {
        "vendor_id" => Some(pool.vendor_id.to_lowercase()),
        "product_id" => Some(pool.product_id.to_lowercase()),
        "dev_type" => Some(pool.dev_type.to_lowercase()),
        _ => None,
    }
}

fn spec_matches(pool: &PciPool, spec: &[(String, String)]) -> bool {
    spec.iter()
        .filter(|(k, _)| !IGNORED_SPEC_TAGS.contains(&k.as_str()))
        .all(|(k, v)| pool_value(pool, k).as_deref() == Some(v.to_lowercase().as_str()))
}

fn total(pools: &[usize], all: &[PciPool]) -> i64 {
    pools.iter().map(|&i| all[i].count).sum()
}

/// Pools (indices) with suitable NUMA affinity for `request` given the host
/// cells the guest cells landed on (`_filter_pools_for_numa_cells`).
fn filter_numa(
    candidates: Vec<usize>,
    pools: &[PciPool],
    request: &PciRequest,
    cell_ids: &[i64],
    host_cells: &[HostCell],
) -> Vec<usize> {
    if cell_ids.is_empty() {
        return candidates;
    }
    let policy = if request.numa_policy.is_empty() {
        "legacy"
    } else {
        request.numa_policy.as_str()
    };
    let local: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&i| pools[i].numa_node.is_some_and(|n| cell_ids.contains(&n)))
        .collect();
    if policy == "required" || total(&local, pools) >= request.count {
        return local;
    }
    if policy == "socket" {
        if host_cells.iter().any(|c| c.socket.is_none()) {
            return Vec::new();
        }
        let sockets: Vec<Option<i64>> = host_cells
            .iter()
            .filter(|h| cell_ids.contains(&h.id))
            .map(|h| h.socket)
            .collect();
        let allowed: Vec<i64> = host_cells
            .iter()
            .filter(|h| sockets.contains(&h.socket))
            .map(|h| h.id)
            .collect();
        return candidates
            .into_iter()
            .filter(|&i| pools[i].numa_node.is_some_and(|n| allowed.contains(&n)))
            .collect();
    }
    let local_or_none: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&i| pools[i].numa_node.is_none_or(|n| cell_ids.contains(&n)))
        .collect();
    if policy == "legacy" || total(&local_or_none, pools) >= request.count {
        return local_or_none;
    }
    // preferred: everything, NUMA-local (or unknown) pools first.
    let mut all = candidates;
    all.sort_by_key(|&i| !pools[i].numa_node.is_none_or(|n| cell_ids.contains(&n)));
    all
}

/// Whether every request can be served at once, the pools being consumed
/// request by request in order.
pub fn support_requests(
    pools: &[PciPool],
    requests: &[PciRequest],
    cell_ids: &[i64],
    host_cells: &[HostCell],
) -> bool {
    plan(pools, requests, cell_ids, host_cells).is_some()
}

/// The devices `support_requests` would consume: `(pool index, count)`
/// in the order taken, or `None` when the requests cannot all be served.
/// A claim takes exactly these, so the filter and the claim agree.
pub fn plan(
    pools: &[PciPool],
    requests: &[PciRequest],
    cell_ids: &[i64],
    host_cells: &[HostCell],
) -> Option<Vec<(usize, i64)>> {
    // Working copy; `origin[k]` is the pool a working entry came from
    // (emptied pools leave the copy, as Nova's do).
    let mut pools: Vec<PciPool> = pools.to_vec();
    let mut origin: Vec<usize> = (0..pools.len()).collect();
    let mut taken = Vec::new();
    for request in requests {
        let by_spec: Vec<usize> = (0..pools.len())
            .filter(|&i| request.spec.iter().any(|s| spec_matches(&pools[i], s)))
            .collect();
        if total(&by_spec, &pools) < request.count {
            return None;
        }
        let by_numa = filter_numa(by_spec, &pools, request, cell_ids, host_cells);
        if total(&by_numa, &pools) < request.count {
            return None;
        }
        let wants = |t: &str| {
            request
                .spec
                .iter()
                .any(|s| s.iter().any(|(k, v)| k == "dev_type" && v == t))
        };
        let filtered: Vec<usize> = by_numa
            .into_iter()
            .filter(|&i| wants("type-PF") || pools[i].dev_type != "type-PF")
            .filter(|&i| wants("vdpa") || pools[i].dev_type != "vdpa")
            .collect();
        if total(&filtered, &pools) < request.count || filtered.is_empty() {
            return None;
        }
        // Consume: take from the filtered pools in order; emptied pools go away.
        let mut count = request.count;
        let mut removed = Vec::new();
        for &i in &filtered {
            let take = pools[i].count.min(count);
            if take > 0 {
                taken.push((origin[i], take));
            }
            if pools[i].count > count {
                pools[i].count -= count;
                count = 0;
            } else {
                count -= pools[i].count;
                removed.push(i);
            }
            if count == 0 {
                break;
            }
        }
        removed.sort_unstable();
        for i in removed.into_iter().rev() {
            pools.remove(i);
            origin.remove(i);
        }
    }
    Some(taken)
}

/// Takes (`sign` 1) or gives back (-1) the devices of a plan.
pub fn apply_plan(pools: &mut [PciPool], taken: &[(usize, i64)], sign: i64) {
    for &(i, n) in taken {
        pools[i].count -= sign * n;
    }
}

/// Free devices per NUMA node, for ordering host cells.
pub fn count_on_node(pools: &[PciPool], node: i64) -> i64 {
    pools
        .iter()
        .filter(|p| p.numa_node == Some(node))
        .map(|p| p.count)
        .sum()
}
