//! `mmf`: the command-line face of the mmf library. Thin by design: parse, call the library,
//! print; errors become one line on stderr and a documented exit code.

#![forbid(unsafe_code)]

mod args;
mod cmd;
mod duration;
mod exit;
mod follow;
mod interrupt;
mod size;
mod time;

use std::process::ExitCode;

fn main() -> ExitCode {
    // A channel truncated under this process (`watch` runs for hours) is an error, not a
    // SIGBUS death; any other SIGBUS keeps its default action. Where there is no handler
    // (outside Linux), the command runs as before.
    let _ = mmf::truncation::install();
    let cli = args::Cli::from_env();
    exit::set_quiet(cli.quiet);
    let verb = cli.command.verb();
    let name = cli.command.name().map(std::ffi::OsStr::to_os_string);
    let result = cmd::run(cli);
    // A signal that came after the wait had returned (while the value was being printed, or
    // on the way out) ends the process as one during the wait does, whatever the result: a
    // script's loop must stop on Ctrl-C then too. Everything the command held is dropped.
    if interrupt::requested() {
        interrupt::end_by_signal();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if exit::is_broken_pipe(&err) {
                // The reader of our output went away (`mmf read T | head -c1`): not an error.
                return ExitCode::SUCCESS;
            }
            let code = exit::code(&err);
            let message = exit::report(&err, verb, name.as_deref());
            if !message.is_empty() && code != exit::INTERRUPTED {
                exit::say(format_args!("{message}"));
            }
            ExitCode::from(code)
        }
    }
}
