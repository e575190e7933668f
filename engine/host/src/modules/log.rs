//! `log`: messages and steps.

use super::{BuiltModule, ModuleBuilder, NativeModule};
use crate::ctx::HostCtx;
use crate::error::{is_terminated, short_message};
use crate::events::{Level, Outcome};
use crate::task;
use rhai::{Dynamic, FnPtr, NativeCallContext};

/// The `log` module.
pub(crate) struct Log;

impl NativeModule for Log {
    fn name(&self) -> &'static str {
        "log"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let mut b = ModuleBuilder::new(ctx, self.name(), "Log messages and group work into timed steps.");
        for (name, level, doc) in [
            ("info", Level::Info, "Log a message."),
            ("warn", Level::Warn, "Log a warning (a GitHub Actions annotation in CI)."),
            ("error", Level::Error, "Log an error without stopping the run."),
            ("debug", Level::Debug, "Log detail shown with --verbose and in --output json."),
        ] {
            let c = ctx.clone();
            b.func(name, &["message: any", "()"], doc, move |m: Dynamic| c.log(level, crate::value::display(&m)))
                .reads();
        }
        let c = ctx.clone();
        b.func(
            "step",
            &["name: string", "work: Fn", "any"],
            "Run `work` as a named step: shown live with a spinner and timed in the summary.\n\
             Returns what `work` returns; an error fails the step and propagates.\n\n\
             ```rhai\nlog::step(\"deploy parties\", || kms::deploy_parties(cfg));\n```",
            move |ncc: NativeCallContext, name: &str, work: FnPtr| step(&c, &ncc, name, &work),
        )
        .reads();
        b.build()
    }
}

/// Run `work` as a step named `name`.
pub(crate) fn step(
    ctx: &HostCtx,
    ncc: &NativeCallContext,
    name: &str,
    work: &FnPtr,
) -> Result<Dynamic, Box<rhai::EvalAltResult>> {
    let cur = task::current();
    let parent = cur.as_ref().and_then(|t| t.step);
    let label = cur.as_ref().and_then(|t| t.label.clone());
    let id = ctx.events().step_started(name, parent, label.as_deref());
    let r = task::with_modified(|t| t.step = Some(id), || work.call_within_context::<Dynamic>(ncc, ()));
    match &r {
        Ok(_) => ctx.events().step_finished(id, Outcome::Ok, None),
        Err(e) if is_terminated(e) => ctx.events().step_finished(id, Outcome::Cancelled, None),
        Err(e) => ctx.events().step_finished(id, Outcome::Failed, Some(short_message(e))),
    }
    r
}
