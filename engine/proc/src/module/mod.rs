//! The Rhai adapters (`proc`, `kind`, `docker`): argument conversion and documentation only;
//! the work is in the plain Rust modules of this crate.
//!
//! Every command runs in a task on the run's runtime, racing the calling script's cancellation
//! scope: when the scope is cancelled the script moves on at once while the task stops the
//! process group gracefully, and a cleanup hook per live group makes sure it is gone before
//! kmsctl exits.

pub(crate) mod docker;
pub(crate) mod kind;
pub(crate) mod proc;

use crate::error::ProcError;
use crate::group::Group;
use crate::run::{DEFAULT_GRACE, Logger, Output, Release, Supervisor, Text};
use crate::tool::Tool;
use kmsctl_host::to_rhai;
use kmsctl_host::{HostCtx, Secret, duration};
use rhai::{Array, Dynamic, EvalAltResult, INT, Map};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use kmsctl_host::ScriptResult as R;

/// The grace of cleanup hooks after Ctrl-C: the host gives all hooks 300 ms together then.
const CANCELLED_GRACE: Duration = Duration::from_millis(200);

/// Registers each live process group as a cleanup hook of the run.
struct CtxSupervisor(HostCtx);

impl Supervisor for CtxSupervisor {
    fn started(&self, command: &str, group: Arc<Group>) -> Release {
        let root = self.0.root().clone();
        let name = kmsctl_host::value::one_line(command, 60);
        let id = self.0.on_cleanup(format!("process {name} (pid {})", group.pgid()), move || {
            Box::pin(async move {
                let grace = if root.is_cancelled() { CANCELLED_GRACE } else { DEFAULT_GRACE };
                // Dropped at the cleanup deadline (a loaded machine), the group is killed outright.
                let group = KillOnDrop(group);
                group.0.terminate(grace).await;
            })
        });
        let ctx = self.0.clone();
        Box::new(move || ctx.remove_cleanup(id))
    }
}

struct KillOnDrop(Arc<Group>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.0.is_done() {
            self.0.kill_now();
        }
    }
}

/// Logs to the run's events, attributed to the calling script's step and task label.
pub(crate) fn logger(ctx: &HostCtx) -> Logger {
    ctx.logger()
}

pub(crate) fn supervisor(ctx: &HostCtx) -> Arc<dyn Supervisor> {
    Arc::new(CtxSupervisor(ctx.clone()))
}

/// Stop `spec`'s process group when the run ends, however it ends (for other crates' tools:
/// helm). A run stopped while the command runs exits without waiting for the call.
pub fn supervise(spec: &mut crate::Spec, ctx: &HostCtx) {
    spec.supervisor = Some(supervisor(ctx));
}

/// A CLI wired to this run: logs, cleanup hooks, the calling scope's cancellation.
pub(crate) fn wire(ctx: &HostCtx, mut t: Tool) -> Tool {
    t.log = Some(logger(ctx));
    t.supervisor = Some(supervisor(ctx));
    t.cancel = ctx.scope().token().clone();
    t
}

/// Run `fut` in a task and wait for it, cancellably. The task is spawned inside `block_on`, so
/// nothing starts when the scope is already cancelled or the call is not allowed here; once
/// started it outlives a cancelled wait and stops its processes itself.
pub(crate) fn exec<T, F>(ctx: &HostCtx, fut: F) -> R<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T, ProcError>> + Send + 'static,
{
    let redactor = ctx.redactor().clone();
    ctx.block_on(async move {
        match tokio::spawn(fut).await {
            Ok(r) => r.map_err(|e| e.redacted(|l| redactor.redact(l).into_owned())),
            Err(e) => Err(ProcError::Internal(format!("the command task failed: {e}"))),
        }
    })
}

pub(crate) fn err(e: ProcError) -> Box<EvalAltResult> {
    to_rhai(&e)
}

pub(crate) use kmsctl_host::Opts;

/// Options that may be secret (env values, stdin, build args), on top of the host's options map.
pub(crate) trait TextOpts {
    /// A string or a secret.
    fn text(&self, k: &str) -> R<Option<Text>>;
    /// A map of strings or secrets; `()` values are kept as `None` (removal, for env).
    fn text_map(&self, k: &str) -> R<Vec<(String, Option<Text>)>>;
}

impl TextOpts for Opts<'_> {
    fn text(&self, k: &str) -> R<Option<Text>> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => text(v).map(Some).map_err(|e| self.usage(format!("{k}: {e}"))),
        }
    }
    fn text_map(&self, k: &str) -> R<Vec<(String, Option<Text>)>> {
        let Some(v) = self.get(k) else { return Ok(Vec::new()) };
        let Some(m) = v.read_lock::<Map>() else {
            return Err(self.usage(format!("{k} must be a map, got {}", v.type_name())));
        };
        m.iter()
            .map(|(name, v)| {
                if v.is_unit() {
                    return Ok((name.to_string(), None));
                }
                text(v).map(|t| (name.to_string(), Some(t))).map_err(|e| self.usage(format!("{k}.{name}: {e}")))
            })
            .collect()
    }
}

/// A scalar as text (secrets stay secret).
pub(crate) fn text(v: &Dynamic) -> Result<Text, String> {
    if let Some(s) = v.clone().try_cast::<Secret>() {
        return Ok(Text::Secret(s));
    }
    scalar(v).map(Text::Plain)
}

/// A plain scalar as a string; secrets and collections are refused.
pub(crate) fn scalar(v: &Dynamic) -> Result<String, String> {
    if v.is::<Secret>() {
        return Err("a secret is not allowed here".into());
    }
    if v.is_string() || v.is_int() || v.is_float() || v.is_bool() || v.is_char() {
        return Ok(v.to_string());
    }
    Err(format!("expected a string, got {}", v.type_name()))
}

pub(crate) fn strings(v: &Dynamic) -> Result<Vec<String>, String> {
    if v.is_array() {
        let a = v.read_lock::<Array>().ok_or("the array is locked")?;
        return a.iter().map(scalar).collect();
    }
    scalar(v).map(|s| vec![s])
}

/// The output of a command as scripts see it. Registered secrets are masked in the text (a
/// child echoing its token back); `secret_stdout` hands stdout over as a secret instead.
pub(crate) fn output_map(ctx: &HostCtx, out: Output, secret_stdout: bool) -> Map {
    let r = ctx.redactor();
    let mut m = Map::new();
    m.insert("code".into(), (out.code as INT).into());
    m.insert("ok".into(), out.success().into());
    m.insert("signal".into(), out.signal.map(|s| Dynamic::from(s as INT)).unwrap_or(Dynamic::UNIT));
    let stdout = if secret_stdout {
        Dynamic::from(ctx.secret(out.stdout.trim_end().to_string()))
    } else {
        r.redact(&out.stdout).into_owned().into()
    };
    m.insert("stdout".into(), stdout);
    m.insert("stderr".into(), r.redact(&out.stderr).into_owned().into());
    m.insert("truncated".into(), out.truncated.into());
    m.insert("duration".into(), duration::format(out.duration).into());
    m.insert("duration_ms".into(), (out.duration.as_millis() as INT).into());
    m.insert("pid".into(), (out.pid as INT).into());
    m.insert("command".into(), out.command.into());
    m
}
