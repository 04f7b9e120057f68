//! The `numasim` command line: parses flags, calls the library, maps errors
//! to exit codes (2 = bad input, 1 = a check failed).

mod cli;

// Long runs interleave long-lived guest records with short-lived fit
// scratch; glibc's allocator fragments and spends a third of the time
// consolidating (measured: benches/results). mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(cli::run());
}
