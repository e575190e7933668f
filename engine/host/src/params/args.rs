//! The command line after `kmsctl run PLAYBOOK`: run options and playbook parameters, mixed in
//! any order.

use super::{ParamError, ParamSpec, ParamType, kebab};
use crate::suggest::suggest;

/// A run option of kmsctl itself (not a playbook parameter).
#[derive(Debug)]
pub(crate) struct RunOption {
    /// Long name without `--`.
    pub name: &'static str,
    /// Short form.
    pub short: Option<char>,
    /// Metavariable when it takes a value.
    pub value: Option<&'static str>,
    /// Help text.
    pub doc: &'static str,
}

/// kmsctl's run options. Playbooks cannot declare parameters with these names.
pub(crate) const RESERVED: &[RunOption] = &[
    RunOption {
        name: "values",
        short: Some('f'),
        value: Some("FILE"),
        doc: "Read parameters from a YAML or JSON map (repeatable; later files win)",
    },
    RunOption { name: "set", short: None, value: Some("NAME=VALUE"), doc: "Set a parameter (repeatable)" },
    RunOption {
        name: "context",
        short: None,
        value: Some("CTX"),
        doc: "Kubernetes context to use (default: the kubeconfig's current context)",
    },
    RunOption {
        name: "timeout",
        short: None,
        value: Some("DURATION"),
        doc: "Cancel the whole run after this long (exit code 3)",
    },
    RunOption {
        name: "output",
        short: None,
        value: Some("human|json"),
        doc: "human: progress on stderr; json: one event per line on stdout",
    },
    RunOption {
        name: "artifacts",
        short: None,
        value: Some("DIR"),
        doc: "Where report.html, events.jsonl, logs and failure reports go (default kmsctl-artifacts)",
    },
    RunOption {
        name: "junit",
        short: None,
        value: Some("FILE"),
        doc: "Write a JUnit report to FILE: one test case per step, failures with their report",
    },
    RunOption {
        name: "stdlib-dir",
        short: None,
        value: Some("DIR"),
        doc: "Load std/ modules from DIR instead of the built-in copies",
    },
    RunOption {
        name: "plan",
        short: None,
        value: None,
        doc: "Record every change instead of making it and print the plan (no cluster needed)",
    },
    RunOption {
        name: "diff",
        short: None,
        value: None,
        doc: "Dry-run every object on the cluster and print how it would change (exit 5: changes)",
    },
    RunOption {
        name: "against-cluster",
        short: None,
        value: None,
        doc: "With --plan: read the real cluster instead of assuming an empty one",
    },
    RunOption {
        name: "watch",
        short: None,
        value: None,
        doc: "Run again whenever the playbook, a module it imports or a values file changes (Ctrl-C stops)",
    },
    RunOption { name: "verbose", short: Some('v'), value: None, doc: "Show debug logs" },
    RunOption { name: "help", short: Some('h'), value: None, doc: "Show this playbook's parameters" },
];

/// Names playbooks cannot use besides [`RESERVED`]: `all`
/// (`param::all` is the map of every parameter).
pub(crate) const RESERVED_FOR_LATER: &[&str] = &["all"];

/// Where a parameter value came from. Later sources win: default < env < values file < command line.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Source {
    /// The playbook's default.
    Default,
    /// An environment variable.
    Env(String),
    /// A values file.
    ValuesFile(String),
    /// `--set` or a flag.
    CommandLine,
}

/// One parameter assignment from the command line.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct RawArg {
    /// Parameter name (snake_case).
    pub name: String,
    /// The text given (`"true"`/`"false"` for flags).
    pub text: String,
    /// Index of the argument it came from.
    pub arg: usize,
}

/// The parsed command line of `kmsctl run`.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RunArgs {
    /// `--values` files with their argument index.
    pub values: Vec<(String, usize)>,
    /// Parameter assignments in command-line order.
    pub params: Vec<RawArg>,
    /// `--context`.
    pub context: Option<String>,
    /// `--timeout` text and index.
    pub timeout: Option<(String, usize)>,
    /// `--output` text and index.
    pub output: Option<(String, usize)>,
    /// `--artifacts`.
    pub artifacts: Option<String>,
    /// `--junit`.
    pub junit: Option<String>,
    /// `--stdlib-dir`.
    pub stdlib_dir: Option<String>,
    /// `--verbose`.
    pub verbose: bool,
    /// `--watch`.
    pub watch: bool,
    /// `--plan`.
    pub plan: bool,
    /// `--diff` and its index.
    pub diff: Option<usize>,
    /// `--against-cluster` and its index (it means nothing without `--plan`).
    pub against_cluster: Option<usize>,
    /// `--help`.
    pub help: bool,
    /// Arguments whose value must never be echoed, as (index, byte offset where the value
    /// starts): values of secret parameters, and of unknown flags, which may be misspelt ones.
    pub masked: Vec<(usize, usize)>,
}

/// Mask `value`, the end of `args[idx]`, in echoes of the command line.
fn mask(out: &mut RunArgs, args: &[String], idx: usize, value: &str) {
    out.masked.push((idx, args[idx].len().saturating_sub(value.len())));
}

fn is_flag(tok: &str) -> bool {
    tok.starts_with("--") || matches!(tok, "-h" | "-v" | "-f")
}

/// Parse the arguments after the playbook path. With `specs == None` only run options are
/// read and parameters are skipped (the first pass, before the playbook is compiled).
pub(crate) fn parse_args(args: &[String], specs: Option<&[ParamSpec]>) -> (RunArgs, Vec<ParamError>) {
    let mut out = RunArgs::default();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let tok = &args[i];
        let idx = i;
        i += 1;
        if !is_flag(tok) {
            if specs.is_some() {
                // A word after a misspelt flag (`-token S3CRET`) or after a secret's value may be
                // a secret itself: it is neither echoed nor quoted.
                let prev = idx.checked_sub(1);
                let after_dash = prev.is_some_and(|p| args[p].starts_with('-'));
                let after_masked = prev.is_some_and(|p| out.masked.iter().any(|(m, _)| *m == p));
                if after_dash || after_masked {
                    mask(&mut out, args, idx, tok);
                    errors.push(
                        ParamError::new("unexpected argument (not shown: it may be a secret)", Some(idx))
                            .help("playbook parameters are given as --name value; see --help"),
                    );
                } else if tok.starts_with('-') && tok.len() > 1 {
                    errors.push(
                        ParamError::new(format!("unexpected argument '{tok}'"), Some(idx))
                            .help(format!("flags start with two dashes: -{tok}; see --help")),
                    );
                } else {
                    errors.push(
                        ParamError::new(format!("unexpected argument '{tok}'"), Some(idx))
                            .help("playbook parameters are given as --name value; see --help"),
                    );
                }
            }
            continue;
        }
        let (name, inline) = match tok.strip_prefix("--") {
            Some(body) => match body.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (body.to_string(), None),
            },
            None => {
                let long = RESERVED.iter().find(|o| o.short.map(|c| format!("-{c}")).as_deref() == Some(tok.as_str()));
                (long.map(|o| o.name.to_string()).unwrap_or_default(), None)
            }
        };
        // Take the value of an option: inline, or the next argument if it is not a flag.
        // The index is the argument holding the value, so errors point at it.
        let mut take_value = |what: &str| -> Option<(String, usize)> {
            if let Some(v) = &inline {
                return Some((v.clone(), idx));
            }
            match args.get(i) {
                Some(next) if !is_flag(next) => {
                    i += 1;
                    Some((next.clone(), i - 1))
                }
                _ => {
                    errors.push(
                        ParamError::new(format!("{tok} needs a value ({what})"), Some(idx))
                            .help(format!("write {tok} VALUE, or {tok}=VALUE for a value starting with '--'")),
                    );
                    None
                }
            }
        };

        if let Some(opt) = RESERVED.iter().find(|o| o.name == name) {
            match opt.value {
                Some(meta) => {
                    let Some((v, vidx)) = take_value(meta) else {
                        continue;
                    };
                    match opt.name {
                        "values" => out.values.push((v, vidx)),
                        "set" => {
                            let Some(specs) = specs else { continue };
                            match v.split_once('=') {
                                Some((n, val)) => match find(specs, n) {
                                    Some((spec, _)) => {
                                        if spec.secret {
                                            mask(&mut out, args, vidx, val);
                                        }
                                        out.params.push(RawArg {
                                            name: spec.name.clone(),
                                            text: val.to_string(),
                                            arg: vidx,
                                        })
                                    }
                                    None => {
                                        mask(&mut out, args, vidx, val);
                                        errors.push(unknown(specs, n, idx))
                                    }
                                },
                                // Not NAME=VALUE: it may be a secret without its name.
                                None => {
                                    mask(&mut out, args, vidx, &v);
                                    errors.push(ParamError::new("--set wants NAME=VALUE", Some(vidx)))
                                }
                            }
                        }
                        "context" => out.context = Some(v),
                        "timeout" => out.timeout = Some((v, vidx)),
                        "output" => out.output = Some((v, vidx)),
                        "artifacts" => out.artifacts = Some(v),
                        "junit" => out.junit = Some(v),
                        "stdlib-dir" => out.stdlib_dir = Some(v),
                        _ => unreachable!("every valued run option is handled"),
                    }
                }
                None => {
                    if inline.is_some() {
                        errors.push(ParamError::new(format!("--{name} takes no value"), Some(idx)));
                    }
                    match opt.name {
                        "verbose" => out.verbose = true,
                        "watch" => out.watch = true,
                        "plan" => out.plan = true,
                        "diff" => out.diff = Some(idx),
                        "against-cluster" => out.against_cluster = Some(idx),
                        _ => out.help = true,
                    }
                }
            }
            continue;
        }

        let Some(specs) = specs else {
            // First pass: skip the parameter and its value.
            if inline.is_none() && args.get(i).is_some_and(|n| !is_flag(n)) {
                i += 1;
            }
            continue;
        };
        match find(specs, &name) {
            Some((spec, negated)) => {
                if spec.ty == ParamType::Bool {
                    let text = match (&inline, negated) {
                        (Some(_), true) => {
                            errors.push(ParamError::new(format!("{tok} takes no value"), Some(idx)));
                            continue;
                        }
                        (Some(v), false) => v.clone(),
                        (None, neg) => (!neg).to_string(),
                    };
                    out.params.push(RawArg { name: spec.name.clone(), text, arg: idx });
                } else if let Some((v, vidx)) = take_value(&spec.ty.describe()) {
                    if spec.secret {
                        mask(&mut out, args, vidx, &v);
                    }
                    out.params.push(RawArg { name: spec.name.clone(), text: v, arg: vidx });
                }
            }
            None => {
                errors.push(unknown(specs, &name, idx));
                // Its value, if any, belongs to it: don't report it again as a stray argument,
                // and don't echo it (a misspelt secret flag's value is a secret).
                if let Some(v) = &inline {
                    mask(&mut out, args, idx, v);
                } else if args.get(i).is_some_and(|n| !is_flag(n)) {
                    mask(&mut out, args, i, &args[i]);
                    i += 1;
                }
            }
        }
    }
    (out, errors)
}

/// Find the parameter a flag name sets, and whether it negates a bool.
fn find<'a>(specs: &'a [ParamSpec], flag: &str) -> Option<(&'a ParamSpec, bool)> {
    let flag = kebab(flag);
    for s in specs {
        if s.flag_names().any(|f| f == flag) {
            return Some((s, false));
        }
        if s.ty == ParamType::Bool
            && (s.off_aliases.contains(&flag)
                || flag.strip_prefix("no-").is_some_and(|f| s.flag_names().any(|n| n == f)))
        {
            return Some((s, true));
        }
    }
    None
}

fn unknown(specs: &[ParamSpec], name: &str, idx: usize) -> ParamError {
    let flags: Vec<String> = specs.iter().flat_map(|s| s.flag_names().collect::<Vec<_>>()).collect();
    let mut e = ParamError::new(format!("unknown parameter --{}", kebab(name)), Some(idx));
    e.help = Some(match suggest(&kebab(name), flags.iter().map(String::as_str)) {
        Some(s) => format!("did you mean --{s}? (--help lists the parameters)"),
        None => "--help lists this playbook's parameters".into(),
    });
    e
}
