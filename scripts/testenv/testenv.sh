#!/usr/bin/env bash
# testenv: the project's real local cluster for tests, CI and rehearsal.
#
#   etcd + kube-apiserver + kube-controller-manager + kube-scheduler (real upstream binaries,
#   built from the Go module proxy and version-stamped), kwok (simulated nodes: pods become
#   Ready, Job pods Succeeded), the rehearsal controller (rehearsal/: a pod becomes Ready only
#   once every ConfigMap, Secret, key and imagePullSecret it uses exists and its images can be
#   had; until then it shows the kubelet's CreateContainerConfigError / FailedMount /
#   ImagePullBackOff / ErrImageNeverPull), helm, and moto
#   (fake AWS: EKS/STS/S3) with an EKS token-review webhook. Everything binds to 127.0.0.1 on
#   free ports. For rehearsals there is no container engine: standins/ is kind and docker
#   (a kind cluster is this environment's nodes and a kind-<name> context; docker records
#   builds, pulls and pushes with their labels; see standins/README.md), and the controller
#   answers port-forwards no test forward claims (a ClusterPortForward, testenv-baseline, to a
#   loopback server that gives HTTP 200 and a fixed body; see rehearsal/forward.go), serves
#   the metrics API (metrics.k8s.io, synthetic usage; see rehearsal/metrics.go) and runs Argo
#   Workflows (Argo's Workflow CRD, from its Go module, in every profile; the controller is a
#   stand-in that runs their pods on kwok and writes Argo's status; see rehearsal/workflow.go).
#   Gateway API's standard CRDs (from its Go module; no Gateway controller) in every profile.
#   A real Prometheus (Debian's package, installed by `build` when missing) scrapes every second
#   the targets tests list as file_sd JSON files in $TESTENV_PROMETHEUS_TARGETS (exporters the
#   tests serve on loopback), for the analyses that query it.
#
#   scripts/testenv/testenv.sh build    build and cache the binaries (idempotent)
#   scripts/testenv/testenv.sh up       build if needed, start, wait until ready, write the env file
#                                       (already up and healthy: print its path and exit 0;
#                                       stale state from a dead run: clean it up first)
#   scripts/testenv/testenv.sh down     stop what `up` started (by PID) and remove its state
#   scripts/testenv/testenv.sh status   print whether it is up and what runs (exit 0 = healthy)
#   scripts/testenv/testenv.sh logs     print component logs (CI prints them on failure)
#   scripts/testenv/testenv.sh env      print the path of the env file to source
#   scripts/testenv/testenv.sh unit     Go unit tests of the controller and the stand-ins, then selftest
#                                       and tests/charts/check.sh (helm v4 and v3)
#   scripts/testenv/testenv.sh selftest the built stand-ins run as kind/docker, no cluster (and
#                                       scripts/rehearse --which)
#   scripts/testenv/testenv.sh livecheck  the stand-ins and the port-forward baseline against this
#                                       running environment (kind profile), or the AWS stand-ins
#                                       (eks profile); leaves it as it was. On kind, argocheck too
#   scripts/testenv/testenv.sh argocheck  the Argo Workflows stand-in against this running
#                                       environment (any profile): steps with an output parameter,
#                                       a DAG, a failing node, a deadline, a re-run (argocheck.sh)
#
# Settings (environment): TESTENV_DIR (state; default ${TMPDIR:-/tmp}/kmsctl-testenv),
# TESTENV_PROFILE (the nodes and StorageClasses of profiles/<name>.yaml: generic (default;
# TESTENV_NODES untainted nodes, default 3), kind (TESTENV_KIND_WORKER_CPU/_MEMORY), eks (and
# its manifests: the AWS stand-ins for tkms-infra and external-secrets, rehearsal/infra.go);
# when set, `up` refuses an environment already up with another one), TESTENV_CACHE
# (binaries), TESTENV_*_VERSION.
# `up` writes $TESTENV_DIR/env; source it to get TESTENV_KUBECONFIG, TESTENV_AWS_ENDPOINT,
# TESTENV_PROFILE, TESTENV_STANDINS (the directory holding kind and docker; not put on PATH),
# TESTENV_FORWARD_BASELINE (the baseline server's address), TESTENV_PROMETHEUS (its URL) and
# TESTENV_PROMETHEUS_TARGETS (a directory: a test writes <unique>.json there, a file_sd target
# list, and removes it when done), helm/kubectl/standins on PATH and
# AWS_* pointing at moto. It never sets KUBECONFIG and never touches ~/.kube: use
# `kubectl --kubeconfig "$TESTENV_KUBECONFIG"`.
#
# kwok's lifecycle comes from Stage objects (stages.yaml, applied by `up`); tests may add
# their own at run time (see stages.yaml for how to keep them to their own pods).
#
# Binaries are cached per version (the controller and the stand-ins: per hash of their sources) under
# $TESTENV_CACHE (outside the repo). Each is built in a temp dir and renamed into place, so a
# half build is never used.
set -euo pipefail

# ---- versions --------------------------------------------------------------------------
: "${TESTENV_K8S_VERSION:=v1.36.1}"     # staging modules v0.36.1 match kwok's: shared build cache
: "${TESTENV_ETCD_VERSION:=v3.6.16}"    # kubeadm pairs 1.34-1.36 with etcd 3.6
: "${TESTENV_KWOK_VERSION:=v0.8.0}"
: "${TESTENV_HELM_VERSION:=v4.3.1}"     # helm.sh/helm/v<major>
: "${TESTENV_HELM3_VERSION:=v3.22.0}"   # second helm, for the v3 flag dialect tests
: "${TESTENV_CRANE_VERSION:=v0.22.1}"   # crane: an OCI registry for helm's oci:// charts
: "${TESTENV_KUSTOMIZE_VERSION:=v5.8.1}" # kustomize: the release playbook's overlays
: "${TESTENV_GATEWAY_API_VERSION:=v1.6.3}" # sigs.k8s.io/gateway-api: its standard CRDs (HTTPRoute)
: "${TESTENV_MOTO_VERSION:=5.2.5}"
: "${TESTENV_ARGO_VERSION:=v3.7.2}"    # github.com/argoproj/argo-workflows/v3: only its Workflow CRD
: "${TESTENV_NODES:=3}"
PROFILE_GIVEN=${TESTENV_PROFILE:+1}     # set by the caller (then `up` insists on it)
: "${TESTENV_PROFILE:=generic}"
# ---- locations -------------------------------------------------------------------------
: "${TESTENV_CACHE:=${XDG_CACHE_HOME:-$HOME/.cache}/kmsctl-testenv}"
: "${TESTENV_DIR:=${TMPDIR:-/tmp}/kmsctl-testenv}"
NAME=testenv
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_BIN="$TESTENV_CACHE/bin/k8s-$TESTENV_K8S_VERSION"
ETCD_BIN="$TESTENV_CACHE/bin/etcd-$TESTENV_ETCD_VERSION"
KWOK_BIN="$TESTENV_CACHE/bin/kwok-$TESTENV_KWOK_VERSION"
HELM_BIN="$TESTENV_CACHE/bin/helm-$TESTENV_HELM_VERSION"
HELM3_BIN="$TESTENV_CACHE/bin/helm-$TESTENV_HELM3_VERSION"
CRANE_BIN="$TESTENV_CACHE/bin/crane-$TESTENV_CRANE_VERSION"
KUSTOMIZE_BIN="$TESTENV_CACHE/bin/kustomize-$TESTENV_KUSTOMIZE_VERSION"
MOTO_VENV="$TESTENV_CACHE/venv-moto-$TESTENV_MOTO_VERSION"
ARGO_CRD="$TESTENV_CACHE/argo-$TESTENV_ARGO_VERSION/workflows.argoproj.io.yaml"
GATEWAY_CRDS="$TESTENV_CACHE/gateway-api-$TESTENV_GATEWAY_API_VERSION/standard.yaml"
REHEARSAL_SRC="$HERE/rehearsal"
STANDINS_SRC="$HERE/standins"
# Keyed by their sources (not their tests), so an edit rebuilds them.
src_hash() { (cd "$1" && find . -name '*.go' ! -name '*_test.go' | LC_ALL=C sort | xargs cat go.mod go.sum | sha256sum | cut -c1-16); }
REHEARSAL_BIN="$TESTENV_CACHE/bin/rehearsal-$(src_hash "$REHEARSAL_SRC")"
STANDINS_BIN="$TESTENV_CACHE/bin/standins-$(src_hash "$STANDINS_SRC")"

log() { printf '[testenv %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
secs() { local ms=$1; printf '%d.%01ds' $((ms / 1000)) $((ms % 1000 / 100)); }  # ms -> "12.3s"
timed() { local t; t=$(now_ms); "$@"; log "step $1 took $(secs $(($(now_ms) - t)))"; }
step() { local what=$1 t; shift; t=$(now_ms); "$@"; log "step $what took $(secs $(($(now_ms) - t)))"; }

go_env() {
  command -v go >/dev/null || die "go not found: the test environment builds Kubernetes from the Go module proxy"
  # Use the machine's GOPROXY/GOSUMDB; never name a registry here.
  export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
}

# k8s.io/kubernetes is not meant to be a dependency: its go.mod requires every staging module
# at v0.0.0 and replaces it with ./staging/... (kubernetes/kubernetes#79384). A wrapper module
# re-points each of them at the published v0.<minor>.<patch> tag.
build_k8s() {
  [[ -x "$K8S_BIN/kube-apiserver" ]] && return 0
  go_env
  local v="$TESTENV_K8S_VERSION" src="$TESTENV_CACHE/src/k8s-$TESTENV_K8S_VERSION"
  local staging="v0.${v#v1.}" minor="${v#v1.}"; minor="${minor%%.*}"
  rm -rf "$src" && mkdir -p "$src" && cd "$src"
  printf 'module testenv.invalid/k8s\n\ngo 1.26.0\n' > go.mod
  local upstream_mod
  upstream_mod="$(go mod download -json "k8s.io/kubernetes@$v" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  local -a edits=(-require="k8s.io/kubernetes@$v")
  while read -r m; do edits+=(-replace="$m=$m@$staging"); done < <(
    awk '($2 == "v0.0.0" && $1 ~ /^k8s\.io\//) || ($2 == "=>" && $3 ~ /^\.\/staging\//) {print $1}' \
      "$upstream_mod" | sort -u)
  go mod edit "${edits[@]}"
  local -a pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
                 k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  go get "${pkgs[@]/%/@$v}"
  # Stamp the version like hack/lib/version.sh; otherwise /version says v0.0.0-master.
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  rm -rf "$K8S_BIN.tmp" && mkdir -p "$K8S_BIN.tmp"
  go build -ldflags "$ld" -o "$K8S_BIN.tmp/" "${pkgs[@]}"
  "$K8S_BIN.tmp/kube-apiserver" --version | grep -q "$v" || die "kube-apiserver is not stamped $v"
  mv "$K8S_BIN.tmp" "$K8S_BIN"
}

# go.etcd.io/etcd/server/v3 has replace directives, so `go install pkg@v` refuses it
# (etcd-io/etcd#18501); as a dependency its replaces are ignored. Its package main is the root.
build_etcd() {
  [[ -x "$ETCD_BIN/etcd" ]] && return 0
  go_env
  local src="$TESTENV_CACHE/src/etcd-$TESTENV_ETCD_VERSION"
  rm -rf "$src" && mkdir -p "$src" && cd "$src"
  printf 'module testenv.invalid/etcd\n\ngo 1.26.0\n' > go.mod
  go get "go.etcd.io/etcd/server/v3@$TESTENV_ETCD_VERSION"
  rm -rf "$ETCD_BIN.tmp" && mkdir -p "$ETCD_BIN.tmp"
  go build -o "$ETCD_BIN.tmp/etcd" go.etcd.io/etcd/server/v3
  mv "$ETCD_BIN.tmp" "$ETCD_BIN"
}

# kwok, kwokctl and helm have no replace directives: plain `go install`.
build_kwok() {
  [[ -x "$KWOK_BIN/kwokctl" ]] && return 0
  go_env
  rm -rf "$KWOK_BIN.tmp" && mkdir -p "$KWOK_BIN.tmp"
  GOBIN="$KWOK_BIN.tmp" go install "sigs.k8s.io/kwok/cmd/kwok@$TESTENV_KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwokctl@$TESTENV_KWOK_VERSION"
  mv "$KWOK_BIN.tmp" "$KWOK_BIN"
}

install_helm() {  # $1 = version, $2 = target dir
  local v="$1" dir="$2" mod="helm.sh/helm/${1%%.*}"
  [[ -x "$dir/helm" ]] && return 0
  go_env
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  GOBIN="$dir.tmp" go install -ldflags "-s -w -X $mod/internal/version.version=$v" "$mod/cmd/helm@$v"
  mv "$dir.tmp" "$dir"
}
build_helm() { install_helm "$TESTENV_HELM_VERSION" "$HELM_BIN"; }
build_helm3() { install_helm "$TESTENV_HELM3_VERSION" "$HELM3_BIN"; }

# go-containerregistry's crane serves a real OCI registry (`crane registry serve`); tests
# start their own on 127.0.0.1 to push and install oci:// charts.
build_crane() {
  [[ -x "$CRANE_BIN/crane" ]] && return 0
  go_env
  rm -rf "$CRANE_BIN.tmp" && mkdir -p "$CRANE_BIN.tmp"
  GOBIN="$CRANE_BIN.tmp" go install "github.com/google/go-containerregistry/cmd/crane@$TESTENV_CRANE_VERSION"
  mv "$CRANE_BIN.tmp" "$CRANE_BIN"
}

build_kustomize() {
  [[ -x "$KUSTOMIZE_BIN/kustomize" ]] && return 0
  go_env
  rm -rf "$KUSTOMIZE_BIN.tmp" && mkdir -p "$KUSTOMIZE_BIN.tmp"
  GOBIN="$KUSTOMIZE_BIN.tmp" go install "sigs.k8s.io/kustomize/kustomize/v5@$TESTENV_KUSTOMIZE_VERSION"
  mv "$KUSTOMIZE_BIN.tmp" "$KUSTOMIZE_BIN"
}

# The rehearsal controller shares kwok's k8s.io modules (v0.36.x), so its build is mostly cached.
build_rehearsal() {
  [[ -x "$REHEARSAL_BIN/rehearsal" ]] && return 0
  go_env
  cd "$REHEARSAL_SRC"
  rm -rf "$REHEARSAL_BIN.tmp" && mkdir -p "$REHEARSAL_BIN.tmp"
  go build -ldflags "-s -w" -o "$REHEARSAL_BIN.tmp/rehearsal" .
  mv "$REHEARSAL_BIN.tmp" "$REHEARSAL_BIN"
}

# The kind and docker stand-ins (standins/): the same k8s.io modules, so also mostly cached.
build_standins() {
  [[ -x "$STANDINS_BIN/standins" ]] && return 0
  go_env
  cd "$STANDINS_SRC"
  rm -rf "$STANDINS_BIN.tmp" && mkdir -p "$STANDINS_BIN.tmp"
  go build -ldflags "-s -w" -o "$STANDINS_BIN.tmp/standins" .
  mv "$STANDINS_BIN.tmp" "$STANDINS_BIN"
}

# Go unit tests of the controller and the stand-ins, then the stand-ins' shell-level check and
# the AWS stand-in charts' renders (tests/charts/check.sh) with both helms.
cmd_unit() {
  go_env
  (cd "$REHEARSAL_SRC" && go test -count=1 ./...)
  (cd "$STANDINS_SRC" && go test -count=1 ./...)
  cmd_selftest
  ( exec 9>"$TESTENV_CACHE/.lock"; flock 9; build_helm; build_helm3 )
  local h
  for h in "$HELM_BIN/helm" "$HELM3_BIN/helm"; do
    HELM="$h" "$HERE/../../tests/charts/check.sh" | tail -n 1
    (( PIPESTATUS[0] == 0 )) || die "tests/charts/check.sh failed with $h"
  done
}

# selftest: the built stand-ins as a playbook runs them (by the names kind and docker, state
# in a scratch TESTENV_DIR, no cluster), and scripts/rehearse's choice of environment.
cmd_selftest() {
  mkdir -p "$TESTENV_CACHE"
  ( exec 9>"$TESTENV_CACHE/.lock"; flock 9; build_standins )
  "$HERE/selftest.sh" "$STANDINS_BIN/standins" "$HERE/../rehearse"
}

# Argo's minimal Workflow CRD (spec and status preserve unknown fields; no status subresource),
# from its Go module (a ~10 MB zip, about a second): the CRD its workflow-controller runs on.
# The controller itself cannot run here (rehearsal/workflow.go says why).
build_argo_crd() {
  [[ -f "$ARGO_CRD" ]] && return 0
  go_env
  local dir
  dir="$(cd "$TESTENV_CACHE" && go mod download -json "github.com/argoproj/argo-workflows/v3@$TESTENV_ARGO_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  mkdir -p "$(dirname "$ARGO_CRD")"
  cp "$dir/manifests/base/crds/minimal/argoproj.io_workflows.yaml" "$ARGO_CRD.tmp"
  mv "$ARGO_CRD.tmp" "$ARGO_CRD"
}

# Gateway API's standard CRDs (GatewayClass, Gateway, HTTPRoute, GRPCRoute, ReferenceGrant)
# from its Go module: what a canary's HTTPRoute weights are checked against. No Gateway
# controller runs (none could without containers): the routes are objects, validated by the
# real schemas.
build_gateway_crds() {
  [[ -f "$GATEWAY_CRDS" ]] && return 0
  go_env
  local dir k
  dir="$(cd "$TESTENV_CACHE" && go mod download -json "sigs.k8s.io/gateway-api@$TESTENV_GATEWAY_API_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  mkdir -p "$(dirname "$GATEWAY_CRDS")"
  : > "$GATEWAY_CRDS.tmp"
  for k in gatewayclasses gateways httproutes grpcroutes referencegrants; do
    { echo "---"; cat "$dir/config/crd/standard/gateway.networking.k8s.io_$k.yaml"; } >> "$GATEWAY_CRDS.tmp"
  done
  mv "$GATEWAY_CRDS.tmp" "$GATEWAY_CRDS"
}

apply_gateway_crds() {
  kc apply --server-side -f "$GATEWAY_CRDS" >/dev/null
  kc wait --for condition=Established --timeout 30s crd/httproutes.gateway.networking.k8s.io >/dev/null
}

# The Workflow CRD, in every profile; the rehearsal controller runs Workflows once it is Established.
apply_argo_crd() {
  kc apply -f "$ARGO_CRD" >/dev/null
  kc wait --for condition=Established --timeout 30s crd/workflows.argoproj.io >/dev/null
}

# Prometheus comes from the distribution (the Go module would build its web UI with node):
# Debian's package, installed without its recommends and never started as a service.
install_prometheus() {
  command -v prometheus >/dev/null && return 0
  if ! command -v apt-get >/dev/null || [[ $(id -u) != 0 ]]; then
    die "prometheus not found: install Debian's prometheus package (apt-get install prometheus)"
  fi
  log "installing Debian's prometheus package"
  # One apt at a time (scripts/test installs chromium meanwhile): a shared lock file.
  local lock="${TMPDIR:-/tmp}/kmsctl-apt.lock"
  local apt=(flock "$lock" apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 prometheus)
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" >"$TESTENV_CACHE/apt-prometheus.log" 2>&1 \
    || { flock "$lock" apt-get update -q >>"$TESTENV_CACHE/apt-prometheus.log" 2>&1 \
      && DEBIAN_FRONTEND=noninteractive "${apt[@]}" >>"$TESTENV_CACHE/apt-prometheus.log" 2>&1; } \
    || { cat "$TESTENV_CACHE/apt-prometheus.log" >&2; die "apt-get install prometheus failed"; }
}

build_moto() {  # moto[server] would pull ~320 MB; s3 + flask is enough for the server
  [[ -f "$MOTO_VENV/.complete" ]] && return 0
  rm -rf "$MOTO_VENV" && python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install -q "moto[s3]==$TESTENV_MOTO_VERSION" flask flask-cors
  touch "$MOTO_VENV/.complete"
}

cmd_build() {
  mkdir -p "$TESTENV_CACHE"
  local t; t=$(now_ms)
  (  # a subshell: the build steps cd into their source dirs
    exec 9>"$TESTENV_CACHE/.lock"; flock 9   # one builder at a time
    timed install_prometheus; timed build_moto; timed build_argo_crd; timed build_gateway_crds; timed build_etcd; timed build_kwok; timed build_helm; timed build_helm3; timed build_crane; timed build_kustomize; timed build_rehearsal; timed build_standins; timed build_k8s
  )
  log "build done in $(secs $(($(now_ms) - t))) (cache: $TESTENV_CACHE)"
}

# ---- runtime ---------------------------------------------------------------------------
# State layout under $TESTENV_DIR (all of it is removed by `down`):
#   .kmsctl-testenv     marker: `down` refuses to delete a directory without it
#   kwok/               KWOK_WORKDIR: clusters/testenv/{kubeconfig.yaml,pki,pids,logs,...}
#   bin/                helm (v4), helm3, kubectl, kwokctl, crane, kustomize, rehearsal, standins symlinks for PATH
#   aws_fake.{pid,log}  moto + token webhook; webhook/ holds its TLS cert and kubeconfig
#   prometheus.{pid,log} Prometheus; prometheus/ its config, data and targets/ (file_sd)
#   rehearsal.{pid,log} the rehearsal controller (rehearsal.ready once its caches synced and
#                       the port-forward baseline is in place)
#   standins/           kind and docker: the stand-ins (symlinks; not on the env file's PATH)
#   kind/, docker/      the stand-ins' records (created when they first run)
#   env                 the file to source (written last: it exists only once `up` succeeded)
export KWOK_WORKDIR="$TESTENV_DIR/kwok"
CLUSTER_DIR="$KWOK_WORKDIR/clusters/$NAME"
KUBECONFIG_FILE="$CLUSTER_DIR/kubeconfig.yaml"
ENV_FILE="$TESTENV_DIR/env"
MARKER="$TESTENV_DIR/.kmsctl-testenv"
AWS_PID="$TESTENV_DIR/aws_fake.pid"
AWS_LOG="$TESTENV_DIR/aws_fake.log"
HOOK_DIR="$TESTENV_DIR/webhook"
REHEARSAL_PID="$TESTENV_DIR/rehearsal.pid"
PROM_PID="$TESTENV_DIR/prometheus.pid"
PROM_LOG="$TESTENV_DIR/prometheus.log"
PROM_DIR="$TESTENV_DIR/prometheus"
REHEARSAL_LOG="$TESTENV_DIR/rehearsal.log"
PROFILE_FILE="$HERE/profiles/$TESTENV_PROFILE.yaml"
: "${TESTENV_REGION:=us-east-1}"
unset KUBECONFIG   # only ever use the cluster's own kubeconfig, passed explicitly
export KUBECACHEDIR="$TESTENV_DIR/kube-cache"   # kubectl's discovery cache, not ~/.kube/cache

kc() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
# free_ports N: N distinct unused ports, for components that bind them seconds later. Taken
# from 20000-29999, below the kernel's ephemeral range (where any client socket could take
# one meanwhile) and kwokctl's countdown from 32767, and recorded for 10 minutes in a
# machine-wide file, so environments started at the same time never pick the same ones.
free_ports() {
  python3 - "$1" "${TMPDIR:-/tmp}/kmsctl-testenv-ports.json" <<'PY'
import fcntl, json, os, random, socket, sys, time
n, reg = int(sys.argv[1]), sys.argv[2]
lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
with open(reg + ".lock", "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        taken = {int(p): t for p, t in json.load(open(reg)).items() if time.time() - t < 600}
    except (OSError, ValueError):
        taken = {}
    out = []
    for _ in range(100000):
        if len(out) == n:
            break
        p = random.randrange(20000, 30000)
        if p in taken or p in out or lo <= p <= hi:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                continue
        out.append(p)
    if len(out) < n:
        sys.exit("no free ports in 20000-29999")
    taken.update({p: time.time() for p in out})
    with open(reg + ".tmp", "w") as f:
        json.dump(taken, f)
    os.replace(reg + ".tmp", reg)
print(*out)
PY
}
# A live process (a zombie is not: orphans may be left unreaped where pid 1 does not reap).
alive() {
  local st
  [[ "${1:-}" =~ ^[0-9]+$ ]] && st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null)" || return 1
  [[ -n "$st" && "${st:0:1}" != Z ]]
}
# The process with this pid runs the given file (guards against a pid reused after a crash).
runs() { local pid=$1 want=$2; alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$want"; }
until_ok() {  # until_ok SECONDS WHAT CMD...: retry CMD every 0.2s
  local limit=$1 what=$2 deadline; deadline=$(( $(now_ms) + $1 * 1000 )); shift 2
  until "$@" >/dev/null 2>&1; do
    (( $(now_ms) < deadline )) || die "timed out after ${limit}s waiting for $what"
    sleep 0.2
  done
}
moto_port() { sed -n 's/^moto_port=//p' "$TESTENV_DIR/ports" 2>/dev/null; }
prom_port() { sed -n 's/^prometheus_port=//p' "$TESTENV_DIR/ports" 2>/dev/null; }
forward_port() { sed -n 's/^forward_port=//p' "$TESTENV_DIR/ports" 2>/dev/null; }
# The profile a running environment was brought up with.
running_profile() { sed -n 's/^export TESTENV_PROFILE=//p' "$ENV_FILE" 2>/dev/null; }

healthy() {
  [[ -f "$ENV_FILE" && -f "$KUBECONFIG_FILE" ]] || return 1
  local f
  for f in "$CLUSTER_DIR"/pids/*.pid; do alive "$(cat "$f")" || return 1; done
  runs "$(cat "$AWS_PID" 2>/dev/null)" aws_fake.py || return 1
  runs "$(cat "$REHEARSAL_PID" 2>/dev/null)" "$REHEARSAL_BIN/rehearsal" || return 1
  kc get --raw /readyz >/dev/null 2>&1 || return 1
  curl -fsS -o /dev/null "http://127.0.0.1:$(moto_port)/moto-api/data.json" 2>/dev/null
}

write_kwokctl_config() {  # $1..$6: apiserver, etcd, etcd peer, controller-manager, scheduler, kwok ports
  cat > "$TESTENV_DIR/kwokctl.yaml" <<YAML
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  bindAddress: 127.0.0.1
  # kwokctl's own choice counts down from 32767, so environments started at the same time
  # (scripts/test starts one per profile) would pick the same ports.
  kubeApiserverPort: $1
  etcdPort: $2
  etcdPeerPort: $3
  kubeControllerManagerPort: $4
  kubeSchedulerPort: $5
  kwokControllerPort: $6
  kubeVersion: $TESTENV_K8S_VERSION
  etcdVersion: $TESTENV_ETCD_VERSION
  cacheDir: $TESTENV_DIR/kwok/cache
  # Stage objects are CRs, so tests can add stages at run time; up applies the baseline.
  # kwok has no containers: logs, exec and port-forward are served from these CRs, which tests
  # create at run time too (log files, local commands, local TCP targets on 127.0.0.1).
  enableCRDs: [Stage, ClusterLogs, Logs, ClusterExec, Exec, ClusterPortForward, PortForward]
  # Local, version-stamped binaries (a path, not a URL, is used as is).
  kubeApiserverBinary: $K8S_BIN/kube-apiserver
  kubeControllerManagerBinary: $K8S_BIN/kube-controller-manager
  kubeSchedulerBinary: $K8S_BIN/kube-scheduler
  kubectlBinary: $K8S_BIN/kubectl
  etcdBinary: $ETCD_BIN/etcd
  kwokControllerBinary: $KWOK_BIN/kwok
componentsPatches:
- name: etcd
  extraArgs:
  - {key: unsafe-no-fsync, value: "true"}
- name: kube-apiserver
  extraArgs:
  - {key: advertise-address, value: 127.0.0.1}
  - {key: service-cluster-ip-range, value: 10.100.0.0/16}
  - {key: kubelet-preferred-address-types, value: InternalIP}
  - {key: authentication-token-webhook-config-file, value: $HOOK_DIR/kubeconfig}
  - {key: authentication-token-webhook-version, value: v1}
  - {key: authentication-token-webhook-cache-ttl, value: 10s}
- name: kwok-controller
  extraArgs:
  - {key: node-ip, value: 127.0.0.1, override: true}
  - {key: cidr, value: 10.244.0.0/16}
YAML
}

# The TokenReview webhook serves TLS with a cert from kwok's CA (kube-apiserver trusts it via
# the webhook kubeconfig). The CA exists only after kwokctl has set up the cluster, which is
# before kube-apiserver starts, so the kubeconfig can name its path up front.
write_webhook_kubeconfig() {  # $1 = port
  mkdir -p "$HOOK_DIR"
  cat > "$HOOK_DIR/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: eks-token-webhook
  cluster:
    server: https://127.0.0.1:$1/authenticate
    certificate-authority: $CLUSTER_DIR/pki/ca.crt
users:
- name: kube-apiserver
  user: {}
contexts:
- name: webhook
  context: {cluster: eks-token-webhook, user: kube-apiserver}
current-context: webhook
YAML
}

make_webhook_cert() {
  local pki="$CLUSTER_DIR/pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=testenv-eks-token-webhook" \
    -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -addext "subjectAltName=IP:127.0.0.1" \
    -addext "extendedKeyUsage=serverAuth" \
    -keyout "$HOOK_DIR/tls.key" -out "$HOOK_DIR/tls.crt" 2>/dev/null
}

# The profile's Nodes and StorageClasses (profiles/<name>.yaml, rendered by the controller).
apply_profile() {
  TESTENV_NODES="$TESTENV_NODES" TESTENV_REGION="$TESTENV_REGION" \
    "$REHEARSAL_BIN/rehearsal" render-profile "$PROFILE_FILE" | kc apply -f - >/dev/null
}

# The profile's manifests (the eks profile's AWS stand-ins: CRDs and a ClusterSecretStore),
# after the nodes: the CRDs first, until Established; then the other objects, and those of the
# CRDs' kinds must become Ready (the rehearsal controller reconciles them: rehearsal/infra.go).
apply_manifests() {
  local crds=() objs=() groups=" " o g
  local crd_file="$TESTENV_DIR/manifests-crds.yaml" obj_file="$TESTENV_DIR/manifests.yaml"
  TESTENV_REGION="$TESTENV_REGION" "$REHEARSAL_BIN/rehearsal" render-profile --crds "$PROFILE_FILE" > "$crd_file"
  TESTENV_REGION="$TESTENV_REGION" "$REHEARSAL_BIN/rehearsal" render-profile --manifests "$PROFILE_FILE" > "$obj_file"
  if [[ -s "$crd_file" ]]; then
    mapfile -t crds < <(kc apply -f "$crd_file" -o name)
    kc wait --for condition=Established --timeout 30s "${crds[@]}" >/dev/null
    for o in "${crds[@]}"; do g="${o#*/}"; groups+="${g#*.} "; done
  fi
  [[ -s "$obj_file" ]] || return 0
  mapfile -t objs < <(kc apply --server-side -f "$obj_file" -o name)   # no OpenAPI download: ~1 s less
  for o in "${objs[@]}"; do
    g="${o%%/*}"; g="${g#*.}"
    [[ "$groups" == *" $g "* ]] || continue
    kc wait --for condition=Ready --timeout 30s "$o" >/dev/null \
      || die "$o did not become Ready (see $REHEARSAL_LOG)"
  done
}

start_rehearsal() {  # $1 = the port-forward baseline's port, $2 = the metrics API's
  setsid "$REHEARSAL_BIN/rehearsal" run --kubeconfig "$KUBECONFIG_FILE" --region "$TESTENV_REGION" \
    --ready-file "$TESTENV_DIR/rehearsal.ready" --forward-listen "127.0.0.1:$1" --metrics-listen "127.0.0.1:$2" \
    --registry-missing "$TESTENV_DIR/docker/missing" >"$REHEARSAL_LOG" 2>&1 </dev/null &
  echo $! > "$REHEARSAL_PID"
}

# The metrics API (metrics.k8s.io, what `kubectl top` and kmsctl's sampler read) is the
# rehearsal controller's stand-in (rehearsal/metrics.go: synthetic usage), aggregated by the
# API server through an ExternalName Service to its loopback port.
register_metrics() {  # $1 = the metrics API's port
  kc apply --server-side -f - >/dev/null <<YAML
apiVersion: v1
kind: Service
metadata: {name: testenv-metrics, namespace: kube-system}
spec:
  type: ExternalName
  externalName: localhost
  ports: [{name: https, port: $1}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {namespace: kube-system, name: testenv-metrics, port: $1}
  insecureSkipTLSVerify: true
  groupPriorityMinimum: 100
  versionPriority: 100
YAML
  kc wait --for condition=Available --timeout 30s apiservice/v1beta1.metrics.k8s.io >/dev/null \
    || die "the metrics API did not become available (see $REHEARSAL_LOG)"
}

stop_pid() {  # stop_pid PIDFILE WANT: TERM (then KILL) the process if it still runs WANT
  local pid; pid="$(cat "$1" 2>/dev/null || true)"
  runs "$pid" "$2" || return 0
  kill "$pid"
  for _ in {1..50}; do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then kill -KILL "$pid"; fi
}

start_prometheus() {  # $1 = port
  mkdir -p "$PROM_DIR/targets" "$PROM_DIR/data"
  printf '%s\n' "global: {scrape_interval: 1s, evaluation_interval: 1s}" "scrape_configs:" \
    "  - job_name: tests" "    scrape_interval: 1s" "    scrape_timeout: 1s" \
    "    file_sd_configs: [{files: ['$PROM_DIR/targets/*.json'], refresh_interval: 1s}]" >"$PROM_DIR/prometheus.yml"
  setsid prometheus --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
    --storage.tsdb.retention.time=6h --web.listen-address="127.0.0.1:$1" >"$PROM_LOG" 2>&1 </dev/null &
  echo $! > "$PROM_PID"
  until_ok 30 "prometheus on port $1 (see $PROM_LOG)" curl -fsS -o /dev/null "http://127.0.0.1:$1/-/ready"
}

# The eks profile's EKS cluster in moto, with node groups named after its pools: rehearsals of
# the AWS playbooks connect to it with --eks-cluster (scripts/rehearse passes it).
eks_cluster() { [[ "$TESTENV_PROFILE" == eks ]] && echo "${TESTENV_EKS_CLUSTER:-zws-dev}"; return 0; }

start_aws() {  # $1 moto port, $2 webhook port, $3 apiserver endpoint
  MOTO_PORT="$1" WEBHOOK_PORT="$2" TESTENV_KUBE_ENDPOINT="$3" \
  TESTENV_CA_FILE="$CLUSTER_DIR/pki/ca.crt" \
  WEBHOOK_TLS_CERT="$HOOK_DIR/tls.crt" WEBHOOK_TLS_KEY="$HOOK_DIR/tls.key" \
  TESTENV_EKS_CLUSTERS="$(eks_cluster)" TESTENV_EKS_NODEGROUPS="kms-bench-spot-64,zws-pool,kms-pool" \
  AWS_REGION="$TESTENV_REGION" \
    setsid "$MOTO_VENV/bin/python" "$HERE/aws_fake.py" >"$AWS_LOG" 2>&1 </dev/null &
  echo $! > "$AWS_PID"   # setsid execs (the child is no group leader): this is python's pid
  until_ok 30 "moto on port $1" curl -fsS -o /dev/null "http://127.0.0.1:$1/moto-api/data.json"
  if [[ -n "$(eks_cluster)" ]]; then
    until_ok 30 "the EKS cluster $(eks_cluster) in moto" grep -q "eks cluster $(eks_cluster) created" "$AWS_LOG"
  fi
  runs "$(cat "$AWS_PID")" aws_fake.py || die "aws_fake.py is not running as pid $(cat "$AWS_PID")"
}

# Proves the EKS path end to end: a token presigned by botocore (as `aws eks get-token` makes
# it) is sent to kube-apiserver alone, without the client certificate.
check_eks_token() {  # $1 moto port, $2 apiserver endpoint
  local token user
  token="$(AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_CONFIG_FILE=/dev/null \
    AWS_SHARED_CREDENTIALS_FILE=/dev/null "$MOTO_VENV/bin/python" - "$1" "$TESTENV_REGION" <<'PY'
import base64, sys, boto3
from botocore.signers import RequestSigner
port, region = sys.argv[1], sys.argv[2]
sts = boto3.client("sts", region_name=region, endpoint_url=f"http://127.0.0.1:{port}")
signer = RequestSigner(sts.meta.service_model.service_id, region, "sts", "v4",
                       sts._request_signer._credentials, sts.meta.events)
def add_id(request, **_):
    request.headers["x-k8s-aws-id"] = "testenv-selfcheck"
sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_id)
url = sts.generate_presigned_url("get_caller_identity", ExpiresIn=60)
print("k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("="))
PY
)"
  user="$("$K8S_BIN/kubectl" --kubeconfig /dev/null --server "$2" \
    --certificate-authority "$CLUSTER_DIR/pki/ca.crt" --token "$token" \
    auth whoami -o jsonpath='{.status.userInfo.username}')" \
    || die "kube-apiserver rejected an EKS token (see: $0 logs)"
  [[ "$user" == arn:aws:* ]] || die "EKS token mapped to '$user', expected an AWS ARN"
  log "EKS token accepted by kube-apiserver as $user"
}

# kind and docker for rehearsals, in a directory of their own: the env file does not put them
# on PATH (tests have their own fakes, and nothing else should find a "docker" here);
# scripts/rehearse puts them first on the playbook's PATH and in KMSCTL_KIND / KMSCTL_DOCKER.
link_standins() {
  mkdir -p "$TESTENV_DIR/standins" "$TESTENV_DIR/bin"
  ln -sfn "$STANDINS_BIN/standins" "$TESTENV_DIR/standins/kind"
  ln -sfn "$STANDINS_BIN/standins" "$TESTENV_DIR/standins/docker"
  ln -sfn "$STANDINS_BIN/standins" "$TESTENV_DIR/bin/standins"   # standins registry add ...
}

write_env() {  # $1 moto port
  mkdir -p "$TESTENV_DIR/bin"
  link_standins
  ln -sf "$HELM_BIN/helm" "$TESTENV_DIR/bin/helm"
  ln -sf "$HELM3_BIN/helm" "$TESTENV_DIR/bin/helm3"
  ln -sf "$K8S_BIN/kubectl" "$TESTENV_DIR/bin/kubectl"
  ln -sf "$KWOK_BIN/kwokctl" "$TESTENV_DIR/bin/kwokctl"
  ln -sf "$CRANE_BIN/crane" "$TESTENV_DIR/bin/crane"
  ln -sf "$KUSTOMIZE_BIN/kustomize" "$TESTENV_DIR/bin/kustomize"
  ln -sf "$REHEARSAL_BIN/rehearsal" "$TESTENV_DIR/bin/rehearsal"   # e.g. rehearsal measure
  local aws="http://127.0.0.1:$1"
  {
    echo "# kmsctl test environment: source this file. Written by scripts/testenv/testenv.sh up."
    echo "# Deliberately no KUBECONFIG: tests and tools get TESTENV_KUBECONFIG explicitly."
    printf 'export TESTENV_DIR=%q\n' "$TESTENV_DIR"
    printf 'export TESTENV_KUBECONFIG=%q\n' "$KUBECONFIG_FILE"
    printf 'export TESTENV_AWS_ENDPOINT=%q\n' "$aws"
    printf 'export TESTENV_K8S_VERSION=%q\n' "$TESTENV_K8S_VERSION"
    printf 'export TESTENV_NODES=%q\n' "$(kc get nodes --no-headers | wc -l)"
    printf 'export TESTENV_PROFILE=%q\n' "$TESTENV_PROFILE"
    printf 'export TESTENV_EKS_CLUSTER=%q\n' "$(eks_cluster)"
    printf 'export TESTENV_HELM3=%q\n' "$HELM3_BIN/helm"
    printf 'export TESTENV_STANDINS=%q\n' "$TESTENV_DIR/standins"
    printf 'export TESTENV_FORWARD_BASELINE=%q\n' "127.0.0.1:$(forward_port)"
    printf 'export TESTENV_PROMETHEUS=%q\n' "http://127.0.0.1:$(prom_port)"
    printf 'export TESTENV_PROMETHEUS_TARGETS=%q\n' "$PROM_DIR/targets"
    # shellcheck disable=SC2016  # $PATH is expanded when the file is sourced
    printf 'export PATH=%q:"$PATH"\n' "$TESTENV_DIR/bin"
    printf 'export KUBECACHEDIR=%q\n' "$KUBECACHEDIR"
    printf 'export HELM_CACHE_HOME=%q HELM_CONFIG_HOME=%q HELM_DATA_HOME=%q\n' \
      "$TESTENV_DIR/helm/cache" "$TESTENV_DIR/helm/config" "$TESTENV_DIR/helm/data"
    printf 'export AWS_ENDPOINT_URL=%q\n' "$aws"
    echo "export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing"
    echo "export AWS_REGION=$TESTENV_REGION AWS_DEFAULT_REGION=$TESTENV_REGION"
    echo "export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null"
  } > "$ENV_FILE.tmp"
  mv "$ENV_FILE.tmp" "$ENV_FILE"
}

cmd_up() {
  local t0; t0=$(now_ms)
  cmd_build
  if healthy; then
    local running; running="$(running_profile)"
    if [[ -n "$PROFILE_GIVEN" && "$running" != "$TESTENV_PROFILE" ]]; then
      die "$TESTENV_DIR is up with profile '$running', not '$TESTENV_PROFILE': bring it down first" \
        "(TESTENV_DIR=$TESTENV_DIR $0 down) or use another TESTENV_DIR"
    fi
    link_standins   # the current build of the stand-ins
    log "already up and healthy ($running profile)"
    echo "$ENV_FILE"
    return 0
  fi
  if [[ -e "$TESTENV_DIR" ]]; then
    log "stale state in $TESTENV_DIR: cleaning it up first"
    cmd_down
  fi
  [[ "$TESTENV_NODES" =~ ^[1-9][0-9]*$ ]] || die "TESTENV_NODES must be a positive number"
  [[ -f "$PROFILE_FILE" ]] || die "no profile '$TESTENV_PROFILE' ($PROFILE_FILE)"
  command -v openssl >/dev/null || die "openssl not found (needed for the webhook's TLS cert)"
  command -v curl >/dev/null || die "curl not found"
  mkdir -p "$TESTENV_DIR" && touch "$MARKER"

  local hook_port moto_port fwd_port metrics_port api kt
  local -a ports
  read -r -a ports < <(free_ports 11)
  hook_port=${ports[0]} moto_port=${ports[1]} fwd_port=${ports[2]} metrics_port=${ports[3]}
  printf 'moto_port=%s\nwebhook_port=%s\nforward_port=%s\nmetrics_port=%s\nprometheus_port=%s\n' "$moto_port" \
    "$hook_port" "$fwd_port" "$metrics_port" "${ports[10]}" > "$TESTENV_DIR/ports"
  write_webhook_kubeconfig "$hook_port"
  write_kwokctl_config "${ports[@]:4:6}"
  log "starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok-controller"
  kt=$(now_ms)
  PATH="$K8S_BIN:$KWOK_BIN:$PATH" "$KWOK_BIN/kwokctl" create cluster --name "$NAME" \
    --config "$TESTENV_DIR/kwokctl.yaml" --kubeconfig "" --timeout 3m \
    >"$TESTENV_DIR/kwokctl-create.log" 2>&1 \
    || { cat "$TESTENV_DIR/kwokctl-create.log" >&2; die "kwokctl create cluster failed"; }
  log "step kwokctl-create took $(secs $(($(now_ms) - kt)))"
  api="$(sed -n 's/^ *server: *//p' "$KUBECONFIG_FILE" | head -n1)"
  [[ "$api" == https://127.0.0.1:* ]] || die "unexpected apiserver address '$api'"

  step readyz until_ok 120 "kube-apiserver /readyz" kc get --raw /readyz
  step kwok-crds until_ok 60 "kwok's CRDs" kc wait --for condition=Established --timeout 5s \
    crd/{stages,clusterlogs,logs,clusterexecs,execs,clusterportforwards,portforwards}.kwok.x-k8s.io
  step stages kc apply -f "$HERE/stages.yaml" >/dev/null
  start_rehearsal "$fwd_port" "$metrics_port"   # its caches sync while the nodes come up
  step nodes apply_profile
  step nodes-ready kc wait --for condition=Ready node --all --timeout 120s >/dev/null
  step rehearsal until_ok 30 "the rehearsal controller (see $REHEARSAL_LOG)" test -f "$TESTENV_DIR/rehearsal.ready"
  runs "$(cat "$REHEARSAL_PID")" "$REHEARSAL_BIN/rehearsal" || die "the rehearsal controller is not running (see $REHEARSAL_LOG)"
  kc get clusterportforward testenv-baseline >/dev/null 2>&1 \
    || die "the rehearsal controller did not make the port-forward baseline (see $REHEARSAL_LOG)"
  step manifests apply_manifests
  step argo-crd apply_argo_crd
  step gateway-crds apply_gateway_crds
  step metrics-api register_metrics "$metrics_port"
  step default-sa until_ok 120 "the default ServiceAccount" kc -n default get serviceaccount default
  kc -n kube-system create configmap testenv-marker --from-literal=owner=kmsctl-testenv \
    --from-literal=dir="$TESTENV_DIR" --from-literal=profile="$TESTENV_PROFILE" >/dev/null

  step prometheus start_prometheus "$(prom_port)"
  make_webhook_cert
  step aws-fake start_aws "$moto_port" "$hook_port" "$api"
  step eks-token-check check_eks_token "$moto_port" "$api"
  write_env "$moto_port"
  log "up in $(secs $(($(now_ms) - t0))): apiserver $api, moto http://127.0.0.1:$moto_port," \
    "$TESTENV_PROFILE profile"
  log "source $ENV_FILE"
  echo "$ENV_FILE"
}

cmd_down() {
  local t0 f pid; t0=$(now_ms)
  if [[ ! -e "$TESTENV_DIR" ]]; then log "nothing to stop ($TESTENV_DIR does not exist)"; return 0; fi
  [[ -f "$MARKER" ]] || die "$TESTENV_DIR was not created by testenv.sh up; not touching it"
  stop_pid "$AWS_PID" aws_fake.py
  stop_pid "$PROM_PID" "prometheus --config.file=$PROM_DIR/prometheus.yml"
  stop_pid "$REHEARSAL_PID" "rehearsal run --kubeconfig $KUBECONFIG_FILE"
  # kwokctl kills the components by the pid files it wrote; drop any pid file whose process
  # is gone or is no longer the component (pid reuse), so nothing else is ever signalled.
  for f in "$CLUSTER_DIR"/pids/*.pid; do
    [[ -f "$f" ]] || continue
    runs "$(cat "$f")" "$CLUSTER_DIR/bin/" || rm -f "$f"
  done
  if [[ -f "$CLUSTER_DIR/kwok.yaml" ]]; then
    "$KWOK_BIN/kwokctl" delete cluster --name "$NAME" --kubeconfig "$TESTENV_DIR/unused.kubeconfig" \
      >"$TESTENV_DIR/kwokctl-delete.log" 2>&1 || cat "$TESTENV_DIR/kwokctl-delete.log" >&2
  fi
  for f in "$CLUSTER_DIR"/pids/*.pid; do
    [[ -f "$f" ]] && runs "$(cat "$f")" "$CLUSTER_DIR/bin/" && die "still running: $f"
  done
  rm -rf "$TESTENV_DIR"
  log "down in $(secs $(($(now_ms) - t0)))"
}

cmd_status() {
  if [[ ! -e "$TESTENV_DIR" ]]; then echo "down ($TESTENV_DIR does not exist)"; return 3; fi
  local f name pid rc=0
  for f in "$CLUSTER_DIR"/pids/*.pid "$AWS_PID" "$REHEARSAL_PID" "$PROM_PID"; do
    [[ -f "$f" ]] || continue
    name="$(basename "$f" .pid)"; pid="$(cat "$f")"
    if alive "$pid"; then printf '  %-24s pid %-8s running\n' "$name" "$pid"
    else printf '  %-24s pid %-8s DEAD\n' "$name" "$pid"; rc=1; fi
  done
  if [[ -f "$KUBECONFIG_FILE" ]] && kc get --raw /readyz >/dev/null 2>&1; then
    echo "  apiserver $(sed -n 's/^ *server: *//p' "$KUBECONFIG_FILE" | head -n1) ready"
    kc get nodes --no-headers 2>/dev/null | sed 's/^/  node /'
  else
    echo "  apiserver not ready"; rc=1
  fi
  [[ -n "$(moto_port)" ]] && echo "  moto http://127.0.0.1:$(moto_port)"
  [[ -n "$(forward_port)" ]] && echo "  port-forward baseline 127.0.0.1:$(forward_port)"
  [[ -n "$(prom_port)" ]] && echo "  prometheus http://127.0.0.1:$(prom_port)"
  [[ -f "$ENV_FILE" ]] && echo "  profile $(running_profile)"
  if (( rc == 0 )) && [[ -f "$ENV_FILE" ]]; then echo "up: source $ENV_FILE"
  else echo "NOT healthy (see: $0 logs)"; rc=1; fi
  return "$rc"
}

cmd_logs() {
  local f n="${TESTENV_LOG_LINES:-200}"
  for f in "$TESTENV_DIR/kwokctl-create.log" "$CLUSTER_DIR"/logs/*.log "$AWS_LOG" "$REHEARSAL_LOG" "$PROM_LOG"; do
    [[ -f "$f" ]] || continue
    echo "===== $f (last $n lines)"
    tail -n "$n" "$f"
  done
}

# livecheck: the stand-ins against this running environment. With the kind profile: a kind
# cluster from the KMS kind config, a build loaded onto the worker, a port-forward through the
# baseline, and a delete that leaves the nodes as they were. With the eks profile: the AWS
# stand-ins (tkms-infra and sync-secrets with the perf values: every object Ready, the
# ServiceAccounts, ConfigMaps and Secret present; enclave nodes; uninstalls that remove them).
# scripts/test runs it on its kind and eks environments.
cmd_livecheck() {
  healthy || die "not up: run '$0 up' first (TESTENV_PROFILE=kind or eks)"
  case "$(running_profile)" in
    kind|eks) ;;
    *) die "livecheck needs the kind or eks profile; $TESTENV_DIR runs '$(running_profile)'" ;;
  esac
  "$HERE/selftest.sh" --live "$ENV_FILE"
  if [[ "$(running_profile)" == kind ]]; then "$HERE/argocheck.sh" "$ENV_FILE"; fi
}

cmd_argocheck() {
  healthy || die "not up: run '$0 up' first"
  "$HERE/argocheck.sh" "$ENV_FILE"
}

cmd_env() {
  [[ -f "$ENV_FILE" ]] || die "not up: run '$0 up' first"
  echo "$ENV_FILE"
}

case "${1:-}" in
  build) cmd_build ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  logs) cmd_logs ;;
  env) cmd_env ;;
  unit) cmd_unit ;;
  selftest) cmd_selftest ;;
  livecheck) cmd_livecheck ;;
  argocheck) cmd_argocheck ;;
  *) echo "usage: $0 build|up|down|status|logs|env|unit|selftest|livecheck|argocheck" >&2; exit 2 ;;
esac
