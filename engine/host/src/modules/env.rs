//! `env`: environment variables, plain or as secrets.

use super::{BuiltModule, ModuleBuilder, NativeModule};
use crate::ctx::HostCtx;
use crate::error::{ErrorKind, Failure, to_rhai};
use crate::secret::Secret;
use rhai::{Dynamic, EvalAltResult};

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

impl NativeModule for Env {
    fn name(&self) -> &'static str {
        "env"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let mut b = ModuleBuilder::new("Environment variables. Empty values count as unset.");
        b.func("get", &["name: string", "string"], "The variable's value, or `()` when unset.", |n: &str| {
            var(n).map(Dynamic::from).unwrap_or(Dynamic::UNIT)
        });
        b.func(
            "get",
            &["name: string", "default: any", "any"],
            "The variable's value, or `default` when unset.",
            |n: &str, d: Dynamic| var(n).map(Dynamic::from).unwrap_or(d),
        );
        b.func("has", &["name: string", "bool"], "Is the variable set and non-empty?", |n: &str| var(n).is_some());
        b.func(
            "require",
            &["name: string", "string"],
            "The variable's value; a `not_found` error when unset.",
            |n: &str| -> R<String> { var(n).ok_or_else(|| missing(n)) },
        );
        let c = ctx.clone();
        b.func(
            "secret",
            &["name: string", "Secret"],
            "The variable as a secret (masked in all output); a `not_found` error when unset.",
            move |n: &str| -> R<Secret> { var(n).map(|v| c.secret(v)).ok_or_else(|| missing(n)) },
        );
        let c = ctx.clone();
        b.func(
            "secret_or_unit",
            &["name: string", "any"],
            "The variable as a secret, or `()` when unset.",
            move |n: &str| var(n).map(|v| Dynamic::from(c.secret(v))).unwrap_or(Dynamic::UNIT),
        );
        b.func(
            "kmsctl",
            &["string"],
            "The path of the running kmsctl binary (to run another playbook in the background).",
            || -> R<String> {
                std::env::current_exe().map(|p| p.display().to_string()).map_err(|e| {
                    to_rhai(&Failure::new(ErrorKind::Io, format!("cannot tell where kmsctl runs from: {e}")))
                })
            },
        );
        b.build()
    }
}
