package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

func metricsPod(name, node string, phase corev1.PodPhase, ann map[string]string, cpuReq string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", UID: types.UID("uid-" + name), Labels: map[string]string{"app": "kms-core"}, Annotations: ann},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name:      "core",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpuReq), corev1.ResourceMemory: resource.MustParse("24Gi")}},
		}}},
		Status: corev1.PodStatus{Phase: phase},
	}
}

func serveMetrics(t *testing.T, pods ...*corev1.Pod) *httptest.Server {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, p := range pods {
		if err := idx.Add(p); err != nil {
			t.Fatal(err)
		}
	}
	nodes := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	for _, n := range []string{"n1", "idle"} {
		if err := nodes.Add(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Unix(1_800_000_000, 0)
	srv := httptest.NewServer(&Metrics{Pods: corelisters.NewPodLister(idx), Nodes: corelisters.NewNodeLister(nodes), Now: func() time.Time { return at }})
	t.Cleanup(srv.Close)
	return srv
}

func getJSON(t *testing.T, url string, want int) map[string]any {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d", url, res.StatusCode, want)
	}
	var v map[string]any
	if err := json.NewDecoder(res.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestMetricsListsRunningPodsWithTheirAnnotatedOrSyntheticUsage(t *testing.T) {
	srv := serveMetrics(t,
		metricsPod("p1", "n1", corev1.PodRunning, map[string]string{CPUAnnotation: "3500m", MemoryAnnotation: "2Gi"}, "12"),
		metricsPod("p2", "n1", corev1.PodRunning, nil, "12"),
		metricsPod("pending", "", corev1.PodPending, nil, "12"),
	)
	list := getJSON(t, srv.URL+metricsPrefix+"/namespaces/ns/pods?labelSelector=app%3Dkms-core", 200)
	items := list["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("want the two running pods, got %v", items)
	}
	usage := func(i int) map[string]any {
		return items[i].(map[string]any)["containers"].([]any)[0].(map[string]any)["usage"].(map[string]any)
	}
	if u := usage(0); u["cpu"] != "3500m" || u["memory"] != "2Gi" {
		t.Fatalf("annotated usage: %v", u)
	}
	cpu := resource.MustParse(usage(1)["cpu"].(string))
	if m := cpu.MilliValue(); m < 600 || m > 4200 {
		t.Fatalf("synthetic CPU %dm is outside 5-35%% of the 12-CPU request", m)
	}
	if u := usage(1); u["memory"] != resource.NewQuantity(24<<30*4/10/1024*1024, resource.BinarySI).String() {
		t.Fatalf("synthetic memory: %v", u)
	}
	if none := getJSON(t, srv.URL+metricsPrefix+"/namespaces/ns/pods?labelSelector=app%3Dother", 200)["items"].([]any); len(none) != 0 {
		t.Fatalf("a selector matching nothing: %v", none)
	}
	one := getJSON(t, srv.URL+metricsPrefix+"/namespaces/ns/pods/p1", 200)
	if one["kind"] != "PodMetrics" {
		t.Fatalf("one pod: %v", one)
	}
	getJSON(t, srv.URL+metricsPrefix+"/namespaces/ns/pods/pending", 404)
	nodes := getJSON(t, srv.URL+metricsPrefix+"/nodes", 200)["items"].([]any)
	if len(nodes) != 2 {
		t.Fatalf("every node has metrics: %v", nodes)
	}
	n1 := getJSON(t, srv.URL+metricsPrefix+"/nodes/n1", 200)["usage"].(map[string]any)
	sum := resource.MustParse(n1["cpu"].(string))
	if sum.MilliValue() != 3500+cpu.MilliValue() {
		t.Fatalf("n1's CPU %v is not its pods' sum (3500m + %v)", n1, cpu.String())
	}
	if idle := getJSON(t, srv.URL+metricsPrefix+"/nodes/idle", 200)["usage"].(map[string]any); idle["cpu"] != "0" {
		t.Fatalf("an idle node: %v", idle)
	}
	disc := getJSON(t, srv.URL+metricsPrefix, 200)
	if disc["groupVersion"] != metricsGV || len(disc["resources"].([]any)) != 2 {
		t.Fatalf("discovery: %v", disc)
	}
}

func TestMetricsSyntheticCPUMovesOverTime(t *testing.T) {
	p := metricsPod("p", "n", corev1.PodRunning, nil, "12")
	seen := map[int64]bool{}
	for s := int64(0); s < 120; s += 10 {
		cpu, _ := Usage(p, &p.Spec.Containers[0], time.Unix(1_800_000_000+s, 0))
		seen[cpu.MilliValue()] = true
	}
	if len(seen) < 5 {
		t.Fatalf("samples over two minutes barely differ: %v", seen)
	}
}
