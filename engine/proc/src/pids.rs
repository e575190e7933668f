//! Processes of earlier runs, found by pid: a detached deploy that a later run checks on or
//! stops. A pid alone may belong to someone else by now (the machine rebooted, the process died
//! and the number was handed out again), so every lookup names text the process's command line
//! must contain: the test environment's `runs()` rule (`scripts/testenv/testenv.sh`).

use crate::error::ProcError;
use crate::group::{Group, parse_stat};
use std::time::Duration;

/// Command lines quoted in errors are cut to this many characters.
const QUOTED: usize = 200;

/// What /proc says about a pid.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// No live process has it (a zombie counts as gone).
    Gone,
    /// A live process whose command line lacks the text.
    Other {
        /// Its command line, arguments joined by spaces.
        command: String,
    },
    /// The process asked for.
    Match {
        /// Its process group.
        pgrp: i32,
    },
}

/// Look `pid` up: is it alive, and does its command line (arguments joined by spaces)
/// contain `contains`?
pub(crate) fn look(pid: u32, contains: &str) -> Seen {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return Seen::Gone };
    let Some((state, pgrp)) = parse_stat(&stat) else { return Seen::Gone };
    if matches!(state, 'Z' | 'X') {
        return Seen::Gone;
    }
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return Seen::Gone };
    let command = String::from_utf8_lossy(&raw).replace('\0', " ").trim_end().to_string();
    if command.contains(contains) { Seen::Match { pgrp } } else { Seen::Other { command } }
}

/// Stop the process group `pid` leads (SIGTERM, `grace`, SIGKILL) if `pid` is alive and its
/// command line contains `contains`; false when no such process runs.
///
/// # Errors
/// The pid runs something else ([`ProcError::NotOurs`]), leads no group of its own
/// ([`ProcError::NotGroupLeader`]) or is kmsctl's own; nothing is signalled then.
pub(crate) async fn stop(pid: u32, contains: &str, grace: Duration) -> Result<bool, ProcError> {
    match look(pid, contains) {
        Seen::Gone => Ok(false),
        Seen::Other { command } => {
            Err(ProcError::NotOurs { pid, want: contains.to_string(), command: command.chars().take(QUOTED).collect() })
        }
        Seen::Match { pgrp } if pgrp != pid as i32 => Err(ProcError::NotGroupLeader { pid, pgrp }),
        Seen::Match { .. } if pid == std::process::id() || pid as i32 == nix::unistd::getpgrp().as_raw() => {
            Err(ProcError::Usage(format!("pid {pid} is kmsctl's own process group")))
        }
        Seen::Match { .. } => {
            Group::new(pid as i32).terminate(grace).await;
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_is_ours_only_while_its_command_line_matches() {
        let me = std::process::id();
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_str().unwrap();
        assert!(matches!(look(me, name), Seen::Match { .. }));
        assert!(matches!(look(me, "kmsctl-no-such-command"), Seen::Other { .. }));
        assert_eq!(look(u32::MAX, "x"), Seen::Gone);
    }

    #[test]
    fn kmsctl_never_stops_itself() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let me = std::process::id();
        let e = rt.block_on(stop(me, "", Duration::from_millis(10))).unwrap_err();
        // The test binary is no group leader when cargo runs it; either way it is refused.
        assert!(matches!(e, ProcError::NotGroupLeader { .. } | ProcError::Usage(_)), "{e:?}");
    }
}
