// `rehearsal measure`: what the gate adds to a pod's time to Ready, measured against a running
// environment. Pods are created one at a time and watched until Ready, once through the gate
// and once through a copy of kwok's pod-ready stage that does not wait for the annotation.
package main

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func measure(args []string) error {
	fs := flag.NewFlagSet("measure", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "the cluster's kubeconfig")
	n := fs.Int("n", 30, "pods per variant")
	_ = fs.Parse(args)
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 200, 400
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx := context.Background()
	ns := fmt.Sprintf("measure-%d", time.Now().UnixNano())
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	defer func() { _ = client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}) }()
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) { // pods need the default ServiceAccount
		if _, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			break
		} else if time.Since(start) > 30*time.Second {
			return err
		}
	}

	// The ungated copy of pod-ready: the annotation requirement dropped, kept to this label.
	stages := dyn.Resource(schema.GroupVersionResource{Group: "kwok.x-k8s.io", Version: "v1alpha1", Resource: "stages"})
	base, err := stages.Get(ctx, "pod-ready", metav1.GetOptions{})
	if err != nil {
		return err
	}
	spec := base.Object["spec"].(map[string]any)
	sel := spec["selector"].(map[string]any)
	delete(sel, "matchAnnotations")
	sel["matchLabels"] = map[string]any{"testenv.kmsctl/stage": ns}
	spec["weight"] = int64(1)
	ungated := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "Stage",
		"metadata": map[string]any{"name": ns}, "spec": spec}}
	if _, err := stages.Create(ctx, ungated, metav1.CreateOptions{}); err != nil {
		return err
	}
	defer func() { _ = stages.Delete(ctx, ns, metav1.DeleteOptions{}) }()

	run := func(variant string, labels map[string]string) ([]time.Duration, error) {
		var out []time.Duration
		for i := range *n {
			name := fmt.Sprintf("%s-%d", variant, i)
			w, err := client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
			if err != nil {
				return nil, err
			}
			t0 := time.Now()
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "x"}}}}
			if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				w.Stop()
				return nil, err
			}
			deadline := time.After(30 * time.Second)
		wait:
			for {
				select {
				case ev := <-w.ResultChan():
					if p, ok := ev.Object.(*corev1.Pod); ok && ev.Type == watch.Modified && ready(p) {
						out = append(out, time.Since(t0))
						break wait
					}
				case <-deadline:
					w.Stop()
					return nil, fmt.Errorf("%s: not Ready after 30s", name)
				}
			}
			w.Stop()
		}
		return out, nil
	}
	// A burst, as a helm install of 13 parties makes: all created at once, time until the last is Ready.
	burst := func(variant string, labels map[string]string) (time.Duration, error) {
		w, err := client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
		if err != nil {
			return 0, err
		}
		defer w.Stop()
		t0 := time.Now()
		for i := range *n {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-burst-%d", variant, i), Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "x"}}}}
			if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				return 0, err
			}
		}
		readyPods := map[string]bool{}
		deadline := time.After(60 * time.Second)
		for len(readyPods) < *n {
			select {
			case ev := <-w.ResultChan():
				if p, ok := ev.Object.(*corev1.Pod); ok && strings.HasPrefix(p.Name, variant+"-burst-") && ready(p) {
					readyPods[p.Name] = true
				}
			case <-deadline:
				return 0, fmt.Errorf("%s burst: %d of %d Ready after 60s", variant, len(readyPods), *n)
			}
		}
		return time.Since(t0), nil
	}
	ungatedT, err := run("ungated", map[string]string{"testenv.kmsctl/stage": ns})
	if err != nil {
		return err
	}
	gatedT, err := run("gated", nil)
	if err != nil {
		return err
	}
	ungatedB, err := burst("ungated", map[string]string{"testenv.kmsctl/stage": ns})
	if err != nil {
		return err
	}
	gatedB, err := burst("gated", nil)
	if err != nil {
		return err
	}
	q := func(d []time.Duration, p float64) float64 {
		s := slices.Clone(d)
		slices.Sort(s)
		return float64(s[int(p*float64(len(s)-1))].Microseconds()) / 1000
	}
	fmt.Printf("create -> Ready, %d pods each, one at a time (ms):\n", *n)
	fmt.Printf("  ungated (kwok pod-ready alone)  p50 %6.1f  p90 %6.1f\n", q(ungatedT, 0.5), q(ungatedT, 0.9))
	fmt.Printf("  gated (rehearsal admission)     p50 %6.1f  p90 %6.1f\n", q(gatedT, 0.5), q(gatedT, 0.9))
	fmt.Printf("  added by the gate               p50 %6.1f\n", q(gatedT, 0.5)-q(ungatedT, 0.5))
	fmt.Printf("%d pods created at once, until the last is Ready (ms): ungated %.1f, gated %.1f\n", *n,
		float64(ungatedB.Microseconds())/1000, float64(gatedB.Microseconds())/1000)
	return nil
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}
