//! `numasim trace convert`: public traces into the native trace and flavor
//! CSVs. Each reader streams its source row by row and yields compact guest
//! records (about 40 bytes each, whatever the width of the source's rows);
//! the cuts (`--since/--until`, `--sample`, `--limit`) apply on the way, and
//! the kept records are sorted by arrival (most sources are not sorted).
//! Each reader's doc comment gives its columns and its mapping rule.

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
    /// Guests left out by the cuts (window, sample, limit).
    pub cut: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct ConvertError {
    pub line: Option<u64>,
    pub message: String,
}

fn at(line: u64, message: impl Into<String>) -> ConvertError {
    ConvertError {
        line: Some(line),
        message: message.into(),
    }
}

/// The source formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Alibaba GPU cluster trace 2023 pod list (`openb_pod_list_*.csv`).
    #[value(name = "alibaba-gpu-2023")]
    AlibabaGpu2023,
    /// Azure Public Dataset V1 `vmtable.csv` (exact cores and memory).
    #[value(name = "azure-v1")]
    AzureV1,
    /// Azure Public Dataset V2 `vmtable.csv` (core and memory buckets).
    #[value(name = "azure-v2")]
    AzureV2,
    /// Azure Packing Trace 2020 (SQLite: tables `vm` and `vmType`).
    #[value(name = "azure-packing-2020")]
    AzurePacking2020,
    /// Huawei Cloud `Huawei-East-1.csv` (create/delete event rows).
    #[value(name = "huawei-east-1")]
    HuaweiEast1,
}

/// Cutting a trace down, as users of other simulators keep asking for.
#[derive(Debug, Clone, Default)]
pub struct Cuts {
    /// Keep guests arriving at or after this time (s); times are shifted so it becomes 0.
    pub since: Option<f64>,
    /// Keep guests arriving before this time (s, in the source's clock).
    pub until: Option<f64>,
    /// Keep each guest with this probability, seeded by `seed` and its id.
    pub sample: Option<f64>,
    /// Keep the first N guests (by arrival) that pass the other cuts.
    pub limit: Option<usize>,
    pub seed: u64,
}

/// Options of the formats whose sizes need interpreting.
#[derive(Debug, Clone)]
pub struct SizeRules {
    /// Azure Packing 2020 sizes are fractions of one machine: its cores and GB.
    pub machine_cores: f64,
    pub machine_memory_gb: f64,
}

impl Default for SizeRules {
    fn default() -> Self {
        // A common Azure host generation of 2020: 2 x 24 cores (no SMT), 384 GB.
        SizeRules {
            machine_cores: 48.0,
            machine_memory_gb: 384.0,
        }
    }
}

/// One guest, compact.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestRecord {
    pub id: String,
    pub arrival_s: f64,
    /// `None`: still running at the end of the trace.
    pub departure_s: Option<f64>,
    pub vcpus: u32,
    pub memory_mb: u64,
    /// Source line (or row number), for ordering ties and error messages.
    pub line: u64,
}

/// What a reader yields: a guest, or a row dropped for a reason.
pub enum Item {
    Guest(GuestRecord),
    Dropped(String),
}

type Rows<'a> = Box<dyn Iterator<Item = Result<Item, ConvertError>> + 'a>;

fn csv_reader(input: impl Read, headers: bool) -> csv::Reader<impl Read> {
    csv::ReaderBuilder::new()
        .has_headers(headers)
        .flexible(true)
        .from_reader(input)
}

fn field(rec: &csv::StringRecord, i: usize) -> &str {
    rec.get(i).unwrap_or("").trim()
}

fn number(rec: &csv::StringRecord, i: usize, what: &str, line: u64) -> Result<f64, ConvertError> {
    let v = field(rec, i);
    v.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
        .ok_or_else(|| at(line, format!("{what} `{v}` is not a number")))
}

fn line_of(rec: &csv::StringRecord) -> u64 {
    rec.position().map_or(0, |p| p.line())
}

fn csv_error(e: csv::Error) -> ConvertError {
    ConvertError {
        line: e.position().map(|p| p.line()),
        message: e.to_string(),
    }
}

/// Alibaba GPU cluster trace 2023 (`openb_pod_list_*.csv`: `name,cpu_milli,
/// memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,
/// deletion_time,scheduled_time`). Rule: one guest per pod, vCPUs =
/// ceil(cpu_milli / 1000), memory = memory_mib MB, arrival = creation_time,
/// departure = deletion_time. GPUs are not modelled. Pods whose deletion is
/// not after their creation, or without CPU or memory, are dropped.
fn alibaba_rows<'a>(input: impl Read + 'a) -> Result<Rows<'a>, ConvertError> {
    let mut r = csv_reader(input, true);
    let headers = r.headers().map_err(csv_error)?.clone();
    let col = |name: &str| {
        headers.iter().position(|h| h.trim() == name).ok_or_else(|| {
            at(1, format!("header lacks `{name}`; expected the openb_pod_list columns name,cpu_milli,memory_mib,...,creation_time,deletion_time"))
        })
    };
    let (c_name, c_cpu, c_mem, c_create, c_delete) = (
        col("name")?,
        col("cpu_milli")?,
        col("memory_mib")?,
        col("creation_time")?,
        col("deletion_time")?,
    );
    Ok(Box::new(r.into_records().map(move |rec| {
        let rec = rec.map_err(csv_error)?;
        let line = line_of(&rec);
        let cpu = number(&rec, c_cpu, "cpu_milli", line)?;
        let mem = number(&rec, c_mem, "memory_mib", line)?;
        let created = number(&rec, c_create, "creation_time", line)?;
        let deleted = number(&rec, c_delete, "deletion_time", line)?;
        let name = field(&rec, c_name).to_string();
        if deleted <= created || cpu <= 0.0 || mem <= 0.0 {
            return Ok(Item::Dropped(format!("line {line}: {name}")));
        }
        Ok(Item::Guest(GuestRecord {
            id: name,
            arrival_s: created,
            departure_s: Some(deleted),
            vcpus: (cpu / 1000.0).ceil() as u32,
            memory_mb: mem.round() as u64,
            line,
        }))
    })))
}

/// Azure Public Dataset V1 and V2 `vmtable.csv`, no header: `vmid,
/// subscriptionid, deploymentid, vmcreated, vmdeleted, maxcpu, avgcpu,
/// p95maxcpu, vmcategory, vmcorecount, vmmemory`. Times are seconds from the
/// trace start. V1: exact cores and memory in GB (`1,1.75`); memory MB =
/// round(GB x 1024). V2: the last two are buckets (`2`, `4`, `8`, `24`,
/// `>24`; `2`, `4`, `8`, `32`, `64`, `>64`): a bucket `k` is read as k cores
/// or k GB (its upper bound), `>24` as 32 cores and `>64` as 128 GB (the next
/// Azure size up). A VM deleted at or before its creation is dropped.
fn azure_rows<'a>(input: impl Read + 'a, buckets: bool) -> Result<Rows<'a>, ConvertError> {
    let r = csv_reader(input, false);
    Ok(Box::new(r.into_records().map(move |rec| {
        let rec = rec.map_err(csv_error)?;
        let line = line_of(&rec);
        if rec.len() < 11 {
            return Err(at(
                line,
                format!(
                    "{} fields; expected the 11 vmtable columns vmid,subscriptionid,deploymentid,vmcreated,vmdeleted,maxcpu,avgcpu,p95maxcpu,vmcategory,vmcorecount,vmmemory",
                    rec.len()
                ),
            ));
        }
        let created = number(&rec, 3, "vmcreated", line)?;
        let deleted = number(&rec, 4, "vmdeleted", line)?;
        let (cores, gb) = if buckets {
            let bucket = |i: usize, what: &str, top: f64| -> Result<f64, ConvertError> {
                let v = field(&rec, i);
                if let Some(rest) = v.strip_prefix('>') {
                    rest.trim()
                        .parse::<f64>()
                        .map(|_| top)
                        .map_err(|_| at(line, format!("{what} bucket `{v}` is not `N` or `>N`")))
                } else {
                    v.parse::<f64>()
                        .map_err(|_| at(line, format!("{what} bucket `{v}` is not `N` or `>N`")))
                }
            };
            (
                bucket(9, "vmcorecount", 32.0)?,
                bucket(10, "vmmemory", 128.0)?,
            )
        } else {
            (
                number(&rec, 9, "vmcorecount", line)?,
                number(&rec, 10, "vmmemory", line)?,
            )
        };
        let id = field(&rec, 0).to_string();
        if deleted <= created || cores <= 0.0 || gb <= 0.0 {
            return Ok(Item::Dropped(format!("line {line}: {id}")));
        }
        Ok(Item::Guest(GuestRecord {
            id,
            arrival_s: created,
            departure_s: Some(deleted),
            vcpus: cores.ceil() as u32,
            memory_mb: (gb * 1024.0).round() as u64,
            line,
        }))
    })))
}

/// Huawei Cloud `Huawei-East-1.csv`: `vmid,cpu,memory,time,type` with a
/// header, one row per event, `type` 0 = create, 1 = delete; memory in GB.
/// Rule: a guest per create row; its departure is the time of the first
/// delete row of the same vmid after it (none: it runs to the end). Delete
/// rows of unknown VMs are dropped. Events are read in file order; the
/// guests still waiting for their delete are held (one small record each).
fn huawei_rows<'a>(input: impl Read + 'a) -> Result<Rows<'a>, ConvertError> {
    let mut r = csv_reader(input, true);
    let headers = r.headers().map_err(csv_error)?.clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                at(
                    1,
                    format!("header lacks `{name}`; expected vmid,cpu,memory,time,type"),
                )
            })
    };
    let (c_id, c_cpu, c_mem, c_time, c_type) = (
        col("vmid")?,
        col("cpu")?,
        col("memory")?,
        col("time")?,
        col("type")?,
    );
    let mut open: BTreeMap<String, GuestRecord> = BTreeMap::new();
    let mut items: Vec<Result<Item, ConvertError>> = Vec::new();
    for rec in r.into_records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                items.push(Err(csv_error(e)));
                break;
            }
        };
        let line = line_of(&rec);
        let parsed = (|| -> Result<Option<Item>, ConvertError> {
            let id = field(&rec, c_id).to_string();
            let t = number(&rec, c_time, "time", line)?;
            match field(&rec, c_type) {
                "0" => {
                    let cpu = number(&rec, c_cpu, "cpu", line)?;
                    let gb = number(&rec, c_mem, "memory", line)?;
                    if cpu <= 0.0 || gb <= 0.0 {
                        return Ok(Some(Item::Dropped(format!("line {line}: {id}"))));
                    }
                    let guest = GuestRecord {
                        id: id.clone(),
                        arrival_s: t,
                        departure_s: None,
                        vcpus: cpu.ceil() as u32,
                        memory_mb: (gb * 1024.0).round() as u64,
                        line,
                    };
                    // A second create of a live id ends the first (it was never deleted).
                    Ok(open.insert(id, guest).map(Item::Guest))
                }
                "1" => match open.remove(&id) {
                    Some(mut g) if t > g.arrival_s => {
                        g.departure_s = Some(t);
                        Ok(Some(Item::Guest(g)))
                    }
                    Some(g) => Ok(Some(Item::Dropped(format!("line {}: {}", g.line, g.id)))),
                    None => Ok(Some(Item::Dropped(format!(
                        "line {line}: delete of unknown {id}"
                    )))),
                },
                other => Err(at(
                    line,
                    format!("type `{other}`: expected 0 (create) or 1 (delete)"),
                )),
            }
        })();
        match parsed {
            Ok(Some(item)) => items.push(Ok(item)),
            Ok(None) => {}
            Err(e) => {
                items.push(Err(e));
                break;
            }
        }
    }
    items.extend(open.into_values().map(|g| Ok(Item::Guest(g))));
    Ok(Box::new(items.into_iter()))
}

/// Azure Packing Trace 2020, a SQLite database: `vm(vmId, tenantId,
/// vmTypeId, priority, starttime, endtime)` with times in fractional days
/// (negative start: alive before the window; NULL end: still alive), and
/// `vmType(id, vmTypeId, machineId, core, memory, ...)` with sizes as
/// fractions of one machine of `machineId`. Rule: times x 86400 s, a
/// negative start becomes 0; a VM type's size is taken on the machine with
/// the smallest `machineId` that lists it, vCPUs = max(1, round(core x
/// machine cores)), memory = round(memory x machine GB x 1024) MB, with the
/// machine given by `SizeRules` (the trace does not say).
fn azure_packing_rows<'a>(
    path: &std::path::Path,
    rules: &SizeRules,
) -> Result<Rows<'a>, ConvertError> {
    let no_line = |m: String| ConvertError {
        line: None,
        message: m,
    };
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| no_line(format!("not a SQLite database: {e}")))?;
    let mut sizes: BTreeMap<i64, (u32, u64)> = BTreeMap::new();
    {
        let mut st = db
            .prepare(
                "SELECT vmTypeId, machineId, core, memory FROM vmType ORDER BY vmTypeId, machineId",
            )
            .map_err(|e| {
                no_line(format!(
                    "table vmType(vmTypeId, machineId, core, memory): {e}"
                ))
            })?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, f64>(2)?,
                    r.get::<_, f64>(3)?,
                ))
            })
            .map_err(|e| no_line(format!("vmType: {e}")))?;
        for row in rows {
            let (ty, core, mem) = row.map_err(|e| no_line(format!("vmType: {e}")))?;
            sizes.entry(ty).or_insert((
                ((core * rules.machine_cores).round() as u32).max(1),
                (mem * rules.machine_memory_gb * 1024.0).round() as u64,
            ));
        }
    }
    let mut st = db
        .prepare("SELECT vmId, vmTypeId, starttime, endtime FROM vm ORDER BY rowid")
        .map_err(|e| no_line(format!("table vm(vmId, vmTypeId, starttime, endtime): {e}")))?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, f64>(2)?,
                r.get::<_, Option<f64>>(3)?,
            ))
        })
        .map_err(|e| no_line(format!("vm: {e}")))?;
    let mut items = Vec::new();
    for (k, row) in rows.enumerate() {
        let line = k as u64 + 1;
        let (id, ty, start, end) = row.map_err(|e| at(line, format!("vm row: {e}")))?;
        let Some(&(vcpus, memory_mb)) = sizes.get(&ty) else {
            items.push(Ok(Item::Dropped(format!(
                "vm row {line}: vmTypeId {ty} not in vmType"
            ))));
            continue;
        };
        let arrival = (start * 86400.0).max(0.0);
        let departure = end.map(|e| e * 86400.0);
        if departure.is_some_and(|d| d <= arrival) || memory_mb == 0 {
            items.push(Ok(Item::Dropped(format!("vm row {line}: vm {id}"))));
            continue;
        }
        items.push(Ok(Item::Guest(GuestRecord {
            id: format!("vm{id}"),
            arrival_s: arrival,
            departure_s: departure,
            vcpus,
            memory_mb,
            line,
        })));
    }
    Ok(Box::new(items.into_iter()))
}

/// Keeps a guest with probability `fraction`, decided by its id and the
/// seed alone: the same guests whatever the order or the other cuts.
fn sampled(id: &str, seed: u64, fraction: f64) -> bool {
    crate::stable_hash::draws(id, seed, fraction)
}

/// The guest as the native reader accepts it, or why it is dropped: a
/// unique non-empty id, finite times with the departure after the arrival
/// (an infinite departure means the guest stays: repaired to none), and a
/// flavor size the catalog check accepts.
fn readable(mut g: GuestRecord, ids: &mut std::collections::HashSet<String>) -> Item {
    let why = |m: String| Item::Dropped(format!("line {}: {m}", g.line));
    if g.id.is_empty() {
        return why("empty id".into());
    }
    if !g.arrival_s.is_finite() {
        return why(format!("arrival {} is not finite", g.arrival_s));
    }
    if g.departure_s.is_some_and(|d| d == f64::INFINITY) {
        g.departure_s = None;
    }
    if let Some(d) = g.departure_s
        && !(d.is_finite() && d > g.arrival_s)
    {
        return why(format!(
            "departure {d} is not after arrival {}",
            g.arrival_s
        ));
    }
    let memory_mb = i64::try_from(g.memory_mb).unwrap_or(i64::MAX);
    if let Err(m) = crate::workload::trace::check_flavor("size", i64::from(g.vcpus), memory_mb, &[])
    {
        return why(m);
    }
    if !ids.insert(g.id.clone()) {
        return why(format!("duplicate id `{}`", g.id));
    }
    Item::Guest(g)
}

/// Reads `input` (a path: SQLite needs one) in `format`, applies the cuts,
/// and formats the native CSVs. Flavors are the distinct (vCPUs, memory)
/// pairs, named `c<vcpus>m<memory_mb>`.
pub fn convert(
    format: Format,
    input: &std::path::Path,
    cuts: &Cuts,
    rules: &SizeRules,
) -> Result<Converted, ConvertError> {
    if let Some(f) = cuts.sample
        && !(f > 0.0 && f <= 1.0)
    {
        return Err(ConvertError {
            line: None,
            message: format!("--sample {f}: expected a fraction in (0, 1]"),
        });
    }
    let open = || {
        crate::input::open(input)
            .map(std::io::BufReader::new)
            .map_err(|e| ConvertError {
                line: None,
                message: e.to_string(),
            })
    };
    let rows: Rows = match format {
        Format::AlibabaGpu2023 => alibaba_rows(open()?)?,
        Format::AzureV1 => azure_rows(open()?, false)?,
        Format::AzureV2 => azure_rows(open()?, true)?,
        Format::HuaweiEast1 => huawei_rows(open()?)?,
        Format::AzurePacking2020 => azure_packing_rows(input, rules)?,
    };
    let mut out = Converted::default();
    let mut guests: Vec<GuestRecord> = Vec::new();
    let mut ids: std::collections::HashSet<String> = std::collections::HashSet::new();
    for item in rows {
        // What numasim's own trace reader would refuse is dropped (and
        // counted) here, so a converted trace always reads back.
        let item = match item? {
            Item::Guest(g) => readable(g, &mut ids),
            dropped => dropped,
        };
        match item {
            Item::Dropped(what) => {
                out.dropped += 1;
                if out.dropped_examples.len() < 3 {
                    out.dropped_examples.push(what);
                }
            }
            Item::Guest(g) => {
                let in_window = cuts.since.is_none_or(|s| g.arrival_s >= s)
                    && cuts.until.is_none_or(|u| g.arrival_s < u);
                if in_window && cuts.sample.is_none_or(|f| sampled(&g.id, cuts.seed, f)) {
                    guests.push(g);
                } else {
                    out.cut += 1;
                }
            }
        }
    }
    guests.sort_by(|a, b| {
        a.arrival_s
            .total_cmp(&b.arrival_s)
            .then(a.line.cmp(&b.line))
    });
    if let Some(n) = cuts.limit
        && guests.len() > n
    {
        out.cut += guests.len() - n;
        guests.truncate(n);
    }
    let shift = cuts.since.unwrap_or(0.0);
    let mut flavors: BTreeMap<(u32, u64), String> = BTreeMap::new();
    out.trace_csv.push_str("id,arrival_s,departure_s,flavor\n");
    for g in &guests {
        let flavor = flavors
            .entry((g.vcpus, g.memory_mb))
            .or_insert_with(|| format!("c{}m{}", g.vcpus, g.memory_mb));
        let departure = g
            .departure_s
            .map(|d| format!("{}", d - shift))
            .unwrap_or_default();
        let id = if g.id.contains([',', '"', '\n']) {
            format!("\"{}\"", g.id.replace('"', "\"\""))
        } else {
            g.id.clone()
        };
        let _ = writeln!(
            out.trace_csv,
            "{id},{},{departure},{flavor}",
            g.arrival_s - shift
        );
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
    use super::*;

    fn run(format: Format, text: &str, cuts: &Cuts) -> Result<Converted, ConvertError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.csv");
        std::fs::write(&p, text).unwrap();
        convert(format, &p, cuts, &SizeRules::default())
    }

    #[test]
    fn alibaba_converts_sorts_and_drops() {
        let text = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n\
                    p1,1500,2048,0,0,,LS,Running,100,200,100\n\
                    p0,12000,16384,1,1000,,LS,Running,0,50,0\n\
                    p2,1000,1024,0,0,,BE,Failed,10,10,10\n";
        let c = run(Format::AlibabaGpu2023, text, &Cuts::default()).unwrap();
        assert_eq!(
            c.trace_csv,
            "id,arrival_s,departure_s,flavor\np0,0,50,c12m16384\np1,100,200,c2m2048\n"
        );
        assert_eq!(
            c.flavors_csv,
            "name,vcpus,memory_mb,extra_specs\nc2m2048,2,2048,\nc12m16384,12,16384,\n"
        );
        assert_eq!(c.dropped, 1);
        let e = run(Format::AlibabaGpu2023, "a,b\n1,2\n", &Cuts::default()).unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn azure_v2_buckets_follow_the_rule() {
        let text = "a,s,d,300,900,1,1,1,Interactive,2,4\nb,s,d,0,600,1,1,1,Interactive,>24,>64\n";
        let c = run(Format::AzureV2, text, &Cuts::default()).unwrap();
        assert_eq!(
            c.trace_csv,
            "id,arrival_s,departure_s,flavor\nb,0,600,c32m131072\na,300,900,c2m4096\n"
        );
        let e = run(
            Format::AzureV2,
            "a,s,d,0,600,1,1,1,I,big,4\n",
            &Cuts::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("line 1: vmcorecount bucket `big`"),
            "{e}"
        );
    }

    #[test]
    fn rows_the_reader_would_refuse_are_dropped_and_the_output_reads_back() {
        // A duplicate id and a zero-memory guest.
        let text = "vmid,cpu,memory,time,type\n1,2,4,0,0\n1,2,4,5,0\n2,1,0,6,0\n3,1,1,9,0\n";
        let c = run(Format::HuaweiEast1, text, &Cuts::default()).unwrap();
        assert_eq!(c.dropped, 2, "{:?}", c.dropped_examples);
        assert!(
            c.dropped_examples
                .iter()
                .any(|e| e.contains("duplicate id `1`")),
            "{:?}",
            c.dropped_examples
        );
        // An infinite departure is a guest that stays; a zero-size one goes.
        let inf = GuestRecord {
            id: "x".into(),
            arrival_s: 1.0,
            departure_s: Some(f64::INFINITY),
            vcpus: 1,
            memory_mb: 1,
            line: 7,
        };
        let mut ids = std::collections::HashSet::new();
        assert!(
            matches!(readable(inf.clone(), &mut ids), Item::Guest(g) if g.departure_s.is_none())
        );
        let zero = GuestRecord {
            id: "y".into(),
            memory_mb: 0,
            ..inf
        };
        assert!(
            matches!(readable(zero, &mut ids), Item::Dropped(m) if m.contains("memory_mb `0`"))
        );
        let catalog = crate::workload::trace::read_catalog(c.flavors_csv.as_bytes()).unwrap();
        let rows: Vec<_> =
            crate::workload::trace::TraceReader::new(c.trace_csv.as_bytes(), &catalog, false)
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        assert_eq!(rows.len(), 2);
    }

    #[test]
    fn huawei_pairs_creates_with_deletes() {
        let text = "vmid,cpu,memory,time,type\n1,2,4,0,0\n2,1,1,5,0\n1,2,4,50,1\n3,1,2,60,1\n";
        let c = run(Format::HuaweiEast1, text, &Cuts::default()).unwrap();
        assert_eq!(
            c.trace_csv,
            "id,arrival_s,departure_s,flavor\n1,0,50,c2m4096\n2,5,,c1m1024\n"
        );
        assert_eq!(c.dropped, 1, "the delete of unknown vm 3");
        let e = run(
            Format::HuaweiEast1,
            "vmid,cpu,memory,time,type\n1,2,4,0,7\n",
            &Cuts::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("line 2: type `7`"), "{e}");
    }

    #[test]
    fn cuts_window_sample_and_limit() {
        let mut text = String::from("vmid,cpu,memory,time,type\n");
        for i in 0..1000 {
            text.push_str(&format!("{i},1,1,{i},0\n"));
        }
        let window = Cuts {
            since: Some(100.0),
            until: Some(200.0),
            ..Cuts::default()
        };
        let c = run(Format::HuaweiEast1, &text, &window).unwrap();
        assert_eq!(c.rows, 100);
        assert!(c.trace_csv.lines().nth(1).unwrap().starts_with("100,0,"));
        let limited = run(
            Format::HuaweiEast1,
            &text,
            &Cuts {
                limit: Some(7),
                ..Cuts::default()
            },
        )
        .unwrap();
        assert_eq!((limited.rows, limited.cut), (7, 993));
        let sample = |seed| Cuts {
            sample: Some(0.25),
            seed,
            ..Cuts::default()
        };
        let a = run(Format::HuaweiEast1, &text, &sample(1)).unwrap();
        let b = run(Format::HuaweiEast1, &text, &sample(1)).unwrap();
        let other = run(Format::HuaweiEast1, &text, &sample(2)).unwrap();
        assert_eq!(a.trace_csv, b.trace_csv);
        assert_ne!(a.trace_csv, other.trace_csv);
        assert!((200..300).contains(&a.rows), "{}", a.rows);
        assert!(
            run(
                Format::HuaweiEast1,
                &text,
                &Cuts {
                    sample: Some(1.5),
                    ..Cuts::default()
                }
            )
            .is_err()
        );
    }
}
