// What the kind stand-in changes on the test environment's Nodes and Namespaces, through the
// apiserver: node labels and allocatable from the cluster config, loaded images in
// status.images (as a kubelet reports them), and the namespaces a deleted cluster takes along.
package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

const controlPlaneLabel = "node-role.kubernetes.io/control-plane"

// testOwnerLabel marks the integration tests' namespaces; the stand-ins never delete them.
const testOwnerLabel = "kmsctl.test/owner"

// EnvNodes are the environment's Nodes; notReady lists those whose Ready condition is not True.
func EnvNodes(ctx context.Context, c kubernetes.Interface) (nodes []EnvNode, notReady []string, err error) {
	list, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, err
	}
	for _, n := range list.Items {
		_, cp := n.Labels[controlPlaneLabel]
		nodes = append(nodes, EnvNode{Name: n.Name, ControlPlane: cp})
		ready := false
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			notReady = append(notReady, n.Name)
		}
	}
	return nodes, notReady, nil
}

// EnvProfile is the environment's profile (testenv.sh records it in kube-system/testenv-marker).
func EnvProfile(ctx context.Context, c kubernetes.Interface, fallback string) string {
	cm, err := c.CoreV1().ConfigMaps("kube-system").Get(ctx, "testenv-marker", metav1.GetOptions{})
	if err == nil && cm.Data["profile"] != "" {
		return cm.Data["profile"]
	}
	if fallback != "" {
		return fallback
	}
	return "unknown"
}

// NodeChange is what creating a cluster did to one Node, so deleting it can undo exactly that.
type NodeChange struct {
	// Labels set, and the values they replaced (nil: the label was absent).
	Labels     map[string]string  `json:"labels,omitempty"`
	PrevLabels map[string]*string `json:"prevLabels,omitempty"`
	// status.allocatable before and after the reservations (quantities as strings).
	PrevAllocatable map[string]string `json:"prevAllocatable,omitempty"`
	Allocatable     map[string]string `json:"allocatable,omitempty"`
}

func quantities(l corev1.ResourceList) map[string]string {
	out := map[string]string{}
	for k, v := range l {
		out[string(k)] = v.String()
	}
	return out
}

func resourceList(m map[string]string) (corev1.ResourceList, error) {
	out := corev1.ResourceList{}
	for k, v := range m {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, err
		}
		out[corev1.ResourceName(k)] = q
	}
	return out, nil
}

// Allocatable is capacity less the reservations, as a kubelet computes it; a reservation
// larger than capacity is refused as a kubelet refuses to start with it.
func Allocatable(capacity corev1.ResourceList, reserved map[string]resource.Quantity) (corev1.ResourceList, error) {
	out := capacity.DeepCopy()
	keys := make([]string, 0, len(reserved))
	for k := range reserved {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r := reserved[k]
		c, ok := capacity[corev1.ResourceName(k)]
		if !ok {
			continue // a kubelet ignores reservations of resources the node does not have
		}
		if r.Cmp(c) > 0 {
			return nil, fmt.Errorf("the kubelet would not start: reserved %s %s exceeds the node's capacity %s", k, r.String(), c.String())
		}
		c.Sub(r)
		out[corev1.ResourceName(k)] = c
	}
	return out, nil
}

func updateNode(ctx context.Context, c kubernetes.Interface, name string, status bool, f func(*corev1.Node) error) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if err := f(n); err != nil {
			return err
		}
		if status {
			_, err = c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		} else {
			_, err = c.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		}
		return err
	})
}

// ApplyPlan sets a plan's labels and reservations on its Node and returns what it changed.
func ApplyPlan(ctx context.Context, c kubernetes.Interface, p NodePlan) (NodeChange, error) {
	ch := NodeChange{}
	if len(p.Labels) > 0 {
		ch.Labels, ch.PrevLabels = map[string]string{}, map[string]*string{}
		err := updateNode(ctx, c, p.Node, false, func(n *corev1.Node) error {
			if n.Labels == nil {
				n.Labels = map[string]string{}
			}
			for k, v := range p.Labels {
				if old, ok := n.Labels[k]; ok {
					ch.PrevLabels[k] = &old
				} else {
					ch.PrevLabels[k] = nil
				}
				n.Labels[k] = v
				ch.Labels[k] = v
			}
			return nil
		})
		if err != nil {
			return ch, err
		}
	}
	err := updateNode(ctx, c, p.Node, true, func(n *corev1.Node) error {
		alloc, err := Allocatable(n.Status.Capacity, p.Reserved)
		if err != nil {
			return err
		}
		ch.PrevAllocatable = quantities(n.Status.Allocatable)
		ch.Allocatable = quantities(alloc)
		n.Status.Allocatable = alloc
		return nil
	})
	return ch, err
}

// UndoChange restores what ApplyPlan changed (a label or allocatable someone has changed
// since is left as it is now).
func UndoChange(ctx context.Context, c kubernetes.Interface, node string, ch NodeChange) error {
	if len(ch.Labels) > 0 {
		err := updateNode(ctx, c, node, false, func(n *corev1.Node) error {
			for k, v := range ch.Labels {
				if n.Labels[k] != v {
					continue
				}
				if prev := ch.PrevLabels[k]; prev != nil {
					n.Labels[k] = *prev
				} else {
					delete(n.Labels, k)
				}
			}
			return nil
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	if ch.PrevAllocatable == nil {
		return nil
	}
	err := updateNode(ctx, c, node, true, func(n *corev1.Node) error {
		now := quantities(n.Status.Allocatable)
		for k, v := range ch.Allocatable {
			if now[k] != v {
				return nil
			}
		}
		prev, err := resourceList(ch.PrevAllocatable)
		if err != nil {
			return err
		}
		n.Status.Allocatable = prev
		return nil
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// SetImages adds and removes names in a Node's status.images (each loaded image is one entry,
// its names first the tag, then repo@digest if it has one), as a kubelet lists what its
// runtime holds.
func SetImages(ctx context.Context, c kubernetes.Interface, node string, add [][]string, remove []string) error {
	err := updateNode(ctx, c, node, true, func(n *corev1.Node) error {
		drop := map[string]bool{}
		for _, r := range remove {
			drop[r] = true
		}
		for _, names := range add {
			for _, nm := range names {
				drop[nm] = true // replaced by the new entry
			}
		}
		var kept []corev1.ContainerImage
		for _, img := range n.Status.Images {
			var names []string
			for _, nm := range img.Names {
				if !drop[nm] {
					names = append(names, nm)
				}
			}
			if len(names) > 0 {
				img.Names = names
				kept = append(kept, img)
			}
		}
		for _, names := range add {
			kept = append(kept, corev1.ContainerImage{Names: names})
		}
		n.Status.Images = kept
		return nil
	})
	if apierrors.IsNotFound(err) && len(add) == 0 {
		return nil
	}
	return err
}

// Namespaces are the names of the environment's namespaces.
func Namespaces(ctx context.Context, c kubernetes.Interface) (map[string]*corev1.Namespace, error) {
	list, err := c.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]*corev1.Namespace{}
	for i := range list.Items {
		out[list.Items[i].Name] = &list.Items[i]
	}
	return out, nil
}

// systemNamespace: namespaces a kind cluster starts with (kube-*, default, local-path-storage).
func systemNamespace(n string) bool {
	return n == "default" || strings.HasPrefix(n, "kube-") || n == "local-path-storage"
}

// NamespacesToDelete are those created since the cluster was (not in before), except the
// system ones and the integration tests' own.
func NamespacesToDelete(now map[string]*corev1.Namespace, before []string) []string {
	had := map[string]bool{}
	for _, n := range before {
		had[n] = true
	}
	var out []string
	for name, ns := range now {
		if had[name] || systemNamespace(name) || ns.Labels[testOwnerLabel] != "" {
			continue
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// DeleteNamespaces deletes them and waits until they are gone, up to timeout. Their pods are
// then deleted at once (a terminating namespace admits no new ones): the namespace controller
// otherwise waits a round for their graceful end. What is left is its 5s grace period.
func DeleteNamespaces(ctx context.Context, c kubernetes.Interface, names []string, timeout, poll time.Duration) error {
	zero := int64(0)
	for _, n := range names {
		err := c.CoreV1().Namespaces().Delete(ctx, n, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		err = c.CoreV1().Pods(n).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		var left []string
		for _, n := range names {
			_, err := c.CoreV1().Namespaces().Get(ctx, n, metav1.GetOptions{})
			if err == nil {
				left = append(left, n)
			} else if !apierrors.IsNotFound(err) {
				return err
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespaces still terminating after %s: %s", timeout, strings.Join(left, ", "))
		}
		time.Sleep(poll)
	}
}
