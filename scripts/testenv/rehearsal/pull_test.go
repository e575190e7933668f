// Unit tests of the image pull rules and their status, and of the gate refusing a pod on
// them until the node has the image (kind load) or the registry does (the missing list).
package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

type missing map[string]bool

func (m missing) Missing(image string) bool { return m[image] }

func images(names ...string) []corev1.ContainerImage {
	var out []corev1.ContainerImage
	for _, n := range names {
		out = append(out, corev1.ContainerImage{Names: []string{n}})
	}
	return out
}

func TestPullRules(t *testing.T) {
	c := func(name, image string, p corev1.PullPolicy) corev1.Container {
		return corev1.Container{Name: name, Image: image, ImagePullPolicy: p}
	}
	reg := missing{"core-service:latest-dev": true, "gone:1": true}
	for _, tc := range []struct {
		name   string
		spec   corev1.PodSpec
		on     []corev1.ContainerImage
		want   string // the signature of the pulls alone
		mayNot bool   // MayFailPull false: the node is never looked at
	}{
		{"never, loaded", corev1.PodSpec{Containers: []corev1.Container{c("m", "core-service:latest-dev", corev1.PullNever)}},
			images("core-service:latest-dev"), "", false},
		{"never, not loaded", corev1.PodSpec{Containers: []corev1.Container{c("m", "core-service:dev", corev1.PullNever)}},
			images("other:1"), "i:false:m:ErrImageNeverPull:core-service:dev", false},
		{"never, loaded without a tag", corev1.PodSpec{Containers: []corev1.Container{c("m", "busybox", corev1.PullNever)}},
			images("busybox:latest"), "", false},
		{"if-not-present, loaded, not in the registry", corev1.PodSpec{Containers: []corev1.Container{c("m", "gone:1", corev1.PullIfNotPresent)}},
			images("gone:1"), "", false},
		{"always pulls even when loaded (the kind latest-dev quirk)", corev1.PodSpec{Containers: []corev1.Container{
			c("m", "core-service:latest-dev", corev1.PullAlways)}}, images("core-service:latest-dev"),
			"i:false:m:ErrImagePull:core-service:latest-dev", false},
		{"default policy of a tagged image: IfNotPresent", corev1.PodSpec{Containers: []corev1.Container{c("m", "gone:1", "")}},
			nil, "i:false:m:ErrImagePull:gone:1", false},
		{"nothing can fail", corev1.PodSpec{Containers: []corev1.Container{c("m", "fine:1", corev1.PullAlways)}}, nil, "", true},
		{"the first failing init container stops there", corev1.PodSpec{
			InitContainers: []corev1.Container{c("i0", "fine:1", ""), c("i1", "gone:1", ""), c("i2", "x:1", corev1.PullNever)},
			Containers:     []corev1.Container{c("m", "y:1", corev1.PullNever)}}, nil, "i:true:i1:ErrImagePull:gone:1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pod(tc.spec)
			if got := !MayFailPull(p, reg); got != tc.mayNot {
				t.Errorf("MayFailPull = %t", !got)
			}
			v := Verdict{}.WithPulls(p, PullProblems(p, tc.on, reg))
			if got := v.Signature(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestWithPullsKeepsWhatTheKubeletReaches(t *testing.T) {
	p := pod(corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "i0"}, {Name: "i1"}},
		Containers:     []corev1.Container{{Name: "a"}, {Name: "b"}},
	})
	cfg := func(name string, init bool) ContainerFailure {
		return ContainerFailure{Container: name, Init: init, Message: "configmap \"x\" not found"}
	}
	pl := func(name string, init bool) PullFailure {
		return PullFailure{Container: name, Init: init, Image: "img", Reason: ErrImageNeverPull}
	}
	// An init container whose config fails before a later one's image.
	v := Verdict{Containers: []ContainerFailure{cfg("i0", true)}}.WithPulls(p, []PullFailure{pl("i1", true)})
	if len(v.Containers) != 1 || len(v.Pulls) != 0 {
		t.Errorf("init config first: %+v", v)
	}
	// The same container: the pull comes first. Main containers each.
	v = Verdict{Containers: []ContainerFailure{cfg("a", false), cfg("b", false)}}.WithPulls(p, []PullFailure{pl("a", false)})
	if len(v.Pulls) != 1 || len(v.Containers) != 1 || v.Containers[0].Container != "b" {
		t.Errorf("mains: %+v", v)
	}
	st := Status(p, Verdict{Pulls: []PullFailure{pl("i1", true)}}, "", time.Now())
	if st.InitContainerStatuses[0].State.Terminated == nil || st.InitContainerStatuses[1].State.Waiting.Reason != ErrImageNeverPull ||
		st.ContainerStatuses[0].State.Waiting.Reason != "PodInitializing" {
		t.Errorf("init statuses: %+v / %+v", st.InitContainerStatuses, st.ContainerStatuses)
	}
}

func TestPullStatusAndEvents(t *testing.T) {
	p := pod(corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "core-service:dev", ImagePullPolicy: corev1.PullNever}}})
	v := Verdict{Pulls: PullProblems(p, nil, nil)}
	st := Status(p, v, "", time.Now())
	if w := st.ContainerStatuses[0].State.Waiting; w == nil || w.Reason != ErrImageNeverPull ||
		w.Message != `Container image "core-service:dev" is not present with pull policy of Never` {
		t.Fatalf("never: %+v", st.ContainerStatuses[0])
	}
	if ev := Events(p, v, ""); len(ev) != 2 || ev[0].Reason != ErrImageNeverPull || ev[1].Message != "Error: ErrImageNeverPull" ||
		ev[0].FieldPath != "spec.containers{main}" {
		t.Fatalf("never events: %+v", ev)
	}
	p.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
	v = Verdict{Pulls: PullProblems(p, nil, missing{"core-service:dev": true})}
	if !v.needsPullPhase() {
		t.Fatal("ErrImagePull has a back-off phase")
	}
	if w := Status(p, v, ErrImagePull, time.Now()).ContainerStatuses[0].State.Waiting; w.Reason != ErrImagePull ||
		!strings.Contains(w.Message, `failed to resolve reference "core-service:dev": core-service:dev: not found`) {
		t.Fatalf("pull: %+v", w)
	}
	if w := Status(p, v, ImagePullBackOff, time.Now()).ContainerStatuses[0].State.Waiting; w.Reason != ImagePullBackOff ||
		!strings.HasPrefix(w.Message, `Back-off pulling image "core-service:dev": ErrImagePull: `) {
		t.Fatalf("back-off: %+v", w)
	}
	if ev := Events(p, v, ErrImagePull); len(ev) != 3 || ev[0].Reason != "Pulling" || ev[2].Message != "Error: ErrImagePull" {
		t.Fatalf("pull events: %+v", ev)
	}
	if ev := Events(p, v, ImagePullBackOff); len(ev) != 2 || ev[0].Reason != "BackOff" || ev[1].Message != "Error: ImagePullBackOff" {
		t.Fatalf("back-off events: %+v", ev)
	}
}

func TestMissingListFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "missing")
	m := &MissingList{Path: f}
	if m.Missing("a:1") {
		t.Fatal("no file: nothing is missing")
	}
	if err := os.WriteFile(f, []byte("# comment\nhub/kms/*:pr-*\nbusybox\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for img, want := range map[string]bool{"hub/kms/core:pr-1": true, "hub/kms/core:v1": false, "busybox": true, "busybox:latest": false} {
		if got := m.Missing(img); got != want {
			t.Errorf("%s: %t", img, got)
		}
	}
	if err := os.WriteFile(f, []byte("busybox:latest\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !m.Missing("busybox") || !m.Missing("busybox:latest") || m.Missing("hub/kms/core:pr-1") {
		t.Error("the file is read again when it changes")
	}
}

// The gate on the fake clientset: a pod whose image the node lacks under Never waits in
// ErrImageNeverPull until the node lists it (kind load); one whose image the registry lacks
// goes ErrImagePull -> ImagePullBackOff until the missing list lets it through.
func TestControllerGatesOnImages(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "kind-worker"}}
	never := pod(corev1.PodSpec{NodeName: "kind-worker", Containers: []corev1.Container{
		{Name: "main", Image: "core-service:latest-dev", ImagePullPolicy: corev1.PullNever}}})
	always := pod(corev1.PodSpec{NodeName: "kind-worker", Containers: []corev1.Container{
		{Name: "main", Image: "core-client:latest-dev", ImagePullPolicy: corev1.PullAlways}}})
	always.Name, always.UID = "always", "uid-always"
	unbound := pod(corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "x:1", ImagePullPolicy: corev1.PullNever}}})
	unbound.Name, unbound.UID = "unbound", "uid-unbound"
	list := filepath.Join(t.TempDir(), "missing")
	if err := os.WriteFile(list, []byte("core-client:latest-dev\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(node, never, always, unbound)
	factory := informers.NewSharedInformerFactory(client, 0)
	c := NewController(client, factory)
	c.PullBackOff, c.PullRecheck = 300*time.Millisecond, 50*time.Millisecond
	c.Registry = &MissingList{Path: list}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = c.Run(ctx, factory, 2, nil) }()
	get := func(name string) *corev1.Pod {
		got, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	waitingReason := func(name string) string {
		cs := get(name).Status.ContainerStatuses
		if len(cs) == 1 && cs[0].State.Waiting != nil {
			return cs[0].State.Waiting.Reason
		}
		return ""
	}
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	eventually("ErrImageNeverPull", func() bool { return waitingReason("p") == ErrImageNeverPull })
	eventually("ErrImagePull", func() bool { return waitingReason("always") == ErrImagePull })
	eventually("ImagePullBackOff", func() bool { return waitingReason("always") == ImagePullBackOff })
	if get("unbound").Annotations[AdmittedAnnotation] != "" || len(get("unbound").Status.ContainerStatuses) != 0 {
		t.Fatal("an unbound pod whose pull may fail was decided before it had a node")
	}
	n, _ := client.CoreV1().Nodes().Get(ctx, "kind-worker", metav1.GetOptions{})
	n.Status.Images = images("core-service:latest-dev")
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("admission once the node has the image", func() bool { return get("p").Annotations[AdmittedAnnotation] == "true" })
	if get("always").Annotations[AdmittedAnnotation] != "" {
		t.Fatal("the Always pod was admitted while the registry lacks its image")
	}
	if err := os.WriteFile(list, []byte("# nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually("admission once the registry has the image", func() bool { return get("always").Annotations[AdmittedAnnotation] == "true" })
}

func TestNeedsPull(t *testing.T) {
	c := func(image string, p corev1.PullPolicy) corev1.Container {
		return corev1.Container{Name: "m", Image: image, ImagePullPolicy: p}
	}
	loaded := []corev1.ContainerImage{{Names: []string{"core:pr-7"}}}
	for _, tc := range []struct {
		name string
		spec corev1.PodSpec
		want bool
	}{
		{"loaded, IfNotPresent", corev1.PodSpec{Containers: []corev1.Container{c("core:pr-7", corev1.PullIfNotPresent)}}, false},
		{"loaded, Never", corev1.PodSpec{Containers: []corev1.Container{c("core:pr-7", corev1.PullNever)}}, false},
		{"loaded, Always", corev1.PodSpec{Containers: []corev1.Container{c("core:pr-7", corev1.PullAlways)}}, true},
		{"not loaded, IfNotPresent", corev1.PodSpec{Containers: []corev1.Container{c("core:pr-8", corev1.PullIfNotPresent)}}, true},
		{"an init container pulls", corev1.PodSpec{
			InitContainers: []corev1.Container{c("init:1", corev1.PullIfNotPresent)},
			Containers:     []corev1.Container{c("core:pr-7", corev1.PullIfNotPresent)}}, true},
	} {
		if got := NeedsPull(&corev1.Pod{Spec: tc.spec}, loaded); got != tc.want {
			t.Errorf("%s: NeedsPull = %v, want %v", tc.name, got, tc.want)
		}
	}
}
