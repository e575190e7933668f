#!/usr/bin/env bash
# Test stand-in written from the kms-toolkit inventory: checks this stand-in KMS repo with the real
# helm. Lints the chart and renders every values layering deploy.sh uses (same file order and
# --set flags as §4 steps 6d-6g), then asserts names, ordinals, hooks, labels, tolerations and
# images. Offline: `helm template` only, no cluster.
#
#   HELM=/path/to/helm tests/kms-repo/check.sh      # else `helm` from PATH
#
# With KMS_CHECK_KUBECONFIG=<file> every render is also sent to that cluster with
# `kubectl apply --dry-run=server` (namespace default, nothing is stored), so the API server
# validates fields that helm cannot (e.g. hugepages without cpu/memory). kubectl: $KUBECTL or PATH.
set -euo pipefail

HELM=${HELM:-helm}
if ! command -v "$HELM" >/dev/null 2>&1; then
  echo "check.sh: helm not found (set HELM or put helm on PATH)" >&2
  exit 2
fi
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHART=$REPO/charts/kms-core
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# Keep helm off the caller's config and cache.
export HELM_CONFIG_HOME=${HELM_CONFIG_HOME:-$T/helm/config}
export HELM_CACHE_HOME=${HELM_CACHE_HOME:-$T/helm/cache}
export HELM_DATA_HOME=${HELM_DATA_HOME:-$T/helm/data}

FAILS=0
CASE=""
fail() { echo "FAIL [$CASE] $*" >&2; FAILS=$((FAILS + 1)); }
pass() { echo "ok   [$CASE] $*"; }

# render NAME RELEASE ARGS...: helm template into $T/NAME.yaml.
render() {
  local name=$1 release=$2
  shift 2
  CASE=$name
  if "$HELM" template "$release" "$CHART" "$@" >"$T/$name.yaml" 2>"$T/$name.err"; then
    pass "renders"
  else
    fail "helm template failed: $(cat "$T/$name.err")"
    : >"$T/$name.yaml"
    return
  fi
  # ServiceMonitor needs the Prometheus Operator CRD, which a test cluster lacks.
  if [[ -n "${KMS_CHECK_KUBECONFIG:-}" ]] && ! grep -q '^kind: ServiceMonitor' "$T/$name.yaml"; then
    if "${KUBECTL:-kubectl}" --kubeconfig "$KMS_CHECK_KUBECONFIG" -n default apply --dry-run=server \
      -f "$T/$name.yaml" >"$T/$name.dry" 2>&1; then
      pass "API server accepts it (dry run)"
    else
      fail "API server refuses it: $(grep -v 'created (server dry run)' "$T/$name.dry")"
    fi
  fi
}

# doc KIND NAME: the rendered document of that kind whose metadata.name is NAME.
doc() {
  awk -v kind="$1" -v name="$2" '
    function flush() { if (k == kind && n == name) printf "%s", buf; buf = ""; k = ""; n = "" }
    /^---/ { flush(); next }
    { buf = buf $0 "\n" }
    /^kind: / && k == "" { k = $2 }
    /^  name: / && n == "" { n = $2 }
    END { flush() }
  ' "$T/$CASE.yaml"
}

# kinds: "Kind/name" of every rendered document, sorted.
kinds() {
  awk '
    function flush() { if (k != "") print k "/" n; k = ""; n = "" }
    /^---/ { flush(); next }
    /^kind: / && k == "" { k = $2 }
    /^  name: / && n == "" { n = $2 }
    END { flush() }
  ' "$T/$CASE.yaml" | sort
}

# only "Kind/name"...: exactly these documents are rendered.
only() {
  local want got
  want=$(printf '%s\n' "$@" | sort)
  got=$(kinds)
  if [[ "$want" == "$got" ]]; then pass "renders exactly: $*"; else fail "documents: want [$(echo $want)] got [$(echo $got)]"; fi
}

# has KIND NAME ERE...: every pattern matches a line of that document.
has() {
  local kind=$1 name=$2 d p
  shift 2
  d=$(doc "$kind" "$name")
  if [[ -z "$d" ]]; then fail "$kind/$name not rendered"; return; fi
  for p in "$@"; do
    if grep -Eq -- "$p" <<<"$d"; then pass "$kind/$name has /$p/"; else fail "$kind/$name lacks /$p/"; fi
  done
}

# lacks KIND NAME ERE...: no pattern matches that document.
lacks() {
  local kind=$1 name=$2 d p
  shift 2
  d=$(doc "$kind" "$name")
  if [[ -z "$d" ]]; then fail "$kind/$name not rendered"; return; fi
  for p in "$@"; do
    if grep -Eq -- "$p" <<<"$d"; then fail "$kind/$name has unwanted /$p/"; else pass "$kind/$name lacks /$p/"; fi
  done
}

# nowhere ERE...: no rendered line matches.
nowhere() {
  local p
  for p in "$@"; do
    if grep -Eq -- "$p" "$T/$CASE.yaml"; then fail "unwanted /$p/ in: $(grep -Em1 -- "$p" "$T/$CASE.yaml")"; else pass "nowhere /$p/"; fi
  done
}

# count KIND NAME ERE N: the pattern matches exactly N lines of that document.
count() {
  local c
  c=$(doc "$1" "$2" | grep -Ec -- "$3" || true)
  if [[ "$c" == "$4" ]]; then pass "$1/$2: $4 x /$3/"; else fail "$1/$2: /$3/ matches $c lines, want $4"; fi
}

# containers KIND NAME "a b c": the pod's containers (initContainers not included), in order.
containers() {
  local got
  got=$(doc "$1" "$2" | awk '/^      initContainers:/ {s = 0} /^      containers:/ {s = 1; next} /^      [a-zA-Z]/ {s = 0} s && /^        - name: / {printf "%s ", $3}' | sed 's/ $//')
  if [[ "$got" == "$3" ]]; then pass "$1/$2 containers: $3"; else fail "$1/$2 containers: want [$3] got [$got]"; fi
}
initcontainers() {
  local got
  got=$(doc "$1" "$2" | awk '/^      initContainers:/ {s = 1; next} /^      [a-zA-Z]/ {s = 0} s && /^        - name: / {printf "%s ", $3}' | sed 's/ $//')
  if [[ "$got" == "$3" ]]; then pass "$1/$2 initContainers: $3"; else fail "$1/$2 initContainers: want [$3] got [$got]"; fi
}

# toml_ok: every config.toml in the render parses (when python3 has tomllib).
toml_ok() {
  if ! python3 -c 'import tomllib' 2>/dev/null; then pass "TOML not checked (no python3 tomllib)"; return; fi
  if python3 - "$T/$CASE.yaml" <<'PY'; then pass "config.toml parses"; else fail "config.toml does not parse"; fi
import re, sys, tomllib
text = open(sys.argv[1]).read()
blocks = re.findall(r"^  config\.toml: \|\n((?:    .*\n|\n)*)", text, re.M)
for b in blocks:
    tomllib.loads("\n".join(l[4:] for l in b.splitlines()))
sys.exit(0 if blocks else 1)
PY
}

# --- The toolkit's generated files (§4 steps 6d, 6e) -------------------------------------------

CORE_IMG=hub.zama.org/ghcr/zama-ai/kms/core-service
ENCLAVE_IMG=hub.zama.org/ghcr/zama-ai/kms/core-service-enclave
CLIENT_IMG=hub.zama.org/ghcr/zama-ai/kms/core-client

# peers N PREFIX FILE
peers() {
  local i
  {
    echo "kmsCore:"
    echo "  thresholdMode:"
    echo "    peersList:"
    for ((i = 1; i <= $1; i++)); do
      printf '      - id: %d\n        host: %s-%d-core-%d\n        port: 50001\n' "$i" "$2" "$i" "$i"
    done
  } >"$3"
}

# override FILE CORE_IMAGE TAG SA_OR_EMPTY TOL_KEY TOL_VALUE ENCLAVE_THRESHOLD MAJ REC GEN_KEYS
override() {
  local f=$1 img=$2 tag=$3 sa=$4 tkey=$5 tval=$6 enc=$7 maj=$8 rec=$9 gen=${10}
  {
    echo "kmsCore:"
    echo "  image:"
    echo "    name: $img"
    echo "    tag: $tag"
    if [[ -n "$sa" ]]; then
      echo "  serviceAccountName: $sa"
      echo "  envFrom:"
      echo "    configmap:"
      echo "      name: $sa"
      echo "  tolerations:"
      echo "    - key: $tkey"
      echo "      effect: NoSchedule"
      echo "      operator: Equal"
      echo "      value: $tval"
    fi
    if [[ "$enc" == true ]]; then
      # The inventory's sketch puts trustedReleases beside tls; the chart (and the toolkit's
      # aws-perf --set) read thresholdMode.tls.trustedReleases, so it goes there.
      echo "  thresholdMode:"
      echo "    tls:"
      echo "      enabled: true"
      echo "      trustedReleases:"
      echo "        - pcr0: aaaa0000"
      echo "          pcr1: bbbb1111"
      echo "          pcr2: cccc2222"
    fi
    echo "kmsCoreClient:"
    echo "  image:"
    echo "    name: $CLIENT_IMG"
    echo "    tag: $tag"
    if [[ -n "$sa" ]]; then
      echo "  envFrom:"
      echo "    configmap:"
      echo "      name: $sa"
      echo "  tolerations:"
      echo "    - key: karpenter.sh/nodepool"
      echo "      effect: NoSchedule"
      echo "      operator: Equal"
      echo "      value: zws-pool"
    fi
    echo "  num_majority: $maj"
    echo "  num_reconstruct: $rec"
    echo "kmsGenCertAndKeys:"
    echo "  enabled: $gen"
  } >"$f"
}

# party_sets ID THRESHOLD_VALUE: the per-party --set flags of deploy_threshold_mode.
party_sets() {
  echo --set "kmsPeers.id=$1" --set kmsCoreClient.image.tag=v-client \
    --set "kmsCore.publicVault.s3.prefix=PUB-p$1" --set "kmsCore.privateVault.s3.prefix=PRIV-p$1" \
    --set "kmsCore.backupVault.s3.prefix=BACKUP-p$1" --set "kmsCore.thresholdMode.thresholdValue=$2"
}

KT=$REPO/ci/kube-testing/kms
DEV=$REPO/ci/values/overrides/dev-minimal.yaml
NS=kms-test

# --- Files the toolkit reads -----------------------------------------------------------------

CASE=files
for t in threshold thresholdWithEnclave centralized centralizedWithEnclave; do
  s=kms-ci; [[ $t == *Enclave* ]] && s=kms-enclave-ci
  for f in "ci/pr-preview/$t/kms-service/values-kms-ci.yaml" "ci/pr-preview/$t/kms-service/values-kms-service-init-kms-ci.yaml" \
    "ci/pr-preview/$t/tkms-infra/values-kms-ci.yaml" "ci/perf-testing/$t/kms-ci/kms-service/values-$s.yaml" \
    "ci/perf-testing/$t/kms-ci/kms-service/values-kms-service-init-$s.yaml" "ci/perf-testing/$t/kms-ci/tkms-infra/values-$s.yaml"; do
    [[ -f "$REPO/$f" ]] || fail "missing $f"
  done
done
for f in ci/kube-testing/kms/values-kms-test.yaml ci/kube-testing/kms/values-kms-service-init-kms-test.yaml \
  ci/kube-testing/infra/kind-config.yaml ci/kube-testing/infra/localstack-s3-values.yaml \
  ci/kube-testing/infra/kube-prometheus-stack-values.yaml ci/values/overrides/dev-minimal.yaml \
  ci/pr-preview/registry-credential/values-kms-ci.yaml ci/perf-testing/registry-credential/values-kms-ci.yaml \
  rust-toolchain.toml docker/core/service/Dockerfile docker/core-client/Dockerfile; do
  [[ -f "$REPO/$f" ]] || fail "missing $f"
done
# deploy.sh: RUST_IMAGE_VERSION=$(grep channel rust-toolchain.toml | awk -F'"' '{print $2}')
rv=$(grep channel "$REPO/rust-toolchain.toml" | awk -F'"' '{print $2}')
[[ "$rv" =~ ^[0-9]+\.[0-9]+(\.[0-9]+)?$ ]] && pass "toolchain version $rv" || fail "toolkit reads toolchain version [$rv]"
# kind-local's resource prompt: first memory after the first resources: (grep -A 10).
mem=$(grep -A 10 "resources:" "$KT/values-kms-test.yaml" | grep "memory:" | head -1 | awk '{print $2}' | sed 's/Gi//')
[[ "$mem" == 24 ]] && pass "kind core memory 24Gi" || fail "kind core memory read as [$mem]"
cpu=$(grep -A 10 "resources:" "$KT/values-kms-test.yaml" | grep "cpu:" | head -1 | awk '{print $2}')
[[ "$cpu" == 12 ]] && pass "kind core cpu 12" || fail "kind core cpu read as [$cpu]"
grep -q "storageClassName: gp3" "$KT/values-kms-test.yaml" && pass "kind storageClass gp3 (quirk kept)" || fail "kind storageClass gp3 missing"
for f in $(cd "$REPO" && find ci charts -name '*.yaml' -o -name '*.tpl' | sort) rust-toolchain.toml docker/core/service/Dockerfile docker/core-client/Dockerfile; do
  head -3 "$REPO/$f" | grep -q "stand-in written from the kms-toolkit inventory" || fail "$f: no stand-in header"
done
grep -q "deploymentType: centralizedWithEnclave" "$REPO/ci/pr-preview/centralized/tkms-infra/values-kms-ci.yaml" \
  && pass "centralized tkms-infra copy-paste quirk kept" || fail "centralized tkms-infra quirk missing"
[[ $(grep -c "host: kms-service-threshold-.*-kms-ci-core-" "$REPO/ci/perf-testing/threshold/kms-ci/kms-service/values-kms-service-init-kms-ci.yaml") == 13 ]] \
  && pass "stale 13-entry perf peersList kept" || fail "stale perf peersList missing"

# --- lint ------------------------------------------------------------------------------------

CASE=lint
"$HELM" lint "$CHART" >"$T/lint.out" 2>&1 && pass "defaults" || fail "helm lint: $(cat "$T/lint.out")"
"$HELM" lint "$CHART" -f "$KT/values-kms-test.yaml" --set kmsPeers.id=3 >"$T/lint.out" 2>&1 && pass "kind values" || fail "helm lint kind: $(cat "$T/lint.out")"
"$HELM" lint "$CHART" -f "$REPO/ci/pr-preview/thresholdWithEnclave/kms-service/values-kms-ci.yaml" \
  --set kmsGenCertAndKeys.enabled=true >"$T/lint.out" 2>&1 && pass "enclave values" || fail "helm lint enclave: $(cat "$T/lint.out")"

# --- Chart defaults: a plain install -------------------------------------------------------------

render defaults kms-core-1
only ConfigMap/kms-core-1-core-config Service/kms-core-1-core Service/kms-core-1-core-1 \
  ServiceAccount/mpc-party StatefulSet/kms-core-1-core
has StatefulSet kms-core-1-core 'replicas: 1$' 'start: 1$' 'cpu: 250m' 'imagePullPolicy: Always' \
  "image: \"$CORE_IMG:v0.14.0\""
lacks StatefulSet kms-core-1-core 'storageClassName' 'limits:'
nowhere '^kind: ServiceMonitor' 'app.kubernetes.io/instance'
toml_ok

# --- kind: party 3 of 4 (kind-ci: base + peers + override + --set) ---------------------------------

peers 4 kms-core "$T/peers-kind.yaml"
override "$T/override-kind.yaml" "$CORE_IMG" latest-dev "" "" "" false 2 3 false
render kind-party-3 kms-core-3 -f "$KT/values-kms-test.yaml" -f "$T/peers-kind.yaml" -f "$T/override-kind.yaml" $(party_sets 3 1)
only ConfigMap/kms-core-3-core-config Service/kms-core-3-core Service/kms-core-3-core-3 StatefulSet/kms-core-3-core
has StatefulSet kms-core-3-core '^  name: kms-core-3-core$' 'replicas: 1$' 'start: 3$' 'podManagementPolicy: Parallel' \
  'serviceName: kms-core-3-core$' '^        app: kms-core$' '^        app.kubernetes.io/name: kms-core-3-core$' \
  'checksum/config: [0-9a-f]{64}$' 'serviceAccountName: mpc-party$' '^        - name: registry-credentials$' \
  "image: \"$CORE_IMG:latest-dev\"" 'imagePullPolicy: Always' 'cpu: 12$' 'memory: 24Gi$' \
  'storageClassName: gp3$' 'storage: 10Gi$' 'port: 50100$'
lacks StatefulSet kms-core-3-core 'tolerations:' 'envFrom:' 'nodeSelector:' 'app.kubernetes.io/instance' 'kms-core-service'
initcontainers StatefulSet kms-core-3-core "kms-core-init-load-env kms-core-init-gen-keys"
containers StatefulSet kms-core-3-core "kms-core"
has ConfigMap kms-core-3-core-config 'helm.sh/hook: pre-install,pre-upgrade$' 'helm.sh/hook-weight: "-2"$' '^    app: kms-core$' \
  'my_id = 3$' 'threshold = 1$' 'num_sessions_preproc = 2$' 's3_endpoint = "http://localstack:4566"' \
  'bucket = "kms-public"' 'prefix = "PUB-p3"' 'prefix = "PRIV-p3"' 'prefix = "BACKUP-p3"' 'deployment_profile = "kind-ci"' \
  'address = "kms-core-1-core-1"' 'address = "kms-core-4-core-4"' 'port = 50001$'
count ConfigMap kms-core-3-core-config '^    \[\[threshold.peers\]\]' 4
lacks ConfigMap kms-core-3-core-config 'threshold.tls' 'KMS_CORE__'
has Service kms-core-3-core 'clusterIP: None' 'port: 50100' 'port: 50001' 'port: 9646'
has Service kms-core-3-core-3 'type: ClusterIP' 'statefulset.kubernetes.io/pod-name: kms-core-3-core-3' 'port: 50100' 'port: 50001' 'port: 9646'
nowhere 'app.kubernetes.io/instance'
toml_ok

# Party 1 owns the shared mpc-party ServiceAccount.
render kind-party-1 kms-core-1 -f "$KT/values-kms-test.yaml" -f "$T/peers-kind.yaml" -f "$T/override-kind.yaml" $(party_sets 1 1)
has ServiceAccount mpc-party '^    app: kms-core$'
has StatefulSet kms-core-1-core 'start: 1$'

# kind-local adds dev-minimal.yaml after the override.
render kind-local-party-2 kms-core-2 -f "$KT/values-kms-test.yaml" -f "$T/peers-kind.yaml" -f "$T/override-kind.yaml" \
  $(party_sets 2 1) -f "$DEV"
has StatefulSet kms-core-2-core 'cpu: 500m$' 'memory: 1Gi$' 'storageClassName: gp3$'
has ConfigMap kms-core-2-core-config 'num_sessions_preproc = 1$'

# kind with TLS: the toolkit's --set; certs come from the host, not the Job.
render kind-tls-party-2 kms-core-2 -f "$KT/values-kms-test.yaml" -f "$T/peers-kind.yaml" -f "$T/override-kind.yaml" \
  $(party_sets 2 1) --set kmsCore.thresholdMode.tls.enabled=true
has ConfigMap kms-core-2-core-config '^    \[threshold.tls.manual\]' 'PUB-p2/CACert/cert.pem' 'PUB-p2/PrivateKey/key.pem' 'PUB-p4/CACert/cert.pem'
nowhere 'kind: Job'
toml_ok

# The cert Job on kind (a kmsctl option, not a toolkit path): LocalStack, and no chart-made SA,
# which would not exist yet while pre-install hooks run.
render kind-certjob-party-1 kms-core-1 -f "$KT/values-kms-test.yaml" -f "$T/peers-kind.yaml" -f "$T/override-kind.yaml" \
  $(party_sets 1 1) --set kmsCore.thresholdMode.tls.enabled=true --set kmsGenCertAndKeys.enabled=true
has Job kms-core-1-gen-cert-and-keys 'aws s3 --endpoint-url http://localstack:4566 cp .* "s3://kms-public/PUB-p1/CACert/cert.pem"'
lacks Job kms-core-1-gen-cert-and-keys 'serviceAccountName'

# Metrics on: the ServiceMonitor appears only then.
render kind-metrics kms-core-1 -f "$KT/values-kms-test.yaml" -f "$T/peers-kind.yaml" -f "$T/override-kind.yaml" \
  $(party_sets 1 1) --set kmsCore.serviceMonitor.enabled=true --set kmsCore.serviceMonitor.metricNamePrefix=ci_
has ServiceMonitor kms-core-1-core 'app.kubernetes.io/name: kms-core-1-core' 'port: metrics' 'replacement: "ci_\$1"'

# --- kind: the init release ------------------------------------------------------------------

render kind-init kms-core-init -f "$KT/values-kms-service-init-kms-test.yaml" -f "$T/peers-kind.yaml" \
  -f "$T/override-kind.yaml" --set kmsGenCertAndKeys.enabled=false
only Job/kms-core-init-threshold-init
has Job kms-core-init-threshold-init '^    app: kms-threshold-init-job$' '^        app: kms-threshold-init-job$' \
  'helm.sh/hook: post-install,post-upgrade$' 'helm.sh/hook-weight: "0"$' 'restartPolicy: Never' \
  'grpc_health_probe' 'kms-core-1-core-1:50100 kms-core-2-core-2:50100 kms-core-3-core-3:50100 kms-core-4-core-4:50100' \
  '- "1200"$' 'bin/kms-init' '- "http://kms-core-4-core-4:50100"$' "image: \"$CORE_IMG:latest-dev\""
lacks Job kms-core-init-threshold-init 'hook-delete-policy'
count Job kms-core-init-threshold-init '^            - "http://kms-core-[0-9]-core-[0-9]:50100"$' 4
initcontainers Job kms-core-init-threshold-init "kms-threshold-init-wait-peers"

# --- kind: centralized -----------------------------------------------------------------------

override "$T/override-central.yaml" "$CORE_IMG" latest-dev "" "" "" false 1 1 false
render kind-centralized kms-core -f "$KT/values-kms-test.yaml" -f "$T/override-central.yaml" --set kmsPeers.id=1 \
  --set kmsCore.thresholdMode.enabled=false --set kmsCoreClient.image.tag=v-client --set kmsCoreClient.nameOverride=kms-core-client
only ConfigMap/kms-core-core-config Service/kms-core-core Service/kms-core-core-1 ServiceAccount/mpc-party StatefulSet/kms-core-core
has StatefulSet kms-core-core 'start: 1$' '^        app.kubernetes.io/name: kms-core-core$'
initcontainers StatefulSet kms-core-core "kms-core-init-load-env kms-core-init-gen-keys"
has StatefulSet kms-core-core '- centralized$'
has Service kms-core-core-1 'statefulset.kubernetes.io/pod-name: kms-core-core-1'
lacks ConfigMap kms-core-core-config '\[threshold\]'
toml_ok

# --- aws-ci: thresholdWithEnclave party 2 ------------------------------------------------------

NS=kms-ci-octocat-42
PR=$REPO/ci/pr-preview
peers 4 kms-core "$T/peers-aws.yaml"
override "$T/override-enclave.yaml" "$ENCLAVE_IMG" v-core "$NS-1" app "$NS" true 2 3 true
render aws-ci-enclave-2 kms-core-2 -f "$PR/thresholdWithEnclave/kms-service/values-kms-ci.yaml" -f "$T/peers-aws.yaml" \
  -f "$T/override-enclave.yaml" $(party_sets 2 1) --set "kmsCore.serviceAccountName=$NS-2" --set "kmsCore.envFrom.configmap.name=$NS-2"
only ConfigMap/kms-core-2-core-config Job/kms-core-2-gen-cert-and-keys Service/kms-core-2-core Service/kms-core-2-core-2 StatefulSet/kms-core-2-core
initcontainers StatefulSet kms-core-2-core "kms-core-init-load-env"
containers StatefulSet kms-core-2-core "kms-core-enclave kms-core-enclave-logger enclave-web-identity-token enclave-network-tunnel"
has StatefulSet kms-core-2-core 'start: 2$' "serviceAccountName: $NS-2$" "name: $NS-2$" "image: \"$ENCLAVE_IMG:v-core\"" \
  'key: app$' "value: $NS$" 'effect: NoSchedule' 'aws.ec2.amazonaws.com/nitro_enclaves: "1"' 'hugepages-1Gi: 16Gi' \
  'storageClassName: gp3$'
lacks StatefulSet kms-core-2-core 'kms-core-init-gen-keys' 'serviceAccountName: mpc-party'
has ConfigMap kms-core-2-core-config '^    \[threshold.tls.auto\]' 'pcr0 = "aaaa0000"' 'pcr2 = "cccc2222"' \
  'bucket = "\$\{KMS_CORE__PUBLIC_VAULT__STORAGE__S3__BUCKET\}"' 'prefix = "PUB-p2"' '\[private_vault.keychain.aws_kms\]'
lacks ConfigMap kms-core-2-core-config 's3_endpoint' 'threshold.tls.manual'
has Job kms-core-2-gen-cert-and-keys '^    app: kms-core$' 'helm.sh/hook: pre-install$' 'helm.sh/hook-weight: "-1"$' \
  'helm.sh/hook-delete-policy: hook-succeeded$' '- name: kms-gen-cert-and-keys-enclave$' "serviceAccountName: $NS-2$" \
  "value: $NS$" '--party-id 2$' 'hugepages-1Gi: 16Gi' 'memory: 4Gi$'
nowhere 'app.kubernetes.io/instance' 'mpc-party'
toml_ok

# aws-ci threshold (no enclave, TLS through --set): the plain cert Job uploads to PUB-p<i>.
override "$T/override-threshold.yaml" "$CORE_IMG" v-core "$NS-1" karpenter.sh/nodepool kms-bench-spot-64 false 2 3 true
render aws-ci-threshold-4 kms-core-4 -f "$PR/threshold/kms-service/values-kms-ci.yaml" -f "$T/peers-aws.yaml" \
  -f "$T/override-threshold.yaml" $(party_sets 4 1) --set kmsCore.thresholdMode.tls.enabled=true \
  --set "kmsCore.serviceAccountName=$NS-4" --set "kmsCore.envFrom.configmap.name=$NS-4"
containers StatefulSet kms-core-4-core "kms-core"
has StatefulSet kms-core-4-core 'start: 4$' 'key: karpenter.sh/nodepool$' 'value: kms-bench-spot-64$' "serviceAccountName: $NS-4$"
has Job kms-core-4-gen-cert-and-keys '- name: kms-gen-cert-and-keys$' 'PUB-p4/CACert/cert.pem' 'PUB-p4/PrivateKey/key.pem' \
  's3://\$\{KMS_CORE__PUBLIC_VAULT__STORAGE__S3__BUCKET\}/PUB-p4'
has ConfigMap kms-core-4-core-config '^    \[threshold.tls.manual\]'
toml_ok

# aws-ci init release: init Job + the core client.
render aws-ci-init kms-core-init -f "$PR/threshold/kms-service/values-kms-service-init-kms-ci.yaml" -f "$T/peers-aws.yaml" \
  -f "$T/override-threshold.yaml" --set kmsGenCertAndKeys.enabled=false
only ConfigMap/kms-core-client-config Job/kms-core-init-threshold-init StatefulSet/kms-core-client
has StatefulSet kms-core-client 'replicas: 1$' '^        app: kms-core-client$' "image: \"$CLIENT_IMG:v-core\"" \
  'key: karpenter.sh/nodepool$' 'value: zws-pool$' "name: $NS-1$" 'mountPath: /app/kms-core-client/config.toml'
has ConfigMap kms-core-client-config '^    app: kms-core-client$' 'num_majority = 2$' 'num_reconstruct = 3$' \
  'address = "kms-core-4-core-4:50100"' 'object_folder = "PUB-p4"'
count ConfigMap kms-core-client-config '^    \[\[cores\]\]' 4
has Job kms-core-init-threshold-init 'value: kms-pool$' 'karpenter.sh/nodepool: kms-pool$'
toml_ok

# aws-ci centralized: one release with the client, no init, no cert Job.
override "$T/override-central-aws.yaml" "$CORE_IMG" v-core "$NS-1" karpenter.sh/nodepool kms-bench-spot-64 false 1 1 false
render aws-ci-centralized kms-core -f "$PR/centralized/kms-service/values-kms-ci.yaml" -f "$T/override-central-aws.yaml" \
  --set kmsPeers.id=1 --set kmsCore.thresholdMode.enabled=false --set kmsCoreClient.image.tag=v-client \
  --set kmsCoreClient.nameOverride=kms-core-client --set "kmsCore.serviceAccountName=$NS-1" --set "kmsCore.envFrom.configmap.name=$NS-1"
only ConfigMap/kms-core-client-config ConfigMap/kms-core-core-config Service/kms-core-core Service/kms-core-core-1 \
  StatefulSet/kms-core-client StatefulSet/kms-core-core
has StatefulSet kms-core-client "image: \"$CLIENT_IMG:v-client\"" 'value: zws-pool$'
has ConfigMap kms-core-client-config 'kms_type = "centralized"' 'address = "kms-core-core-1:50100"'
toml_ok

# aws-ci centralizedWithEnclave: the cert/signing-key Job is always on.
override "$T/override-central-enclave.yaml" "$ENCLAVE_IMG" v-core "$NS-1" app "$NS" false 1 1 true
render aws-ci-centralized-enclave kms-core -f "$PR/centralizedWithEnclave/kms-service/values-kms-ci.yaml" \
  -f "$T/override-central-enclave.yaml" --set kmsPeers.id=1 --set kmsCore.thresholdMode.enabled=false \
  --set kmsCoreClient.image.tag=v-client --set kmsCoreClient.nameOverride=kms-core-client \
  --set "kmsCore.serviceAccountName=$NS-1" --set "kmsCore.envFrom.configmap.name=$NS-1"
has Job kms-core-gen-cert-and-keys 'helm.sh/hook: pre-install$' '- name: kms-gen-cert-and-keys-enclave$'
containers StatefulSet kms-core-core "kms-core-enclave kms-core-enclave-logger enclave-web-identity-token enclave-network-tunnel"

# --- aws-perf: party 13 of 13, perf values AFTER the override ---------------------------------

PT=$REPO/ci/perf-testing
S=kms-ci
peers 13 kms-core "$T/peers-perf.yaml"
override "$T/override-perf.yaml" "$CORE_IMG" v-core "$S-1" karpenter.sh/nodepool kms-bench-spot-64 false 5 9 true
render aws-perf-13 kms-core-13 -f "$T/peers-perf.yaml" -f "$T/override-perf.yaml" $(party_sets 13 4) \
  -f "$PT/threshold/kms-ci/kms-service/values-$S.yaml" --set "kmsCore.serviceAccountName=$S-13" \
  --set "kmsCore.envFrom.configmap.name=$S-13" --set kmsCore.image.tag=v-core \
  --set kmsCore.thresholdMode.tls.enabled=true --set kmsGenCertAndKeys.enabled=true
only ConfigMap/kms-core-13-core-config Job/kms-core-13-gen-cert-and-keys Service/kms-core-13-core Service/kms-core-13-core-13 StatefulSet/kms-core-13-core
has StatefulSet kms-core-13-core 'start: 13$' "image: \"$CORE_IMG:v-core\"" "serviceAccountName: $S-13$" 'cpu: 12$' \
  'memory: 24Gi$' 'value: kms-bench-spot-64$'
has ConfigMap kms-core-13-core-config 'my_id = 13$' 'threshold = 4$' 'prefix = "PUB-p13"' 'deployment_profile = "aws-perf"'
count ConfigMap kms-core-13-core-config '^    \[\[threshold.peers\]\]' 13
nowhere '<version>'
toml_ok

# Without the re-applied --set the perf file's placeholder wins over the override: the reason
# the toolkit passes kmsCore.image.tag again.
render aws-perf-placeholder kms-core-13 -f "$T/peers-perf.yaml" -f "$T/override-perf.yaml" $(party_sets 13 4) \
  -f "$PT/threshold/kms-ci/kms-service/values-$S.yaml"
has StatefulSet kms-core-13-core "image: \"$CORE_IMG:<version>\""

# aws-perf init: the generated peers file replaces the stale list.
render aws-perf-init kms-core-init -f "$PT/threshold/kms-ci/kms-service/values-kms-service-init-$S.yaml" \
  -f "$T/peers-perf.yaml" -f "$T/override-perf.yaml" --set kmsGenCertAndKeys.enabled=false
only ConfigMap/kms-core-client-threshold-staging-config Job/kms-core-init-threshold-init StatefulSet/kms-core-client-threshold-staging
count Job kms-core-init-threshold-init '^            - "http://kms-core-[0-9]+-core-[0-9]+:50100"$' 13
nowhere 'kms-service-threshold' '<version>'
has ConfigMap kms-core-client-threshold-staging-config 'num_majority = 5$' 'num_reconstruct = 9$'

# aws-perf thresholdWithEnclave party 7 with the PCRs through --set.
S=kms-enclave-ci
override "$T/override-perf-enclave.yaml" "$ENCLAVE_IMG" v-core "$S-1" app "$S" true 5 9 true
render aws-perf-enclave-7 kms-core-7 -f "$T/peers-perf.yaml" -f "$T/override-perf-enclave.yaml" $(party_sets 7 4) \
  -f "$PT/thresholdWithEnclave/kms-ci/kms-service/values-$S.yaml" --set "kmsCore.serviceAccountName=$S-7" \
  --set "kmsCore.envFrom.configmap.name=$S-7" --set kmsCore.image.tag=v-core \
  --set kmsCore.thresholdMode.tls.enabled=true --set kmsGenCertAndKeys.enabled=true \
  --set 'kmsCore.thresholdMode.tls.trustedReleases[0].pcr0=dddd' --set 'kmsCore.thresholdMode.tls.trustedReleases[0].pcr1=eeee' \
  --set 'kmsCore.thresholdMode.tls.trustedReleases[0].pcr2=ffff'
containers StatefulSet kms-core-7-core "kms-core-enclave kms-core-enclave-logger enclave-web-identity-token enclave-network-tunnel"
has StatefulSet kms-core-7-core 'start: 7$' "image: \"$ENCLAVE_IMG:v-core\"" "value: $S$" 'hugepages-1Gi: 96Gi'
has ConfigMap kms-core-7-core-config 'pcr0 = "dddd"' 'pcr2 = "ffff"'
has Job kms-core-7-gen-cert-and-keys "serviceAccountName: $S-7$"
toml_ok

# --- Result ----------------------------------------------------------------------------------

if ((FAILS > 0)); then
  echo "check.sh: $FAILS check(s) failed" >&2
  exit 1
fi
echo "check.sh: all checks passed ($("$HELM" version --short 2>/dev/null || echo helm))"
