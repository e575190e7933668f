// The kind stand-in: kind's CLI over the running test environment. A "cluster" is a record
// under $TESTENV_DIR/kind/ plus a kind-<name> context (the environment's apiserver and admin
// credentials) in the kubeconfig kind would write; its nodes are the environment's Nodes.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

const kindVersion = "v0.30.0-testenv"

// KindCluster is the record of one stand-in cluster.
type KindCluster struct {
	Name       string           `json:"name"`
	Created    time.Time        `json:"created"`
	Kubeconfig string           `json:"kubeconfig"` // the file its context was written to
	Image      string           `json:"image"`
	Config     string           `json:"config,omitempty"` // the --config given ("" = kind's default)
	Nodes      []KindNodeRecord `json:"nodes"`
	// Namespaces that existed when it was created (the others go when it is deleted).
	Namespaces []string `json:"namespaces"`
	// Images loaded: kind node name -> canonical reference -> image ID.
	Loaded map[string]map[string]string `json:"loaded,omitempty"`
	// Names written to each environment node's status.images, to take back on delete.
	ImageNames map[string][]string `json:"imageNames,omitempty"`
}

// KindNodeRecord is one node of a stand-in cluster.
type KindNodeRecord struct {
	KindName string     `json:"kindName"`
	Role     string     `json:"role"`
	Node     string     `json:"node"` // the environment's Node
	Change   NodeChange `json:"change"`
}

func kindErr(format string, a ...any) error { return exitf(1, "ERROR: "+format, a...) }

func (e *Env) kindDir() (string, error) {
	d, err := e.StateDir("kind")
	if err != nil {
		return "", err
	}
	return d, os.MkdirAll(filepath.Join(d, "clusters"), 0o755)
}

func clusterFile(dir, name string) string { return filepath.Join(dir, "clusters", name+".json") }

func loadCluster(dir, name string) (*KindCluster, error) {
	if _, err := os.Stat(clusterFile(dir, name)); os.IsNotExist(err) {
		return nil, nil
	}
	c := &KindCluster{}
	if err := readJSON(clusterFile(dir, name), c); err != nil {
		return nil, err
	}
	return c, nil
}

func clusterNames(dir string) ([]string, error) {
	m, err := filepath.Glob(filepath.Join(dir, "clusters", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range m {
		out = append(out, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	sort.Strings(out)
	return out, nil
}

func kindFlags(cmd string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// kind's global flags, accepted everywhere.
	fs.String("loglevel", "", "")
	fs.Int32P("verbosity", "v", 0, "")
	fs.BoolP("quiet", "q", false, "")
	return fs
}

func parseKind(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return kindErr("%v", err)
	}
	return nil
}

func (e *Env) defaultName() string {
	if n := e.Getenv("KIND_CLUSTER_NAME"); n != "" {
		return n
	}
	return defaultClusterName
}

// Kind runs the kind stand-in with args (without the program name).
func Kind(e *Env, args []string) error {
	// kind's global flags may come before the command words.
	var global []string
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		a := args[0]
		global = append(global, a)
		args = args[1:]
		if (a == "-v" || a == "--verbosity" || a == "--loglevel") && len(args) > 0 {
			global = append(global, args[0])
			args = args[1:]
		}
	}
	var pos []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") || len(pos) == 2 {
			break
		}
		pos = append(pos, a)
	}
	cmdline := strings.Join(pos, " ")
	rest := func(n int) []string { return append(append([]string{}, global...), args[n:]...) }
	switch {
	case len(pos) == 0:
		return exitf(1, "kind creates and manages local Kubernetes clusters using Docker container 'nodes' "+
			"(testenv stand-in: maps clusters onto the running test environment)\n\n"+
			"Usage:\n  kind [command]\n\nCommands: create cluster, delete cluster(s), get clusters|nodes|kubeconfig, export kubeconfig, load docker-image, version")
	case pos[0] == "version":
		fmt.Fprintf(e.Stdout, "kind %s %s linux/amd64\n", kindVersion, goVersion())
		return nil
	case cmdline == "create cluster":
		return kindCreate(e, rest(2))
	case cmdline == "delete cluster":
		return kindDelete(e, rest(2))
	case cmdline == "delete clusters":
		return kindDeleteClusters(e, rest(2))
	case cmdline == "get clusters":
		return kindGetClusters(e, rest(2))
	case cmdline == "get nodes":
		return kindGetNodes(e, rest(2))
	case cmdline == "get kubeconfig":
		return kindGetKubeconfig(e, rest(2))
	case cmdline == "export kubeconfig":
		return kindExportKubeconfig(e, rest(2))
	case cmdline == "load docker-image":
		return kindLoad(e, rest(2))
	case cmdline == "load image-archive", cmdline == "build node-image", cmdline == "export logs":
		return kindErr("'kind %s' is not supported by the testenv stand-in (no containers, no image contents)", cmdline)
	}
	return kindErr("unknown command %q for \"kind\"", cmdline)
}

func (e *Env) k8sVersion() string {
	if v := e.Getenv("TESTENV_K8S_VERSION"); v != "" {
		return v
	}
	return "v1.36.1"
}

func kindCreate(e *Env, args []string) error {
	fs := kindFlags("create cluster")
	name := fs.StringP("name", "n", "", "")
	configPath := fs.String("config", "", "")
	image := fs.String("image", "", "")
	fs.Bool("retain", false, "")
	wait := fs.Duration("wait", 0, "")
	explicitKC := fs.String("kubeconfig", "", "")
	if err := parseKind(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return kindErr("unknown command %q for \"kind create cluster\"", fs.Arg(0))
	}
	quiet, _ := fs.GetBool("quiet")
	out := e.Stderr
	if quiet {
		out = io.Discard
	}
	warn := func(s string) { fmt.Fprintf(e.Stderr, "WARNING: %s\n", s) }
	fail := func(err error) error { return kindErr("failed to create cluster: %v", err) }

	// 1. The config (kind: fixupOptions, before anything else).
	cfg := DefaultKindConfig()
	if *configPath != "" {
		var raw []byte
		var err error
		if *configPath == "-" {
			raw, err = io.ReadAll(e.Stdin)
		} else {
			raw, err = os.ReadFile(*configPath)
		}
		if err != nil {
			return fail(fmt.Errorf("error reading file: %w", err))
		}
		if cfg, err = ParseKindConfig(raw); err != nil {
			return fail(err)
		}
	}
	cluster := *name
	if cluster == "" {
		cluster = e.Getenv("KIND_CLUSTER_NAME")
	}
	if cluster == "" {
		cluster = cfg.Name
	}
	if cluster == "" {
		cluster = defaultClusterName
	}
	nodeImage := *image
	if nodeImage == "" {
		nodeImage = "kindest/node:" + e.k8sVersion()
	}

	dir, err := e.kindDir()
	if err != nil {
		return kindErr("%v", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return kindErr("%v", err)
	}
	defer unlock()
	// 2. An existing cluster of that name (kind: alreadyExists), then 3. kind's validation.
	if c, err := loadCluster(dir, cluster); err != nil {
		return kindErr("%v", err)
	} else if c != nil {
		return fail(fmt.Errorf("node(s) already exist for a cluster with the name %q", cluster))
	}
	if err := ValidateKindConfig(cfg, cluster); err != nil {
		return fail(err)
	}
	names, err := clusterNames(dir)
	if err != nil {
		return kindErr("%v", err)
	}
	if len(names) > 0 {
		return fail(fmt.Errorf("the test environment already holds kind cluster %q (the stand-in maps one cluster at a time onto "+
			"its nodes): delete it first (kind delete cluster --name %s)", names[0], names[0]))
	}
	if i := strings.LastIndex(nodeImage, ":v"); i > 0 && !strings.HasPrefix(nodeImage[i+1:], e.k8sVersion()) {
		warn(fmt.Sprintf("node image %s asks for Kubernetes %s; the test environment runs %s, and so does this cluster",
			nodeImage, strings.SplitN(nodeImage[i+1:], "@", 2)[0], e.k8sVersion()))
	}
	for i, n := range cfg.Nodes {
		if len(n.ExtraMounts) > 0 || len(n.ExtraPortMappings) > 0 {
			warn(fmt.Sprintf("node %d: extraMounts and extraPortMappings are accepted but not simulated (no containers)", i))
		}
	}
	if _, err := ParsePatches(cfg.KubeadmConfigPatches, "cluster", func(string) {}); err != nil {
		fmt.Fprintf(out, "Creating cluster %q ...\n ✗ Writing configuration 📜\n", cluster)
		return fail(fmt.Errorf("failed to generate kubeadm config content: %w", err))
	}

	// 4. The environment's nodes.
	kc, err := e.Kube()
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	envNodes, notReady, err := EnvNodes(ctx, kc)
	if err != nil {
		return fail(fmt.Errorf("the test environment's apiserver: %w", err))
	}
	profile := EnvProfile(ctx, kc, e.Getenv("TESTENV_PROFILE"))
	fmt.Fprintf(out, "Creating cluster %q ...\n", cluster)
	fmt.Fprintf(out, " ✓ Ensuring node image (%s) 🖼\n", nodeImage)
	plans, err := PlanNodes(cluster, cfg, envNodes, profile, warn)
	if err != nil {
		if strings.HasPrefix(err.Error(), "failed to parse patches") || strings.Contains(err.Error(), "kubelet flag") {
			fmt.Fprintf(out, " ✓ Preparing nodes %s\n ✗ Writing configuration 📜\n", strings.Repeat("📦 ", len(cfg.Nodes)))
			return fail(fmt.Errorf("failed to generate kubeadm config content: %w", err))
		}
		fmt.Fprintf(out, " ✗ Preparing nodes %s\n", strings.Repeat("📦 ", len(cfg.Nodes)))
		return fail(err)
	}
	fmt.Fprintf(out, " ✓ Preparing nodes %s\n ✓ Writing configuration 📜\n", strings.Repeat("📦 ", len(cfg.Nodes)))
	nsNow, err := Namespaces(ctx, kc)
	if err != nil {
		return fail(err)
	}
	rec := &KindCluster{Name: cluster, Created: e.Now().UTC(), Image: nodeImage, Config: *configPath}
	for n := range nsNow {
		rec.Namespaces = append(rec.Namespaces, n)
	}
	sort.Strings(rec.Namespaces)
	undo := func() {
		for _, n := range rec.Nodes {
			_ = UndoChange(ctx, kc, n.Node, n.Change)
		}
	}
	for _, p := range plans {
		ch, err := ApplyPlan(ctx, kc, p)
		rec.Nodes = append(rec.Nodes, KindNodeRecord{KindName: p.KindName, Role: p.Role, Node: p.Node, Change: ch})
		if err != nil {
			undo()
			fmt.Fprintf(out, " ✗ Starting control-plane 🕹️\n")
			return fail(fmt.Errorf("node %s (%s): %w", p.KindName, p.Node, err))
		}
	}
	fmt.Fprintf(out, " ✓ Starting control-plane 🕹️\n ✓ Installing CNI 🔌\n ✓ Installing StorageClass 💾\n")
	if len(plans) > 1 {
		fmt.Fprintf(out, " ✓ Joining worker nodes 🚜\n")
	}
	if *wait > 0 {
		fmt.Fprintf(out, " ✓ Waiting ≤ %s for control-plane = Ready ⏳\n", wait.String())
		start := e.Now()
		for len(notReady) > 0 {
			if e.Now().Sub(start) > *wait {
				undo()
				return fail(fmt.Errorf("nodes not Ready after %s: %s", wait, strings.Join(notReady, ", ")))
			}
			time.Sleep(e.Poll)
			if _, notReady, err = EnvNodes(ctx, kc); err != nil {
				undo()
				return fail(err)
			}
		}
		fmt.Fprintf(out, " • Ready after %s 💚\n", e.Now().Sub(start).Round(time.Second))
	}
	creds, err := CredentialsFrom(e.Kubeconfig)
	if err != nil {
		undo()
		return fail(fmt.Errorf("the test environment's kubeconfig: %w", err))
	}
	rec.Kubeconfig, err = MergeKind(cluster, creds, *explicitKC, e.Getenv)
	if err != nil {
		undo()
		return fail(err)
	}
	if err := writeJSON(clusterFile(dir, cluster), rec); err != nil {
		undo()
		return fail(err)
	}
	_ = appendLine(filepath.Join(dir, "calls.log"), map[string]any{"at": e.Now().UTC(), "cmd": "create cluster", "name": cluster, "config": *configPath})
	ctxName := ContextFor(cluster)
	var mapped []string
	for _, n := range rec.Nodes {
		mapped = append(mapped, n.KindName+" = "+n.Node)
	}
	fmt.Fprintf(out, "Set kubectl context to %q\nYou can now use your cluster with:\n\nkubectl cluster-info --context %s\n\n", ctxName, ctxName)
	fmt.Fprintf(out, "(testenv stand-in: the cluster is the test environment, profile %s: %s; context in %s)\n\nHave a nice day! 👋\n",
		profile, strings.Join(mapped, ", "), rec.Kubeconfig)
	return nil
}

func kindDelete(e *Env, args []string) error {
	fs := kindFlags("delete cluster")
	name := fs.StringP("name", "n", e.defaultName(), "")
	explicitKC := fs.String("kubeconfig", "", "")
	if err := parseKind(fs, args); err != nil {
		return err
	}
	return deleteOne(e, *name, *explicitKC)
}

func kindDeleteClusters(e *Env, args []string) error {
	fs := kindFlags("delete clusters")
	all := fs.BoolP("all", "A", false, "")
	explicitKC := fs.String("kubeconfig", "", "")
	if err := parseKind(fs, args); err != nil {
		return err
	}
	names := fs.Args()
	if *all {
		dir, err := e.kindDir()
		if err != nil {
			return kindErr("%v", err)
		}
		if names, err = clusterNames(dir); err != nil {
			return kindErr("%v", err)
		}
	}
	if len(names) == 0 && !*all {
		return kindErr("no cluster names given (or --all)")
	}
	for _, n := range names {
		if err := deleteOne(e, n, *explicitKC); err != nil {
			return err
		}
	}
	fmt.Fprintf(e.Stdout, "Deleted clusters: %q\n", names)
	return nil
}

// deleteOne is kind's delete: the kubeconfig entries go first, then the "nodes" (here: what
// the cluster changed on the environment's Nodes, and the namespaces created in it).
func deleteOne(e *Env, cluster, explicitKC string) error {
	fmt.Fprintf(e.Stderr, "Deleting cluster %q ...\n", cluster)
	dir, err := e.kindDir()
	if err != nil {
		return kindErr("%v", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return kindErr("%v", err)
	}
	defer unlock()
	rec, err := loadCluster(dir, cluster)
	if err != nil {
		return kindErr("%v", err)
	}
	var kerr error
	if rec != nil && explicitKC == "" && rec.Kubeconfig != "" {
		// The file the context went to, plus what $KUBECONFIG names now.
		_, kerr = RemoveKind(cluster, rec.Kubeconfig, e.Getenv)
	}
	if _, err := RemoveKind(cluster, explicitKC, e.Getenv); err != nil && kerr == nil {
		kerr = err
	}
	if kerr != nil {
		fmt.Fprintf(e.Stderr, "ERROR: failed to update kubeconfig: %v\n", kerr)
	}
	if rec == nil {
		return nil
	}
	kc, err := e.Kube()
	if err != nil {
		return kindErr("failed to delete cluster %q: %v", cluster, err)
	}
	ctx := context.Background()
	if e.Getenv("TESTENV_KIND_KEEP_NAMESPACES") == "" {
		nsNow, err := Namespaces(ctx, kc)
		if err != nil {
			return kindErr("failed to delete cluster %q: %v", cluster, err)
		}
		if gone := NamespacesToDelete(nsNow, rec.Namespaces); len(gone) > 0 {
			fmt.Fprintf(e.Stderr, "(testenv stand-in) deleting the namespaces created in the cluster: %s\n", strings.Join(gone, ", "))
			if err := DeleteNamespaces(ctx, kc, gone, 2*time.Minute, e.Poll); err != nil {
				return kindErr("failed to delete cluster %q: %v", cluster, err)
			}
		}
	}
	var nodes []string
	for _, n := range rec.Nodes {
		nodes = append(nodes, n.KindName)
		if err := UndoChange(ctx, kc, n.Node, n.Change); err != nil {
			return kindErr("failed to delete cluster %q: node %s: %v", cluster, n.Node, err)
		}
	}
	for node, names := range rec.ImageNames {
		if err := SetImages(ctx, kc, node, nil, names); err != nil {
			return kindErr("failed to delete cluster %q: node %s: %v", cluster, node, err)
		}
	}
	if err := os.Remove(clusterFile(dir, cluster)); err != nil {
		return kindErr("%v", err)
	}
	_ = appendLine(filepath.Join(dir, "calls.log"), map[string]any{"at": e.Now().UTC(), "cmd": "delete cluster", "name": cluster})
	q := make([]string, len(nodes))
	for i, n := range nodes {
		q[i] = fmt.Sprintf("%q", n)
	}
	fmt.Fprintf(e.Stderr, "Deleted nodes: [%s]\n", strings.Join(q, " "))
	if kerr != nil {
		return exitf(1, "ERROR: failed to delete cluster %q: %v", cluster, kerr)
	}
	return nil
}

func kindGetClusters(e *Env, args []string) error {
	fs := kindFlags("get clusters")
	if err := parseKind(fs, args); err != nil {
		return err
	}
	dir, err := e.kindDir()
	if err != nil {
		return kindErr("%v", err)
	}
	names, err := clusterNames(dir)
	if err != nil {
		return kindErr("%v", err)
	}
	if len(names) == 0 {
		fmt.Fprintln(e.Stderr, "No kind clusters found.")
	}
	for _, n := range names {
		fmt.Fprintln(e.Stdout, n)
	}
	return nil
}

func kindGetNodes(e *Env, args []string) error {
	fs := kindFlags("get nodes")
	name := fs.StringP("name", "n", e.defaultName(), "")
	all := fs.BoolP("all-clusters", "A", false, "")
	if err := parseKind(fs, args); err != nil {
		return err
	}
	dir, err := e.kindDir()
	if err != nil {
		return kindErr("%v", err)
	}
	names := []string{*name}
	if *all {
		if names, err = clusterNames(dir); err != nil {
			return kindErr("%v", err)
		}
	}
	for _, n := range names {
		rec, err := loadCluster(dir, n)
		if err != nil {
			return kindErr("%v", err)
		}
		if rec == nil {
			fmt.Fprintf(e.Stderr, "No kind nodes found for cluster %q.\n", n)
			continue
		}
		for _, node := range rec.Nodes {
			fmt.Fprintln(e.Stdout, node.KindName)
		}
	}
	return nil
}

func kindGetKubeconfig(e *Env, args []string) error {
	fs := kindFlags("get kubeconfig")
	name := fs.StringP("name", "n", e.defaultName(), "")
	fs.Bool("internal", false, "")
	if err := parseKind(fs, args); err != nil {
		return err
	}
	dir, err := e.kindDir()
	if err != nil {
		return kindErr("%v", err)
	}
	rec, err := loadCluster(dir, *name)
	if err != nil {
		return kindErr("%v", err)
	}
	if rec == nil {
		return kindErr("could not locate any control plane nodes for cluster named '%s'. Use the --name option to select a different cluster", *name)
	}
	creds, err := CredentialsFrom(e.Kubeconfig)
	if err != nil {
		return kindErr("%v", err)
	}
	b, err := KindKubeconfig(*name, creds)
	if err != nil {
		return kindErr("%v", err)
	}
	_, err = e.Stdout.Write(b)
	return err
}

func kindExportKubeconfig(e *Env, args []string) error {
	fs := kindFlags("export kubeconfig")
	name := fs.StringP("name", "n", e.defaultName(), "")
	explicitKC := fs.String("kubeconfig", "", "")
	fs.Bool("internal", false, "")
	if err := parseKind(fs, args); err != nil {
		return err
	}
	dir, err := e.kindDir()
	if err != nil {
		return kindErr("%v", err)
	}
	rec, err := loadCluster(dir, *name)
	if err != nil {
		return kindErr("%v", err)
	}
	if rec == nil {
		return kindErr("could not locate any control plane nodes for cluster named '%s'. Use the --name option to select a different cluster", *name)
	}
	creds, err := CredentialsFrom(e.Kubeconfig)
	if err != nil {
		return kindErr("%v", err)
	}
	if _, err := MergeKind(*name, creds, *explicitKC, e.Getenv); err != nil {
		return kindErr("%v", err)
	}
	fmt.Fprintf(e.Stderr, "Set kubectl context to %q\n", ContextFor(*name))
	return nil
}

// imageNames are what a node's status.images lists for a loaded image.
func imageNames(canon string, img *ImageRecord) []string {
	names := []string{canon}
	if img.Digest != "" && !strings.Contains(canon, "@") {
		names = append(names, repoOf(canon)+"@"+img.Digest)
	}
	return names
}

func kindLoad(e *Env, args []string) error {
	fs := kindFlags("load docker-image")
	name := fs.StringP("name", "n", e.defaultName(), "")
	nodesFlag := fs.StringSlice("nodes", nil, "")
	if err := parseKind(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return kindErr("name of image is required")
	}
	dir, err := e.kindDir()
	if err != nil {
		return kindErr("%v", err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return kindErr("%v", err)
	}
	defer unlock()
	rec, err := loadCluster(dir, *name)
	if err != nil {
		return kindErr("%v", err)
	}
	if rec == nil {
		return kindErr("no nodes found for cluster %q", *name)
	}
	byKind := map[string]KindNodeRecord{}
	for _, n := range rec.Nodes {
		byKind[n.KindName] = n
	}
	selected := rec.Nodes
	if len(*nodesFlag) > 0 {
		selected = nil
		for _, n := range *nodesFlag {
			r, ok := byKind[n]
			if !ok {
				return kindErr("unknown node: %s", n)
			}
			selected = append(selected, r)
		}
	}
	// Images from the docker stand-in's store (built or pulled there), as kind asks docker.
	type want struct {
		ref, canon string
		img        *ImageRecord
	}
	var wants []want
	err = e.withStore(func(s *Store, _ *Registry) (bool, error) {
		for _, ref := range fs.Args() {
			img, canon, ok := s.Lookup(ref)
			if !ok {
				return false, kindErr("image: %q not present locally", ref)
			}
			if canon == "" {
				canon = ref
			}
			wants = append(wants, want{ref, canon, img})
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	kc, err := e.Kube()
	if err != nil {
		return kindErr("%v", err)
	}
	ctx := context.Background()
	if rec.Loaded == nil {
		rec.Loaded = map[string]map[string]string{}
	}
	if rec.ImageNames == nil {
		rec.ImageNames = map[string][]string{}
	}
	for _, w := range wants {
		var todo []KindNodeRecord
		for _, n := range selected {
			if rec.Loaded[n.KindName][w.canon] != w.img.ID {
				todo = append(todo, n)
			}
		}
		if len(todo) == 0 {
			fmt.Fprintf(e.Stderr, "Image: %q with ID %q found to be already present on all nodes.\n", w.ref, w.img.ID)
			continue
		}
		for _, n := range todo {
			fmt.Fprintf(e.Stderr, "Image: %q with ID %q not yet present on node %q, loading...\n", w.ref, w.img.ID, n.KindName)
			names := imageNames(w.canon, w.img)
			if err := SetImages(ctx, kc, n.Node, [][]string{names}, nil); err != nil {
				return kindErr("failed to load image: node %s (%s): %v", n.KindName, n.Node, err)
			}
			if rec.Loaded[n.KindName] == nil {
				rec.Loaded[n.KindName] = map[string]string{}
			}
			rec.Loaded[n.KindName][w.canon] = w.img.ID
			rec.ImageNames[n.Node] = mergeNames(rec.ImageNames[n.Node], names)
		}
		_ = appendLine(filepath.Join(dir, "loads.log"), map[string]any{"at": e.Now().UTC(), "cluster": *name, "image": w.canon, "id": w.img.ID, "nodes": kindNames(todo)})
	}
	if err := writeJSON(clusterFile(dir, *name), rec); err != nil {
		return kindErr("%v", err)
	}
	return nil
}

func kindNames(ns []KindNodeRecord) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.KindName
	}
	return out
}

func mergeNames(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string{}, a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
