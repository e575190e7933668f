//! `env`: environment variables, plain or as secrets, and the terminal: is someone there, and
//! a yes/no question for them.

use super::{BuiltModule, ModuleBuilder, NativeModule};
use crate::ctx::HostCtx;
use crate::error::{ErrorKind, Failure, to_rhai};
use crate::events::Level;
use crate::modules::opts::Opts;
use crate::secret::Secret;
use rhai::{Dynamic, EvalAltResult, INT, Map};
use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
use tokio::sync::mpsc;

/// The `env` module.
pub(crate) struct Env;

use crate::error::ScriptResult as R;

fn missing(name: &str) -> Box<EvalAltResult> {
    to_rhai(
        &Failure::new(ErrorKind::NotFound, format!("environment variable {name} is not set"))
            .with_detail("name", name.to_string()),
    )
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Can kmsctl ask the user? stdin and stderr are terminals, and this is not CI (`CI` unset,
/// empty or `false`: the human view's rule).
fn interactive() -> bool {
    let ci = std::env::var("CI").ok();
    is_interactive(std::io::stdin().is_terminal(), std::io::stderr().is_terminal(), ci.as_deref())
}

fn is_interactive(stdin_tty: bool, stderr_tty: bool, ci: Option<&str>) -> bool {
    stdin_tty && stderr_tty && !ci.is_some_and(|v| !v.is_empty() && v != "false")
}

/// A typed answer: yes, no, the default for an empty line, or `None` to ask again.
fn parse_answer(line: &str, default: bool) -> Option<bool> {
    match line.trim().to_ascii_lowercase().as_str() {
        "" => Some(default),
        "y" | "yes" => Some(true),
        "n" | "no" => Some(false),
        _ => None,
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// `env::confirm`: ask on the terminal when `interactive`; otherwise the default, without
/// touching stdin. The answer is logged either way.
fn confirm(ctx: &HostCtx, question: &str, default: bool, interactive: bool) -> R<bool> {
    let question = ctx.redactor().redact(question).into_owned();
    if !interactive {
        ctx.log(Level::Info, format!("{question} → {} (the default: no terminal to ask)", yes_no(default)));
        return Ok(default);
    }
    let mut answer = Ok(default);
    // The live view is held off the terminal while the question waits.
    ctx.events().suspend(&mut || answer = ask(ctx, &question, default));
    let answer = answer?;
    ctx.log(Level::Info, format!("{question} → {}", yes_no(answer)));
    Ok(answer)
}

fn ask(ctx: &HostCtx, question: &str, default: bool) -> R<bool> {
    let hint = if default { "[Y/n]" } else { "[y/N]" };
    let lines = stdin_lines();
    let mut lines = lines.lock().expect("stdin lock");
    // Only what is typed after the question answers it.
    while lines.try_recv().is_ok() {}
    loop {
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "{question} {hint} ");
        let _ = err.flush();
        drop(err);
        let line = ctx.block_on(async { Ok::<_, Failure>(lines.recv().await.flatten()) });
        // Cancelled (Ctrl-C) or at the end of stdin, the user typed no newline: end the line.
        let Ok(Some(line)) = line else {
            eprintln!();
            return line.map(|_| default);
        };
        match parse_answer(&line, default) {
            Some(b) => return Ok(b),
            None => eprintln!("Please answer y or n."),
        }
    }
}

/// kmsctl's stdin as lines (`None` at its end), read by one thread for the whole process: a
/// question cancelled while it waited (`wait::timeout`) leaves that read pending, and the next
/// question takes its line rather than racing a second reader for stdin.
static STDIN: OnceLock<Mutex<mpsc::UnboundedReceiver<Option<String>>>> = OnceLock::new();

/// [`STDIN`], its reader started on first use.
fn stdin_lines() -> &'static Mutex<mpsc::UnboundedReceiver<Option<String>>> {
    STDIN.get_or_init(|| {
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(Some(line)).is_err() {
                    return;
                }
            }
            let _ = tx.send(None);
        });
        Mutex::new(rx)
    })
}

/// The options of `env::confirm`.
const CONFIRM_OPTS: &[&str] = &["default_value"];

impl NativeModule for Env {
    fn name(&self) -> &'static str {
        "env"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let mut b = ModuleBuilder::new(ctx, self.name(), "Environment variables. Empty values count as unset.");
        b.func("get", &["name: string", "string"], "The variable's value, or `()` when unset.", |n: &str| {
            var(n).map(Dynamic::from).unwrap_or(Dynamic::UNIT)
        })
        .reads();
        b.func(
            "get",
            &["name: string", "default: any", "any"],
            "The variable's value, or `default` when unset.",
            |n: &str, d: Dynamic| var(n).map(Dynamic::from).unwrap_or(d),
        )
        .reads();
        b.func("has", &["name: string", "bool"], "Is the variable set and non-empty?", |n: &str| var(n).is_some())
            .reads();
        b.func(
            "require",
            &["name: string", "string"],
            "The variable's value; a `not_found` error when unset.",
            |n: &str| -> R<String> { var(n).ok_or_else(|| missing(n)) },
        )
        .reads();
        let c = ctx.clone();
        b.func(
            "secret",
            &["name: string", "Secret"],
            "The variable as a secret (masked in all output); a `not_found` error when unset.",
            move |n: &str| -> R<Secret> { var(n).map(|v| c.secret(v)).ok_or_else(|| missing(n)) },
        )
        .reads();
        let c = ctx.clone();
        b.func(
            "secret_or_unit",
            &["name: string", "any"],
            "The variable as a secret, or `()` when unset.",
            move |n: &str| var(n).map(|v| Dynamic::from(c.secret(v))).unwrap_or(Dynamic::UNIT),
        )
        .reads();
        b.func(
            "kmsctl",
            &["string"],
            "The path of the running kmsctl binary (to run another playbook in the background).",
            || -> R<String> {
                std::env::current_exe().map(|p| p.display().to_string()).map_err(|e| {
                    to_rhai(&Failure::new(ErrorKind::Io, format!("cannot tell where kmsctl runs from: {e}")))
                })
            },
        )
        .reads();
        b.func("pid", &["int"], "This kmsctl's process id (a lock's holder, with `hostname`).", || {
            std::process::id() as INT
        })
        .reads();
        b.func(
            "hostname",
            &["string"],
            "The machine's host name (from /proc/sys/kernel/hostname; \"localhost\" when unreadable).",
            || {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "localhost".into())
            },
        )
        .reads();
        b.func(
            "is_terminal",
            &["bool"],
            "Is someone there to ask? stdin and stderr are terminals and this is not CI (CI unset or false).",
            interactive,
        )
        .reads();
        let c = ctx.clone();
        b.func(
            "planning",
            &["bool"],
            "Is this a --plan or --diff run (changes recorded, not made)? For stdlib code that waits on\n\
             what it just applied: in a plan that object was never created.",
            move || c.mode().is_plan(),
        )
        .reads();
        let c = ctx.clone();
        b.func(
            "confirm",
            &["question: string", "options: map", "bool"],
            "Ask a yes/no question on the terminal (the live view pauses meanwhile); an empty answer is the\n\
             default. Without a terminal (env::is_terminal() is false) it returns the default at once and\n\
             never reads stdin. The answer is logged. Options: default_value (false; `default` is a reserved\n\
             word in Rhai).",
            move |q: &str, o: Map| -> R<bool> {
                let o = Opts::new(&o, "env::confirm", CONFIRM_OPTS)?;
                confirm(&c, q, o.bool("default_value", false)?, interactive())
            },
        )
        .options(CONFIRM_OPTS)
        .reads();
        let c = ctx.clone();
        b.func(
            "confirm",
            &["question: string", "bool"],
            "Ask a yes/no question on the terminal; the default is no.",
            move |q: &str| confirm(&c, q, false, interactive()),
        )
        .reads();
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctx::testing;
    use crate::events::EventBody;

    #[test]
    fn a_terminal_on_stdin_and_stderr_outside_ci_is_interactive() {
        assert!(is_interactive(true, true, None));
        assert!(is_interactive(true, true, Some("false")));
        assert!(is_interactive(true, true, Some("")));
        assert!(!is_interactive(true, true, Some("true")));
        assert!(!is_interactive(true, true, Some("1")));
        assert!(!is_interactive(false, true, None));
        assert!(!is_interactive(true, false, None));
    }

    #[test]
    fn answers_are_yes_no_or_the_default() {
        for (line, default, want) in [
            ("y", false, Some(true)),
            (" YES\n", false, Some(true)),
            ("n", true, Some(false)),
            ("No", true, Some(false)),
            ("", true, Some(true)),
            ("  ", false, Some(false)),
            ("maybe", true, None),
        ] {
            assert_eq!(parse_answer(line, default), want, "{line:?}");
        }
    }

    #[test]
    fn without_a_terminal_confirm_gives_the_default_and_logs_it() {
        let (_rt, ctx, cap) = testing::ctx();
        assert!(confirm(&ctx, "Delete the cluster?", true, false).unwrap());
        assert!(!confirm(&ctx, "Keep it?", false, false).unwrap());
        let logs: Vec<String> = cap
            .events()
            .into_iter()
            .filter_map(|e| match e.body {
                EventBody::Log { message, .. } => Some(message),
                _ => None,
            })
            .collect();
        assert_eq!(
            logs,
            [
                "Delete the cluster? → yes (the default: no terminal to ask)",
                "Keep it? → no (the default: no terminal to ask)"
            ]
        );
        assert!(STDIN.get().is_none(), "stdin was never read");
    }
}
