// Unit tests of the port-forward baseline: which namespaces it covers, the object it keeps
// (against client-go's fake clients) and the answers of its server (on 127.0.0.1).
package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
)

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
}

func cpf(name string, namespaces ...string) *unstructured.Unstructured {
	spec := map[string]any{"forwards": []any{map[string]any{"ports": []any{int64(8080)}, "target": map[string]any{"address": "127.0.0.1", "port": int64(1)}}}}
	if namespaces != nil {
		ns := make([]any, len(namespaces))
		for i, n := range namespaces {
			ns[i] = n
		}
		spec["selector"] = map[string]any{"matchNamespaces": ns}
	}
	return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterPortForward",
		"metadata": map[string]any{"name": name}, "spec": spec}}
}

func TestBaselineNamespaces(t *testing.T) {
	gone := namespace("going", nil)
	gone.Status.Phase = corev1.NamespaceTerminating
	nss := []*corev1.Namespace{
		namespace("kms-test", nil), namespace("default", nil), gone,
		namespace("pf-abc", map[string]string{TestOwnerLabel: "it"}),
		namespace("pf-on", map[string]string{TestOwnerLabel: "it", BaselineLabel: "on"}),
		namespace("quiet", map[string]string{BaselineLabel: "off"}),
		namespace("own", nil),
	}
	got := BaselineNamespaces(nss, []*unstructured.Unstructured{cpf("echo", "own"), cpf(BaselineName, "kms-test")})
	if want := []string{"default", "kms-test", "pf-on"}; !reflect.DeepEqual(got, want) {
		t.Errorf("covered %v, want %v", got, want)
	}
	if got := BaselineNamespaces(nss, []*unstructured.Unstructured{cpf("everywhere")}); got != nil {
		t.Errorf("with a ClusterPortForward for every namespace: %v", got)
	}
}

func TestBaselineObjectFollowsTheNamespaces(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset(namespace("default", nil), namespace("it-x", map[string]string{TestOwnerLabel: "it"}))
	scheme := runtime.NewScheme()
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(scheme,
		map[schema.GroupVersionResource]string{clusterPortForwards: "ClusterPortForwardList"})
	factory := informers.NewSharedInformerFactory(client, 0)
	ln, err := ListenLoopback("--forward-listen", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	b := NewForwardBaseline(dyn, factory, ln)
	factory.Start(ctx.Done())
	go b.Run(ctx)
	select {
	case <-b.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("no first reconcile")
	}
	port := ln.Addr().(*net.TCPAddr).Port
	get := func() (map[string]any, bool) {
		o, err := dyn.Resource(clusterPortForwards).Get(ctx, BaselineName, metav1.GetOptions{})
		if err != nil {
			return nil, false
		}
		return o.Object["spec"].(map[string]any), true
	}
	until := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				spec, _ := get()
				t.Fatalf("%s: spec now %v", what, spec)
			}
		}
	}
	covers := func(want ...string) func() bool {
		return func() bool {
			spec, ok := get()
			if !ok {
				return false
			}
			return reflect.DeepEqual(normalize(spec), normalize(BaselineSpec(want, "127.0.0.1", port)))
		}
	}
	until("default alone", covers("default"))
	if _, err := client.CoreV1().Namespaces().Create(ctx, namespace("kms-test", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	until("a new namespace", covers("default", "kms-test"))
	if _, err := dyn.Resource(clusterPortForwards).Create(ctx, cpf("own", "kms-test"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	until("a namespace with its own forward", covers("default"))
	if _, err := dyn.Resource(clusterPortForwards).Create(ctx, cpf("everywhere"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	until("a forward for every namespace", func() bool { _, ok := get(); return !ok })
	if err := dyn.Resource(clusterPortForwards).Delete(ctx, "everywhere", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	until("back", covers("default"))
}

func TestBaselineServerAnswersHTTP(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := ListenLoopback("--forward-listen", "0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "only a loopback address") {
		t.Errorf("a non-loopback address: %v", err)
	}
	ln, err := ListenLoopback("--forward-listen", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ServeBaseline(ctx, ln)
	url := "http://" + ln.Addr().String() + "/"
	for i := 0; i < 2; i++ { // one connection each
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != BaselineBody || resp.Header.Get("X-Testenv-Forward") != "baseline" {
			t.Errorf("GET: %d %q %v", resp.StatusCode, body, resp.Header)
		}
	}
	// Not HTTP (a gRPC client's preface, say): the connection is closed without an answer.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _ = c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("non-HTTP: %d %v", n, err)
	}
	c.Close()
}
