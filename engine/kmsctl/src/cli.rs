//! The command line.

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use kmsctl_host::{ExitCode, Host, Terminal};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "kmsctl",
    version,
    about = "Kubernetes deployments as editable Rhai playbooks",
    long_about = "Kubernetes deployments as editable Rhai playbooks.\n\n\
                  Exit codes: 0 ok, 1 runtime failure, 2 usage/compile/parameter error, 3 timeout,\n\
                  4 environment unavailable (cluster, cloud API, tool), 130 interrupted."
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
    /// Print an EKS bearer token as a kubeconfig exec credential (for kubectl and helm):
    /// `kmsctl eks token --cluster NAME [--region R] [--profile P] [--role-arn ARN]`.
    #[command(disable_help_flag = true)]
    Token {
        /// --cluster NAME [--region R] [--profile P] [--role-arn ARN]
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ARGS")]
        args: Vec<String>,
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
    ])
}

/// Run the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { ExitCode::Usage.code() } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    match cli.color {
        Color::Always => console::set_colors_enabled_stderr(true),
        Color::Never => console::set_colors_enabled_stderr(false),
        Color::Auto => {}
    }
    let term = Terminal { color: console::colors_enabled_stderr() };
    let code = match cli.cmd {
        Cmd::Run { playbook, args } => host().run(&playbook, &args, term),
        Cmd::Check { paths, stdlib_dir, quiet } => {
            let paths = if paths.is_empty() {
                ["playbooks", "examples"].iter().map(PathBuf::from).filter(|p| p.exists()).collect()
            } else {
                paths
            };
            host().check(&paths, stdlib_dir.as_deref(), term, quiet)
        }
        Cmd::Eks { cmd: EksCmd::Token { args } } => return kmsctl_aws::cli::eks_token_main(&args),
        Cmd::Version => {
            println!("kmsctl {}", env!("CARGO_PKG_VERSION"));
            ExitCode::Ok
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "kmsctl", &mut std::io::stdout());
            ExitCode::Ok
        }
    };
    code.code()
}
