// The docker stand-in: the docker CLI commands kmsctl's docker module and the kind stand-in
// need, over the records in images.go. Nothing is built or run: a build checks what it can
// without an engine (context, Dockerfile, --target, COPY sources, required secrets) and
// records the image with its labels.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/spf13/pflag"
)

const (
	dockerVersion = "28.5.1-testenv"
	dockerAPI     = "1.51"
)

// exitError carries an exit code and the message already meant for stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func exitf(code int, format string, a ...any) error {
	return &exitError{code: code, msg: fmt.Sprintf(format, a...)}
}

// dockerFlags is a docker-style flag set: errors become docker's usage message and exit 125.
func dockerFlags(cmd string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SetInterspersed(true)
	return fs
}

func parseDocker(fs *pflag.FlagSet, cmd string, args []string) error {
	if err := fs.Parse(args); err != nil {
		return exitf(125, "%v\nSee 'docker %s --help'.", err, cmd)
	}
	return nil
}

// Docker runs the docker stand-in with args (without the program name).
func Docker(e *Env, args []string) error {
	// Global options docker takes before the command; the stand-in has one "daemon".
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch a := args[0]; {
		case a == "-D" || a == "--debug" || a == "--tls" || a == "--tlsverify":
			args = args[1:]
		case a == "--context" || a == "-c" || a == "-H" || a == "--host" || a == "--config" || a == "-l" || a == "--log-level":
			if len(args) < 2 {
				return exitf(125, "flag needs an argument: %s", a)
			}
			args = args[2:]
		case strings.HasPrefix(a, "--") && strings.Contains(a, "="):
			args = args[1:]
		case a == "-v" || a == "--version":
			fmt.Fprintf(e.Stdout, "Docker version %s, build testenv\n", dockerVersion)
			return nil
		default:
			return exitf(125, "unknown flag: %s\nSee 'docker --help'.", a)
		}
	}
	if len(args) == 0 {
		return exitf(1, "usage: docker COMMAND (testenv stand-in: build, buildx build, image inspect|ls|rm, images, tag, pull, push, manifest inspect, login, logout, version)")
	}
	cmd, rest := args[0], args[1:]
	sub := func() string {
		if len(rest) == 0 {
			return ""
		}
		return rest[0]
	}
	switch cmd {
	case "build":
		return dockerBuild(e, "build", rest, false)
	case "buildx", "builder":
		switch sub() {
		case "build", "b":
			return dockerBuild(e, cmd+" build", rest[1:], cmd == "buildx")
		case "version":
			fmt.Fprintf(e.Stdout, "buildx v0.29.1-testenv testenv\n")
			return nil
		}
	case "image":
		switch sub() {
		case "inspect":
			return dockerInspect(e, "image inspect", rest[1:])
		case "ls", "list":
			return dockerImages(e, "image ls", rest[1:])
		case "rm", "remove":
			return dockerRmi(e, "image rm", rest[1:])
		case "pull":
			return dockerPull(e, "image pull", rest[1:])
		case "push":
			return dockerPush(e, "image push", rest[1:])
		case "tag":
			return dockerTag(e, "image tag", rest[1:])
		case "build":
			return dockerBuild(e, "image build", rest[1:], false)
		}
	case "inspect":
		return dockerInspect(e, "inspect", rest)
	case "images":
		return dockerImages(e, "images", rest)
	case "rmi":
		return dockerRmi(e, "rmi", rest)
	case "tag":
		return dockerTag(e, "tag", rest)
	case "pull":
		return dockerPull(e, "pull", rest)
	case "push":
		return dockerPush(e, "push", rest)
	case "manifest":
		if sub() == "inspect" {
			return dockerManifestInspect(e, rest[1:])
		}
	case "version":
		return dockerVersionCmd(e, rest)
	case "login":
		return dockerLogin(e, rest)
	case "logout":
		fmt.Fprintln(e.Stdout, "Removing login credentials for the testenv stand-in (none are kept)")
		return nil
	default:
		return exitf(1, "docker: '%s' is not a command the testenv stand-in has: nothing runs here "+
			"(it records builds, pulls and pushes; see scripts/testenv/standins/)", cmd)
	}
	return exitf(1, "docker: '%s %s' is not a command the testenv stand-in has", cmd, sub())
}

// ---- build --------------------------------------------------------------------------------

func dockerBuild(e *Env, cmd string, args []string, buildx bool) error {
	fs := dockerFlags(cmd)
	tags := fs.StringArrayP("tag", "t", nil, "")
	file := fs.StringP("file", "f", "", "")
	buildArgs := fs.StringArray("build-arg", nil, "")
	labels := fs.StringArray("label", nil, "")
	secrets := fs.StringArray("secret", nil, "")
	target := fs.String("target", "", "")
	platform := fs.String("platform", "", "")
	load := fs.Bool("load", false, "")
	push := fs.Bool("push", false, "")
	quiet := fs.BoolP("quiet", "q", false, "")
	iidfile := fs.String("iidfile", "", "")
	metadataFile := fs.String("metadata-file", "", "")
	outputs := fs.StringArrayP("output", "o", nil, "")
	for _, b := range []string{"no-cache", "pull", "rm", "force-rm"} {
		fs.Bool(b, false, "")
	}
	for _, s := range []string{"progress", "network", "builder", "provenance", "sbom", "shm-size", "cgroup-parent", "isolation", "call", "check"} {
		fs.String(s, "", "")
	}
	for _, s := range []string{"cache-from", "cache-to", "ssh", "build-context", "add-host", "ulimit", "allow", "annotation", "attest", "no-cache-filter"} {
		fs.StringArray(s, nil, "")
	}
	if err := parseDocker(fs, cmd, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return exitf(1, "ERROR: \"docker %s\" requires exactly 1 argument.\nSee 'docker %s --help'.\n\nUsage:  docker %s [OPTIONS] PATH | URL | -", cmd, cmd, cmd)
	}
	for _, o := range *outputs {
		switch {
		case strings.Contains(o, "type=docker"), strings.Contains(o, "type=image"):
			*load = true
		case strings.Contains(o, "type=registry"):
			*push = true
		}
	}
	for _, t := range *tags {
		if _, err := ParseRef(t); err != nil {
			return exitf(1, "ERROR: invalid tag %q: %v", t, err)
		}
	}
	ctxArg := fs.Arg(0)
	rec := &BuildRecord{Context: ctxArg, Target: *target, Platform: *platform, Load: *load, Push: *push, Buildx: buildx}
	// The context: a directory that exists (a URL is taken as is; "-" is a Dockerfile on stdin).
	var dfText []byte
	var err error
	remote := strings.Contains(ctxArg, "://") || strings.HasPrefix(ctxArg, "git@")
	switch {
	case ctxArg == "-":
		if dfText, err = io.ReadAll(e.Stdin); err != nil {
			return exitf(1, "ERROR: failed to read the Dockerfile from stdin: %v", err)
		}
		rec.Dockerfile = "-"
	case remote:
		rec.Dockerfile = *file
	default:
		if st, err := os.Stat(ctxArg); err != nil || !st.IsDir() {
			return exitf(1, "ERROR: unable to prepare context: path %q not found", ctxArg)
		}
	}
	if dfText == nil && !remote {
		path := *file
		switch {
		case path == "-":
			if dfText, err = io.ReadAll(e.Stdin); err != nil {
				return exitf(1, "ERROR: failed to read the Dockerfile from stdin: %v", err)
			}
		case path == "":
			path = filepath.Join(ctxArg, "Dockerfile")
			fallthrough
		default:
			if dfText, err = os.ReadFile(path); err != nil {
				return exitf(1, "ERROR: failed to solve: failed to read dockerfile: open %s: no such file or directory", path)
			}
		}
		rec.Dockerfile = path
	}
	// Build args: NAME=VALUE, or NAME alone for docker's own environment (unset: dropped).
	argVals := map[string]string{}
	for _, a := range *buildArgs {
		if k, v, ok := strings.Cut(a, "="); ok {
			argVals[k] = v
			if rec.BuildArgs == nil {
				rec.BuildArgs = map[string]string{}
			}
			rec.BuildArgs[k] = v
		} else if v, set := lookupEnv(e, a); set {
			argVals[a] = v
			rec.EnvArgs = append(rec.EnvArgs, a)
		}
	}
	// Secrets: id=ID[,env=VAR|,src=FILE]; a bare id reads the variable or file of that name.
	provided := map[string]bool{}
	for _, s := range *secrets {
		opts := map[string]string{}
		for _, kv := range strings.Split(s, ",") {
			k, v, _ := strings.Cut(kv, "=")
			opts[k] = v
		}
		id := opts["id"]
		if id == "" {
			return exitf(1, "ERROR: invalid secret %q: an id is required", s)
		}
		switch {
		case opts["src"] != "" || opts["source"] != "":
			src := opts["src"] + opts["source"]
			if _, err := os.Stat(src); err != nil {
				return exitf(1, "ERROR: failed to stat %s: %v", src, err)
			}
			rec.Secrets = append(rec.Secrets, "id="+id+",src="+src)
			provided[id] = true
		default:
			env := opts["env"]
			if env == "" {
				env = id
			}
			rec.Secrets = append(rec.Secrets, "id="+id+",env="+env)
			_, provided[id] = lookupEnv(e, env)
		}
	}
	labelVals := map[string]string{}
	for _, l := range *labels {
		k, v, _ := strings.Cut(l, "=")
		labelVals[k] = v
	}
	if *push && len(*tags) == 0 {
		return exitf(1, "ERROR: failed to build: tag is needed when pushing to registry")
	}

	w := e.Stderr
	if *quiet {
		w = io.Discard
	}
	fmt.Fprintf(w, "#0 building with \"testenv\" instance using the testenv stand-in (nothing is built: no image contents)\n\n")
	fmt.Fprintf(w, "#1 [internal] load build definition from %s\n#1 DONE 0.0s\n\n", filepath.Base(rec.Dockerfile))
	finalLabels := map[string]string{}
	n := 3
	if dfText != nil {
		df, err := ParseDockerfile(string(dfText), argVals)
		if err != nil {
			fmt.Fprintf(w, "#1 ERROR: %v\n", err)
			return exitf(1, "ERROR: failed to solve: %v", err)
		}
		stage, err := df.Target(*target)
		if err != nil {
			return exitf(1, "ERROR: failed to solve: %v", err)
		}
		needed := df.Needed(stage)
		for _, s := range needed {
			ids := make([]string, 0, len(s.Secrets))
			for id := range s.Secrets {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				if s.Secrets[id] && !provided[id] {
					return exitf(1, "ERROR: failed to solve: secret %s: not found (a RUN --mount=type=secret,id=%s,required of stage %d needs --secret id=%s)", id, id, s.Index, id)
				}
			}
		}
		if !remote && ctxArg != "-" {
			if miss := MissingSources(needed, ctxArg); len(miss) > 0 {
				m := miss[0]
				return exitf(1, "ERROR: failed to solve: failed to compute cache key: failed to calculate checksum of ref: \"/%s\": not found (%s line %d; the context is %s)",
					strings.TrimPrefix(m.Path, "/"), rec.Dockerfile, m.Line, ctxArg)
			}
		}
		for _, a := range df.UnusedArgs(argVals) {
			fmt.Fprintf(w, "#2 WARNING: build-arg %s is not declared by any ARG of the Dockerfile: the build ignores it\n", a)
		}
		for _, s := range needed {
			fmt.Fprintf(w, "#%d [stage-%d] FROM %s\n#%d DONE 0.0s\n\n", n, s.Index, s.Base, n)
			n++
		}
		for k, v := range stage.Labels {
			finalLabels[k] = v
		}
	}
	for k, v := range labelVals {
		finalLabels[k] = v
	}
	// The ID: a digest of what was asked (same inputs, same ID, like a fully cached build).
	labelJSON, _ := json.Marshal(finalLabels)
	argJSON, _ := json.Marshal(argVals)
	id := digestOf("build", string(dfText), *target, *platform, string(argJSON), string(labelJSON), ctxArg)
	img := &ImageRecord{ID: id, Created: e.Now().UTC(), Labels: finalLabels, Source: "built", Build: rec}
	if len(finalLabels) == 0 {
		img.Labels = nil
	}
	var refs []string
	for _, t := range *tags {
		c, _ := ParseRef(t)
		refs = append(refs, c)
	}
	err = e.withStore(func(s *Store, r *Registry) (bool, error) {
		if old, ok := s.Images[id]; ok {
			img.Created = old.Created
		}
		// With the docker driver (docker's default) a buildx build lands in the local store
		// whether or not --load is given; --push alone also leaves it there. Recorded as is.
		s.Put(img, refs...)
		if *push {
			for _, ref := range refs {
				img.Digest = digestOf("manifest", ref, id)
				r.Images[ref] = &RemoteImage{Digest: img.Digest, ID: id, Labels: img.Labels, Pushed: e.Now().UTC(), Source: "pushed"}
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	dir, _ := e.dockerDir()
	_ = appendLine(filepath.Join(dir, "builds.log"), map[string]any{"at": e.Now().UTC(), "id": id, "tags": *tags, "build": rec, "labels": img.Labels})
	fmt.Fprintf(w, "#%d exporting to image\n#%d writing image %s done\n", n, n, id)
	for _, t := range *tags {
		fmt.Fprintf(w, "#%d naming to %s done\n", n, t)
		if *push {
			fmt.Fprintf(w, "#%d pushing %s to the testenv registry records done\n", n, t)
		}
	}
	fmt.Fprintf(w, "#%d DONE 0.0s\n", n)
	if *quiet {
		fmt.Fprintln(e.Stdout, id)
	}
	if *iidfile != "" {
		if err := os.WriteFile(*iidfile, []byte(id), 0o644); err != nil {
			return exitf(1, "ERROR: failed to write image ID file: %v", err)
		}
	}
	if *metadataFile != "" {
		md := map[string]any{"containerimage.config.digest": id, "containerimage.digest": digestOf("manifest", strings.Join(refs, ","), id)}
		if len(*tags) > 0 {
			md["image.name"] = strings.Join(*tags, ",")
		}
		b, _ := json.MarshalIndent(md, "", "  ")
		if err := os.WriteFile(*metadataFile, b, 0o644); err != nil {
			return exitf(1, "ERROR: failed to write metadata file: %v", err)
		}
	}
	return nil
}

func lookupEnv(e *Env, name string) (string, bool) {
	if e.Getenv == nil {
		return "", false
	}
	// Getenv cannot tell empty from unset; an empty value counts as unset, as docker's
	// `--build-arg NAME` with NAME="" passes nothing useful either.
	v := e.Getenv(name)
	return v, v != ""
}

// ---- inspect, ls, rm, tag ----------------------------------------------------------------------

var templateFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"join":  strings.Join,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"split": strings.Split,
	"title": func(s string) string {
		if s == "" {
			return s
		}
		return strings.ToUpper(s[:1]) + s[1:]
	},
	"println": fmt.Sprintln,
}

// formatTemplate runs a docker --format Go template (or "json") over v.
func formatTemplate(format string, v any) (string, error) {
	if format == "json" {
		b, err := json.Marshal(v)
		return string(b), err
	}
	t, err := template.New("format").Funcs(templateFuncs).Option("missingkey=zero").Parse(format)
	if err != nil {
		return "", fmt.Errorf("template parsing error: %v", err)
	}
	// Templates see the JSON shape (as docker's do through its structs).
	b, _ := json.Marshal(v)
	var data any
	_ = json.Unmarshal(b, &data)
	var out bytes.Buffer
	if err := t.Execute(&out, data); err != nil {
		return "", fmt.Errorf("template: %v", err)
	}
	return out.String(), nil
}

func dockerInspect(e *Env, cmd string, args []string) error {
	fs := dockerFlags(cmd)
	format := fs.StringP("format", "f", "", "")
	fs.String("type", "", "")
	fs.BoolP("size", "s", false, "")
	if err := parseDocker(fs, cmd, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return exitf(1, "\"docker %s\" requires at least 1 argument.\nSee 'docker %s --help'.", cmd, cmd)
	}
	var found []any
	var missing []string
	err := e.withStore(func(s *Store, _ *Registry) (bool, error) {
		for _, ref := range fs.Args() {
			img, _, ok := s.Lookup(ref)
			if !ok {
				missing = append(missing, ref)
				continue
			}
			found = append(found, inspectJSON(img, s.TagsOf(img.ID)))
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	if *format != "" {
		for _, v := range found {
			out, err := formatTemplate(*format, v)
			if err != nil {
				return exitf(1, "%v", err)
			}
			fmt.Fprintln(e.Stdout, out)
		}
	} else {
		if found == nil {
			found = []any{}
		}
		b, _ := json.MarshalIndent(found, "", "    ")
		fmt.Fprintln(e.Stdout, string(b))
	}
	if len(missing) > 0 {
		var msgs []string
		for _, m := range missing {
			msgs = append(msgs, "Error response from daemon: No such image: "+m)
		}
		return exitf(1, "%s", strings.Join(msgs, "\n"))
	}
	return nil
}

func dockerImages(e *Env, cmd string, args []string) error {
	fs := dockerFlags(cmd)
	format := fs.String("format", "", "")
	quiet := fs.BoolP("quiet", "q", false, "")
	fs.BoolP("all", "a", false, "")
	fs.Bool("no-trunc", false, "")
	fs.Bool("digests", false, "")
	fs.StringArray("filter", nil, "")
	if err := parseDocker(fs, cmd, args); err != nil {
		return err
	}
	return e.withStore(func(s *Store, _ *Registry) (bool, error) {
		refs := make([]string, 0, len(s.Tags))
		for r := range s.Tags {
			refs = append(refs, r)
		}
		sort.Strings(refs)
		if *format == "" && !*quiet {
			fmt.Fprintf(e.Stdout, "%-40s %-20s %-14s %-22s %s\n", "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE")
		}
		for _, r := range refs {
			if fs.NArg() > 0 && repoOf(r) != repoOf(fs.Arg(0)) && r != fs.Arg(0) {
				continue
			}
			img := s.Images[s.Tags[r]]
			short := strings.TrimPrefix(img.ID, "sha256:")[:12]
			row := map[string]any{"Repository": repoOf(r), "Tag": tagOf(r), "ID": short,
				"CreatedAt": img.Created.Format("2006-01-02 15:04:05 -0700 MST"), "Size": "0B", "Digest": img.Digest}
			switch {
			case *quiet:
				fmt.Fprintln(e.Stdout, short)
			case *format != "":
				out, err := formatTemplate(*format, row)
				if err != nil {
					return false, exitf(1, "%v", err)
				}
				fmt.Fprintln(e.Stdout, out)
			default:
				fmt.Fprintf(e.Stdout, "%-40s %-20s %-14s %-22s %s\n", repoOf(r), tagOf(r), short, img.Created.Format(time.RFC3339), "0B")
			}
		}
		return false, nil
	})
}

func dockerRmi(e *Env, cmd string, args []string) error {
	fs := dockerFlags(cmd)
	fs.BoolP("force", "f", false, "")
	fs.Bool("no-prune", false, "")
	if err := parseDocker(fs, cmd, args); err != nil {
		return err
	}
	var missing []string
	err := e.withStore(func(s *Store, _ *Registry) (bool, error) {
		for _, ref := range fs.Args() {
			img, canon, ok := s.Lookup(ref)
			if !ok {
				missing = append(missing, ref)
				continue
			}
			if canon == "" { // by ID: every tag
				for _, t := range s.TagsOf(img.ID) {
					delete(s.Tags, t)
					fmt.Fprintf(e.Stdout, "Untagged: %s\n", t)
				}
			} else {
				delete(s.Tags, canon)
				fmt.Fprintf(e.Stdout, "Untagged: %s\n", canon)
			}
			s.Put(img)
			if _, still := s.Images[img.ID]; !still {
				fmt.Fprintf(e.Stdout, "Deleted: %s\n", img.ID)
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return exitf(1, "Error response from daemon: No such image: %s", strings.Join(missing, ", "))
	}
	return nil
}

func dockerTag(e *Env, cmd string, args []string) error {
	fs := dockerFlags(cmd)
	if err := parseDocker(fs, cmd, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return exitf(1, "\"docker %s\" requires exactly 2 arguments.\nSee 'docker %s --help'.", cmd, cmd)
	}
	dst, err := ParseRef(fs.Arg(1))
	if err != nil {
		return exitf(1, "Error parsing reference: %q is not a valid repository/tag: %v", fs.Arg(1), err)
	}
	return e.withStore(func(s *Store, _ *Registry) (bool, error) {
		img, _, ok := s.Lookup(fs.Arg(0))
		if !ok {
			return false, exitf(1, "Error response from daemon: No such image: %s", fs.Arg(0))
		}
		s.Put(img, dst)
		return true, nil
	})
}

// ---- pull, push, manifest -----------------------------------------------------------------------

func dockerPull(e *Env, cmd string, args []string) error {
	fs := dockerFlags(cmd)
	fs.String("platform", "", "")
	quiet := fs.BoolP("quiet", "q", false, "")
	fs.BoolP("all-tags", "a", false, "")
	fs.Bool("disable-content-trust", true, "")
	if err := parseDocker(fs, cmd, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return exitf(1, "\"docker %s\" requires exactly 1 argument.\nSee 'docker %s --help'.", cmd, cmd)
	}
	ref := fs.Arg(0)
	canon, err := ParseRef(ref)
	if err != nil {
		return exitf(1, "%v", err)
	}
	if miss, err := e.Missing(ref); err != nil {
		return err
	} else if miss {
		if strings.Contains(canon, "@") {
			return exitf(1, "Error response from daemon: manifest for %s not found: manifest unknown: manifest unknown", ref)
		}
		return exitf(1, "Error response from daemon: manifest for %s not found: manifest unknown: manifest unknown (listed in $TESTENV_DIR/docker/missing)", canon)
	}
	status := ""
	var img *ImageRecord
	err = e.withStore(func(s *Store, r *Registry) (bool, error) {
		remote := r.Images[canon]
		digest := digestOf("manifest", canon)
		id := digestOf("pulled", canon)
		var labels map[string]string
		if remote != nil {
			digest, id, labels = remote.Digest, remote.ID, remote.Labels
		} else if strings.Contains(canon, "@") {
			digest = canon[strings.Index(canon, "@")+1:]
		}
		if old, _, ok := s.Lookup(canon); ok && old.ID == id {
			status = "Image is up to date for " + canon
			img = old
			return false, nil
		}
		status = "Downloaded newer image for " + canon
		img = &ImageRecord{ID: id, Created: e.Now().UTC(), Labels: labels, Source: "pulled", Digest: digest, PulledAs: canon}
		s.Put(img, canon)
		return true, nil
	})
	if err != nil {
		return err
	}
	if *quiet {
		fmt.Fprintln(e.Stdout, canon)
		return nil
	}
	if !strings.Contains(canon, "@") {
		fmt.Fprintf(e.Stdout, "%s: Pulling from %s\n", tagOf(canon), repoOf(canon))
	}
	fmt.Fprintf(e.Stdout, "Digest: %s\nStatus: %s\n%s\n", img.Digest, status, canon)
	return nil
}

func dockerPush(e *Env, cmd string, args []string) error {
	fs := dockerFlags(cmd)
	fs.BoolP("all-tags", "a", false, "")
	fs.BoolP("quiet", "q", false, "")
	fs.String("platform", "", "")
	fs.Bool("disable-content-trust", true, "")
	if err := parseDocker(fs, cmd, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return exitf(1, "\"docker %s\" requires exactly 1 argument.\nSee 'docker %s --help'.", cmd, cmd)
	}
	canon, err := ParseRef(fs.Arg(0))
	if err != nil {
		return exitf(1, "%v", err)
	}
	var digest string
	err = e.withStore(func(s *Store, r *Registry) (bool, error) {
		img, _, ok := s.Lookup(canon)
		if !ok {
			return false, exitf(1, "An image does not exist locally with the tag: %s", repoOf(canon))
		}
		digest = digestOf("manifest", canon, img.ID)
		img.Digest = digest
		r.Images[canon] = &RemoteImage{Digest: digest, ID: img.ID, Labels: img.Labels, Pushed: e.Now().UTC(), Source: "pushed"}
		return true, nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "The push refers to repository [%s]\n%s: digest: %s size: 0 (testenv stand-in: recorded, nothing sent)\n", repoOf(canon), tagOf(canon), digest)
	return nil
}

func dockerManifestInspect(e *Env, args []string) error {
	fs := dockerFlags("manifest inspect")
	fs.Bool("insecure", false, "")
	fs.BoolP("verbose", "v", false, "")
	if err := parseDocker(fs, "manifest inspect", args); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return exitf(1, "\"docker manifest inspect\" requires at least 1 and at most 2 arguments.")
	}
	ref := fs.Arg(fs.NArg() - 1)
	canon, err := ParseRef(ref)
	if err != nil {
		return exitf(1, "%v", err)
	}
	if miss, err := e.Missing(ref); err != nil {
		return err
	} else if miss {
		return exitf(1, "no such manifest: %s", canon)
	}
	var remote *RemoteImage
	if err := e.withStore(func(_ *Store, r *Registry) (bool, error) {
		remote = r.Images[canon]
		return false, nil
	}); err != nil {
		return err
	}
	b, err := manifestJSON(canon, remote)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.Stdout, string(b))
	return nil
}

// ---- version, login ----------------------------------------------------------------------------

func dockerVersionCmd(e *Env, args []string) error {
	fs := dockerFlags("version")
	format := fs.StringP("format", "f", "", "")
	if err := parseDocker(fs, "version", args); err != nil {
		return err
	}
	v := map[string]any{
		"Client": map[string]any{"Version": dockerVersion, "ApiVersion": dockerAPI, "GoVersion": goVersion(), "Os": "linux", "Arch": "amd64", "Context": "testenv"},
		"Server": map[string]any{"Version": dockerVersion, "ApiVersion": dockerAPI, "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64",
			"Platform": map[string]any{"Name": "testenv stand-in (records builds, pulls and pushes; no engine)"}},
	}
	if *format != "" {
		out, err := formatTemplate(*format, v)
		if err != nil {
			return exitf(1, "%v", err)
		}
		fmt.Fprintln(e.Stdout, out)
		return nil
	}
	fmt.Fprintf(e.Stdout, "Client:\n Version:           %s\n API version:       %s\n Go version:        %s\n OS/Arch:           linux/amd64\n Context:           testenv\n\n"+
		"Server: testenv stand-in (records builds, pulls and pushes; no engine)\n Engine:\n  Version:          %s\n  API version:      %s (minimum version 1.24)\n  OS/Arch:          linux/amd64\n",
		dockerVersion, dockerAPI, goVersion(), dockerVersion, dockerAPI)
	return nil
}

func dockerLogin(e *Env, args []string) error {
	fs := dockerFlags("login")
	user := fs.StringP("username", "u", "", "")
	pw := fs.StringP("password", "p", "", "")
	stdin := fs.Bool("password-stdin", false, "")
	if err := parseDocker(fs, "login", args); err != nil {
		return err
	}
	if *stdin {
		if *pw != "" {
			return exitf(1, "--password and --password-stdin are mutually exclusive")
		}
		if *user == "" {
			return exitf(1, "Must provide --username with --password-stdin")
		}
		b, _ := io.ReadAll(e.Stdin)
		if strings.TrimSpace(string(b)) == "" {
			return exitf(1, "Error: Password Required")
		}
	}
	server := "the default registry"
	if fs.NArg() > 0 {
		server = fs.Arg(0)
	}
	dir, err := e.dockerDir()
	if err != nil {
		return err
	}
	_ = appendLine(filepath.Join(dir, "logins.log"), map[string]any{"at": e.Now().UTC(), "server": server, "username": *user})
	fmt.Fprintln(e.Stdout, "Login Succeeded")
	return nil
}

// errorsAs is errors.As for exitError.
func asExit(err error) (*exitError, bool) {
	var x *exitError
	ok := errors.As(err, &x)
	return x, ok
}
