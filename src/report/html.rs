//! `report.html`: one self-contained page per run (no network: styles
//! inline, charts inline SVG). The verdict first, then the comparison
//! table with units and a glossary from the metric registry, the charts
//! (utilisation, running guests and stranded memory over time, the latency
//! factor distribution), rejections by flavor, and what produced it: the
//! scenario, numasim's version and the command line. Written with
//! quick-xml, so every text is escaped.

use super::metrics::{METRICS, Shown};
use super::plot::{Chart, Legend, Series, chart_svg};
use super::stats::mean_ci95;
use super::verdict::{by_policy, standings};
use super::words;
use crate::experiment::run::{Prepared, RunResult};
use quick_xml::Writer;
use quick_xml::events::{BytesText, Event};
use std::io;

const STYLE: &str = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}\
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\
th:first-child,td:first-child{text-align:left}\
.verdict li{margin:.3em 0}\
figure{margin:1.5em 0}figure svg{max-width:100%;height:auto}\
pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:13px}\
dt{font-weight:bold;margin-top:.5em}.wide{overflow-x:auto}";

/// What the page says it came from.
pub struct Provenance<'a> {
    pub scenario_text: &'a str,
    pub command_line: &'a str,
}

/// The page, or why a chart could not be drawn.
pub fn run_report(
    prepared: &Prepared,
    results: &[RunResult],
    from: &Provenance,
) -> Result<String, String> {
    let charts = charts(results)?;
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 1);
    write_page(&mut w, prepared, results, &charts, from).map_err(|e| e.to_string())?;
    String::from_utf8(w.into_inner()).map_err(|e| e.to_string())
}

/// Per policy, the first seed's time series and every seed's latency
/// quantiles averaged; one chart each.
fn charts(results: &[RunResult]) -> Result<Vec<(String, String)>, String> {
    let policies = by_policy(results);
    let over_time = |title: &str,
                     y_label: &str,
                     scale: f64,
                     f: fn(&crate::sim::metrics::Sample) -> f64| Chart {
        title: title.into(),
        x_label: "time (hours)".into(),
        y_label: y_label.into(),
        series: policies
            .iter()
            .map(|(p, rs)| Series {
                label: p.to_string(),
                points: rs[0]
                    .samples
                    .iter()
                    .map(|s| (s.t / 3600.0, f(s) * scale))
                    .collect(),
                band: Vec::new(),
            })
            .collect(),
        y_from_zero: true,
        legend: Legend::LowerRight,
    };
    let seed_note = "first seed";
    let mut out = Vec::new();
    for (title, chart) in [
        (
            format!("CPU allocation over time ({seed_note})"),
            over_time(
                "claimed CPUs",
                "claimed CPUs (% of physical CPUs)",
                100.0,
                |s| s.cpu_alloc,
            ),
        ),
        (
            format!("memory allocation over time ({seed_note})"),
            over_time(
                "claimed memory",
                "claimed memory (% of memory)",
                100.0,
                |s| s.mem_alloc,
            ),
        ),
        (
            format!("running guests over time ({seed_note})"),
            over_time("running guests", "guests", 1.0, |s| s.running as f64),
        ),
        (
            format!("stranded memory over time ({seed_note})"),
            over_time(
                "stranded memory",
                "memory on hosts no flavor fits (% of memory)",
                100.0,
                |s| s.stranded_mem,
            ),
        ),
    ] {
        out.push((title, chart_svg(&chart)?));
    }
    let cdf = Chart {
        title: "memory latency factor of placed guests (mean over seeds)".into(),
        x_label: "latency factor (x local)".into(),
        y_label: "share of placed guests at or below (%)".into(),
        series: policies
            .iter()
            .filter(|(_, rs)| rs.iter().all(|r| !r.metrics.latency_quantiles.is_empty()))
            .map(|(p, rs)| {
                let n = rs[0].metrics.latency_quantiles.len();
                let points = (0..n)
                    .map(|q| {
                        let x = rs
                            .iter()
                            .map(|r| {
                                r.metrics
                                    .latency_quantiles
                                    .get(q)
                                    .copied()
                                    .unwrap_or(f64::NAN)
                            })
                            .sum::<f64>()
                            / rs.len() as f64;
                        (x, 100.0 * q as f64 / (n - 1).max(1) as f64)
                    })
                    .collect();
                Series {
                    label: p.to_string(),
                    points,
                    band: Vec::new(),
                }
            })
            .collect(),
        y_from_zero: true,
        legend: Legend::LowerRight,
    };
    if !cdf.series.is_empty() {
        out.push(("latency factor distribution".to_string(), chart_svg(&cdf)?));
    }
    Ok(out)
}

fn write_page(
    w: &mut Writer<Vec<u8>>,
    prepared: &Prepared,
    results: &[RunResult],
    charts: &[(String, String)],
    from: &Provenance,
) -> io::Result<()> {
    let scenario = &prepared.scenario;
    w.write_event(Event::DocType(BytesText::from_escaped("html")))?;
    w.create_element("html")
        .with_attribute(("lang", "en"))
        .write_inner_content(|w| {
            w.create_element("head").write_inner_content(|w| {
                w.create_element("meta")
                    .with_attribute(("charset", "utf-8"))
                    .write_empty()?;
                text(w, "title", &format!("numasim: {}", scenario.name))?;
                text(w, "style", STYLE)?;
                Ok(())
            })?;
            w.create_element("body").write_inner_content(|w| {
                text(w, "h1", &format!("numasim: {}", scenario.name))?;
                if !scenario.description.is_empty() {
                    text(w, "p", &scenario.description)?;
                }
                text(w, "h2", "Verdict")?;
                let standings = standings(results);
                if standings.is_empty() {
                    text(
                        w,
                        "p",
                        "One policy, or no difference between the policies on any judged metric.",
                    )?;
                }
                w.create_element("ul")
                    .with_attribute(("class", "verdict"))
                    .write_inner_content(|w| {
                        for s in &standings {
                            text(w, "li", &words::standing(s))?;
                        }
                        Ok(())
                    })?;
                text(w, "h2", "Policies side by side")?;
                write_table(w, results)?;
                text(w, "h2", "Charts")?;
                for (title, svg) in charts {
                    w.create_element("figure").write_inner_content(|w| {
                        w.write_event(Event::Text(BytesText::from_escaped(svg_body(svg))))?;
                        text(w, "figcaption", title)?;
                        Ok(())
                    })?;
                }
                text(w, "h2", "Rejections by flavor and reason")?;
                write_rejections(w, results)?;
                write_glossary(w)?;
                text(w, "h2", "How this was made")?;
                text(
                    w,
                    "p",
                    &format!(
                        "numasim {}; command: {}; {} hosts, {} flavors, seeds {:?}",
                        env!("CARGO_PKG_VERSION"),
                        from.command_line,
                        prepared.hosts.len(),
                        prepared.catalog.flavors.len(),
                        scenario.seeds
                    ),
                )?;
                text(w, "pre", from.scenario_text)?;
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(())
}

/// `report.html` of a sweep: per point, the verdict over its policies (from
/// the records' metrics); the sweep's charts inline; the glossary.
pub fn sweep_report(
    manifest: &crate::experiment::sweep::Manifest,
    records: &[crate::experiment::sweep::RunRecord],
    charts: &[(String, String)],
) -> Result<String, String> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 1);
    write_sweep_page(&mut w, manifest, records, charts).map_err(|e| e.to_string())?;
    String::from_utf8(w.into_inner()).map_err(|e| e.to_string())
}

fn write_sweep_page(
    w: &mut Writer<Vec<u8>>,
    manifest: &crate::experiment::sweep::Manifest,
    records: &[crate::experiment::sweep::RunRecord],
    charts: &[(String, String)],
) -> io::Result<()> {
    // The policies compete where everything else is equal: groups of the
    // points with the same non-policy parameters (`policy.*` parameters
    // name the policies), each with its policies' runs (registry-ordered
    // values).
    let kept: Vec<usize> = (0..manifest.params.len())
        .filter(|&i| !manifest.params[i].starts_with("policy."))
        .collect();
    let mut points: Vec<(Vec<String>, super::verdict::PolicyRuns)> = Vec::new();
    for r in records {
        let key: Vec<String> = kept.iter().map(|&i| r.params[i].clone()).collect();
        let values: Vec<f64> = r
            .metrics
            .iter()
            .map(|v| v.parse().unwrap_or(f64::NAN))
            .collect();
        let at = match points.iter().position(|p| p.0 == key) {
            Some(i) => i,
            None => {
                points.push((key, Vec::new()));
                points.len() - 1
            }
        };
        let policies = &mut points[at].1;
        match policies.iter_mut().find(|(p, _)| *p == r.policy) {
            Some((_, runs)) => runs.push(values),
            None => policies.push((r.policy.clone(), vec![values])),
        }
    }
    w.write_event(Event::DocType(BytesText::from_escaped("html")))?;
    w.create_element("html")
        .with_attribute(("lang", "en"))
        .write_inner_content(|w| {
            w.create_element("head").write_inner_content(|w| {
                w.create_element("meta")
                    .with_attribute(("charset", "utf-8"))
                    .write_empty()?;
                text(w, "title", &format!("numasim sweep: {}", manifest.name))?;
                text(w, "style", STYLE)?;
                Ok(())
            })?;
            w.create_element("body").write_inner_content(|w| {
                text(w, "h1", &format!("numasim sweep: {}", manifest.name))?;
                text(
                    w,
                    "p",
                    &format!(
                        "{} points over {}, {} runs; numasim {}, sweep digest {}",
                        points.len(),
                        manifest.params.join(", "),
                        records.len(),
                        env!("CARGO_PKG_VERSION"),
                        manifest.digest
                    ),
                )?;
                text(w, "h2", "Verdict where the policies meet")?;
                for (params, policies) in &points {
                    let at: Vec<String> = kept
                        .iter()
                        .zip(params)
                        .map(|(&k, v)| format!("{} = {v}", manifest.params[k]))
                        .collect();
                    text(w, "h3", &if at.is_empty() { "all runs".to_string() } else { at.join(", ") })?;
                    let standings = super::verdict::standings_of(policies);
                    if standings.is_empty() {
                        text(w, "p", "One policy, or no difference on any judged metric.")?;
                        continue;
                    }
                    w.create_element("ul")
                        .with_attribute(("class", "verdict"))
                        .write_inner_content(|w| {
                            for s in &standings {
                                text(w, "li", &words::standing(s))?;
                            }
                            Ok(())
                        })?;
                }
                text(w, "h2", "Charts")?;
                for (title, svg) in charts {
                    w.create_element("figure").write_inner_content(|w| {
                        w.write_event(Event::Text(BytesText::from_escaped(svg_body(svg))))?;
                        text(w, "figcaption", title)?;
                        Ok(())
                    })?;
                }
                text(w, "p", "Every run: runs.csv; means, standard deviations and 95% intervals: aggregate.csv.")?;
                write_glossary(w)?;
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(())
}

fn write_glossary(w: &mut Writer<Vec<u8>>) -> io::Result<()> {
    text(w, "h2", "Glossary")?;
    w.create_element("dl").write_inner_content(|w| {
        for m in METRICS.iter().filter(|m| m.shown != Shown::No) {
            text(w, "dt", &format!("{} ({}), {}", m.short, m.name, m.unit))?;
            text(w, "dd", m.definition)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The SVG element of a document plotters wrote (no XML declaration).
fn svg_body(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

fn write_table(w: &mut Writer<Vec<u8>>, results: &[RunResult]) -> io::Result<()> {
    let shown: Vec<_> = METRICS.iter().filter(|m| m.shown != Shown::No).collect();
    w.create_element("div")
        .with_attribute(("class", "wide"))
        .write_inner_content(|w| write_policy_rows(w, results, &shown))?;
    text(
        w,
        "p",
        "Means over seeds; with several seeds, the 95% confidence interval of the mean in brackets.",
    )
}

fn write_policy_rows(
    w: &mut Writer<Vec<u8>>,
    results: &[RunResult],
    shown: &[&super::metrics::Metric],
) -> io::Result<()> {
    w.create_element("table").write_inner_content(|w| {
        w.create_element("tr").write_inner_content(|w| {
            text(w, "th", "policy")?;
            text(w, "th", "seeds")?;
            for m in shown {
                text(w, "th", &format!("{} ({})", m.short, m.unit))?;
            }
            Ok(())
        })?;
        for (p, rs) in by_policy(results) {
            w.create_element("tr").write_inner_content(|w| {
                text(w, "td", p)?;
                text(w, "td", &rs.len().to_string())?;
                for m in shown {
                    let values: Vec<f64> = rs.iter().map(|r| (m.value)(&r.metrics)).collect();
                    let cell = match mean_ci95(&values) {
                        Some(ci) => match ci.interval() {
                            Some((lo, hi)) => format!(
                                "{} [{}, {}]",
                                words::metric_value(m, ci.mean),
                                words::metric_value(m, lo),
                                words::metric_value(m, hi)
                            ),
                            None => words::metric_value(m, ci.mean),
                        },
                        None => "n/a".into(),
                    };
                    text(w, "td", &cell)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    })?;
    Ok(())
}

fn write_rejections(w: &mut Writer<Vec<u8>>, results: &[RunResult]) -> io::Result<()> {
    let policies = by_policy(results);
    let mut flavors: Vec<&str> = Vec::new();
    for r in results {
        for f in r.metrics.rejected_by_flavor.keys() {
            if !flavors.contains(&f.as_str()) {
                flavors.push(f);
            }
        }
    }
    flavors.sort_unstable();
    if flavors.is_empty() {
        return text(w, "p", "No guest was rejected.");
    }
    w.create_element("table").write_inner_content(|w| {
        w.create_element("tr").write_inner_content(|w| {
            text(w, "th", "flavor")?;
            for (p, _) in &policies {
                text(w, "th", &format!("{p} (mean rejected)"))?;
            }
            Ok(())
        })?;
        for f in &flavors {
            w.create_element("tr").write_inner_content(|w| {
                text(w, "td", f)?;
                for (_, rs) in &policies {
                    let total: u64 = rs
                        .iter()
                        .map(|r| r.metrics.rejected_by_flavor.get(*f).copied().unwrap_or(0))
                        .sum();
                    text(w, "td", &format!("{:.1}", total as f64 / rs.len() as f64))?;
                }
                Ok(())
            })?;
        }
        Ok(())
    })?;
    // By main reason: the refusal most hosts gave each rejected guest.
    let mut reasons: Vec<String> = Vec::new();
    for r in results {
        for x in &r.rejections {
            let reason = words::main_reason(&x.why);
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
    }
    reasons.sort_unstable();
    if !reasons.is_empty() {
        w.create_element("table").write_inner_content(|w| {
            w.create_element("tr").write_inner_content(|w| {
                text(w, "th", "main reason (the refusal most hosts gave)")?;
                for (p, _) in &policies {
                    text(w, "th", &format!("{p} (mean guests)"))?;
                }
                Ok(())
            })?;
            for reason in &reasons {
                w.create_element("tr").write_inner_content(|w| {
                    text(w, "td", reason)?;
                    for (_, rs) in &policies {
                        let n = rs
                            .iter()
                            .flat_map(|r| &r.rejections)
                            .filter(|x| words::main_reason(&x.why) == *reason)
                            .count();
                        text(w, "td", &format!("{:.1}", n as f64 / rs.len() as f64))?;
                    }
                    Ok(())
                })?;
            }
            Ok(())
        })?;
    }
    text(
        w,
        "p",
        "Why each guest was refused, host by host: rejections.csv.",
    )
}

fn text(w: &mut Writer<Vec<u8>>, tag: &str, value: &str) -> io::Result<()> {
    w.create_element(tag)
        .write_text_content(BytesText::new(value))?;
    Ok(())
}
