//! `mmf`: the command-line face of the mmf library. Thin by design: parse, call the library,
//! print; errors become one line on stderr and a documented exit code.

#![forbid(unsafe_code)]

mod args;
mod cmd;
mod exit;
mod size;
mod time;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match cmd::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if exit::is_broken_pipe(&err) {
                // The reader of our output went away (`mmf read T | head -c1`): not an error.
                return ExitCode::SUCCESS;
            }
            let _ = writeln!(std::io::stderr(), "mmf: {}", exit::message(&err));
            ExitCode::from(exit::code(&err))
        }
    }
}
