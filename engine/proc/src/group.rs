//! The process group of one child: every command runs as the leader of its own group, so the
//! terminal's Ctrl-C does not reach it directly and stopping it stops its children too
//! (a shell's `sleep`, a CLI's helpers).

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// How often liveness is re-checked while waiting for a group to go away.
const POLL: Duration = Duration::from_millis(20);

/// A child's process group.
#[derive(Debug)]
pub struct Group {
    pgid: i32,
    exited: watch::Sender<bool>,
    done: AtomicBool,
}

impl Group {
    /// The group led by the child with this pid.
    pub fn new(pgid: i32) -> Self {
        Self { pgid, exited: watch::Sender::new(false), done: AtomicBool::new(false) }
    }

    /// The group id (the leader's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Has the whole group been seen gone (or killed)? Then it is never signalled again, so a
    /// reused id is never hit.
    pub fn is_done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    /// Record that the leader exited and was reaped.
    pub fn mark_exited(&self) {
        self.exited.send_replace(true);
    }

    /// Send `sig` to the group; false (and done) when nobody is left to receive it.
    pub fn signal(&self, sig: Signal) -> bool {
        if self.is_done() {
            return false;
        }
        match killpg(Pid::from_raw(self.pgid), sig) {
            Ok(()) => true,
            // EPERM: the id now belongs to someone else's group.
            Err(Errno::ESRCH | Errno::EPERM) => {
                self.done.store(true, Ordering::SeqCst);
                false
            }
            Err(_) => true,
        }
    }

    /// Does any live (non-zombie) process remain in the group?
    pub fn alive(&self) -> bool {
        if self.is_done() {
            return false;
        }
        let alive = match killpg(Pid::from_raw(self.pgid), None) {
            Ok(()) => live_members(self.pgid).unwrap_or(true),
            Err(Errno::ESRCH | Errno::EPERM) => false,
            Err(_) => true,
        };
        if !alive {
            self.done.store(true, Ordering::SeqCst);
        }
        alive
    }

    /// SIGKILL the group now (for drop paths that cannot wait).
    pub fn kill_now(&self) {
        self.signal(Signal::SIGKILL);
        self.done.store(true, Ordering::SeqCst);
    }

    /// Stop the group: SIGTERM, up to `grace` for the leader and then the rest to exit, then
    /// SIGKILL for whatever is left. Safe to call concurrently and repeatedly. Works on groups
    /// kmsctl did not start too (a detached process of an earlier run): liveness is polled, and
    /// a child's exit only wakes the wait early.
    pub async fn terminate(&self, grace: Duration) {
        if !self.alive() || !self.signal(Signal::SIGTERM) {
            return;
        }
        let deadline = Instant::now() + grace;
        let mut rx = self.exited.subscribe();
        let mut leader_exited = false;
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            if leader_exited {
                tokio::time::sleep(POLL).await;
            } else {
                // The guard `wait_for` returns is not Send: turn it into a bool at once.
                let reaped = async { rx.wait_for(|e| *e).await.is_ok() };
                leader_exited = tokio::time::timeout(POLL, reaped).await.unwrap_or(false);
            }
        }
        self.kill_now();
    }
}

/// Count live members of a group from /proc (Linux): processes whose parent died become
/// zombies that nobody may reap on machines whose init does not, and `killpg(pgid, 0)` still
/// counts those. `None` where /proc is not available.
fn live_members(pgid: i32) -> Option<bool> {
    let dir = std::fs::read_dir("/proc").ok()?;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        if let Some((state, pgrp)) = parse_stat(&stat)
            && pgrp == pgid
            && state != 'Z'
            && state != 'X'
        {
            return Some(true);
        }
    }
    Some(false)
}

/// State and process group from a `/proc/<pid>/stat` line. The command name may contain spaces
/// and parentheses, so fields are counted after the last `)`.
pub(crate) fn parse_stat(stat: &str) -> Option<(char, i32)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines_with_odd_command_names() {
        assert_eq!(parse_stat("123 (sleep) S 1 123 123 0 -1"), Some(('S', 123)));
        assert_eq!(parse_stat("7 (a) b) (c) Z 1 42 42 0"), Some(('Z', 42)));
        assert_eq!(parse_stat("garbage"), None);
    }
}
