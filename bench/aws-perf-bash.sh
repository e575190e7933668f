#!/usr/bin/env bash
# The bash toolkit's aws-perf deploy, reduced to what it does and how it waits, for
# `bench/run aws-perf` (see shared research: kms-toolkit-inventory §4 steps 3-6, §5):
#
#   1. namespace: kubectl get || kubectl create, then `sleep 10` and a phase check (W3);
#   2. tkms-infra: helm upgrade --install ... --values <perf tkms values> --wait (W10), then
#      wait_tkms_infra_ready: any S3 Ready, polled every 10 s (W6); `kubectl get Kmsparties`
#      containing the prefix, polled every 5 s (W7); each Kmsparty in turn with
#      `kubectl wait --for=condition=ready --timeout=120s` (W8);
#   3. sync-secrets: uninstall if present + `sleep 3`, orphan Secrets + `sleep 2`, then
#      helm upgrade --install --wait (W11, W12);
#   4. every party: helm upgrade --install ... --wait --wait-for-jobs in the background, `wait`
#      for each (W14), the perf values file after the override, the toolkit's --sets last;
#   5. the init release the same way (W17); `sleep 30` + kubectl wait job (W18).
#
#   HELM=helm KUBECTL=kubectl KUBECONFIG=... bench/aws-perf-bash.sh NAMESPACE PARTIES KMS_REPO TKMS_CHART SYNC_CHART
#
# Prints, last: "phases namespace=<s> infra=<s> secrets=<s> parties=<s> init=<s>" (seconds).
set -euo pipefail

ns=$1 n=$2 repo=$3 tkms_chart=$4 sync_chart=$5
: "${HELM:=helm}" "${KUBECTL:=kubectl}" "${TAG:=bench}"
suffix=kms-ci prefix=kms-party-kms-ci
perf="$repo/ci/perf-testing/threshold/kms-ci"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

now() { echo "${EPOCHREALTIME/./}"; }
since() { local t; t=$(now); printf '%d.%06d' $(((t - $1) / 1000000)) $(((t - $1) % 1000000)); }

if ((n >= 13)); then t=4 maj=5 rec=9; elif ((n > 1)); then t=1 maj=2 rec=3; else t=0 maj=1 rec=1; fi
{
  echo "kmsCore:"
  echo "  thresholdMode:"
  echo "    peersList:"
  for ((i = 1; i <= n; i++)); do echo "    - {id: $i, host: kms-core-$i-core-$i, port: 50001}"; done
} >"$work/peers.yaml"
cat >"$work/override.yaml" <<EOF
kmsCore:
  image: {name: hub.zama.org/ghcr/zama-ai/kms/core-service, tag: $TAG}
  serviceAccountName: $suffix-1
  envFrom: {configmap: {name: $suffix-1}}
  tolerations: [{key: karpenter.sh/nodepool, effect: NoSchedule, operator: Equal, value: kms-bench-spot-64}]
kmsCoreClient:
  image: {name: hub.zama.org/ghcr/zama-ai/kms/core-client, tag: $TAG}
  envFrom: {configmap: {name: $suffix-1}}
  tolerations: [{key: karpenter.sh/nodepool, effect: NoSchedule, operator: Equal, value: zws-pool}]
  num_majority: $maj
  num_reconstruct: $rec
kmsGenCertAndKeys:
  enabled: true
EOF

t0=$(now)
"$KUBECTL" get namespace "$ns" >/dev/null 2>&1 || "$KUBECTL" create namespace "$ns" >/dev/null
sleep 10
"$KUBECTL" get namespace "$ns" -o jsonpath='{.status.phase}' | grep -q Active
t_ns=$(since "$t0")

t1=$(now)
"$HELM" upgrade --install tkms-infra "$tkms_chart" -n "$ns" --values "$perf/tkms-infra/values-$suffix.yaml" \
  --wait --timeout 5m >/dev/null
for ((w = 0; w < 30; w++)); do
  "$KUBECTL" get s3 -n "$ns" -o jsonpath='{.items[*].status.conditions[?(@.type=="Ready")].status}' | grep -q True && break
  sleep 10
done
for ((w = 0; w < 24; w++)); do
  "$KUBECTL" get Kmsparties -n "$ns" 2>/dev/null | grep -q "$prefix" && break
  sleep 5
done
for ((i = 1; i <= n; i++)); do
  "$KUBECTL" wait --for=condition=ready "Kmsparties/$prefix-$i" -n "$ns" --timeout=120s >/dev/null
done
t_infra=$(since "$t1")

t2=$(now)
if "$HELM" list -n "$ns" -a | grep -q "^sync-secrets"; then
  "$HELM" uninstall sync-secrets -n "$ns" --wait >/dev/null || true
  sleep 3
fi
if "$KUBECTL" get secret -n "$ns" -l owner=helm,name=sync-secrets -o name 2>/dev/null | grep -q .; then
  "$KUBECTL" delete secret -n "$ns" -l owner=helm,name=sync-secrets >/dev/null
  sleep 2
fi
"$HELM" upgrade --install sync-secrets "$sync_chart" -n "$ns" --values "$repo/ci/perf-testing/registry-credential/values-kms-ci.yaml" \
  --create-namespace --wait --timeout 5m >/dev/null
t_secrets=$(since "$t2")

t3=$(now)
pids=()
for ((i = 1; i <= n; i++)); do
  "$HELM" upgrade --install "kms-core-$i" "$repo/charts/kms-core" --namespace "$ns" \
    --values "$work/peers.yaml" --values "$work/override.yaml" --values "$perf/kms-service/values-$suffix.yaml" \
    --set "kmsPeers.id=$i" --set "kmsCoreClient.image.tag=$TAG" \
    --set "kmsCore.publicVault.s3.prefix=PUB-p$i" --set "kmsCore.privateVault.s3.prefix=PRIV-p$i" \
    --set "kmsCore.backupVault.s3.prefix=BACKUP-p$i" --set "kmsCore.thresholdMode.thresholdValue=$t" \
    --set "kmsCore.serviceAccountName=$suffix-$i" --set "kmsCore.envFrom.configmap.name=$suffix-$i" \
    --set "kmsCore.image.tag=$TAG" --set kmsCore.thresholdMode.tls.enabled=true --set kmsGenCertAndKeys.enabled=true \
    --wait --wait-for-jobs --timeout 1200s >"$work/party-$i.log" 2>&1 &
  pids+=($!)
done
failed=()
for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=("kms-core-$((i + 1))"); done
if ((${#failed[@]})); then
  echo "failed releases: ${failed[*]}" >&2
  for r in "${failed[@]}"; do cat "$work/party-${r#kms-core-}.log" >&2; done
  exit 1
fi
t_parties=$(since "$t3")

t4=$(now)
"$HELM" upgrade --install kms-core-init "$repo/charts/kms-core" --namespace "$ns" \
  --values "$perf/kms-service/values-kms-service-init-$suffix.yaml" --values "$work/peers.yaml" --values "$work/override.yaml" \
  --set kmsGenCertAndKeys.enabled=false --wait --wait-for-jobs --timeout 1200s >"$work/init.log" 2>&1 || { cat "$work/init.log" >&2; exit 1; }
sleep 30
"$KUBECTL" wait --for=condition=complete job -l app=kms-threshold-init-job --timeout=600s -n "$ns" >/dev/null
t_init=$(since "$t4")

echo "phases namespace=$t_ns infra=$t_infra secrets=$t_secrets parties=$t_parties init=$t_init"
