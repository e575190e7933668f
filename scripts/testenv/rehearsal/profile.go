// Rehearsal profiles: the node pools and StorageClasses of a target (generic, kind, EKS) as
// data (scripts/testenv/profiles/<name>.yaml), rendered here into the Node and StorageClass
// objects that `testenv.sh up` applies. kube-scheduler then refuses what that target would.
// A profile may also list manifests (files beside it: CRDs and the objects of their kinds),
// which `up` applies after the nodes: `render-profile --crds` prints their CRDs, `--manifests`
// the other objects (${VAR:-default} expanded as in the profile), so the CRDs can be
// Established before objects of their kinds are applied.
package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Profile is one file under profiles/.
type Profile struct {
	// StorageClasses are applied as they are (apiVersion/kind may be left out).
	StorageClasses []storagev1.StorageClass `json:"storageClasses"`
	Pools          []Pool                   `json:"pools"`
	// Manifests are applied after the nodes, in order; paths are relative to the profile.
	Manifests []string `json:"manifests,omitempty"`
}

// Pool is a group of identical nodes. String fields may use {i} (the node's index in the
// pool), {name} and every key of Cycle ({zone} = Cycle["zone"][i % len]).
type Pool struct {
	Name        string              `json:"name"`
	Count       string              `json:"count"` // a number, after ${VAR:-default} expansion
	NodeName    string              `json:"nodeName"`
	Cycle       map[string][]string `json:"cycle,omitempty"`
	Labels      map[string]string   `json:"labels,omitempty"`
	Annotations map[string]string   `json:"annotations,omitempty"`
	Taints      []corev1.Taint      `json:"taints,omitempty"`
	ProviderID  string              `json:"providerID,omitempty"`
	Capacity    map[string]string   `json:"capacity"`
	// Allocatable defaults to Capacity; keys not given are taken from Capacity.
	Allocatable map[string]string `json:"allocatable,omitempty"`
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// Expand replaces ${VAR} and ${VAR:-default} with the environment's values.
func Expand(s string, getenv func(string) string) string {
	return envRef.ReplaceAllStringFunc(s, func(m string) string {
		p := envRef.FindStringSubmatch(m)
		if v := getenv(p[1]); v != "" {
			return v
		}
		return p[3]
	})
}

// LoadProfile parses a profile after expanding ${VAR:-default} references.
func LoadProfile(data []byte, getenv func(string) string) (*Profile, error) {
	var p Profile
	if err := yaml.UnmarshalStrict([]byte(Expand(string(data), getenv)), &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func subst(s string, vars map[string]string) string {
	for k, v := range vars {
		s = strings.ReplaceAll(s, "{"+k+"}", v)
	}
	return s
}

func resources(m map[string]string, pool string) (corev1.ResourceList, error) {
	out := corev1.ResourceList{}
	for k, v := range m {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("pool %s: %s=%q: %w", pool, k, v, err)
		}
		out[corev1.ResourceName(k)] = q
	}
	return out, nil
}

// Nodes renders the pools. Every node gets kwok's annotations and the well-known
// hostname/os/arch labels unless the pool sets them.
func (p *Profile) Nodes() ([]corev1.Node, error) {
	var nodes []corev1.Node
	seen := map[string]bool{}
	for _, pool := range p.Pools {
		n, err := strconv.Atoi(strings.TrimSpace(pool.Count))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("pool %s: count %q is not a number", pool.Name, pool.Count)
		}
		capacity, err := resources(pool.Capacity, pool.Name)
		if err != nil {
			return nil, err
		}
		alloc, err := resources(pool.Allocatable, pool.Name)
		if err != nil {
			return nil, err
		}
		for k, v := range capacity {
			if _, ok := alloc[k]; !ok {
				alloc[k] = v
			}
		}
		for i := range n {
			vars := map[string]string{"i": strconv.Itoa(i), "pool": pool.Name}
			for k, vals := range pool.Cycle {
				if len(vals) > 0 {
					vars[k] = vals[i%len(vals)]
				}
			}
			name := subst(pool.NodeName, vars)
			if name == "" || seen[name] {
				return nil, fmt.Errorf("pool %s: node name %q is empty or used twice", pool.Name, name)
			}
			seen[name] = true
			vars["name"] = name
			labels := map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
			for k, v := range pool.Labels {
				labels[k] = subst(v, vars)
			}
			annotations := map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"}
			for k, v := range pool.Annotations {
				annotations[k] = subst(v, vars)
			}
			var taints []corev1.Taint
			for _, t := range pool.Taints {
				t.Value = subst(t.Value, vars)
				taints = append(taints, t)
			}
			nodes = append(nodes, corev1.Node{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations},
				Spec:       corev1.NodeSpec{Taints: taints, ProviderID: subst(pool.ProviderID, vars)},
				Status:     corev1.NodeStatus{Capacity: capacity.DeepCopy(), Allocatable: alloc.DeepCopy()},
			})
		}
	}
	return nodes, nil
}

// Render writes the profile's StorageClasses and Nodes as one YAML stream for kubectl apply.
func (p *Profile) Render() ([]byte, error) {
	nodes, err := p.Nodes()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	doc := func(o any) error {
		b, err := yaml.Marshal(o)
		if err != nil {
			return err
		}
		buf.WriteString("---\n")
		buf.Write(b)
		return nil
	}
	for _, sc := range p.StorageClasses {
		sc.APIVersion, sc.Kind = "storage.k8s.io/v1", "StorageClass"
		if err := doc(sc); err != nil {
			return nil, err
		}
	}
	for _, n := range nodes {
		// Only what a kubelet registers with: zero-valued status structs would be noise.
		meta := map[string]any{"name": n.Name, "labels": n.Labels, "annotations": n.Annotations}
		spec := map[string]any{}
		if len(n.Spec.Taints) > 0 {
			spec["taints"] = n.Spec.Taints
		}
		if n.Spec.ProviderID != "" {
			spec["providerID"] = n.Spec.ProviderID
		}
		status := map[string]any{"capacity": n.Status.Capacity, "allocatable": n.Status.Allocatable}
		if err := doc(map[string]any{"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec, "status": status}); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// ManifestPaths are the profile's manifests as paths (relative to dir, the profile's directory).
func (p *Profile) ManifestPaths(dir string) []string {
	out := make([]string, len(p.Manifests))
	for i, m := range p.Manifests {
		out[i] = filepath.Join(dir, m)
	}
	return out
}

var (
	docSep  = regexp.MustCompile(`(?m)^---\s*$`)
	anyKind = regexp.MustCompile(`(?m)^kind:`)
	crdKind = regexp.MustCompile(`(?m)^kind:\s*CustomResourceDefinition\s*$`)
)

// ManifestDocs splits YAML streams into their CRDs and their other documents (comments-only
// documents are dropped).
func ManifestDocs(streams []string) (crds, objs []string) {
	for _, s := range streams {
		for _, doc := range docSep.Split(s, -1) {
			switch {
			case !anyKind.MatchString(doc):
			case crdKind.MatchString(doc):
				crds = append(crds, strings.TrimSpace(doc))
			default:
				objs = append(objs, strings.TrimSpace(doc))
			}
		}
	}
	return crds, objs
}

// renderProfile prints the profile's objects, or (what = "crds" or "manifests") its manifests'
// CRDs or other objects, as one YAML stream.
func renderProfile(path, what string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	p, err := LoadProfile(data, os.Getenv)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if what != "" {
		var streams []string
		for _, m := range p.ManifestPaths(filepath.Dir(path)) {
			b, err := os.ReadFile(m)
			if err != nil {
				return fmt.Errorf("%s: manifest: %w", path, err)
			}
			streams = append(streams, Expand(string(b), os.Getenv))
		}
		crds, objs := ManifestDocs(streams)
		docs := objs
		if what == "crds" {
			docs = crds
		}
		for _, d := range docs {
			fmt.Printf("---\n%s\n", d)
		}
		return nil
	}
	out, err := p.Render()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	_, err = os.Stdout.Write(out)
	return err
}
