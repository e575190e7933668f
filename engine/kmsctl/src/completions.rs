//! Shell completions: clap's script for the subcommands and their flags, plus a hook that
//! completes a playbook's own parameters after `kmsctl run PLAYBOOK` by asking
//! `kmsctl complete-params PLAYBOOK --prev WORD` (the playbook is compiled, nothing runs).

use clap_complete::Shell;

/// The completion script for `shell`: clap's, with the hook that wraps its completion function
/// (bash, zsh) or adds a rule (fish).
pub(crate) fn script(shell: Shell, cmd: &mut clap::Command) -> String {
    let mut buf = Vec::new();
    clap_complete::generate(shell, cmd, "kmsctl", &mut buf);
    let clap = String::from_utf8_lossy(&buf).into_owned();
    match shell {
        Shell::Bash => clap + BASH,
        Shell::Fish => clap + FISH,
        // zsh: the file is also autoloaded as `_kmsctl` from $fpath, so the hook goes before
        // clap's closing dispatch, which then calls it instead.
        Shell::Zsh => match clap.rfind("if [ \"$funcstack[1]\" = \"_kmsctl\" ]; then") {
            Some(i) => format!(
                "{}{ZSH}\nif [ \"$funcstack[1]\" = \"_kmsctl\" ]; then\n    _kmsctl_playbook \"$@\"\nelse\n    compdef _kmsctl_playbook kmsctl\nfi\n",
                &clap[..i]
            ),
            None => clap,
        },
        _ => clap,
    }
}

/// The words `complete-params` prints for `shell`: `word` (bash), `word:description` (zsh's
/// _describe, colons in the word escaped), `word<TAB>description` (fish).
pub(crate) fn format(shell: Shell, candidates: &[(String, String)]) -> String {
    let mut out = String::new();
    for (word, doc) in candidates {
        let doc = doc.replace(['\n', '\t'], " ");
        match shell {
            Shell::Zsh => out.push_str(&format!("{}:{doc}\n", word.replace(':', "\\:"))),
            Shell::Fish => out.push_str(&format!("{word}\t{doc}\n")),
            _ => out.push_str(&format!("{word}\n")),
        }
    }
    out
}

const BASH: &str = r#"
# A playbook's own parameters after `kmsctl run PLAYBOOK`.
_kmsctl_playbook() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    if [[ ${COMP_WORDS[1]} == run && $COMP_CWORD -ge 3 && -f ${COMP_WORDS[2]} ]]; then
        local words
        words=$(command kmsctl complete-params "${COMP_WORDS[2]}" --prev "$prev" --shell bash 2>/dev/null)
        if [[ -n $words ]]; then
            local IFS=$'\n'
            COMPREPLY=($(compgen -W "$words" -- "$cur"))
            return 0
        fi
        COMPREPLY=($(compgen -f -- "$cur"))
        return 0
    fi
    _kmsctl "$@"
}
complete -F _kmsctl_playbook -o bashdefault -o default kmsctl
"#;

const ZSH: &str = r#"
# A playbook's own parameters after `kmsctl run PLAYBOOK`.
_kmsctl_playbook() {
    if [[ ${words[2]} == run && $CURRENT -ge 4 && -f ${words[3]} ]]; then
        local -a candidates
        candidates=("${(@f)$(command kmsctl complete-params ${words[3]} --prev ${words[CURRENT-1]} --shell zsh 2>/dev/null)}")
        if [[ -n ${candidates[1]} ]]; then
            _describe 'parameter' candidates
        else
            _files
        fi
        return
    fi
    _kmsctl "$@"
}
"#;

const FISH: &str = r#"
# A playbook's own parameters after `kmsctl run PLAYBOOK`.
function __kmsctl_playbook_params
    set -l tokens (commandline -opc)
    if test (count $tokens) -ge 3; and test "$tokens[2]" = run; and test -f "$tokens[3]"
        command kmsctl complete-params $tokens[3] --prev $tokens[-1] --shell fish 2>/dev/null
    end
end
complete -c kmsctl -n 'test (count (commandline -opc)) -ge 3; and __fish_seen_subcommand_from run' -f -a '(__kmsctl_playbook_params)'
"#;
