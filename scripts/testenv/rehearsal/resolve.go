// What a kubelet checks before it starts a pod's containers, as pure functions: kwok has no
// kubelet, so without this a pod whose ConfigMap, Secret, key or pull secret is missing
// would become Ready here while a real node would refuse it. Messages follow the kubelet's
// (pkg/kubelet/kubelet_pods.go, pkg/volume/{configmap,secret,projected}, v1.36).
package main

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Getter reads the objects a pod refers to. found=false means NotFound; err is anything else
// (then nothing can be decided and the pod is retried).
type Getter interface {
	ConfigMap(ns, name string) (cm *corev1.ConfigMap, found bool, err error)
	Secret(ns, name string) (s *corev1.Secret, found bool, err error)
}

// MountFailure is a volume the kubelet could not set up (event FailedMount).
type MountFailure struct {
	Volume  string
	Message string // e.g. `configmap "x" not found`
}

// ContainerFailure is a container the kubelet could not create (CreateContainerConfigError).
type ContainerFailure struct {
	Container string
	Init      bool
	Message   string // e.g. `couldn't find key k in ConfigMap ns/x`
}

// Verdict is what a kubelet would find; OK() means it would start every container.
type Verdict struct {
	Mounts []MountFailure
	// Missing imagePullSecrets, in the pod's order.
	PullSecrets []string
	// Init containers run in order, so at most the first failing one; every failing main one.
	Containers []ContainerFailure
	// Images the node cannot have (pull.go; set by the controller once the pod has a node).
	Pulls []PullFailure
}

func (v Verdict) OK() bool {
	return len(v.Mounts) == 0 && len(v.PullSecrets) == 0 && len(v.Containers) == 0 && len(v.Pulls) == 0
}

func optional(b *bool) bool { return b != nil && *b }

func cmNotFound(name string) string     { return fmt.Sprintf("configmap %q not found", name) }
func secretNotFound(name string) string { return fmt.Sprintf("secret %q not found", name) }

// Resolve checks every reference of the pod, in the kubelet's order: volumes, pull secrets,
// then each container's environment.
func Resolve(pod *corev1.Pod, g Getter) (Verdict, error) {
	var v Verdict
	ns := pod.Namespace
	for i := range pod.Spec.Volumes {
		msg, err := volumeProblem(ns, &pod.Spec.Volumes[i], g)
		if err != nil {
			return v, err
		}
		if msg != "" {
			v.Mounts = append(v.Mounts, MountFailure{Volume: pod.Spec.Volumes[i].Name, Message: msg})
		}
	}
	for _, ref := range pod.Spec.ImagePullSecrets {
		if ref.Name == "" {
			continue
		}
		_, found, err := g.Secret(ns, ref.Name)
		if err != nil {
			return v, err
		}
		if !found {
			v.PullSecrets = append(v.PullSecrets, ref.Name)
		}
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		msg, err := envProblem(ns, c, g)
		if err != nil {
			return v, err
		}
		if msg != "" {
			v.Containers = append(v.Containers, ContainerFailure{Container: c.Name, Init: true, Message: msg})
			return v, nil // later init containers and the main ones never get this far
		}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		msg, err := envProblem(ns, c, g)
		if err != nil {
			return v, err
		}
		if msg != "" {
			v.Containers = append(v.Containers, ContainerFailure{Container: c.Name, Message: msg})
		}
	}
	return v, nil
}

// envProblem is the kubelet's makeEnvironmentVariables: envFrom first, then env; the first
// error wins.
func envProblem(ns string, c *corev1.Container, g Getter) (string, error) {
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			_, found, err := g.ConfigMap(ns, from.ConfigMapRef.Name)
			if err != nil {
				return "", err
			}
			if !found && !optional(from.ConfigMapRef.Optional) {
				return cmNotFound(from.ConfigMapRef.Name), nil
			}
		case from.SecretRef != nil:
			_, found, err := g.Secret(ns, from.SecretRef.Name)
			if err != nil {
				return "", err
			}
			if !found && !optional(from.SecretRef.Optional) {
				return secretNotFound(from.SecretRef.Name), nil
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			continue
		}
		if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
			cm, found, err := g.ConfigMap(ns, ref.Name)
			if err != nil {
				return "", err
			}
			if !found {
				if optional(ref.Optional) {
					continue
				}
				return cmNotFound(ref.Name), nil
			}
			if _, ok := cm.Data[ref.Key]; !ok && !optional(ref.Optional) {
				return fmt.Sprintf("couldn't find key %s in ConfigMap %s/%s", ref.Key, ns, ref.Name), nil
			}
		}
		if ref := e.ValueFrom.SecretKeyRef; ref != nil {
			s, found, err := g.Secret(ns, ref.Name)
			if err != nil {
				return "", err
			}
			if !found {
				if optional(ref.Optional) {
					continue
				}
				return secretNotFound(ref.Name), nil
			}
			if _, ok := s.Data[ref.Key]; !ok && !optional(ref.Optional) {
				return fmt.Sprintf("couldn't find key %s in Secret %s/%s", ref.Key, ns, ref.Name), nil
			}
		}
	}
	return "", nil
}

// volumeProblem is what MountVolume.SetUp of the configMap, secret and projected plugins
// would report ("" = it mounts).
func volumeProblem(ns string, vol *corev1.Volume, g Getter) (string, error) {
	switch {
	case vol.ConfigMap != nil:
		return configMapSource(ns, vol.ConfigMap.Name, vol.ConfigMap.Items, optional(vol.ConfigMap.Optional), g)
	case vol.Secret != nil:
		return secretSource(ns, vol.Secret.SecretName, vol.Secret.Items, optional(vol.Secret.Optional), g)
	case vol.Projected != nil:
		var errs []string
		for _, src := range vol.Projected.Sources {
			var msg string
			var err error
			switch {
			case src.ConfigMap != nil:
				msg, err = configMapSource(ns, src.ConfigMap.Name, src.ConfigMap.Items, optional(src.ConfigMap.Optional), g)
			case src.Secret != nil:
				msg, err = secretSource(ns, src.Secret.Name, src.Secret.Items, optional(src.Secret.Optional), g)
			}
			if err != nil {
				return "", err
			}
			if msg != "" {
				errs = append(errs, msg)
			}
		}
		// utilerrors.NewAggregate's format
		switch len(errs) {
		case 0:
			return "", nil
		case 1:
			return errs[0], nil
		default:
			return "[" + strings.Join(errs, ", ") + "]", nil
		}
	}
	return "", nil
}

func configMapSource(ns, name string, items []corev1.KeyToPath, opt bool, g Getter) (string, error) {
	cm, found, err := g.ConfigMap(ns, name)
	if err != nil || (!found && opt) {
		return "", err
	}
	if !found {
		return cmNotFound(name), nil
	}
	for _, it := range items {
		_, inData := cm.Data[it.Key]
		_, inBinary := cm.BinaryData[it.Key]
		if !inData && !inBinary && !opt {
			return "configmap references non-existent config key: " + it.Key, nil
		}
	}
	return "", nil
}

func secretSource(ns, name string, items []corev1.KeyToPath, opt bool, g Getter) (string, error) {
	s, found, err := g.Secret(ns, name)
	if err != nil || (!found && opt) {
		return "", err
	}
	if !found {
		return secretNotFound(name), nil
	}
	for _, it := range items {
		if _, ok := s.Data[it.Key]; !ok && !opt {
			return "references non-existent secret key: " + it.Key, nil
		}
	}
	return "", nil
}

// Signature identifies a verdict, so the same status and events are not written twice.
func (v Verdict) Signature() string {
	var parts []string
	for _, m := range v.Mounts {
		parts = append(parts, "m:"+m.Volume+":"+m.Message)
	}
	for _, s := range v.PullSecrets {
		parts = append(parts, "p:"+s)
	}
	for _, c := range v.Containers {
		parts = append(parts, fmt.Sprintf("c:%t:%s:%s", c.Init, c.Container, c.Message))
	}
	for _, p := range v.Pulls {
		parts = append(parts, fmt.Sprintf("i:%t:%s:%s:%s", p.Init, p.Container, p.Reason, p.Image))
	}
	sort.Strings(parts)
	return strings.Join(parts, "|")
}
