//! `mmf completions SHELL`: a completion script for bash, zsh, fish, elvish or PowerShell.
//!
//! clap's script completes verbs and flags. For bash a function is added that completes
//! channel names (`mmf list --names`) where a verb takes an existing channel (`read`, `out`,
//! `info`, `watch`, `recover`, `remove`): which verbs, which of their options take a value
//! (after which a word is that value, not a name), and which take several names are read off
//! the same clap model, so the two cannot drift apart. A word with a '/' is a file path and
//! completes as a file.

use clap::CommandFactory;

use crate::args::{Cli, CompletionsArgs};

pub fn run(a: CompletionsArgs) -> anyhow::Result<()> {
    let mut out = Vec::new();
    let mut cli = Cli::command();
    clap_complete::generate(a.shell, &mut cli, "mmf", &mut out);
    if a.shell == clap_complete::Shell::Bash {
        out.extend_from_slice(bash_channel_names(&cli).as_bytes());
    }
    super::print_bytes(&out)
}

/// The verbs whose positional argument names channels that exist: every verb with an argument
/// `name` or `names`, but `new`, which makes one.
fn channel_verbs(cli: &clap::Command) -> Vec<(Vec<String>, Vec<String>, bool)> {
    cli.get_subcommands()
        .filter(|v| v.get_name() != "new")
        .filter_map(|v| {
            let arg = v
                .get_positionals()
                .find(|p| matches!(p.get_id().as_str(), "name" | "names"))?;
            let many = arg.get_num_args().is_some_and(|n| n.max_values() > 1);
            let verbs = std::iter::once(v.get_name())
                .chain(v.get_visible_aliases())
                .map(str::to_owned)
                .collect();
            // Options that take a value: the word after them is that value.
            let valued = v
                .get_opts()
                .filter(|o| o.get_action().takes_values())
                .flat_map(|o| {
                    let long = o.get_long().map(|l| format!("--{l}"));
                    let short = o.get_short().map(|s| format!("-{s}"));
                    long.into_iter().chain(short)
                })
                .collect();
            Some((verbs, valued, many))
        })
        .collect()
}

/// The bash function that completes channel names, and its registration in place of clap's
/// `_mmf` (which it calls for everything else).
fn bash_channel_names(cli: &clap::Command) -> String {
    let mut cases = String::new();
    for (verbs, valued, many) in channel_verbs(cli) {
        cases.push_str(&format!(
            "        {}) valued=' {} '; many={} ;;\n",
            verbs.join("|"),
            valued.join(" "),
            u8::from(many)
        ));
    }
    format!(
        r#"
# Channel names, from `mmf list --names`, where a verb takes an existing channel; clap's
# _mmf completes everything else.
_mmf_channel_names() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" valued many i w skip=0 given=0 dashdash=0
    case "${{COMP_WORDS[1]}}" in
{cases}        *) return 1 ;;
    esac
    for ((i = 2; i < COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        if ((skip)); then skip=0; continue; fi
        if ((dashdash)) || [[ $w != -* ]]; then given=$((given + 1)); continue; fi
        case "$w" in
            --) dashdash=1 ;;
            --*=*) ;;
            *) [[ $valued == *" $w "* ]] && skip=1 ;;
        esac
    done
    ((skip)) && return 1
    ((dashdash)) || [[ $cur != -* ]] || return 1
    ((given == 0 || many)) || return 1
    COMPREPLY=()
    if [[ $cur == */* ]]; then
        compopt -o default 2>/dev/null
        return 0
    fi
    local name
    while IFS= read -r name; do
        [[ $name == "$cur"* ]] && COMPREPLY+=("$(printf '%q' "$name")")
    done < <("${{COMP_WORDS[0]}}" list --names 2>/dev/null)
    return 0
}}

_mmf_with_channel_names() {{
    _mmf_channel_names "$@" || _mmf "$@"
}}

complete -F _mmf_with_channel_names -o bashdefault -o default mmf
"#
    )
}
