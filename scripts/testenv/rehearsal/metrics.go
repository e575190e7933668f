// The metrics API stand-in: kwok's pods use no CPU and kwok's nodes have no kubelet for
// metrics-server to scrape, so `metrics.k8s.io/v1beta1` (what `kubectl top` and kmsctl's
// sampler read) is served here, registered as an aggregated API (testenv.sh applies the
// APIService and an ExternalName Service pointing at this loopback HTTPS server).
//
// The usage is synthetic: a container uses its pod's annotation
// (CPUAnnotation, MemoryAnnotation) when set, else a share of its requests that moves
// between 5 and 35 % of the CPU request over two minutes (so consecutive samples differ) and
// 40 % of the memory request. Only Running pods bound to a node are listed, as metrics-server
// does.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"hash/fnv"
	"log"
	"math"
	"math/big"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	corelisters "k8s.io/client-go/listers/core/v1"
)

const (
	// CPUAnnotation sets each container's CPU usage (a quantity, e.g. "3500m").
	CPUAnnotation = "testenv.kmsctl/cpu-usage"
	// MemoryAnnotation sets each container's memory usage (a quantity, e.g. "2Gi").
	MemoryAnnotation = "testenv.kmsctl/memory-usage"
	metricsGV        = "metrics.k8s.io/v1beta1"
	metricsPrefix    = "/apis/" + metricsGV
)

// Metrics serves PodMetrics and NodeMetrics from the pod cache.
type Metrics struct {
	Pods  corelisters.PodLister
	Nodes corelisters.NodeLister
	Now   func() time.Time
}

// Usage is one container's synthetic usage at time t.
func Usage(pod *corev1.Pod, c *corev1.Container, t time.Time) (cpu, mem resource.Quantity) {
	if q, err := resource.ParseQuantity(pod.Annotations[CPUAnnotation]); err == nil {
		cpu = q
	} else {
		h := fnv.New32a()
		h.Write([]byte(string(pod.UID) + "/" + c.Name))
		phase := float64(h.Sum32()%1000) / 1000 * 2 * math.Pi
		share := 0.20 + 0.15*math.Sin(2*math.Pi*float64(t.Unix()%120)/120+phase)
		req := c.Resources.Requests.Cpu().MilliValue()
		if req == 0 {
			req = 100
		}
		cpu = *resource.NewMilliQuantity(int64(float64(req)*share), resource.DecimalSI)
	}
	if q, err := resource.ParseQuantity(pod.Annotations[MemoryAnnotation]); err == nil {
		mem = q
	} else {
		req := c.Resources.Requests.Memory().Value()
		if req == 0 {
			req = 64 << 20
		}
		mem = *resource.NewQuantity(req*4/10/1024*1024, resource.BinarySI)
	}
	return cpu, mem
}

type resUsage map[string]string

type containerMetrics struct {
	Name  string   `json:"name"`
	Usage resUsage `json:"usage"`
}

type objectMeta struct {
	Name              string            `json:"name"`
	Namespace         string            `json:"namespace,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	CreationTimestamp string            `json:"creationTimestamp"`
}

type podMetrics struct {
	Kind       string             `json:"kind,omitempty"`
	APIVersion string             `json:"apiVersion,omitempty"`
	Metadata   objectMeta         `json:"metadata"`
	Timestamp  string             `json:"timestamp"`
	Window     string             `json:"window"`
	Containers []containerMetrics `json:"containers"`
}

type nodeMetrics struct {
	Kind       string     `json:"kind,omitempty"`
	APIVersion string     `json:"apiVersion,omitempty"`
	Metadata   objectMeta `json:"metadata"`
	Timestamp  string     `json:"timestamp"`
	Window     string     `json:"window"`
	Usage      resUsage   `json:"usage"`
}

func running(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" }

func (m *Metrics) podMetrics(p *corev1.Pod, t time.Time) podMetrics {
	out := podMetrics{
		Metadata:  objectMeta{Name: p.Name, Namespace: p.Namespace, Labels: p.Labels, CreationTimestamp: t.UTC().Format(time.RFC3339)},
		Timestamp: t.UTC().Format(time.RFC3339),
		Window:    "10s",
	}
	for i := range p.Spec.Containers {
		c := &p.Spec.Containers[i]
		cpu, mem := Usage(p, c, t)
		out.Containers = append(out.Containers, containerMetrics{Name: c.Name, Usage: resUsage{"cpu": cpu.String(), "memory": mem.String()}})
	}
	return out
}

// ServeHTTP answers discovery, pod metrics (one, a namespace's or all, with labelSelector)
// and node metrics.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "read-only", http.StatusMethodNotAllowed)
		return
	}
	now := time.Now
	if m.Now != nil {
		now = m.Now
	}
	t := now()
	path := strings.TrimSuffix(r.URL.Path, "/")
	sel, err := labels.Parse(r.URL.Query().Get("labelSelector"))
	if err != nil {
		status(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	switch {
	case path == "/apis":
		write(w, map[string]any{"kind": "APIGroupList", "apiVersion": "v1", "groups": []any{map[string]any{
			"name":             "metrics.k8s.io",
			"versions":         []any{map[string]string{"groupVersion": metricsGV, "version": "v1beta1"}},
			"preferredVersion": map[string]string{"groupVersion": metricsGV, "version": "v1beta1"},
		}}})
	case path == metricsPrefix:
		write(w, map[string]any{"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": metricsGV, "resources": []any{
			map[string]any{"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": []string{"get", "list"}},
			map[string]any{"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": []string{"get", "list"}},
		}})
	case path == metricsPrefix+"/pods":
		m.listPods(w, "", sel, t)
	case path == metricsPrefix+"/nodes":
		m.listNodes(w, "", sel, t)
	case strings.HasPrefix(path, metricsPrefix+"/nodes/"):
		m.listNodes(w, strings.TrimPrefix(path, metricsPrefix+"/nodes/"), sel, t)
	case strings.HasPrefix(path, metricsPrefix+"/namespaces/"):
		rest := strings.Split(strings.TrimPrefix(path, metricsPrefix+"/namespaces/"), "/")
		switch {
		case len(rest) == 2 && rest[1] == "pods":
			m.listPods(w, rest[0], sel, t)
		case len(rest) == 3 && rest[1] == "pods":
			p, err := m.Pods.Pods(rest[0]).Get(rest[2])
			if err != nil || !running(p) {
				status(w, http.StatusNotFound, "NotFound", "podmetrics.metrics.k8s.io \""+rest[2]+"\" not found")
				return
			}
			pm := m.podMetrics(p, t)
			pm.Kind, pm.APIVersion = "PodMetrics", metricsGV
			write(w, pm)
		default:
			status(w, http.StatusNotFound, "NotFound", "no such path")
		}
	default:
		status(w, http.StatusNotFound, "NotFound", "no such path")
	}
}

func (m *Metrics) listPods(w http.ResponseWriter, ns string, sel labels.Selector, t time.Time) {
	var pods []*corev1.Pod
	var err error
	if ns == "" {
		pods, err = m.Pods.List(sel)
	} else {
		pods, err = m.Pods.Pods(ns).List(sel)
	}
	if err != nil {
		status(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	sort.Slice(pods, func(i, j int) bool {
		return pods[i].Namespace+"/"+pods[i].Name < pods[j].Namespace+"/"+pods[j].Name
	})
	items := []podMetrics{}
	for _, p := range pods {
		if running(p) {
			items = append(items, m.podMetrics(p, t))
		}
	}
	write(w, map[string]any{"kind": "PodMetricsList", "apiVersion": metricsGV, "metadata": map[string]any{}, "items": items})
}

// listNodes sums the usage of each node's pods (one node when name is given); every node
// has metrics, as with metrics-server, an idle one zero usage.
func (m *Metrics) listNodes(w http.ResponseWriter, name string, sel labels.Selector, t time.Time) {
	nodes, err := m.Nodes.List(sel)
	if err != nil {
		status(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	pods, err := m.Pods.List(labels.Everything())
	if err != nil {
		status(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	type sum struct{ cpu, mem resource.Quantity }
	sums := map[string]*sum{}
	for _, n := range nodes {
		if name == "" || n.Name == name {
			sums[n.Name] = &sum{cpu: *resource.NewMilliQuantity(0, resource.DecimalSI), mem: *resource.NewQuantity(0, resource.BinarySI)}
		}
	}
	for _, p := range pods {
		if s := sums[p.Spec.NodeName]; s != nil && running(p) {
			for i := range p.Spec.Containers {
				cpu, mem := Usage(p, &p.Spec.Containers[i], t)
				s.cpu.Add(cpu)
				s.mem.Add(mem)
			}
		}
	}
	items := []nodeMetrics{}
	for _, n := range nodes {
		s := sums[n.Name]
		if s == nil {
			continue
		}
		items = append(items, nodeMetrics{
			Metadata:  objectMeta{Name: n.Name, Labels: n.Labels, CreationTimestamp: t.UTC().Format(time.RFC3339)},
			Timestamp: t.UTC().Format(time.RFC3339),
			Window:    "10s",
			Usage:     resUsage{"cpu": s.cpu.String(), "memory": s.mem.String()},
		})
	}
	if name != "" {
		if len(items) == 0 {
			status(w, http.StatusNotFound, "NotFound", "nodemetrics.metrics.k8s.io \""+name+"\" not found")
			return
		}
		items[0].Kind, items[0].APIVersion = "NodeMetrics", metricsGV
		write(w, items[0])
		return
	}
	write(w, map[string]any{"kind": "NodeMetricsList", "apiVersion": metricsGV, "metadata": map[string]any{}, "items": items})
}

func write(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func status(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": msg, "reason": reason, "code": code,
	})
}

// ServeMetrics serves m over HTTPS on a loopback listener with a fresh self-signed
// certificate (the APIService skips verification: it is loopback, and the stand-in's).
func ServeMetrics(ln net.Listener, m *Metrics) error {
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: m, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && err != http.ErrServerClosed {
			log.Printf("metrics: %v", err)
		}
	}()
	return nil
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * 365 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
