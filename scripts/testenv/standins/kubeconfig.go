// The kubeconfig a kind cluster is written to, edited the way kind edits it: the file is
// chosen by kubectl's rules (--kubeconfig, else the first existing file in $KUBECONFIG, else
// its last, else ~/.kube/config), locked with client-go's <file>.lock, and gets a cluster,
// user and context all named kind-<name>, with the current context set to it.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ContextFor is kind's context (and cluster and user) name for a cluster.
func ContextFor(cluster string) string { return "kind-" + cluster }

// kubeconfigPaths are the files kind considers (kubectl's rules).
func kubeconfigPaths(explicit string, getenv func(string) string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	var out []string
	seen := map[string]bool{}
	for _, p := range filepath.SplitList(getenv("KUBECONFIG")) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	if len(out) > 0 {
		return out
	}
	return []string{filepath.Join(getenv("HOME"), ".kube", "config")}
}

// KubeconfigForMerge is the file a new context is written to.
func KubeconfigForMerge(explicit string, getenv func(string) string) string {
	paths := kubeconfigPaths(explicit, getenv)
	if len(paths) == 1 {
		return paths[0]
	}
	for _, p := range paths {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return paths[len(paths)-1]
}

// lockKubeconfig takes client-go's lock (<file>.lock, created exclusively); kind fails at once
// when it is held, this waits up to 5s first (a stand-in run may overlap a kubectl write).
func lockKubeconfig(path string) (func(), error) {
	lock := path + ".lock"
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			_ = f.Close()
			return func() { _ = os.Remove(lock) }, nil
		}
		if !errors.Is(err, os.ErrExist) || time.Now().After(deadline) {
			return nil, fmt.Errorf("failed to lock config file: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func loadKubeconfig(path string) (*clientcmdapi.Config, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return clientcmdapi.NewConfig(), nil
	}
	return cfg, err
}

// Credentials are an apiserver and an identity for it, with the certificates inline.
type Credentials struct {
	Server                                string
	CAData, ClientCertData, ClientKeyData []byte
	Token                                 string
}

// CredentialsFrom reads the current context of a kubeconfig (the test environment's admin
// one), with file references read in, relative to the kubeconfig's directory.
func CredentialsFrom(path string) (*Credentials, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, err
	}
	ctx, ok := cfg.Contexts[cfg.CurrentContext]
	if !ok {
		return nil, fmt.Errorf("%s: no current context", path)
	}
	cl, ok := cfg.Clusters[ctx.Cluster]
	if !ok {
		return nil, fmt.Errorf("%s: context %s names no cluster", path, cfg.CurrentContext)
	}
	user := cfg.AuthInfos[ctx.AuthInfo]
	if user == nil {
		user = clientcmdapi.NewAuthInfo()
	}
	dir := filepath.Dir(path)
	read := func(data []byte, file string) ([]byte, error) {
		if len(data) > 0 || file == "" {
			return data, nil
		}
		if !filepath.IsAbs(file) {
			file = filepath.Join(dir, file)
		}
		return os.ReadFile(file)
	}
	c := &Credentials{Server: cl.Server, Token: user.Token}
	if c.CAData, err = read(cl.CertificateAuthorityData, cl.CertificateAuthority); err != nil {
		return nil, err
	}
	if c.ClientCertData, err = read(user.ClientCertificateData, user.ClientCertificate); err != nil {
		return nil, err
	}
	if c.ClientKeyData, err = read(user.ClientKeyData, user.ClientKey); err != nil {
		return nil, err
	}
	return c, nil
}

// KindEntries are the kubeconfig entries kind writes for a cluster.
func KindEntries(cluster string, c *Credentials) *clientcmdapi.Config {
	name := ContextFor(cluster)
	cfg := clientcmdapi.NewConfig()
	cl := clientcmdapi.NewCluster()
	cl.Server, cl.CertificateAuthorityData = c.Server, c.CAData
	u := clientcmdapi.NewAuthInfo()
	u.ClientCertificateData, u.ClientKeyData, u.Token = c.ClientCertData, c.ClientKeyData, c.Token
	ctx := clientcmdapi.NewContext()
	ctx.Cluster, ctx.AuthInfo = name, name
	cfg.Clusters[name], cfg.AuthInfos[name], cfg.Contexts[name] = cl, u, ctx
	cfg.CurrentContext = name
	return cfg
}

// MergeKind writes the cluster's entries into the file kind would merge into and makes its
// context current (kind's WriteMerged). It returns the file.
func MergeKind(cluster string, c *Credentials, explicit string, getenv func(string) string) (string, error) {
	path := KubeconfigForMerge(explicit, getenv)
	unlock, err := lockKubeconfig(path)
	if err != nil {
		return path, err
	}
	defer unlock()
	existing, err := loadKubeconfig(path)
	if err != nil {
		return path, fmt.Errorf("failed to get kubeconfig to merge: %w", err)
	}
	entries := KindEntries(cluster, c)
	name := ContextFor(cluster)
	existing.Clusters[name] = entries.Clusters[name]
	existing.AuthInfos[name] = entries.AuthInfos[name]
	existing.Contexts[name] = entries.Contexts[name]
	existing.CurrentContext = name
	return path, clientcmd.WriteToFile(*existing, path)
}

// RemoveKind drops the cluster's entries from every file kind considers (kind's RemoveKIND),
// and unsets the current context if it was the cluster's. It reports whether any file changed.
func RemoveKind(cluster, explicit string, getenv func(string) string) (bool, error) {
	name := ContextFor(cluster)
	changed := false
	for _, path := range kubeconfigPaths(explicit, getenv) {
		if _, err := os.Stat(path); err != nil {
			continue
		}
		if err := func() error {
			unlock, err := lockKubeconfig(path)
			if err != nil {
				return err
			}
			defer unlock()
			cfg, err := loadKubeconfig(path)
			if err != nil {
				return fmt.Errorf("failed to read kubeconfig to remove KIND entry: %w", err)
			}
			mutated := false
			if _, ok := cfg.Clusters[name]; ok {
				delete(cfg.Clusters, name)
				mutated = true
			}
			if _, ok := cfg.AuthInfos[name]; ok {
				delete(cfg.AuthInfos, name)
				mutated = true
			}
			if _, ok := cfg.Contexts[name]; ok {
				delete(cfg.Contexts, name)
				mutated = true
			}
			if cfg.CurrentContext == name {
				cfg.CurrentContext = ""
				mutated = true
			}
			if !mutated {
				return nil
			}
			changed = true
			return clientcmd.WriteToFile(*cfg, path)
		}(); err != nil {
			return changed, err
		}
	}
	return changed, nil
}

// KindKubeconfig is `kind get kubeconfig`: a kubeconfig with only the cluster's entries.
func KindKubeconfig(cluster string, c *Credentials) ([]byte, error) {
	return clientcmd.Write(*KindEntries(cluster, c))
}
