//! NUMA shape rules (`flavors.shapes`): shaped variants of the flavors a
//! rule matches, and which guests draw a rule's share (by id, rule and
//! seed, so the same guests get the same shape under every policy).

use crate::workload::trace::{Catalog, TraceRow};

/// Adds a shaped variant of every flavor for every rule it matches.
#[allow(clippy::type_complexity)]
pub fn add_shapes(
    catalog: Catalog,
    rules: &[crate::experiment::scenario::ShapeRule],
) -> Result<(Catalog, Vec<Vec<(usize, f64, usize)>>), String> {
    let base = catalog.flavors.len();
    let mut flavors = catalog.flavors;
    let mut shapes = vec![Vec::new(); base];
    for (f, shape) in shapes.iter_mut().enumerate() {
        for (k, rule) in rules.iter().enumerate() {
            let flavor = &flavors[f];
            if !rule.matches(flavor.vcpus, flavor.memory_mb) {
                continue;
            }
            let mut shaped = flavor.clone();
            shaped.name = format!(
                "{}+{}",
                flavor.name,
                rule.name.clone().unwrap_or_else(|| format!("shape{k}"))
            );
            shaped
                .extra_specs
                .extend(crate::workload::trace::parse_pairs(&rule.extra_specs)?);
            shape.push((k, rule.share, flavors.len()));
            flavors.push(shaped);
        }
    }
    Ok((Catalog::new(flavors)?, shapes))
}

/// Whether a guest draws a rule's share: by its id, the rule and the seed,
/// so the same guests get the same shape under every policy.
fn draws_share(id: &str, rule: usize, seed: u64, share: f64) -> bool {
    share >= 1.0 || crate::stable_hash::draws(id, seed ^ ((rule as u64) << 32), share)
}

/// `row` with its shaped flavor, if a shape rule picks it (`shapes`: per
/// catalog flavor, (rule index, share, shaped flavor) in rule order).
pub fn shape(mut row: TraceRow, seed: u64, shapes: &[Vec<(usize, f64, usize)>]) -> TraceRow {
    if let Some(rules) = shapes.get(row.flavor)
        && let Some(&(_, _, shaped)) = rules
            .iter()
            .find(|(k, share, _)| draws_share(&row.id, *k, seed, *share))
    {
        row.flavor = shaped;
    }
    row
}
