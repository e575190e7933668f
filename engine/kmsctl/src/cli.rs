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
        /// --artifacts, --stdlib-dir, --verbose, --help).
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
    /// Print the version.
    Version,
    /// EKS helpers.
    Eks {
        #[command(subcommand)]
        cmd: EksCmd,
    },
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
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
        Cmd::Run { playbook, args } => match host().run(&playbook, &args) {
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
        },
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
        Cmd::Version => {
            println!("kmsctl {}", env!("CARGO_PKG_VERSION"));
            ExitCode::OK
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kmsctl", &mut std::io::stdout());
            ExitCode::OK
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
        for m in ["log", "wait", "data", "fs", "env", "time", "k8s", "helm", "proc", "kind", "docker", "aws", "tls"] {
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
