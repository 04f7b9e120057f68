//! The `numasim` command line: parses flags, calls the library, maps errors
//! to exit codes (2 = bad input, 1 = a check failed, 3 = an internal
//! invariant broke: numasim's bug, not the input's).

mod cli;

// Long runs interleave long-lived guest records with short-lived fit
// scratch; glibc's allocator fragments and spends a third of the time
// consolidating (measured: benches/results). mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // `numasim run ... | head` must end quietly, as Unix tools do, rather
    // than panic on the closed pipe: restore the default SIGPIPE action
    // that Rust's runtime sets to ignore.
    #[cfg(unix)]
    // SAFETY: called first thing, before any thread exists; it only
    // changes the disposition of SIGPIPE back to the system default.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(cli::run());
}
