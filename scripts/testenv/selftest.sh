#!/usr/bin/env bash
# Shell-level checks of the rehearsal stand-ins, as a playbook runs them (by the names kind and
# docker, first on PATH). Called by testenv.sh:
#
#   selftest.sh STANDINS_BINARY REHEARSE_SCRIPT   no cluster: the docker records, the kind
#                                                 stand-in's refusals, scripts/rehearse --which
#   selftest.sh --live ENV_FILE                   against a running kind-profile environment:
#                                                 create, build, load, a port-forward through the
#                                                 baseline, delete (the nodes as they were); on an
#                                                 eks-profile one: the AWS stand-ins (tkms-infra
#                                                 and sync-secrets installed with the perf values,
#                                                 enclave nodes, uninstall)
#
# Prints one line per check and closes with "selftest: N passed, M failed"; exit 1 if any failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KMS_REPO="$ROOT/tests/kms-repo"
KIND_CONFIG="$KMS_REPO/ci/kube-testing/infra/kind-config.yaml"
PASSED=0 FAILED=0
T="$(mktemp -d "${TMPDIR:-/tmp}/kmsctl-selftest.XXXXXX")"
PF_PID=""
cleanup() {
  if [[ -n "$PF_PID" ]]; then kill "$PF_PID" 2>/dev/null || true; fi
  rm -rf "$T"
}
trap cleanup EXIT

# check NAME WANT_RC GREP CMD...: run CMD, want exit WANT_RC and GREP (a fixed string, or ""
# for none) in its stdout+stderr.
check() {
  local name=$1 want=$2 grep=$3 rc=0; shift 3
  "$@" >"$T/out" 2>&1 || rc=$?
  if [[ "$rc" == "$want" ]] && { [[ -z "$grep" ]] || grep -qF -- "$grep" "$T/out"; }; then
    PASSED=$((PASSED + 1)); echo "  ok    $name"
  else
    FAILED=$((FAILED + 1)); echo "  FAIL  $name (exit $rc, want $want${grep:+, output with \"$grep\"}):"
    sed 's/^/        /' "$T/out" | tail -n 20
  fi
}
# expect NAME WANT GOT: a value comparison.
expect() {
  if [[ "$2" == "$3" ]]; then PASSED=$((PASSED + 1)); echo "  ok    $1"
  else FAILED=$((FAILED + 1)); echo "  FAIL  $1: got '$3', want '$2'"; fi
}
finish() {
  echo "selftest: $PASSED passed, $FAILED failed"
  (( FAILED == 0 ))
}

offline() {
  local bin=$1 rehearse=$2
  mkdir -p "$T/bin"
  ln -s "$bin" "$T/bin/kind"
  ln -s "$bin" "$T/bin/docker"
  export PATH="$T/bin:$PATH" TESTENV_DIR="$T/env" KUBECONFIG="$T/kubeconfig"
  unset TESTENV_KUBECONFIG KIND_CLUSTER_NAME REHEARSAL_PROFILE
  echo "stand-ins (no cluster):"
  check "kind version" 0 "kind v0.30.0-testenv" kind version
  check "kind get clusters: none yet" 0 "No kind clusters found." kind get clusters
  check "docker build of the KMS core Dockerfile" 0 "naming to core-service:latest-dev done" \
    docker buildx build --file "$KMS_REPO/docker/core/service/Dockerfile" --tag core-service:latest-dev \
    --build-arg RUST_IMAGE_VERSION=1.94 --load "$KMS_REPO"
  expect "its labels from the Dockerfile's LABEL and the build arg" "1.94" \
    "$(docker image inspect -f '{{index .Config.Labels "rust.image.version"}}' core-service:latest-dev)"
  check "image inspect of an absent image" 1 "Error response from daemon: No such image: absent:1" \
    docker image inspect absent:1
  check "a build whose context does not exist" 1 'unable to prepare context: path "/nonexistent" not found' \
    docker build /nonexistent
  check "pull" 0 "Status: Downloaded newer image for hub/kms/core-client:v1" docker pull hub/kms/core-client:v1
  echo "hub/kms/*:missing-*" > "$TESTENV_DIR/docker/missing"
  check "pull of an image listed in docker/missing" 1 "manifest for hub/kms/core-client:missing-1 not found" \
    docker pull hub/kms/core-client:missing-1
  check "manifest inspect of a listed image" 1 "no such manifest: hub/kms/x:missing-2" docker manifest inspect hub/kms/x:missing-2
  check "manifest inspect of any other" 0 '"schemaVersion": 2' docker manifest inspect hub/kms/x:v2
  check "an unsupported docker command" 1 "is not a command the testenv stand-in has" docker run busybox
  check "kind config: unknown field" 1 "field rol not found in type v1alpha4.Node" \
    kind create cluster --name x --config <(printf 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- rol: worker\n')
  check "kind config: invalid role" 1 '"boss" is not a valid node role' \
    kind create cluster --name x --config <(printf 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: boss\n')
  check "kind create without the environment's apiserver" 1 "ERROR: failed to create cluster: the test environment's kubeconfig" \
    kind create cluster --name kms-test --config "$KIND_CONFIG"
  check "kind load into no cluster" 1 'ERROR: no nodes found for cluster "kms-test"' \
    kind load docker-image core-service:latest-dev --name kms-test

  echo "scripts/rehearse --which (which profile and environment):"
  local base="$T/not-up"
  check "kind-*.rhai -> kind" 0 "profile kind (from the playbook's name" env TESTENV_DIR="$base" "$rehearse" --which playbooks/kind-local.rhai
  check "aws-*.rhai -> eks" 0 "profile eks" env TESTENV_DIR="$base" "$rehearse" --which playbooks/aws-perf.rhai --num-parties 13
  check "--target kind-ci -> kind" 0 "profile kind (from --target kind-ci)" env TESTENV_DIR="$base" "$rehearse" --which playbooks/deploy.rhai --target kind-ci
  check "--target=aws-ci -> eks" 0 "profile eks (from --target aws-ci)" env TESTENV_DIR="$base" "$rehearse" --which playbooks/deploy.rhai --target=aws-ci
  check "otherwise generic" 0 "profile generic" env TESTENV_DIR="$base" "$rehearse" --which playbooks/deploy.rhai
  check "REHEARSAL_PROFILE wins" 0 "profile generic (from REHEARSAL_PROFILE)" env TESTENV_DIR="$base" REHEARSAL_PROFILE=generic "$rehearse" --which playbooks/kind-local.rhai
  check "an environment that is not up is brought up there" 0 "environment $base (to bring up)" env TESTENV_DIR="$base" "$rehearse" --which playbooks/kind-local.rhai
  check "an unknown profile" 2 "no profile 'nope'" env TESTENV_DIR="$base" REHEARSAL_PROFILE=nope "$rehearse" --which x.rhai
}

# until_reason NS POD REASON: wait up to 10s for the pod's first container to wait for REASON;
# prints the reason it has then.
until_reason() {
  local _ got=""
  for _ in $(seq 100); do
    got="$("$k" -n "$1" get pod "$2" -o jsonpath='{.status.containerStatuses[0].state.waiting.reason}' 2>/dev/null || true)"
    [[ "$got" == "$3" ]] && break
    sleep 0.1
  done
  echo "$got"
}

# The live checks, on a running kind-profile environment.
live() {
  local envfile=$1
  # shellcheck source=/dev/null
  source "$envfile"
  local kc="$T/kubeconfig" name=livecheck ns=livecheck-pf
  k="$TESTENV_DIR/bin/kubectl"
  local img="livecheck/core-service:$$"   # a tag of its own: the environment's records stay as they were
  kubectl --kubeconfig "$TESTENV_KUBECONFIG" config view --flatten >"$kc"
  export KUBECONFIG="$kc" PATH="$TESTENV_STANDINS:$PATH"
  unset KIND_CLUSTER_NAME
  echo "stand-ins on $TESTENV_DIR ($TESTENV_PROFILE profile):"
  check "no kind cluster exists yet" 0 "No kind clusters found." kind get clusters
  if [[ -n "$(kind get clusters 2>/dev/null)" ]]; then
    echo "  livecheck needs an environment without a kind cluster: delete it first" \
      "(PATH=\$TESTENV_STANDINS:\$PATH KUBECONFIG=<its kubeconfig> kind delete cluster --name $(kind get clusters 2>/dev/null | head -n1))"
    return 0
  fi
  check "kind create cluster with the KMS kind config" 0 'Set kubectl context to "kind-livecheck"' \
    kind create cluster --name "$name" --config "$KIND_CONFIG" --wait 30s
  expect "its context is current" "kind-$name" "$("$k" config current-context)"
  expect "the worker's allocatable memory less system-reserved and eviction" "259996Mi" \
    "$("$k" get node kind-worker -o jsonpath='{.status.allocatable.memory}')"
  check "a second create of the same name" 1 'node(s) already exist for a cluster with the name "livecheck"' \
    kind create cluster --name "$name" --config "$KIND_CONFIG"
  check "docker build" 0 "" docker buildx build -f "$KMS_REPO/docker/core/service/Dockerfile" -t "$img" \
    --build-arg RUST_IMAGE_VERSION=1.94 --load "$KMS_REPO"
  # Image pulls as a kubelet does them: Never needs the image on the node.
  "$k" create namespace "$ns" >/dev/null
  "$k" -n "$ns" run core --image="$img" --image-pull-policy=Never --port=50100 >/dev/null
  expect "a Never pod before the image is loaded" "ErrImageNeverPull" "$(until_reason "$ns" core ErrImageNeverPull)"
  check "kind load docker-image onto the worker" 0 'not yet present on node "livecheck-worker", loading...' \
    kind load docker-image "$img" --name "$name" --nodes "$name-worker"
  expect "the worker's status.images lists it" "$img" \
    "$("$k" get node kind-worker -o jsonpath='{.status.images[*].names[0]}')"
  check "the pod becomes Ready once it is" 0 "condition met" "$k" -n "$ns" wait --for=condition=Ready pod/core --timeout=60s
  # A pull of an image the registry records lack fails until they have it.
  echo "$img-never-pushed" >>"$TESTENV_DIR/docker/missing"
  "$k" -n "$ns" run pulled --image="$img-never-pushed" --image-pull-policy=Always >/dev/null
  expect "an Always pod whose image docker/missing names" "ImagePullBackOff" "$(until_reason "$ns" pulled ImagePullBackOff)"
  { grep -vxF "$img-never-pushed" "$TESTENV_DIR/docker/missing" || true; } >"$T/missing"
  cat "$T/missing" >"$TESTENV_DIR/docker/missing"
  check "and Ready once the list lets it through" 0 "condition met" "$k" -n "$ns" wait --for=condition=Ready pod/pulled --timeout=60s

  # A Service with no forward of its own: the baseline answers through kwok.
  "$k" -n "$ns" expose pod core --port=50100 >/dev/null
  for _ in $(seq 50); do
    "$k" get clusterportforward testenv-baseline -o jsonpath='{.spec.selector.matchNamespaces}' | grep -q "\"$ns\"" && break
    sleep 0.1
  done
  check "the baseline covers the new namespace" 0 "\"$ns\"" "$k" get clusterportforward testenv-baseline -o jsonpath='{.spec.selector.matchNamespaces}'
  "$k" -n "$ns" port-forward svc/core 0:50100 >"$T/pf.log" 2>&1 &
  PF_PID=$!
  local port=""
  for _ in $(seq 100); do
    port="$(sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\) .*/\1/p' "$T/pf.log" | head -n1)"
    [[ -n "$port" ]] && break
    sleep 0.1
  done
  check "GET / through kubectl port-forward svc/core 0:50100" 0 "testenv port-forward baseline" \
    curl -fsS --max-time 10 "http://127.0.0.1:$port/"
  kill "$PF_PID" 2>/dev/null || true
  wait "$PF_PID" 2>/dev/null || true
  PF_PID=""

  check "rehearse --which reuses an environment of the same profile" 0 "environment $TESTENV_DIR (up, kind profile: reused)" \
    env TESTENV_DIR="$TESTENV_DIR" "$ROOT/scripts/rehearse" --which playbooks/kind-local.rhai
  check "and picks another for another profile" 0 "environment $TESTENV_DIR-generic" \
    env TESTENV_DIR="$TESTENV_DIR" "$ROOT/scripts/rehearse" --which playbooks/deploy.rhai

  check "kind delete cluster" 0 'Deleted nodes: ["livecheck-control-plane" "livecheck-worker"]' kind delete cluster --name "$name"
  check "the namespace created in the cluster is gone" 1 "NotFound" "$k" --kubeconfig "$TESTENV_KUBECONFIG" get namespace "$ns"
  expect "the worker's allocatable is back" "256Gi" \
    "$("$k" --kubeconfig "$TESTENV_KUBECONFIG" get node kind-worker -o jsonpath='{.status.allocatable.memory}')"
  expect "its images are gone" "" "$("$k" --kubeconfig "$TESTENV_KUBECONFIG" get node kind-worker -o jsonpath='{.status.images}')"
  expect "the context is gone" "" "$("$k" config get-contexts -o name | grep "kind-$name" || true)"
  check "kind get clusters: none again" 0 "No kind clusters found." kind get clusters
  check "docker rmi of the check's image" 0 "Untagged: $img" docker rmi "$img"
}

# wait_gone WHAT CMD...: up to 30s until CMD prints nothing; prints what is left.
wait_gone() {
  local _ out=""; shift
  for _ in $(seq 150); do
    out="$("$@" 2>/dev/null || true)"
    [[ -z "$out" ]] && break
    sleep 0.2
  done
  echo "$out"
}

owned_left() {  # owned_left NS: what the stand-ins made there (ServiceAccounts, ConfigMaps, the Secret)
  "$k" --kubeconfig "$TESTENV_KUBECONFIG" -n "$1" get serviceaccount,configmap,secret -o name \
    | grep -E '/kms-ci-|/registry-credentials$' || true
}

# The live checks on a running eks-profile environment: the AWS stand-ins as the perf
# deployment uses them (tests/charts/tkms-infra and sync-secrets with the KMS perf values),
# then an enclave node group, and uninstalls that leave the environment as it was.
live_eks() {
  local envfile=$1
  # shellcheck source=/dev/null
  source "$envfile"
  k="$TESTENV_DIR/bin/kubectl"
  local kc=(--kubeconfig "$TESTENV_KUBECONFIG") ns=livecheck-aws ens=livecheck-aws-enclave
  local ci="$KMS_REPO/ci/perf-testing" charts="$ROOT/tests/charts" i missing
  echo "AWS stand-ins on $TESTENV_DIR ($TESTENV_PROFILE profile):"
  check "the ClusterSecretStore aws-secrets-manager is Ready" 0 "condition met" \
    "$k" "${kc[@]}" wait --for=condition=Ready clustersecretstore/aws-secrets-manager --timeout=10s
  "$k" "${kc[@]}" create namespace "$ns" >/dev/null
  check "helm install tkms-infra (perf threshold values) --wait" 0 "STATUS: deployed" \
    helm "${kc[@]}" -n "$ns" install tkms-infra "$charts/tkms-infra" \
    -f "$ci/threshold/kms-ci/tkms-infra/values-kms-ci.yaml" --wait --timeout 60s
  check "every Kmsparty Ready (kubectl wait --for=condition=ready Kmsparties)" 0 "condition met" \
    "$k" "${kc[@]}" -n "$ns" wait --for=condition=ready Kmsparties --all --timeout=30s
  expect "13 of them, kms-party-kms-ci-1..13" "13" \
    "$("$k" "${kc[@]}" -n "$ns" get kmsparties -o name | grep -c '/kms-party-kms-ci-[0-9]*$')"
  check "the S3 Ready" 0 "condition met" "$k" "${kc[@]}" -n "$ns" wait --for=condition=Ready s3/kms-party-kms-ci-public --timeout=10s
  check "kubectl get composite lists them" 0 "kms-party-kms-ci-public" "$k" "${kc[@]}" -n "$ns" get composite -o wide
  local want_sa="" want_cm=""
  for i in $(seq 13); do want_sa+="kms-ci-$i "; want_cm+="kms-ci-$i=$i/kms-party-kms-ci-public "; done
  expect "ServiceAccounts kms-ci-1..13" "$want_sa" "$("$k" "${kc[@]}" -n "$ns" get serviceaccount \
    -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | grep '^kms-ci-' | sort -V | tr '\n' ' ')"
  expect "ConfigMaps kms-ci-1..13 (party index, public bucket)" "$want_cm" "$("$k" "${kc[@]}" -n "$ns" get configmap \
    -o jsonpath='{range .items[*]}{.metadata.name}={.data.KMS_PARTY_INDEX}/{.data.KMS_PUBLIC_BUCKET}{"\n"}{end}' \
    | grep '^kms-ci-' | sort -V | tr '\n' ' ')"
  expect "owned by their Kmsparty" "Kmsparty/kms-party-kms-ci-7" \
    "$("$k" "${kc[@]}" -n "$ns" get configmap kms-ci-7 -o jsonpath='{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}')"
  check "helm install sync-secrets (perf registry-credential values) --wait" 0 "STATUS: deployed" \
    helm "${kc[@]}" -n "$ns" install sync-secrets "$charts/sync-secrets" \
    -f "$ci/registry-credential/values-kms-ci.yaml" --wait --timeout 60s
  # (helm's --wait does not wait for the ExternalSecret: the controller syncs it just after)
  check "the ExternalSecret becomes Ready" 0 "condition met" "$k" "${kc[@]}" -n "$ns" wait \
    --for=condition=Ready externalsecret/registry-credentials --timeout=30s
  check "the ExternalSecret SecretSynced" 0 "SecretSynced" "$k" "${kc[@]}" -n "$ns" get externalsecret registry-credentials
  expect "the Secret registry-credentials, a docker config" "kubernetes.io/dockerconfigjson" \
    "$("$k" "${kc[@]}" -n "$ns" get secret registry-credentials -o jsonpath='{.type}')"
  check "whose .dockerconfigjson has an auths entry" 0 '"auths"' \
    sh -c "'$k' --kubeconfig '$TESTENV_KUBECONFIG' -n $ns get secret registry-credentials -o jsonpath='{.data.\.dockerconfigjson}' | base64 -d"
  check "helm upgrade with rehearsal.fail for party 13" 0 "STATUS: deployed" \
    helm "${kc[@]}" -n "$ns" upgrade tkms-infra "$charts/tkms-infra" --reuse-values \
    --set "rehearsal.fail.kms-party-kms-ci-13=AccessDenied (livecheck)"
  check "makes it Ready=False ReconcileError" 0 "condition met" "$k" "${kc[@]}" -n "$ns" wait kmsparty/kms-party-kms-ci-13 \
    --for=jsonpath='{.status.conditions[?(@.type=="Ready")].reason}'=ReconcileError --timeout=10s

  # Enclave nodes: created with the group, taking an enclave pod, gone with it.
  "$k" "${kc[@]}" create namespace "$ens" >/dev/null
  check "helm install tkms-infra (perf thresholdWithEnclave values) --wait" 0 "STATUS: deployed" \
    helm "${kc[@]}" -n "$ens" install tkms-infra "$charts/tkms-infra" \
    -f "$ci/thresholdWithEnclave/kms-ci/tkms-infra/values-kms-enclave-ci.yaml" \
    --set kmsParties.awsKms.recipientAttestationImageSHA384=livecheck-pcr0 --wait --timeout 60s
  check "the EnclaveNodeGroup Ready" 0 "condition met" \
    "$k" "${kc[@]}" -n "$ens" wait --for=condition=ready enclavenodegroup/kms-party-kms-enclave-ci --timeout=30s
  expect "13 enclave nodes, Ready" "13" "$("$k" "${kc[@]}" get nodes -l "tkms.zama.ai/enclave-node-group-namespace=$ens" \
    --no-headers | grep -c ' Ready ')"
  expect "tainted app=kms-enclave-ci, c6a.16xlarge, Nitro" "app=kms-enclave-ci:NoSchedule c6a.16xlarge true" \
    "$("$k" "${kc[@]}" get nodes -l "tkms.zama.ai/enclave-node-group-namespace=$ens" -o jsonpath='{.items[0].spec.taints[0].key}={.items[0].spec.taints[0].value}:{.items[0].spec.taints[0].effect} {.items[0].metadata.labels.node\.kubernetes\.io/instance-type} {.items[0].metadata.labels.aws\.amazon\.com/nitro-enclaves}')"
  expect "the party ConfigMap has the attestation SHA" "livecheck-pcr0" \
    "$("$k" "${kc[@]}" -n "$ens" get configmap kms-enclave-ci-1 -o jsonpath='{.data.KMS_RECIPIENT_ATTESTATION_SHA384}')"
  "$k" "${kc[@]}" -n "$ens" run enclave --image=core-service-enclave:livecheck --restart=Never --overrides='{"spec":{
    "tolerations":[{"key":"app","operator":"Equal","value":"kms-enclave-ci","effect":"NoSchedule"}],
    "nodeSelector":{"aws.amazon.com/nitro-enclaves":"true"},
    "containers":[{"name":"enclave","image":"core-service-enclave:livecheck","resources":{
      "requests":{"cpu":"4","memory":"8Gi","hugepages-1Gi":"96Gi","aws.ec2.amazonaws.com/nitro_enclaves":"1"},
      "limits":{"memory":"8Gi","hugepages-1Gi":"96Gi","aws.ec2.amazonaws.com/nitro_enclaves":"1"}}}]}}' >/dev/null
  check "a perf enclave pod (96Gi hugepages, a Nitro device) runs on one" 0 "condition met" \
    "$k" "${kc[@]}" -n "$ens" wait --for=condition=Ready pod/enclave --timeout=30s
  "$k" "${kc[@]}" -n "$ens" delete pod enclave --wait=false >/dev/null
  check "helm uninstall tkms-infra (enclave) --wait" 0 "uninstalled" helm "${kc[@]}" -n "$ens" uninstall tkms-infra --wait
  expect "its nodes are gone" "" "$(wait_gone nodes "$k" "${kc[@]}" get nodes -l "tkms.zama.ai/enclave-node-group-namespace=$ens" -o name)"
  expect "and the EnclaveNodeGroup (the finalizer let go)" "" "$(wait_gone group "$k" "${kc[@]}" -n "$ens" get enclavenodegroups -o name)"

  check "helm uninstall tkms-infra sync-secrets --wait" 0 "uninstalled" helm "${kc[@]}" -n "$ns" uninstall tkms-infra sync-secrets --wait
  expect "the ServiceAccounts, ConfigMaps and Secret go with their owners" "" "$(wait_gone owned owned_left "$ns")"
  check "delete the namespaces" 0 "" "$k" "${kc[@]}" delete namespace "$ns" "$ens" --wait=true --timeout=60s
}

if [[ "${1:-}" == "--live" ]]; then
  [[ $# -eq 2 ]] || { echo "usage: $0 --live ENV_FILE" >&2; exit 2; }
  if [[ "$(sed -n 's/^export TESTENV_PROFILE=//p' "$2")" == eks ]]; then live_eks "$2"; else live "$2"; fi
else
  [[ $# -eq 2 ]] || { echo "usage: $0 STANDINS_BINARY REHEARSE_SCRIPT | $0 --live ENV_FILE" >&2; exit 2; }
  offline "$1" "$2"
fi
finish
