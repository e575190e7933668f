// The Argo Workflows stand-in. Argo's own workflow-controller cannot run on this cluster: its
// pods run the argoexec executor next to the main container (kwok runs no containers), and it
// is that executor which reports output parameters. So this controller runs Workflows
// (argoproj.io/v1alpha1, Argo's own minimal CRD, applied by `testenv.sh up`) itself: one pod
// per container node, advanced by kwok's stages (stages.yaml: pod-workflow-complete), and the
// Workflow's status written as Argo writes it, from those pods' phases. A subset of Argo:
//
//	templates    container (or script: its container; the source is not run), steps (groups
//	             one after the other, a group's steps at once), dag (tasks[].dependencies: a
//	             task runs once all of them Succeeded; else it is Omitted); continueOn.failed
//	             and .error on a step or task
//	parameters   spec.arguments, template inputs (from a step's or task's arguments, else their
//	             value/default), {{workflow.name|namespace|uid|serviceAccountName}},
//	             {{workflow.parameters.X}}, {{inputs.parameters.X}}, {{pod.name}},
//	             {{steps.S.outputs.parameters.P}}, {{tasks.T.outputs.parameters.P}} in a
//	             container's image/command/args/env/workingDir and in arguments. A reference
//	             that cannot resolve: phase Error, message naming it (Argo's validation does so)
//	outputs      value (substituted), valueFrom.parameter, valueFrom.path: no file is ever
//	             written here, so its default (without one the node is Error, as Argo's executor
//	             fails); a pod annotation OutputAnnotationPrefix+<name> overrides any of them
//	deadlines    spec.activeDeadlineSeconds (from status.startedAt) and a container template's
//	             (from the node's start): its running pods deleted, their nodes Failed "Step
//	             exceeded its deadline", the workflow's message "Max duration limit exceeded"
//	shutdown     spec.shutdown Stop or Terminate (argo stop/terminate): the same, with "Stopped
//	             with strategy '<it>'"
//
// Status is on the main resource (Argo's CRD has no status subresource); node ids and pod names
// are Argo's (fnv-32a of the node name; POD_NAMES=v2). Not here: retries, when, withItems,
// artifacts, exit handlers, suspend, templateRef, a DAG's target/depends, step/task hooks.
// Each reconcile recomputes the status from the status and the pods (restart-safe); it is
// requeued with a delay only for a deadline.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Argo's labels and annotations, and this stand-in's.
const (
	LabelWorkflow          = "workflows.argoproj.io/workflow"
	LabelPhase             = "workflows.argoproj.io/phase"
	LabelCompleted         = "workflows.argoproj.io/completed"
	AnnotationNodeName     = "workflows.argoproj.io/node-name"
	AnnotationNodeID       = "workflows.argoproj.io/node-id"
	OutputAnnotationPrefix = "testenv.kmsctl/output."
	MainContainer          = "main"
	workflowCRD            = "workflows.argoproj.io"
)

// Node types and phases (Argo's names).
const (
	TypePod       = "Pod"
	TypeSteps     = "Steps"
	TypeStepGroup = "StepGroup"
	TypeDAG       = "DAG"
	TypeSkipped   = "Skipped"

	PhasePending   = "Pending"
	PhaseRunning   = "Running"
	PhaseSucceeded = "Succeeded"
	PhaseFailed    = "Failed"
	PhaseError     = "Error"
	PhaseOmitted   = "Omitted"

	MsgStepDeadline     = "Step exceeded its deadline"
	MsgWorkflowDeadline = "Max duration limit exceeded"
)

var workflowGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "workflows"}

// ---- spec ---------------------------------------------------------------------------------

// anyString is Argo's AnyString: a parameter value written as a string, number or bool.
type anyString string

func (a *anyString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = anyString(s)
		return nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v.(type) {
	case float64, bool:
		*a = anyString(strings.TrimSpace(string(b)))
		return nil
	}
	return fmt.Errorf("want a string, number or bool, got %s", b)
}

func str(a *anyString) *string {
	if a == nil {
		return nil
	}
	s := string(*a)
	return &s
}

type wfValueFrom struct {
	Path      string     `json:"path,omitempty"`
	Parameter string     `json:"parameter,omitempty"`
	Default   *anyString `json:"default,omitempty"`
}

type wfParam struct {
	Name      string       `json:"name"`
	Value     *anyString   `json:"value,omitempty"`
	Default   *anyString   `json:"default,omitempty"`
	ValueFrom *wfValueFrom `json:"valueFrom,omitempty"`
}

type wfArgs struct {
	Parameters []wfParam `json:"parameters,omitempty"`
}

type continueOn struct {
	Failed bool `json:"failed,omitempty"`
	Error  bool `json:"error,omitempty"`
}

type wfStep struct {
	Name         string      `json:"name"`
	Template     string      `json:"template"`
	Arguments    wfArgs      `json:"arguments"`
	ContinueOn   *continueOn `json:"continueOn,omitempty"`
	Dependencies []string    `json:"dependencies,omitempty"` // DAG tasks only
}

type wfScript struct {
	corev1.Container
	Source string `json:"source,omitempty"`
}

type wfTemplate struct {
	Name     string `json:"name"`
	Inputs   wfArgs `json:"inputs"`
	Outputs  wfArgs `json:"outputs"`
	Metadata struct {
		Labels      map[string]string `json:"labels,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	} `json:"metadata"`
	Container *corev1.Container `json:"container,omitempty"`
	Script    *wfScript         `json:"script,omitempty"`
	Steps     [][]wfStep        `json:"steps,omitempty"`
	DAG       *struct {
		Tasks []wfStep `json:"tasks"`
	} `json:"dag,omitempty"`
	ActiveDeadlineSeconds *anyString          `json:"activeDeadlineSeconds,omitempty"`
	NodeSelector          map[string]string   `json:"nodeSelector,omitempty"`
	Tolerations           []corev1.Toleration `json:"tolerations,omitempty"`
	ServiceAccountName    string              `json:"serviceAccountName,omitempty"`
}

func (t *wfTemplate) container() *corev1.Container {
	if t.Container != nil {
		return t.Container
	}
	if t.Script != nil {
		return &t.Script.Container
	}
	return nil
}

func (t *wfTemplate) nodeType() string {
	switch {
	case t.container() != nil:
		return TypePod
	case t.Steps != nil:
		return TypeSteps
	case t.DAG != nil:
		return TypeDAG
	}
	return ""
}

type wfSpec struct {
	Entrypoint            string                        `json:"entrypoint"`
	Templates             []wfTemplate                  `json:"templates"`
	Arguments             wfArgs                        `json:"arguments"`
	ServiceAccountName    string                        `json:"serviceAccountName,omitempty"`
	ActiveDeadlineSeconds *anyString                    `json:"activeDeadlineSeconds,omitempty"`
	NodeSelector          map[string]string             `json:"nodeSelector,omitempty"`
	Tolerations           []corev1.Toleration           `json:"tolerations,omitempty"`
	ImagePullSecrets      []corev1.LocalObjectReference `json:"imagePullSecrets,omitempty"`
	Shutdown              string                        `json:"shutdown,omitempty"` // argo stop / terminate
}

// ---- status -------------------------------------------------------------------------------

type wfIO struct {
	Parameters []wfParam `json:"parameters,omitempty"`
	ExitCode   *string   `json:"exitCode,omitempty"`
}

type wfNode struct {
	ID            string   `json:"id"`
	Name          string   `json:"name"`
	DisplayName   string   `json:"displayName"`
	Type          string   `json:"type"`
	TemplateName  string   `json:"templateName,omitempty"`
	Phase         string   `json:"phase"`
	Message       string   `json:"message,omitempty"`
	StartedAt     string   `json:"startedAt,omitempty"`
	FinishedAt    string   `json:"finishedAt,omitempty"`
	BoundaryID    string   `json:"boundaryID,omitempty"`
	Children      []string `json:"children,omitempty"`
	OutboundNodes []string `json:"outboundNodes,omitempty"`
	HostNodeName  string   `json:"hostNodeName,omitempty"`
	Inputs        *wfIO    `json:"inputs,omitempty"`
	Outputs       *wfIO    `json:"outputs,omitempty"`
}

type wfCondition struct {
	Type   string `json:"type"`
	Status string `json:"status"`
}

type wfStatus struct {
	Phase      string             `json:"phase,omitempty"`
	StartedAt  string             `json:"startedAt,omitempty"`
	FinishedAt string             `json:"finishedAt,omitempty"`
	Message    string             `json:"message,omitempty"`
	Nodes      map[string]*wfNode `json:"nodes,omitempty"`
	Conditions []wfCondition      `json:"conditions,omitempty"`
}

func fulfilled(phase string) bool {
	switch phase {
	case PhaseSucceeded, PhaseFailed, PhaseError, PhaseOmitted:
		return true
	}
	return false
}

func failedOrError(phase string) bool { return phase == PhaseFailed || phase == PhaseError }

func (c *continueOn) covers(phase string) bool {
	return c != nil && ((phase == PhaseFailed && c.Failed) || (phase == PhaseError && c.Error))
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func fnv32(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

// NodeID is Argo's Workflow.NodeID.
func NodeID(wf, name string) string {
	if name == wf {
		return wf
	}
	return fmt.Sprintf("%s-%d", wf, fnv32(name))
}

// PodName is Argo's GeneratePodName for POD_NAMES=v2.
func PodName(wf, nodeName, template string) string {
	if wf == nodeName {
		return wf
	}
	prefix := wf
	if template != "" {
		prefix += "-" + template
	}
	if len(prefix) > 242 { // Argo's maxPrefixLength-1: room for the hash in 253
		prefix = prefix[:242]
	}
	return fmt.Sprintf("%s-%d", prefix, fnv32(nodeName))
}

// ---- substitution -------------------------------------------------------------------------

var refRE = regexp.MustCompile(`\{\{[^{}]*\}\}`)

// Substitute replaces each {{ref}} by its scope value; the first that is not there is the error.
func Substitute(s string, scope map[string]string) (string, error) {
	var missing string
	out := refRE.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := scope[strings.TrimSpace(m[2:len(m)-2])]; ok {
			return v
		}
		if missing == "" {
			missing = m
		}
		return m
	})
	if missing != "" {
		return "", fmt.Errorf("failed to resolve %s", missing)
	}
	return out, nil
}

func substAll(ss []string, scope map[string]string) ([]string, error) {
	if ss == nil {
		return nil, nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		v, err := Substitute(s, scope)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// substArgs is a step's or task's arguments with their values substituted.
func substArgs(params []wfParam, scope map[string]string) ([]wfParam, error) {
	out := make([]wfParam, 0, len(params))
	for _, p := range params {
		if p.Value == nil {
			return nil, fmt.Errorf("arguments.parameters.%s.value is required", p.Name)
		}
		v, err := Substitute(string(*p.Value), scope)
		if err != nil {
			return nil, err
		}
		out = append(out, wfParam{Name: p.Name, Value: (*anyString)(&v)})
	}
	return out, nil
}

// ---- validation (Argo's, at submit; here on first sight) ---------------------------------

func globalKeys(spec *wfSpec) map[string]string {
	scope := map[string]string{"workflow.name": "", "workflow.namespace": "", "workflow.uid": "",
		"workflow.serviceAccountName": ""}
	for _, p := range spec.Arguments.Parameters {
		scope["workflow.parameters."+p.Name] = ""
	}
	return scope
}

func outputKeys(scope map[string]string, prefix string, t *wfTemplate) {
	for _, p := range t.Outputs.Parameters {
		scope[prefix+".outputs.parameters."+p.Name] = ""
	}
}

// checkCall checks a call of template name with the given arguments.
func checkCall(tmpls map[string]*wfTemplate, where, name string, args []wfParam, scope map[string]string) error {
	t := tmpls[name]
	if t == nil {
		return fmt.Errorf("%s template name '%s' undefined", where, name)
	}
	given := map[string]bool{}
	for _, a := range args {
		if a.Value == nil {
			return fmt.Errorf("%s.arguments.parameters.%s.value is required", where, a.Name)
		}
		if _, err := Substitute(string(*a.Value), scope); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		given[a.Name] = true
	}
	for _, p := range t.Inputs.Parameters {
		if !given[p.Name] && p.Value == nil && p.Default == nil {
			return fmt.Errorf("%s inputs.parameters.%s was not supplied", where, p.Name)
		}
	}
	return nil
}

// Validate is the subset of Argo's validation this stand-in needs: every template called
// exists and is of a supported kind, inputs are supplied, every reference resolves.
func Validate(spec *wfSpec) error {
	tmpls := map[string]*wfTemplate{}
	for i := range spec.Templates {
		tmpls[spec.Templates[i].Name] = &spec.Templates[i]
	}
	for _, p := range spec.Arguments.Parameters {
		if p.Value == nil {
			return fmt.Errorf("spec.arguments.parameters.%s.value is required", p.Name)
		}
	}
	if err := checkCall(tmpls, "spec.entrypoint", spec.Entrypoint, spec.Arguments.Parameters, globalKeys(spec)); err != nil {
		return err
	}
	for _, t := range spec.Templates {
		if err := validateTemplate(spec, tmpls, &t); err != nil {
			return err
		}
	}
	return nil
}

func validateTemplate(spec *wfSpec, tmpls map[string]*wfTemplate, t *wfTemplate) error {
	kinds := 0
	for _, set := range []bool{t.Container != nil, t.Script != nil, t.Steps != nil, t.DAG != nil} {
		if set {
			kinds++
		}
	}
	where := "templates." + t.Name
	if kinds != 1 {
		return fmt.Errorf("%s template type unspecified. choose one of: container, script, steps, dag (this test environment runs no others)", where)
	}
	scope := globalKeys(spec)
	for _, p := range t.Inputs.Parameters {
		scope["inputs.parameters."+p.Name] = ""
	}
	check := func(what string, ss ...string) error {
		for _, s := range ss {
			if _, err := Substitute(s, scope); err != nil {
				return fmt.Errorf("%s%s: %w", where, what, err)
			}
		}
		return nil
	}
	if c := t.container(); c != nil {
		scope["pod.name"] = ""
		if err := check(".image", c.Image); err != nil {
			return err
		}
		if err := check(".command", c.Command...); err != nil {
			return err
		}
		if err := check(".args", c.Args...); err != nil {
			return err
		}
		for _, e := range c.Env {
			if err := check(".env."+e.Name, e.Value); err != nil {
				return err
			}
		}
	}
	for i, group := range t.Steps {
		for _, s := range group {
			if err := checkCall(tmpls, fmt.Sprintf("%s.steps[%d].%s", where, i, s.Name), s.Template, s.Arguments.Parameters, scope); err != nil {
				return err
			}
		}
		for _, s := range group { // visible from the next group on
			outputKeys(scope, "steps."+s.Name, tmpls[s.Template])
		}
	}
	if t.DAG != nil {
		tasks := map[string]*wfStep{}
		for i := range t.DAG.Tasks {
			tasks[t.DAG.Tasks[i].Name] = &t.DAG.Tasks[i]
		}
		if _, err := dagOrder(t.DAG.Tasks); err != nil {
			return fmt.Errorf("%s %w", where, err)
		}
		for _, task := range t.DAG.Tasks {
			taskScope := maps.Clone(scope)
			for _, a := range ancestors(tasks, task.Name) {
				outputKeys(taskScope, "tasks."+a, tmpls[tasks[a].Template])
			}
			if err := checkCall(tmpls, where+".tasks."+task.Name, task.Template, task.Arguments.Parameters, taskScope); err != nil {
				return err
			}
		}
	}
	for _, p := range t.Outputs.Parameters {
		switch {
		case p.Value != nil, p.ValueFrom != nil && p.ValueFrom.Path != "":
		case p.ValueFrom != nil && p.ValueFrom.Parameter != "":
			if t.container() != nil {
				return fmt.Errorf("%s.outputs.parameters.%s: valueFrom.parameter is for steps and dag templates", where, p.Name)
			}
		default:
			return fmt.Errorf("%s.outputs.parameters.%s does not have valueFrom or value specified", where, p.Name)
		}
	}
	return nil
}

// dagOrder is the tasks in an order where each comes after its dependencies.
func dagOrder(tasks []wfStep) ([]wfStep, error) {
	byName := map[string]*wfStep{}
	for i := range tasks {
		byName[tasks[i].Name] = &tasks[i]
	}
	state := map[string]int{} // 1 visiting, 2 done
	var out []wfStep
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case 1:
			return fmt.Errorf("dependency cycle detected: %s", strings.Join(append(path, name), "->"))
		case 2:
			return nil
		}
		state[name] = 1
		for _, d := range byName[name].Dependencies {
			if byName[d] == nil {
				return fmt.Errorf("tasks.%s dependency '%s' not defined", name, d)
			}
			if err := visit(d, append(path, name)); err != nil {
				return err
			}
		}
		state[name] = 2
		out = append(out, *byName[name])
		return nil
	}
	for _, t := range tasks {
		if err := visit(t.Name, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func ancestors(tasks map[string]*wfStep, name string) []string {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(n string) {
		for _, d := range tasks[n].Dependencies {
			if !seen[d] && tasks[d] != nil {
				seen[d] = true
				walk(d)
			}
		}
	}
	walk(name)
	return slices.Sorted(maps.Keys(seen))
}

// ---- the run: one reconcile of one workflow, pure ---------------------------------------

// wfRun advances one workflow's status from its spec, its status and its pods; what it wants
// done to pods is in create and del, when to look again (a deadline) in wake.
type wfRun struct {
	name, namespace, uid string
	spec                 *wfSpec
	tmpls                map[string]*wfTemplate
	st                   *wfStatus
	pods                 map[string]*corev1.Pod
	now                  time.Time
	expired              bool   // the workflow's deadline passed
	stopped              string // spec.shutdown's message

	create []*corev1.Pod
	del    []string
	wake   time.Time
}

func newRun(name, namespace, uid string, spec *wfSpec, st *wfStatus, pods []*corev1.Pod, now time.Time) *wfRun {
	r := &wfRun{name: name, namespace: namespace, uid: uid, spec: spec, st: st, now: now,
		tmpls: map[string]*wfTemplate{}, pods: map[string]*corev1.Pod{}}
	for i := range spec.Templates {
		r.tmpls[spec.Templates[i].Name] = &spec.Templates[i]
	}
	for _, p := range pods {
		r.pods[p.Name] = p
	}
	if r.st.Nodes == nil {
		r.st.Nodes = map[string]*wfNode{}
	}
	return r
}

func (r *wfRun) get(name string) *wfNode { return r.st.Nodes[NodeID(r.name, name)] }

// ensure is the node of that name, created with these fields if it is not there yet.
func (r *wfRun) ensure(name, typ, tmpl, display, boundary, phase string) *wfNode {
	if n := r.get(name); n != nil {
		return n
	}
	n := &wfNode{ID: NodeID(r.name, name), Name: name, DisplayName: display, Type: typ, TemplateName: tmpl,
		Phase: phase, StartedAt: ts(r.now), BoundaryID: boundary}
	r.st.Nodes[n.ID] = n
	return n
}

func (r *wfRun) mark(n *wfNode, phase, msg string) {
	n.Phase, n.Message = phase, msg
	if fulfilled(phase) && n.FinishedAt == "" {
		n.FinishedAt = ts(r.now)
	}
}

func addChild(n *wfNode, id string) {
	if !slices.Contains(n.Children, id) {
		n.Children = append(n.Children, id)
	}
}

// outbound is Argo's getOutboundNodes: the nodes a following step or task hangs from.
func (r *wfRun) outbound(id string) []string {
	n := r.st.Nodes[id]
	if n == nil {
		return nil
	}
	if (n.Type == TypeSteps || n.Type == TypeDAG) && len(n.OutboundNodes) > 0 {
		return n.OutboundNodes
	}
	return []string{id}
}

func (r *wfRun) globalScope() map[string]string {
	sa := r.spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	scope := map[string]string{"workflow.name": r.name, "workflow.namespace": r.namespace,
		"workflow.uid": r.uid, "workflow.serviceAccountName": sa}
	for _, p := range r.spec.Arguments.Parameters {
		if p.Value != nil {
			scope["workflow.parameters."+p.Name] = string(*p.Value)
		}
	}
	return scope
}

func deadlineOf(a *anyString) (time.Duration, bool) {
	if a == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(*a)), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n) * time.Second, true
}

func (r *wfRun) wakeAt(t time.Time) {
	if t.After(r.now) && (r.wake.IsZero() || t.Before(r.wake)) {
		r.wake = t
	}
}

// Advance runs one reconcile; Done tells whether the workflow has finished.
func (r *wfRun) Advance() {
	if r.Done() {
		return
	}
	if r.st.Phase == "" {
		if err := Validate(r.spec); err != nil {
			r.finish(PhaseError, "invalid spec: "+err.Error())
			return
		}
		r.st.Phase, r.st.StartedAt = PhaseRunning, ts(r.now)
	}
	if d, ok := deadlineOf(r.spec.ActiveDeadlineSeconds); ok {
		started, err := time.Parse(time.RFC3339, r.st.StartedAt)
		if err == nil {
			end := started.Add(d)
			r.expired = !r.now.Before(end)
			r.wakeAt(end)
		}
	}
	if s := r.spec.Shutdown; s != "" {
		r.stopped = fmt.Sprintf("Stopped with strategy '%s'", s)
	}
	root, err := r.exec(r.name, r.spec.Entrypoint, r.name, "", r.spec.Arguments.Parameters, 0)
	if err != nil {
		r.abort(err.Error())
		return
	}
	if !fulfilled(root.Phase) {
		return
	}
	msg := root.Message
	switch {
	case root.Phase == PhaseSucceeded:
	case r.stopped != "":
		msg = r.stopped
	case r.expired:
		msg = MsgWorkflowDeadline
	}
	r.finish(root.Phase, msg)
}

func (r *wfRun) Done() bool {
	switch r.st.Phase {
	case PhaseSucceeded, PhaseFailed, PhaseError:
		return true
	}
	return false
}

func (r *wfRun) finish(phase, msg string) {
	r.st.Phase, r.st.Message, r.st.FinishedAt = phase, msg, ts(r.now)
	if r.st.StartedAt == "" {
		r.st.StartedAt = r.st.FinishedAt
	}
	r.st.Conditions = []wfCondition{{Type: "Completed", Status: "True"}}
	r.wake = time.Time{}
}

// abort ends the workflow with phase Error: its unfinished nodes too, their pods deleted.
func (r *wfRun) abort(msg string) {
	for _, n := range r.st.Nodes {
		if fulfilled(n.Phase) {
			continue
		}
		if n.Type == TypePod {
			r.kill(n)
		}
		r.mark(n, PhaseError, msg)
	}
	if root := r.st.Nodes[r.name]; root != nil {
		root.Message = msg
	}
	r.finish(PhaseError, msg)
}

func (r *wfRun) kill(n *wfNode) {
	name := PodName(r.name, n.Name, n.TemplateName)
	if p := r.pods[name]; p != nil && p.DeletionTimestamp == nil && !slices.Contains(r.del, name) {
		r.del = append(r.del, name)
	}
}

// exec advances the node name running template tmplName with these (substituted) arguments.
func (r *wfRun) exec(name, tmplName, display, boundary string, args []wfParam, depth int) (*wfNode, error) {
	t := r.tmpls[tmplName]
	if t == nil {
		return nil, fmt.Errorf("template '%s' undefined", tmplName)
	}
	if depth > 50 {
		return nil, fmt.Errorf("maximum recursion depth exceeded at %s", name)
	}
	phase := PhaseRunning
	if t.nodeType() == TypePod {
		phase = PhasePending
	}
	n := r.get(name)
	if n == nil {
		n = r.ensure(name, t.nodeType(), t.Name, display, boundary, phase)
		inputs, err := resolveInputs(t, args)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if len(inputs) > 0 {
			n.Inputs = &wfIO{Parameters: inputs}
		}
	}
	if fulfilled(n.Phase) {
		return n, nil
	}
	scope := r.globalScope()
	if n.Inputs != nil {
		for _, p := range n.Inputs.Parameters {
			scope["inputs.parameters."+p.Name] = string(*p.Value)
		}
	}
	var err error
	switch n.Type {
	case TypePod:
		err = r.execPod(n, t, scope)
	case TypeSteps:
		err = r.execSteps(n, t, scope, depth)
	case TypeDAG:
		err = r.execDAG(n, t, scope, depth)
	}
	return n, err
}

// resolveInputs is a template's input parameters: the argument given, else its value or default.
func resolveInputs(t *wfTemplate, args []wfParam) ([]wfParam, error) {
	var out []wfParam
	for _, p := range t.Inputs.Parameters {
		v := p.Value
		if v == nil {
			v = p.Default
		}
		for _, a := range args {
			if a.Name == p.Name {
				v = a.Value
			}
		}
		if v == nil {
			return nil, fmt.Errorf("inputs.parameters.%s was not supplied", p.Name)
		}
		out = append(out, wfParam{Name: p.Name, Value: v})
	}
	return out, nil
}

func (r *wfRun) execPod(n *wfNode, t *wfTemplate, scope map[string]string) error {
	podName := PodName(r.name, n.Name, t.Name)
	pod := r.pods[podName]
	if pod != nil {
		n.HostNodeName = pod.Spec.NodeName
		switch pod.Status.Phase {
		case corev1.PodSucceeded:
			return r.podSucceeded(n, t, pod, scope)
		case corev1.PodFailed:
			phase, msg := failedReason(pod)
			r.mark(n, phase, msg)
			n.Outputs = &wfIO{ExitCode: exitCode(pod)}
			return nil
		}
	}
	expired := r.expired
	if d, ok := deadlineOf(t.ActiveDeadlineSeconds); ok {
		if started, err := time.Parse(time.RFC3339, n.StartedAt); err == nil {
			expired = expired || !r.now.Before(started.Add(d))
			r.wakeAt(started.Add(d))
		}
	}
	switch {
	case r.stopped != "": // Stop and Terminate alike: there are no exit handlers here
		r.kill(n)
		r.mark(n, PhaseFailed, r.stopped)
	case expired:
		r.kill(n)
		r.mark(n, PhaseFailed, MsgStepDeadline)
	case pod == nil && n.Phase == PhaseRunning:
		r.mark(n, PhaseError, "pod deleted")
	case pod == nil:
		p, err := r.buildPod(n, t, podName, scope)
		if err != nil {
			return err
		}
		r.create = append(r.create, p)
	case pod.Status.Phase == corev1.PodRunning:
		r.mark(n, PhaseRunning, "")
	default:
		r.mark(n, PhasePending, pendingReason(pod))
	}
	return nil
}

func (r *wfRun) podSucceeded(n *wfNode, t *wfTemplate, pod *corev1.Pod, scope map[string]string) error {
	out := &wfIO{ExitCode: exitCode(pod)}
	for _, p := range t.Outputs.Parameters {
		o := wfParam{Name: p.Name, ValueFrom: p.ValueFrom}
		v, ok := pod.Annotations[OutputAnnotationPrefix+p.Name]
		switch {
		case ok:
		case p.Value != nil:
			s, err := Substitute(string(*p.Value), scope)
			if err != nil {
				return fmt.Errorf("%s.outputs.parameters.%s: %w", n.Name, p.Name, err)
			}
			v = s
		case p.ValueFrom != nil && p.ValueFrom.Default != nil:
			v = string(*p.ValueFrom.Default)
		default:
			path := ""
			if p.ValueFrom != nil {
				path = p.ValueFrom.Path
			}
			r.mark(n, PhaseError, fmt.Sprintf("open %s: no such file or directory (no container runs in the test environment: "+
				"give valueFrom a default or annotate the pod %s%s)", path, OutputAnnotationPrefix, p.Name))
			n.Outputs = out
			return nil
		}
		o.Value = (*anyString)(&v)
		out.Parameters = append(out.Parameters, o)
	}
	n.Outputs = out
	r.mark(n, PhaseSucceeded, "")
	return nil
}

func exitCode(pod *corev1.Pod) *string {
	for _, c := range pod.Status.ContainerStatuses {
		if c.Name == MainContainer && c.State.Terminated != nil {
			s := strconv.Itoa(int(c.State.Terminated.ExitCode))
			return &s
		}
	}
	return nil
}

// failedReason is Argo's inferFailedReason for a pod with only the main container.
func failedReason(pod *corev1.Pod) (string, string) {
	if pod.Status.Message != "" {
		return PhaseFailed, pod.Status.Message
	}
	if len(pod.Status.ContainerStatuses) == 0 {
		return PhaseFailed, fmt.Sprintf("can't find failed message for pod %s namespace %s", pod.Name, pod.Namespace)
	}
	for _, c := range pod.Status.ContainerStatuses {
		if c.State.Waiting != nil {
			return PhaseError, fmt.Sprintf("Pod failed before %s container starts due to %s: %s", c.Name, c.State.Waiting.Reason, c.State.Waiting.Message)
		}
		t := c.State.Terminated
		if t == nil || t.ExitCode == 0 {
			continue
		}
		msg := fmt.Sprintf("%s (exit code %d)", t.Reason, t.ExitCode)
		if t.Message != "" {
			msg += ": " + t.Message
		}
		return PhaseFailed, c.Name + ": " + msg
	}
	return PhaseFailed, "pod failed"
}

// pendingReason is what keeps a pod from running, as Argo shows it on a Pending node.
func pendingReason(pod *corev1.Pod) string {
	for _, c := range pod.Status.ContainerStatuses {
		if w := c.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
			if w.Message != "" {
				return w.Reason + ": " + w.Message
			}
			return w.Reason
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Reason == corev1.PodReasonUnschedulable {
			if c.Message != "" {
				return c.Reason + ": " + c.Message
			}
			return c.Reason
		}
	}
	return ""
}

func (r *wfRun) buildPod(n *wfNode, t *wfTemplate, podName string, scope map[string]string) (*corev1.Pod, error) {
	scope = maps.Clone(scope)
	scope["pod.name"] = podName
	c := t.container().DeepCopy()
	c.Name = MainContainer
	var err error
	fail := func(what string, e error) error { return fmt.Errorf("templates.%s.%s: %w", t.Name, what, e) }
	if c.Image, err = Substitute(c.Image, scope); err != nil {
		return nil, fail("image", err)
	}
	if c.Command, err = substAll(c.Command, scope); err != nil {
		return nil, fail("command", err)
	}
	if c.Args, err = substAll(c.Args, scope); err != nil {
		return nil, fail("args", err)
	}
	if c.WorkingDir, err = Substitute(c.WorkingDir, scope); err != nil {
		return nil, fail("workingDir", err)
	}
	for i := range c.Env {
		if c.Env[i].Value, err = Substitute(c.Env[i].Value, scope); err != nil {
			return nil, fail("env."+c.Env[i].Name, err)
		}
	}
	lbls := maps.Clone(t.Metadata.Labels)
	if lbls == nil {
		lbls = map[string]string{}
	}
	lbls[LabelWorkflow] = r.name
	ann := maps.Clone(t.Metadata.Annotations)
	if ann == nil {
		ann = map[string]string{}
	}
	ann[AnnotationNodeName], ann[AnnotationNodeID] = n.Name, n.ID
	sa := t.ServiceAccountName
	if sa == "" {
		sa = r.spec.ServiceAccountName
	}
	sel, tol := t.NodeSelector, t.Tolerations
	if sel == nil {
		sel = r.spec.NodeSelector
	}
	if tol == nil {
		tol = r.spec.Tolerations
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: r.namespace, Labels: lbls, Annotations: ann,
			OwnerReferences: []metav1.OwnerReference{{APIVersion: workflowGVR.GroupVersion().String(), Kind: "Workflow",
				Name: r.name, UID: types.UID(r.uid), Controller: new(true), BlockOwnerDeletion: new(true)}}},
		Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, ServiceAccountName: sa,
			Containers: []corev1.Container{*c}, NodeSelector: sel, Tolerations: tol,
			ImagePullSecrets: r.spec.ImagePullSecrets},
	}, nil
}

func (r *wfRun) execSteps(n *wfNode, t *wfTemplate, scope map[string]string, depth int) error {
	for i, group := range t.Steps {
		sgName := fmt.Sprintf("%s[%d]", n.Name, i)
		sg := r.ensure(sgName, TypeStepGroup, "", fmt.Sprintf("[%d]", i), n.ID, PhaseRunning)
		if i == 0 {
			addChild(n, sg.ID)
		} else if prev := r.get(fmt.Sprintf("%s[%d]", n.Name, i-1)); len(prev.Children) == 0 {
			addChild(prev, sg.ID)
		} else {
			for _, c := range prev.Children {
				for _, o := range r.outbound(c) {
					addChild(r.st.Nodes[o], sg.ID)
				}
			}
		}
		if !fulfilled(sg.Phase) {
			for _, s := range group {
				args, err := substArgs(s.Arguments.Parameters, scope)
				if err != nil {
					return fmt.Errorf("templates.%s.steps[%d].%s: %w", t.Name, i, s.Name, err)
				}
				c, err := r.exec(sgName+"."+s.Name, s.Template, s.Name, n.ID, args, depth+1)
				if c != nil {
					addChild(sg, c.ID)
				}
				if err != nil {
					return err
				}
			}
			done, failed := true, ""
			for _, s := range group {
				c := r.get(sgName + "." + s.Name)
				if !fulfilled(c.Phase) {
					done = false
				} else if failedOrError(c.Phase) && !s.ContinueOn.covers(c.Phase) && failed == "" {
					failed = c.ID
				}
			}
			if !done {
				return nil
			}
			if failed != "" {
				r.mark(sg, PhaseFailed, fmt.Sprintf("child '%s' failed", failed))
			} else {
				r.mark(sg, PhaseSucceeded, "")
			}
		}
		if failedOrError(sg.Phase) {
			r.stepsOutbound(n, sg)
			r.mark(n, PhaseFailed, sg.Message)
			return nil
		}
		for _, s := range group {
			addOutputs(scope, "steps."+s.Name, r.get(sgName+"."+s.Name))
		}
	}
	if len(t.Steps) > 0 {
		r.stepsOutbound(n, r.get(fmt.Sprintf("%s[%d]", n.Name, len(t.Steps)-1)))
	}
	return r.templateOutputs(n, t, scope)
}

func (r *wfRun) stepsOutbound(n, lastGroup *wfNode) {
	var out []string
	for _, c := range lastGroup.Children {
		out = append(out, r.outbound(c)...)
	}
	n.OutboundNodes = out
}

func addOutputs(scope map[string]string, prefix string, n *wfNode) {
	if n == nil || n.Outputs == nil {
		return
	}
	for _, p := range n.Outputs.Parameters {
		if p.Value != nil {
			scope[prefix+".outputs.parameters."+p.Name] = string(*p.Value)
		}
	}
}

// templateOutputs ends a steps or dag node Succeeded with its template's outputs.
func (r *wfRun) templateOutputs(n *wfNode, t *wfTemplate, scope map[string]string) error {
	var out []wfParam
	for _, p := range t.Outputs.Parameters {
		src := ""
		switch {
		case p.Value != nil:
			src = string(*p.Value)
		case p.ValueFrom != nil && p.ValueFrom.Parameter != "":
			src = p.ValueFrom.Parameter
		}
		v, err := Substitute(src, scope)
		if err != nil {
			if p.ValueFrom == nil || p.ValueFrom.Default == nil {
				return fmt.Errorf("%s.outputs.parameters.%s: %w", n.Name, p.Name, err)
			}
			v = string(*p.ValueFrom.Default)
		}
		out = append(out, wfParam{Name: p.Name, Value: (*anyString)(&v), ValueFrom: p.ValueFrom})
	}
	if len(out) > 0 {
		n.Outputs = &wfIO{Parameters: out}
	}
	r.mark(n, PhaseSucceeded, "")
	return nil
}

func (r *wfRun) execDAG(n *wfNode, t *wfTemplate, scope map[string]string, depth int) error {
	order, err := dagOrder(t.DAG.Tasks)
	if err != nil {
		return fmt.Errorf("templates.%s %w", t.Name, err)
	}
	byName := map[string]*wfStep{}
	dependents := map[string]bool{}
	for i := range t.DAG.Tasks {
		byName[t.DAG.Tasks[i].Name] = &t.DAG.Tasks[i]
		for _, d := range t.DAG.Tasks[i].Dependencies {
			dependents[d] = true
		}
	}
	taskNode := func(name string) *wfNode { return r.get(n.Name + "." + name) }
	done, failed := true, ""
	for _, task := range order {
		tn := taskNode(task.Name)
		if tn == nil {
			ready, run := true, true
			for _, d := range task.Dependencies {
				dn := taskNode(d)
				if dn == nil || !fulfilled(dn.Phase) {
					ready = false
					break
				}
				if dn.Phase != PhaseSucceeded && !(failedOrError(dn.Phase) && byName[d].ContinueOn.covers(dn.Phase)) {
					run = false
				}
			}
			if !ready {
				done = false
				continue
			}
			if !run {
				tn = r.ensure(n.Name+"."+task.Name, TypeSkipped, task.Template, task.Name, n.ID, PhaseOmitted)
				r.mark(tn, PhaseOmitted, "omitted: depends condition not met")
			}
		}
		if tn == nil || !fulfilled(tn.Phase) {
			args, err := substArgs(task.Arguments.Parameters, scope)
			if err != nil {
				return fmt.Errorf("templates.%s.tasks.%s: %w", t.Name, task.Name, err)
			}
			if tn, err = r.exec(n.Name+"."+task.Name, task.Template, task.Name, n.ID, args, depth+1); err != nil {
				return err
			}
		}
		if len(task.Dependencies) == 0 {
			addChild(n, tn.ID)
		}
		for _, d := range task.Dependencies {
			for _, o := range r.outbound(taskNode(d).ID) {
				addChild(r.st.Nodes[o], tn.ID)
			}
		}
		if !fulfilled(tn.Phase) {
			done = false
			continue
		}
		if failedOrError(tn.Phase) && !task.ContinueOn.covers(tn.Phase) && failed == "" {
			failed = tn.Phase
		}
		addOutputs(scope, "tasks."+task.Name, tn)
	}
	if !done {
		return nil
	}
	var out []string
	for _, task := range t.DAG.Tasks {
		if !dependents[task.Name] {
			out = append(out, r.outbound(taskNode(task.Name).ID)...)
		}
	}
	n.OutboundNodes = out
	if failed != "" {
		r.mark(n, failed, "") // Argo gives a failed DAG no message of its own
		return nil
	}
	return r.templateOutputs(n, t, scope)
}

// ---- the controller -----------------------------------------------------------------------

// Workflows runs Workflows; see the file comment.
type Workflows struct {
	client kubernetes.Interface
	dyn    dynamic.Interface
	pods   corelisters.PodLister
	synced cache.InformerSynced
	crdInf cache.SharedIndexInformer
	queue  workqueue.TypedRateLimitingInterface[string]
	Now    func() time.Time

	mu      sync.Mutex
	ctx     context.Context
	inf     cache.SharedIndexInformer
	cancel  context.CancelFunc
	written map[string]*unstructured.Unstructured // our last update, until the cache has it
}

// NewWorkflows registers its handler on factory's pod informer (which the pod gate's
// controller starts); Run watches the CRD and reconciles.
func NewWorkflows(client kubernetes.Interface, dyn dynamic.Interface, factory informers.SharedInformerFactory) *Workflows {
	podInf := factory.Core().V1().Pods()
	w := &Workflows{
		client: client, dyn: dyn, pods: podInf.Lister(), synced: podInf.Informer().HasSynced,
		crdInf: dynamicinformer.NewFilteredDynamicInformer(dyn, crdGVR, "", 0, cache.Indexers{},
			func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + workflowCRD }).Informer(),
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		Now:     time.Now,
		written: map[string]*unstructured.Unstructured{},
	}
	podHandler := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if p, ok := obj.(*corev1.Pod); ok && p.Labels[LabelWorkflow] != "" {
			w.queue.Add(p.Namespace + "/" + p.Labels[LabelWorkflow])
		}
	}
	_, _ = podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: podHandler, UpdateFunc: func(_, obj any) { podHandler(obj) }, DeleteFunc: podHandler,
	})
	crdHandler := func(obj any, deleted bool) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if u, ok := obj.(*unstructured.Unstructured); ok {
			w.crdChanged(u, deleted)
		}
	}
	_, _ = w.crdInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { crdHandler(obj, false) },
		UpdateFunc: func(_, obj any) { crdHandler(obj, false) },
		DeleteFunc: func(obj any) { crdHandler(obj, true) },
	})
	return w
}

func (w *Workflows) crdChanged(crd *unstructured.Unstructured, deleted bool) {
	if crd.GetName() != workflowCRD {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case deleted && w.inf != nil:
		w.cancel()
		w.inf, w.cancel = nil, nil
		log.Printf("workflows: CRD %s deleted; no longer watched", workflowCRD)
	case !deleted && w.inf == nil && established(crd) && w.ctx != nil:
		inf := dynamicinformer.NewFilteredDynamicInformer(w.dyn, workflowGVR, "", 0, cache.Indexers{}, nil).Informer()
		handler := func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if u, ok := obj.(*unstructured.Unstructured); ok {
				w.queue.Add(u.GetNamespace() + "/" + u.GetName())
			}
		}
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: handler, UpdateFunc: func(_, obj any) { handler(obj) }, DeleteFunc: handler,
		})
		ctx, cancel := context.WithCancel(w.ctx)
		go inf.Run(ctx.Done())
		w.inf, w.cancel = inf, cancel
		log.Printf("workflows: CRD %s established; running Workflows", workflowCRD)
	}
}

// Run watches the CRD and works the queue until ctx ends.
func (w *Workflows) Run(ctx context.Context, workers int) {
	defer w.queue.ShutDown()
	w.mu.Lock()
	w.ctx = ctx
	w.mu.Unlock()
	go w.crdInf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), w.crdInf.HasSynced, w.synced) {
		return
	}
	for _, o := range w.crdInf.GetStore().List() { // listed before ctx was set
		if u, ok := o.(*unstructured.Unstructured); ok {
			w.crdChanged(u, false)
		}
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for w.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	w.queue.ShutDown()
	wg.Wait()
}

func (w *Workflows) next(ctx context.Context) bool {
	key, quit := w.queue.Get()
	if quit {
		return false
	}
	defer w.queue.Done(key)
	wake, err := w.sync(ctx, key)
	switch {
	case apierrors.IsConflict(err): // raced a spec edit: again from the new version
		w.queue.AddRateLimited(key)
	case err != nil:
		log.Printf("workflows: %s: %v (retrying)", key, err)
		w.queue.AddRateLimited(key)
	case wake > 0:
		w.queue.Forget(key)
		w.queue.AddAfter(key, wake)
	default:
		w.queue.Forget(key)
	}
	return true
}

// get is the workflow from the cache, or our own last update of it while the cache lags behind
// (a pod event right after a write would otherwise reconcile the old status, and conflict);
// synced is false until the cache has listed them all (a pod without its workflow then is
// no orphan).
func (w *Workflows) get(key string) (u *unstructured.Unstructured, synced bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inf == nil || !w.inf.HasSynced() {
		return nil, false
	}
	o, ok, _ := w.inf.GetStore().GetByKey(key)
	if !ok {
		delete(w.written, key)
		return nil, true
	}
	u, _ = o.(*unstructured.Unstructured)
	if mine := w.written[key]; mine != nil {
		if mine.GetUID() == u.GetUID() && newerRV(mine.GetResourceVersion(), u.GetResourceVersion()) {
			return mine, true
		}
		delete(w.written, key)
	}
	return u, true
}

// newerRV: resourceVersions are etcd revisions (opaque to clients, but integers in practice).
func newerRV(a, b string) bool {
	x, err1 := strconv.ParseUint(a, 10, 64)
	y, err2 := strconv.ParseUint(b, 10, 64)
	return err1 == nil && err2 == nil && x > y
}

func decode(v any, into any) error {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

func toMap(v any) map[string]any {
	b, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// sync reconciles one workflow: its pods created or deleted, then its status written.
func (w *Workflows) sync(ctx context.Context, key string) (time.Duration, error) {
	cached, synced := w.get(key)
	if !synced {
		return time.Second, nil // the CRD is new, or the controller just started
	}
	if cached == nil || cached.GetDeletionTimestamp() != nil {
		return 0, w.collect(ctx, key)
	}
	var spec wfSpec
	var st wfStatus
	specErr := decode(cached.Object["spec"], &spec)
	if err := decode(cached.Object["status"], &st); err != nil {
		st = wfStatus{} // not ours to keep: start over
	}
	all, err := w.pods.Pods(cached.GetNamespace()).List(labels.SelectorFromSet(labels.Set{LabelWorkflow: cached.GetName()}))
	if err != nil {
		return 0, err
	}
	// Pods of an earlier Workflow of this name (deleted and created again: a re-run) have the
	// same names: not ours, and in the way.
	var pods []*corev1.Pod
	for _, p := range all {
		if slices.ContainsFunc(p.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == cached.GetUID() }) {
			pods = append(pods, p)
		} else if ownedByWorkflow(p, cached.GetName()) && p.DeletionTimestamp == nil {
			err := w.client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return 0, fmt.Errorf("delete pod %s: %w", p.Name, err)
			}
			log.Printf("workflows: %s: pod %s is an earlier workflow's: deleted", key, p.Name)
		}
	}
	old := toMap(st)
	oldPhases := map[string]string{}
	for id, n := range st.Nodes {
		oldPhases[id] = n.Phase
	}
	now := w.Now()
	r := newRun(cached.GetName(), cached.GetNamespace(), string(cached.GetUID()), &spec, &st, pods, now)
	if specErr != nil && !r.Done() {
		r.finish(PhaseError, "invalid spec: "+specErr.Error())
	} else {
		r.Advance()
	}
	for _, p := range r.create {
		_, err := w.client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return 0, fmt.Errorf("create pod %s: %w", p.Name, err)
		}
		if err == nil {
			log.Printf("workflows: %s: pod %s for node %s", key, p.Name, p.Annotations[AnnotationNodeName])
		}
	}
	for _, name := range r.del {
		err := w.client.CoreV1().Pods(cached.GetNamespace()).Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("delete pod %s: %w", name, err)
		}
		log.Printf("workflows: %s: pod %s deleted (deadline or error)", key, name)
	}
	obj := cached.DeepCopy()
	lbls := obj.GetLabels()
	if lbls == nil {
		lbls = map[string]string{}
	}
	want := maps.Clone(lbls)
	if st.Phase != "" {
		want[LabelPhase] = st.Phase
		want[LabelCompleted] = strconv.FormatBool(r.Done())
	}
	newStatus := toMap(st)
	if maps.Equal(lbls, want) && reflect.DeepEqual(normalize(toMap(cached.Object["status"])), normalize(newStatus)) {
		return w.wakeIn(r, now), nil
	}
	obj.SetLabels(want)
	obj.Object["status"] = newStatus
	updated, err := w.dyn.Resource(workflowGVR).Namespace(obj.GetNamespace()).Update(ctx, obj, metav1.UpdateOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return 0, nil
		}
		return 0, err
	}
	w.mu.Lock()
	w.written[key] = updated
	w.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(st.Nodes)) {
		if n := st.Nodes[id]; oldPhases[id] != n.Phase {
			log.Printf("workflows: %s: node %s (%s) %s%s", key, n.Name, n.Type, n.Phase, suffix(n.Message))
		}
	}
	if old["phase"] != newStatus["phase"] || old["message"] != newStatus["message"] {
		log.Printf("workflows: %s: %s%s", key, st.Phase, suffix(st.Message))
	}
	return w.wakeIn(r, now), nil
}

// collect deletes a deleted workflow's pods. The garbage collector would too (ownerReferences),
// but it learns of a new CRD's kind only at its next discovery (up to 30s after `up`).
func (w *Workflows) collect(ctx context.Context, key string) error {
	ns, name, _ := strings.Cut(key, "/")
	pods, err := w.pods.Pods(ns).List(labels.SelectorFromSet(labels.Set{LabelWorkflow: name}))
	if err != nil {
		return err
	}
	for _, p := range pods {
		if !ownedByWorkflow(p, name) || p.DeletionTimestamp != nil {
			continue
		}
		// The cache may lag: only a pod whose workflow the API server does not have is an orphan.
		cur, err := w.dyn.Resource(workflowGVR).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err != nil && !apierrors.IsNotFound(err):
			return err
		case err == nil && cur.GetDeletionTimestamp() == nil && slices.ContainsFunc(p.OwnerReferences,
			func(o metav1.OwnerReference) bool { return o.UID == cur.GetUID() }):
			continue
		}
		err = w.client.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &p.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete pod %s: %w", p.Name, err)
		}
		log.Printf("workflows: %s: deleted; pod %s deleted", key, p.Name)
	}
	return nil
}

// ownedByWorkflow: a pod of a Workflow of that name (this one or an earlier one); a pod with
// only the label is someone else's.
func ownedByWorkflow(p *corev1.Pod, name string) bool {
	return slices.ContainsFunc(p.OwnerReferences, func(o metav1.OwnerReference) bool {
		return o.Kind == "Workflow" && o.Name == name && o.APIVersion == workflowGVR.GroupVersion().String()
	})
}

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return ": " + msg
}

func (w *Workflows) wakeIn(r *wfRun, now time.Time) time.Duration {
	if r.wake.IsZero() || r.Done() {
		return 0
	}
	return r.wake.Sub(now) + 100*time.Millisecond // timestamps have whole seconds
}
