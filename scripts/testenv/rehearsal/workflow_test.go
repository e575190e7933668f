package main

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"
)

// sim drives wfRun as the controller and kwok would: created pods appear Pending, tests move
// their phases, deleted pods go away.
type sim struct {
	t    *testing.T
	spec wfSpec
	st   wfStatus
	pods map[string]*corev1.Pod
	now  time.Time
	last *wfRun
}

func newSim(t *testing.T, specYAML string) *sim {
	t.Helper()
	s := &sim{t: t, pods: map[string]*corev1.Pod{}, now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := yaml.Unmarshal([]byte(specYAML), &s.spec); err != nil {
		t.Fatalf("spec: %v", err)
	}
	return s
}

func (s *sim) advance() *wfRun {
	var pods []*corev1.Pod
	for _, p := range s.pods {
		pods = append(pods, p)
	}
	r := newRun("wf", "ns", "uid-1", &s.spec, &s.st, pods, s.now)
	r.Advance()
	for _, p := range r.create {
		if s.pods[p.Name] != nil {
			s.t.Fatalf("pod %s created twice", p.Name)
		}
		p.Status.Phase = corev1.PodPending
		s.pods[p.Name] = p
	}
	for _, name := range r.del {
		delete(s.pods, name)
	}
	s.last = r
	return r
}

// pod is the pod of a node (by node name); it must exist.
func (s *sim) pod(nodeName string) *corev1.Pod {
	s.t.Helper()
	for _, p := range s.pods {
		if p.Annotations[AnnotationNodeName] == nodeName {
			return p
		}
	}
	s.t.Fatalf("no pod for node %s (pods: %v)", nodeName, s.podNodes())
	return nil
}

func (s *sim) podNodes() []string {
	var out []string
	for _, p := range s.pods {
		out = append(out, p.Annotations[AnnotationNodeName])
	}
	slices.Sort(out)
	return out
}

func (s *sim) finish(nodeName string, code int32) {
	p := s.pod(nodeName)
	p.Status.Phase = corev1.PodSucceeded
	reason := "Completed"
	if code != 0 {
		p.Status.Phase, reason = corev1.PodFailed, "Error"
	}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: MainContainer,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason}}}}
}

func (s *sim) node(name string) *wfNode {
	s.t.Helper()
	n := s.st.Nodes[NodeID("wf", name)]
	if n == nil {
		s.t.Fatalf("no node %s", name)
	}
	return n
}

func (s *sim) wantPhase(name, phase string) *wfNode {
	s.t.Helper()
	n := s.node(name)
	if n.Phase != phase {
		s.t.Fatalf("node %s: phase %s (%s), want %s", name, n.Phase, n.Message, phase)
	}
	return n
}

func (s *sim) wantWorkflow(phase, msg string) {
	s.t.Helper()
	if s.st.Phase != phase || s.st.Message != msg {
		s.t.Fatalf("workflow: %s %q, want %s %q", s.st.Phase, s.st.Message, phase, msg)
	}
}

func fnvID(name string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(name))
	return fmt.Sprintf("wf-%d", h.Sum32())
}

func TestSubstitute(t *testing.T) {
	scope := map[string]string{"workflow.name": "wf", "inputs.parameters.x": "1"}
	got, err := Substitute("{{workflow.name}}-{{ inputs.parameters.x }}-{{inputs.parameters.x}}", scope)
	if err != nil || got != "wf-1-1" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := Substitute("a {{inputs.parameters.nope}} {{workflow.other}}", scope); err == nil ||
		err.Error() != "failed to resolve {{inputs.parameters.nope}}" {
		t.Fatalf("err %v", err)
	}
	if got, _ := Substitute("no refs {x}", scope); got != "no refs {x}" {
		t.Fatalf("got %q", got)
	}
}

func TestArgoNames(t *testing.T) {
	// Argo's own test data (cmd/argo/commands/common/get_test.go).
	if got := NodeID("many-items-z26lj", "many-items-z26lj[0].sleep(9:nine)"); got != "many-items-z26lj-2619926859" {
		t.Fatalf("NodeID %s", got)
	}
	if NodeID("wf", "wf") != "wf" || PodName("wf", "wf", "main") != "wf" {
		t.Fatal("the root node's id and pod are the workflow's name")
	}
	if got, want := PodName("wfname", "nodename", "templatename"), "wfname-templatename-"+strings.TrimPrefix(fnvID("nodename"), "wf-"); got != want {
		t.Fatalf("PodName %s, want %s", got, want)
	}
	if got := PodName(strings.Repeat("w", 200), "n", strings.Repeat("t", 100)); len(got) > 253 || !strings.HasPrefix(got, strings.Repeat("w", 200)+"-t") {
		t.Fatalf("long PodName %s (%d)", got, len(got))
	}
}

const stepsSpec = `
entrypoint: main
serviceAccountName: runner
arguments:
  parameters: [{name: count, value: 3}]
templates:
- name: main
  steps:
  - - name: gen
      template: gen
      arguments: {parameters: [{name: num, value: "{{workflow.parameters.count}}"}]}
  - - name: use
      template: use
      arguments: {parameters: [{name: id, value: "{{steps.gen.outputs.parameters.request-id}}"}]}
    - name: other
      template: use
      arguments: {parameters: [{name: id, value: "fixed"}]}
- name: gen
  metadata:
    labels: {role: gen}
    annotations: {testenv.kmsctl/run-for: 3s}
  inputs: {parameters: [{name: num}]}
  outputs:
    parameters:
    - name: request-id
      valueFrom: {path: /tmp/id, default: "default-id"}
    - name: fixed
      value: "n={{inputs.parameters.num}}"
  container:
    image: "alpine:{{inputs.parameters.num}}"
    command: [sh, -c]
    args: ["echo {{workflow.name}} {{inputs.parameters.num}} > /tmp/id"]
    env: [{name: NS, value: "{{workflow.namespace}}"}]
    resources: {requests: {cpu: 100m}}
- name: use
  inputs: {parameters: [{name: id}]}
  container: {image: alpine, args: ["use {{inputs.parameters.id}}"]}
`

func TestStepsSucceedWithOutputs(t *testing.T) {
	s := newSim(t, stepsSpec)
	s.advance()
	s.wantWorkflow(PhaseRunning, "")
	if got := s.podNodes(); !slices.Equal(got, []string{"wf[0].gen"}) {
		t.Fatalf("pods %v", got)
	}
	p := s.pod("wf[0].gen")
	// The pod, as Argo makes it.
	if p.Name != "wf-gen-"+strings.TrimPrefix(fnvID("wf[0].gen"), "wf-") || p.Namespace != "ns" {
		t.Fatalf("pod name %s/%s", p.Namespace, p.Name)
	}
	if p.Labels[LabelWorkflow] != "wf" || p.Labels["role"] != "gen" || p.Annotations["testenv.kmsctl/run-for"] != "3s" ||
		p.Annotations[AnnotationNodeName] != "wf[0].gen" || p.Annotations[AnnotationNodeID] != fnvID("wf[0].gen") {
		t.Fatalf("pod metadata %v %v", p.Labels, p.Annotations)
	}
	if o := p.OwnerReferences; len(o) != 1 || o[0].Kind != "Workflow" || o[0].APIVersion != "argoproj.io/v1alpha1" || o[0].UID != "uid-1" || !*o[0].Controller {
		t.Fatalf("owner %v", o)
	}
	c := p.Spec.Containers[0]
	if p.Spec.RestartPolicy != corev1.RestartPolicyNever || p.Spec.ServiceAccountName != "runner" || len(p.Spec.Containers) != 1 ||
		c.Name != "main" || c.Image != "alpine:3" || c.Args[0] != "echo wf 3 > /tmp/id" || c.Env[0].Value != "ns" ||
		!c.Resources.Requests.Cpu().Equal(resource.MustParse("100m")) {
		t.Fatalf("pod spec %+v", p.Spec)
	}
	s.wantPhase("wf[0].gen", PhasePending)
	p.Status.Phase = corev1.PodRunning
	p.Spec.NodeName = "node-1"
	s.advance()
	s.wantPhase("wf[0].gen", PhaseRunning)
	s.wantPhase("wf", PhaseRunning)
	s.now = s.now.Add(3 * time.Second)
	s.finish("wf[0].gen", 0)
	s.advance()
	gen := s.wantPhase("wf[0].gen", PhaseSucceeded)
	if gen.Outputs == nil || len(gen.Outputs.Parameters) != 2 || *str(gen.Outputs.Parameters[0].Value) != "default-id" ||
		*str(gen.Outputs.Parameters[1].Value) != "n=3" || *gen.Outputs.ExitCode != "0" || gen.HostNodeName != "node-1" {
		t.Fatalf("gen outputs %+v", gen.Outputs)
	}
	if got := s.pod("wf[1].use").Spec.Containers[0].Args[0]; got != "use default-id" {
		t.Fatalf("use args %q", got)
	}
	s.finish("wf[1].use", 0)
	s.finish("wf[1].other", 0)
	s.advance()
	s.wantWorkflow(PhaseSucceeded, "")
	// The graph, as Argo links it.
	root, sg0, sg1 := s.node("wf"), s.node("wf[0]"), s.node("wf[1]")
	use, other := s.node("wf[1].use"), s.node("wf[1].other")
	if root.Type != TypeSteps || sg0.Type != TypeStepGroup || gen.Type != TypePod || root.TemplateName != "main" || gen.TemplateName != "gen" ||
		!slices.Equal(root.Children, []string{sg0.ID}) || !slices.Equal(sg0.Children, []string{gen.ID}) ||
		!slices.Equal(gen.Children, []string{sg1.ID}) || !slices.Equal(sg1.Children, []string{use.ID, other.ID}) ||
		gen.BoundaryID != "wf" || sg1.BoundaryID != "wf" || root.BoundaryID != "" ||
		gen.DisplayName != "gen" || sg1.DisplayName != "[1]" || root.DisplayName != "wf" ||
		!slices.Equal(root.OutboundNodes, []string{use.ID, other.ID}) || len(s.st.Nodes) != 6 {
		b, _ := json.MarshalIndent(s.st, "", "  ")
		t.Fatalf("graph:\n%s", b)
	}
	if gen.StartedAt != "2026-01-01T00:00:00Z" || gen.FinishedAt != "2026-01-01T00:00:03Z" || s.st.FinishedAt != "2026-01-01T00:00:03Z" {
		t.Fatalf("times %s %s %s", gen.StartedAt, gen.FinishedAt, s.st.FinishedAt)
	}
	if in := use.Inputs; in == nil || *str(in.Parameters[0].Value) != "default-id" {
		t.Fatalf("use inputs %+v", in)
	}
	// Done: nothing changes any more.
	before, _ := json.Marshal(s.st)
	s.now = s.now.Add(time.Minute)
	if r := s.advance(); len(r.create)+len(r.del) > 0 || !r.wake.IsZero() {
		t.Fatalf("a finished workflow acted: %+v", r)
	}
	if after, _ := json.Marshal(s.st); string(after) != string(before) {
		t.Fatalf("status changed:\n%s\n%s", before, after)
	}
}

func TestOutputAnnotationOverrides(t *testing.T) {
	s := newSim(t, stepsSpec)
	s.advance()
	s.pod("wf[0].gen").Annotations[OutputAnnotationPrefix+"request-id"] = "req-42"
	s.finish("wf[0].gen", 0)
	s.advance()
	if got := s.pod("wf[1].use").Spec.Containers[0].Args[0]; got != "use req-42" {
		t.Fatalf("use args %q", got)
	}
}

func TestIdempotent(t *testing.T) {
	s := newSim(t, stepsSpec)
	s.advance()
	before, _ := json.Marshal(s.st)
	s.now = s.now.Add(time.Second)
	if r := s.advance(); len(r.create) > 0 {
		t.Fatalf("created again: %v", r.create)
	}
	if after, _ := json.Marshal(s.st); string(after) != string(before) {
		t.Fatalf("status changed on a no-op reconcile:\n%s\n%s", before, after)
	}
	// A restart sees the status through JSON: the same result.
	var st wfStatus
	_ = json.Unmarshal(before, &st)
	s.st = st
	s.finish("wf[0].gen", 0)
	s.advance()
	s.wantPhase("wf[0].gen", PhaseSucceeded)
	s.pod("wf[1].use")
}

func TestStepFailureFailsWorkflow(t *testing.T) {
	s := newSim(t, stepsSpec)
	s.advance()
	s.finish("wf[0].gen", 1)
	s.advance()
	gen := s.wantPhase("wf[0].gen", PhaseFailed)
	if gen.Message != "main: Error (exit code 1)" || *gen.Outputs.ExitCode != "1" {
		t.Fatalf("gen message %q", gen.Message)
	}
	msg := fmt.Sprintf("child '%s' failed", gen.ID)
	if s.wantPhase("wf[0]", PhaseFailed).Message != msg || s.wantPhase("wf", PhaseFailed).Message != msg {
		t.Fatal("group/root message")
	}
	s.wantWorkflow(PhaseFailed, msg)
	if len(s.pods) != 1 || s.st.Nodes[NodeID("wf", "wf[1]")] != nil {
		t.Fatal("the next group started")
	}
	// A pod's own message wins (a kubelet's eviction, a deadline).
	s2 := newSim(t, stepsSpec)
	s2.advance()
	s2.finish("wf[0].gen", 137)
	s2.pod("wf[0].gen").Status.Message = "The node was low on resource: memory."
	s2.advance()
	if m := s2.node("wf[0].gen").Message; m != "The node was low on resource: memory." {
		t.Fatalf("message %q", m)
	}
}

func TestContinueOnFailed(t *testing.T) {
	s := newSim(t, `
entrypoint: main
templates:
- name: main
  steps:
  - - {name: warmup, template: c, continueOn: {failed: true}}
    - {name: ok, template: c}
  - - {name: after, template: c}
- name: c
  container: {image: alpine}
`)
	s.advance()
	s.finish("wf[0].warmup", 2)
	s.advance()
	if len(s.pods) != 2 {
		t.Fatal("the group ended before all its steps")
	}
	s.finish("wf[0].ok", 0)
	s.advance()
	s.wantPhase("wf[0]", PhaseSucceeded)
	s.finish("wf[1].after", 0)
	s.advance()
	s.wantWorkflow(PhaseSucceeded, "")
	s.wantPhase("wf[0].warmup", PhaseFailed)
}

const dagSpec = `
entrypoint: main
templates:
- name: main
  dag:
    tasks:
    - {name: a, template: out}
    - {name: b, template: in, dependencies: [a], arguments: {parameters: [{name: v, value: "{{tasks.a.outputs.parameters.v}}"}]}}
    - {name: c, template: in, dependencies: [a], arguments: {parameters: [{name: v, value: c}]}}
    - {name: d, template: in, dependencies: [b, c], arguments: {parameters: [{name: v, value: d}]}}
  outputs:
    parameters: [{name: from-a, valueFrom: {parameter: "{{tasks.a.outputs.parameters.v}}"}}]
- name: out
  outputs: {parameters: [{name: v, value: "from-a"}]}
  container: {image: alpine}
- name: in
  inputs: {parameters: [{name: v}]}
  container: {image: alpine, args: ["{{inputs.parameters.v}}"]}
`

func TestDAG(t *testing.T) {
	s := newSim(t, dagSpec)
	s.advance()
	if got := s.podNodes(); !slices.Equal(got, []string{"wf.a"}) {
		t.Fatalf("pods %v", got)
	}
	s.finish("wf.a", 0)
	s.advance()
	if got := s.podNodes(); !slices.Equal(got, []string{"wf.a", "wf.b", "wf.c"}) {
		t.Fatalf("pods %v", got)
	}
	if got := s.pod("wf.b").Spec.Containers[0].Args[0]; got != "from-a" {
		t.Fatalf("b args %q", got)
	}
	s.finish("wf.b", 0)
	s.advance()
	if s.st.Nodes[NodeID("wf", "wf.d")] != nil {
		t.Fatal("d started before c ended")
	}
	s.finish("wf.c", 0)
	s.advance()
	s.finish("wf.d", 0)
	s.advance()
	s.wantWorkflow(PhaseSucceeded, "")
	root, a, b, c, d := s.node("wf"), s.node("wf.a"), s.node("wf.b"), s.node("wf.c"), s.node("wf.d")
	if root.Type != TypeDAG || !slices.Equal(root.Children, []string{a.ID}) || !slices.Equal(a.Children, []string{b.ID, c.ID}) ||
		!slices.Equal(b.Children, []string{d.ID}) || !slices.Equal(c.Children, []string{d.ID}) || d.BoundaryID != "wf" ||
		d.DisplayName != "d" || !slices.Equal(root.OutboundNodes, []string{d.ID}) {
		b, _ := json.MarshalIndent(s.st, "", "  ")
		t.Fatalf("graph:\n%s", b)
	}
	if o := root.Outputs; o == nil || *str(o.Parameters[0].Value) != "from-a" {
		t.Fatalf("dag outputs %+v", o)
	}
}

func TestDAGFailure(t *testing.T) {
	s := newSim(t, dagSpec)
	s.advance()
	s.finish("wf.a", 0)
	s.advance()
	s.finish("wf.b", 1)
	s.advance()
	// c still runs: the DAG ends once it does, and d (after b and c) is omitted then, as in Argo.
	s.wantPhase("wf", PhaseRunning)
	s.wantWorkflow(PhaseRunning, "")
	s.finish("wf.c", 0)
	s.advance()
	s.wantPhase("wf.d", PhaseOmitted)
	if d := s.node("wf.d"); d.Type != TypeSkipped || d.Message != "omitted: depends condition not met" {
		t.Fatalf("d %+v", d)
	}
	s.wantWorkflow(PhaseFailed, "")
	if len(s.pods) != 3 {
		t.Fatalf("pods %v", s.podNodes())
	}
}

func TestNestedNames(t *testing.T) {
	s := newSim(t, `
entrypoint: main
templates:
- name: main
  steps: [[{name: inner, template: inner}]]
- name: inner
  dag: {tasks: [{name: t, template: leaf}]}
- name: leaf
  steps: [[{name: s, template: c}]]
- name: c
  container: {image: alpine}
`)
	s.advance()
	if got := s.podNodes(); !slices.Equal(got, []string{"wf[0].inner.t[0].s"}) {
		t.Fatalf("pods %v", got)
	}
	inner := s.node("wf[0].inner")
	if inner.Type != TypeDAG || inner.BoundaryID != "wf" || s.node("wf[0].inner.t").BoundaryID != inner.ID ||
		s.node("wf[0].inner.t[0].s").BoundaryID != NodeID("wf", "wf[0].inner.t") {
		t.Fatal("boundaries")
	}
	s.finish("wf[0].inner.t[0].s", 0)
	s.advance()
	s.wantWorkflow(PhaseSucceeded, "")
}

func TestUnresolvedReferenceIsError(t *testing.T) {
	for _, c := range []struct{ spec, msg string }{
		{`
entrypoint: main
templates:
- name: main
  container: {image: alpine, args: ["{{inputs.parameters.nope}}"]}`,
			"invalid spec: templates.main.args: failed to resolve {{inputs.parameters.nope}}"},
		{`
entrypoint: main
templates:
- name: main
  steps:
  - - {name: a, template: c}
  - - {name: b, template: c, arguments: {parameters: [{name: x, value: "{{steps.a.outputs.parameters.missing}}"}]}}
- name: c
  inputs: {parameters: [{name: x, default: ""}]}
  container: {image: alpine}`,
			"invalid spec: templates.main.steps[1].b: failed to resolve {{steps.a.outputs.parameters.missing}}"},
		{`
entrypoint: main
templates:
- name: main
  dag: {tasks: [{name: a, template: c, arguments: {parameters: [{name: x, value: "{{tasks.b.outputs.parameters.y}}"}]}}, {name: b, template: c}]}
- name: c
  inputs: {parameters: [{name: x, default: ""}]}
  outputs: {parameters: [{name: y, value: "1"}]}
  container: {image: alpine}`,
			"invalid spec: templates.main.tasks.a: failed to resolve {{tasks.b.outputs.parameters.y}}"},
		{`
entrypoint: main
templates:
- name: main
  steps: [[{name: a, template: c}]]
- name: c
  inputs: {parameters: [{name: x}]}
  container: {image: alpine}`,
			"invalid spec: templates.main.steps[0].a inputs.parameters.x was not supplied"},
		{`
entrypoint: nope
templates: [{name: main, container: {image: alpine}}]`,
			"invalid spec: spec.entrypoint template name 'nope' undefined"},
		{`
entrypoint: main
templates:
- name: main
  dag: {tasks: [{name: a, template: main2, dependencies: [b]}, {name: b, template: main2, dependencies: [a]}]}
- name: main2
  container: {image: alpine}`,
			"invalid spec: templates.main dependency cycle detected: a->b->a"},
	} {
		s := newSim(t, c.spec)
		s.advance()
		s.wantWorkflow(PhaseError, c.msg)
		if len(s.pods) != 0 {
			t.Fatal("a pod for an invalid workflow")
		}
	}
}

func TestOutputPathWithoutDefault(t *testing.T) {
	s := newSim(t, `
entrypoint: main
templates:
- name: main
  outputs: {parameters: [{name: id, valueFrom: {path: /tmp/id}}]}
  container: {image: alpine}
`)
	s.advance()
	if s.pod("wf").Name != "wf" {
		t.Fatal("a container entrypoint's pod is named after the workflow")
	}
	s.finish("wf", 0)
	s.advance()
	n := s.wantPhase("wf", PhaseError)
	if !strings.HasPrefix(n.Message, "open /tmp/id: no such file or directory") {
		t.Fatalf("message %q", n.Message)
	}
	s.wantWorkflow(PhaseError, n.Message)
}

func TestDeadline(t *testing.T) {
	s := newSim(t, `
entrypoint: main
activeDeadlineSeconds: 5
templates:
- name: main
  steps: [[{name: long, template: c}, {name: short, template: c}], [{name: never, template: c}]]
- name: c
  container: {image: alpine}
`)
	r := s.advance()
	if want := s.now.Add(5 * time.Second); !r.wake.Equal(want) {
		t.Fatalf("wake %v, want %v", r.wake, want)
	}
	s.pod("wf[0].long").Status.Phase = corev1.PodRunning
	s.finish("wf[0].short", 0)
	s.now = s.now.Add(2 * time.Second)
	s.advance()
	s.wantPhase("wf[0].short", PhaseSucceeded)
	s.now = s.now.Add(3 * time.Second)
	r = s.advance()
	if len(r.del) != 1 || len(s.pods) != 1 {
		t.Fatalf("deleted %v, pods %v", r.del, s.podNodes())
	}
	if n := s.wantPhase("wf[0].long", PhaseFailed); n.Message != MsgStepDeadline {
		t.Fatalf("message %q", n.Message)
	}
	s.wantPhase("wf[0].short", PhaseSucceeded)
	s.wantWorkflow(PhaseFailed, MsgWorkflowDeadline)
	if s.st.Nodes[NodeID("wf", "wf[1]")] != nil {
		t.Fatal("the next group started")
	}
}

func TestTemplateDeadline(t *testing.T) {
	s := newSim(t, `
entrypoint: main
templates:
- name: main
  activeDeadlineSeconds: "2"
  container: {image: alpine}
`)
	s.advance()
	s.pod("wf").Status.Phase = corev1.PodRunning
	s.now = s.now.Add(2 * time.Second)
	s.advance()
	if n := s.wantPhase("wf", PhaseFailed); n.Message != MsgStepDeadline || len(s.pods) != 0 {
		t.Fatalf("node %+v pods %v", n, s.podNodes())
	}
	s.wantWorkflow(PhaseFailed, MsgStepDeadline)
}

func TestDeletedPodIsError(t *testing.T) {
	s := newSim(t, stepsSpec)
	s.advance()
	s.pod("wf[0].gen").Status.Phase = corev1.PodRunning
	s.advance()
	s.pods = map[string]*corev1.Pod{}
	s.advance()
	if n := s.wantPhase("wf[0].gen", PhaseError); n.Message != "pod deleted" {
		t.Fatalf("message %q", n.Message)
	}
	s.wantWorkflow(PhaseFailed, fmt.Sprintf("child '%s' failed", fnvID("wf[0].gen")))
}

func TestPendingReason(t *testing.T) {
	s := newSim(t, stepsSpec)
	s.advance()
	s.pod("wf[0].gen").Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "main",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image"}}}}
	s.advance()
	if n := s.wantPhase("wf[0].gen", PhasePending); n.Message != "ImagePullBackOff: Back-off pulling image" {
		t.Fatalf("message %q", n.Message)
	}
}

// The JSON a client reads: Argo's field names.
func TestStatusJSON(t *testing.T) {
	s := newSim(t, stepsSpec)
	s.advance()
	s.finish("wf[0].gen", 0)
	s.advance()
	var m map[string]any
	b, _ := json.Marshal(s.st)
	_ = json.Unmarshal(b, &m)
	gen := m["nodes"].(map[string]any)[fnvID("wf[0].gen")].(map[string]any)
	for _, k := range []string{"id", "name", "displayName", "type", "templateName", "phase", "startedAt", "finishedAt", "boundaryID", "children", "outputs"} {
		if _, ok := gen[k]; !ok {
			t.Fatalf("node has no %s: %s", k, b)
		}
	}
	p := gen["outputs"].(map[string]any)["parameters"].([]any)[0].(map[string]any)
	if p["name"] != "request-id" || p["value"] != "default-id" {
		t.Fatalf("outputs %v", p)
	}
	for _, k := range []string{"phase", "startedAt", "nodes"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("status has no %s", k)
		}
	}
}

func TestShutdown(t *testing.T) {
	s := newSim(t, stepsSpec)
	s.advance()
	s.pod("wf[0].gen").Status.Phase = corev1.PodRunning
	s.advance()
	s.spec.Shutdown = "Terminate"
	s.advance()
	msg := "Stopped with strategy 'Terminate'"
	if n := s.wantPhase("wf[0].gen", PhaseFailed); n.Message != msg || len(s.pods) != 0 {
		t.Fatalf("node %+v pods %v", n, s.podNodes())
	}
	s.wantWorkflow(PhaseFailed, msg)
}

// The controller end to end against client-go's fake clients: status and labels written on the
// Workflow itself, pods made and collected.
func TestWorkflowsController(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": workflowCRD},
		"status":   map[string]any{"conditions": []any{map[string]any{"type": "Established", "status": "True"}}},
	}}
	lists := map[schema.GroupVersionResource]string{crdGVR: "CustomResourceDefinitionList", workflowGVR: "WorkflowList"}
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), lists, crd)
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	w := NewWorkflows(client, dyn, factory)
	factory.Start(ctx.Done())
	go w.Run(ctx, 2)
	wfAPI := dyn.Resource(workflowGVR).Namespace("ns")
	create := func(uid string) {
		var spec map[string]any
		if err := yaml.Unmarshal([]byte(`{entrypoint: main, templates: [{name: main, container: {image: alpine}}]}`), &spec); err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "spec": spec}}
		u.SetNamespace("ns")
		u.SetName("wf")
		u.SetUID(types.UID(uid))
		if _, err := wfAPI.Create(ctx, u, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	until := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	pod := func() *corev1.Pod {
		p, err := client.CoreV1().Pods("ns").Get(ctx, "wf", metav1.GetOptions{})
		if err != nil {
			return nil
		}
		return p
	}
	// An earlier workflow's pod, of the same name, in the way.
	old := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "wf", Namespace: "ns", Labels: map[string]string{LabelWorkflow: "wf"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "Workflow", Name: "wf", UID: "uid-0"}}},
		Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}
	if _, err := client.CoreV1().Pods("ns").Create(ctx, old, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	until("the pod informer", func() bool { p, _ := w.pods.Pods("ns").Get("wf"); return p != nil })
	create("uid-1")
	until("the pod", func() bool { p := pod(); return p != nil && p.OwnerReferences[0].UID == "uid-1" })
	phase := func() string {
		u, err := wfAPI.Get(ctx, "wf", metav1.GetOptions{})
		if err != nil {
			return ""
		}
		p, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		return p
	}
	until("Running (the earlier pod is not taken for this workflow's)", func() bool { return phase() == PhaseRunning })
	p := pod()
	p.Status.Phase = corev1.PodSucceeded
	if _, err := client.CoreV1().Pods("ns").UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	until("Succeeded", func() bool {
		u, err := wfAPI.Get(ctx, "wf", metav1.GetOptions{})
		phase, _, _ := unstructured.NestedString(u.Object, "status", "phase")
		return err == nil && phase == PhaseSucceeded && u.GetLabels()[LabelCompleted] == "true" && u.GetLabels()[LabelPhase] == PhaseSucceeded
	})
	// Deleted and created again (a re-run): the old pod goes, a new one of the new workflow comes.
	if err := wfAPI.Delete(ctx, "wf", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	until("the old pod deleted", func() bool { return pod() == nil })
	create("uid-2")
	until("a pod of the new workflow", func() bool { p := pod(); return p != nil && p.OwnerReferences[0].UID == "uid-2" })
}
