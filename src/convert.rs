//! `numasim trace convert`: public traces into the native trace and flavor
//! CSVs. Each reader names its source's columns and the mapping rule.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;

/// A converted trace: native trace CSV, flavor catalog CSV, and what was dropped.
#[derive(Debug, Clone, Default)]
pub struct Converted {
    pub trace_csv: String,
    pub flavors_csv: String,
    pub rows: usize,
    pub dropped: usize,
    pub dropped_examples: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct ConvertError {
    pub line: Option<u64>,
    pub message: String,
}

/// Alibaba GPU cluster trace 2023 (`openb_pod_list_*.csv`: `name,cpu_milli,
/// memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,
/// deletion_time,scheduled_time`). Rule: one guest per pod, vCPUs =
/// ceil(cpu_milli / 1000), memory = memory_mib MB, arrival = creation_time,
/// departure = deletion_time; pods are grouped into flavors by (vCPUs,
/// memory) named `c<vcpus>m<memory_mb>`. GPUs are not modelled. Pods whose
/// deletion is not after their creation are dropped and counted. Rows are
/// sorted by creation time (the file is not).
pub fn alibaba_gpu_2023(input: impl Read) -> Result<Converted, ConvertError> {
    let mut r = csv::Reader::from_reader(input);
    let headers = r
        .headers()
        .map_err(|e| ConvertError {
            line: Some(1),
            message: e.to_string(),
        })?
        .clone();
    let col = |name: &str| {
        headers.iter().position(|h| h.trim() == name).ok_or_else(|| ConvertError {
            line: Some(1),
            message: format!("header lacks `{name}`; expected the openb_pod_list columns name,cpu_milli,memory_mib,...,creation_time,deletion_time"),
        })
    };
    let (c_name, c_cpu, c_mem, c_create, c_delete) = (
        col("name")?,
        col("cpu_milli")?,
        col("memory_mib")?,
        col("creation_time")?,
        col("deletion_time")?,
    );
    let mut out = Converted::default();
    let mut guests: Vec<(f64, u64, String, f64, u64, u64)> = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| ConvertError {
            line: e.position().map(|p| p.line()),
            message: e.to_string(),
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        let num = |c: usize, what: &str| -> Result<f64, ConvertError> {
            let v = rec.get(c).unwrap_or("").trim();
            v.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .ok_or_else(|| ConvertError {
                    line: Some(line),
                    message: format!("{what} `{v}` is not a non-negative number"),
                })
        };
        let (cpu, mem, created, deleted) = (
            num(c_cpu, "cpu_milli")?,
            num(c_mem, "memory_mib")?,
            num(c_create, "creation_time")?,
            num(c_delete, "deletion_time")?,
        );
        let name = rec.get(c_name).unwrap_or("").trim().to_string();
        if deleted <= created || cpu <= 0.0 || mem <= 0.0 {
            out.dropped += 1;
            if out.dropped_examples.len() < 3 {
                out.dropped_examples.push(format!("line {line}: {name}"));
            }
            continue;
        }
        let vcpus = (cpu / 1000.0).ceil() as u64;
        guests.push((created, line, name, deleted, vcpus, mem.round() as u64));
    }
    guests.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut flavors: BTreeMap<(u64, u64), String> = BTreeMap::new();
    out.trace_csv.push_str("id,arrival_s,departure_s,flavor\n");
    for (created, _, name, deleted, vcpus, mem) in &guests {
        let flavor = flavors
            .entry((*vcpus, *mem))
            .or_insert_with(|| format!("c{vcpus}m{mem}"));
        let _ = writeln!(out.trace_csv, "{name},{created},{deleted},{flavor}");
    }
    out.rows = guests.len();
    out.flavors_csv
        .push_str("name,vcpus,memory_mb,extra_specs\n");
    for ((vcpus, mem), name) in &flavors {
        let _ = writeln!(out.flavors_csv, "{name},{vcpus},{mem},");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn converts_sorts_and_drops() {
        let text = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n\
                    p1,1500,2048,0,0,,LS,Running,100,200,100\n\
                    p0,12000,16384,1,1000,,LS,Running,0,50,0\n\
                    p2,1000,1024,0,0,,BE,Failed,10,10,10\n";
        let c = super::alibaba_gpu_2023(text.as_bytes()).unwrap();
        assert_eq!(
            c.trace_csv,
            "id,arrival_s,departure_s,flavor\np0,0,50,c12m16384\np1,100,200,c2m2048\n"
        );
        assert_eq!(
            c.flavors_csv,
            "name,vcpus,memory_mb,extra_specs\nc2m2048,2,2048,\nc12m16384,12,16384,\n"
        );
        assert_eq!(c.dropped, 1);
        assert!(
            super::alibaba_gpu_2023("a,b\n1,2\n".as_bytes())
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
    }
}
