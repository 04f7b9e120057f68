//! The native trace and flavor-catalog formats (CSV), read as streams.
//!
//! - Flavors: header `name,vcpus,memory_mb,extra_specs`; `extra_specs` is
//!   `key=value` pairs joined by `;` (split at the first `=`).
//! - Trace: header `id,arrival_s,departure_s,flavor` and optional
//!   `image_props` (same `key=value;...` form); times in seconds from the
//!   trace start, rows in arrival order; an empty `departure_s` means the
//!   guest stays to the end.
//!
//! The readers take any `io::Read`; the caller opens the file and attaches
//! its name to errors.

use crate::request::Flavor;
pub use crate::workload::model::{Catalog, CsvError, TraceRow};
use std::collections::{HashMap, HashSet};
use std::io::Read;

fn at(line: u64, message: impl Into<String>) -> CsvError {
    CsvError {
        line: Some(line),
        message: message.into(),
    }
}

/// A catalog or trace file that could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: {source}", path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {error}", path.display())]
    Csv {
        path: std::path::PathBuf,
        error: CsvError,
    },
}

impl FileError {
    /// A bad row of the file at `path` (row errors carry their line).
    pub fn row(path: &std::path::Path, error: CsvError) -> FileError {
        FileError::Csv {
            path: path.to_path_buf(),
            error,
        }
    }
}

fn open_file(path: &std::path::Path) -> Result<std::io::BufReader<std::fs::File>, FileError> {
    crate::input::open(path)
        .map(std::io::BufReader::new)
        .map_err(|source| FileError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Reads a flavor catalog file; errors name the file and line.
pub fn open_catalog(path: &std::path::Path) -> Result<Catalog, FileError> {
    read_catalog(open_file(path)?).map_err(|error| FileError::Csv {
        path: path.to_path_buf(),
        error,
    })
}

/// Opens a trace file as a stream of rows (row errors carry their line;
/// the caller names the file).
pub fn open_trace<'c>(
    path: &std::path::Path,
    catalog: &'c Catalog,
    skip_bad_rows: bool,
) -> Result<TraceReader<'c, std::io::BufReader<std::fs::File>>, FileError> {
    TraceReader::new(open_file(path)?, catalog, skip_bad_rows).map_err(|error| FileError::Csv {
        path: path.to_path_buf(),
        error,
    })
}

/// The most vCPUs and memory a flavor may ask for: far beyond any host,
/// and small enough that sums over a fleet never overflow.
pub const MAX_FLAVOR_VCPUS: i64 = 1 << 16;
pub const MAX_FLAVOR_MEMORY_MB: i64 = 1 << 32;

/// The one check of a flavor's name and size, for catalog files and a
/// scenario's inline list alike.
pub fn check_flavor(
    name: &str,
    vcpus: i64,
    memory_mb: i64,
    extra_specs: &[(String, String)],
) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty flavor name".into());
    }
    if !(1..=MAX_FLAVOR_VCPUS).contains(&vcpus) {
        return Err(format!(
            "vcpus `{vcpus}` is not a positive integer up to {MAX_FLAVOR_VCPUS}"
        ));
    }
    if !(1..=MAX_FLAVOR_MEMORY_MB).contains(&memory_mb) {
        return Err(format!(
            "memory_mb `{memory_mb}` is not a positive integer up to {MAX_FLAVOR_MEMORY_MB}"
        ));
    }
    // Nova's checks let a negative guest cell size through when the sizes
    // still sum to the flavor's memory; a simulator cannot claim it.
    for (key, value) in extra_specs {
        if key.starts_with("hw:numa_mem.")
            && !value
                .parse::<i64>()
                .is_ok_and(|mb| (1..=memory_mb).contains(&mb))
        {
            return Err(format!(
                "extra_specs: {key} = `{value}`: expected a guest NUMA cell's memory, a positive number of MB up to the flavor's {memory_mb}"
            ));
        }
    }
    Ok(())
}

/// Parses `key=value;key=value` (empty string = no pairs).
pub fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in text.split(';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((k, v)) = part.split_once('=') else {
            return Err(format!("`{part}` is not key=value"));
        };
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

fn columns(
    headers: &csv::StringRecord,
    required: &[&str],
) -> Result<HashMap<String, usize>, CsvError> {
    let map: HashMap<String, usize> = headers
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim().to_string(), i))
        .collect();
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|h| !map.contains_key(*h))
        .collect();
    if !missing.is_empty() {
        return Err(at(
            1,
            format!(
                "header lacks column(s) {}; expected {}",
                missing.join(", "),
                required.join(",")
            ),
        ));
    }
    Ok(map)
}

pub fn read_catalog(input: impl Read) -> Result<Catalog, CsvError> {
    let mut r = csv::ReaderBuilder::new().flexible(false).from_reader(input);
    let headers = r
        .headers()
        .map_err(|e| at(1, format!("cannot read the header: {e}")))?
        .clone();
    let cols = columns(&headers, &["name", "vcpus", "memory_mb", "extra_specs"])?;
    let mut flavors = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| CsvError {
            line: e.position().map(|p| p.line()),
            message: e.to_string(),
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        let get = |k: &str| rec.get(cols[k]).unwrap_or("").trim();
        let name = get("name");
        let integer = |k: &str| -> Result<i64, CsvError> {
            get(k)
                .parse()
                .map_err(|_| at(line, format!("{k} `{}` is not a positive integer", get(k))))
        };
        let (vcpus, memory_mb) = (integer("vcpus")?, integer("memory_mb")?);
        let extra_specs =
            parse_pairs(get("extra_specs")).map_err(|m| at(line, format!("extra_specs: {m}")))?;
        check_flavor(name, vcpus, memory_mb, &extra_specs).map_err(|m| at(line, m))?;
        flavors.push(Flavor {
            name: name.to_string(),
            vcpus,
            memory_mb,
            extra_specs,
        });
    }
    Catalog::new(flavors).map_err(|m| CsvError {
        line: None,
        message: m,
    })
}

/// Streams a trace, validating as it goes. With `skip_bad_rows`, bad rows
/// are counted in `skipped` instead of failing the run.
/// The trace's columns, in the order of `TraceReader::cols`.
const TRACE_COLUMNS: [&str; 5] = ["id", "arrival_s", "departure_s", "flavor", "image_props"];

pub struct TraceReader<'c, R: Read> {
    records: csv::StringRecordsIntoIter<R>,
    /// Column positions of id, arrival_s, departure_s, flavor and (when
    /// present) image_props: resolved once from the header.
    cols: [Option<usize>; 5],
    catalog: &'c Catalog,
    seen: HashSet<String>,
    last_arrival: f64,
    next_row: usize,
    pub skip_bad_rows: bool,
    pub skipped: u64,
    /// The first bad rows skipped, for the report.
    pub skipped_examples: Vec<String>,
}

impl<'c, R: Read> TraceReader<'c, R> {
    pub fn new(input: R, catalog: &'c Catalog, skip_bad_rows: bool) -> Result<Self, CsvError> {
        let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(input);
        let headers = r
            .headers()
            .map_err(|e| at(1, format!("cannot read the header: {e}")))?
            .clone();
        let by_name = columns(&headers, &["id", "arrival_s", "departure_s", "flavor"])?;
        let cols = TRACE_COLUMNS.map(|k| by_name.get(k).copied());
        Ok(TraceReader {
            records: r.into_records(),
            cols,
            catalog,
            seen: HashSet::new(),
            last_arrival: f64::NEG_INFINITY,
            next_row: 0,
            skip_bad_rows,
            skipped: 0,
            skipped_examples: Vec::new(),
        })
    }

    fn parse(&mut self, rec: &csv::StringRecord) -> Result<TraceRow, CsvError> {
        let line = rec.position().map_or(0, |p| p.line());
        let get = |k: &str| {
            let c = TRACE_COLUMNS.iter().position(|n| *n == k);
            c.and_then(|c| self.cols[c])
                .and_then(|i| rec.get(i))
                .unwrap_or("")
                .trim()
        };
        let id = get("id");
        if id.is_empty() {
            return Err(at(line, "empty id"));
        }
        let time = |k: &str| -> Result<f64, CsvError> {
            let v = get(k);
            let t: f64 = v
                .parse()
                .map_err(|_| at(line, format!("{k} `{v}` is not a number of seconds")))?;
            if !t.is_finite() {
                return Err(at(line, format!("{k} `{v}` must be finite")));
            }
            Ok(t)
        };
        let arrival_s = time("arrival_s")?;
        let departure_s = if get("departure_s").is_empty() {
            None
        } else {
            Some(time("departure_s")?)
        };
        if let Some(d) = departure_s
            && d <= arrival_s
        {
            return Err(at(
                line,
                format!("departure_s {d} is not after arrival_s {arrival_s}"),
            ));
        }
        if arrival_s < self.last_arrival {
            return Err(at(
                line,
                format!(
                    "arrival_s {arrival_s} is before the previous row's {}: rows must be in arrival order",
                    self.last_arrival
                ),
            ));
        }
        let flavor_name = get("flavor");
        let flavor = self
            .catalog
            .position(flavor_name)
            .ok_or_else(|| at(line, format!("unknown flavor `{flavor_name}`")))?;
        let image_props =
            parse_pairs(get("image_props")).map_err(|m| at(line, format!("image_props: {m}")))?;
        if self.seen.contains(id) {
            return Err(at(line, format!("duplicate id `{id}`")));
        }
        let id = id.to_string();
        self.seen.insert(id.clone());
        self.last_arrival = arrival_s;
        let row = self.next_row;
        self.next_row += 1;
        Ok(TraceRow {
            row,
            line,
            id,
            arrival_s,
            departure_s,
            flavor,
            image_props,
        })
    }
}

impl<R: Read> Iterator for TraceReader<'_, R> {
    type Item = Result<TraceRow, CsvError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let rec = match self.records.next()? {
                Ok(r) => r,
                Err(e) => {
                    return Some(Err(CsvError {
                        line: e.position().map(|p| p.line()),
                        message: e.to_string(),
                    }));
                }
            };
            match self.parse(&rec) {
                Ok(row) => return Some(Ok(row)),
                Err(e) if self.skip_bad_rows => {
                    self.skipped += 1;
                    if self.skipped_examples.len() < 5 {
                        self.skipped_examples.push(e.to_string());
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        read_catalog("name,vcpus,memory_mb,extra_specs\nsmall,1,1024,\nnuma,4,4096,hw:numa_nodes=2;hw:cpu_policy=dedicated\n".as_bytes()).unwrap()
    }

    #[test]
    fn catalog_and_pairs() {
        let c = catalog();
        assert_eq!(c.get("numa").unwrap().extra_specs.len(), 2);
        assert!(
            read_catalog("name,vcpus\nx,1\n".as_bytes())
                .unwrap_err()
                .to_string()
                .contains("memory_mb")
        );
        assert!(
            read_catalog("name,vcpus,memory_mb,extra_specs\nx,0,1,\n".as_bytes())
                .unwrap_err()
                .to_string()
                .contains("line 2")
        );
    }

    #[test]
    fn trace_errors_name_the_line() {
        let c = catalog();
        let cases = [
            ("a,5,4,small\n", "not after"),
            ("a,5,,tiny\n", "unknown flavor"),
            ("a,5,,small\na,6,,small\n", "duplicate id"),
            ("a,5,,small\nb,4,,small\n", "arrival order"),
            ("a,x,,small\n", "not a number"),
        ];
        for (body, msg) in cases {
            let text = format!("id,arrival_s,departure_s,flavor\n{body}");
            let err = TraceReader::new(text.as_bytes(), &c, false)
                .unwrap()
                .find_map(Result::err)
                .unwrap();
            assert!(err.to_string().contains(msg), "{err}");
            assert!(err.line.is_some());
            let mut skipping = TraceReader::new(text.as_bytes(), &c, true).unwrap();
            assert!(skipping.by_ref().all(|r| r.is_ok()));
            assert_eq!(skipping.skipped, 1);
        }
    }
}
