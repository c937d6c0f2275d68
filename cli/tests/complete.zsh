# zsh -f complete.zsh SCRIPT WORDS: prints, one a line, the matches zsh's completion offers at
# the end of WORDS (a command line as typed), with SCRIPT (`mmf completions zsh`) sourced, or
# autoloaded from fpath where its file is named _mmf (as installed). It
# drives an interactive zsh in a pseudo-terminal and presses Tab, as a user would; compadd is
# wrapped to print each match it adds. For cli/tests/cli.rs `zsh_completes_channel_names`.
# Each line read from the terminal is copied to standard error, so that a test that fails (or
# is killed at its deadline) shows how far the interactive zsh got.
zmodload zsh/zpty || exit 2
zpty z zsh -f -i
zpty -w z "PS1= PS2= RPS1= ; unsetopt zle_bracketed_paste 2>/dev/null"
if [[ ${1:t} == _mmf ]]; then
  # Installed as a completion function: autoloaded from fpath at the first Tab.
  zpty -w z "fpath=(${(q)1:h} \$fpath); autoload -Uz compinit && compinit -u -D"
else
  zpty -w z "autoload -Uz compinit && compinit -u -D"
  zpty -w z "source ${(q)1}"
fi
zpty -w z 'compadd() {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a __hits; builtin compadd -A __hits "$@"
  local __h; for __h in $__hits; do print -r -- "<MATCH>$IPREFIX$__h"; done
}'
zpty -w z 'finish() { print -r -- "<END>" }; comppostfuncs=(finish)'
zpty -w z "bindkey '^I' complete-word"
zpty -w z "print -r -- '<READY>'"
while zpty -r z line; do
  print -ru2 -- "pty: ${line//$'\r'/}"
  [[ $line == '<READY>'* ]] && break
done
zpty -n -w z "$2"$'\t'
local -a got
while zpty -r z line; do
  print -ru2 -- "pty: ${line//$'\r'/}"
  line=${line//$'\r'/}
  line=${line//$'\n'/}
  [[ $line == *'<END>'* ]] && break
  [[ $line == *'<MATCH>'* ]] && got+=("${line#*<MATCH>}")
done
zpty -d z
(( $#got )) && print -rl -- ${(ou)got}
exit 0
