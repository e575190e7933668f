// Where the stand-ins keep their state, and how they reach the test environment.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// Env is one invocation's world: the test environment's directory and kubeconfig, the
// process environment, standard streams and clock. Tests build one with fakes.
type Env struct {
	Dir        string // $TESTENV_DIR: state goes to kind/ and docker/ under it
	Kubeconfig string // the environment's admin kubeconfig ($TESTENV_KUBECONFIG)
	Getenv     func(string) string
	Stdin      io.Reader
	Stdout     io.Writer
	Stderr     io.Writer
	Now        func() time.Time
	// Client reaches the environment's apiserver; nil until first needed (then built from
	// Kubeconfig), so commands that need no cluster work without one.
	Client kubernetes.Interface
	// Wait between polls of the apiserver (tests shorten it).
	Poll time.Duration
}

// NewEnv reads the process environment.
func NewEnv() *Env {
	e := &Env{
		Dir: os.Getenv("TESTENV_DIR"), Kubeconfig: os.Getenv("TESTENV_KUBECONFIG"),
		Getenv: os.Getenv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Now: time.Now,
		Poll: 200 * time.Millisecond,
	}
	if e.Kubeconfig == "" && e.Dir != "" {
		e.Kubeconfig = filepath.Join(e.Dir, "kwok", "clusters", "testenv", "kubeconfig.yaml")
	}
	return e
}

// errNoEnv explains how to point a stand-in at the environment.
func (e *Env) needDir() error {
	if e.Dir == "" {
		return fmt.Errorf("TESTENV_DIR is not set: the stand-ins keep their state in the test environment " +
			"(source the file `scripts/testenv/testenv.sh env` prints, or run through scripts/rehearse)")
	}
	return nil
}

// StateDir is <TESTENV_DIR>/<sub>, created.
func (e *Env) StateDir(sub string) (string, error) {
	if err := e.needDir(); err != nil {
		return "", err
	}
	d := filepath.Join(e.Dir, sub)
	return d, os.MkdirAll(d, 0o755)
}

// Kube is the environment's client.
func (e *Env) Kube() (kubernetes.Interface, error) {
	if e.Client != nil {
		return e.Client, nil
	}
	if e.Kubeconfig == "" {
		if err := e.needDir(); err != nil {
			return nil, err
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", e.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("the test environment's kubeconfig %s: %w", e.Kubeconfig, err)
	}
	cfg.UserAgent = "testenv-standins"
	cfg.Timeout = 30 * time.Second
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	e.Client = c
	return c, nil
}

// lockDir holds an exclusive flock on <dir>/.lock until the returned func is called, so
// concurrent stand-in runs (parallel party builds, say) never lose each other's records.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
}

// readJSON reads path into v; a missing file leaves v as it is.
func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// writeJSON writes v to path through a temp file and a rename (never half written).
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s.tmp.%d", path, os.Getpid())
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// appendLine appends one JSON line to a log file (the stand-ins' record of what ran).
func appendLine(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(b, '\n'))
	return err
}
