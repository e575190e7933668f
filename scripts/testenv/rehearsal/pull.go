// Image pulls, as a kubelet decides them before it creates a container: with imagePullPolicy
// Never the image must already be on the node (ErrImageNeverPull); with Always, or with
// IfNotPresent and the image not on the node, it is pulled, and a pull of an image the
// registry does not have fails (ErrImagePull, then ImagePullBackOff).
//
// "On the node" is the Node's status.images, which the kind stand-in fills when it loads an
// image (kind load docker-image); names are compared as written (core-service:dev and
// core-service:dev are the same image; a default-registry prefix is not added or removed).
// "The registry does not have it" is the docker stand-in's rule: a line of
// $TESTENV_DIR/docker/missing names it, exactly or as a shell pattern (--registry-missing).
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// ErrImageNeverPull is the waiting reason of a container whose image is absent under policy Never.
const ErrImageNeverPull = "ErrImageNeverPull"

// PullFailure is a container whose image the kubelet cannot have.
type PullFailure struct {
	Container string
	Init      bool
	Image     string
	Reason    string // ErrImageNeverPull or ErrImagePull
	Message   string
}

// Registry tells whether a pull of an image fails.
type Registry interface {
	Missing(image string) bool
}

// MissingList is the docker stand-in's missing file, re-read when it changes.
type MissingList struct {
	Path string

	mu       sync.Mutex
	mod      time.Time
	size     int64
	patterns []string
}

// canonical adds :latest to a reference with neither tag nor digest (as the docker stand-in).
func canonical(ref string) string {
	if strings.Contains(ref, "@") {
		return ref
	}
	if last := ref[strings.LastIndex(ref, "/")+1:]; !strings.Contains(last, ":") {
		return ref + ":latest"
	}
	return ref
}

func (m *MissingList) load() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	st, err := os.Stat(m.Path)
	if err != nil {
		m.patterns, m.mod, m.size = nil, time.Time{}, 0
		return nil
	}
	if st.ModTime().Equal(m.mod) && st.Size() == m.size {
		return m.patterns
	}
	b, err := os.ReadFile(m.Path)
	if err != nil {
		return m.patterns
	}
	var ps []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if p := strings.TrimSpace(sc.Text()); p != "" && !strings.HasPrefix(p, "#") {
			ps = append(ps, p)
		}
	}
	m.patterns, m.mod, m.size = ps, st.ModTime(), st.Size()
	return ps
}

// Missing: a pattern equals the image or its canonical form, or matches either (path.Match).
func (m *MissingList) Missing(image string) bool {
	if m == nil || m.Path == "" {
		return false
	}
	for _, p := range m.load() {
		for _, c := range []string{image, canonical(image)} {
			if p == c {
				return true
			}
			if ok, _ := path.Match(p, c); ok {
				return true
			}
		}
	}
	return false
}

// policy is the container's pull policy, defaulted as the API server does.
func policy(c *corev1.Container) corev1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	if strings.Contains(c.Image, "@") {
		return corev1.PullIfNotPresent
	}
	if strings.HasSuffix(canonical(c.Image), ":latest") {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

func onNode(images []corev1.ContainerImage, image string) bool {
	want := canonical(image)
	for _, img := range images {
		for _, n := range img.Names {
			if n == image || canonical(n) == want {
				return true
			}
		}
	}
	return false
}

// MayFailPull says, without the node, whether any container's image could fail: policy
// Never, or an image the registry lacks. Only then does the gate wait for the pod's node.
func MayFailPull(pod *corev1.Pod, reg Registry) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			if policy(&cs[i]) == corev1.PullNever || (reg != nil && reg.Missing(cs[i].Image)) {
				return true
			}
		}
	}
	return false
}

func neverPullMessage(image string) string {
	return fmt.Sprintf("Container image %q is not present with pull policy of Never", image)
}

func notFoundMessage(image string) string {
	return fmt.Sprintf("failed to pull and unpack image %q: failed to resolve reference %q: %s: not found", image, image, image)
}

// NeedsPull says whether a kubelet on a node holding `images` pulls any of the pod's images:
// policy Always, or IfNotPresent with the image not on the node.
func NeedsPull(pod *corev1.Pod, images []corev1.ContainerImage) bool {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range cs {
			switch policy(&cs[i]) {
			case corev1.PullAlways:
				return true
			case corev1.PullIfNotPresent:
				if !onNode(images, cs[i].Image) {
					return true
				}
			}
		}
	}
	return false
}

// PullProblems are the pod's pull failures on a node holding images: init containers in
// order up to the first failing one (the later ones are never reached), then every main one.
func PullProblems(pod *corev1.Pod, images []corev1.ContainerImage, reg Registry) []PullFailure {
	check := func(c *corev1.Container, init bool) (PullFailure, bool) {
		f := PullFailure{Container: c.Name, Init: init, Image: c.Image}
		present := onNode(images, c.Image)
		switch p := policy(c); {
		case p == corev1.PullNever && !present:
			f.Reason, f.Message = ErrImageNeverPull, neverPullMessage(c.Image)
			return f, true
		case p == corev1.PullNever || (p == corev1.PullIfNotPresent && present):
			return f, false
		case reg != nil && reg.Missing(c.Image):
			f.Reason, f.Message = ErrImagePull, notFoundMessage(c.Image)
			return f, true
		}
		return f, false
	}
	var out []PullFailure
	for i := range pod.Spec.InitContainers {
		if f, bad := check(&pod.Spec.InitContainers[i], true); bad {
			return append(out, f)
		}
	}
	for i := range pod.Spec.Containers {
		if f, bad := check(&pod.Spec.Containers[i], false); bad {
			out = append(out, f)
		}
	}
	return out
}

// WithPulls adds pull failures to a verdict and keeps only what a kubelet reaches: it pulls a
// container's image before it makes the container's config, and init containers run in order,
// so the first init container that fails either way stops everything after it.
func (v Verdict) WithPulls(pod *corev1.Pod, pulls []PullFailure) Verdict {
	if len(pulls) == 0 {
		return v
	}
	pullOf := map[string]PullFailure{}
	for _, p := range pulls {
		pullOf[fmt.Sprint(p.Init, p.Container)] = p
	}
	cfgOf := map[string]ContainerFailure{}
	for _, c := range v.Containers {
		cfgOf[fmt.Sprint(c.Init, c.Container)] = c
	}
	out := Verdict{Mounts: v.Mounts, PullSecrets: v.PullSecrets}
	for _, c := range pod.Spec.InitContainers {
		k := fmt.Sprint(true, c.Name)
		if p, ok := pullOf[k]; ok {
			out.Pulls = append(out.Pulls, p)
			return out
		}
		if f, ok := cfgOf[k]; ok {
			out.Containers = append(out.Containers, f)
			return out
		}
	}
	for _, c := range pod.Spec.Containers {
		k := fmt.Sprint(false, c.Name)
		if p, ok := pullOf[k]; ok {
			out.Pulls = append(out.Pulls, p)
		} else if f, ok := cfgOf[k]; ok {
			out.Containers = append(out.Containers, f)
		}
	}
	return out
}

// needsPullPhase: some failure goes through ErrImagePull and then ImagePullBackOff.
func (v Verdict) needsPullPhase() bool {
	if len(v.PullSecrets) > 0 {
		return true
	}
	for _, p := range v.Pulls {
		if p.Reason == ErrImagePull {
			return true
		}
	}
	return false
}
