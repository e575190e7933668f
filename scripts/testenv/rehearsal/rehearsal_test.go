// Unit tests of the reference resolution, the status it writes and the controller's gate,
// against client-go's fake clientset (no cluster needed: `testenv.sh unit`).
package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

const ns = "kms"

func cm(name string, data map[string]string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: data}
}

func secret(name string, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func pod(spec corev1.PodSpec) *corev1.Pod {
	if len(spec.Containers) == 0 {
		spec.Containers = []corev1.Container{{Name: "main", Image: "zama-ai/kms-core-service:v0.12.0"}}
	}
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: ns, UID: "uid-p"}, Spec: spec}
}

func container(env []corev1.EnvVar, from []corev1.EnvFromSource) corev1.Container {
	return corev1.Container{Name: "main", Image: "img", Env: env, EnvFrom: from}
}

// clientGetter reads through the fake clientset (as the controller's live fallback does).
type clientGetter struct{ objs []runtime.Object }

func (g clientGetter) getter(t *testing.T) Getter {
	t.Helper()
	client := fake.NewClientset(g.objs...)
	factory := informers.NewSharedInformerFactory(client, 0)
	c := NewController(client, factory)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return getter{ctx, c}
}

func cmKey(name, key string, opt bool) corev1.EnvVar {
	return corev1.EnvVar{Name: "V", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: &opt}}}
}

func secretKey(name, key string, opt bool) corev1.EnvVar {
	return corev1.EnvVar{Name: "V", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: &opt}}}
}

func TestResolve(t *testing.T) {
	objs := []runtime.Object{cm("cfg", map[string]string{"a": "1"}), secret("creds", map[string]string{"pw": "x"})}
	cmFrom := func(name string, opt bool) corev1.EnvFromSource {
		return corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: &opt}}
	}
	secretFrom := func(name string, opt bool) corev1.EnvFromSource {
		return corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: &opt}}
	}
	cmVol := func(name string, opt bool, keys ...string) corev1.Volume {
		src := &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Optional: &opt}
		for _, k := range keys {
			src.Items = append(src.Items, corev1.KeyToPath{Key: k, Path: k})
		}
		return corev1.Volume{Name: "vol", VolumeSource: corev1.VolumeSource{ConfigMap: src}}
	}
	withMain := func(c corev1.Container) corev1.PodSpec { return corev1.PodSpec{Containers: []corev1.Container{c}} }
	cases := []struct {
		name string
		spec corev1.PodSpec
		want string // the signature; "" = OK
	}{
		{"no references", corev1.PodSpec{}, ""},
		{"all present", withMain(container([]corev1.EnvVar{cmKey("cfg", "a", false), secretKey("creds", "pw", false)},
			[]corev1.EnvFromSource{cmFrom("cfg", false), secretFrom("creds", false)})), ""},
		{"missing configmap key ref", withMain(container([]corev1.EnvVar{cmKey("nope", "a", false)}, nil)),
			`c:false:main:configmap "nope" not found`},
		{"missing key", withMain(container([]corev1.EnvVar{cmKey("cfg", "b", false)}, nil)),
			`c:false:main:couldn't find key b in ConfigMap kms/cfg`},
		{"missing secret key", withMain(container([]corev1.EnvVar{secretKey("creds", "user", false)}, nil)),
			`c:false:main:couldn't find key user in Secret kms/creds`},
		{"optional missing configmap and key", withMain(container(
			[]corev1.EnvVar{cmKey("nope", "a", true), cmKey("cfg", "b", true), secretKey("nope", "x", true)}, nil)), ""},
		{"missing secret in envFrom", withMain(container(nil, []corev1.EnvFromSource{secretFrom("nope", false)})),
			`c:false:main:secret "nope" not found`},
		{"optional envFrom", withMain(container(nil, []corev1.EnvFromSource{cmFrom("nope", true), secretFrom("nope", true)})), ""},
		{"envFrom is checked before env", withMain(container([]corev1.EnvVar{cmKey("a", "k", false)},
			[]corev1.EnvFromSource{cmFrom("b", false)})), `c:false:main:configmap "b" not found`},
		{"configmap volume", corev1.PodSpec{Volumes: []corev1.Volume{cmVol("nope", false)}},
			`m:vol:configmap "nope" not found`},
		{"optional configmap volume", corev1.PodSpec{Volumes: []corev1.Volume{cmVol("nope", true, "x")}}, ""},
		{"configmap volume item", corev1.PodSpec{Volumes: []corev1.Volume{cmVol("cfg", false, "a", "zz")}},
			`m:vol:configmap references non-existent config key: zz`},
		{"secret volume item", corev1.PodSpec{Volumes: []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: "creds", Items: []corev1.KeyToPath{{Key: "nokey", Path: "k"}}}}}}},
			`m:s:references non-existent secret key: nokey`},
		{"projected", corev1.PodSpec{Volumes: []corev1.Volume{{Name: "pr", VolumeSource: corev1.VolumeSource{
			Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}},
				{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}}},
				{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"},
					Items: []corev1.KeyToPath{{Key: "q", Path: "q"}}}},
				{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}},
			}}}}}},
			`m:pr:[secret "gone" not found, configmap references non-existent config key: q]`},
		{"pull secret", corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "creds"}, {Name: "regcred"}}},
			`p:regcred`},
		{"first failing init container stops there", corev1.PodSpec{
			InitContainers: []corev1.Container{
				{Name: "ok"},
				{Name: "i1", Env: []corev1.EnvVar{cmKey("nope", "a", false)}},
				{Name: "i2", Env: []corev1.EnvVar{cmKey("nope2", "a", false)}}},
			Containers: []corev1.Container{{Name: "main", Env: []corev1.EnvVar{cmKey("nope3", "a", false)}}}},
			`c:true:i1:configmap "nope" not found`},
		{"every failing main container", corev1.PodSpec{Containers: []corev1.Container{
			{Name: "a", Env: []corev1.EnvVar{cmKey("x", "k", false)}}, {Name: "b"},
			{Name: "c", EnvFrom: []corev1.EnvFromSource{secretFrom("y", false)}}}},
			`c:false:a:configmap "x" not found|c:false:c:secret "y" not found`},
	}
	g := clientGetter{objs}.getter(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Resolve(pod(tc.spec), g)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.Signature(); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
			if v.OK() != (tc.want == "") {
				t.Errorf("OK() = %t", v.OK())
			}
		})
	}
}

func TestStatusAndEvents(t *testing.T) {
	p := pod(corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}}})
	v := Verdict{PullSecrets: []string{"regcred"}}
	st := Status(p, v, ErrImagePull, time.Now())
	w := st.ContainerStatuses[0].State.Waiting
	if w == nil || w.Reason != ErrImagePull || !strings.Contains(w.Message, `"regcred"`) {
		t.Fatalf("pull status: %+v", st.ContainerStatuses[0])
	}
	st = Status(p, v, ImagePullBackOff, time.Now())
	if w := st.ContainerStatuses[0].State.Waiting; w.Reason != ImagePullBackOff || !strings.Contains(w.Message, "Back-off pulling image") {
		t.Fatalf("back-off status: %+v", w)
	}
	ev := Events(p, v, ErrImagePull)
	if ev[0].Reason != "FailedToRetrieveImagePullSecret" || !strings.Contains(ev[0].Message, "(regcred)") {
		t.Fatalf("events: %+v", ev)
	}

	init := pod(corev1.PodSpec{InitContainers: []corev1.Container{{Name: "a"}, {Name: "b"}}})
	v = Verdict{Containers: []ContainerFailure{{Container: "b", Init: true, Message: `configmap "x" not found`}}}
	st = Status(init, v, "", time.Now())
	if st.InitContainerStatuses[0].State.Terminated == nil || st.InitContainerStatuses[1].State.Waiting.Reason != "CreateContainerConfigError" {
		t.Fatalf("init statuses: %+v", st.InitContainerStatuses)
	}
	if st.ContainerStatuses[0].State.Waiting.Reason != "PodInitializing" {
		t.Fatalf("main status: %+v", st.ContainerStatuses[0])
	}
	for _, c := range st.Conditions {
		if c.Type == corev1.PodInitialized && (c.Status != corev1.ConditionFalse || c.Message != "containers with incomplete status: [b]") {
			t.Fatalf("Initialized: %+v", c)
		}
	}
	ev = Events(init, v, "")
	if len(ev) != 1 || ev[0].Reason != "Failed" || ev[0].Message != `Error: configmap "x" not found` ||
		ev[0].FieldPath != "spec.initContainers{b}" {
		t.Fatalf("events: %+v", ev)
	}
	ev = Events(init, Verdict{Mounts: []MountFailure{{"cfg", `configmap "x" not found`}}}, "")
	if ev[0].Reason != "FailedMount" || ev[0].Message != `MountVolume.SetUp failed for volume "cfg" : configmap "x" not found` {
		t.Fatalf("mount events: %+v", ev)
	}
}

// The gate end to end on the fake clientset: a pod missing its ConfigMap is refused with the
// kubelet's status and event, and admitted once the ConfigMap appears.
func TestControllerRefusesThenAdmits(t *testing.T) {
	p := pod(corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{
		container([]corev1.EnvVar{cmKey("later", "k", false)}, nil)}})
	ok := pod(corev1.PodSpec{NodeName: "n1"})
	ok.Name, ok.UID = "ok", "uid-ok"
	client := fake.NewClientset(p, ok)
	factory := informers.NewSharedInformerFactory(client, 0)
	c := NewController(client, factory)
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
	eventually := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	eventually("the pod without references to be admitted", func() bool { return get("ok").Annotations[AdmittedAnnotation] == "true" })
	eventually("CreateContainerConfigError", func() bool {
		cs := get("p").Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "CreateContainerConfigError" &&
			cs[0].State.Waiting.Message == `configmap "later" not found`
	})
	eventually("the kubelet's Failed event", func() bool {
		evs, _ := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
		for _, e := range evs.Items {
			if e.Reason == "Failed" && e.Message == `Error: configmap "later" not found` && e.Source.Component == "kubelet" &&
				e.InvolvedObject.FieldPath == "spec.containers{main}" {
				return true
			}
		}
		return false
	})
	if get("p").Annotations[AdmittedAnnotation] != "" {
		t.Fatal("refused pod was admitted")
	}
	if _, err := client.CoreV1().ConfigMaps(ns).Create(ctx, cm("later", map[string]string{"k": "v"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually("admission once the ConfigMap exists", func() bool { return get("p").Annotations[AdmittedAnnotation] == "true" })
}

func TestProfiles(t *testing.T) {
	env := map[string]string{"TESTENV_KIND_WORKER_CPU": "8"}
	getenv := func(k string) string { return env[k] }
	if got := Expand("${A:-x} ${TESTENV_KIND_WORKER_CPU:-64} ${B}", getenv); got != "x 8 " {
		t.Fatalf("Expand: %q", got)
	}
	for _, tc := range []struct {
		file  string
		nodes int
		check func(t *testing.T, nodes []corev1.Node)
	}{
		{"generic", 3, func(t *testing.T, nodes []corev1.Node) {
			if nodes[1].Name != "testenv-node-1" || nodes[1].Labels["topology.kubernetes.io/zone"] != "us-east-1b" ||
				nodes[2].Labels["node.kubernetes.io/instance-type"] != "c5.xlarge" || len(nodes[0].Spec.Taints) != 0 {
				t.Fatalf("generic: %+v", nodes[1])
			}
		}},
		{"kind", 2, func(t *testing.T, nodes []corev1.Node) {
			cpu := nodes[1].Status.Allocatable[corev1.ResourceCPU]
			if nodes[0].Spec.Taints[0].Key != "node-role.kubernetes.io/control-plane" || cpu.String() != "8" {
				t.Fatalf("kind: %+v", nodes)
			}
		}},
		{"eks", 5, func(t *testing.T, nodes []corev1.Node) {
			// 13 parties of 12 CPU / 24Gi fit on the spot pool.
			parties := 0
			for _, n := range nodes {
				if n.Labels["karpenter.sh/nodepool"] != "kms-bench-spot-64" {
					continue
				}
				cpu, mem := n.Status.Allocatable[corev1.ResourceCPU], n.Status.Allocatable[corev1.ResourceMemory]
				parties += min(int(cpu.MilliValue()/12000), int(mem.Value()/(24<<30)))
				if n.Spec.Taints[0].Value != "kms-bench-spot-64" || n.Labels["node.kubernetes.io/instance-type"] == "" {
					t.Fatalf("eks spot node: %+v", n)
				}
			}
			if parties < 13 {
				t.Fatalf("the spot pool holds %d parties, want >= 13", parties)
			}
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data, err := readProfile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			p, err := LoadProfile(data, getenv)
			if err != nil {
				t.Fatal(err)
			}
			nodes, err := p.Nodes()
			if err != nil {
				t.Fatal(err)
			}
			if len(nodes) != tc.nodes || len(p.StorageClasses) != 1 {
				t.Fatalf("%d nodes, %d classes", len(nodes), len(p.StorageClasses))
			}
			for _, n := range nodes {
				for _, l := range []string{"kubernetes.io/hostname", "kubernetes.io/os", "kubernetes.io/arch"} {
					if n.Labels[l] == "" {
						t.Fatalf("%s: no %s", n.Name, l)
					}
				}
			}
			tc.check(t, nodes)
			if _, err := p.Render(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func readProfile(name string) ([]byte, error) { return readFile("../profiles/" + name + ".yaml") }

func readFile(path string) ([]byte, error) { return os.ReadFile(path) }
