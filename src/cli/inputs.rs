//! Commands over single inputs: `topology`, `fit`, `replay`, `trace`.

use super::*;

pub(super) fn topology(cmd: TopologyCmd) -> Result<i32> {
    match cmd {
        TopologyCmd::Show {
            host,
            format,
            format_in,
        } => {
            let host = load::load_host(&host, format_in)?;
            match format {
                ShowFormat::Text => out!("{}", render::text(&host)),
                ShowFormat::Json => outln!("{}", wire::to_json(&host)),
            }
        }
        TopologyCmd::Convert {
            host,
            output,
            format_in,
        } => {
            let host = load::load_host(&host, format_in)?;
            write_atomically(&output, wire::to_json(&host).as_bytes())?;
            for w in &host.warnings {
                eprintln!("warning: {w}");
            }
        }
        TopologyCmd::Presets => {
            for p in presets::PRESETS {
                outln!("{:<16} {}", p.name, p.about);
            }
        }
    }
    Ok(0)
}

/// One result line per case line, in order; a line that is not JSON gets an
/// `input` error result naming its line number, like the oracle.
pub(super) fn fit(file: Option<PathBuf>, mode: numasim::fit::Mode) -> Result<i32> {
    use std::io::{BufRead, Write};
    let reader: Box<dyn BufRead> = match &file {
        Some(p) => Box::new(std::io::BufReader::new(
            numasim::input::open(p).with_context(|| format!("{}: cannot open", p.display()))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let name = file
        .as_ref()
        .map_or("<stdin>".to_string(), |p| p.display().to_string());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (idx, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("{name}: line {}: cannot read", idx + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let result = match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(case) => numasim::fit::case::run_case(&case, mode),
            Err(e) => serde_json::json!({
                "cells": null, "error": {"kind": "InputError", "message": format!("line {}: {e}", idx + 1), "phase": "input"},
                "fits": null, "id": null, "request": null, "usage_after": null
            }),
        };
        writeln!(out, "{result}")?;
    }
    out.flush()?;
    Ok(0)
}

pub(super) fn replay(a: ReplayArgs) -> Result<i32> {
    use numasim::sim::{SimConfig, Simulation};
    let hosts = numasim::sim::fleet::fleet_from_json(&read_text(&a.fleet)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.fleet.display()))?;
    let catalog = numasim::workload::trace::open_catalog(&a.flavors)?;
    let limits_json: serde_json::Value =
        serde_json::from_str(&a.limits).map_err(|e| anyhow::anyhow!("--limits: {e}; expected JSON such as {{\"cpu_allocation_ratio\": 16.0, \"ram_allocation_ratio\": 1.5}} or null"))?;
    let limits = numasim::fit::case::parse_limits(Some(&limits_json))
        .map_err(|e| anyhow::anyhow!("--limits: {}", e.message))?;
    let configures_nova = !a.conf.is_empty()
        || a.filters.is_some()
        || a.weighers.is_some()
        || a.max_placement_results.is_some();
    let strategy = if configures_nova {
        numasim::sim::Strategy::Nova
    } else {
        a.strategy
    };
    if configures_nova && a.strategy != numasim::sim::Strategy::Spread && a.strategy != strategy {
        anyhow::bail!(
            "--strategy {}: --conf, --filters, --weighers and --max-placement-results configure Nova's scheduler (--strategy nova)",
            a.strategy.as_str()
        );
    }
    let mut scheduler = numasim::sim::scheduler::SchedulerConfig::default();
    // The oracle's order: filters, weighers, then `--conf`, which wins.
    if let Some(f) = &a.filters {
        scheduler
            .set_filters_by_name(f)
            .map_err(|e| anyhow::anyhow!("--filters: {e}"))?;
    }
    if let Some(w) = &a.weighers {
        scheduler
            .set_weighers_by_name(w)
            .map_err(|e| anyhow::anyhow!("--weighers: {e}"))?;
    }
    if let Some(n) = a.max_placement_results {
        scheduler
            .set("scheduler.max_placement_results", &n.to_string())
            .map_err(|e| anyhow::anyhow!("--max-placement-results: {e}"))?;
    }
    for item in &a.conf {
        let (key, value) = item
            .split_once('=')
            .filter(|(k, _)| k.contains('.'))
            .ok_or_else(|| anyhow::anyhow!("--conf `{item}`: expected SECTION.KEY=VALUE"))?;
        scheduler
            .set(key, value)
            .map_err(|e| anyhow::anyhow!("--conf {e}"))?;
    }
    scheduler.full_scan = a.full_scan;
    let mut limits = limits;
    if strategy == numasim::sim::Strategy::Nova {
        scheduler.apply_ratios(&mut limits);
    }
    let config = SimConfig {
        strategy,
        host_check: a.host_check,
        limits,
        scheduler: std::sync::Arc::new(scheduler),
        seed: a.seed,
        ..SimConfig::default()
    };
    let mut sim = Simulation::new(hosts, catalog.clone(), config);
    // Written whole or not at all: a failed replay leaves no file behind.
    let file = numasim::report::output::AtomicFile::create(&a.out)?;
    let mut writer = numasim::report::replay::ReplayWriter::new(file);
    let mut rows = numasim::workload::trace::open_trace(&a.trace, &catalog, a.skip_bad_rows)?;
    let start = std::time::Instant::now();
    let result = sim.run(&mut rows, &mut writer);
    let wall = start.elapsed().as_secs_f64();
    if let Err(e) = result {
        return Err(match e {
            numasim::sim::SimError::Trace(t) => {
                numasim::workload::trace::FileError::row(&a.trace, t).into()
            }
            other => anyhow::anyhow!(other),
        });
    }
    if let Some(e) = writer.io_error.take() {
        return Err(anyhow::anyhow!("{}: {e}", a.out.display()));
    }
    let summary = writer.summary.clone();
    writer.out.commit()?;
    let mut summary = summary;
    summary.still_placed = sim.running() as u64;
    summary.fit_calls = sim.fit_calls;
    summary.accounting_ok = sim.accounting_ok();
    summary.rejected_pct = if summary.guests > 0 {
        (summary.rejected as f64 * 10000.0 / summary.guests as f64).round() / 100.0
    } else {
        0.0
    };
    summary.wall_s = wall;
    if rows.skipped > 0 {
        eprintln!(
            "warning: {} bad trace rows skipped (first: {})",
            rows.skipped,
            rows.skipped_examples.join("; ")
        );
    }
    eprintln!(
        "replay: {} guests, {} placed, {} rejected ({}%), {} fit calls, {:.3} s",
        summary.guests,
        summary.placed,
        summary.rejected,
        summary.rejected_pct,
        summary.fit_calls,
        wall
    );
    let json = serde_json::to_string_pretty(&summary)?;
    eprintln!("summary: {}", serde_json::to_string(&summary)?);
    if let Some(p) = a.summary_json {
        write_atomically(&p, json.as_bytes())?;
    }
    Ok(0)
}

pub(super) fn trace_cmd(cmd: TraceCmd) -> Result<i32> {
    match cmd {
        TraceCmd::Stats {
            trace,
            flavors,
            host,
            format,
            plot,
        } => {
            use numasim::workload::trace::{FileError, open_catalog, open_trace};
            let catalog = open_catalog(&flavors)?;
            let rows = open_trace(&trace, &catalog, false)?;
            let s = numasim::workload::stats::stats(rows, &catalog)
                .map_err(|e| FileError::row(&trace, e))?;
            let model = match &host {
                Some(h) => {
                    let host = load::load_host(h, None)?;
                    Some((
                        host.name.clone(),
                        host.cpu_count() as i64,
                        (host.memory_kb() / 1024) as i64,
                    ))
                }
                None => None,
            };
            match format {
                ShowFormat::Text => out!(
                    "{}",
                    numasim::report::trace_stats::text(
                        &s,
                        model.as_ref().map(|(n, c, m)| (n.as_str(), *c, *m))
                    )
                ),
                ShowFormat::Json => outln!("{}", serde_json::to_string_pretty(&s)?),
            }
            if let Some(base) = plot {
                let name = trace
                    .file_stem()
                    .map_or("trace".into(), |f| f.to_string_lossy().to_string());
                for p in numasim::report::trace_stats::plot_demand(&s, &name, &base)? {
                    eprintln!("{}", p.display());
                }
            }
            Ok(0)
        }
        TraceCmd::Convert {
            from,
            input,
            output,
            flavors_out,
            since,
            until,
            sample,
            seed,
            limit,
            machine_cores,
            machine_memory_gb,
        } => {
            let cuts = numasim::workload::convert::Cuts {
                since,
                until,
                sample,
                limit,
                seed,
            };
            let rules = numasim::workload::convert::SizeRules {
                machine_cores,
                machine_memory_gb,
            };
            let converted = numasim::workload::convert::convert(from, &input, &cuts, &rules)
                .map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
            write_atomically(&output, converted.trace_csv.as_bytes())?;
            write_atomically(&flavors_out, converted.flavors_csv.as_bytes())?;
            eprintln!(
                "{} guests written, {} cut, {} rows dropped{}",
                converted.rows,
                converted.cut,
                converted.dropped,
                if converted.dropped_examples.is_empty() {
                    String::new()
                } else {
                    format!(" (e.g. {})", converted.dropped_examples.join(", "))
                }
            );
            Ok(0)
        }
    }
}
