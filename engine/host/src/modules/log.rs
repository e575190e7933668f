//! `log`: messages and steps.

use super::{BuiltModule, ModuleBuilder, NativeModule};
use crate::ctx::HostCtx;
use crate::error::{is_terminated, short_message};
use crate::events::{Level, Outcome};
use crate::task;
use rhai::{Dynamic, FnPtr, NativeCallContext};

/// The `log` module.
pub(crate) struct Log;

/// The keys of `log::annotate`'s place.
const ANNOTATE_AT: &[&str] = &["file", "line", "col"];

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
            "annotate",
            &["level: string", "message: any", "at: map", "()"],
            "Log a line about a place in a file — a lint finding — with level \"error\", \"warning\" or\n\
             \"notice\" and `at` = #{ file, line, col } (line and col optional): under GitHub Actions an\n\
             annotation on that line of that file, else a line like `error:`/`warning:` print.",
            move |level: &str, m: Dynamic, at: rhai::Map| -> crate::error::ScriptResult<()> {
                let o = crate::modules::opts::Opts::new(&at, "log::annotate", ANNOTATE_AT)?;
                let lv = match level {
                    "error" => Level::Error,
                    "warning" | "warn" => Level::Warn,
                    "notice" | "info" => Level::Info,
                    other => {
                        return Err(
                            o.usage(format!("level must be \"error\", \"warning\" or \"notice\", got \"{other}\""))
                        );
                    }
                };
                let file = o.str("file")?.ok_or_else(|| o.usage("option 'file' is required"))?;
                let n = |k: &str| -> crate::error::ScriptResult<Option<usize>> {
                    Ok(o.int(k)?.and_then(|v| usize::try_from(v).ok()).filter(|v| *v > 0))
                };
                let place = crate::events::SourceAt { file, line: n("line")?, col: n("col")? };
                c.log_at(lv, crate::value::display(&m), place);
                Ok(())
            },
        )
        .options(ANNOTATE_AT)
        .reads();
        let c = ctx.clone();
        b.func(
            "decision",
            &["subject: any", "decision: any", "reason: any", "()"],
            "Record a decision the playbook took and why (a canary promoted or rolled back): a line in\n\
             the log, a `decision` event, and a row of the run report's decisions.\n\n\
             ```rhai\nlog::decision(\"canary kms-core\", \"rollback\", \"error rate 4.2% > 1%\");\n```",
            move |subject: Dynamic, decision: Dynamic, reason: Dynamic| {
                let d = crate::value::display;
                c.decision(d(&subject), d(&decision), d(&reason))
            },
        )
        .reads();
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
