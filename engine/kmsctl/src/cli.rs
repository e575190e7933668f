//! The command line.

use clap::builder::NonEmptyStringValueParser;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use kmsctl_aws::TokenRequest;
use kmsctl_host::{ErrorKind, ExitCode, Host, HostFailure, Ran};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "kmsctl",
    version,
    about = "Kubernetes deployments as editable Rhai playbooks",
    long_about = "Kubernetes deployments as editable Rhai playbooks.\n\n\
                  Exit codes: 0 ok, 1 runtime failure, 2 usage/compile/parameter error, 3 timeout,\n\
                  4 environment unavailable (cluster, cloud API, tool), 5 --diff found changes,\n\
                  130 interrupted."
)]
struct Cli {
    /// When to use colour on stderr.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a playbook. Its parameters follow it; `kmsctl run PLAYBOOK --help` lists them.
    #[command(disable_help_flag = true)]
    Run {
        /// The playbook file.
        playbook: PathBuf,
        /// Playbook parameters and run options (--values, --set, --context, --timeout, --output,
        /// --artifacts, --junit, --watch, --stdlib-dir, --plan, --diff, --verbose, --help).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
    },
    /// Compile every playbook and stdlib module under PATHS, resolve imports, lint calls.
    Check {
        /// Files or directories (default: playbooks, examples and the stdlib).
        paths: Vec<PathBuf>,
        /// Check std/ modules from this directory instead of the built-in copies.
        #[arg(long, value_name = "DIR")]
        stdlib_dir: Option<String>,
        /// Print nothing on success.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write the API reference (Markdown and Rhai definition files for editors) from the
    /// functions the binary registers and the stdlib's doc comments.
    Docs {
        /// The directory (default docs/api).
        #[arg(long, value_name = "DIR", default_value = "docs/api")]
        out: PathBuf,
        /// Write nothing; exit 1 listing the files that differ (CI's staleness check).
        #[arg(long)]
        check: bool,
        /// Document std/ modules from this directory instead of the built-in copies.
        #[arg(long, value_name = "DIR")]
        stdlib_dir: Option<String>,
    },
    /// Answer a release waiting at a manual gate (a canary's --manual-gate, a release's): promote
    /// or abort. Same as `kubectl annotate deployment NAME kmsctl.io/gate=promote`.
    Gate {
        /// promote or abort.
        action: GateActionArg,
        /// NAMESPACE/NAME (or NAME in the context's namespace): the Deployment a canary watches,
        /// or the release whose gate ConfigMap (kmsctl-gate-NAME) a release playbook watches.
        target: String,
        /// The kube context (default: the current one).
        #[arg(long)]
        context: Option<String>,
    },
    /// Print the version.
    Version,
    /// EKS helpers.
    Eks {
        #[command(subcommand)]
        cmd: EksCmd,
    },
    /// Print shell completions: subcommands, their flags, and after `kmsctl run PLAYBOOK` that
    /// playbook's own parameters and their values (bash, zsh, fish). E.g. `source <(kmsctl
    /// completions bash)`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The words completing a playbook's parameters after `prev` (for the completion scripts).
    #[command(hide = true)]
    CompleteParams {
        /// The playbook.
        playbook: PathBuf,
        /// The word before the one being completed.
        #[arg(long, allow_hyphen_values = true, default_value = "")]
        prev: String,
        /// The output format.
        #[arg(long, default_value = "bash")]
        shell: clap_complete::Shell,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum GateActionArg {
    Promote,
    Abort,
}

#[derive(Subcommand)]
enum EksCmd {
    /// Print an EKS bearer token as a kubeconfig exec credential
    /// (client.authentication.k8s.io/v1beta1) for kubectl and helm. AWS_ENDPOINT_URL and the
    /// other AWS_* variables are honoured as by the aws CLI.
    Token {
        /// The EKS cluster name the token is for.
        #[arg(long, visible_alias = "cluster-name", value_name = "NAME", value_parser = NonEmptyStringValueParser::new())]
        cluster: String,
        /// The cluster's region (default: AWS_REGION, then the profile's).
        #[arg(long, value_name = "REGION", value_parser = NonEmptyStringValueParser::new())]
        region: Option<String>,
        /// The AWS profile for credentials (default: AWS_PROFILE, then the chain).
        #[arg(long, value_name = "PROFILE", value_parser = NonEmptyStringValueParser::new())]
        profile: Option<String>,
        /// Assume this role first.
        #[arg(long, value_name = "ARN", value_parser = NonEmptyStringValueParser::new())]
        role_arn: Option<String>,
    },
}

fn host() -> Host {
    Host::new(vec![
        Box::new(kmsctl_k8s::K8s),
        Box::new(kmsctl_helm::Helm),
        Box::new(kmsctl_proc::Proc),
        Box::new(kmsctl_proc::Kind),
        Box::new(kmsctl_proc::Docker),
        Box::new(kmsctl_aws::Aws),
        Box::new(kmsctl_tls::Tls),
        Box::new(kmsctl_http::Http),
        Box::new(kmsctl_http::Prom),
    ])
}

/// Run the CLI; returns the process exit code. Everything the commands print is printed here.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { ExitCode::USAGE } else { ExitCode::OK };
            let _ = e.print();
            return code;
        }
    };
    match cli.color {
        Color::Always => console::set_colors_enabled_stderr(true),
        Color::Never => console::set_colors_enabled_stderr(false),
        Color::Auto => {}
    }
    let color = console::colors_enabled_stderr();
    match cli.cmd {
        Cmd::Run { playbook, args } if Host::watches(&args) => {
            match host().watch(&playbook, &args, &mut |r| {
                print_run(r, color);
            }) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {}", error_chain(&e));
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Run { playbook, args } => print_run(host().run(&playbook, &args), color),
        Cmd::Check { paths, stdlib_dir, quiet } => {
            let paths = if paths.is_empty() {
                ["playbooks", "examples"].iter().map(PathBuf::from).filter(|p| p.exists()).collect()
            } else {
                paths
            };
            match host().check(&paths, stdlib_dir.as_deref()) {
                Ok(checked) => {
                    eprint!("{}", checked.render(color, quiet));
                    checked.exit_code()
                }
                Err(e) => {
                    eprint!("{}", e.render(color));
                    e.exit_code()
                }
            }
        }
        Cmd::Docs { out, check, stdlib_dir } => docs(&out, check, stdlib_dir.as_deref()),
        Cmd::Eks { cmd: EksCmd::Token { cluster, region, profile, role_arn } } => {
            let req = TokenRequest { cluster, region, profile, role_arn };
            match kmsctl_aws::eks_token(&req) {
                Ok(json) => {
                    println!("{json}");
                    ExitCode::OK
                }
                Err(e) => {
                    eprintln!("error: kmsctl eks token --cluster {}: {}", req.cluster, error_chain(&e));
                    if let Some(h) = e.hint() {
                        eprintln!("hint: {h}");
                    }
                    // A missing region or profile is bad input to this command, not a runtime failure.
                    match e.kind() {
                        ErrorKind::Usage => ExitCode::USAGE,
                        k => ExitCode::for_kind(k),
                    }
                }
            }
        }
        Cmd::Gate { action, target, context } => {
            let action = match action {
                GateActionArg::Promote => kmsctl_k8s::GateAction::Promote,
                GateActionArg::Abort => kmsctl_k8s::GateAction::Abort,
            };
            let connect = kmsctl_k8s::ConnectOptions { context, ..Default::default() };
            let by = format!(
                "{}@{}",
                std::env::var("USER").unwrap_or_else(|_| "someone".into()),
                std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
            );
            let answered = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| kmsctl_k8s::K8sError::Config(e.to_string()))
                .and_then(|rt| rt.block_on(kmsctl_k8s::answer_gate(&connect, &target, action, &by)));
            match answered {
                Ok((what, v)) => {
                    eprintln!("{what}: {} = {v}", kmsctl_k8s::GATE_ANNOTATION);
                    ExitCode::OK
                }
                Err(e) => {
                    eprintln!("error: kmsctl gate {} {target}: {e}", action.as_str());
                    ExitCode::for_kind(e.kind())
                }
            }
        }
        Cmd::Version => {
            println!("kmsctl {}", env!("CARGO_PKG_VERSION"));
            ExitCode::OK
        }
        Cmd::Completions { shell } => {
            print!("{}", crate::completions::script(shell, &mut Cli::command()));
            ExitCode::OK
        }
        // Completion must never print an error into the user's command line: a playbook that
        // does not compile completes nothing.
        Cmd::CompleteParams { playbook, prev, shell } => {
            if let Ok(c) = host().complete_params(&playbook, Some(prev.as_str()).filter(|p| !p.is_empty())) {
                print!("{}", crate::completions::format(shell, &c));
            }
            ExitCode::OK
        }
    }
}

/// `kmsctl docs`: write the reference, or with `check` say what is stale.
fn docs(out: &std::path::Path, check: bool, stdlib_dir: Option<&str>) -> i32 {
    let files = match host().docs(stdlib_dir) {
        Ok(f) => f,
        Err(e) => {
            eprint!("{}", e.render(false));
            return e.exit_code();
        }
    };
    if check {
        let stale = kmsctl_host::docs::stale(&files, out);
        if stale.is_empty() {
            eprintln!("{}: {} files up to date", out.display(), files.len());
            return ExitCode::OK;
        }
        for s in &stale {
            eprintln!("{}/{s}", out.display());
        }
        eprintln!("error: the API reference in {} is stale; run `kmsctl docs` and commit it", out.display());
        return ExitCode::FAILURE;
    }
    match kmsctl_host::docs::write(&files, out) {
        Ok(()) => {
            eprintln!("wrote {} files to {}", files.len(), out.display());
            ExitCode::OK
        }
        Err(e) => {
            eprintln!("error: kmsctl docs: {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

/// Print what `kmsctl run` produced; returns its exit code.
fn print_run(r: Result<Ran, kmsctl_host::RunError>, color: bool) -> i32 {
    match r {
        Ok(Ran::Finished) => ExitCode::OK,
        Ok(Ran::Help(text) | Ran::Planned(text)) => {
            print!("{text}");
            ExitCode::OK
        }
        Ok(Ran::Diffed { text, changes }) => {
            print!("{text}");
            if changes { ExitCode::CHANGES } else { ExitCode::OK }
        }
        Err(e) => {
            eprint!("{}", e.render(color));
            e.exit_code()
        }
    }
}

/// An error and its sources, joined.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out += &format!(": {s}");
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use kmsctl_host::Effect;

    /// `kmsctl check` and the API reference know a function's option keys only when its
    /// registration declares them (`.options(KEYS)`, the list its body checks): every function
    /// or method of the binary that takes an options map must.
    #[test]
    fn every_options_map_declares_its_keys() {
        let files = super::host().docs(None).expect("docs");
        let mut undeclared = Vec::new();
        for f in files.iter().filter(|f| f.path.ends_with(".md") && !f.path.starts_with("std/")) {
            for entry in f.text.split("\n### ").skip(1) {
                let takes = entry.lines().any(|l| l.contains("options: map"));
                if takes && !entry.contains("\nOptions: `") {
                    undeclared.push(format!("{}: {}", f.path, entry.lines().next().unwrap_or_default()));
                }
            }
        }
        assert!(undeclared.is_empty(), "options maps without declared keys: {undeclared:?}");
        let k8s = files.iter().find(|f| f.path == "k8s.md").expect("k8s.md");
        assert!(k8s.text.contains("Options: `namespace`, `api_version`, `selector`, `fields`."), "{}", k8s.text);
    }

    /// Plan mode trusts each function's declaration: one registered without it could change
    /// the world in a plan. Every function of every module the binary ships must declare one,
    /// and the ones that obviously change something must not claim to only read.
    #[test]
    fn every_native_function_declares_its_effect() {
        let effects = super::host().effects().expect("effects");
        let undeclared: Vec<String> =
            effects.iter().filter(|(_, _, e)| e.is_none()).map(|(m, f, _)| format!("{m}::{f}")).collect();
        assert!(undeclared.is_empty(), "registered without an effect: {undeclared:?}");
        let modules: std::collections::BTreeSet<&str> = effects.iter().map(|(m, ..)| m.as_str()).collect();
        for m in
            ["log", "wait", "data", "fs", "env", "time", "k8s", "helm", "proc", "kind", "docker", "aws", "tls", "http"]
        {
            assert!(modules.contains(m), "module {m} has no functions: {modules:?}");
        }
        let effect = |m: &str, f: &str| {
            effects
                .iter()
                .find(|(mm, ff, _)| mm == m && ff == f)
                .and_then(|(.., e)| *e)
                .unwrap_or_else(|| panic!("{m}::{f} is not registered"))
        };
        for (m, f) in [
            ("k8s", "apply"),
            ("k8s", "apply_file"),
            ("k8s", "delete"),
            ("k8s", "patch"),
            ("k8s", "ensure_namespace"),
            ("k8s", "recreate_namespace"),
            ("k8s", "secret"),
            ("k8s", "config_map"),
            ("helm", "upgrade"),
            ("helm", "uninstall"),
            ("helm", "rollback"),
            ("aws", "s3_put"),
            ("aws", "s3_put_file"),
            ("aws", "s3_ensure_bucket"),
            ("kind", "ensure_cluster"),
            ("kind", "delete_cluster"),
            ("kind", "load_image"),
            ("docker", "build"),
            ("proc", "run"),
            ("proc", "check"),
            ("proc", "start"),
            ("fs", "write"),
        ] {
            assert_ne!(effect(m, f), Effect::Reads, "{m}::{f} changes something but is declared as reading");
        }
        for (m, f) in [("k8s", "get"), ("k8s", "list"), ("helm", "template"), ("data", "merge")] {
            assert_eq!(effect(m, f), Effect::Reads, "{m}::{f}");
        }
    }
}
