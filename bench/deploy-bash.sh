#!/usr/bin/env bash
# The bash toolkit's threshold deploy, reduced to what it does and how it waits, for
# `bench/run deploy` (see shared research: kms-toolkit-inventory §4 steps 6f/6g, §5 W14/W17/W18):
#
#   1. every party: helm upgrade --install kms-core-<i> ... --wait --wait-for-jobs --timeout 1200s,
#      all in the background, then `wait` for each PID (W14);
#   2. the init release the same way (its post-install hook Job blocks helm) (W17);
#   3. sleep 30, then kubectl wait --for=condition=complete job -l app=kms-threshold-init-job (W18).
#
# Values are the ones bench/deploy.rhai gives (peers list, threshold
# parameters by party count, per-party ids and storage prefixes), passed like the toolkit passes
# them: a peers values file plus --set flags. The namespace is created with kubectl (the
# toolkit's extra `sleep 10` after that, W3, is left out).
#
#   HELM=helm KUBECTL=kubectl KUBECONFIG=... bench/deploy-bash.sh NAMESPACE PARTIES CHART
#
# Prints, last: "phases namespace=<s> parties=<s> init=<s> settle=<s>" (seconds).
set -euo pipefail

ns=$1 n=$2 chart=$3
: "${HELM:=helm}" "${KUBECTL:=kubectl}"
: "${CORE_IMAGE:=kms-core-service}" "${CLIENT_IMAGE:=kms-core-client}" "${TAG:=latest-dev}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

t0=${EPOCHREALTIME/./}
since() { local t=${EPOCHREALTIME/./}; printf '%d.%06d' $(((t - $1) / 1000000)) $(((t - $1) % 1000000)); }

if ((n >= 13)); then t=4 maj=5 rec=9; elif ((n > 1)); then t=1 maj=2 rec=3; else t=0 maj=1 rec=1; fi
{
  echo "kmsCore:"
  echo "  image: {name: $CORE_IMAGE, tag: $TAG}"
  echo "  thresholdMode:"
  echo "    enabled: true"
  echo "    tls: {enabled: false}"
  echo "    peersList:"
  for ((i = 1; i <= n; i++)); do echo "    - {id: $i, host: kms-core-$i-core-$i, port: 50001}"; done
  echo "kmsCoreClient:"
  echo "  image: {name: $CLIENT_IMAGE, tag: $TAG}"
  echo "  num_majority: $maj"
  echo "  num_reconstruct: $rec"
} >"$work/peers.yaml"

"$KUBECTL" create namespace "$ns" >/dev/null
t_ns=$(since "$t0")

t1=${EPOCHREALTIME/./}
pids=()
for ((i = 1; i <= n; i++)); do
  "$HELM" upgrade --install "kms-core-$i" "$chart" --namespace "$ns" --values "$work/peers.yaml" \
    --set "kmsPeers.id=$i" --set "kmsCore.publicVault.s3.prefix=PUB-p$i" \
    --set "kmsCore.privateVault.s3.prefix=PRIV-p$i" --set "kmsCore.backupVault.s3.prefix=BACKUP-p$i" \
    --set "kmsCore.thresholdMode.thresholdValue=$t" \
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
t_parties=$(since "$t1")

t2=${EPOCHREALTIME/./}
"$HELM" upgrade --install kms-core-init "$chart" --namespace "$ns" --values "$work/peers.yaml" \
  --set kmsCore.enabled=false --set kmsInit.enabled=true --set kmsGenCertAndKeys.enabled=false \
  --wait --wait-for-jobs --timeout 1200s >"$work/init.log" 2>&1 || { cat "$work/init.log" >&2; exit 1; }
t_init=$(since "$t2")

t3=${EPOCHREALTIME/./}
sleep 30
"$KUBECTL" wait --for=condition=complete job -l app=kms-threshold-init-job --timeout=600s -n "$ns" >/dev/null
t_settle=$(since "$t3")

echo "phases namespace=$t_ns parties=$t_parties init=$t_init settle=$t_settle"
