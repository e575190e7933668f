// The port-forward baseline: kwok serves a pod's port-forward from ClusterPortForward and
// PortForward objects, and refuses ports none of them names ("no forward found for port").
// For a rehearsal, whose playbooks port-forward to the KMS parties and LocalStack and check
// the forward before going on, this keeps one ClusterPortForward (BaselineName) that sends
// every port of the covered namespaces' pods to a loopback TCP server run here, which
// answers an HTTP request with 200 and a fixed body.
//
// Which namespaces it covers (BaselineNamespaces): every active one except
//   - those named in another ClusterPortForward's matchNamespaces (kwok picks among matching
//     ClusterPortForwards in no fixed order, so a namespace with a forward of its own is left
//     to it entirely; a PortForward for a pod wins over any ClusterPortForward anyway), and
//     none at all while another ClusterPortForward matches every namespace;
//   - the integration tests' namespaces (label kmsctl.test/owner), which set up their own
//     forwards or expect none;
//   - any labelled testenv.kmsctl/port-forward-baseline=off; =on brings a test's one back in.
//
// kwok dials the target with no word of the pod or port the connection is for, so the
// answer cannot name them.
package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// The baseline's object, and the labels that steer it.
const (
	BaselineName   = "testenv-baseline"
	BaselineLabel  = "testenv.kmsctl/port-forward-baseline"
	TestOwnerLabel = "kmsctl.test/owner"
)

// BaselineBody is what the server answers (HTTP 200, text/plain).
const BaselineBody = "testenv port-forward baseline: no forward of this pod's own serves this port in the test " +
	"environment, so kwok sent the connection here (kwok does not say which pod or port it is for; a " +
	"PortForward or ClusterPortForward of your own gives a real answer)\n"

var clusterPortForwards = schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "clusterportforwards"}

// BaselineNamespaces are the namespaces the baseline covers, sorted (see the file comment).
func BaselineNamespaces(nss []*corev1.Namespace, cpfs []*unstructured.Unstructured) []string {
	claimed := map[string]bool{}
	for _, o := range cpfs {
		if o.GetName() == BaselineName {
			continue
		}
		names, found, _ := unstructured.NestedStringSlice(o.Object, "spec", "selector", "matchNamespaces")
		if !found || len(names) == 0 {
			return nil // it matches every namespace: any overlap would be a coin toss
		}
		for _, n := range names {
			claimed[n] = true
		}
	}
	var out []string
	for _, ns := range nss {
		if ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating || claimed[ns.Name] {
			continue
		}
		switch ns.Labels[BaselineLabel] {
		case "off":
			continue
		case "on":
		default:
			if ns.Labels[TestOwnerLabel] != "" {
				continue
			}
		}
		out = append(out, ns.Name)
	}
	sort.Strings(out)
	return out
}

// BaselineSpec is the ClusterPortForward spec for those namespaces and the server's address.
func BaselineSpec(namespaces []string, host string, port int) map[string]any {
	ns := make([]any, len(namespaces))
	for i, n := range namespaces {
		ns[i] = n
	}
	return map[string]any{
		"selector": map[string]any{"matchNamespaces": ns},
		// No ports: kwok's default forward, used for every port no other forward names.
		"forwards": []any{map[string]any{"target": map[string]any{"address": host, "port": int64(port)}}},
	}
}

// ForwardBaseline keeps the ClusterPortForward in step with the namespaces and serves its target.
type ForwardBaseline struct {
	dyn      dynamic.Interface
	nsLister corelisters.NamespaceLister
	nsSynced cache.InformerSynced
	cpfInf   cache.SharedIndexInformer
	dynStart func(<-chan struct{})
	host     string
	port     int
	kick     chan struct{}
	once     sync.Once
	synced   chan struct{} // closed after the first reconcile succeeded
}

// NewForwardBaseline registers its informers (the namespace one on factory, which the
// controller starts); the server listens on ln.
func NewForwardBaseline(dyn dynamic.Interface, factory informers.SharedInformerFactory, ln net.Listener) *ForwardBaseline {
	addr := ln.Addr().(*net.TCPAddr)
	nsInf := factory.Core().V1().Namespaces()
	dynFactory := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	cpf := dynFactory.ForResource(clusterPortForwards).Informer()
	b := &ForwardBaseline{
		dyn: dyn, nsLister: nsInf.Lister(), nsSynced: nsInf.Informer().HasSynced, cpfInf: cpf,
		dynStart: dynFactory.Start, host: addr.IP.String(), port: addr.Port,
		kick: make(chan struct{}, 1), synced: make(chan struct{}),
	}
	h := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { b.poke() },
		UpdateFunc: func(_, _ any) { b.poke() },
		DeleteFunc: func(any) { b.poke() },
	}
	_, _ = nsInf.Informer().AddEventHandler(h)
	_, _ = cpf.AddEventHandler(h)
	return b
}

func (b *ForwardBaseline) poke() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Synced is closed once the baseline object first matches the namespaces.
func (b *ForwardBaseline) Synced() <-chan struct{} { return b.synced }

// Run reconciles on every change until ctx ends.
func (b *ForwardBaseline) Run(ctx context.Context) {
	b.dynStart(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), b.nsSynced, b.cpfInf.HasSynced) {
		return
	}
	b.poke()
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.kick:
		}
		if err := b.reconcile(ctx); err != nil {
			log.Printf("port-forward baseline: %v (retrying)", err)
			time.AfterFunc(time.Second, b.poke)
			continue
		}
		b.once.Do(func() { close(b.synced) })
	}
}

func (b *ForwardBaseline) reconcile(ctx context.Context) error {
	nss, err := b.nsLister.List(labels.Everything())
	if err != nil {
		return err
	}
	var cpfs []*unstructured.Unstructured
	for _, o := range b.cpfInf.GetStore().List() {
		if u, ok := o.(*unstructured.Unstructured); ok {
			cpfs = append(cpfs, u)
		}
	}
	want := BaselineNamespaces(nss, cpfs)
	api := b.dyn.Resource(clusterPortForwards)
	cur, err := api.Get(ctx, BaselineName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cur, err = nil, nil
	}
	if err != nil {
		return err
	}
	if len(want) == 0 {
		// An empty matchNamespaces would match every namespace: no object at all instead.
		if cur == nil {
			return nil
		}
		log.Printf("port-forward baseline: no namespace to cover; deleting %s", BaselineName)
		err := api.Delete(ctx, BaselineName, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	spec := BaselineSpec(want, b.host, b.port)
	if cur == nil {
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterPortForward",
			"metadata": map[string]any{"name": BaselineName, "labels": map[string]any{"app.kubernetes.io/managed-by": "testenv-rehearsal"}},
			"spec":     spec,
		}}
		_, err := api.Create(ctx, obj, metav1.CreateOptions{})
		if err == nil {
			log.Printf("port-forward baseline: created %s -> %s:%d for %d namespaces", BaselineName, b.host, b.port, len(want))
		}
		return err
	}
	if have, _, _ := unstructured.NestedFieldNoCopy(cur.Object, "spec"); reflect.DeepEqual(normalize(have), normalize(spec)) {
		return nil
	}
	cur.Object["spec"] = spec
	_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

// normalize makes int and int64 compare equal (JSON decoding gives int64).
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, x := range t {
			out[k] = normalize(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = normalize(x)
		}
		return out
	case int:
		return int64(t)
	case float64:
		return int64(t)
	}
	return v
}

// ListenLoopback opens a server socket (flag names it in errors); only loopback addresses are
// accepted.
func ListenLoopback(flag, addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%s %s: only a loopback address", flag, addr)
	}
	return net.Listen("tcp", addr)
}

// ServeBaseline answers connections until ctx ends.
func ServeBaseline(ctx context.Context, ln net.Listener) {
	go func() { <-ctx.Done(); _ = ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Printf("port-forward baseline: accept: %v", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go answer(c)
	}
}

// answer reads one request: an HTTP/1.x one gets 200 and BaselineBody; anything else (or
// silence for 10s, or an early close, like kmsctl's forward check) just ends the connection.
func answer(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	f := strings.Fields(line)
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
		return
	}
	for { // the headers
		h, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if strings.TrimSpace(h) == "" {
			break
		}
	}
	body := BaselineBody
	if f[0] == "HEAD" {
		body = ""
	}
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"+
		"X-Testenv-Forward: baseline\r\nConnection: close\r\n\r\n%s", len(BaselineBody), body)
}
