// rehearsal: the cross-object checks of a kubelet that kwok's stages cannot express, for the
// test environment (scripts/testenv/testenv.sh builds, starts and stops it).
//
//	rehearsal run --kubeconfig FILE [--ready-file FILE] [--forward-listen 127.0.0.1:PORT]
//	              [--registry-missing FILE]                the pod gate (controller.go, pull.go)
//	              [--region us-east-1]                     and the port-forward baseline (forward.go),
//	              [--metrics-listen 127.0.0.1:PORT]        the eks profile's AWS stand-ins (infra.go),
//	                                                       the metrics API (metrics.go) and the
//	                                                       Argo Workflows stand-in (workflow.go)
//	rehearsal render-profile [--crds|--manifests] FILE     a profile's Nodes and StorageClasses
//	                                                       (or its manifests' CRDs / other objects)
//	rehearsal measure --kubeconfig FILE [--n 30]           the gate's added time to Ready
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	log.SetFlags(log.Ldate | log.Ltime | log.Lmicroseconds)
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "render-profile":
		switch {
		case len(os.Args) == 3:
			err = renderProfile(os.Args[2], "")
		case len(os.Args) == 4 && (os.Args[2] == "--crds" || os.Args[2] == "--manifests"):
			err = renderProfile(os.Args[3], strings.TrimPrefix(os.Args[2], "--"))
		default:
			usage()
		}
	case "measure":
		err = measure(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rehearsal:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: rehearsal run --kubeconfig FILE [--ready-file FILE] [--forward-listen 127.0.0.1:PORT] | rehearsal render-profile [--crds|--manifests] FILE | rehearsal measure --kubeconfig FILE")
	os.Exit(2)
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "the cluster's kubeconfig")
	readyFile := fs.String("ready-file", "", "written once the caches have synced")
	workers := fs.Int("workers", 4, "pods handled at once")
	backoff := fs.Duration("pull-backoff", 2*time.Second, "how long ErrImagePull shows before ImagePullBackOff")
	forwardListen := fs.String("forward-listen", "", "serve the port-forward baseline on this loopback address (host:port)")
	registryMissing := fs.String("registry-missing", "", "the docker stand-in's list of images a pull does not get")
	region := fs.String("region", "us-east-1", "the region of the enclave node groups' nodes")
	metricsListen := fs.String("metrics-listen", "", "serve the metrics API stand-in over HTTPS on this loopback address (host:port)")
	_ = fs.Parse(args)
	if *kubeconfig == "" {
		return fmt.Errorf("--kubeconfig is required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 200, 400 // on every deploy's critical path: no client-side throttling
	cfg.UserAgent = "testenv-rehearsal"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	factory := informers.NewSharedInformerFactory(client, 0)
	c := NewController(client, factory)
	c.PullBackOff = *backoff
	if *registryMissing != "" {
		c.Registry = &MissingList{Path: *registryMissing}
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	// The AWS stand-ins: idle until their CRDs exist (the eks profile's manifests).
	infra := NewInfra(client, dyn, factory)
	infra.Region = *region
	go infra.Run(ctx, 2)
	// The Argo Workflows stand-in: idle until the Workflow CRD exists (every profile has it).
	go NewWorkflows(client, dyn, factory).Run(ctx, 2)
	var baseline *ForwardBaseline
	if *forwardListen != "" {
		ln, err := ListenLoopback("--forward-listen", *forwardListen)
		if err != nil {
			return err
		}
		baseline = NewForwardBaseline(dyn, factory, ln)
		go ServeBaseline(ctx, ln)
		go baseline.Run(ctx)
		log.Printf("port-forward baseline: serving on %s", ln.Addr())
	}
	if *metricsListen != "" {
		ln, err := ListenLoopback("--metrics-listen", *metricsListen)
		if err != nil {
			return err
		}
		if err := ServeMetrics(ln, &Metrics{Pods: factory.Core().V1().Pods().Lister(), Nodes: factory.Core().V1().Nodes().Lister()}); err != nil {
			return err
		}
		log.Printf("metrics API: serving on %s", ln.Addr())
	}
	return c.Run(ctx, factory, *workers, func() {
		log.Printf("caches synced; gating pods (annotation %s)", AdmittedAnnotation)
		if baseline != nil {
			select {
			case <-baseline.Synced():
				log.Printf("port-forward baseline: %s in place", BaselineName)
			case <-time.After(20 * time.Second):
				log.Printf("port-forward baseline: not in place after 20s (still trying)")
			case <-ctx.Done():
			}
		}
		select {
		case <-infra.Synced():
		case <-time.After(20 * time.Second):
			log.Printf("infra: CRDs not listed after 20s (still trying)")
		case <-ctx.Done():
		}
		if *readyFile != "" {
			if err := os.WriteFile(*readyFile, []byte("ready\n"), 0o644); err != nil {
				log.Printf("ready file: %v", err)
			}
		}
	})
}
