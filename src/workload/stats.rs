//! `numasim trace stats`: what a trace asks of a fleet — arrivals per hour,
//! lifetimes (guests without a departure are censored: counted apart and
//! left out of the lifetime percentiles), the flavor mix, peak and mean
//! concurrent vCPUs and memory, and the hosts of a model the peak needs.
//! Streams the trace: memory grows with concurrent guests, not trace length.

use crate::sim::engine::OrderedTime as Time;
use crate::workload::trace::{Catalog, CsvError, TraceRow};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct TraceStats {
    pub guests: u64,
    pub span_s: f64,
    pub arrivals_per_hour_mean: f64,
    pub arrivals_per_hour_peak: u64,
    /// Guests that never leave (empty departure): censored lifetimes.
    pub censored: u64,
    pub lifetime_mean_s: f64,
    pub lifetime_p50_s: f64,
    pub lifetime_p90_s: f64,
    pub lifetime_p99_s: f64,
    pub flavor_mix: BTreeMap<String, u64>,
    pub peak_vcpus: i64,
    pub peak_memory_mb: i64,
    /// Time-weighted over the trace's span.
    pub mean_vcpus: f64,
    pub mean_memory_mb: f64,
    /// Concurrent demand per hour of the trace: (hour, peak vCPUs, peak
    /// memory MB) — what the demand plot draws; hours without events carry
    /// the level of the hour before.
    #[serde(skip)]
    pub demand_by_hour: Vec<(i64, i64, i64)>,
}

/// Per hour: (peak vCPUs, peak MB, last vCPUs, last MB).
type HourDemand = BTreeMap<i64, (i64, i64, i64, i64)>;

fn note_demand(by_hour: &mut HourDemand, t: f64, vcpus: i64, mem: i64) {
    let e = by_hour
        .entry((t / 3600.0).floor() as i64)
        .or_insert((vcpus, mem, vcpus, mem));
    e.0 = e.0.max(vcpus);
    e.1 = e.1.max(mem);
    e.2 = vcpus;
    e.3 = mem;
}

fn fill_hours(by_hour: &HourDemand) -> Vec<(i64, i64, i64)> {
    let mut out = Vec::new();
    let mut carried: Option<(i64, i64)> = None;
    let (Some(first), Some(last)) = (by_hour.keys().next(), by_hour.keys().next_back()) else {
        return out;
    };
    for h in *first..=*last {
        match by_hour.get(&h) {
            Some(&(pv, pm, lv, lm)) => {
                // The level carried in also held during this hour.
                let (cv, cm) = carried.unwrap_or((0, 0));
                out.push((h, pv.max(cv), pm.max(cm)));
                carried = Some((lv, lm));
            }
            None => {
                let (cv, cm) = carried.unwrap_or((0, 0));
                out.push((h, cv, cm));
            }
        }
    }
    out
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

pub fn stats(
    rows: impl Iterator<Item = Result<TraceRow, CsvError>>,
    catalog: &Catalog,
) -> Result<TraceStats, CsvError> {
    let mut s = TraceStats::default();
    let mut lifetimes = Vec::new();
    let mut per_hour: BTreeMap<i64, u64> = BTreeMap::new();
    let mut leaving: BinaryHeap<Reverse<(Time, i64, i64)>> = BinaryHeap::new();
    let (mut vcpus, mut mem) = (0i64, 0i64);
    let (mut area_cpu, mut area_mem) = (0.0, 0.0);
    let mut last_t: Option<f64> = None;
    let mut first_t = None;
    let mut by_hour: HourDemand = BTreeMap::new();
    let mut advance = |t: f64, vcpus: i64, mem: i64, last_t: &mut Option<f64>| {
        if let Some(l) = *last_t {
            area_cpu += vcpus as f64 * (t - l);
            area_mem += mem as f64 * (t - l);
        }
        *last_t = Some(t);
    };
    for row in rows {
        let row = row?;
        let f = &catalog.flavors[row.flavor];
        while let Some(&Reverse((Time(t), c, m))) = leaving.peek() {
            if t > row.arrival_s {
                break;
            }
            leaving.pop();
            advance(t, vcpus, mem, &mut last_t);
            vcpus -= c;
            mem -= m;
            note_demand(&mut by_hour, t, vcpus, mem);
        }
        advance(row.arrival_s, vcpus, mem, &mut last_t);
        first_t.get_or_insert(row.arrival_s);
        s.guests += 1;
        *s.flavor_mix.entry(f.name.clone()).or_default() += 1;
        *per_hour
            .entry((row.arrival_s / 3600.0).floor() as i64)
            .or_default() += 1;
        vcpus += f.vcpus;
        mem += f.memory_mb;
        note_demand(&mut by_hour, row.arrival_s, vcpus, mem);
        s.peak_vcpus = s.peak_vcpus.max(vcpus);
        s.peak_memory_mb = s.peak_memory_mb.max(mem);
        match row.departure_s {
            Some(d) => {
                lifetimes.push(d - row.arrival_s);
                leaving.push(Reverse((Time(d), f.vcpus, f.memory_mb)));
            }
            None => s.censored += 1,
        }
    }
    let end = last_t.unwrap_or(0.0);
    let start = first_t.unwrap_or(0.0);
    s.span_s = end - start;
    if s.span_s > 0.0 {
        s.mean_vcpus = area_cpu / s.span_s;
        s.mean_memory_mb = area_mem / s.span_s;
    }
    let hours = per_hour.len().max(1) as f64;
    s.arrivals_per_hour_mean = if s.span_s > 0.0 {
        s.guests as f64 / (s.span_s / 3600.0).max(1.0)
    } else {
        s.guests as f64 / hours
    };
    s.arrivals_per_hour_peak = per_hour.values().copied().max().unwrap_or(0);
    lifetimes.sort_by(f64::total_cmp);
    if !lifetimes.is_empty() {
        s.lifetime_mean_s = lifetimes.iter().sum::<f64>() / lifetimes.len() as f64;
    }
    s.lifetime_p50_s = percentile(&lifetimes, 0.5);
    s.lifetime_p90_s = percentile(&lifetimes, 0.9);
    s.lifetime_p99_s = percentile(&lifetimes, 0.99);
    s.demand_by_hour = fill_hours(&by_hour);
    Ok(s)
}

/// Hosts of a model (CPUs, memory MB) that the peak demand needs, by CPU and by memory.
pub fn hosts_needed(s: &TraceStats, host_cpus: i64, host_mem_mb: i64) -> (i64, i64) {
    let div = |a: i64, b: i64| if b > 0 { (a + b - 1) / b } else { 0 };
    (
        div(s.peak_vcpus, host_cpus),
        div(s.peak_memory_mb, host_mem_mb),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::trace::{TraceReader, read_catalog};

    #[test]
    fn hand_computed_stats() {
        let catalog =
            read_catalog("name,vcpus,memory_mb,extra_specs\na,2,1000,\nb,4,3000,\n".as_bytes())
                .unwrap();
        let trace =
            "id,arrival_s,departure_s,flavor\n1,0,100,a\n2,50,,b\n3,100,300,a\n4,3700,3800,b\n";
        let s = stats(
            TraceReader::new(trace.as_bytes(), &catalog, false).unwrap(),
            &catalog,
        )
        .unwrap();
        assert_eq!(s.guests, 4);
        assert_eq!(s.censored, 1);
        // 2, 6, (guest 1 leaves before guest 3 arrives at 100) 6, 4, then 8 at 3700.
        assert_eq!(s.peak_vcpus, 8);
        assert_eq!(s.peak_memory_mb, 6000);
        assert_eq!(s.arrivals_per_hour_peak, 3);
        assert_eq!(s.lifetime_p50_s, 100.0);
        assert_eq!(hosts_needed(&s, 4, 4000), (2, 2));
        // Time-weighted over [0, 3700]: 2 for 50 s, 6 for 50 s, 6 for 200 s, 4 for 3400 s.
        assert!((s.mean_vcpus - (2.0 * 50.0 + 6.0 * 250.0 + 4.0 * 3400.0) / 3700.0).abs() < 1e-9);
    }
}
