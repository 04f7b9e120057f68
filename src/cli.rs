use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use numasim::load;
use numasim::topology::import::Format;
use numasim::topology::{presets, render, wire};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "numasim",
    version,
    about = "Discrete-event simulator for NUMA-aware guest placement"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect and convert host topologies.
    Topology {
        #[command(subcommand)]
        command: TopologyCmd,
    },
    /// Answer fit cases (JSON Lines, FORMAT.md) with the fit engine.
    Fit {
        /// Cases file; standard input when absent.
        file: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "nova")]
        mode: numasim::fit::Mode,
    },
}

#[derive(Subcommand)]
enum TopologyCmd {
    /// Print a host (file, sysfs directory such as `/`, or preset name).
    Show {
        host: String,
        #[arg(long, value_enum, default_value = "text")]
        format: ShowFormat,
        /// Force the input format instead of detecting it from the content.
        #[arg(long, value_enum)]
        format_in: Option<Format>,
    },
    /// Write the canonical JSON form that scenarios can reference.
    Convert {
        host: String,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, value_enum)]
        format_in: Option<Format>,
    },
    /// List the built-in host presets.
    Presets,
}

#[derive(Clone, Copy, ValueEnum)]
enum ShowFormat {
    Text,
    Json,
}

pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            2
        }
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Topology { command } => topology(command),
        Command::Fit { file, mode } => fit(file, mode),
    }
}

fn topology(cmd: TopologyCmd) -> Result<i32> {
    match cmd {
        TopologyCmd::Show {
            host,
            format,
            format_in,
        } => {
            let host = load::load_host(&host, format_in)?;
            match format {
                ShowFormat::Text => print!("{}", render::text(&host)),
                ShowFormat::Json => println!("{}", wire::to_json(&host)),
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
                println!("{:<16} {}", p.name, p.about);
            }
        }
    }
    Ok(0)
}

/// Writes to a temporary file beside the target and renames it, so a failed
/// run never leaves a partial file that looks complete.
pub fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension()
            .map(|e| e.to_string_lossy().to_string())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// One result line per case line, in order; a line that is not JSON gets an
/// `input` error result naming its line number, like the oracle.
fn fit(file: Option<PathBuf>, mode: numasim::fit::Mode) -> Result<i32> {
    use std::io::{BufRead, Write};
    let reader: Box<dyn BufRead> = match &file {
        Some(p) => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).with_context(|| format!("{}: cannot open", p.display()))?,
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
