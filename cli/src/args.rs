//! The command line, as data: every verb, flag and example lives here.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Named shared-memory channels from any shell: one process writes a value, others read the
/// latest one, never half of it.
#[derive(Debug, Parser)]
#[command(name = "mmf", version, about, long_about = None, after_help = TOP_EXAMPLES)]
// No `-V` of each verb (`mmf out T "$x"` with x=-V printed the version, exited 0 and
// published nothing): `mmf --version` alone says it.
#[command(arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Print no notes on standard error: none about waiting for a channel or following a new
    /// one, nor about the channel `new --force` replaced. Errors, damaged values waited past,
    /// and values `watch` skips are still reported.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

const TOP_EXAMPLES: &str = "\
CHANNELS:
  A NAME without '/' lives in shared memory (/dev/shm/mmf.NAME, gone after reboot;
  the environment variable MMF_SHM_DIR names another directory for them);
  a NAME with '/' (./state.mmf, /var/lib/app/state.mmf) is a file, persisted
  (unless its file system is in memory, as a tmpfs /tmp: `mmf info` says).

EXAMPLES:
  mmf new Test --size 1KiB
  mmf out Test 'Hello World!'
  mmf read Test
  echo '{\"pid\": 42, \"name\": \"pwsh\"}' | mmf out Test --json
  mmf read Test | jq .name
  mmf remove Test

EXIT CODES:
  0 ok   1 error   2 usage   3 no such channel   4 value too large
  5 invalid input   6 channel exists   7 no value yet   8 timed out
  9 the --pid process exited first   10 another writer claimed the channel
  A wait ended by Ctrl-C, SIGTERM or SIGHUP ends by that signal (status 130, 143, 129),
  as do SIGUSR1, SIGUSR2 and SIGALRM.";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a channel (New-MemoryMappedFile).
    #[command(
        after_help = "EXAMPLES:\n  mmf new Test --size 1KiB\n  mmf new ./state.mmf --size 4MB --mode 0644\n  mmf new Test --size 64KiB --force"
    )]
    New(NewArgs),
    /// Show a channel's header and current value's metadata (Open-MemoryMappedFile).
    #[command(
        visible_alias = "open",
        after_help = "A damaged current value shows as `value: unknown` with the reason (JSON: \"damage\"). On a\nchannel with checksums, info reads the value (up to 64 MiB) to check its checksum, which only a\nread does (JSON: \"checksum_checked\"); `list` reads no values.\n\nEXAMPLES:\n  mmf info Test\n  mmf info Test --json | jq .generation"
    )]
    Info(InfoArgs),
    /// Publish a value (Out-MemoryMappedFile).
    #[command(
        after_help = "EXAMPLES:\n  mmf out Test 'Hello World!'\n  mmf out Temp -5 --json\n  mmf out Test -- \"$text\"              # text that may start with '-'\n  echo '{\"a\": 1}' | mmf out Test --json\n  mmf out Test --bytes < image.png"
    )]
    Out(OutArgs),
    /// Print the current value (Read-MemoryMappedFile).
    #[command(
        after_help = "EXAMPLES:\n  mmf read Test\n  mmf read Test --pretty | jq .\n  mmf read Test --format bytes > copy.bin\n  mmf read Test --wait --timeout 5s      # the next value\n  mmf read Test --after 41               # a value newer than generation 41\n  mmf read Test --meta                   # with its generation and incarnation\n  mmf read Test --after 41 --incarnation 5d5de5bfc924f8bf  # also if Test was made anew"
    )]
    Read(ReadArgs),
    /// Print each new value as it is published, one per line (JSON as NDJSON; bytes as
    /// {"$bin": "<base64>"}; a text value with newlines spans lines: --meta or --json keeps
    /// each value on one line). The newest each time it looks: values published faster than
    /// it prints are skipped, and counted.
    #[command(
        after_help = "EXAMPLES:\n  mmf watch Test\n  mmf watch Test --count 10 --timeout 30s\n  mmf watch Status --meta | jq -c 'select(.value.loss < 0.1)'"
    )]
    Watch(WatchArgs),
    /// List the shared-memory channels on this host (those in /dev/shm or $MMF_SHM_DIR; file
    /// channels are not listed).
    #[command(
        visible_alias = "ls",
        after_help = "EXAMPLES:\n  mmf list\n  mmf list --names\n  mmf list --json | jq -r '.[] | select(.stale) | .name'"
    )]
    List(ListArgs),
    /// Remove channels (Remove-MemoryMappedFile).
    #[command(
        visible_alias = "rm",
        after_help = "Unlike the seed's Remove-MemoryMappedFile, which released the caller's handle, this\nremoves the name, for every process at once. Handles open keep the old memory. A\nshared-memory channel nobody removes outlives every process, holding its memory (about\n(readers + 2) x its size) until removed, pruned (`mmf prune`) or the machine restarts; a\nfile channel stays on its disk.\n\nEXAMPLES:\n  mmf remove Test\n  mmf remove ./state.mmf"
    )]
    Remove(RemoveArgs),
    /// Remove your stale channels (root: anyone's): no process maps them, their creator and last
    /// writer are gone, and nobody created them, wrote them with `mmf out` or read them with `mmf
    /// read` for an hour (--older-than).
    #[command(
        after_help = "Prune looks at the shared-memory channels only (those `mmf list` shows, in /dev/shm\nor $MMF_SHM_DIR); a file path channel is removed with `mmf remove PATH`, and what a\nkilled `new --force PATH` left beside it (.mmf-new-*) by the next `new --force` there, or rm.\n\nA channel used only from the command line has no process mapping it between\ncommands, so prune also asks how long ago it was created, or last written with `mmf out`\nor read with `mmf read` (the file's modification time): by default an hour. A crashed\nservice's channel qualifies an hour after its creation or its last such command.\n\nIt also removes the .mmf-new-* files that a `new --force` (or a removal) killed half-way left\nbehind, and the channels a `new` killed before they were ready left (empty or zeros: `list`\nshows them \"not initialised\"; this user's, held by no process, untouched for --older-than\nand at least a minute).\n\nWith PATTERNs, only the channels whose names match one (a harness cleaning up its own\nrun's channels and no one else's), and no .mmf-new-* files.\n\nEXAMPLES:\n  mmf prune --dry-run\n  mmf prune --older-than 10m\n  mmf prune --older-than 0s      # every stale channel, however recent\n  mmf prune 'bench-run42.*' --older-than 0s"
    )]
    Prune(PruneArgs),
    /// Publish again the newest earlier value still whole, when the current one is damaged (as a
    /// machine crash leaves a file channel that was not flushed), or a small value's own copy
    /// from the header when its frame alone is damaged; first, when no process has the channel
    /// open, free a writer lock that no process can hold any more.
    #[command(
        after_help = "A read of a damaged value fails (exit 1, \"is damaged: latest names generation ... but\", or\n\"checksum mismatch\" on a channel with checksums). The previous values usually are still\nwhole in their slots (without --checksum a small one, up to 120 B, also in the header):\nrecover publishes the newest one again, as the next generation. Without --checksum a payload\nthe crash left half written back cannot be told from a whole one. It changes nothing when the\ncurrent value is whole (a small value whose frame alone is damaged or left open, as `mmf info`\nreports, is published again from the header).\n\nA writer lock whose holder cannot be judged (a holder in another PID namespace without\nthe kernel's locks, or a stray write over the lock word) makes every publish time out (exit 8);\nrecover frees it, keeping the value, when no process has the channel open (`fuser -v FILE`\nnames those that have). While such a lock stays held (some process still has the channel\nopen, or a running process holds it without mmf's flock), recover says so, mends nothing\n(it would wait for that lock) and exits 1.\n\nEXAMPLES:\n  mmf recover ./state.mmf"
    )]
    Recover(RecoverArgs),
    /// Check what commonly breaks shared memory on this host.
    #[command(
        after_help = "EXAMPLES:\n  mmf doctor\n  mmf doctor --json | jq '.[] | select(.ok | not)'\n  mmf doctor --strict >/dev/null || echo 'shared memory needs a look'"
    )]
    Doctor(DoctorArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Every script completes verbs and flags; those of bash, zsh and fish also complete\nchannel names (from `mmf list --names`) where a verb takes an existing channel.\n\nEXAMPLES:\n  mmf completions bash > ~/.local/share/bash-completion/completions/mmf\n  mmf completions zsh > ~/.zfunc/_mmf    # ~/.zfunc in fpath, before compinit\n  mmf completions fish > ~/.config/fish/completions/mmf.fish\n  mmf completions powershell >> $PROFILE"
    )]
    Completions(CompletionsArgs),
}

impl Command {
    /// The one channel the verb acts on, if it takes one, for error messages (`exit::report`).
    pub fn name(&self) -> Option<&std::ffi::OsStr> {
        match self {
            Command::New(a) => Some(&a.name),
            Command::Info(a) => Some(&a.name),
            Command::Out(a) => Some(&a.name),
            Command::Read(a) => Some(&a.name),
            Command::Watch(a) => Some(&a.name),
            Command::Recover(a) => Some(&a.name),
            _ => None,
        }
    }

    /// The verb, for error messages that depend on what was asked (`exit::report`).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::New(_) => "new",
            Command::Info(_) => "info",
            Command::Out(_) => "out",
            Command::Read(_) => "read",
            Command::Watch(_) => "watch",
            Command::List(_) => "list",
            Command::Remove(_) => "remove",
            Command::Prune(_) => "prune",
            Command::Doctor(_) => "doctor",
            Command::Recover(_) => "recover",
            Command::Completions(_) => "completions",
        }
    }
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Channel name, or a file path (contains '/').
    pub name: std::ffi::OsString,
    /// Largest value the channel holds, in bytes or with a unit: 64KiB, 1G, 4MiB (powers of
    /// 1024: K, M, G, KiB, MiB, GiB) or 4MB (powers of 1000: KB, MB, GB).
    #[arg(short, long, value_parser = crate::size::parse_size, allow_hyphen_values = true)]
    pub size: usize,
    /// Readers that may hold a slot at once (each costs one slot of SIZE; default 4, at most
    /// 62; more readers than that still read, retrying more under a busy writer).
    #[arg(long, allow_negative_numbers = true)]
    pub readers: Option<usize>,
    /// Permission bits, octal, set exactly (default: 0600, owner only, less the umask).
    #[arg(long, value_parser = parse_mode, allow_hyphen_values = true)]
    pub mode: Option<u32>,
    /// Store a CRC-32 with every value and verify it on every read.
    #[arg(long)]
    pub checksum: bool,
    /// Replace an existing channel of that name at once (the new one is made aside and renamed
    /// over it: readers never find the name missing, and handles on the old one keep it). It
    /// keeps the old one's mode (unless --mode is given) and, as root, its owner, unless the old
    /// one is another user's in a directory anyone may write (/dev/shm, /tmp), where it may have
    /// been planted (a note on stderr says so); a path that is a link replaces the channel the
    /// link leads to, and a link that leads nowhere is replaced itself.
    #[arg(long, conflicts_with = "exist_ok")]
    pub force: bool,
    /// Open an existing channel instead of failing, as it is; one with a smaller SIZE, fewer
    /// --readers or other --mode bits than given, or no checksums where --checksum asks for
    /// them, is exit 6.
    #[arg(long)]
    pub exist_ok: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Channel name or file path.
    pub name: std::ffi::OsString,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RecoverArgs {
    /// Channel name or file path.
    pub name: std::ffi::OsString,
}

/// How `out` interprets its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InFormat {
    /// UTF-8 text (checked).
    Text,
    /// JSON, checked and stored as MessagePack.
    Json,
    /// A MessagePack document, checked and stored as is.
    Msgpack,
    /// Raw bytes.
    Bytes,
}

#[derive(Debug, Args)]
pub struct OutArgs {
    /// Channel name or file path.
    pub name: std::ffi::OsString,
    /// The value; read from standard input when absent or '-' (with standard input at /dev/null
    /// or closed that is an error, nothing published; with --lines it is no error: no lines). A negative number is a value (`mmf
    /// out T -5`, `-1e-05`, `-.5`); other text that starts with '-' follows '--', where '-' is
    /// the text '-' too: `mmf out T -- "$text"` publishes any text. With --bytes or --msgpack
    /// any bytes but NUL (`mmf out T --bytes $'\x01\xff'` in bash; pipe the others in);
    /// otherwise UTF-8.
    #[arg(allow_negative_numbers = true)]
    pub value: Option<std::ffi::OsString>,
    /// Input is JSON: validated (nested at most 127 levels deep, as every reader takes it; no
    /// key given twice in one object, where JSON parsers differ on which one wins),
    /// stored as MessagePack (read back as JSON).
    #[arg(long, group = "informat")]
    pub json: bool,
    /// Input is a MessagePack document: validated (one document that `read` can show as JSON),
    /// stored as is.
    #[arg(long, group = "informat")]
    pub msgpack: bool,
    /// Input is raw bytes.
    #[arg(long, group = "informat")]
    pub bytes: bool,
    /// Refuse an empty value (exit 5), publishing nothing: the channel keeps its last one. For
    /// a value piped in from a program that may fail without output (`producer | mmf out T
    /// --no-empty`), whose empty output would otherwise replace the last good value.
    #[arg(long)]
    pub no_empty: bool,
    /// Publish each line of standard input as a value of its own, as it comes, for a producer
    /// that goes on (`tail -F log | mmf out T --lines`): a line without its '\n' or '\r\n'
    /// (with --json each line is a JSON document, and blank lines are skipped; with --no-empty
    /// empty lines are; with --bytes any bytes). Each goes to the channel the name leads to: a
    /// channel replaced meanwhile (`new --force`) is followed from the next line on, a removed
    /// one ends the command (exit 3). The first line that cannot be published ends the command
    /// with its error; the lines before it are published (--keep-going skips it instead).
    #[arg(long, conflicts_with = "msgpack")]
    pub lines: bool,
    /// With --lines, a NUL ends each value instead of a newline, so that values may hold
    /// newlines (multi-line text, any bytes but NUL with --bytes): `find . -print0 | mmf out T
    /// --lines -z`, `printf '%s\0' "$text"`.
    #[arg(short = 'z', long, requires = "lines")]
    pub zero_terminated: bool,
    /// With --lines, a line that cannot be a value (not UTF-8 or not JSON, too large for the
    /// channel) is said on standard error and skipped, and the lines after it are published.
    /// The command then ends with the first skipped line's exit code (4 or 5), as `make -k`
    /// does. Anything else (the channel removed, the lock not had in time) still ends it.
    #[arg(long, requires = "lines")]
    pub keep_going: bool,
    /// Print the new generation on standard output (with --lines, each value's on a line of
    /// its own, as it is published).
    #[arg(long)]
    pub print_generation: bool,
    /// Wait until the value is on disk (msync) before exiting: for a channel in a file, it then
    /// survives a power loss. Without it the kernel writes it back within about half a minute.
    /// With --lines, each value is on disk before the next line is read.
    #[arg(long)]
    pub sync: bool,
    /// How long to wait for the writer lock while another process publishes (500ms, 5s, 2m,
    /// 1m30s; a bare number alone is seconds; 0 tries once): past it nothing is published, the
    /// channel keeps its value, and the exit code is 8. A writer that died holding the lock does
    /// not hold it up: its lock is taken over at once.
    #[arg(long, value_name = "DUR", default_value = "5s", value_parser = crate::duration::parse_duration, allow_hyphen_values = true)]
    pub lock_timeout: std::time::Duration,
    /// With --lines, be the channel's only writer while this command runs: publishes by other
    /// writers (another `mmf out`, a program using mmf) fail with exit code 10 meanwhile, and
    /// this command fails with exit code 10 at its start if another writer claimed the channel
    /// so first (an instance of a producer started twice). The claim goes when the command
    /// ends, however it ends; `mmf info` shows who holds it.
    #[arg(long, requires = "lines")]
    pub exclusive: bool,
}

/// `out --lock-timeout`'s default, as [`Cli::plain`] sets it (clap's `default_value` says it
/// in words: `plain_agrees_with_clap` holds the two together).
const OUT_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl OutArgs {
    pub fn format(&self) -> InFormat {
        if self.json {
            InFormat::Json
        } else if self.msgpack {
            InFormat::Msgpack
        } else if self.bytes {
            InFormat::Bytes
        } else {
            InFormat::Text
        }
    }
}

/// How `read` prints a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutFormat {
    /// By the value's tag: text as text, MessagePack and JSON as JSON, bytes raw.
    Auto,
    /// As text (text and JSON values).
    Text,
    /// As JSON (MessagePack and JSON values).
    Json,
    /// The value as MessagePack bytes: as stored, or a JSON value's text converted.
    Msgpack,
    /// The stored bytes, whatever the tag.
    Bytes,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Channel name or file path.
    pub name: std::ffi::OsString,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutFormat::Auto)]
    pub format: OutFormat,
    /// The same as --format json (as --json of info, list and out).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Indent JSON output (not with --format msgpack or bytes, which print no JSON).
    #[arg(long)]
    pub pretty: bool,
    /// Print text exactly as stored. Without it, text that does not end with a newline gets
    /// one, so that it ends its line (text that does is printed as it is, never with a
    /// second); with it, `mmf read --raw` gives back byte for byte what `mmf out` stored. A
    /// MessagePack value printed as JSON is no stored text: it ends its line either way.
    #[arg(long)]
    pub raw: bool,
    /// Wait for a value newer than the current one. A channel that does not exist yet is waited
    /// for (a note on stderr says so), also in a directory not made yet; one removed and created
    /// again meanwhile is followed, and its first value counts as newer. One its creator left
    /// unfinished when it died is waited past, for the one that replaces it (a note says so,
    /// and how to clear it). A newer value a crash damaged is said on stderr and waited past,
    /// for the publish that replaces it.
    #[arg(long)]
    pub wait: bool,
    /// Wait for a value newer than generation GEN (implies --wait; returns at once if the
    /// current value is newer already). GEN counts in the channel under the name now: one
    /// removed and created again starts again from 1 (give --incarnation too, as --meta prints
    /// it, and such a channel's values all count as newer).
    #[arg(long, value_name = "GEN", allow_negative_numbers = true)]
    pub after: Option<u64>,
    /// The incarnation of the channel GEN was counted in (16 hex digits, as --meta, `watch
    /// --meta` and `info --json` give it): a channel under the name with another incarnation
    /// was created since, and every value it holds is newer than GEN.
    #[arg(long, value_name = "INC", requires = "after", value_parser = parse_incarnation)]
    pub incarnation: Option<u64>,
    /// Print the value as a JSON object with its generation, the channel's incarnation (as in
    /// `info --json`) and codec: {"generation":..,"incarnation":"..","codec":..,"value":..},
    /// as `watch --meta` prints each (without "skipped"). Its generation and incarnation are
    /// what --after and --incarnation take, to wait for the value after it. With --pretty,
    /// the record is indented.
    #[arg(long, conflicts_with_all = ["format", "json", "raw"])]
    pub meta: bool,
    /// Give up waiting after DUR (500ms, 5s, 2m, 1m30s; a bare number alone is seconds) and exit
    /// with code 8 (with --wait or --after).
    #[arg(long, value_name = "DUR", value_parser = crate::duration::parse_duration, allow_hyphen_values = true)]
    pub timeout: Option<std::time::Duration>,
    /// Give up waiting once process PID has exited (the writer a script started, say) and exit
    /// with code 9, unless a value the wait takes came first (with --wait or --after; seen at
    /// once, through a pidfd; a zombie counts as exited). --wait takes only a value
    /// newer than the one there when it starts, which a fast writer's may already be: to take
    /// its value whenever it came, wait with --after 0 on a channel made for it, or with --after
    /// and the generation read before the writer started.
    #[arg(long, value_name = "PID", value_parser = clap::value_parser!(u32).range(1..=PID_MAX), allow_negative_numbers = true)]
    pub pid: Option<u32>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Channel name or file path.
    pub name: std::ffi::OsString,
    /// Stop after printing N values (at least 1); values skipped, and those that cannot be
    /// shown (as --json shows no text), do not count.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u64).range(1..),
        allow_negative_numbers = true
    )]
    pub count: Option<u64>,
    /// Exit with code 8 when no new value comes for DUR (500ms, 5s, 2m, 1m30s; a bare number
    /// alone is seconds); a value that cannot be read (damaged) does not count.
    #[arg(long, value_name = "DUR", value_parser = crate::duration::parse_duration, allow_hyphen_values = true)]
    pub timeout: Option<std::time::Duration>,
    /// End the watch (exit 0) once process PID has exited and the last value it published is
    /// printed, as `tail --pid` does (seen at once, through a pidfd; a zombie counts as
    /// exited); exit with code 9 where it exited before any value came.
    #[arg(long, value_name = "PID", value_parser = clap::value_parser!(u32).range(1..=PID_MAX), allow_negative_numbers = true)]
    pub pid: Option<u32>,
    /// Only values published after the watch starts (not the current one).
    #[arg(long)]
    pub new_only: bool,
    /// Print each value as a JSON object with its generation, the channel's incarnation (as in
    /// `info --json`), codec and the number of generations skipped before it:
    /// {"generation":..,"incarnation":"..","skipped":..,"codec":..,"value":..}. Generations
    /// start again from 1 in a channel removed and created again, which the watch follows (with
    /// a note on stderr): compare (incarnation, generation), not generations alone. A value that
    /// cannot be shown has "error" in place of "value" (and is not counted). A value a crash
    /// damaged (which cannot be read at all) gets no record: stderr says so, and the watch
    /// waits for the publish that replaces it.
    #[arg(long)]
    pub meta: bool,
    /// Print only the values that are JSON (MessagePack and JSON values), each as one line of
    /// JSON: a stream `jq` reads whatever else is published. Any other value (text, bytes) is
    /// said on stderr and skipped, as `read --json` refuses it.
    #[arg(long, conflicts_with = "meta")]
    pub json: bool,
    /// End each value with a NUL instead of a newline, printed as stored: text as it is (its
    /// newlines too), JSON as one line, bytes raw. For `mmf out T2 --lines -z` or `xargs -0`
    /// at the other end: `mmf watch T -z | mmf out T2 --lines -z --bytes` passes every value
    /// on, as bytes (JSON as its text). A value that holds a NUL cannot be framed so: said on
    /// stderr and skipped.
    #[arg(short = 'z', long, conflicts_with = "meta")]
    pub zero_terminated: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Print only the names, one per line (for scripts and shell completion); opens no channel.
    #[arg(long, conflicts_with = "json")]
    pub names: bool,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Channel names or file paths.
    #[arg(required = true)]
    pub names: Vec<std::ffi::OsString>,
    /// Succeed when a channel does not exist.
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only channels whose names match one of these (`*` any run of characters, `?` any one
    /// character, everything else itself; quote them from the shell). Default: every channel.
    #[arg(value_name = "PATTERN")]
    pub patterns: Vec<std::ffi::OsString>,
    /// Only print the names of the channels it would remove, one a line on standard output
    /// (notes on what else it would remove go to standard error).
    #[arg(long)]
    pub dry_run: bool,
    /// Print a JSON array instead, with every name as it is: `{"name", "path", "kind",
    /// "removed"}` for each file removed (false with --dry-run), `kind` one of `stale`,
    /// `unfinished` (its creator died before it was ready) and `replacement` (a killed `new
    /// --force`'s file, `name` null). Notes on standard error still say what was kept.
    #[arg(long)]
    pub json: bool,
    /// Only channels neither created, written with `mmf out` nor read with `mmf read` for DUR
    /// (30s, 10m, 2h, 7d; 0s: every stale channel).
    #[arg(long, value_name = "DUR", value_parser = crate::duration::parse_duration, default_value = "1h", allow_hyphen_values = true)]
    pub older_than: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when any check warns (for scripts and CI); by default the exit code is 0
    /// whatever the checks find.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// Says `mmf: TEXT` on stderr, ignoring a failed write: `eprintln!` panics there, and a usage
/// error with stderr on a full device or a closed pipe exited 101, not 2 (a review's finding).
fn usage_said(text: std::fmt::Arguments) {
    crate::exit::say(text);
}

impl Cli {
    /// The command line of this process: [`Cli::plain`] where it applies, clap otherwise.
    pub fn from_env() -> Cli {
        Cli::plain(std::env::args_os()).unwrap_or_else(|| {
            let args = negative_numbers(std::env::args_os().collect());
            // Before clap, which would print help for `-hello` or take a `--` for a DUR. (The
            // seed's `-Size` beside such a word is said as such, as on clap's error path.)
            if let Some(said) = value_missing_before_double_dash(&args).or_else(|| {
                dashed_word_in_bundle(&args).map(|said| seed_style_flag(&args).unwrap_or(said))
            }) {
                usage_said(format_args!("{said}"));
                std::process::exit(2);
            }
            Cli::try_parse_from(&args).unwrap_or_else(|e| {
                // The module's cmdlet first (its parameters follow it), then its parameters:
                // clap reads `-Size` as the short flags S, i, z, e and names the first, and
                // `-size` as `-s ize`, a size it cannot parse, so any usage error. Not the
                // parameters where the verb is mistyped: clap's word on the verb (its likeliest
                // meaning) comes first (the diff review found `mmf raed T -json` told of
                // `-json` alone, and `mmf lst -name` advised `mmf read Test`).
                let seed = match e.kind() {
                    clap::error::ErrorKind::InvalidSubcommand => seed_cmdlet(&args),
                    _ if e.use_stderr() => seed_style_flag(&args),
                    _ => None,
                };
                if let Some(said) = seed {
                    usage_said(format_args!("{said}"));
                    std::process::exit(2);
                }
                // Help and version go to standard output, and clap's `exit` ignores a failed
                // write there (`mmf --help > /dev/full` exited 0 having written nothing): said,
                // exit 1, as any other output that could not be written (a closed pipe is no
                // failure, as elsewhere).
                if !e.use_stderr() {
                    use std::io::Write;
                    match e.print().and_then(|()| std::io::stdout().flush()) {
                        Err(w) if w.kind() != std::io::ErrorKind::BrokenPipe => {
                            usage_said(format_args!("writing standard output: {w}"));
                            std::process::exit(1);
                        }
                        _ => std::process::exit(0),
                    }
                }
                // A bare `mmf` (or `mmf -q`): the help, on stderr, exit 2, as clap gives it.
                if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    e.exit()
                }
                // Every other error is one line on stderr, `mmf: ...`, as the command's own
                // errors are (README), where clap wrote several: its message, a usage block and
                // "For more information, try '--help'".
                usage_said(format_args!("{}", one_line(&e, &args)));
                std::process::exit(e.exit_code())
            })
        })
    }

    /// The two commands scripts run most, `mmf read NAME` and `mmf out NAME VALUE` with no
    /// flags, recognised without building clap's parser; `None` for anything else (any word
    /// that starts with `-`, any other verb or alias, any argument that is not UTF-8), which
    /// clap then parses. Building clap's parser for the ten verbs and their flags touches
    /// about thirty pages of code and heap that these commands need nowhere else, and a page
    /// fault is a large part of a sub-millisecond command: `mmf read` went from 1.29x to 1.13x
    /// the wall time of `cat` in the harness. The test `plain_agrees_with_clap` holds this to
    /// what clap makes of the same words.
    pub fn plain(args: impl IntoIterator<Item = std::ffi::OsString>) -> Option<Cli> {
        let mut words = Vec::with_capacity(4);
        for arg in args.into_iter().skip(1) {
            if arg.as_encoded_bytes().starts_with(b"-") || words.len() == 3 {
                return None;
            }
            words.push(arg);
        }
        let command = match <[std::ffi::OsString; 2]>::try_from(words) {
            Ok([verb, name]) if verb == "read" => Command::Read(ReadArgs {
                name,
                format: OutFormat::Auto,
                json: false,
                pretty: false,
                raw: false,
                wait: false,
                after: None,
                incarnation: None,
                timeout: None,
                pid: None,
                meta: false,
            }),
            Ok(_) => return None,
            Err(words) => match <[std::ffi::OsString; 3]>::try_from(words) {
                Ok([verb, name, value]) if verb == "out" => Command::Out(OutArgs {
                    name,
                    value: Some(value),
                    json: false,
                    msgpack: false,
                    bytes: false,
                    no_empty: false,
                    lines: false,
                    zero_terminated: false,
                    keep_going: false,
                    print_generation: false,
                    sync: false,
                    lock_timeout: OUT_LOCK_TIMEOUT,
                    exclusive: false,
                }),
                _ => return None,
            },
        };
        Some(Cli {
            command,
            quiet: false,
        })
    }
}

/// `mmf out` with a negative number for VALUE that clap's test for one refuses: an exponent with a
/// sign (`-1e-3`, `-2.5E+10`, as Python prints small numbers) or no digit before the point (`-.5`,
/// as `bc` prints it); clap would take them for unknown flags. Such a word, as the only word after
/// the NAME that is not a flag, is moved behind a `--` at the end, where clap takes it as the VALUE
/// whatever it looks like (the DUR of `--lock-timeout DUR`, `out`'s one option that takes a value,
/// is no VALUE; every other word keeps its meaning). Left as they are: other verbs, a command line
/// that has a `--` already, a word where the NAME should be, and one beside another VALUE (a usage
/// error either way).
fn negative_numbers(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let words: Vec<Option<&str>> = args.iter().map(|a| a.to_str()).collect();
    // The verb, past the global flags (`mmf -q out T -1e-3`), which take no value.
    let verb = words
        .iter()
        .skip(1)
        .position(|w| !w.is_some_and(|w| w.starts_with('-')))
        .map(|i| i + 1);
    let Some(verb) = verb.filter(|&v| words[v] == Some("out")) else {
        return args;
    };
    if words.contains(&Some("--")) {
        return args;
    }
    let mut positional = 0;
    let mut found = None;
    let mut option_value = false;
    for (i, w) in words.iter().enumerate().skip(verb + 1) {
        // The DUR of `--lock-timeout DUR`: not a VALUE.
        if std::mem::take(&mut option_value) {
            continue;
        }
        let Some(w) = *w else { continue };
        if w == "--lock-timeout" {
            option_value = true;
        } else if positional >= 1 && negative_number(w) {
            found = Some(i);
            positional += 1;
        } else if !w.starts_with('-') {
            positional += 1;
        }
    }
    // `--lock-timeout` last, its DUR missing: clap's error says so, not about the VALUE.
    if option_value {
        return args;
    }
    if let (Some(i), 2) = (found, positional) {
        let value = args.remove(i);
        args.push("--".into());
        args.push(value);
    }
    args
}

/// A clap error in one line: its message (a list it introduces with ':' joined on, a tip kept),
/// without the usage block, and where the usage is (`mmf VERB --help` for a verb given).
fn one_line(e: &clap::Error, args: &[std::ffi::OsString]) -> String {
    use clap::CommandFactory;
    let text = e.render().to_string();
    let mut said = String::new();
    let mut in_usage = false;
    for line in text.lines() {
        let indented = line.starts_with(' ');
        let line = line.trim();
        if line.is_empty() || line.starts_with("For more information") {
            in_usage = false;
            continue;
        }
        // The usage block: its first line and any indented ones after it.
        if line.starts_with("Usage:") || (in_usage && indented) {
            in_usage = true;
            continue;
        }
        in_usage = false;
        let line = line.strip_prefix("error: ").unwrap_or(line);
        if said.is_empty() {
            said.push_str(line);
        } else if said.ends_with(':') {
            said.push(' ');
            said.push_str(line);
        } else {
            said.push_str("; ");
            said.push_str(line);
        }
    }
    // clap's tip for an unknown one-letter flag, "to pass '-x' as a value, use '-- -x'",
    // leads to `mmf new -- -x --size 1`, where the flags after `--` are values too (a review's
    // finding): said as the other words that start with '-' are.
    // The verb, where the first word that is not a flag names one (its alias too).
    let cli = Cli::command();
    let verb = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find(|a| !a.starts_with('-'))
        .and_then(|w| cli.find_subcommand(w))
        .map(|c| c.get_name().to_owned());
    const TIP: &str = "tip: to pass '";
    let tipped = said.contains(TIP);
    if let Some(at) = said.find(TIP) {
        let word = said[at + TIP.len()..]
            .split('\'')
            .next()
            .unwrap_or("")
            .to_owned();
        if said[at..].contains("' as a value, use '-- ") {
            said.truncate(at);
            // A flag of another verb (`mmf watch T --format json`, read's flag, is the likeliest
            // slip): said so, not taken for a word to pass after `--` (a new user's review).
            let others = verb
                .as_deref()
                .and_then(|v| other_verbs_flag(&cli, v, &word));
            let word = crate::exit::shell_word(&word);
            let tip = match verb.as_deref() {
                Some("out") => format!(
                    "a NAME or VALUE that starts with '-' follows `--`, after every flag: `mmf \
                     out NAME -- {word}` for a VALUE, `mmf out -- {word} VALUE` for a NAME"
                ),
                verb => format!(
                    "a NAME or VALUE that starts with '-' follows `--`, after every flag: `mmf {} \
                     FLAGS -- {word}`",
                    verb.unwrap_or("VERB"),
                ),
            };
            said.push_str(&match (others, verb.as_deref()) {
                // `out` publishes a VALUE, which may be such a word: both are said.
                (Some(others), Some("out")) => format!("{others}; {tip}"),
                (Some(others), _) => others,
                (None, _) => tip,
            });
        }
    }
    // A flag of other verbs given to one that takes no words after its flags (`mmf list
    // --format json`): clap gives no tip there, but the flag's verbs are said all the same (a
    // harness author's review found `list` and `doctor` saying less than `info`).
    const UNEXPECTED: &str = "unexpected argument '";
    if let (Some(verb), Some(rest), false) =
        (verb.as_deref(), said.strip_prefix(UNEXPECTED), tipped)
    {
        let word = rest.split('\'').next().unwrap_or("");
        // A flag after `--`, where every word is a NAME or VALUE (`mmf read -- T --json`,
        // a flag added at the end of a command line that had `--`): clap says only that the
        // word is unexpected (stop 54's ops review).
        let after_dashes = args
            .iter()
            .skip_while(|a| a.as_os_str() != "--")
            .skip(1)
            .any(|a| a.to_str() == Some(word));
        if let Some(others) = other_verbs_flag(&cli, verb, word) {
            said = format!("{UNEXPECTED}{word}' found; {others}");
        } else if !word.starts_with('-') {
            // A word past the verb's last: a value with spaces split by the shell (`mmf out T
            // $s`, the first slip of a PowerShell user, whose shell never splits a variable),
            // or a size given without its flag (a migrating user's review).
            if let Some(extra) = extra_word(&cli, verb, word, args) {
                said = format!("{UNEXPECTED}{word}' found; {extra}");
            }
        } else if word != "--" && after_dashes {
            // The words the verb takes, by their names in its usage (`NAME`, `NAME VALUE`,
            // `SHELL`), or none (`list`, `doctor`: the diff review's).
            let words: Vec<String> = cli
                .find_subcommand(verb)
                .map(|c| {
                    c.get_positionals()
                        .map(|p| match p.get_value_names() {
                            Some([name, ..]) => name.to_string(),
                            _ => p.get_id().to_string().to_uppercase(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            said = match words.is_empty() {
                true => format!(
                    "{UNEXPECTED}{word}' found after `--`; `mmf {verb}` takes flags only, and \
                     none after `--`"
                ),
                false => format!(
                    "{UNEXPECTED}{word}' found after `--`, where every word is a {}, not a flag: \
                     give the flags before `--` (`mmf {verb} FLAGS -- {}`)",
                    words.join(" or "),
                    words.join(" ")
                ),
            };
        }
    }
    match verb {
        Some(verb) => format!("{said} (`mmf {verb} --help` shows its usage)"),
        None => format!("{said} (`mmf --help` shows the verbs)"),
    }
}

/// What to say of `word`, a word past the last one `verb` takes (`None` for a verb that takes
/// any number of them): how many it takes, and for `out` how a VALUE with spaces is given, for
/// `new` where a SIZE goes.
fn extra_word(
    cli: &clap::Command,
    verb: &str,
    word: &str,
    args: &[std::ffi::OsString],
) -> Option<String> {
    let command = cli.find_subcommand(verb)?;
    let words: Vec<&str> = args.iter().map(|a| a.to_str().unwrap_or("")).collect();
    // Whether `w` is a flag of the verb's that takes a value (`--lock-timeout`, `-s`).
    let takes_value = |w: &str| {
        command.get_arguments().any(|a| {
            let named = match w.strip_prefix("--") {
                Some(long) => a.get_long() == Some(long),
                None => {
                    let mut c = w.strip_prefix('-').unwrap_or("").chars();
                    matches!((c.next(), c.next()), (Some(c), None) if a.get_short() == Some(c))
                }
            };
            named && a.get_action().takes_values()
        })
    };
    // The word is the rest of an option's value the shell split (`--lock-timeout 1 s`, or
    // `--lock-timeout=1 s`), not of a VALUE (the diff review's). Its last place: the same word
    // may be the NAME too (`mmf out s a --lock-timeout 1 s`).
    let after_option_value = words.iter().rposition(|w| *w == word).is_some_and(|i| {
        (i >= 2 && takes_value(words[i - 2]))
            || (i >= 1
                && words[i - 1].starts_with("--")
                && words[i - 1]
                    .split_once('=')
                    .is_some_and(|(flag, _)| takes_value(flag)))
    });
    let mut names = Vec::new();
    for p in command.get_positionals() {
        if p.get_num_args().is_some_and(|n| n.max_values() > 1) {
            return None;
        }
        names.push(match p.get_value_names() {
            Some([name, ..]) => name.to_string(),
            _ => p.get_id().to_string().to_uppercase(),
        });
    }
    let takes = match &names[..] {
        [] => return None,
        [one] => format!("`mmf {verb}` takes one {one}"),
        [first @ .., last] => format!("`mmf {verb}` takes a {} and one {last}", first.join(", ")),
    };
    // A size given with its flag already (`--size 1 024`, split by the shell).
    let sized = words
        .iter()
        .any(|w| *w == "--size" || w.starts_with("--size=") || w.starts_with("-s"));
    Some(match verb {
        _ if after_option_value => {
            format!("{takes}; an option's value with spaces is quoted, as one word")
        }
        "out" => format!(
            "{takes}: quote a VALUE with spaces, as one word (`mmf out NAME \"$value\"`), or pipe \
             it in (`printf '%s' \"$value\" | mmf out NAME`)"
        ),
        "new" if !sized && crate::size::parse_size(word).is_ok() => format!(
            "{takes}; the size is a flag: `mmf new NAME --size {}`",
            crate::exit::shell_word(word)
        ),
        _ => takes,
    })
}

/// Where `word` is a flag (`--format`, `--format=json`, `-z`) that `verb` lacks and other verbs
/// have: which ones, said for the place of clap's tip to pass it after `--`.
fn other_verbs_flag(cli: &clap::Command, verb: &str, word: &str) -> Option<String> {
    // A short flag alone (`mmf read T -z`, watch's): by its letter; a bundle is left to clap.
    if let Some(letter) = word.strip_prefix('-').filter(|w| !w.starts_with('-')) {
        let mut chars = letter.chars();
        let (Some(letter), None) = (chars.next(), chars.next()) else {
            return None;
        };
        let has = |c: &clap::Command| c.get_arguments().any(|a| a.get_short() == Some(letter));
        let this = cli.find_subcommand(verb)?;
        if has(this) {
            return None;
        }
        // The verb's own flag of the long name the letter stands for elsewhere (`mmf new T -f`:
        // `new` has `--force`, with no `-f`), rather than another verb's (the second review's).
        let long_here = cli
            .get_subcommands()
            .filter_map(|c| c.get_arguments().find(|a| a.get_short() == Some(letter)))
            .filter_map(|a| a.get_long())
            .find(|long| this.get_arguments().any(|a| a.get_long() == Some(*long)));
        if let Some(long) = long_here {
            return Some(format!(
                "`mmf {verb}` takes it as `--{long}` (it has no `-{letter}`)"
            ));
        }
        // Each with its long form, which says what the letter does there (`-f` is `remove
        // --force`, not `tail -f`: the diff review's).
        let verbs: Vec<String> = cli
            .get_subcommands()
            .filter(|c| c.get_name() != verb && !c.is_hide_set())
            .filter_map(|c| {
                let flag = c.get_arguments().find(|a| a.get_short() == Some(letter))?;
                Some(match flag.get_long() {
                    Some(long) => format!("`mmf {} --{long}`", c.get_name()),
                    None => format!("`mmf {}`", c.get_name()),
                })
            })
            .collect();
        return match &verbs[..] {
            [] => None,
            [one] => Some(format!("`-{letter}` is {one}, not a flag of `mmf {verb}`")),
            [first @ .., last] => Some(format!(
                "`-{letter}` is {} or {last}, not a flag of `mmf {verb}`",
                first.join(", ")
            )),
        };
    }
    let name = word.strip_prefix("--")?.split('=').next()?;
    let has = |c: &clap::Command| c.get_arguments().any(|a| a.get_long() == Some(name));
    if name.is_empty() || cli.find_subcommand(verb).is_some_and(has) {
        return None;
    }
    let verbs: Vec<String> = cli
        .get_subcommands()
        .filter(|c| c.get_name() != verb && !c.is_hide_set() && has(c))
        .map(|c| format!("`mmf {}`", c.get_name()))
        .collect();
    let of = match &verbs[..] {
        [] => return None,
        [one] => one.clone(),
        [first @ .., last] if verbs.len() <= 3 => format!("{} and {last}", first.join(", ")),
        [a, b, rest @ ..] => format!("{a}, {b} and {} other verbs", rest.len()),
    };
    // JSON output is what `--format json` and `--pretty` are mostly after: the verb's own way,
    // where its `--json` is a report in JSON (`out --json` reads JSON, `watch --json` keeps
    // the JSON values only).
    let json =
        matches!(verb, "info" | "list" | "doctor" | "prune") && matches!(name, "format" | "pretty");
    let json = match json {
        true => format!("; `mmf {verb} --json` gives JSON"),
        false => String::new(),
    };
    Some(format!(
        "`--{name}` is a flag of {of}, not of `mmf {verb}`{json}"
    ))
}

/// What to say of a flag written as the PowerShell module took its parameters (`-Size 1024`,
/// `-Name Test`, `-String "Hello World!"`: the first thing its users type), which clap would
/// report as an unknown short flag `-S` with a tip to pass it as a value; `None` if `args`
/// (before a `--`) has no such word, or none that names something mmf has.
fn seed_style_flag(args: &[std::ffi::OsString]) -> Option<String> {
    use clap::CommandFactory;
    let command = Cli::command();
    // The verb's own flags and the global ones (every verb's, where the verb is not one).
    // The first word that is no flag (`mmf --quiet new -Name T`).
    let verb = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find(|w| !w.starts_with('-'))
        .and_then(|v| verb_named(&command, v));
    let long_flag = |name: &str| {
        let mut commands: Vec<&clap::Command> = match verb {
            Some(verb) => vec![verb],
            None => command.get_subcommands().collect(),
        };
        commands.push(&command);
        commands
            .into_iter()
            .flat_map(clap::Command::get_arguments)
            .any(|a| a.get_long() == Some(name))
    };
    for word in args.iter().skip(1).map(|a| a.to_str()) {
        let Some(word) = word else { continue };
        if word == "--" {
            break;
        }
        let Some(name) = word.strip_prefix('-') else {
            continue;
        };
        // Any case: PowerShell ignores it, so `-size` and `-name` are as likely as `-Size` (a
        // migrating user's review; clap read `-size` as `-s ize`, a size "ize").
        if name.len() < 2 || !name.chars().all(|c| c.is_ascii_alphabetic()) {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        const SEED: &str = "a parameter of the PowerShell module";
        let (what, instead) = match lower.as_str() {
            "name" | "memorymappedfile" => (
                SEED,
                // The verb typed, where it takes a channel's name (or names), as it goes on
                // from there; a verb that takes none says so (a review found `mmf list -Name
                // x` advised `mmf read Test`).
                match verb.map(|v| {
                    let named = v
                        .get_positionals()
                        .any(|a| ["name", "names", "patterns"].contains(&a.get_id().as_str()));
                    (v.get_name(), named)
                }) {
                    Some((verb, false)) => format!("`mmf {verb}` takes no channel name"),
                    Some((verb, true)) => format!(
                        "the channel's name is the word after the verb, with no flag: `mmf {}`",
                        match verb {
                            "new" => "new Test --size 1KiB".to_owned(),
                            "out" => "out Test \"Hello World!\"".to_owned(),
                            other => format!("{other} Test"),
                        }
                    ),
                    None => "the channel's name is the word after the verb, with no flag: `mmf \
                             read Test`"
                        .to_owned(),
                },
            ),
            "string" => (
                SEED,
                "the value is the word after the name, with no flag: `mmf out Test \"Hello \
                 World!\"`"
                    .to_owned(),
            ),
            _ if long_flag(&lower) => (
                match name == lower {
                    true => "a long flag written with one dash",
                    false => "PowerShell-style",
                },
                match (name == lower, verb.map(clap::Command::get_name)) {
                    // `out`'s VALUE may be such a word: how to give it is said too.
                    (true, Some("out")) => format!(
                        "mmf's long flags take two dashes: --{lower}; a VALUE that starts with \
                         '-' follows `--`: `mmf out NAME -- {word}`"
                    ),
                    (true, _) => format!("mmf's long flags take two dashes: --{lower}"),
                    (false, _) => format!("mmf's flags are lowercase, after two dashes: --{lower}"),
                },
            ),
            _ => continue,
        };
        let help = match verb {
            Some(verb) => format!("`mmf help {}` lists its flags", verb.get_name()),
            None => "`mmf help VERB` lists a verb's flags".to_owned(),
        };
        return Some(format!(
            "'{word}' is {what}, not a flag of mmf; {instead} ({help})"
        ));
    }
    None
}

/// What to say of a verb written as the PowerShell module's cmdlet (`mmf New-MemoryMappedFile
/// -Name Test`), which clap calls an unrecognized subcommand: mmf's verb for it. `None` if the
/// first word that is no flag is not one of the module's cmdlets.
fn seed_cmdlet(args: &[std::ffi::OsString]) -> Option<String> {
    let word = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find(|w| !w.starts_with('-'))?;
    let (cmdlet, noun) = word.split_once('-')?;
    if !noun.eq_ignore_ascii_case("MemoryMappedFile") {
        return None;
    }
    let example = match cmdlet.to_ascii_lowercase().as_str() {
        "new" => "new Test --size 1KiB",
        "open" => "info Test",
        "out" => "out Test \"Hello World!\"",
        "read" => "read Test",
        "remove" => "remove Test",
        _ => return None,
    };
    let verb = example.split(' ').next().unwrap_or(example);
    Some(format!(
        "'{word}' is the PowerShell module's cmdlet; mmf's verb for it is `{verb}`: `mmf \
         {example}` (`mmf --help` lists the verbs)"
    ))
}

/// The verb (subcommand) of `command` named `word`, or one of its aliases (`ls`, `rm`, `open`).
fn verb_named<'a>(command: &'a clap::Command, word: &str) -> Option<&'a clap::Command> {
    command
        .get_subcommands()
        .find(|c| c.get_name() == word || c.get_all_aliases().any(|a| a == word))
}

/// What to say of a word such as `-hello`, `-5abc` or `-inf` (a VALUE that starts with '-',
/// written without `--`), which clap reads as bundled short flags: as `-h` (print help, exit
/// 0, the VALUE never published), or as an unknown flag named by its first letter alone, with
/// a tip to pass that letter (`'-- -5'`), which would publish the wrong value. A usage error
/// (exit 2) here, that names the whole word. `None` where `args` (before a `--`) holds no such
/// word after a verb: one of two characters or more after a single '-', with a character that
/// is no short flag of the verb (nor a global one), no negative number (`-1e-3`: a VALUE), and
/// not the value of an option before it; and where the verb is not one (clap's error names the
/// verb meant).
fn dashed_word_in_bundle(args: &[std::ffi::OsString]) -> Option<String> {
    use clap::CommandFactory;
    let command = Cli::command();
    let mut verb: Option<&clap::Command> = None;
    let mut option_value = false;
    // Words the verb took before this one (`out`'s NAME, then VALUE).
    let mut positionals = 0;
    // Whether `out --lines` is asked for (before a `--`): it takes a NAME and no VALUE.
    let lines = args
        .iter()
        .take_while(|w| w.as_os_str() != "--")
        .any(|w| w.as_os_str() == "--lines");
    for word in args.iter().skip(1) {
        // Bytes, as clap reads them: `--bytes $'-h\xff'` is not UTF-8, and is `-h` all the same.
        let bytes = word.as_encoded_bytes();
        if bytes == b"--" {
            break;
        }
        if std::mem::take(&mut option_value) {
            continue;
        }
        let arguments = || {
            command
                .get_arguments()
                .chain(verb.into_iter().flat_map(clap::Command::get_arguments))
        };
        if let Some(long) = bytes.strip_prefix(b"--") {
            // `--timeout -1s`: the next word is the option's value, whatever it looks like.
            option_value = !long.contains(&b'=')
                && arguments().any(|a| {
                    a.get_long().map(str::as_bytes) == Some(long) && a.get_action().takes_values()
                });
            continue;
        }
        let Some(shorts) = bytes.strip_prefix(b"-") else {
            if verb.is_none() {
                let word = word.to_str()?;
                // Not a verb (`mmf rea T -hx`): clap's error says so, and names the verb meant.
                verb = Some(verb_named(&command, word)?);
            } else {
                positionals += 1;
            }
            continue;
        };
        // Before the verb (`mmf -q`, `mmf -hx`): a global flag, or clap's help, which loses
        // nothing.
        let Some(verb) = verb else { continue };
        let short = |c: u8| arguments().find(|a| a.get_short() == Some(char::from(c)));
        let takes_value = |c: u8| short(c).is_some_and(|a| a.get_action().takes_values());
        match shorts {
            // `-s 1K` takes the next word; `-s1K` holds its value.
            [c, rest @ ..] if c.is_ascii() && takes_value(*c) => option_value = rest.is_empty(),
            [_, _, ..]
                if !word.to_str().is_some_and(negative_number)
                    && !shorts.iter().all(|&c| {
                        c == b'h' || c == b'V' || (c.is_ascii() && short(c).is_some())
                    }) =>
            {
                let word = word.to_string_lossy();
                let shown = crate::exit::shell_word(&*word);
                let name = verb.get_name();
                let positional = verb.get_positionals().next();
                let what = positional
                    .and_then(|p| p.get_value_names())
                    .and_then(|n| n.first())
                    .map(ToString::to_string);
                return Some(match (name, what) {
                    // In NAME's place (`mmf out -odd x`): a channel's name (the CLI.md audit's:
                    // it was told to publish the word as a VALUE); with --lines, which takes
                    // no VALUE, the name alone (a review's).
                    ("out", _) if positionals == 0 => format!(
                        "unexpected argument '{word}' (not a flag of `mmf out`); a NAME that \
                         starts with '-' follows `--`: `mmf out {}-- {shown}{}`",
                        if lines { "--lines " } else { "" },
                        if lines { "" } else { " VALUE" }
                    ),
                    // After a NAME and a VALUE: nothing more is taken.
                    ("out", _) if positionals >= 2 => format!(
                        "unexpected argument '{word}' (not a flag of `mmf out`); `mmf out` takes \
                         a NAME and one VALUE"
                    ),
                    ("out", _) => format!(
                        "unexpected argument '{word}' (not a flag of `mmf out`); a VALUE that \
                         starts with '-' follows `--`: `mmf out NAME -- {shown}`"
                    ),
                    (_, Some(what)) => format!(
                        "unexpected argument '{word}' (not a flag of `mmf {name}`: `mmf {name} \
                         --help` lists them); a {what} that starts with '-' follows `--`"
                    ),
                    (_, None) => format!(
                        "unexpected argument '{word}' (not a flag of `mmf {name}`: `mmf {name} \
                         --help` lists them)"
                    ),
                });
            }
            _ => {}
        }
    }
    None
}

/// What to say of an option that takes a value (`--lock-timeout DUR`, `--size SIZE`) written
/// right before the `--` that ends the options, its value left out: clap takes the `--` for the
/// value and reports the word after it instead (`mmf out T --lock-timeout -- -x`: "unexpected
/// argument '-x'", with a tip to write `-- -x`, as was written), or runs it as flags (`--
/// -hello`: help, exit 0). No option takes `--` for a value, so this is asked before clap.
/// `None` if no such option is there.
fn value_missing_before_double_dash(args: &[std::ffi::OsString]) -> Option<String> {
    use clap::CommandFactory;
    let end = args.iter().position(|a| a == "--")?;
    let option = args.get(end.checked_sub(1)?)?.to_str()?;
    let command = Cli::command();
    let verb = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find(|w| !w.starts_with('-'))
        .and_then(|v| verb_named(&command, v))?;
    let arg = verb.get_arguments().find(|a| {
        option
            .strip_prefix("--")
            .is_some_and(|l| a.get_long() == Some(l))
            || option
                .strip_prefix('-')
                .and_then(|s| s.parse::<char>().ok())
                .is_some_and(|c| a.get_short() == Some(c))
    })?;
    if !arg.get_action().takes_values() {
        return None;
    }
    let value = arg
        .get_value_names()
        .and_then(|n| n.first())
        .map_or_else(|| arg.get_id().as_str().to_uppercase(), ToString::to_string);
    Some(format!(
        "'{option}' needs its {value} before '--' (a '--' ends the options, and is not a \
         {value}: `mmf {} ... {option} {value} -- ...`)",
        verb.get_name()
    ))
}

/// Whether `word` is a negative decimal number: `-`, digits with at most one `.` (a digit on
/// one side of it at least), then perhaps `e` or `E`, a sign perhaps, and digits.
fn negative_number(word: &str) -> bool {
    let Some(number) = word.strip_prefix('-') else {
        return false;
    };
    let (mantissa, exponent) = match number.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (number, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (digits(a) || digits(b)) && (a.is_empty() || digits(a)) && (b.is_empty() || digits(b))
        }
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// The largest process id there can be (a `pid_t` is an `i32`; Linux's limit is lower still).
const PID_MAX: i64 = i32::MAX as i64;

fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!(
            "mode {text:?} is not octal permission bits like 0600 or 0644"
        )),
    }
}

/// An incarnation as `info --json` and `--meta` print it: 16 hex digits, leading zeros
/// included (a `0x` before them is taken too). A shorter one is most likely cut short in a
/// copy, and taken as another channel's it would turn the wait into a read of the current value.
fn parse_incarnation(text: &str) -> Result<u64, String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.len() != 16 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(
            "an incarnation is 16 hex digits, as --meta and `info --json` print it".to_owned(),
        );
    }
    u64::from_str_radix(digits, 16).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The command line `mmf WORDS...`.
    fn argv(words: &[&str]) -> Vec<std::ffi::OsString> {
        std::iter::once("mmf")
            .chain(words.iter().copied())
            .map(Into::into)
            .collect()
    }

    /// `Cli::plain` takes exactly what it should, and means by it what clap would.
    #[test]
    fn plain_agrees_with_clap() {
        for words in [
            &["read", "Test"][..],
            &["read", "./dir/state.mmf"],
            &["read", "help"],
            &["out", "Test", "Hello World!"],
            &["out", "Test", ""],
            &["out", "Test", "{\"a\": 1}"],
            &["out", "read", "out"],
        ] {
            let plain = Cli::plain(argv(words)).expect("plain takes it");
            let clap = Cli::try_parse_from(argv(words)).expect("clap takes it");
            assert_eq!(format!("{plain:?}"), format!("{clap:?}"), "{words:?}");
        }
        for words in [
            &[][..],
            &["read"],
            &["read", "Test", "extra"],
            &["read", "Test", "--pretty"],
            &["read", "--", "Test"],
            &["read", "-x"],
            &["out", "Test"],
            &["out", "Test", "-"],
            &["out", "Test", "-5"],
            &["out", "Test", "v", "w"],
            &["info", "Test"],
            &["open", "Test"],
            &["rm", "Test"],
            &["help", "read"],
            &["--version"],
        ] {
            assert!(Cli::plain(argv(words)).is_none(), "{words:?}");
        }
        use std::os::unix::ffi::OsStringExt;
        // A NAME that is not UTF-8 (a file path's bytes), as clap takes it.
        let not_utf8 = vec![
            "mmf".into(),
            "read".into(),
            std::ffi::OsString::from_vec(b"./\xff".to_vec()),
        ];
        let plain = Cli::plain(not_utf8.clone()).expect("plain takes it");
        let clap = Cli::try_parse_from(not_utf8).expect("clap takes it");
        assert_eq!(format!("{plain:?}"), format!("{clap:?}"));
    }

    /// The PowerShell module's parameters get a word on what mmf takes instead; other unknown
    /// flags, and words after `--`, get none.
    #[test]
    fn seed_style_flags_are_named() {
        let said = |words: &[&str]| seed_style_flag(&argv(words));
        let size = said(&["new", "T", "-Size", "1024"]).unwrap();
        assert!(
            size.contains("'-Size'") && size.contains("--size"),
            "{size}"
        );
        let name = said(&["read", "-Name", "T"]).unwrap();
        assert!(name.contains("`mmf read Test`"), "{name}");
        let value = said(&["out", "-MemoryMappedFile", "T", "-String", "hi"]).unwrap();
        assert!(value.contains("'-MemoryMappedFile'"), "{value}");
        assert!(said(&["out", "T", "-String", "hi"])
            .unwrap()
            .contains("after the name"));
        assert!(said(&["read", "T", "-Json"]).unwrap().contains("--json"));
        // A flag of another verb is not offered.
        assert!(said(&["new", "T", "-Count", "3"]).is_none());
        assert!(said(&["watch", "T", "-Count", "3"])
            .unwrap()
            .contains("--count"));
        for words in [
            &["new", "T", "-s", "1024"][..],
            &["new", "T", "-Bogus"],
            &["out", "T", "--", "-Size"],
            &["out", "T", "-X"],
        ] {
            assert_eq!(said(words), None, "{words:?}");
        }
    }

    /// A VALUE or NAME such as `-Very` or `-hello` is a usage error, not `-V` or `-h` (which
    /// printed the version or help, exit 0, and published nothing); flags, option values and
    /// words after `--` are left to clap.
    #[test]
    fn a_dashed_word_in_a_bundle_is_named() {
        let said = |words: &[&str]| dashed_word_in_bundle(&argv(words));
        let out = said(&["out", "T", "-Very"]).unwrap();
        assert!(
            out.contains("'-Very'") && out.contains("`mmf out NAME -- -Very`"),
            "{out}"
        );
        let read = said(&["-q", "read", "T", "-happy"]).unwrap();
        assert!(
            read.contains("not a flag of `mmf read`") && read.contains("a NAME that starts"),
            "{read}"
        );
        assert!(said(&["new", "Z", "-Vsize", "1"]).is_some());
        // Any other unknown bundle, named whole (clap named its first letter, and tipped
        // `-- -5`, which publishes "-5").
        for word in ["-abc", "-5abc", "-inf", "-0x10", "-e5"] {
            let out = said(&["out", "T", word]).unwrap();
            assert!(out.contains(&format!("`mmf out NAME -- {word}`")), "{out}");
        }
        let list = said(&["list", "-hx"]).unwrap();
        assert!(!list.contains("follows `--`"), "{list}");
        // Not UTF-8, as `--bytes` takes it: `-h` all the same to clap.
        let mut args = argv(&["out", "T", "--bytes"]);
        args.push(std::os::unix::ffi::OsStringExt::from_vec(
            b"-h\xff".to_vec(),
        ));
        let bytes = dashed_word_in_bundle(&args).unwrap();
        assert!(bytes.contains("a VALUE that starts with '-'"), "{bytes}");
        for words in [
            // Before the verb, or no verb: clap's help, or its error naming the verb meant.
            &["-hx"][..],
            &["rea", "T", "-hx"],
            &["out", "T", "-h"][..],
            &["out", "T", "-V"],
            &["-V"],
            &["out", "-qh", "T"],
            &["out", "T", "--", "-Very"],
            &["read", "T", "--timeout", "-h1"],
            &["out", "T", "--lock-timeout", "-Vs", "x"],
            &["new", "T", "-s", "-hV"],
            &["new", "T", "-s1K", "-h"],
            &["out", "T", "-5"],
            &["out", "T", "-1e-3"],
            &["out", "T", "-.5"],
        ] {
            assert_eq!(said(words), None, "{words:?}");
        }
    }

    /// An option whose value is left out before `--` is named; a `--` after a flag that takes
    /// no value, or after a value, is not.
    #[test]
    fn a_value_left_out_before_double_dash_is_named() {
        let said = |words: &[&str]| value_missing_before_double_dash(&argv(words));
        let dur = said(&["out", "T", "--lock-timeout", "--", "-x"]).unwrap();
        assert!(dur.contains("'--lock-timeout' needs its DUR"), "{dur}");
        // Not a bundle with -h after it: the `--` is what is wrong.
        assert!(said(&["out", "T", "--lock-timeout", "--", "-hello"]).is_some());
        assert_eq!(
            dashed_word_in_bundle(&argv(&["out", "T", "--lock-timeout", "--", "-hello"])),
            None
        );
        let size = said(&["new", "T", "-s", "--"]).unwrap();
        assert!(size.contains("'-s' needs its SIZE"), "{size}");
        assert!(said(&["-q", "read", "T", "--timeout", "--"]).is_some());
        for words in [
            &["out", "T", "--", "-x"][..],
            &["out", "T", "--json", "--", "-x"],
            &["out", "T", "--lock-timeout", "2s", "--", "-x"],
            &["out", "T", "--lock-timeout"],
            &["bogus", "--timeout", "--"],
        ] {
            assert_eq!(said(words), None, "{words:?}");
        }
    }

    /// A negative VALUE that clap's test refuses is the VALUE, wherever the flags are; nothing
    /// else moves.
    #[test]
    fn negative_numbers_are_values() {
        let parse =
            |words: &[&str]| Cli::try_parse_from(negative_numbers(argv(words))).map(|c| c.command);
        for (words, value, json) in [
            (&["out", "T", "-1e-3"][..], "-1e-3", false),
            (&["out", "T", "-1e-3", "--json"], "-1e-3", true),
            (&["out", "--json", "T", "-2.5E+10"], "-2.5E+10", true),
            (&["out", "T", "--json", "-.5e-7"], "-.5e-7", true),
            (&["out", "T", "-.5"], "-.5", false),
            (&["out", "T", "-1e3", "--json"], "-1e3", true),
            (
                &["out", "T", "-5.e+1", "--print-generation"],
                "-5.e+1",
                false,
            ),
            // The DUR of --lock-timeout is not a second VALUE.
            (
                &["out", "T", "-1e-3", "--lock-timeout", "2s"],
                "-1e-3",
                false,
            ),
            (&["out", "--lock-timeout", "2s", "T", "-.5"], "-.5", false),
            (&["out", "T", "--lock-timeout=2s", "-.5"], "-.5", false),
            // Past a global flag before the verb.
            (&["-q", "out", "T", "-1e-3"], "-1e-3", false),
            (&["--quiet", "out", "T", "-.5", "--json"], "-.5", true),
        ] {
            match parse(words) {
                Ok(Command::Out(o)) => {
                    assert_eq!(
                        o.value.as_deref(),
                        Some(std::ffi::OsStr::new(value)),
                        "{words:?}"
                    );
                    assert_eq!(o.name, "T", "{words:?}");
                    assert_eq!(o.json, json, "{words:?}");
                    let timeout = if words.iter().any(|w| w.starts_with("--lock-timeout")) {
                        2
                    } else {
                        5
                    };
                    assert_eq!(o.lock_timeout.as_secs(), timeout, "{words:?}");
                }
                other => panic!("{words:?}: {other:?}"),
            }
        }
        for words in [
            &["out", "-1e-3", "T"][..],
            &["out", "T", "--", "-1e-3"],
            &["read", "T", "-1e-3"],
            &["out", "T", "-1e-"],
            &["out", "T", "-e-3"],
            &["out", "T", "-.e-3"],
            &["out", "T", "-.", "--json"],
            &["out", "T", "-x"],
            &["out", "T", "-1e-3", "extra"],
            &["out", "T", "extra", "-1e-3"],
            &["out", "T", "-1e-3", "--lock-timeout"],
        ] {
            assert_eq!(negative_numbers(argv(words)), argv(words), "{words:?}");
        }
        assert!(parse(&["out", "T", "-1e-5", "extra"]).is_err());
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0o640"), Ok(0o640));
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("01777").is_err());
    }
}
