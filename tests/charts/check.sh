#!/usr/bin/env bash
# Offline checks of the AWS stand-in charts (tkms-infra, sync-secrets) with the real helm: lint,
# then `helm template` from every tkms-infra and registry-credential values file of
# tests/kms-repo (and the --set flags aws-ci adds), asserting the objects and names the KMS
# deployment relies on. `testenv.sh unit` runs it with helm v4 and v3.
#
#   HELM=/path/to/helm tests/charts/check.sh      # else `helm` from PATH
set -euo pipefail

HELM=${HELM:-helm}
command -v "$HELM" >/dev/null 2>&1 || { echo "check.sh: helm not found (set HELM)" >&2; exit 2; }
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CI=$HERE/../kms-repo/ci
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export HELM_CONFIG_HOME=$T/helm/config HELM_CACHE_HOME=$T/helm/cache HELM_DATA_HOME=$T/helm/data
FAILS=0 CASE=""
fail() { echo "FAIL [$CASE] $*" >&2; FAILS=$((FAILS + 1)); }
pass() { echo "ok   [$CASE] $*"; }

render() {  # render NAME CHART ARGS...: helm template into $T/NAME.yaml
  local name=$1 chart=$2; shift 2
  CASE=$name
  if "$HELM" template "$chart" "$HERE/$chart" "$@" >"$T/$name.yaml" 2>"$T/$name.err"; then pass "renders"
  else fail "helm template: $(cat "$T/$name.err")"; : >"$T/$name.yaml"; fi
}
# names KIND: the rendered objects of that kind, one name a line, sorted.
names() {
  awk -v kind="$1" '/^---/ {k=""} /^kind: / {k=$2} k==kind && /^  name: / {print $2}' "$T/$CASE.yaml" | sort -V
}
expect() {  # expect WHAT WANT GOT
  if [[ "$2" == "$3" ]]; then pass "$1"; else fail "$1: got '$3', want '$2'"; fi
}
has() {  # has WHAT PATTERN (a grep -E on the render)
  if grep -Eq -- "$2" "$T/$CASE.yaml"; then pass "$1"; else fail "$1: no /$2/"; fi
}

for chart in tkms-infra sync-secrets; do
  CASE="lint $chart"
  if "$HELM" lint "$HERE/$chart" --set kmsParties.serviceAccountPrefixName=x \
    --set kmsParties.publishConnectionDetailsTo.prefixName=x >"$T/lint" 2>&1; then pass "lint"
  else fail "$(cat "$T/lint")"; fi
done

# aws-perf: the values files alone.
for f in "$CI"/perf-testing/*/kms-ci/tkms-infra/values-*.yaml; do
  type=$(basename "$(dirname "$(dirname "$(dirname "$f")")")")
  suffix=$(basename "$f" .yaml); suffix=${suffix#values-}
  n=$(sed -n 's/^  replicas: //p' "$f")
  render "perf-$type" tkms-infra -n kms-ci -f "$f"
  expect "S3" "kms-party-$suffix-public" "$(names S3)"
  expect "$n Kmsparties" "$(for i in $(seq "$n"); do echo "kms-party-$suffix-$i"; done)" "$(names Kmsparty)"
  has "party $n's ServiceAccount and ConfigMap" "serviceAccountName: $suffix-$n\$"
  has "and its connection ConfigMap" "connectionConfigMap: $suffix-$n\$"
  if [[ $type == *WithEnclave ]]; then
    expect "EnclaveNodeGroup" "kms-party-$suffix" "$(names EnclaveNodeGroup)"
    has "its size" "^  size: $n\$"
    has "awsKms on" "enabled: true"
  else
    expect "no EnclaveNodeGroup" "" "$(names EnclaveNodeGroup)"
  fi
done

# aws-ci: the PR-preview files with the --sets of infrastructure.sh, PCR0, a party override
# (rolling upgrade) and the test environment's annotations.
ns=kms-ci-alice-42
for f in "$CI"/pr-preview/*/tkms-infra/values-kms-ci.yaml; do
  type=$(basename "$(dirname "$(dirname "$f")")")
  sets=(--set kmsParties.replicas=3 --set "fullnameOverride=kms-party-$ns" --set "publicBucketVault.labels.environment=$ns"
    --set "kmsParties.serviceAccountPrefixName=$ns" --set "kmsParties.publishConnectionDetailsTo.prefixName=$ns"
    --set "kmsParties.publicBucketVaultRef.matchLabels.environment=$ns")
  [[ $type == *WithEnclave ]] && sets+=(--set "kmsParties.enclaveNodeGroup.taint[0].value=$ns"
    --set kmsParties.awsKms.recipientAttestationImageSHA384=pcr0-all
    --set "kmsParties.partyOverrides[0].partyIndex=2"
    --set "kmsParties.partyOverrides[0].awsKms.recipientAttestationImageSHA384=pcr0-new")
  render "ci-$type" tkms-infra -n "$ns" -f "$f" "${sets[@]}" --set rehearsal.readyAfter=5s \
    --set "rehearsal.fail.kms-party-$ns-3=AccessDenied"
  expect "3 Kmsparties" "$(printf 'kms-party-%s-%s\n' "$ns" 1 "$ns" 2 "$ns" 3)" "$(names Kmsparty)"
  has "the bucket's labels" "^    environment: $ns\$"
  has "the parties' selector" "^      environment: $ns\$"
  has "ServiceAccount <ns>-<i>" "serviceAccountName: $ns-3\$"
  has "ready-after" 'testenv.kmsctl/ready-after: "5s"'
  expect "one fail annotation" "1" "$(grep -c 'testenv.kmsctl/fail: "AccessDenied"' "$T/$CASE.yaml")"
  if [[ $type == *WithEnclave ]]; then
    has "the taint's value from --set, its key and effect kept" "^      value: $ns\$"
    has "the taint's key" "^      key: app\$"
    expect "PCR0: the override for party 2, the global one for the others" "pcr0-all pcr0-new pcr0-all" \
      "$(sed -n 's/^    recipientAttestationImageSHA384: "\(.*\)"$/\1/p' "$T/$CASE.yaml" | xargs)"
  fi
done

for f in "$CI"/{pr-preview,perf-testing}/registry-credential/values-kms-ci.yaml; do
  render "sync-secrets-$(basename "$(dirname "$(dirname "$f")")")" sync-secrets -n kms-ci -f "$f"
  expect "ExternalSecret" "registry-credentials" "$(names ExternalSecret)"
  has "from the ClusterSecretStore" "^    kind: ClusterSecretStore\$"
  has "aws-secrets-manager" "^    name: aws-secrets-manager\$"
  has "a dockerconfigjson target" "^      type: kubernetes.io/dockerconfigjson\$"
  has "the remote key" "key: common/.*-registry-credentials\$"
done

if (( FAILS > 0 )); then echo "check.sh: $FAILS check(s) failed" >&2; exit 1; fi
echo "check.sh: all checks passed ($("$HELM" version --short 2>/dev/null || echo helm))"
