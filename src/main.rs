//! The `numasim` command line: parses flags, calls the library, maps errors
//! to exit codes (2 = bad input, 1 = a check failed).

mod cli;

fn main() {
    std::process::exit(cli::run());
}
