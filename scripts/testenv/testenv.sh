#!/usr/bin/env bash
# testenv: the project's real local cluster for tests, CI and rehearsal.
#
#   etcd + kube-apiserver + kube-controller-manager + kube-scheduler (real upstream binaries,
#   built from the Go module proxy and version-stamped), kwok (simulated nodes: pods become
#   Ready, Job pods Succeeded), helm, and moto (fake AWS: EKS/STS/S3) with an EKS
#   token-review webhook. Everything binds to 127.0.0.1.
#
#   scripts/testenv/testenv.sh build    build and cache the binaries (idempotent)
#   scripts/testenv/testenv.sh up       build if needed, start, wait until ready, write the env file
#   scripts/testenv/testenv.sh down     stop what `up` started (by PID) and remove its state
#   scripts/testenv/testenv.sh status   print whether it is up and what runs
#   scripts/testenv/testenv.sh logs     print component logs (CI prints them on failure)
#   scripts/testenv/testenv.sh env      print the path of the env file to source
#
# Binaries are cached per version under $TESTENV_CACHE (outside the repo). Each is built in a
# temp dir and renamed into place, so a half build is never used.
set -euo pipefail

# ---- versions --------------------------------------------------------------------------
: "${TESTENV_K8S_VERSION:=v1.36.1}"     # staging modules v0.36.1 match kwok's: shared build cache
: "${TESTENV_ETCD_VERSION:=v3.6.16}"    # kubeadm pairs 1.34-1.36 with etcd 3.6
: "${TESTENV_KWOK_VERSION:=v0.8.0}"
: "${TESTENV_HELM_VERSION:=v4.3.1}"     # helm.sh/helm/v<major>
: "${TESTENV_HELM3_VERSION:=v3.22.0}"   # second helm, for the v3 flag dialect tests
: "${TESTENV_MOTO_VERSION:=5.2.5}"
: "${TESTENV_NODES:=3}"
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
MOTO_VENV="$TESTENV_CACHE/venv-moto-$TESTENV_MOTO_VERSION"

log() { printf '[testenv %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
timed() { local t=$SECONDS; "$@"; log "step $1 took $((SECONDS - t))s"; }

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

build_moto() {  # moto[server] would pull ~320 MB; s3 + flask is enough for the server
  [[ -f "$MOTO_VENV/.complete" ]] && return 0
  rm -rf "$MOTO_VENV" && python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install -q "moto[s3]==$TESTENV_MOTO_VERSION" flask flask-cors
  touch "$MOTO_VENV/.complete"
}

cmd_build() {
  mkdir -p "$TESTENV_CACHE"
  exec 9>"$TESTENV_CACHE/.lock"; flock 9   # one builder at a time
  local t=$SECONDS
  timed build_moto; timed build_etcd; timed build_kwok; timed build_helm; timed build_helm3; timed build_k8s
  log "build done in $((SECONDS - t))s (cache: $TESTENV_CACHE)"
}

case "${1:-}" in
  build) cmd_build ;;
  *) echo "usage: $0 build|up|down|status|logs|env" >&2; exit 2 ;;
esac
