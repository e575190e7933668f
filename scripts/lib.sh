# Shared by scripts/test and scripts/rehearse (sourced): the one cargo build both use, so running
# one after the other never recompiles, and the CI target cache.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTENV="$ROOT/scripts/testenv/testenv.sh"

# CI runs in a fresh clone, where target/ is empty: a cold build of the workspace takes about
# 20 minutes on 2 cores. Keep CI's build outputs in the machine's cache instead, so a later run
# on the same machine rebuilds only what changed. (Set CARGO_TARGET_DIR to override.)
if [[ "${CI:-}" == "true" && -z "${CARGO_TARGET_DIR:-}" ]]; then
  export CARGO_TARGET_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/kmsctl-ci-target"
fi
KMSCTL_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/kmsctl"

# The build: every crate and target with one feature set. `-p kmsctl` alone would unify
# features differently from the test build and recompile both ways.
cargo_build() {
  (cd "$ROOT" && cargo build --locked --workspace --all-targets "$@")
}

need() {  # need TOOL WHY
  command -v "$1" >/dev/null 2>&1 && return 0
  say "ERROR: '$1' not found: $2"
  exit 1
}

# The run report's tests load report.html in headless Chromium (tests/it/report.rs). A machine
# without it gets Debian's package (as root, through apt-get: ~1 minute, once per machine);
# elsewhere this says how to install it.
ensure_debs() {  # Debian packages tests need: chromium (the run report), zsh and fish (completions)
  local want=() p
  for p in chromium zsh fish; do command -v "$p" >/dev/null 2>&1 || want+=("$p"); done
  (( ${#want[@]} )) || return 0
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${want[*]} (Debian packages) for the run report's browser tests and the completion tests"
    # One apt at a time: the test environment's build may be installing prometheus meanwhile.
    local lock="${TMPDIR:-/tmp}/kmsctl-apt.lock"
    flock "$lock" apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive flock "$lock" apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${want[@]}" >/dev/null
  else
    say "ERROR: ${want[*]} not found: the report's browser tests and the completion tests need them (apt-get install ${want[*]})"
    return 1
  fi
}
