//! `wait`: sleeping, retrying, polling and deadlines. Everything here is cancellable.

use super::opts::Opts;
use super::{BuiltModule, ModuleBuilder, NativeModule};
use crate::ctx::HostCtx;
use crate::duration;
use crate::error::{ErrorKind, Failure, to_rhai, usage_err};
use crate::error::{is_terminated, short_message};
use crate::events::Level;
use crate::task::{self, CancelReason};
use rhai::{Dynamic, EvalAltResult, FnPtr, Map, NativeCallContext};
use std::time::{Duration, Instant};

/// The `wait` module.
pub(crate) struct Wait;

use crate::error::ScriptResult as R;

fn dur(v: &Dynamic, what: &str) -> R<Duration> {
    duration::from_dynamic(v).map_err(|e| usage_err(format!("{what}: {e}")))
}

/// A point in time scripts can check against.
#[derive(Clone, Debug)]
pub(crate) struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    /// Time left (zero when passed).
    pub(crate) fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }
}

// The options each function accepts.
const RETRY_OPTS: &[&str] = &["attempts", "backoff", "max_backoff", "on"];
const POLL_OPTS: &[&str] = &["interval", "timeout", "what"];

impl NativeModule for Wait {
    fn name(&self) -> &'static str {
        "wait"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let mut b = ModuleBuilder::new(
            ctx,
            self.name(),
            "Sleep, retry with backoff, poll a condition, bound work with a timeout.",
        );
        b.ty::<Deadline>("Deadline");
        let c = ctx.clone();
        b.func(
            "sleep",
            &["duration: string", "()"],
            "Sleep for a duration like \"2s\" (cancellable).",
            // Plans wait for nothing.
            move |d: Dynamic| if c.mode().is_plan() { Ok(()) } else { c.sleep(dur(&d, "wait::sleep")?) },
        )
        .reads();
        let c = ctx.clone();
        b.func(
            "retry",
            &["work: Fn", "options: map", "any"],
            "Call `work` until it succeeds. Options: `attempts` (5), `backoff` (\"1s\", doubled each time),\n\
             `max_backoff` (\"30s\"), `on` (error kinds to retry, default all).\n\
             The last error is rethrown when attempts run out.",
            move |ncc: NativeCallContext, work: FnPtr, opts: Map| retry(&c, &ncc, &work, &opts),
        )
        .options(RETRY_OPTS)
        .reads();
        let c = ctx.clone();
        b.func(
            "retry",
            &["work: Fn", "any"],
            "Call `work` until it succeeds (5 attempts, backoff from 1s).",
            move |ncc: NativeCallContext, work: FnPtr| retry(&c, &ncc, &work, &Map::new()),
        )
        .reads();
        let c = ctx.clone();
        b.func(
            "poll",
            &["check: Fn", "options: map", "any"],
            "Call `check` every `interval` (\"2s\") until it returns something other than `()` or `false`,\n\
             and return that. Throws a `timeout` error after `timeout` (\"5m\"); `what` names the\n\
             condition in that error. Prefer k8s waits, which watch instead of polling.",
            move |ncc: NativeCallContext, check: FnPtr, opts: Map| poll(&c, &ncc, &check, &opts),
        )
        .options(POLL_OPTS)
        .reads();
        let c = ctx.clone();
        b.func(
            "timeout",
            &["limit: string", "work: Fn", "any"],
            "Run `work`, cancelling it after `limit`; then throw a catchable `timeout` error.",
            move |ncc: NativeCallContext, limit: Dynamic, work: FnPtr| {
                timeout(&c, &ncc, dur(&limit, "wait::timeout")?, &work)
            },
        )
        .reads();
        b.func(
            "deadline",
            &["limit: string", "Deadline"],
            "A deadline `limit` from now.",
            |limit: Dynamic| -> R<Deadline> {
                let total = dur(&limit, "wait::deadline")?;
                Ok(Deadline { at: Instant::now() + total, total })
            },
        )
        .reads();
        b.method(
            "remaining",
            &["deadline: Deadline", "string"],
            "Time left, like \"4m 10s\" (\"0ms\" once passed).",
            |d: &mut Deadline| duration::format(d.remaining()),
        )
        .reads();
        b.method("expired", &["deadline: Deadline", "bool"], "Has the deadline passed?", |d: &mut Deadline| {
            d.remaining().is_zero()
        })
        .reads();
        b.method("to_string", &["deadline: Deadline", "string"], "", |d: &mut Deadline| {
            format!("deadline of {} ({} left)", duration::format(d.total), duration::format(d.remaining()))
        })
        .reads();
        b.build()
    }
}

fn retry(ctx: &HostCtx, ncc: &NativeCallContext, work: &FnPtr, opts: &Map) -> R<Dynamic> {
    let o = Opts::new(opts, "wait::retry", RETRY_OPTS)?;
    let attempts = o.int("attempts")?.unwrap_or(5);
    if attempts < 1 {
        return Err(o.usage("attempts must be an integer >= 1"));
    }
    let mut backoff = o.duration("backoff")?.unwrap_or(Duration::from_secs(1));
    let max_backoff = o.duration("max_backoff")?.unwrap_or(Duration::from_secs(30));
    let kinds: Option<Vec<String>> = o.get("on").is_some().then(|| o.strings("on")).transpose()?;
    let mut n = 1;
    loop {
        match work.call_within_context::<Dynamic>(ncc, ()) {
            Ok(v) => return Ok(v),
            Err(e) if !e.is_catchable() || is_terminated(&e) => return Err(e),
            Err(e) => {
                let kind = error_kind(&e);
                let retryable = kinds.as_ref().is_none_or(|k| k.contains(&kind));
                if !retryable || n >= attempts {
                    return Err(e);
                }
                ctx.log(
                    Level::Warn,
                    format!(
                        "attempt {n}/{attempts} failed: {}; retrying in {}",
                        short_message(&e),
                        duration::format(backoff)
                    ),
                );
                ctx.sleep(backoff)?;
                backoff = (backoff * 2).min(max_backoff);
                n += 1;
            }
        }
    }
}

/// The `kind` of a script error (`"script"` when it has none).
pub(crate) fn error_kind(e: &EvalAltResult) -> String {
    match e.unwrap_inner() {
        EvalAltResult::ErrorRuntime(v, _) => {
            v.read_lock::<Map>().and_then(|m| m.get("kind").map(|k| k.to_string())).unwrap_or_else(|| "script".into())
        }
        _ => "script".into(),
    }
}

fn truthy(v: &Dynamic) -> bool {
    !(v.is_unit() || v.as_bool().is_ok_and(|b| !b))
}

fn poll(ctx: &HostCtx, ncc: &NativeCallContext, check: &FnPtr, opts: &Map) -> R<Dynamic> {
    let o = Opts::new(opts, "wait::poll", POLL_OPTS)?;
    let interval = o.duration("interval")?.unwrap_or(Duration::from_secs(2));
    let limit = o.duration("timeout")?.unwrap_or(Duration::from_secs(300));
    let what = o.str("what")?.unwrap_or_else(|| "the condition".into());
    let start = Instant::now();
    loop {
        let v = check.call_within_context::<Dynamic>(ncc, ())?;
        if truthy(&v) {
            return Ok(v);
        }
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Err(to_rhai(&Failure::new(
                ErrorKind::Timeout,
                format!("timed out after {} waiting for {what}", duration::format(limit)),
            )));
        }
        ctx.sleep(interval.min(left))?;
    }
}

fn timeout(ctx: &HostCtx, ncc: &NativeCallContext, limit: Duration, work: &FnPtr) -> R<Dynamic> {
    let parent = ctx.scope();
    let scope = parent.child();
    let timer_scope = scope.clone();
    let timer = ctx.runtime().spawn(async move {
        tokio::time::sleep(limit).await;
        let id = timer_scope.id();
        timer_scope.cancel(CancelReason::Timeout(id));
    });
    let id = scope.id();
    let r = task::with_modified(|t| t.scope = scope, || work.call_within_context::<Dynamic>(ncc, ()));
    timer.abort();
    match r {
        Err(e) if is_terminated(&e) && !parent.is_cancelled() && terminated_scope(&e) == Some(id) => {
            Err(to_rhai(&Failure::new(ErrorKind::Timeout, format!("timed out after {}", duration::format(limit)))))
        }
        other => other,
    }
}

fn terminated_scope(e: &EvalAltResult) -> Option<u64> {
    match e.unwrap_inner() {
        EvalAltResult::ErrorTerminated(v, _) => {
            v.read_lock::<Map>().and_then(|m| m.get("scope").and_then(|s| s.as_int().ok())).map(|i| i as u64)
        }
        _ => None,
    }
}
