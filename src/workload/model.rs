//! The workload as values: a flavor catalog, the guests of a trace (one
//! row each), and the error a bad row is. The simulator core reads these;
//! the readers that produce them (CSV, converters, synthetic streams) live
//! beside this module.

use crate::request::Flavor;
use std::collections::HashMap;

/// A problem in a CSV input: the line (1-based, as an editor shows it) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct CsvError {
    pub line: Option<u64>,
    pub message: String,
}

/// A flavor catalog in file order.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub flavors: Vec<Flavor>,
    index: HashMap<String, usize>,
}

impl Catalog {
    pub fn new(flavors: Vec<Flavor>) -> Result<Catalog, String> {
        let mut index = HashMap::new();
        for (i, f) in flavors.iter().enumerate() {
            if index.insert(f.name.clone(), i).is_some() {
                return Err(format!("flavor `{}` is defined twice", f.name));
            }
        }
        Ok(Catalog { flavors, index })
    }
    pub fn get(&self, name: &str) -> Option<&Flavor> {
        self.index.get(name).map(|&i| &self.flavors[i])
    }
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// A per-flavor setting (`touched_fraction`, `growth`, `manual`, ...)
    /// for every catalog flavor: the flavor's own entry, else its base
    /// flavor's (a shaped variant `base+shape`), else the `*` entry; empty
    /// when the map is. The one lookup every per-flavor setting uses.
    pub fn per_flavor<'m, T>(
        &self,
        map: &'m std::collections::BTreeMap<String, T>,
    ) -> Vec<Option<&'m T>> {
        if map.is_empty() {
            return Vec::new();
        }
        self.flavors
            .iter()
            .map(|f| {
                let base = f.name.split('+').next().unwrap_or(&f.name);
                map.get(&f.name)
                    .or_else(|| map.get(base))
                    .or_else(|| map.get("*"))
            })
            .collect()
    }

    /// The names of a per-flavor map that name no catalog flavor (`*` aside).
    pub fn unknown_names<'m, T>(
        &self,
        map: &'m std::collections::BTreeMap<String, T>,
    ) -> Vec<&'m str> {
        map.keys()
            .map(String::as_str)
            .filter(|n| *n != "*" && self.position(n).is_none())
            .collect()
    }
}

/// One guest of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    /// 0-based position among the accepted rows.
    pub row: usize,
    pub line: u64,
    pub id: String,
    pub arrival_s: f64,
    pub departure_s: Option<f64>,
    /// Index into the catalog.
    pub flavor: usize,
    pub image_props: Vec<(String, String)>,
}
