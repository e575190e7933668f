//! Cancellation scopes and the per-thread state of script work.
//!
//! A run has one root [`CancelScope`]. `parallel` gives each task a child scope (the first
//! failure cancels its siblings) and `wait::timeout` gives its closure one with a deadline.
//! Native functions race the scope of the thread they run on, so a blocked call stops as soon
//! as any enclosing scope is cancelled, and the error says why.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

/// Why a scope was cancelled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelReason {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// The run's `--timeout` expired.
    RunDeadline,
    /// Another task of the same `parallel` call failed.
    SiblingFailed,
    /// A `wait::timeout` deadline passed (the id of that scope).
    Timeout(u64),
}

impl CancelReason {
    /// The value carried by the (uncatchable) Rhai termination error.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Interrupted => "interrupted",
            Self::RunDeadline => "run deadline exceeded",
            Self::SiblingFailed => "cancelled because a sibling task failed",
            Self::Timeout(_) => "timeout",
        }
    }
}

static NEXT_SCOPE: AtomicU64 = AtomicU64::new(1);

/// A node in the tree of cancellation scopes.
#[derive(Clone, Debug)]
pub struct CancelScope(Arc<ScopeInner>);

#[derive(Debug)]
struct ScopeInner {
    id: u64,
    token: CancellationToken,
    reason: OnceLock<CancelReason>,
    parent: Option<CancelScope>,
}

impl CancelScope {
    /// A root scope.
    pub fn root() -> Self {
        Self::make(CancellationToken::new(), None)
    }

    fn make(token: CancellationToken, parent: Option<CancelScope>) -> Self {
        Self(Arc::new(ScopeInner {
            id: NEXT_SCOPE.fetch_add(1, Ordering::Relaxed),
            token,
            reason: OnceLock::new(),
            parent,
        }))
    }

    /// A child scope: cancelled with its parent, or on its own.
    pub fn child(&self) -> Self {
        Self::make(self.0.token.child_token(), Some(self.clone()))
    }

    /// This scope's id.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// Cancel this scope (and its children). The first reason wins.
    pub fn cancel(&self, reason: CancelReason) {
        let _ = self.0.reason.set(reason);
        self.0.token.cancel();
    }

    /// Has this scope or an ancestor been cancelled?
    pub fn is_cancelled(&self) -> bool {
        self.0.token.is_cancelled()
    }

    /// The reason of the nearest cancelled scope, walking up.
    pub fn reason(&self) -> Option<CancelReason> {
        let mut s = Some(self);
        while let Some(scope) = s {
            if let Some(r) = scope.0.reason.get() {
                return Some(r.clone());
            }
            s = scope.0.parent.as_ref();
        }
        self.is_cancelled().then_some(CancelReason::Interrupted)
    }

    /// Wait until cancelled.
    pub async fn cancelled(&self) {
        self.0.token.cancelled().await
    }

    /// The underlying token.
    pub fn token(&self) -> &CancellationToken {
        &self.0.token
    }
}

/// What the current thread's script work belongs to.
#[derive(Clone, Debug)]
pub(crate) struct TaskState {
    /// Cancellation scope to race.
    pub scope: CancelScope,
    /// The innermost open step, if any.
    pub step: Option<u64>,
    /// Output label (`parallel` task name), prefixed to its log lines.
    pub label: Option<Arc<str>>,
}

thread_local! {
    static CURRENT: RefCell<Option<TaskState>> = const { RefCell::new(None) };
}

/// The task state of this thread, if script work runs on it.
pub(crate) fn current() -> Option<TaskState> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The scope of this thread's task if it has been cancelled (cheap: no clone otherwise).
pub(crate) fn cancelled_scope() -> Option<CancelScope> {
    CURRENT.with(|c| c.borrow().as_ref().filter(|t| t.scope.is_cancelled()).map(|t| t.scope.clone()))
}

/// Run `f` with `state` as this thread's task state, restoring the previous one after.
pub(crate) fn with_task<R>(state: TaskState, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT.with(|c| c.replace(Some(state)));
    struct Restore(Option<TaskState>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
    let _restore = Restore(prev);
    f()
}

/// Change the current task state for the duration of `f` (e.g. open a step).
pub(crate) fn with_modified<R>(edit: impl FnOnce(&mut TaskState), f: impl FnOnce() -> R) -> R {
    match current() {
        Some(mut st) => {
            edit(&mut st);
            with_task(st, f)
        }
        None => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_inherit_cancellation_and_the_reason() {
        let root = CancelScope::root();
        let child = root.child();
        let grandchild = child.child();
        assert!(!grandchild.is_cancelled());
        root.cancel(CancelReason::Interrupted);
        assert!(grandchild.is_cancelled());
        assert_eq!(grandchild.reason(), Some(CancelReason::Interrupted));
    }

    #[test]
    fn cancelling_a_child_leaves_the_parent_alone() {
        let root = CancelScope::root();
        let child = root.child();
        child.cancel(CancelReason::Timeout(child.id()));
        assert!(!root.is_cancelled());
        assert_eq!(child.child().reason(), Some(CancelReason::Timeout(child.id())));
    }

    #[test]
    fn task_state_is_restored_after_a_nested_scope() {
        let root = CancelScope::root();
        with_task(TaskState { scope: root.clone(), step: Some(1), label: None }, || {
            with_modified(|t| t.step = Some(2), || assert_eq!(current().unwrap().step, Some(2)));
            assert_eq!(current().unwrap().step, Some(1));
        });
        assert!(current().is_none());
    }
}
