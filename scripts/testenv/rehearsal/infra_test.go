// Unit tests of the eks profile's AWS stand-ins (infra.go): the pure parts, then the
// reconcilers end to end against client-go's fake clients (no cluster: `testenv.sh unit`).
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

const infraNS = "kms-ci"

var kindRes = map[string]string{"Kmsparty": resKmsparty, "EnclaveNodeGroup": resEnclave, "S3": resS3,
	"ExternalSecret": resExternalSecret, clusterStoreKind: resClusterStore}

// cr is a custom resource of one of the stand-ins' kinds, created now.
func cr(kind, ns, name string, annotations, lbls map[string]string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": infraKinds[kindRes[kind]].apiVersion(), "kind": kind, "spec": spec}}
	u.SetNamespace(ns)
	u.SetName(name)
	u.SetUID(types.UID("uid-" + name))
	u.SetCreationTimestamp(metav1.Now())
	u.SetAnnotations(annotations)
	u.SetLabels(lbls)
	return u
}

func crd(res string) *unstructured.Unstructured {
	k := infraKinds[res]
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": k.crdName()},
		"status":   map[string]any{"conditions": []any{map[string]any{"type": "Established", "status": "True"}}},
	}}
	return u
}

func readyCond(u *unstructured.Unstructured, typ string) map[string]any {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == typ {
			return m
		}
	}
	return nil
}

func TestEKSAllocatable(t *testing.T) {
	// The profiles/eks.yaml nodes' allocatable, worked out by hand from the AMI's formula.
	for _, tc := range []struct{ cores, mem, pods, cpu, alloc int64 }{
		{64, 262144, 110, 63770, 260579}, {8, 32768, 58, 7910, 31775}, {4, 16384, 58, 3920, 15391},
	} {
		if cpu, mem := EKSAllocatable(tc.cores, tc.mem, tc.pods); cpu != tc.cpu || mem != tc.alloc {
			t.Errorf("%d cores: %dm / %dMi, want %dm / %dMi", tc.cores, cpu, mem, tc.cpu, tc.alloc)
		}
	}
}

func TestMatchBucketAndConnection(t *testing.T) {
	party := cr("Kmsparty", infraNS, "p-1", nil, nil, map[string]any{
		"partyIndex": int64(1), "region": "eu-west-1", "serviceAccountName": "kms-ci-1", "connectionConfigMap": "kms-ci-1",
		"publicBucketVaultRef": map[string]any{"matchLabels": map[string]any{"environment": "kms-ci"}},
		"awsKms":               map[string]any{"enabled": true, "recipientAttestationImageSHA384": "abc"},
	})
	bucket := func(ns, name, env string, ready bool) *unstructured.Unstructured {
		b := cr("S3", ns, name, nil, map[string]string{"environment": env}, map[string]any{"bucketName": name})
		st := "False"
		if ready {
			st = "True"
		}
		b.Object["status"] = map[string]any{"conditions": []any{map[string]any{"type": "Ready", "status": st}}}
		return b
	}
	if b, msg := MatchBucket(party, nil); b != nil || msg != "no S3 in namespace kms-ci matches publicBucketVaultRef.matchLabels {environment=kms-ci}" {
		t.Errorf("no buckets: %v %q", b, msg)
	}
	others := []*unstructured.Unstructured{bucket("other", "x", "kms-ci", true), bucket(infraNS, "y", "dev", true)}
	if b, _ := MatchBucket(party, others); b != nil {
		t.Errorf("matched %s in another namespace or with other labels", b.GetName())
	}
	if b, msg := MatchBucket(party, append(others, bucket(infraNS, "pub", "kms-ci", false))); b != nil || !strings.Contains(msg, "not Ready yet: pub") {
		t.Errorf("unready bucket: %v %q", b, msg)
	}
	b, _ := MatchBucket(party, append(others, bucket(infraNS, "pub", "kms-ci", true)))
	if b == nil || b.GetName() != "pub" {
		t.Fatalf("ready bucket not matched: %v", b)
	}
	data := PartyConnection(party, b)
	for k, v := range map[string]string{"AWS_REGION": "eu-west-1", "KMS_PARTY_INDEX": "1", "KMS_PUBLIC_BUCKET": "pub",
		"KMS_RECIPIENT_ATTESTATION_SHA384": "abc", "KMS_CORE__PUBLIC_VAULT__STORAGE__S3__BUCKET": "pub",
		"KMS_CORE__PRIVATE_VAULT__KEYCHAIN__AWS_KMS__ROOT_KEY_ID": "arn:aws:kms:eu-west-1:000000000000:key/testenv-p-1"} {
		if data[k] != v {
			t.Errorf("%s = %q, want %q", k, data[k], v)
		}
	}
	_ = unstructured.SetNestedField(party.Object, false, "spec", "awsKms", "enabled")
	if _, ok := PartyConnection(party, b)["KMS_RECIPIENT_ATTESTATION_SHA384"]; ok {
		t.Error("the attestation SHA without awsKms.enabled")
	}
}

func TestEnclaveNodes(t *testing.T) {
	g := cr("EnclaveNodeGroup", infraNS, "kms-party-kms-ci", nil, nil, map[string]any{"size": int64(2),
		"taint": []any{map[string]any{"key": "app", "value": "kms-ci", "effect": "NoSchedule"}}})
	nodes, err := EnclaveNodes(g, "us-east-1")
	if err != nil || len(nodes) != 2 {
		t.Fatalf("%d nodes, %v", len(nodes), err)
	}
	n := nodes[1]
	if n.Name != fmt.Sprintf("enclave-%08x-1", groupHash(infraNS, "kms-party-kms-ci")) || n.Labels[EnclaveGroupLabel] != "kms-party-kms-ci" || n.Labels[EnclaveGroupNSLabel] != infraNS ||
		n.Labels[NitroLabel] != "true" || n.Labels["node.kubernetes.io/instance-type"] != DefaultInstanceType ||
		n.Labels["kubernetes.io/hostname"] != n.Name || n.Annotations["kwok.x-k8s.io/node"] != "fake" {
		t.Errorf("node: %+v", n.ObjectMeta)
	}
	if len(n.Spec.Taints) != 1 || n.Spec.Taints[0] != (corev1.Taint{Key: "app", Value: "kms-ci", Effect: corev1.TaintEffectNoSchedule}) {
		t.Errorf("taints: %+v", n.Spec.Taints)
	}
	cpu, mem, pods := n.Status.Capacity[corev1.ResourceCPU], n.Status.Capacity[corev1.ResourceMemory], n.Status.Capacity[corev1.ResourcePods]
	acpu, amem := n.Status.Allocatable[corev1.ResourceCPU], n.Status.Allocatable[corev1.ResourceMemory]
	if cpu.String() != "64" || mem.String() != "128Gi" || pods.String() != "110" || acpu.String() != "63770m" ||
		amem.String() != "31203Mi" { // 131072 - 11*110 - 255 - 100, less 96Gi of hugepages
		t.Errorf("capacity %v, allocatable %v", n.Status.Capacity, n.Status.Allocatable)
	}
	_ = unstructured.SetNestedField(g.Object, "c6a.4xlarge", "spec", "instanceType")
	_ = unstructured.SetNestedField(g.Object, []any{map[string]any{"value": "x"}}, "spec", "taint")
	if _, err := EnclaveNodes(g, "us-east-1"); err == nil || !strings.Contains(err.Error(), "key and effect") {
		t.Errorf("a taint without key: %v", err)
	}
}

func TestExternalSecretData(t *testing.T) {
	if h := RegistryHost("common/registry-example-test-registry-credentials"); h != "registry.example.test" {
		t.Errorf("host %q", h)
	}
	es := cr("ExternalSecret", infraNS, "regcred", nil, nil, map[string]any{
		"target": map[string]any{"name": "regcred", "template": map[string]any{"type": dockerConfigJSONType}},
		"data": []any{map[string]any{"secretKey": ".dockerconfigjson",
			"remoteRef": map[string]any{"key": "common/registry-example-test-registry-credentials"}}},
	})
	typ, data, err := ExternalSecretData(es)
	if err != nil || typ != dockerConfigJSONType {
		t.Fatalf("%s %v", typ, err)
	}
	var cfg struct {
		Auths map[string]struct{ Username, Password, Auth string } `json:"auths"`
	}
	if err := json.Unmarshal(data[".dockerconfigjson"], &cfg); err != nil {
		t.Fatal(err)
	}
	a, ok := cfg.Auths["registry.example.test"]
	dec, _ := base64.StdEncoding.DecodeString(a.Auth)
	if !ok || string(dec) != a.Username+":"+a.Password || !strings.Contains(a.Password, "not-a-real") {
		t.Errorf("docker config: %s", data[".dockerconfigjson"])
	}
	_ = unstructured.SetNestedField(es.Object, []any{}, "spec", "data")
	if _, _, err := ExternalSecretData(es); err == nil {
		t.Error("a dockerconfigjson Secret without .dockerconfigjson")
	}
}

// infraEnv runs Infra on fake clients; crds names the kinds whose CRDs exist at the start.
type infraEnv struct {
	t      *testing.T
	ctx    context.Context
	client *fake.Clientset
	dyn    *dynfake.FakeDynamicClient
	infra  *Infra
}

func newInfraEnv(t *testing.T, crds []string, objs ...runtime.Object) *infraEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lists := map[schema.GroupVersionResource]string{crdGVR: "CustomResourceDefinitionList"}
	for _, k := range infraKinds {
		lists[k.gvr] = k.kind + "List"
	}
	for _, r := range crds {
		objs = append(objs, crd(r))
	}
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), lists, objs...)
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	infra := NewInfra(client, dyn, factory)
	factory.Core().V1().Pods().Informer() // the pod gate's informers share the factory
	factory.Start(ctx.Done())
	go infra.Run(ctx, 2)
	select {
	case <-infra.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("infra did not sync")
	}
	return &infraEnv{t, ctx, client, dyn, infra}
}

func (e *infraEnv) api(res, ns string) dynamic.ResourceInterface {
	if infraKinds[res].namespaced {
		return e.dyn.Resource(infraKinds[res].gvr).Namespace(ns)
	}
	return e.dyn.Resource(infraKinds[res].gvr)
}

func (e *infraEnv) get(res, ns, name string) *unstructured.Unstructured {
	u, err := e.api(res, ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return u
}

func (e *infraEnv) eventually(what string, cond func() bool) {
	e.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// condIs: the object's condition typ has this status and reason (and message, if not "").
func (e *infraEnv) condIs(res, ns, name, typ, status, reason, message string) func() bool {
	return func() bool {
		u := e.get(res, ns, name)
		if u == nil {
			return false
		}
		c := readyCond(u, typ)
		return c != nil && c["status"] == status && c["reason"] == reason && (message == "" || c["message"] == message)
	}
}

func (e *infraEnv) create(u *unstructured.Unstructured) {
	e.t.Helper()
	if _, err := e.api(kindRes[u.GetKind()], u.GetNamespace()).Create(e.ctx, u, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

var allKinds = []string{resKmsparty, resEnclave, resS3, resExternalSecret, resClusterStore}

func partySpec(i int64, env string) map[string]any {
	return map[string]any{"partyIndex": i, "region": "eu-west-1",
		"serviceAccountName": "kms-ci-" + string(rune('0'+i)), "connectionConfigMap": "kms-ci-" + string(rune('0'+i)),
		"publicBucketVaultRef": map[string]any{"matchLabels": map[string]any{"environment": env}},
		"awsKms":               map[string]any{"enabled": false}}
}

// A party waits for its bucket, then publishes its ServiceAccount and ConfigMap (owned by it,
// kept in step with its spec); the delay and the fail annotation hold objects back.
func TestKmspartyAndS3(t *testing.T) {
	e := newInfraEnv(t, allKinds)
	now := map[string]string{ReadyAfterAnnotation: "0s"}
	e.create(cr("Kmsparty", infraNS, "p-1", now, nil, partySpec(1, "kms-ci")))
	e.eventually("WaitingForBucket", e.condIs(resKmsparty, infraNS, "p-1", "Ready", "False", ReasonBucket,
		"no S3 in namespace kms-ci matches publicBucketVaultRef.matchLabels {environment=kms-ci}"))
	e.create(cr("S3", infraNS, "pub", map[string]string{ReadyAfterAnnotation: "1500ms"}, map[string]string{"environment": "kms-ci"},
		map[string]any{"bucketName": "kms-party-kms-ci-public"}))
	e.eventually("the S3 Creating", e.condIs(resS3, infraNS, "pub", "Ready", "False", ReasonCreating, ""))
	if c := readyCond(e.get(resS3, infraNS, "pub"), "Synced"); c["status"] != "True" || c["reason"] != ReasonSuccess {
		t.Errorf("Synced while creating: %v", c)
	}
	e.eventually("the S3 Ready", e.condIs(resS3, infraNS, "pub", "Ready", "True", ReasonAvailable, ""))
	e.eventually("the party Ready", e.condIs(resKmsparty, infraNS, "p-1", "Ready", "True", ReasonAvailable, ""))
	sa, err := e.client.CoreV1().ServiceAccounts(infraNS).Get(e.ctx, "kms-ci-1", metav1.GetOptions{})
	if err != nil || len(sa.OwnerReferences) != 1 || sa.OwnerReferences[0].Kind != "Kmsparty" || sa.OwnerReferences[0].Name != "p-1" ||
		sa.OwnerReferences[0].UID != "uid-p-1" {
		t.Fatalf("ServiceAccount: %+v %v", sa, err)
	}
	cm, err := e.client.CoreV1().ConfigMaps(infraNS).Get(e.ctx, "kms-ci-1", metav1.GetOptions{})
	if err != nil || cm.Data["KMS_PUBLIC_BUCKET"] != "kms-party-kms-ci-public" || cm.Data["KMS_PARTY_INDEX"] != "1" ||
		cm.Data["AWS_REGION"] != "eu-west-1" || len(cm.OwnerReferences) != 1 || *cm.OwnerReferences[0].Controller != true {
		t.Fatalf("ConfigMap: %+v %v", cm, err)
	}

	// The spec changes: the ConfigMap follows.
	p := e.get(resKmsparty, infraNS, "p-1")
	_ = unstructured.SetNestedField(p.Object, "us-west-2", "spec", "region")
	_ = unstructured.SetNestedField(p.Object, map[string]any{"enabled": true, "recipientAttestationImageSHA384": "pcr0"}, "spec", "awsKms")
	if _, err := e.api(resKmsparty, infraNS).Update(e.ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("the ConfigMap updated", func() bool {
		cm, err := e.client.CoreV1().ConfigMaps(infraNS).Get(e.ctx, "kms-ci-1", metav1.GetOptions{})
		return err == nil && cm.Data["AWS_REGION"] == "us-west-2" && cm.Data["KMS_RECIPIENT_ATTESTATION_SHA384"] == "pcr0"
	})
	// Deleted by hand: it comes back.
	_ = e.client.CoreV1().ConfigMaps(infraNS).Delete(e.ctx, "kms-ci-1", metav1.DeleteOptions{})
	e.eventually("the ConfigMap back", func() bool {
		_, err := e.client.CoreV1().ConfigMaps(infraNS).Get(e.ctx, "kms-ci-1", metav1.GetOptions{})
		return err == nil
	})

	// A bucket of another environment does not do; a long delay shows Creating.
	e.create(cr("Kmsparty", infraNS, "p-2", now, nil, partySpec(2, "other")))
	e.eventually("p-2 WaitingForBucket", e.condIs(resKmsparty, infraNS, "p-2", "Ready", "False", ReasonBucket, ""))
	e.create(cr("Kmsparty", infraNS, "p-3", map[string]string{ReadyAfterAnnotation: "1h"}, nil, partySpec(3, "kms-ci")))
	e.eventually("p-3 Creating", e.condIs(resKmsparty, infraNS, "p-3", "Ready", "False", ReasonCreating, ""))
	if _, err := e.client.CoreV1().ConfigMaps(infraNS).Get(e.ctx, "kms-ci-3", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("p-3's ConfigMap before it is Ready: %v", err)
	}

	// Failing on demand, and a bad delay.
	e.create(cr("Kmsparty", infraNS, "p-4", map[string]string{FailAnnotation: "IAM role: AccessDenied"}, nil, partySpec(4, "kms-ci")))
	e.eventually("p-4 Synced=False", e.condIs(resKmsparty, infraNS, "p-4", "Synced", "False", ReasonError, "IAM role: AccessDenied"))
	e.eventually("p-4 Ready=False", e.condIs(resKmsparty, infraNS, "p-4", "Ready", "False", ReasonError, "IAM role: AccessDenied"))
	e.create(cr("S3", infraNS, "bad", map[string]string{ReadyAfterAnnotation: "soon"}, nil, map[string]any{"bucketName": "b"}))
	e.eventually("a bad ready-after", e.condIs(resS3, infraNS, "bad", "Synced", "False", ReasonError,
		`annotation testenv.kmsctl/ready-after: "soon" is not a duration (e.g. 2s, 1m30s)`))
	// The default delay.
	e.create(cr("S3", infraNS, "default", nil, nil, map[string]any{"bucketName": "d"}))
	e.eventually("Creating by default", e.condIs(resS3, infraNS, "default", "Ready", "False", ReasonCreating, ""))
	start := time.Now()
	e.eventually("Ready after the default delay", e.condIs(resS3, infraNS, "default", "Ready", "True", ReasonAvailable, ""))
	if d := time.Since(start); d < DefaultReadyAfter/4 { // creationTimestamp has whole seconds
		t.Errorf("Ready after %s", d)
	}
}

// The group adds its finalizer and its nodes, is Ready once kwok (here: the test) makes them
// Ready, and on deletion removes them before it lets go.
func TestEnclaveNodeGroup(t *testing.T) {
	e := newInfraEnv(t, allKinds)
	e.create(cr("EnclaveNodeGroup", infraNS, "kms-party-kms-ci", map[string]string{ReadyAfterAnnotation: "0s"}, nil, map[string]any{
		"size": int64(3), "instanceType": "c6a.4xlarge",
		"taint": []any{map[string]any{"key": "app", "value": "kms-ci", "effect": "NoSchedule"}}}))
	sel := metav1.ListOptions{LabelSelector: EnclaveGroupLabel + "=kms-party-kms-ci," + EnclaveGroupNSLabel + "=" + infraNS}
	var nodes *corev1.NodeList
	e.eventually("3 nodes", func() bool {
		nodes, _ = e.client.CoreV1().Nodes().List(e.ctx, sel)
		return len(nodes.Items) == 3
	})
	g := e.get(resEnclave, infraNS, "kms-party-kms-ci")
	if fs := g.GetFinalizers(); len(fs) != 1 || fs[0] != EnclaveFinalizer {
		t.Fatalf("finalizers %v", fs)
	}
	if n := nodes.Items[0]; n.Labels["node.kubernetes.io/instance-type"] != "c6a.4xlarge" || n.Spec.Taints[0].Value != "kms-ci" {
		t.Errorf("node %+v", n)
	}
	e.eventually("Creating until the nodes are Ready", e.condIs(resEnclave, infraNS, "kms-party-kms-ci", "Ready", "False", ReasonCreating, "0 of 3 nodes Ready"))
	for _, n := range nodes.Items {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
		if _, err := e.client.CoreV1().Nodes().UpdateStatus(e.ctx, &n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.eventually("Ready", e.condIs(resEnclave, infraNS, "kms-party-kms-ci", "Ready", "True", ReasonAvailable, ""))

	// Shrinking deletes the last node.
	g = e.get(resEnclave, infraNS, "kms-party-kms-ci")
	_ = unstructured.SetNestedField(g.Object, int64(2), "spec", "size")
	if _, err := e.api(resEnclave, infraNS).Update(e.ctx, g, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("2 nodes", func() bool {
		nodes, _ = e.client.CoreV1().Nodes().List(e.ctx, sel)
		return len(nodes.Items) == 2 && nodes.Items[1].Name == fmt.Sprintf("enclave-%08x-1", groupHash(infraNS, "kms-party-kms-ci"))
	})

	// Deletion: the API server would set deletionTimestamp and keep the object while the
	// finalizer is there (the fake deletes at once, so the test plays that part).
	g = e.get(resEnclave, infraNS, "kms-party-kms-ci")
	now := metav1.Now()
	g.SetDeletionTimestamp(&now)
	if _, err := e.api(resEnclave, infraNS).Update(e.ctx, g, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("the nodes gone and the finalizer removed", func() bool {
		nodes, _ = e.client.CoreV1().Nodes().List(e.ctx, sel)
		g := e.get(resEnclave, infraNS, "kms-party-kms-ci")
		return len(nodes.Items) == 0 && g != nil && len(g.GetFinalizers()) == 0
	})
}

func TestExternalSecret(t *testing.T) {
	e := newInfraEnv(t, allKinds)
	esSpec := func(store string) map[string]any {
		return map[string]any{
			"secretStoreRef":  map[string]any{"kind": clusterStoreKind, "name": store},
			"refreshInterval": "1h",
			"target":          map[string]any{"name": "registry-credentials", "template": map[string]any{"type": dockerConfigJSONType}},
			"data": []any{map[string]any{"secretKey": ".dockerconfigjson",
				"remoteRef": map[string]any{"key": "common/registry-example-test-registry-credentials"}}},
		}
	}
	now := map[string]string{ReadyAfterAnnotation: "0s"}
	e.create(cr("ExternalSecret", infraNS, "registry-credentials", now, nil, esSpec("aws-secrets-manager")))
	e.eventually("SecretStoreNotFound", e.condIs(resExternalSecret, infraNS, "registry-credentials", "Ready", "False", ReasonStoreNotFound,
		`ClusterSecretStore "aws-secrets-manager" not found`))
	e.create(cr(clusterStoreKind, "", "aws-secrets-manager", now, nil, map[string]any{}))
	e.eventually("the store Ready", e.condIs(resClusterStore, "", "aws-secrets-manager", "Ready", "True", ReasonStoreValid, ""))
	e.eventually("SecretSynced", e.condIs(resExternalSecret, infraNS, "registry-credentials", "Ready", "True", ReasonSecretSynced, ""))
	s, err := e.client.CoreV1().Secrets(infraNS).Get(e.ctx, "registry-credentials", metav1.GetOptions{})
	if err != nil || s.Type != corev1.SecretTypeDockerConfigJson || len(s.OwnerReferences) != 1 || s.OwnerReferences[0].Kind != "ExternalSecret" ||
		!json.Valid(s.Data[".dockerconfigjson"]) {
		t.Fatalf("Secret: %+v %v", s, err)
	}
	es := e.get(resExternalSecret, infraNS, "registry-credentials")
	if name, _, _ := unstructured.NestedString(es.Object, "status", "binding", "name"); name != "registry-credentials" {
		t.Errorf("status.binding.name %q", name)
	}
	e.create(cr("ExternalSecret", infraNS, "broken", map[string]string{FailAnnotation: "AccessDeniedException"}, nil, esSpec("aws-secrets-manager")))
	e.eventually("the fail annotation", e.condIs(resExternalSecret, infraNS, "broken", "Ready", "False", ReasonError, "AccessDeniedException"))
}

// Without the CRDs (the generic and kind profiles) nothing is watched; a CRD that appears
// later is picked up.
func TestInfraWaitsForItsCRDs(t *testing.T) {
	e := newInfraEnv(t, nil)
	for _, r := range allKinds {
		if e.infra.Watching(r) {
			t.Fatalf("watching %s without its CRD", r)
		}
	}
	if _, err := e.dyn.Resource(crdGVR).Create(e.ctx, crd(resS3), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.eventually("the S3 kind watched", func() bool { return e.infra.Watching(resS3) })
	e.create(cr("S3", infraNS, "pub", map[string]string{ReadyAfterAnnotation: "0s"}, nil, map[string]any{"bucketName": "b"}))
	e.eventually("the S3 Ready", e.condIs(resS3, infraNS, "pub", "Ready", "True", ReasonAvailable, ""))
	if e.infra.Watching(resKmsparty) {
		t.Error("watching kmsparties without its CRD")
	}
}

func TestProfileManifests(t *testing.T) {
	data, err := readProfile("eks")
	if err != nil {
		t.Fatal(err)
	}
	p, err := LoadProfile(data, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var streams []string
	for _, m := range p.ManifestPaths("../profiles") {
		b, err := readFile(m)
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, string(b))
	}
	crds, objs := ManifestDocs(streams)
	if len(crds) != len(infraKinds) || len(objs) != 1 || !strings.Contains(objs[0], "name: aws-secrets-manager") {
		t.Fatalf("%d CRDs, %d objects", len(crds), len(objs))
	}
	for _, k := range infraKinds {
		found := false
		for _, c := range crds {
			found = found || strings.Contains(c, "name: "+k.crdName()+"\n")
		}
		if !found {
			t.Errorf("no CRD %s", k.crdName())
		}
	}
	for _, name := range []string{"generic", "kind"} {
		data, _ := readProfile(name)
		if p, err := LoadProfile(data, func(string) string { return "" }); err != nil || len(p.Manifests) != 0 {
			t.Errorf("%s: manifests %v (%v)", name, p.Manifests, err)
		}
	}
}
