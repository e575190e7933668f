#!/usr/bin/env bash
# Live check of the Argo Workflows stand-in (rehearsal/workflow.go) against a running test
# environment, any profile, with kubectl alone (what std/argo will rely on):
#
#   argocheck.sh ENV_FILE
#
# A steps workflow passing an output parameter to a later step, a DAG, a node failed by a
# test's kwok Stage (the workflow Failed with Argo's messages), a long node (run-for) past
# activeDeadlineSeconds, an unresolvable reference (Error), and a deleted Workflow's pods
# collected. In a namespace of its own, deleted at the end. It is a shell check, not a cargo
# test, to stay cheap to run on the shared machine. Prints one line per check and closes with
# "argocheck: N passed, M failed"; exit 1 if any failed.
set -euo pipefail

# shellcheck disable=SC1090
. "${1:?usage: argocheck.sh ENV_FILE}"
NS="argocheck-$$"
STAGE="argocheck-fail-$$"
PASSED=0 FAILED=0
k() { kubectl --kubeconfig "$TESTENV_KUBECONFIG" "$@"; }
cleanup() {
  k delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  k delete stage "$STAGE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

expect() {
  if [[ "$2" == "$3" ]]; then PASSED=$((PASSED + 1)); echo "  ok    $1"
  else FAILED=$((FAILED + 1)); echo "  FAIL  $1: got '$3', want '$2'"; fi
}
# wait_done NAME [SECONDS]: until the workflow is completed; prints its phase.
wait_done() {
  local i
  for ((i = 0; i < ${2:-30} * 5; i++)); do
    [[ "$(k -n "$NS" get wf "$1" -o jsonpath='{.metadata.labels.workflows\.argoproj\.io/completed}')" == true ]] && break
    sleep 0.2
  done
  k -n "$NS" get wf "$1" -o jsonpath='{.status.phase}'
}
# node WF NODE_NAME JQ-ish python expression over the node `n`
node() {
  k -n "$NS" get wf "$1" -o json | python3 -c '
import json, sys
wf = json.load(sys.stdin)
n = next((n for n in wf["status"]["nodes"].values() if n["name"] == sys.argv[1]), None)
print(eval(sys.argv[2]))' "$2" "$3"
}

k create namespace "$NS" >/dev/null
echo "Argo Workflows stand-in ($NS):"

# 1. steps: an output parameter (a template annotation sets it) passed to the next step.
STEPS="$(cat <<'YAML'
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: steps}
spec:
  entrypoint: main
  arguments: {parameters: [{name: scenario, value: small}]}
  templates:
  - name: main
    steps:
    - - {name: keygen, template: keygen}
    - - name: use
        template: use
        arguments: {parameters: [{name: id, value: "{{steps.keygen.outputs.parameters.request-id}}"}]}
  - name: keygen
    metadata:
      annotations: {testenv.kmsctl/run-for: 2s, testenv.kmsctl/output.request-id: req-42}
    outputs:
      parameters:
      - {name: request-id, valueFrom: {path: /tmp/request-id}}
      - {name: fallback, valueFrom: {path: /tmp/none, default: dflt}}
    container: {image: busybox, args: ["{{workflow.parameters.scenario}}"]}
  - name: use
    inputs: {parameters: [{name: id}]}
    container: {image: busybox, args: ["use {{inputs.parameters.id}}"]}
YAML
)"
k -n "$NS" create -f - >/dev/null <<<"$STEPS"
expect "steps workflow Succeeded" Succeeded "$(wait_done steps)"
expect "output parameter from the pod annotation" req-42 "$(node steps 'steps[0].keygen' 'n["outputs"]["parameters"][0]["value"]')"
expect "output parameter from valueFrom.default" dflt "$(node steps 'steps[0].keygen' 'n["outputs"]["parameters"][1]["value"]')"
expect "the next step's pod got it" "use req-42" "$(k -n "$NS" get pod -l workflows.argoproj.io/workflow=steps \
  -o jsonpath='{range .items[*]}{.spec.containers[0].args[0]}{"\n"}{end}' | grep use)"
expect "run-for kept the node running ~2s" True "$(node steps 'steps[0].keygen' \
  '__import__("datetime").datetime.fromisoformat(n["finishedAt"]) - __import__("datetime").datetime.fromisoformat(n["startedAt"]) >= __import__("datetime").timedelta(seconds=2)')"
expect "labels phase and completed" "Succeeded true" "$(k -n "$NS" get wf steps \
  -o jsonpath='{.metadata.labels.workflows\.argoproj\.io/phase} {.metadata.labels.workflows\.argoproj\.io/completed}')"

# 2. a DAG diamond.
k -n "$NS" create -f - >/dev/null <<'YAML'
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: dag}
spec:
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: a, template: c}
      - {name: b, template: c, dependencies: [a]}
      - {name: c, template: c, dependencies: [a]}
      - {name: d, template: c, dependencies: [b, c]}
  - name: c
    container: {image: busybox}
YAML
expect "DAG workflow Succeeded" Succeeded "$(wait_done dag)"
expect "DAG: 5 nodes, d a child of b and c" "5 True" "$(k -n "$NS" get wf dag -o json | python3 -c '
import json, sys
nodes = json.load(sys.stdin)["status"]["nodes"]
by = {n["name"]: n for n in nodes.values()}
print(len(nodes), all(by["dag.d"]["id"] in by["dag." + t]["children"] for t in "bc"))')"

# 3. a node failed by a test's own weight-1 Stage, selecting a label of its template.
k create -f - >/dev/null <<YAML
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: $STAGE}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchLabels: {testenv.kmsctl/stage: $STAGE}
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: DoesNotExist}
    - {key: .status.phase, operator: In, values: [Pending]}
  weight: 1
  next:
    statusTemplate: |
      {{ \$now := Now }}
      phase: Failed
      startTime: {{ \$now | Quote }}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: false
        restartCount: 0
        state:
          terminated: {exitCode: 1, reason: Error, startedAt: {{ \$now | Quote }}, finishedAt: {{ \$now | Quote }}}
      {{ end }}
YAML
k -n "$NS" create -f - >/dev/null <<YAML
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: fails}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: ok, template: ok}
      - {name: bad, template: bad}
    - - {name: never, template: ok}
  - name: ok
    container: {image: busybox}
  - name: bad
    metadata: {labels: {testenv.kmsctl/stage: $STAGE}}
    container: {image: busybox}
YAML
expect "failing workflow Failed" Failed "$(wait_done fails)"
bad_id="$(node fails 'fails[0].bad' 'n["id"]')"
expect "its message names the failed child" "child '$bad_id' failed" "$(k -n "$NS" get wf fails -o jsonpath='{.status.message}')"
expect "the failed node's phase and message (Argo's)" "Failed main: Error (exit code 1)" "$(node fails 'fails[0].bad' 'n["phase"] + " " + n["message"]')"
expect "the next group never started" None "$(node fails 'fails[1]' 'n')"

# 4. a long node past the workflow's activeDeadlineSeconds.
k -n "$NS" create -f - >/dev/null <<'YAML'
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: deadline}
spec:
  entrypoint: main
  activeDeadlineSeconds: 3
  templates:
  - name: main
    steps: [[{name: long, template: long}]]
  - name: long
    metadata: {annotations: {testenv.kmsctl/run-for: 60s}}
    container: {image: busybox}
YAML
expect "deadline workflow Failed" Failed "$(wait_done deadline 20)"
expect "with Argo's message" "Max duration limit exceeded" "$(k -n "$NS" get wf deadline -o jsonpath='{.status.message}')"
expect "the long node Failed: Step exceeded its deadline" "Failed Step exceeded its deadline" \
  "$(node deadline 'deadline[0].long' 'n["phase"] + " " + n["message"]')"
for _ in {1..25}; do
  [[ -z "$(k -n "$NS" get pod -l workflows.argoproj.io/workflow=deadline -o name)" ]] && break; sleep 0.2
done
expect "its pod deleted" "" "$(k -n "$NS" get pod -l workflows.argoproj.io/workflow=deadline -o name)"

# 5. an unresolvable reference: Error, naming it.
k -n "$NS" create -f - >/dev/null <<'YAML'
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: invalid}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: busybox, args: ["{{workflow.parameters.missing}}"]}
YAML
expect "unresolvable reference: Error" Error "$(wait_done invalid)"
expect "naming it" "invalid spec: templates.main.args: failed to resolve {{workflow.parameters.missing}}" \
  "$(k -n "$NS" get wf invalid -o jsonpath='{.status.message}')"

# 6. a re-run (deleted and created again at once: the old pods have the same names), then a
# deleted Workflow's pods collected.
old="$(k -n "$NS" get pod -l workflows.argoproj.io/workflow=steps -o jsonpath='{.items[*].metadata.uid}')"
k -n "$NS" delete wf steps >/dev/null
k -n "$NS" create -f - >/dev/null <<<"$STEPS"
expect "a re-run Succeeded" Succeeded "$(wait_done steps)"
new="$(k -n "$NS" get pod -l workflows.argoproj.io/workflow=steps -o jsonpath='{.items[*].metadata.uid}')"
expect "with pods of its own" "2 0" "$(wc -w <<<"$new" | tr -d ' ') $(comm -12 <(tr ' ' '\n' <<<"$old" | sort) <(tr ' ' '\n' <<<"$new" | sort) | wc -l | tr -d ' ')"
k -n "$NS" delete wf steps >/dev/null
for _ in {1..50}; do
  [[ -z "$(k -n "$NS" get pod -l workflows.argoproj.io/workflow=steps -o name)" ]] && break; sleep 0.2
done
expect "a deleted workflow's pods are gone" "" "$(k -n "$NS" get pod -l workflows.argoproj.io/workflow=steps -o name)"

echo "argocheck: $PASSED passed, $FAILED failed"
(( FAILED == 0 ))
