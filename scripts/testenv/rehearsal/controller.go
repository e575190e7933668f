// The controller: watches pods, ConfigMaps and Secrets (informers, no polling) and admits a
// pod (annotation AdmittedAnnotation, which kwok's baseline pod-ready stage requires) once
// every reference resolves. Until then a scheduled pod gets the kubelet's waiting status and
// events; a ConfigMap or Secret appearing in its namespace retries it, as a kubelet would.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"
)

// AdmittedAnnotation marks a pod whose references all resolved; kwok makes it Ready then.
const AdmittedAnnotation = "testenv.kmsctl/admitted"

// Controller gates pods; see the file comment.
type Controller struct {
	client  kubernetes.Interface
	pods    corelisters.PodLister
	podIdx  cache.Indexer
	nodes   corelisters.NodeLister
	cms     corelisters.ConfigMapLister
	secrets corelisters.SecretLister
	synced  []cache.InformerSynced
	queue   workqueue.TypedRateLimitingInterface[string]
	events  record.EventBroadcaster
	// How long ErrImagePull shows before ImagePullBackOff (a kubelet's first back-off is 10s).
	PullBackOff time.Duration
	// What a pull cannot get (nil: every pull succeeds); pods with pull failures are checked
	// again every PullRecheck, so a change to it shows.
	Registry    Registry
	PullRecheck time.Duration

	mu        sync.Mutex
	recorders map[string]record.EventRecorder // by node: the event source is that node's kubelet
	seen      map[string]time.Time            // pod key -> when its first event arrived
	written   map[types.UID]string            // last failing status written (signature + pull phase)
	pullSince map[types.UID]time.Time         // when ErrImagePull was first written
	admitted  map[types.UID]bool              // admitted here (the cache may not show it yet)
}

// NewController wires the informers of factory; Run starts them.
func NewController(client kubernetes.Interface, factory informers.SharedInformerFactory) *Controller {
	podInf := factory.Core().V1().Pods()
	cmInf := factory.Core().V1().ConfigMaps()
	secInf := factory.Core().V1().Secrets()
	nodeInf := factory.Core().V1().Nodes()
	c := &Controller{
		client:  client,
		pods:    podInf.Lister(),
		podIdx:  podInf.Informer().GetIndexer(),
		nodes:   nodeInf.Lister(),
		cms:     cmInf.Lister(),
		secrets: secInf.Lister(),
		synced: []cache.InformerSynced{podInf.Informer().HasSynced, cmInf.Informer().HasSynced, secInf.Informer().HasSynced,
			nodeInf.Informer().HasSynced},
		queue:       workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		events:      record.NewBroadcaster(),
		PullBackOff: 2 * time.Second,
		PullRecheck: 2 * time.Second,
		recorders:   map[string]record.EventRecorder{},
		seen:        map[string]time.Time{},
		written:     map[types.UID]string{},
		pullSince:   map[types.UID]time.Time{},
		admitted:    map[types.UID]bool{},
	}
	podHandler := func(obj any) {
		if pod, ok := obj.(*corev1.Pod); ok && c.pending(pod) {
			c.enqueue(pod)
		}
	}
	_, _ = podInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    podHandler,
		UpdateFunc: func(_, obj any) { podHandler(obj) },
		DeleteFunc: func(obj any) {
			if pod, ok := obj.(*corev1.Pod); ok {
				c.forget(pod)
			}
		},
	})
	nsHandler := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if m, err := metaOf(obj); err == nil {
			c.retryNamespace(m.GetNamespace())
		}
	}
	for _, inf := range []cache.SharedIndexInformer{cmInf.Informer(), secInf.Informer()} {
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: nsHandler, UpdateFunc: func(_, obj any) { nsHandler(obj) }, DeleteFunc: nsHandler,
		})
	}
	// A node's images changing (kind load docker-image) retries the pods bound to it.
	_, _ = nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, obj any) {
			o, ok1 := old.(*corev1.Node)
			n, ok2 := obj.(*corev1.Node)
			if ok1 && ok2 && !equality.Semantic.DeepEqual(o.Status.Images, n.Status.Images) {
				c.retryNode(n.Name)
			}
		},
	})
	return c
}

func (c *Controller) retryNode(node string) {
	for _, o := range c.podIdx.List() {
		if pod, ok := o.(*corev1.Pod); ok && pod.Spec.NodeName == node && c.pending(pod) {
			c.enqueue(pod)
		}
	}
}

func metaOf(obj any) (metav1.Object, error) {
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		return o, nil
	case *corev1.Secret:
		return o, nil
	}
	return nil, fmt.Errorf("unexpected %T", obj)
}

// pending: a live pod that nothing has made Ready or finished yet and that is not admitted.
func (c *Controller) pending(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Annotations[AdmittedAnnotation] == "true" {
		return false
	}
	if pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending {
		return false // a test's own stage got there first
	}
	for _, cond := range pod.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
			return false
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.admitted[pod.UID]
}

func key(ns, name string) string { return ns + "/" + name }

func (c *Controller) enqueue(pod *corev1.Pod) {
	k := key(pod.Namespace, pod.Name)
	c.mu.Lock()
	if _, ok := c.seen[k]; !ok {
		c.seen[k] = time.Now()
	}
	c.mu.Unlock()
	c.queue.Add(k)
}

func (c *Controller) forget(pod *corev1.Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.seen, key(pod.Namespace, pod.Name))
	delete(c.written, pod.UID)
	delete(c.pullSince, pod.UID)
	delete(c.admitted, pod.UID)
}

func (c *Controller) retryNamespace(ns string) {
	objs, err := c.podIdx.ByIndex(cache.NamespaceIndex, ns)
	if err != nil {
		return
	}
	for _, o := range objs {
		if pod, ok := o.(*corev1.Pod); ok && c.pending(pod) {
			c.enqueue(pod)
		}
	}
}

// Run starts the informers, waits for their caches (then calls ready) and works the queue
// until ctx ends.
func (c *Controller) Run(ctx context.Context, factory informers.SharedInformerFactory, workers int, ready func()) error {
	defer c.queue.ShutDown()
	w := c.events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: c.client.CoreV1().Events("")})
	defer w.Stop()
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return fmt.Errorf("caches did not sync")
	}
	if ready != nil {
		ready()
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for c.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	c.queue.ShutDown()
	wg.Wait()
	return nil
}

func (c *Controller) next(ctx context.Context) bool {
	k, quit := c.queue.Get()
	if quit {
		return false
	}
	defer c.queue.Done(k)
	retry, err := c.sync(ctx, k)
	switch {
	case err != nil:
		log.Printf("pod %s: %v (retrying)", k, err)
		c.queue.AddRateLimited(k)
	case retry > 0:
		c.queue.Forget(k)
		c.queue.AddAfter(k, retry)
	default:
		c.queue.Forget(k)
	}
	return true
}

// getter reads from the informer caches and confirms a miss with a live GET: an object
// created just before the pod may not be in the cache yet, and a false "not found" would
// show a failure a real kubelet (which reads through the API) would not.
type getter struct {
	ctx context.Context
	c   *Controller
}

func (g getter) ConfigMap(ns, name string) (*corev1.ConfigMap, bool, error) {
	if cm, err := g.c.cms.ConfigMaps(ns).Get(name); err == nil {
		return cm, true, nil
	}
	cm, err := g.c.client.CoreV1().ConfigMaps(ns).Get(g.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	return cm, err == nil, err
}

func (g getter) Secret(ns, name string) (*corev1.Secret, bool, error) {
	if s, err := g.c.secrets.Secrets(ns).Get(name); err == nil {
		return s, true, nil
	}
	s, err := g.c.client.CoreV1().Secrets(ns).Get(g.ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	return s, err == nil, err
}

// sync handles one pod; a positive duration asks to see it again then (the pull back-off).
func (c *Controller) sync(ctx context.Context, k string) (time.Duration, error) {
	ns, name, _ := cache.SplitMetaNamespaceKey(k)
	pod, err := c.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if !c.pending(pod) {
		return 0, nil
	}
	v, err := Resolve(pod, getter{ctx, c})
	if err != nil {
		return 0, err
	}
	if MayFailPull(pod, c.Registry) || len(v.PullSecrets) > 0 {
		// Only now does the node matter: a kubelet sees the pod once it is bound.
		if pod.Spec.NodeName == "" {
			return 0, nil
		}
		var images []corev1.ContainerImage
		if n, err := c.nodes.Get(pod.Spec.NodeName); err == nil {
			images = n.Status.Images
		}
		// Credentials are needed for pulls only: images already on the node (kind load) with
		// policy IfNotPresent or Never are not pulled, so a missing pull secret is harmless.
		if len(v.PullSecrets) > 0 && !NeedsPull(pod, images) {
			v.PullSecrets = nil
		}
		if MayFailPull(pod, c.Registry) {
			v = v.WithPulls(pod, PullProblems(pod, images, c.Registry))
		}
	}
	if v.OK() {
		return 0, c.admit(ctx, pod, k)
	}
	if pod.Spec.NodeName == "" {
		return 0, nil // a kubelet sees the pod once it is bound; the binding update comes back here
	}
	return c.refuse(ctx, pod, v)
}

func (c *Controller) admit(ctx context.Context, pod *corev1.Pod, k string) error {
	patch := fmt.Appendf(nil, `{"metadata":{"annotations":{%q:"true"}}}`, AdmittedAnnotation)
	_, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.admitted[pod.UID] = true
	since, ok := c.seen[k]
	delete(c.seen, k)
	_, failed := c.written[pod.UID]
	c.mu.Unlock()
	if ok {
		log.Printf("admitted pod %s in %.1fms (first seen -> patched; retried=%t)", k,
			float64(time.Since(since).Microseconds())/1000, failed)
	}
	return nil
}

func (c *Controller) refuse(ctx context.Context, pod *corev1.Pod, v Verdict) (time.Duration, error) {
	pull, retry := "", time.Duration(0)
	c.mu.Lock()
	if len(v.Mounts) == 0 && v.needsPullPhase() {
		since, ok := c.pullSince[pod.UID]
		if !ok {
			since = time.Now()
			c.pullSince[pod.UID] = since
		}
		if wait := c.PullBackOff - time.Since(since); wait > 0 {
			pull, retry = ErrImagePull, wait
		} else {
			pull = ImagePullBackOff
		}
	} else {
		delete(c.pullSince, pod.UID)
	}
	sig := v.Signature() + "#" + pull
	same := c.written[pod.UID] == sig
	c.mu.Unlock()
	if len(v.Pulls) > 0 && (retry == 0 || retry > c.PullRecheck) {
		retry = c.PullRecheck // the registry's records or the node's images may change
	}
	if same {
		return retry, nil
	}
	st := Status(pod, v, pull, time.Now())
	patch, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		return 0, err
	}
	// Strategic merge: conditions merge by type (PodScheduled stays), container statuses are replaced.
	_, err = c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch,
		metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.written[pod.UID] = sig
	c.mu.Unlock()
	rec := c.recorder(pod.Spec.NodeName)
	for _, e := range Events(pod, v, pull) {
		ref := &corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: pod.Namespace, Name: pod.Name,
			UID: pod.UID, ResourceVersion: pod.ResourceVersion, FieldPath: e.FieldPath}
		rec.Event(ref, e.Type, e.Reason, e.Message)
	}
	log.Printf("refused pod %s/%s: %s", pod.Namespace, pod.Name, sig)
	return retry, nil
}

func (c *Controller) recorder(node string) record.EventRecorder {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.recorders[node]
	if !ok {
		r = c.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: node})
		c.recorders[node] = r
	}
	return r
}
