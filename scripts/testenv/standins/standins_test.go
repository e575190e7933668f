// Unit tests of the stand-ins (no cluster: client-go's fake clientset plays the apiserver;
// `testenv.sh unit` runs them). The kind config and Dockerfiles under tests/kms-repo are the
// inputs the KMS playbooks pass, so they are read from there.
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
)

const kmsRepo = "../../../tests/kms-repo"

var kindConfig = filepath.Join(kmsRepo, "ci/kube-testing/infra/kind-config.yaml")

// world is an Env over temp dirs, a fake apiserver with the kind profile's two nodes, and a
// private $KUBECONFIG seeded with the environment's context (as scripts/rehearse makes it).
type world struct {
	t      *testing.T
	e      *Env
	client *fake.Clientset
	vars   map[string]string
	out    *bytes.Buffer
	err    *bytes.Buffer
}

func kindNode(name string, cp bool) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	if cp {
		n.Labels[controlPlaneLabel] = ""
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"),
		corev1.ResourcePods: resource.MustParse("110"),
	}
	n.Status.Capacity, n.Status.Allocatable = capacity, capacity.DeepCopy()
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	return n
}

func newWorld(t *testing.T, objs ...runtime.Object) *world {
	t.Helper()
	dir := t.TempDir()
	if objs == nil {
		objs = []runtime.Object{kindNode("kind-control-plane", true), kindNode("kind-worker", false)}
	}
	objs = append(objs,
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "testenv-marker", Namespace: "kube-system"}, Data: map[string]string{"profile": "kind"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system"}})
	client := fake.NewClientset(objs...)
	// The fake tracker has no delete-collection; pods are not modelled here anyway.
	client.PrependReactor("delete-collection", "pods", func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, nil })
	pki := filepath.Join(dir, "kwok", "pki")
	must(t, os.MkdirAll(pki, 0o755))
	for f, data := range map[string]string{"ca.crt": "CA", "admin.crt": "CERT", "admin.key": "KEY"} {
		must(t, os.WriteFile(filepath.Join(pki, f), []byte(data), 0o600))
	}
	envKC := filepath.Join(dir, "kwok", "kubeconfig.yaml")
	must(t, os.WriteFile(envKC, []byte(`apiVersion: v1
kind: Config
clusters:
- name: kwok-testenv
  cluster: {server: "https://127.0.0.1:21903", certificate-authority: pki/ca.crt}
users:
- name: kwok-testenv
  user: {client-certificate: pki/admin.crt, client-key: pki/admin.key}
contexts:
- name: kwok-testenv
  context: {cluster: kwok-testenv, user: kwok-testenv}
current-context: kwok-testenv
`), 0o600))
	private := filepath.Join(dir, "rehearse", "kubeconfig")
	must(t, os.MkdirAll(filepath.Dir(private), 0o755))
	b, _ := os.ReadFile(envKC)
	must(t, os.WriteFile(private, bytes.ReplaceAll(b, []byte("pki/"), []byte(pki+"/")), 0o600))
	w := &world{t: t, client: client, out: &bytes.Buffer{}, err: &bytes.Buffer{},
		vars: map[string]string{"KUBECONFIG": private, "TESTENV_K8S_VERSION": "v1.36.1", "HOME": filepath.Join(dir, "home")}}
	w.e = &Env{Dir: dir, Kubeconfig: envKC, Getenv: func(k string) string { return w.vars[k] },
		Stdin: strings.NewReader(""), Stdout: w.out, Stderr: w.err, Now: time.Now, Client: client, Poll: time.Millisecond}
	return w
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// run is one command line; it returns the exit code, and the output stays in w.out / w.err.
func (w *world) run(prog string, args ...string) int {
	w.out.Reset()
	w.err.Reset()
	return Main(w.e, append([]string{"/x/" + prog}, args...))
}

func (w *world) ok(prog string, args ...string) string {
	w.t.Helper()
	if code := w.run(prog, args...); code != 0 {
		w.t.Fatalf("%s %v: exit %d\nstdout: %s\nstderr: %s", prog, args, code, w.out, w.err)
	}
	return w.out.String()
}

func (w *world) fails(code int, wantErr string, prog string, args ...string) {
	w.t.Helper()
	if got := w.run(prog, args...); got != code || !strings.Contains(w.err.String(), wantErr) {
		w.t.Fatalf("%s %v: exit %d (want %d), stderr:\n%s\nwant it to contain: %s", prog, args, got, code, w.err, wantErr)
	}
}

func (w *world) node(name string) *corev1.Node {
	w.t.Helper()
	n, err := w.client.CoreV1().Nodes().Get(w.t.Context(), name, metav1.GetOptions{})
	must(w.t, err)
	return n
}

func writeFile(t *testing.T, path, text string) string {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

// ---- kind configs ----------------------------------------------------------------------------

func TestTheKMSKindConfigMapsOntoTheKindProfile(t *testing.T) {
	raw, err := os.ReadFile(kindConfig)
	must(t, err)
	cfg, err := ParseKindConfig(raw)
	must(t, err)
	must(t, ValidateKindConfig(cfg, "kms-test"))
	env := []EnvNode{{"kind-worker", false}, {"kind-control-plane", true}}
	var warnings []string
	plans, err := PlanNodes("kms-test", cfg, env, "kind", func(s string) { warnings = append(warnings, s) })
	must(t, err)
	if len(warnings) > 0 {
		t.Errorf("warnings: %v", warnings)
	}
	if len(plans) != 2 || plans[0].KindName != "kms-test-control-plane" || plans[0].Node != "kind-control-plane" ||
		plans[1].KindName != "kms-test-worker" || plans[1].Node != "kind-worker" {
		t.Fatalf("plans: %+v", plans)
	}
	// system-reserved from InitConfiguration (control plane) and JoinConfiguration (worker),
	// plus the kubelet's default 100Mi memory eviction threshold.
	cp, wk := plans[0].Reserved, plans[1].Reserved
	for _, c := range []struct {
		got  resource.Quantity
		want string
	}{{cp["cpu"], "500m"}, {cp["memory"], "1124Mi"}, {wk["cpu"], "1"}, {wk["memory"], "2148Mi"}} {
		if c.got.Cmp(resource.MustParse(c.want)) != 0 {
			t.Errorf("reserved %s, want %s (control plane %v, worker %v)", c.got.String(), c.want, cp, wk)
		}
	}
	alloc, err := Allocatable(kindNode("n", false).Status.Capacity, wk)
	must(t, err)
	if got := alloc[corev1.ResourceMemory]; got.Cmp(resource.MustParse("259996Mi")) != 0 {
		t.Errorf("worker allocatable memory %s", got.String())
	}
	if _, err := Allocatable(kindNode("n", false).Status.Capacity, map[string]resource.Quantity{"cpu": resource.MustParse("65")}); err == nil ||
		!strings.Contains(err.Error(), "reserved cpu 65 exceeds the node's capacity 64") {
		t.Errorf("over-reserving: %v", err)
	}
}

func TestKindConfigErrorsAreKinds(t *testing.T) {
	for _, c := range []struct{ name, config, want string }{
		{"unknown field", "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: worker\n  rol: x\n",
			"unable to decode config: yaml: unmarshal errors:\n  line 5: field rol not found in type v1alpha4.Node"},
		{"api version", "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha5\n", "unknown apiVersion: kind.x-k8s.io/v1alpha5"},
		{"kind", "kind: Config\napiVersion: kind.x-k8s.io/v1alpha4\n", "unknown kind kind.x-k8s.io/v1alpha4 for apiVersion: Config"},
		{"not yaml", "kind: [", "could not determine kind / apiVersion for config"},
	} {
		if _, err := ParseKindConfig([]byte(c.config)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	for _, c := range []struct{ name, config, cluster, want string }{
		{"role", "nodes: [{role: control-plane}, {role: boss}]", "x", `invalid configuration for node 1: "boss" is not a valid node role`},
		{"no control plane", "nodes: [{role: worker}]", "x", "must have at least one control-plane node"},
		{"name", "nodes: [{role: control-plane}]", "Kms", "'Kms' is not a valid cluster name, cluster names must match `^[a-z0-9.-]+$`"},
		{"two problems", "networking: {ipFamily: ipv5}\nnodes: [{role: worker}]", "x", "[invalid ipFamily: ipv5, "},
		{"subnet", "networking: {podSubnet: 10.0.0.0/33}", "x", "invalid pod subnet failed to parse cidr value:\"10.0.0.0/33\""},
		{"port", "nodes: [{role: control-plane, extraPortMappings: [{containerPort: 70000}]}]", "x", "invalid containerPort: invalid port number: 70000"},
	} {
		cfg, err := ParseKindConfig([]byte("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n" + c.config + "\n"))
		must(t, err)
		if err := ValidateKindConfig(cfg, c.cluster); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func TestNodesMustMatchTheEnvironment(t *testing.T) {
	generic := []EnvNode{{"testenv-node-0", false}, {"testenv-node-1", false}, {"testenv-node-2", false}}
	cfg := DefaultKindConfig()
	_, err := PlanNodes("kind", cfg, generic, "generic", func(string) {})
	want := "the config asks for 1 control-plane node and 0 workers, but the test environment (profile generic) has " +
		"0 control-plane nodes and 3 workers (testenv-node-0, testenv-node-1, testenv-node-2)"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "TESTENV_PROFILE=kind") {
		t.Errorf("generic: %v", err)
	}
	cfg, _ = ParseKindConfig([]byte("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes: [{role: control-plane}, {role: worker}, {role: worker}]\n"))
	_, err = PlanNodes("kind", cfg, []EnvNode{{"kind-control-plane", true}, {"kind-worker", false}}, "kind", func(string) {})
	if err == nil || !strings.Contains(err.Error(), "asks for 1 control-plane node and 2 workers, but the test environment (profile kind) has 1 control-plane node (kind-control-plane) and 1 worker (kind-worker)") {
		t.Errorf("two workers: %v", err)
	}
}

func TestPatchesMustParseAndOddOnesAreNamed(t *testing.T) {
	var warnings []string
	warn := func(s string) { warnings = append(warnings, s) }
	if _, err := ParsePatches([]string{"kind: InitConfiguration\nnodeRegistration:\n  kubeletExtraArgs: [\n"}, "node 0", warn); err == nil ||
		!strings.Contains(err.Error(), "failed to parse patches: yaml: line 3") {
		t.Errorf("broken YAML: %v", err)
	}
	if _, err := ParsePatches([]string{"just a string"}, "cluster", warn); err == nil || !strings.Contains(err.Error(), "is not a YAML mapping") {
		t.Errorf("scalar: %v", err)
	}
	ps, err := ParsePatches([]string{"kind: InitConfig\n---\napiVersion: kubeadm.k8s.io/v1beta9\nkind: JoinConfiguration\n---\nfoo: 1\n"}, "node 1", warn)
	must(t, err)
	if len(ps) != 3 || len(warnings) != 3 || !strings.Contains(warnings[0], "node 1 kubeadmConfigPatches[0] has kind InitConfig") ||
		!strings.Contains(warnings[1], "apiVersion kubeadm.k8s.io/v1beta9") || !strings.Contains(warnings[2], "has no kind") {
		t.Errorf("patches %v, warnings %q", ps, warnings)
	}
	// v1beta4's list form of kubeletExtraArgs, a KubeletConfiguration, and flags over config.
	r, err := reserved([]Patch{
		{Kind: "KubeletConfiguration", Doc: map[string]any{"systemReserved": map[string]any{"cpu": "2"}, "kubeReserved": map[string]any{"memory": "1Gi"},
			"evictionHard": map[string]any{"memory.available": "200Mi"}}},
		{Kind: "JoinConfiguration", Doc: map[string]any{"nodeRegistration": map[string]any{"kubeletExtraArgs": []any{
			map[string]any{"name": "system-reserved", "value": "cpu=500m"}}}}},
		{Kind: "InitConfiguration", Doc: map[string]any{"nodeRegistration": map[string]any{"kubeletExtraArgs": map[string]any{"system-reserved": "cpu=7"}}}},
	}, false)
	must(t, err)
	if cpu, mem := r["cpu"], r["memory"]; cpu.Cmp(resource.MustParse("500m")) != 0 || mem.Cmp(resource.MustParse("1224Mi")) != 0 {
		t.Errorf("reserved %v", r)
	}
	if _, err := reserved([]Patch{{Kind: "JoinConfiguration", Doc: map[string]any{"nodeRegistration": map[string]any{"kubeletExtraArgs": map[string]any{"system-reserved": "cpu"}}}}}, false); err == nil {
		t.Error("a malformed --system-reserved passed")
	}
}

// ---- kubeconfig --------------------------------------------------------------------------------

func TestKubeconfigPathsFollowKubectl(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	env := func(kc string) func(string) string {
		return func(k string) string { return map[string]string{"KUBECONFIG": kc, "HOME": "/home/u"}[k] }
	}
	for _, c := range []struct{ explicit, kc, want string }{
		{"/x", a, "/x"},
		{"", "", "/home/u/.kube/config"},
		{"", a + ":" + b, b}, // none exists: the last
		{"", a, a},
	} {
		if got := KubeconfigForMerge(c.explicit, env(c.kc)); got != c.want {
			t.Errorf("%+v: %s", c, got)
		}
	}
	writeFile(t, a, "")
	if got := KubeconfigForMerge("", env(b+"::"+a)); got != a {
		t.Errorf("the first that exists: %s", got)
	}
}

func TestMergeAndRemoveKeepOtherEntries(t *testing.T) {
	w := newWorld(t)
	creds, err := CredentialsFrom(w.e.Kubeconfig)
	must(t, err)
	if string(creds.CAData) != "CA" || string(creds.ClientKeyData) != "KEY" || creds.Server != "https://127.0.0.1:21903" {
		t.Fatalf("credentials %+v", creds)
	}
	path, err := MergeKind("kms-test", creds, "", w.e.Getenv)
	must(t, err)
	cfg, err := clientcmd.LoadFromFile(path)
	must(t, err)
	if cfg.CurrentContext != "kind-kms-test" || cfg.Contexts["kwok-testenv"] == nil || string(cfg.Clusters["kind-kms-test"].CertificateAuthorityData) != "CA" ||
		cfg.Contexts["kind-kms-test"].AuthInfo != "kind-kms-test" || string(cfg.AuthInfos["kind-kms-test"].ClientCertificateData) != "CERT" {
		t.Fatalf("merged: %+v", cfg)
	}
	if _, err := os.Stat(path + ".lock"); !os.IsNotExist(err) {
		t.Error("the lock is left behind")
	}
	changed, err := RemoveKind("kms-test", "", w.e.Getenv)
	must(t, err)
	cfg, _ = clientcmd.LoadFromFile(path)
	if !changed || cfg.CurrentContext != "" || cfg.Contexts["kind-kms-test"] != nil || cfg.Clusters["kind-kms-test"] != nil || cfg.Contexts["kwok-testenv"] == nil {
		t.Fatalf("after remove: %+v", cfg)
	}
	if changed, _ := RemoveKind("kms-test", "", w.e.Getenv); changed {
		t.Error("a second remove changed the file")
	}
}

// ---- kind CLI ----------------------------------------------------------------------------------

func TestKindLifecycleOnTheEnvironment(t *testing.T) {
	w := newWorld(t)
	w.run("kind", "get", "clusters")
	if w.out.String() != "" || !strings.Contains(w.err.String(), "No kind clusters found.") {
		t.Fatalf("empty list: %q %q", w.out, w.err)
	}
	cfg := writeFile(t, filepath.Join(t.TempDir(), "c.yaml"), "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n"+
		"- role: control-plane\n- role: worker\n  labels: {ingress-ready: \"true\"}\n  kubeadmConfigPatches:\n  - |\n    kind: JoinConfiguration\n"+
		"    nodeRegistration: {kubeletExtraArgs: {system-reserved: \"cpu=1,memory=2Gi\"}}\n")
	w.ok("kind", "create", "cluster", "--name", "kms-test", "--config", cfg, "--wait", "60s")
	for _, want := range []string{`Creating cluster "kms-test" ...`, "Ensuring node image (kindest/node:v1.36.1)", `Set kubectl context to "kind-kms-test"`,
		"kms-test-worker = kind-worker"} {
		if !strings.Contains(w.err.String(), want) {
			t.Errorf("create output lacks %q:\n%s", want, w.err)
		}
	}
	kc, _ := clientcmd.LoadFromFile(w.vars["KUBECONFIG"])
	if kc.CurrentContext != "kind-kms-test" || kc.Clusters["kind-kms-test"].Server != "https://127.0.0.1:21903" {
		t.Fatalf("kubeconfig: %+v", kc)
	}
	worker := w.node("kind-worker")
	if worker.Labels["ingress-ready"] != "true" {
		t.Errorf("labels %v", worker.Labels)
	}
	if got := worker.Status.Allocatable[corev1.ResourceCPU]; got.Cmp(resource.MustParse("63")) != 0 {
		t.Errorf("worker allocatable cpu %s", got.String())
	}
	if got := w.ok("kind", "get", "clusters"); got != "kms-test\n" {
		t.Errorf("clusters %q", got)
	}
	if got := w.ok("kind", "get", "nodes", "--name", "kms-test"); got != "kms-test-control-plane\nkms-test-worker\n" {
		t.Errorf("nodes %q", got)
	}
	if got := w.ok("kind", "get", "kubeconfig", "--name", "kms-test"); !strings.Contains(got, "current-context: kind-kms-test") {
		t.Errorf("get kubeconfig: %s", got)
	}
	w.fails(1, `ERROR: failed to create cluster: node(s) already exist for a cluster with the name "kms-test"`,
		"kind", "create", "cluster", "--name", "kms-test", "--config", cfg)
	w.fails(1, `the test environment already holds kind cluster "kms-test"`, "kind", "create", "cluster", "--name", "other", "--config", cfg)

	// Images: only what the docker stand-in has; onto the named nodes; once.
	w.fails(1, `ERROR: image: "core-service:latest-dev" not present locally`, "kind", "load", "docker-image", "core-service:latest-dev", "--name", "kms-test")
	w.ok("docker", "build", "-t", "core-service:latest-dev", "-f", filepath.Join(kmsRepo, "docker/core/service/Dockerfile"), kmsRepo)
	w.fails(1, "ERROR: unknown node: kms-test-worker2", "kind", "load", "docker-image", "core-service:latest-dev", "--name", "kms-test", "--nodes", "kms-test-worker2")
	w.fails(1, `ERROR: no nodes found for cluster "nope"`, "kind", "load", "docker-image", "core-service:latest-dev", "--name", "nope")
	w.ok("kind", "load", "docker-image", "core-service:latest-dev", "--name", "kms-test", "--nodes", "kms-test-worker")
	if !strings.Contains(w.err.String(), `not yet present on node "kms-test-worker", loading...`) {
		t.Errorf("load output: %s", w.err)
	}
	if imgs := w.node("kind-worker").Status.Images; len(imgs) != 1 || imgs[0].Names[0] != "core-service:latest-dev" {
		t.Errorf("worker images %+v", imgs)
	}
	if imgs := w.node("kind-control-plane").Status.Images; len(imgs) != 0 {
		t.Errorf("control-plane images %+v", imgs)
	}
	w.ok("kind", "load", "docker-image", "core-service:latest-dev", "--name", "kms-test", "--nodes", "kms-test-worker")
	if !strings.Contains(w.err.String(), "found to be already present on all nodes") {
		t.Errorf("second load: %s", w.err)
	}

	// Delete: the namespaces made since go, the nodes get back what they had.
	ctx := t.Context()
	_, err := w.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kms-test"}}, metav1.CreateOptions{})
	must(t, err)
	_, err = w.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "it-x", Labels: map[string]string{testOwnerLabel: "it"}}}, metav1.CreateOptions{})
	must(t, err)
	w.ok("kind", "delete", "cluster", "--name", "kms-test")
	if !strings.Contains(w.err.String(), `Deleted nodes: ["kms-test-control-plane" "kms-test-worker"]`) || !strings.Contains(w.err.String(), "namespaces created in the cluster: kms-test") {
		t.Errorf("delete output: %s", w.err)
	}
	nss, _ := Namespaces(ctx, w.client)
	if nss["kms-test"] != nil || nss["it-x"] == nil || nss["default"] == nil {
		t.Errorf("namespaces after delete: %v", nss)
	}
	worker = w.node("kind-worker")
	if _, ok := worker.Labels["ingress-ready"]; ok || len(worker.Status.Images) != 0 {
		t.Errorf("worker after delete: labels %v images %v", worker.Labels, worker.Status.Images)
	}
	if got := worker.Status.Allocatable[corev1.ResourceCPU]; got.Cmp(resource.MustParse("64")) != 0 {
		t.Errorf("allocatable not restored: %s", got.String())
	}
	kc, _ = clientcmd.LoadFromFile(w.vars["KUBECONFIG"])
	if kc.Contexts["kind-kms-test"] != nil || kc.Contexts["kwok-testenv"] == nil {
		t.Errorf("kubeconfig after delete: %v", kc.Contexts)
	}
	w.ok("kind", "delete", "cluster", "--name", "kms-test") // gone: like kind, nothing to do and no error
	if got := w.ok("kind", "version"); !strings.HasPrefix(got, "kind v0.30.0-testenv go") {
		t.Errorf("version %q", got)
	}
}

func TestKindCreateRefusesLikeKind(t *testing.T) {
	w := newWorld(t)
	w.fails(1, "ERROR: failed to create cluster: the config asks for 1 control-plane node and 0 workers", "kind", "create", "cluster")
	w.fails(1, "ERROR: failed to create cluster: error reading file", "kind", "create", "cluster", "--config", "/nonexistent.yaml")
	bad := writeFile(t, filepath.Join(t.TempDir(), "bad.yaml"), "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n"+
		"  kubeadmConfigPatches:\n  - |\n    kind: JoinConfiguration\n    nodeRegistration: {kubeletExtraArgs: [\n")
	w.fails(1, "ERROR: failed to create cluster: failed to generate kubeadm config content: failed to parse patches:", "kind", "create", "cluster", "--config", bad)
	w.fails(1, "ERROR: unknown flag: --nme", "kind", "create", "cluster", "--nme", "x")
	w.fails(1, `ERROR: unknown command "frobnicate clusters" for "kind"`, "kind", "frobnicate", "clusters")
	// Nothing was recorded or changed by the refusals.
	if got := w.ok("kind", "get", "clusters"); got != "" {
		t.Errorf("clusters after refusals: %q", got)
	}
	// stdin config, KIND_CLUSTER_NAME, and a warning for a node image of another version.
	w.e.Stdin = strings.NewReader("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes: [{role: control-plane}, {role: worker}]\n")
	w.vars["KIND_CLUSTER_NAME"] = "from-env"
	w.ok("kind", "create", "cluster", "--config", "-", "--image", "kindest/node:v1.31.0")
	if !strings.Contains(w.err.String(), "asks for Kubernetes v1.31.0; the test environment runs v1.36.1") || w.ok("kind", "get", "clusters") != "from-env\n" {
		t.Errorf("stdin create: %s", w.err)
	}
	w.ok("kind", "delete", "cluster") // KIND_CLUSTER_NAME again
	if w.ok("kind", "get", "clusters") != "" {
		t.Error("KIND_CLUSTER_NAME delete")
	}
}

// ---- Dockerfiles -------------------------------------------------------------------------------

const multiStage = `# syntax=docker/dockerfile:1
ARG BASE=debian:12
FROM ${BASE} AS build
ARG VERSION=1
ENV PROFILE=release
LABEL stage="build" version=${VERSION}
COPY Cargo.toml src/*.rs ./
RUN --mount=type=secret,id=gh,required=true \
    # a comment inside a continuation
    cargo build
RUN <<END
echo not an instruction
FOOBAR
END
FROM build AS enclave
LABEL zama.kms.eif_pcr0=aa zama.kms.eif_pcr1="b b" \
      zama.kms.eif_pcr2='c'
FROM scratch AS runtime
COPY --from=build /out /bin/
LABEL org.opencontainers.image.version=${VERSION:-none} profile=${PROFILE:-unset}
`

func TestDockerfileLabelsArgsAndStages(t *testing.T) {
	text, err := os.ReadFile(filepath.Join(kmsRepo, "docker/core/service/Dockerfile"))
	must(t, err)
	df, err := ParseDockerfile(string(text), map[string]string{"RUST_IMAGE_VERSION": "1.94"})
	must(t, err)
	st, _ := df.Target("")
	if st.Labels["rust.image.version"] != "1.94" || st.Labels["org.opencontainers.image.title"] != "kms core-service (test stand-in)" {
		t.Errorf("labels %v", st.Labels)
	}
	df, _ = ParseDockerfile(string(text), nil)
	if st, _ := df.Target(""); st.Labels["rust.image.version"] != "1.91.0" {
		t.Errorf("default arg: %v", st.Labels)
	}
	df, err = ParseDockerfile(multiStage, map[string]string{"VERSION": "2"})
	must(t, err)
	enc, err := df.Target("enclave")
	must(t, err)
	want := map[string]string{"stage": "build", "version": "2", "zama.kms.eif_pcr0": "aa", "zama.kms.eif_pcr1": "b b", "zama.kms.eif_pcr2": "c"}
	if len(enc.Labels) != len(want) {
		t.Errorf("enclave labels %v", enc.Labels)
	}
	for k, v := range want {
		if enc.Labels[k] != v {
			t.Errorf("enclave label %s=%q, want %q", k, enc.Labels[k], v)
		}
	}
	rt, _ := df.Target("")
	// ARG scope ends with its stage and ENV is per stage: the runtime stage sees neither.
	if rt.Labels["org.opencontainers.image.version"] != "none" || rt.Labels["profile"] != "unset" || rt.Labels["stage"] != "" {
		t.Errorf("runtime labels %v", rt.Labels)
	}
	if n := df.Needed(rt); len(n) != 2 || n[0].Name != "build" {
		t.Errorf("needed %v", n)
	}
	if n := df.Needed(df.Stages[0]); !n[0].Secrets["gh"] {
		t.Errorf("secrets %v", n[0].Secrets)
	}
	ctxDir := t.TempDir()
	writeFile(t, filepath.Join(ctxDir, "src", "main.rs"), "")
	if miss := MissingSources(df.Needed(rt), ctxDir); len(miss) != 1 || miss[0].Path != "Cargo.toml" || miss[0].Line != 7 {
		t.Errorf("missing %v", miss)
	}
	if _, err := df.Target("prod"); err == nil || err.Error() != `target stage "prod" could not be found` {
		t.Errorf("target: %v", err)
	}
	if u := df.UnusedArgs(map[string]string{"VERSION": "2", "VERSON": "x", "HTTP_PROXY": "p"}); len(u) != 1 || u[0] != "VERSON" {
		t.Errorf("unused %v", u)
	}
	// A "<<" in a quoted shell string is no heredoc: what follows is still read.
	df, err = ParseDockerfile("FROM a\nRUN echo \"x <<b\" > f\nLABEL after=yes\nRUN cat <<-'EOF'\n\tLABEL inside=no\n\tEOF\n", nil)
	must(t, err)
	if l := df.Stages[0].Labels; l["after"] != "yes" || l["inside"] != "" {
		t.Errorf("heredoc labels %v", l)
	}
	for src, want := range map[string]string{
		"FROM a\nFROBNICATE x\n": "dockerfile parse error on line 2: unknown instruction: FROBNICATE",
		"RUN x\n":                "dockerfile parse error on line 1: no build stage in current context",
		"ARG X\n":                "no build stage",
		"FROM a b\n":             "FROM requires either one or three arguments",
	} {
		if _, err := ParseDockerfile(src, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}

// ---- docker CLI --------------------------------------------------------------------------------

func TestDockerBuildInspectAndPcrs(t *testing.T) {
	w := newWorld(t)
	ctxDir := t.TempDir()
	df := writeFile(t, filepath.Join(ctxDir, "docker", "Dockerfile"), "ARG V=1\nFROM busybox\nARG V\nLABEL v=$V zama.kms.eif_pcr0=aa zama.kms.eif_pcr1=bb zama.kms.eif_pcr2=cc\n"+
		"RUN --mount=type=secret,id=gh,required cat /run/secrets/gh\nCOPY docker/Dockerfile /x\n")
	w.vars["GH_TOKEN"] = "planted-secret-value"
	w.ok("docker", "buildx", "build", "--file", df, "--tag", "hub/kms/enclave:v1", "--build-arg", "V=7", "--build-arg", "NPM_TOKEN",
		"--secret", "id=gh,env=GH_TOKEN", "--label", "team=kms", "--load", ctxDir)
	out := w.ok("docker", "image", "inspect", "hub/kms/enclave:v1")
	var imgs []map[string]any
	must(t, json.Unmarshal([]byte(out), &imgs))
	labels := imgs[0]["Config"].(map[string]any)["Labels"].(map[string]any)
	if len(imgs) != 1 || labels["v"] != "7" || labels["team"] != "kms" || labels["zama.kms.eif_pcr2"] != "cc" {
		t.Fatalf("inspect: %s", out)
	}
	if tags := imgs[0]["RepoTags"].([]any); len(tags) != 1 || tags[0] != "hub/kms/enclave:v1" {
		t.Errorf("tags %v", tags)
	}
	if got := w.ok("docker", "image", "inspect", "-f", `{{index .Config.Labels "zama.kms.eif_pcr0"}} {{json .RepoTags}}`, "hub/kms/enclave:v1"); got != "aa [\"hub/kms/enclave:v1\"]\n" {
		t.Errorf("format: %q", got)
	}
	records, _ := os.ReadFile(filepath.Join(w.e.Dir, "docker", "images.json"))
	logs, _ := os.ReadFile(filepath.Join(w.e.Dir, "docker", "builds.log"))
	if strings.Contains(string(records)+string(logs), "planted-secret-value") || !strings.Contains(string(logs), "id=gh,env=GH_TOKEN") {
		t.Errorf("a secret value was recorded, or the secret's id was not:\n%s\n%s", records, logs)
	}
	// The same build again: the same ID (a cached build).
	id := imgs[0]["Id"].(string)
	w.ok("docker", "buildx", "build", "-q", "--file", df, "-t", "hub/kms/enclave:v1", "--build-arg", "V=7", "--secret", "id=gh,env=GH_TOKEN", "--label", "team=kms", ctxDir)
	if strings.TrimSpace(w.out.String()) != id {
		t.Errorf("rebuild id %q, want %s", w.out, id)
	}

	// Failures a real build would have.
	w.fails(1, "ERROR: failed to solve: secret gh: not found", "docker", "build", "-f", df, ctxDir)
	w.fails(1, `ERROR: unable to prepare context: path "/nonexistent" not found`, "docker", "build", "/nonexistent")
	w.fails(1, "failed to read dockerfile: open "+filepath.Join(ctxDir, "Dockerfile")+": no such file or directory", "docker", "build", ctxDir)
	w.fails(1, `target stage "prod" could not be found`, "docker", "build", "-f", df, "--target", "prod", "--secret", "id=gh,env=GH_TOKEN", ctxDir)
	w.fails(1, `"/docker/Dockerfile": not found`, "docker", "build", "-f", df, "--secret", "id=gh,env=GH_TOKEN", t.TempDir())
	w.fails(125, "unknown flag: --tga\nSee 'docker build --help'.", "docker", "build", "--tga", "x", ctxDir)
	w.fails(1, "requires exactly 1 argument", "docker", "build")
	w.fails(1, "repository name (Hub/x) must be lowercase", "docker", "build", "-t", "Hub/x:1", ctxDir)

	// Missing images: docker's stdout and stderr, exit 1.
	if code := w.run("docker", "image", "inspect", "hub/kms/absent:v1"); code != 1 || strings.TrimSpace(w.out.String()) != "[]" ||
		!strings.Contains(w.err.String(), "Error response from daemon: No such image: hub/kms/absent:v1") {
		t.Errorf("absent: %d %q %q", code, w.out, w.err)
	}
	// Tag, rmi, images.
	w.ok("docker", "tag", "hub/kms/enclave:v1", "enclave")
	if got := w.ok("docker", "image", "inspect", "-f", "{{.Id}}", "enclave:latest"); strings.TrimSpace(got) != id {
		t.Errorf("tagged %q", got)
	}
	if got := w.ok("docker", "images", "--format", "{{.Repository}}:{{.Tag}}"); got != "enclave:latest\nhub/kms/enclave:v1\n" {
		t.Errorf("images %q", got)
	}
	w.ok("docker", "rmi", "enclave")
	w.fails(1, "No such image: enclave", "docker", "image", "inspect", "enclave")
	if got := w.ok("docker", "version", "--format", "{{.Server.Version}}"); got != dockerVersion+"\n" {
		t.Errorf("version %q", got)
	}
	w.fails(1, "'run' is not a command the testenv stand-in has", "docker", "run", "busybox")
}

func TestPullPushManifestAndMissing(t *testing.T) {
	w := newWorld(t)
	out := w.ok("docker", "pull", "hub/kms/core-client:pr-42")
	if !strings.Contains(out, "pr-42: Pulling from hub/kms/core-client") || !strings.Contains(out, "Status: Downloaded newer image for hub/kms/core-client:pr-42") {
		t.Errorf("pull: %s", out)
	}
	if out := w.ok("docker", "pull", "hub/kms/core-client:pr-42"); !strings.Contains(out, "Image is up to date") {
		t.Errorf("pull again: %s", out)
	}
	// A pulled image has no labels unless the registry records give some.
	w.ok("docker", "image", "inspect", "hub/kms/core-client:pr-42")
	if !strings.Contains(w.out.String(), `"Labels": null`) || !strings.Contains(w.out.String(), "hub/kms/core-client@sha256:") {
		t.Errorf("pulled inspect: %s", w.out)
	}
	w.ok("standins", "registry", "add", "hub/kms/core-service-enclave:v1", "--label", "zama.kms.eif_pcr0=aa00")
	w.ok("docker", "pull", "hub/kms/core-service-enclave:v1")
	if got := w.ok("docker", "image", "inspect", "-f", "{{json .Config.Labels}}", "hub/kms/core-service-enclave:v1"); got != `{"zama.kms.eif_pcr0":"aa00"}`+"\n" {
		t.Errorf("seeded labels %q", got)
	}
	if out := w.ok("docker", "manifest", "inspect", "hub/kms/anything:v9"); !strings.Contains(out, `"schemaVersion": 2`) {
		t.Errorf("manifest: %s", out)
	}
	writeFile(t, filepath.Join(w.e.Dir, "docker", "missing"), "# pulls of these fail\nhub/kms/core-client:pr-43\nhub/kms/*:nightly-*\n")
	w.fails(1, "no such manifest: hub/kms/core-client:pr-43", "docker", "manifest", "inspect", "hub/kms/core-client:pr-43")
	w.fails(1, "Error response from daemon: manifest for hub/kms/core-service:nightly-3 not found", "docker", "pull", "hub/kms/core-service:nightly-3")
	w.ok("docker", "manifest", "inspect", "hub/kms/core-client:pr-42")
	// Push: only local images; then the registry serves their labels.
	w.fails(1, "An image does not exist locally with the tag: hub/kms/x", "docker", "push", "hub/kms/x:1")
	ctxDir := t.TempDir()
	writeFile(t, filepath.Join(ctxDir, "Dockerfile"), "FROM scratch\nLABEL a=1\n")
	w.ok("docker", "build", "-t", "registry.local:5000/kms/x:1", "--push", ctxDir)
	if got := w.ok("standins", "registry", "ls"); !strings.Contains(got, "registry.local:5000/kms/x:1 pushed sha256:") {
		t.Errorf("registry after push: %q", got)
	}
	w.ok("docker", "rmi", "registry.local:5000/kms/x:1")
	w.ok("docker", "pull", "registry.local:5000/kms/x:1")
	if got := w.ok("docker", "inspect", "-f", "{{.Config.Labels.a}}", "registry.local:5000/kms/x:1"); got != "1\n" {
		t.Errorf("pushed labels back: %q", got)
	}
}

func TestRefs(t *testing.T) {
	for in, want := range map[string]string{
		"busybox": "busybox:latest", "hub/kms/x:v1": "hub/kms/x:v1", "localhost:5000/x": "localhost:5000/x:latest",
		"x@sha256:" + strings.Repeat("a", 64): "x@sha256:" + strings.Repeat("a", 64),
	} {
		if got, err := ParseRef(in); err != nil || got != want {
			t.Errorf("%s: %s %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "-x", "a b", "x:", "UPPER/x"} {
		if _, err := ParseRef(bad); err == nil {
			t.Errorf("%q passed", bad)
		}
	}
}

func TestNeedsTheEnvironment(t *testing.T) {
	stderr := &bytes.Buffer{}
	e := &Env{Getenv: func(string) string { return "" }, Stdout: &bytes.Buffer{}, Stderr: stderr, Stdin: strings.NewReader(""), Now: time.Now}
	if code := Main(e, []string{"kind", "get", "clusters"}); code != 1 || !strings.Contains(stderr.String(), "ERROR: TESTENV_DIR is not set") {
		t.Errorf("%d %s", code, stderr)
	}
}
