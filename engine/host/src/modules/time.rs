//! `time`: clocks and duration arithmetic.

use super::{BuiltModule, ModuleBuilder, NativeModule};
use crate::ctx::HostCtx;
use crate::duration;
use crate::error::usage_err;
use rhai::{Dynamic, INT};
use std::time::Duration;

/// The `time` module.
pub(crate) struct Time;

use crate::error::ScriptResult as R;

fn d(v: &Dynamic) -> R<Duration> {
    duration::from_dynamic(v).map_err(usage_err)
}

impl NativeModule for Time {
    fn name(&self) -> &'static str {
        "time"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let mut b = ModuleBuilder::new(
            ctx,
            self.name(),
            "Clocks and durations. Durations are strings like \"90s\", \"5m\", \"1h30m\".",
        );
        b.func("now", &["string"], "The current UTC time, RFC 3339.", || jiff::Timestamp::now().to_string()).reads();
        b.func("unix", &["int"], "Seconds since the Unix epoch.", || jiff::Timestamp::now().as_second() as INT).reads();
        let c = ctx.clone();
        b.func("elapsed", &["string"], "Time since the run started, like \"1m 20s\".", move || {
            duration::format(c.events().elapsed())
        })
        .reads();
        b.func("seconds", &["duration: string", "int"], "A duration in whole seconds.", |v: Dynamic| -> R<INT> {
            Ok(d(&v)?.as_secs() as INT)
        })
        .reads();
        b.func("millis", &["duration: string", "int"], "A duration in milliseconds.", |v: Dynamic| -> R<INT> {
            Ok(d(&v)?.as_millis() as INT)
        })
        .reads();
        b.func(
            "format",
            &["duration: string", "string"],
            "Normalise a duration: 1200 or \"1200s\" → \"20m\".",
            |v: Dynamic| -> R<String> { Ok(duration::format(d(&v)?)) },
        )
        .reads();
        b.build()
    }
}
