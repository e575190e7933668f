//! `kmsctl eks token`: the kubeconfig exec credential plugin, so kmsctl's own client, helm and
//! kubectl reach EKS without the aws CLI. It prints an ExecCredential with a fresh token on
//! stdout (the only place the token ever goes) and errors on stderr.

use crate::config::{self, AwsOptions};
use crate::error::AwsError;
use crate::token;
use kmsctl_host::{ExitCode, HostFailure};
use std::time::SystemTime;

/// Usage text of `kmsctl eks token`.
pub const TOKEN_USAGE: &str = "\
Print an EKS token as a kubeconfig exec credential (client.authentication.k8s.io/v1beta1)

Usage: kmsctl eks token --cluster NAME [--region REGION] [--profile PROFILE] [--role-arn ARN]

Options:
  --cluster NAME     the EKS cluster name the token is for (required)
  --region REGION    the cluster's region (default: AWS_REGION, then the profile's)
  --profile PROFILE  the AWS profile for credentials (default: AWS_PROFILE, then the chain)
  --role-arn ARN     assume this role first
  -h, --help         print this help

AWS_ENDPOINT_URL and the other AWS_* variables are honoured as by the aws CLI.";

/// The options of `kmsctl eks token`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenArgs {
    /// `--cluster`.
    pub cluster: String,
    /// `--region`.
    pub region: Option<String>,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--role-arn`.
    pub role_arn: Option<String>,
}

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Mint a token.
    Run(TokenArgs),
    /// `--help`.
    Help,
}

impl TokenArgs {
    /// Parse the arguments after `kmsctl eks token` (`--flag value` or `--flag=value`).
    pub fn parse(args: &[String]) -> Result<Parsed, String> {
        let mut out = TokenArgs::default();
        let mut cluster = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if arg == "-h" || arg == "--help" {
                return Ok(Parsed::Help);
            }
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
                _ => (arg.as_str(), None),
            };
            let slot = match flag {
                "--cluster" | "--cluster-name" => &mut cluster,
                "--region" => &mut out.region,
                "--profile" => &mut out.profile,
                "--role-arn" => &mut out.role_arn,
                other => return Err(format!("unexpected argument '{other}'")),
            };
            let value = match inline {
                Some(v) => v,
                None => it.next().cloned().ok_or_else(|| format!("{flag} needs a value"))?,
            };
            if value.is_empty() {
                return Err(format!("{flag} needs a non-empty value"));
            }
            *slot = Some(value);
        }
        out.cluster = cluster.ok_or("--cluster NAME is required")?;
        Ok(Parsed::Run(out))
    }
}

/// `kmsctl eks token ARGS...` (the arguments after `token`); returns the exit code.
pub fn eks_token_main(args: &[String]) -> i32 {
    match TokenArgs::parse(args) {
        Ok(Parsed::Help) => {
            println!("{TOKEN_USAGE}");
            ExitCode::Ok.code()
        }
        Ok(Parsed::Run(a)) => eks_token(&a),
        Err(e) => {
            eprintln!("error: {e}\n\n{TOKEN_USAGE}");
            ExitCode::Usage.code()
        }
    }
}

/// Mint a token for `args` and print the ExecCredential; returns the exit code.
pub fn eks_token(args: &TokenArgs) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::Failure.code();
        }
    };
    let exec_info = std::env::var("KUBERNETES_EXEC_INFO").ok();
    match rt.block_on(exec_credential(args, exec_info.as_deref(), SystemTime::now())) {
        Ok(json) => {
            println!("{json}");
            ExitCode::Ok.code()
        }
        Err(e) => {
            eprintln!("error: kmsctl eks token --cluster {}: {e}", args.cluster);
            if let Some(h) = e.hint() {
                eprintln!("hint: {h}");
            }
            match e.kind() {
                kmsctl_host::ErrorKind::Usage => ExitCode::Usage.code(),
                k => ExitCode::for_kind(k).code(),
            }
        }
    }
}

/// The ExecCredential JSON for `args`, minted at `now`, in the API version the caller asked for
/// in `KUBERNETES_EXEC_INFO`.
pub async fn exec_credential(args: &TokenArgs, exec_info: Option<&str>, now: SystemTime) -> Result<String, AwsError> {
    let opts =
        AwsOptions { region: args.region.clone(), profile: args.profile.clone(), role_arn: args.role_arn.clone() };
    let sdk = config::load(&opts).await?;
    let region = config::region(&sdk)?;
    let creds = config::credentials(&sdk).await?;
    let tok = token::eks_token(&creds, &region, &args.cluster, now, token::PRESIGN_EXPIRES)?;
    token::exec_credential(token::exec_api_version(exec_info), &tok, now + token::TOKEN_LIFETIME)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_parse_in_both_spellings() {
        let p =
            TokenArgs::parse(&args(&["--cluster", "kms", "--region=eu-west-1", "--role-arn", "arn:x", "--profile=p"]));
        assert_eq!(
            p,
            Ok(Parsed::Run(TokenArgs {
                cluster: "kms".into(),
                region: Some("eu-west-1".into()),
                profile: Some("p".into()),
                role_arn: Some("arn:x".into()),
            }))
        );
        assert_eq!(TokenArgs::parse(&args(&["--help"])), Ok(Parsed::Help));
    }

    #[test]
    fn bad_command_lines_say_what_is_wrong() {
        assert_eq!(TokenArgs::parse(&args(&[])), Err("--cluster NAME is required".into()));
        assert_eq!(TokenArgs::parse(&args(&["--cluster"])), Err("--cluster needs a value".into()));
        assert_eq!(TokenArgs::parse(&args(&["--cluster", "a", "--nope"])), Err("unexpected argument '--nope'".into()));
        assert_eq!(TokenArgs::parse(&args(&["--region="])), Err("--region needs a non-empty value".into()));
        assert_eq!(eks_token_main(&args(&["--bogus"])), 2);
    }
}
