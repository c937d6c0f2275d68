//! `mmf completions SHELL`: a completion script for bash, zsh, fish, elvish or PowerShell.
//!
//! clap's script completes verbs and flags. For bash, zsh and fish, channel names
//! (`mmf list --names`) are completed too where a verb takes an existing channel (`read`,
//! `out`, `info`, `watch`, `recover`, `remove`): which verbs, which of their options take a
//! value (after which a word is that value, not a name), and which take several names are read
//! off the same clap model, so the scripts cannot drift apart from the verbs. bash and fish get
//! a function that counts the words typed; zsh's `_arguments` already does, and the name's
//! spec in clap's script calls a function that gives the names. A word with a '/' is a file
//! path and completes as a file. elvish and PowerShell complete verbs and flags only.

use clap::CommandFactory;

use crate::args::{Cli, CompletionsArgs};

pub fn run(a: CompletionsArgs) -> anyhow::Result<()> {
    let mut out = Vec::new();
    let mut cli = Cli::command();
    clap_complete::generate(a.shell, &mut cli, "mmf", &mut out);
    match a.shell {
        clap_complete::Shell::Bash => out.extend_from_slice(bash_channel_names(&cli).as_bytes()),
        clap_complete::Shell::Fish => out.extend_from_slice(fish_channel_names(&cli).as_bytes()),
        clap_complete::Shell::Zsh => out = zsh_channel_names(&cli, &out).into_bytes(),
        _ => {}
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
    # The words as typed. bash splits `a:b` and `a=b` into three words (its COMP_WORDBREAKS),
    # and a name may hold either: words with no blank between them in the line are one here.
    local -a words=()
    local cword=0 i w gap rest="${{COMP_LINE:0:COMP_POINT}}"
    for ((i = 0; i <= COMP_CWORD; i++)); do
        w="${{COMP_WORDS[i]}}"
        if ((i == COMP_CWORD)); then
            # The word being completed, up to the cursor (what follows it stays as it is).
            gap="${{rest%%[![:blank:]]*}}"
            w="${{rest:${{#gap}}}}"
        elif [[ -n $w ]]; then
            gap="${{rest%%"$w"*}}"
        else
            gap="$rest"
        fi
        rest="${{rest:${{#gap}}+${{#w}}}}"
        if ((i > 0)) && [[ -z $gap ]]; then
            words[cword]+="$w"
        else
            ((i > 0)) && cword=$((cword + 1))
            words[cword]="$w"
        fi
    done
    local cur="${{words[cword]}}" valued many skip=0 given=0 dashdash=0 verb=1
    # The verb, past global flags (`mmf -q read`), which take no value.
    while ((verb < cword)) && [[ ${{words[verb]}} == -* ]]; do verb=$((verb + 1)); done
    ((verb < cword)) || return 1
    case "${{words[verb]}}" in
{cases}        *) return 1 ;;
    esac
    for ((i = verb + 1; i < cword; i++)); do
        w="${{words[i]}}"
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
    # The command as typed (`./target/release/mmf`, `~/bin/mmf`), else the one on PATH. bash
    # gives the word as typed: a path with a space escaped (`~/My\ Projects/...`, as its file
    # completion inserts it) or quoted in part (`~/'My Projects'/...`), undone here a character
    # at a time, not by eval, which would run what the line holds (it was taken for no
    # command, and names came from PATH's mmf). `~/` counts unquoted, at the start.
    local name mmf="" typed="${{words[0]}}" c q="" i
    for ((i = 0; i < ${{#typed}}; i++)); do
        c="${{typed:i:1}}"
        if [[ $q == "'" ]]; then
            [[ $c == "'" ]] && q="" || mmf+="$c"
        elif [[ $c == '\' && ( -z $q || ${{typed:i+1:1}} == [\\\"\$\`] ) ]]; then
            i=$((i + 1))
            mmf+="${{typed:i:1}}"
        elif [[ $c == '"' ]]; then
            [[ $q == '"' ]] && q="" || q='"'
        elif [[ $c == "'" && -z $q ]]; then
            q="'"
        else
            mmf+="$c"
        fi
    done
    [[ $typed == '~/'* ]] && mmf="$HOME/${{mmf#'~/'}}"
    type -P -- "$mmf" >/dev/null || mmf=mmf
    # A name matches as typed escaped (`with\ s`), or opened with a quote (`'with s`), where
    # readline quotes what it inserts, so the name is given as it is. bash replaces only the
    # text after the last ':' or '=' of an unquoted word: the rest is cut off.
    local quoted dashed=0 keep="${{cur%"${{cur##*[:=]}}"}}"
    while IFS= read -r name; do
        # Before `--`, a name that begins with '-' would be taken for a flag: `--` is offered
        # in its place, and past it the name.
        if ((!dashdash)) && [[ $name == -* ]]; then
            dashed=1
            continue
        fi
        if [[ $cur == [\'\"]* ]]; then
            # Inserted as it is within the quote: a name that would end it, or that `"` would
            # expand, is left out (typed unquoted, it is offered escaped).
            [[ $cur == \'* && $name == *\'* || $cur == \"* && $name == *[\"\$\`\\]* ]] && continue
            [[ $name == "${{cur:1}}"* ]] && COMPREPLY+=("$name")
        else
            printf -v quoted '%q' "$name"
            [[ $name == "$cur"* || $quoted == "$cur"* ]] && COMPREPLY+=("${{quoted#"$keep"}}")
        fi
    done < <("$mmf" list --names 2>/dev/null)
    ((dashed)) && [[ -z $cur ]] && COMPREPLY+=(--)
    return 0
}}

_mmf_with_channel_names() {{
    _mmf_channel_names "$@" || _mmf "$@"
}}

complete -F _mmf_with_channel_names -o bashdefault -o default mmf
"#
    )
}

/// clap's zsh script `script`, with the positional argument of every verb that takes existing
/// channels completed by `_mmf_channel_names` (defined at its end) in place of `_default`.
/// zsh's `_arguments` already tells an option's value and a second positional from the name;
/// the function completes a word with a '/' as a file, and any other as a channel name.
fn zsh_channel_names(cli: &clap::Command, script: &[u8]) -> String {
    let verbs: Vec<String> = channel_verbs(cli).into_iter().flat_map(|v| v.0).collect();
    let mut out = String::with_capacity(script.len() + 1024);
    // The section of the script being read: `(read)` opens the verb read's `_arguments`.
    let mut section = String::new();
    for line in String::from_utf8_lossy(script).split_inclusive('\n') {
        let bare = line.trim_end();
        if let Some(verb) = bare.strip_prefix('(').and_then(|l| l.strip_suffix(')')) {
            section = verb.to_owned();
        }
        let positional = bare.starts_with("':name -- ") || bare.starts_with("'*::names -- ");
        match bare.strip_suffix(":_default' \\") {
            Some(spec) if positional && verbs.contains(&section) => {
                out.push_str(spec);
                out.push_str(":_mmf_channel_names' \\\n");
            }
            _ => out.push_str(line),
        }
        // The command as typed (`./target/release/mmf`), before `_arguments` narrows `words`.
        if bare == "_mmf() {" {
            out.push_str(
                "    local _mmf_command=\"${(Q)words[1]}\"\n    \
                 [[ $_mmf_command == '~/'* ]] && _mmf_command=\"$HOME/${_mmf_command#'~/'}\"\n    \
                 local _mmf_dashdash=${${words[2,CURRENT-1]}[(I)--]}\n",
            );
        }
    }
    // Before the script's last lines, which call `_mmf` at once where the script is autoloaded
    // from `fpath` (and register it where it is sourced).
    let tail = out
        .rfind("\nif [ \"$funcstack[1]\" = \"_mmf\" ]; then")
        .map_or(out.len(), |at| at + 1);
    out.insert_str(
        tail,
        r#"# Channel names, from `mmf list --names`, where a verb takes an existing channel; a word with a
# '/' is a file path, completed as a file.
(( $+functions[_mmf_channel_names] )) ||
_mmf_channel_names() {
    if [[ $PREFIX == */* ]]; then
        _files
        return
    fi
    # A flag is clap's to complete, not a name that begins with '-', but past `--` it is a name
    # (`_arguments` takes `--` out of `words`: `_mmf` looked for it before, in this command's
    # words alone).
    [[ $PREFIX == -* ]] && (( ! ${_mmf_dashdash:-0} )) && return 1
    # The command as typed (`./target/release/mmf`), else the one on PATH.
    local mmf="${_mmf_command:-mmf}"
    (( $+commands[$mmf] )) || [[ -x $mmf && ! -d $mmf ]] || mmf=mmf
    local -a names expl
    names=(${(f)"$("$mmf" list --names 2>/dev/null)"})
    # Before `--`, a name that begins with '-' would be taken for a flag: `--` is offered in
    # its place, and past it the name.
    (( ! ${_mmf_dashdash:-0} && ${names[(I)-*]} )) && names=(${names:#-*} --)
    _wanted channels expl 'channel name' compadd -a names
}

"#,
    );
    out
}

/// The fish function that tells where a word is a channel name, and the completion that gives
/// the names there (beside clap's, which complete flags and option values).
fn fish_channel_names(cli: &clap::Command) -> String {
    let mut cases = String::new();
    for (verbs, valued, many) in channel_verbs(cli) {
        cases.push_str(&format!(
            "        case {}\n            set valued {}\n            set many {}\n",
            verbs.join(" "),
            valued.join(" "),
            u8::from(many)
        ));
    }
    format!(
        r#"
# Channel names, from `mmf list --names`, where a verb takes an existing channel (not in an
# option's value, not past the name of a verb that takes one, not a word with a '/', which
# completes as a file).
function __fish_mmf_wants_channel_name
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    string match -q -- '*/*' "$cur"; and return 1
    # The verb, past global flags (`mmf -q read`), which take no value.
    set -l verb 2
    while set -q words[$verb]; and string match -q -- '-*' $words[$verb]
        set verb (math $verb + 1)
    end
    set -q words[$verb]; or return 1
    set -l valued
    set -l many 0
    switch $words[$verb]
{cases}        case '*'
            return 1
    end
    set -e words[1..$verb]
    set -l skip 0
    set -l given 0
    set -l dashdash 0
    for w in $words
        if test $skip = 1
            set skip 0
        else if test $dashdash = 1; or not string match -q -- '-*' $w
            set given (math $given + 1)
        else if test "$w" = --
            set dashdash 1
        else if not string match -q -- '--*=*' $w; and contains -- $w $valued
            set skip 1
        end
    end
    test $skip = 0; or return 1
    test $dashdash = 1; or not string match -q -- '-*' "$cur"; or return 1
    test $given = 0 -o $many = 1
end

function __fish_mmf_channel_names
    # The command as typed (`./target/release/mmf`, `~/bin/mmf`), else the one on PATH; fish
    # would print its own error for a command that is not there, whatever the redirection.
    set -l mmf (string replace -r -- '^~/' "$HOME/" (commandline -opc)[1])
    command -q -- $mmf; or set mmf mmf
    command -q -- $mmf; or return
    set -l names ($mmf list --names 2>/dev/null)
    # Before `--`, a name that begins with '-' would be taken for a flag: `--` is offered in
    # its place, and past it the name.
    if contains -- -- (commandline -opc)[2..]
        string match -- '*' $names
    else
        string match -v -- '-*' $names
        string match -q -- '-*' $names; and printf '%s\n' --
    end
end

complete -c mmf -f -n __fish_mmf_wants_channel_name -a '(__fish_mmf_channel_names)'
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The zsh script's edit of clap's output found every verb that takes existing channels (a
    /// change of clap_complete's format would otherwise lose names silently, where the test
    /// that drives zsh is skipped for want of zsh), and left `new`'s name alone.
    #[test]
    fn zsh_names_every_channel_verb() {
        let mut cli = Cli::command();
        let mut clap = Vec::new();
        clap_complete::generate(clap_complete::Shell::Zsh, &mut cli, "mmf", &mut clap);
        let script = zsh_channel_names(&cli, &clap);
        let verbs: Vec<String> = channel_verbs(&cli).into_iter().flat_map(|v| v.0).collect();
        assert!(verbs.len() >= 8, "{verbs:?}");
        for verb in &verbs {
            let section = script
                .split(&format!("\n({verb})\n"))
                .nth(1)
                .unwrap_or_else(|| panic!("no section for {verb}"));
            let section = &section[..section.find("\n;;").unwrap()];
            assert!(
                section.contains(":_mmf_channel_names' \\"),
                "{verb}: {section}"
            );
        }
        assert_eq!(
            script.matches(":_mmf_channel_names' \\").count(),
            verbs.len()
        );
        assert!(script.contains("_mmf_channel_names() {"));
    }
}
