// The docker stand-in's records: a local image store (what was built, pulled or tagged, with
// its labels) and a registry (what was pushed, or seeded with `standins registry add`), both
// JSON under $TESTENV_DIR/docker/. No layers or contents: an image here is its name, ID and
// config labels.
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// ImageRecord is one local image.
type ImageRecord struct {
	ID      string            `json:"id"` // sha256:<64 hex>
	Created time.Time         `json:"created"`
	Labels  map[string]string `json:"labels,omitempty"`
	Source  string            `json:"source"` // built | pulled
	// For built images: how (never a secret's value).
	Build *BuildRecord `json:"build,omitempty"`
	// The registry digest, for pulled or pushed images.
	Digest string `json:"digest,omitempty"`
	// The image it was pulled as (a pull by digest keeps no tag).
	PulledAs string `json:"pulledAs,omitempty"`
}

// BuildRecord is what a build was asked to do.
type BuildRecord struct {
	Context    string            `json:"context"`
	Dockerfile string            `json:"dockerfile"`
	Target     string            `json:"target,omitempty"`
	Platform   string            `json:"platform,omitempty"`
	BuildArgs  map[string]string `json:"buildArgs,omitempty"` // values given on the command line
	EnvArgs    []string          `json:"envArgs,omitempty"`   // names whose values came from the environment (not recorded)
	Secrets    []string          `json:"secrets,omitempty"`   // id=<id>,<env|src>=<name> (no values)
	Load       bool              `json:"load"`
	Push       bool              `json:"push"`
	Buildx     bool              `json:"buildx"`
}

// Store is the local image store: images by ID, and references (canonical) to IDs.
type Store struct {
	Images map[string]*ImageRecord `json:"images"`
	Tags   map[string]string       `json:"tags"`
}

// RemoteImage is an image a registry serves.
type RemoteImage struct {
	Digest string            `json:"digest"`
	ID     string            `json:"id"`
	Labels map[string]string `json:"labels,omitempty"`
	Pushed time.Time         `json:"pushed"`
	Source string            `json:"source"` // pushed | seeded
}

// Registry maps canonical references to what a pull of them gets.
type Registry struct {
	Images map[string]*RemoteImage `json:"images"`
}

var (
	domainRE    = regexp.MustCompile(`^[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$`)
	componentRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRE       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	digestRE    = regexp.MustCompile(`^sha256:[a-f0-9]{64}$`)
	idRE        = regexp.MustCompile(`^(sha256:)?[a-f0-9]{12,64}$`)
)

// ParseRef checks a reference like docker does and returns its canonical form: the name as
// written, with :latest when it has neither tag nor digest. (Docker's own canonical form also
// prefixes the default registry and library/; these records keep names as a pod spec writes
// them, so `core-service:dev` is the same string everywhere.)
func ParseRef(ref string) (string, error) {
	name, digest, hasDigest := strings.Cut(ref, "@")
	if hasDigest && !digestRE.MatchString(digest) {
		return "", fmt.Errorf("invalid reference format")
	}
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, tag = name[:i], name[i+1:]
		if !tagRE.MatchString(tag) {
			return "", fmt.Errorf("invalid reference format")
		}
	}
	parts := strings.Split(name, "/")
	// The first component is a registry host when it looks like one (a dot, a port, localhost).
	if len(parts) > 1 && (strings.ContainsAny(parts[0], ".:") || parts[0] == "localhost") {
		if !domainRE.MatchString(parts[0]) {
			return "", fmt.Errorf("invalid reference format")
		}
		parts = parts[1:]
	}
	for _, p := range parts {
		if !componentRE.MatchString(p) {
			if strings.ToLower(p) != p && componentRE.MatchString(strings.ToLower(p)) {
				return "", fmt.Errorf("invalid reference format: repository name (%s) must be lowercase", name)
			}
			return "", fmt.Errorf("invalid reference format")
		}
	}
	switch {
	case hasDigest:
		return ref, nil
	case tag == "":
		return ref + ":latest", nil
	}
	return ref, nil
}

// repoOf is a reference without its tag and digest.
func repoOf(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

func tagOf(ref string) string {
	r := ref
	if i := strings.Index(r, "@"); i >= 0 {
		r = r[:i]
	}
	if i := strings.LastIndex(r, ":"); i > strings.LastIndex(r, "/") {
		return r[i+1:]
	}
	return "latest"
}

// digestOf is a stable fake digest for a string.
func digestOf(parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return "sha256:" + hex.EncodeToString(h[:])
}

// Paths under $TESTENV_DIR/docker/.
func (e *Env) dockerDir() (string, error) { return e.StateDir("docker") }

// withStore runs f on the locked store and saves it when f returns save=true.
func (e *Env) withStore(f func(s *Store, r *Registry) (save bool, err error)) error {
	dir, err := e.dockerDir()
	if err != nil {
		return err
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	s := &Store{Images: map[string]*ImageRecord{}, Tags: map[string]string{}}
	r := &Registry{Images: map[string]*RemoteImage{}}
	if err := readJSON(filepath.Join(dir, "images.json"), s); err != nil {
		return err
	}
	if err := readJSON(filepath.Join(dir, "registry.json"), r); err != nil {
		return err
	}
	if s.Images == nil {
		s.Images = map[string]*ImageRecord{}
	}
	if s.Tags == nil {
		s.Tags = map[string]string{}
	}
	if r.Images == nil {
		r.Images = map[string]*RemoteImage{}
	}
	save, err := f(s, r)
	if err != nil || !save {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "images.json"), s); err != nil {
		return err
	}
	return writeJSON(filepath.Join(dir, "registry.json"), r)
}

// Lookup finds a local image by reference or (a prefix of) its ID.
func (s *Store) Lookup(ref string) (*ImageRecord, string, bool) {
	if c, err := ParseRef(ref); err == nil {
		if id, ok := s.Tags[c]; ok {
			if img, ok := s.Images[id]; ok {
				return img, c, true
			}
		}
	}
	if idRE.MatchString(ref) {
		want := strings.TrimPrefix(ref, "sha256:")
		for id, img := range s.Images {
			if strings.HasPrefix(strings.TrimPrefix(id, "sha256:"), want) {
				return img, "", true
			}
		}
	}
	return nil, "", false
}

// TagsOf are the references pointing at an image, sorted.
func (s *Store) TagsOf(id string) []string {
	var out []string
	for ref, i := range s.Tags {
		if i == id && !strings.Contains(ref, "@") {
			out = append(out, ref)
		}
	}
	sort.Strings(out)
	return out
}

// Put records an image and points refs at it; an image left without references is dropped
// (docker keeps it dangling; nothing here needs that).
func (s *Store) Put(img *ImageRecord, refs ...string) {
	s.Images[img.ID] = img
	for _, r := range refs {
		s.Tags[r] = img.ID
	}
	used := map[string]bool{}
	for _, id := range s.Tags {
		used[id] = true
	}
	for id := range s.Images {
		if !used[id] {
			delete(s.Images, id)
		}
	}
}

// Missing reports whether the registry is to refuse ref: a line of $TESTENV_DIR/docker/missing
// equal to it or its canonical form, or a shell pattern (path.Match) that matches either.
func (e *Env) Missing(ref string) (bool, error) {
	dir, err := e.dockerDir()
	if err != nil {
		return false, err
	}
	f, err := os.Open(filepath.Join(dir, "missing"))
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	canon, _ := ParseRef(ref)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		for _, c := range []string{ref, canon} {
			if p == c {
				return true, nil
			}
			if ok, _ := path.Match(p, c); ok {
				return true, nil
			}
		}
	}
	return false, sc.Err()
}

// inspectJSON is `docker image inspect`'s view of a record (the fields tools read).
func inspectJSON(img *ImageRecord, tags []string) map[string]any {
	var labels any
	if len(img.Labels) > 0 {
		labels = img.Labels
	}
	digests := []string{}
	if img.Digest != "" {
		repos := map[string]bool{}
		for _, t := range tags {
			repos[repoOf(t)] = true
		}
		if img.PulledAs != "" {
			repos[repoOf(img.PulledAs)] = true
		}
		for r := range repos {
			digests = append(digests, r+"@"+img.Digest)
		}
		sort.Strings(digests)
	}
	if tags == nil {
		tags = []string{}
	}
	created := img.Created.UTC().Format(time.RFC3339Nano)
	return map[string]any{
		"Id": img.ID, "RepoTags": tags, "RepoDigests": digests, "Parent": "", "Comment": "testenv stand-in record",
		"Created": created, "DockerVersion": "", "Author": "",
		"Config": map[string]any{
			"Hostname": "", "Domainname": "", "User": "", "Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			"Cmd": nil, "Image": "", "Volumes": nil, "WorkingDir": "", "Entrypoint": nil, "OnBuild": nil, "Labels": labels,
		},
		"Architecture": "amd64", "Os": "linux", "Size": 0,
		"GraphDriver": map[string]any{"Name": "testenv", "Data": nil},
		"RootFS":      map[string]any{"Type": "layers", "Layers": []string{}},
		"Metadata":    map[string]any{"LastTagTime": created},
	}
}

// manifestJSON is what `docker manifest inspect` prints for an image (an OCI manifest whose
// config digest is the image ID; no layers).
func manifestJSON(ref string, r *RemoteImage) ([]byte, error) {
	id := digestOf("config", ref)
	if r != nil && r.ID != "" {
		id = r.ID
	}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "size": 0, "digest": id},
		"layers":        []any{},
	}
	return json.MarshalIndent(m, "", "\t")
}
