// standins: kind and docker for the test environment's rehearsals, where no container engine
// runs (scripts/testenv/testenv.sh builds it; scripts/rehearse puts it first on a playbook's
// PATH and in KMSCTL_KIND / KMSCTL_DOCKER). One binary; it is kind or docker by the name it
// is run as (the symlinks $TESTENV_DIR/standins/{kind,docker}), or by its first argument:
//
//	standins kind ARGS...                        kind's CLI (kind.go)
//	standins docker ARGS...                      docker's CLI (docker.go)
//	standins registry add IMAGE [--label K=V]... seed what a pull of IMAGE gets (e.g. enclave PCR labels)
//	standins registry ls                         what the registry records hold
//
// State: $TESTENV_DIR/kind/ and $TESTENV_DIR/docker/ (see README.md beside this file).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

func goVersion() string { return runtime.Version() }

func main() {
	os.Exit(Main(NewEnv(), os.Args))
}

// Main dispatches on the program name or the first argument and returns the exit code.
func Main(e *Env, argv []string) int {
	prog := filepath.Base(argv[0])
	args := argv[1:]
	if prog != "kind" && prog != "docker" {
		if len(args) == 0 {
			fmt.Fprintln(e.Stderr, "usage: standins kind|docker ARGS... | standins registry add IMAGE [--label K=V]... | standins registry ls")
			return 2
		}
		prog, args = args[0], args[1:]
	}
	var err error
	switch prog {
	case "kind":
		err = Kind(e, args)
	case "docker":
		err = Docker(e, args)
	case "registry":
		err = registryCmd(e, args)
	default:
		fmt.Fprintf(e.Stderr, "standins: unknown stand-in %q (kind, docker, registry)\n", prog)
		return 2
	}
	if err == nil {
		return 0
	}
	if x, ok := asExit(err); ok {
		if x.msg != "" {
			fmt.Fprintln(e.Stderr, x.msg)
		}
		return x.code
	}
	if prog == "kind" {
		fmt.Fprintf(e.Stderr, "ERROR: %v\n", err)
	} else {
		fmt.Fprintf(e.Stderr, "%s (testenv stand-in): %v\n", prog, err)
	}
	return 1
}

// registryCmd seeds and lists the registry records (what pulls and manifest inspects see).
func registryCmd(e *Env, args []string) error {
	if len(args) == 0 {
		return exitf(2, "usage: standins registry add IMAGE [--label K=V]... | standins registry ls")
	}
	switch args[0] {
	case "add":
		fs := dockerFlags("registry add")
		labels := fs.StringArray("label", nil, "")
		if err := parseDocker(fs, "registry add", args[1:]); err != nil {
			return err
		}
		if fs.NArg() != 1 {
			return exitf(2, "usage: standins registry add IMAGE [--label K=V]...")
		}
		canon, err := ParseRef(fs.Arg(0))
		if err != nil {
			return exitf(1, "%v", err)
		}
		l := map[string]string{}
		for _, kv := range *labels {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return exitf(1, "--label %q: must be KEY=VALUE", kv)
			}
			l[k] = v
		}
		if len(l) == 0 {
			l = nil
		}
		return e.withStore(func(_ *Store, r *Registry) (bool, error) {
			r.Images[canon] = &RemoteImage{Digest: digestOf("manifest", canon, fmt.Sprint(l)), ID: digestOf("seeded", canon, fmt.Sprint(l)),
				Labels: l, Pushed: e.Now().UTC(), Source: "seeded"}
			fmt.Fprintf(e.Stdout, "%s %s\n", canon, r.Images[canon].Digest)
			return true, nil
		})
	case "ls":
		return e.withStore(func(_ *Store, r *Registry) (bool, error) {
			refs := make([]string, 0, len(r.Images))
			for k := range r.Images {
				refs = append(refs, k)
			}
			sort.Strings(refs)
			for _, k := range refs {
				fmt.Fprintf(e.Stdout, "%s %s %s\n", k, r.Images[k].Source, r.Images[k].Digest)
			}
			return false, nil
		})
	}
	return exitf(2, "usage: standins registry add IMAGE [--label K=V]... | standins registry ls")
}
