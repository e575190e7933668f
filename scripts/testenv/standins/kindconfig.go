// kind cluster configs: decoded, defaulted and validated as kind does it (so a config kind
// would refuse is refused here with kind's words), then matched against the test
// environment's nodes, and read for what changes a node (labels, reserved resources).
package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/api/resource"
	sigsyaml "sigs.k8s.io/yaml"

	"testenv.invalid/standins/v1alpha4"
)

// kind's rule for cluster names.
var validNameRE = regexp.MustCompile(`^[a-z0-9.-]+$`)

// The default cluster name, and the v1alpha4 group.
const (
	defaultClusterName = "kind"
	kindAPIVersion     = "kind.x-k8s.io/v1alpha4"
)

// The kubeadm objects kind generates for every node, which kubeadmConfigPatches match by kind.
var kubeadmKinds = map[string]bool{
	"ClusterConfiguration": true, "InitConfiguration": true, "JoinConfiguration": true,
	"KubeletConfiguration": true, "KubeProxyConfiguration": true,
}

// The apiVersions of those objects (a patch that names another one matches nothing).
var kubeadmAPIVersions = map[string]bool{
	"kubeadm.k8s.io/v1beta3": true, "kubeadm.k8s.io/v1beta4": true,
	"kubelet.config.k8s.io/v1beta1": true, "kubeproxy.config.k8s.io/v1alpha1": true,
}

// aggregate formats several errors as apimachinery's NewAggregate does (kind uses it).
func aggregate(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New("[" + strings.Join(msgs, ", ") + "]")
}

// ParseKindConfig decodes a config like kind's encoding.Parse: apiVersion and kind first, then
// a strict decode (unknown fields are errors), then kind's defaults.
func ParseKindConfig(raw []byte) (*v1alpha4.Cluster, error) {
	var tm struct {
		Kind       string `yaml:"kind,omitempty"`
		APIVersion string `yaml:"apiVersion,omitempty"`
	}
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		return nil, fmt.Errorf("could not determine kind / apiVersion for config: %w", err)
	}
	switch tm.APIVersion {
	case kindAPIVersion:
		if tm.Kind != "Cluster" {
			// kind's message swaps the two values; kept as kind prints it.
			return nil, fmt.Errorf("unknown kind %s for apiVersion: %s", tm.APIVersion, tm.Kind)
		}
	case "kind.sigs.k8s.io/v1alpha3":
		return nil, fmt.Errorf("kind.sigs.k8s.io/v1alpha3 is no longer supported; use %s", kindAPIVersion)
	default:
		return nil, fmt.Errorf("unknown apiVersion: %s", tm.APIVersion)
	}
	cfg := &v1alpha4.Cluster{}
	d := yaml.NewDecoder(bytes.NewReader(raw))
	d.KnownFields(true)
	if err := d.Decode(cfg); err != nil {
		return nil, fmt.Errorf("unable to decode config: %w", err)
	}
	defaultCluster(cfg)
	return cfg, nil
}

// DefaultKindConfig is the config of `kind create cluster` without --config: one control-plane node.
func DefaultKindConfig() *v1alpha4.Cluster {
	cfg := &v1alpha4.Cluster{Kind: "Cluster", APIVersion: kindAPIVersion}
	defaultCluster(cfg)
	return cfg
}

func defaultCluster(c *v1alpha4.Cluster) {
	if len(c.Nodes) == 0 {
		c.Nodes = []v1alpha4.Node{{}}
	}
	for i := range c.Nodes {
		if c.Nodes[i].Role == "" {
			c.Nodes[i].Role = "control-plane"
		}
	}
	n := &c.Networking
	if n.IPFamily == "" {
		n.IPFamily = "ipv4"
	}
	if n.KubeProxyMode == "" {
		n.KubeProxyMode = "iptables"
	}
	if n.PodSubnet == "" {
		n.PodSubnet = map[string]string{"ipv4": "10.244.0.0/16", "ipv6": "fd00:10:244::/56",
			"dual": "10.244.0.0/16,fd00:10:244::/56"}[n.IPFamily]
	}
	if n.ServiceSubnet == "" {
		n.ServiceSubnet = map[string]string{"ipv4": "10.96.0.0/16", "ipv6": "fd00:10:96::/112",
			"dual": "10.96.0.0/16,fd00:10:96::/112"}[n.IPFamily]
	}
}

// ValidateKindConfig applies kind's Cluster.Validate rules (name, ports, networking, roles).
func ValidateKindConfig(c *v1alpha4.Cluster, name string) error {
	var errs []error
	if !validNameRE.MatchString(name) {
		errs = append(errs, fmt.Errorf("'%s' is not a valid cluster name, cluster names must match `%s`", name, validNameRE))
	}
	n := c.Networking
	if n.APIServerPort != 0 {
		if err := validatePort(n.APIServerPort); err != nil {
			errs = append(errs, fmt.Errorf("invalid apiServerPort: %w", err))
		}
	}
	if n.IPFamily != "ipv4" && n.IPFamily != "ipv6" && n.IPFamily != "dual" {
		errs = append(errs, fmt.Errorf("invalid ipFamily: %s", n.IPFamily))
	}
	if err := validateSubnets(n.PodSubnet, n.IPFamily); err != nil {
		errs = append(errs, fmt.Errorf("invalid pod subnet %v", err))
	}
	if err := validateSubnets(n.ServiceSubnet, n.IPFamily); err != nil {
		errs = append(errs, fmt.Errorf("invalid service subnet %v", err))
	}
	switch n.KubeProxyMode {
	case "iptables", "ipvs", "none", "nftables":
	default:
		errs = append(errs, fmt.Errorf("invalid kubeProxyMode: %s", n.KubeProxyMode))
	}
	controlPlanes := 0
	for i, node := range c.Nodes {
		if err := validateNode(node); err != nil {
			errs = append(errs, fmt.Errorf("invalid configuration for node %d: %v", i, err))
		}
		if node.Role == "control-plane" {
			controlPlanes++
		}
	}
	if controlPlanes < 1 {
		errs = append(errs, errors.New("must have at least one control-plane node"))
	}
	return aggregate(errs)
}

func validateNode(n v1alpha4.Node) error {
	var errs []error
	if n.Role != "control-plane" && n.Role != "worker" {
		errs = append(errs, fmt.Errorf("%q is not a valid node role", n.Role))
	}
	seen := map[string]bool{}
	for _, m := range n.ExtraPortMappings {
		if err := validatePort(m.HostPort); err != nil {
			errs = append(errs, fmt.Errorf("invalid hostPort: %w", err))
		}
		if err := validatePort(m.ContainerPort); err != nil {
			errs = append(errs, fmt.Errorf("invalid containerPort: %w", err))
		}
		if m.HostPort > 0 {
			proto := m.Protocol
			if proto == "" {
				proto = "TCP"
			}
			addr := m.ListenAddress
			if addr == "" || addr == "::" {
				addr = "0.0.0.0"
			}
			key := fmt.Sprintf("%s:%d/%s", addr, m.HostPort, proto)
			wild := fmt.Sprintf("0.0.0.0:%d/%s", m.HostPort, proto)
			if seen[key] || seen[wild] || (addr == "0.0.0.0" && seen["any:"+wild]) {
				errs = append(errs, fmt.Errorf("invalid portMapping: port mapping with same listen address, port and protocol already configured: %s", key))
			}
			seen[key], seen["any:"+wild] = true, true
		}
	}
	return aggregate(errs)
}

func validatePort(p int32) error {
	if p < -1 || p > 65535 {
		return fmt.Errorf("invalid port number: %d", p)
	}
	return nil
}

func validateSubnets(s, family string) error {
	var nets []*net.IPNet
	for _, c := range strings.Split(s, ",") {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			return fmt.Errorf("failed to parse cidr value:%q with error: %v", c, err)
		}
		nets = append(nets, n)
	}
	v4 := func(n *net.IPNet) bool { return n.IP.To4() != nil }
	switch {
	case family == "dual" && (len(nets) > 2 || (len(nets) == 2 && v4(nets[0]) == v4(nets[1]))):
		return errors.New("expected one (IPv4 or IPv6) CIDR or two CIDRs from each family for dual-stack networking")
	case family != "dual" && len(nets) > 1:
		return errors.New("only one CIDR allowed for single-stack networking")
	case family == "ipv4" && !v4(nets[0]):
		return errors.New("expected IPv4 CIDR for IPv4 family")
	case family == "ipv6" && v4(nets[0]):
		return errors.New("expected IPv6 CIDR for IPv6 family")
	}
	return nil
}

// Patch is one kubeadmConfigPatches document, parsed.
type Patch struct {
	Kind, APIVersion string
	Doc              map[string]any
}

// splitDocs splits a YAML stream on document separators, dropping empty documents.
func splitDocs(raw string) []string {
	var out []string
	var cur []string
	flush := func() {
		if s := strings.TrimSpace(strings.Join(cur, "\n")); s != "" {
			out = append(out, strings.Join(cur, "\n"))
		}
		cur = nil
	}
	for _, line := range strings.Split(raw, "\n") {
		if strings.TrimRight(line, " \t") == "---" {
			flush()
			continue
		}
		cur = append(cur, line)
	}
	flush()
	return out
}

// ParsePatches parses kubeadmConfigPatches as kind does before applying them: each document
// must be YAML that converts to a JSON object. warn receives patches that would match no
// object kind generates (kind applies nothing then, silently).
func ParsePatches(raws []string, where string, warn func(string)) ([]Patch, error) {
	var out []Patch
	for i, raw := range raws {
		for _, doc := range splitDocs(raw) {
			j, err := sigsyaml.YAMLToJSON([]byte(doc))
			if err != nil {
				return nil, fmt.Errorf("failed to parse patches: %v", err)
			}
			var m map[string]any
			if err := sigsyaml.Unmarshal(j, &m); err != nil || m == nil {
				return nil, fmt.Errorf("failed to parse patches: %s kubeadmConfigPatches[%d] is not a YAML mapping", where, i)
			}
			p := Patch{Doc: m}
			p.Kind, _ = m["kind"].(string)
			p.APIVersion, _ = m["apiVersion"].(string)
			switch {
			case p.Kind == "":
				warn(fmt.Sprintf("%s kubeadmConfigPatches[%d] has no kind: it matches no kubeadm object and kind ignores it", where, i))
			case !kubeadmKinds[p.Kind]:
				warn(fmt.Sprintf("%s kubeadmConfigPatches[%d] has kind %s: it matches no kubeadm object and kind ignores it", where, i, p.Kind))
			case p.APIVersion != "" && !kubeadmAPIVersions[p.APIVersion]:
				warn(fmt.Sprintf("%s kubeadmConfigPatches[%d] has apiVersion %s: it matches no kubeadm object and kind ignores it", where, i, p.APIVersion))
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// NodePlan is what one config node becomes on the environment's node it is mapped to.
type NodePlan struct {
	KindName string            // <cluster>-control-plane, <cluster>-worker2, ...
	Role     string            // control-plane | worker
	Node     string            // the environment's Node
	Labels   map[string]string // the config's labels for it
	// Reserved resources from the kubelet flags and config in its patches (system-reserved,
	// kube-reserved, evictionHard memory.available), subtracted from capacity for allocatable.
	Reserved map[string]resource.Quantity
}

// EnvNode is a Node of the test environment, as the mapping needs it.
type EnvNode struct {
	Name         string
	ControlPlane bool
}

// kindNodeNames names nodes as kind does: the first of a role has no number, then 2, 3, ...
func kindNodeNames(cluster string, c *v1alpha4.Cluster) []string {
	count := map[string]int{}
	names := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		count[n.Role]++
		suffix := ""
		if count[n.Role] > 1 {
			suffix = fmt.Sprint(count[n.Role])
		}
		names[i] = fmt.Sprintf("%s-%s%s", cluster, n.Role, suffix)
	}
	return names
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// PlanNodes maps the config's nodes onto the environment's: control-plane nodes onto nodes
// labelled node-role.kubernetes.io/control-plane, workers onto the others, each in name order.
// The counts must match exactly: the stand-in cannot add or remove nodes.
func PlanNodes(cluster string, c *v1alpha4.Cluster, env []EnvNode, profile string, warn func(string)) ([]NodePlan, error) {
	var cps, workers []string
	for _, n := range env {
		if n.ControlPlane {
			cps = append(cps, n.Name)
		} else {
			workers = append(workers, n.Name)
		}
	}
	sort.Strings(cps)
	sort.Strings(workers)
	wantCP, wantW := 0, 0
	for _, n := range c.Nodes {
		if n.Role == "control-plane" {
			wantCP++
		} else {
			wantW++
		}
	}
	if wantCP != len(cps) || wantW != len(workers) {
		return nil, fmt.Errorf("the config asks for %s and %s, but the test environment (profile %s) has %s%s and %s%s: "+
			"the kind stand-in maps a cluster onto the environment's nodes and cannot add or remove any "+
			"(rehearse kind targets on TESTENV_PROFILE=kind: one control-plane node and one worker)",
			plural(wantCP, "control-plane node", "control-plane nodes"), plural(wantW, "worker", "workers"),
			profile, plural(len(cps), "control-plane node", "control-plane nodes"), listed(cps),
			plural(len(workers), "worker", "workers"), listed(workers))
	}
	clusterPatches, err := ParsePatches(c.KubeadmConfigPatches, "cluster", warn)
	if err != nil {
		return nil, err
	}
	names := kindNodeNames(cluster, c)
	var plans []NodePlan
	ci, wi := 0, 0
	firstCP := true
	for i, n := range c.Nodes {
		nodePatches, err := ParsePatches(n.KubeadmConfigPatches, fmt.Sprintf("node %d", i), warn)
		if err != nil {
			return nil, err
		}
		p := NodePlan{KindName: names[i], Role: n.Role, Labels: n.Labels}
		// The first control-plane node runs `kubeadm init`, every other node `kubeadm join`.
		initNode := false
		if n.Role == "control-plane" {
			p.Node = cps[ci]
			ci++
			initNode, firstCP = firstCP, false
		} else {
			p.Node = workers[wi]
			wi++
		}
		p.Reserved, err = reserved(append(append([]Patch{}, clusterPatches...), nodePatches...), initNode)
		if err != nil {
			return nil, fmt.Errorf("node %d (%s): %v", i, names[i], err)
		}
		plans = append(plans, p)
	}
	return plans, nil
}

func listed(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (" + strings.Join(names, ", ") + ")"
}

// reserved reads the kubelet's reservations from the patches that reach this node:
// nodeRegistration.kubeletExtraArgs (map, or v1beta4's list of name/value) of the
// InitConfiguration (first control-plane) or JoinConfiguration (the others), and
// KubeletConfiguration's systemReserved / kubeReserved / evictionHard. Later patches win, and
// flags win over the config file, as for a kubelet. Default eviction: memory.available 100Mi.
func reserved(patches []Patch, initNode bool) (map[string]resource.Quantity, error) {
	fileSys, fileKube := map[string]string{}, map[string]string{}
	flags := map[string]string{}
	eviction := "100Mi"
	regKind := "JoinConfiguration"
	if initNode {
		regKind = "InitConfiguration"
	}
	for _, p := range patches {
		switch p.Kind {
		case "KubeletConfiguration":
			for key, dst := range map[string]map[string]string{"systemReserved": fileSys, "kubeReserved": fileKube} {
				if m, ok := p.Doc[key].(map[string]any); ok {
					for k, v := range m {
						dst[k] = fmt.Sprint(v)
					}
				}
			}
			if m, ok := p.Doc["evictionHard"].(map[string]any); ok {
				if v, ok := m["memory.available"]; ok {
					eviction = fmt.Sprint(v)
				}
			}
		case regKind:
			reg, _ := p.Doc["nodeRegistration"].(map[string]any)
			switch args := reg["kubeletExtraArgs"].(type) {
			case map[string]any:
				for k, v := range args {
					flags[k] = fmt.Sprint(v)
				}
			case []any:
				for _, a := range args {
					if m, ok := a.(map[string]any); ok {
						flags[fmt.Sprint(m["name"])] = fmt.Sprint(m["value"])
					}
				}
			}
		}
	}
	total := map[string]resource.Quantity{}
	add := func(k, v, from string) error {
		q, err := resource.ParseQuantity(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%s: %s=%q is not a quantity", from, k, v)
		}
		t := total[k]
		t.Add(q)
		total[k] = t
		return nil
	}
	parseFlag := func(name string) (map[string]string, error) {
		out := map[string]string{}
		v, ok := flags[name]
		if !ok {
			return nil, nil
		}
		for _, kv := range strings.Split(v, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("kubelet flag --%s=%s: %q is not RESOURCE=QUANTITY", name, v, kv)
			}
			out[k] = val
		}
		return out, nil
	}
	for _, f := range []struct {
		flag string
		file map[string]string
	}{{"system-reserved", fileSys}, {"kube-reserved", fileKube}} {
		m, err := parseFlag(f.flag)
		if err != nil {
			return nil, err
		}
		if m == nil {
			m = f.file
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if err := add(k, m[k], f.flag); err != nil {
				return nil, err
			}
		}
	}
	if v, ok := flags["eviction-hard"]; ok {
		for _, kv := range strings.Split(v, ",") {
			if k, val, ok := strings.Cut(kv, "<"); ok && strings.TrimSpace(k) == "memory.available" {
				eviction = val
			}
		}
	}
	if !strings.HasSuffix(eviction, "%") {
		if err := add("memory", eviction, "eviction-hard memory.available"); err != nil {
			return nil, err
		}
	}
	return total, nil
}
