// The AWS side of a KMS deployment on EKS, for the eks profile: stand-ins for what Crossplane's
// tkms-infra compositions and the external-secrets operator do on the real cluster. The CRDs
// (profiles/eks/*.yaml, stand-ins too) are applied by `testenv.sh up`; the generic and kind
// profiles have none, so each kind is watched only once its CRD is Established.
//
//	S3                 Ready after the delay (no bucket is made: moto is the environment's S3)
//	Kmsparty           Ready once an S3 of its namespace matching spec.publicBucketVaultRef is
//	                   Ready (else WaitingForBucket) and the delay passed; first it creates the
//	                   ServiceAccount spec.serviceAccountName and the ConfigMap
//	                   spec.connectionConfigMap (the party's connection details), both owned by it
//	EnclaveNodeGroup   spec.size kwok Nodes enclave-<hash of namespace/name>-<i> (finalizer EnclaveFinalizer:
//	                   deleting the group deletes them first); Ready once they are and the delay passed
//	ExternalSecret     the target Secret (fake values, never a real credential), owned by it;
//	                   SecretStoreNotFound while its ClusterSecretStore does not exist
//	ClusterSecretStore Ready after the delay
//
// Status is Crossplane's: conditions Synced and Ready. Annotations on any of them:
// ReadyAfterAnnotation (a Go duration from creation, whose timestamp has whole seconds; default
// DefaultReadyAfter; real Crossplane takes minutes, real EKS node groups longer) and
// FailAnnotation (Synced and Ready False, reason ReconcileError, that message, for as long as
// it is there).
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// Annotations, finalizer and labels of the stand-ins.
const (
	ReadyAfterAnnotation = "testenv.kmsctl/ready-after"
	FailAnnotation       = "testenv.kmsctl/fail"
	EnclaveFinalizer     = "testenv.kmsctl/enclave-nodes"
	EnclaveGroupLabel    = "tkms.zama.ai/enclave-node-group"
	EnclaveGroupNSLabel  = "tkms.zama.ai/enclave-node-group-namespace"
	NitroLabel           = "aws.amazon.com/nitro-enclaves"

	DefaultReadyAfter   = 2 * time.Second
	DefaultInstanceType = "c6a.16xlarge"
)

// Condition reasons (Crossplane's, and external-secrets' for ExternalSecret).
const (
	ReasonAvailable      = "Available"
	ReasonCreating       = "Creating"
	ReasonSuccess        = "ReconcileSuccess"
	ReasonError          = "ReconcileError"
	ReasonBucket         = "WaitingForBucket"
	ReasonSecretSynced   = "SecretSynced"
	ReasonStoreNotFound  = "SecretStoreNotFound"
	ReasonStoreNotReady  = "SecretStoreNotReady"
	ReasonStoreValid     = "Valid"
	ReasonDeleting       = "Deleting"
	tkmsAPIVersion       = "tkms.zama.ai/v1alpha1"
	esAPIVersion         = "external-secrets.io/v1beta1"
	resKmsparty          = "kmsparties"
	resEnclave           = "enclavenodegroups"
	resS3                = "s3s"
	resExternalSecret    = "externalsecrets"
	resClusterStore      = "clustersecretstores"
	clusterStoreKind     = "ClusterSecretStore"
	dockerConfigJSONType = "kubernetes.io/dockerconfigjson"
)

// infraKind is one watched custom resource.
type infraKind struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
}

func (k infraKind) crdName() string { return k.gvr.Resource + "." + k.gvr.Group }
func (k infraKind) apiVersion() string {
	return schema.GroupVersion{Group: k.gvr.Group, Version: k.gvr.Version}.String()
}

var infraKinds = map[string]infraKind{
	resKmsparty:       {schema.GroupVersionResource{Group: "tkms.zama.ai", Version: "v1alpha1", Resource: resKmsparty}, "Kmsparty", true},
	resEnclave:        {schema.GroupVersionResource{Group: "tkms.zama.ai", Version: "v1alpha1", Resource: resEnclave}, "EnclaveNodeGroup", true},
	resS3:             {schema.GroupVersionResource{Group: "tkms.zama.ai", Version: "v1alpha1", Resource: resS3}, "S3", true},
	resExternalSecret: {schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1beta1", Resource: resExternalSecret}, "ExternalSecret", true},
	resClusterStore:   {schema.GroupVersionResource{Group: "external-secrets.io", Version: "v1beta1", Resource: resClusterStore}, clusterStoreKind, false},
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

type infraRef struct{ res, ns, name string }

func (r infraRef) String() string {
	if r.ns == "" {
		return r.res + "/" + r.name
	}
	return r.res + "/" + r.ns + "/" + r.name
}

type watched struct {
	inf    cache.SharedIndexInformer
	cancel context.CancelFunc
}

// Infra reconciles the stand-ins; see the file comment.
type Infra struct {
	client kubernetes.Interface
	dyn    dynamic.Interface
	crdInf cache.SharedIndexInformer
	queue  workqueue.TypedRateLimitingInterface[infraRef]
	// Now is the clock of the delays (tests move it); Region labels the enclave nodes.
	Now    func() time.Time
	Region string
	// Resync re-reconciles every object this often (a ServiceAccount deleted by hand comes back).
	Resync time.Duration

	mu      sync.Mutex
	ctx     context.Context
	watches map[string]*watched
	synced  chan struct{}
}

// NewInfra registers its handlers on factory's Node, ConfigMap and Secret informers (which the
// pod gate's controller starts); Run watches the CRDs and reconciles.
func NewInfra(client kubernetes.Interface, dyn dynamic.Interface, factory informers.SharedInformerFactory) *Infra {
	nodeInf := factory.Core().V1().Nodes()
	s := &Infra{
		client: client, dyn: dyn,
		crdInf: dynamicinformer.NewFilteredDynamicInformer(dyn, crdGVR, "", 0, cache.Indexers{}, nil).Informer(),
		queue:  workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[infraRef]()),
		Now:    time.Now, Region: "us-east-1", Resync: 30 * time.Second,
		watches: map[string]*watched{}, synced: make(chan struct{}),
	}
	crdHandler := func(obj any) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			s.crdChanged(u, false)
		}
	}
	_, _ = s.crdInf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: crdHandler, UpdateFunc: func(_, obj any) { crdHandler(obj) },
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if u, ok := obj.(*unstructured.Unstructured); ok {
				s.crdChanged(u, true)
			}
		},
	})
	nodeHandler := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if n, ok := obj.(*corev1.Node); ok && n.Labels[EnclaveGroupLabel] != "" {
			s.queue.Add(infraRef{resEnclave, n.Labels[EnclaveGroupNSLabel], n.Labels[EnclaveGroupLabel]})
		}
	}
	_, _ = nodeInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: nodeHandler, UpdateFunc: func(_, obj any) { nodeHandler(obj) }, DeleteFunc: nodeHandler,
	})
	// An owned ConfigMap or Secret changed or deleted by someone else: its owner puts it back.
	ownedHandler := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		m, ok := obj.(metav1.Object)
		if !ok {
			return
		}
		for _, o := range m.GetOwnerReferences() {
			switch {
			case o.APIVersion == tkmsAPIVersion && o.Kind == "Kmsparty":
				s.queue.Add(infraRef{resKmsparty, m.GetNamespace(), o.Name})
			case o.APIVersion == esAPIVersion && o.Kind == "ExternalSecret":
				s.queue.Add(infraRef{resExternalSecret, m.GetNamespace(), o.Name})
			}
		}
	}
	for _, inf := range []cache.SharedIndexInformer{factory.Core().V1().ConfigMaps().Informer(), factory.Core().V1().Secrets().Informer()} {
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			UpdateFunc: func(_, obj any) { ownedHandler(obj) }, DeleteFunc: ownedHandler,
		})
	}
	return s
}

// Synced is closed once the CRDs are listed and every kind whose CRD existed then is cached.
func (s *Infra) Synced() <-chan struct{} { return s.synced }

// Watching tells whether a kind (its resource name) is watched.
func (s *Infra) Watching(res string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.watches[res] != nil
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func (s *Infra) crdChanged(crd *unstructured.Unstructured, deleted bool) {
	for res, k := range infraKinds {
		if k.crdName() != crd.GetName() {
			continue
		}
		s.mu.Lock()
		w := s.watches[res]
		switch {
		case deleted && w != nil:
			w.cancel()
			delete(s.watches, res)
			log.Printf("infra: %s: CRD deleted; no longer watched", k.crdName())
		case !deleted && w == nil && established(crd) && s.ctx != nil:
			s.watches[res] = s.watch(res, k)
			log.Printf("infra: %s: CRD established; reconciling %s", k.crdName(), k.kind)
		}
		s.mu.Unlock()
	}
}

// watch starts an informer for one kind (with s.mu held).
func (s *Infra) watch(res string, k infraKind) *watched {
	ns := ""
	inf := dynamicinformer.NewFilteredDynamicInformer(s.dyn, k.gvr, ns, s.Resync,
		cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}, nil).Informer()
	handler := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		s.queue.Add(infraRef{res, u.GetNamespace(), u.GetName()})
		switch res {
		case resS3: // a bucket decides its namespace's parties
			for _, p := range s.list(resKmsparty, u.GetNamespace()) {
				s.queue.Add(infraRef{resKmsparty, p.GetNamespace(), p.GetName()})
			}
		case resClusterStore:
			for _, e := range s.list(resExternalSecret, "") {
				s.queue.Add(infraRef{resExternalSecret, e.GetNamespace(), e.GetName()})
			}
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: handler, UpdateFunc: func(_, obj any) { handler(obj) }, DeleteFunc: handler,
	})
	ctx, cancel := context.WithCancel(s.ctx)
	go inf.Run(ctx.Done())
	return &watched{inf, cancel}
}

func (s *Infra) informer(res string) cache.SharedIndexInformer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if w := s.watches[res]; w != nil {
		return w.inf
	}
	return nil
}

// list is the cached objects of a kind in a namespace ("" = all).
func (s *Infra) list(res, ns string) []*unstructured.Unstructured {
	inf := s.informer(res)
	if inf == nil {
		return nil
	}
	var objs []any
	if ns == "" {
		objs = inf.GetStore().List()
	} else {
		objs, _ = inf.GetIndexer().ByIndex(cache.NamespaceIndex, ns)
	}
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		if u, ok := o.(*unstructured.Unstructured); ok {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

func (s *Infra) get(r infraRef) *unstructured.Unstructured {
	inf := s.informer(r.res)
	if inf == nil {
		return nil
	}
	k := r.name
	if r.ns != "" {
		k = r.ns + "/" + r.name
	}
	o, ok, _ := inf.GetStore().GetByKey(k)
	if !ok {
		return nil
	}
	u, _ := o.(*unstructured.Unstructured)
	return u
}

// Run watches the CRDs and works the queue until ctx ends.
func (s *Infra) Run(ctx context.Context, workers int) {
	defer s.queue.ShutDown()
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	go s.crdInf.Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), s.crdInf.HasSynced) {
		return
	}
	for _, o := range s.crdInf.GetStore().List() { // CRDs listed before ctx was set
		if u, ok := o.(*unstructured.Unstructured); ok {
			s.crdChanged(u, false)
		}
	}
	s.mu.Lock()
	var syncs []cache.InformerSynced
	for _, w := range s.watches {
		syncs = append(syncs, w.inf.HasSynced)
	}
	s.mu.Unlock()
	if cache.WaitForCacheSync(ctx.Done(), syncs...) {
		close(s.synced)
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for s.next(ctx) {
			}
		})
	}
	<-ctx.Done()
	s.queue.ShutDown()
	wg.Wait()
}

func (s *Infra) next(ctx context.Context) bool {
	r, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(r)
	retry, err := s.sync(ctx, r)
	switch {
	case err != nil:
		log.Printf("infra: %s: %v (retrying)", r, err)
		s.queue.AddRateLimited(r)
	case retry > 0:
		s.queue.Forget(r)
		s.queue.AddAfter(r, retry)
	default:
		s.queue.Forget(r)
	}
	return true
}

// verdict is what a reconcile found: the Ready condition, extra status fields, and when to
// look again.
type verdict struct {
	ready           bool
	reason, message string
	status          map[string]any
	retry           time.Duration
}

// sync reconciles one object.
func (s *Infra) sync(ctx context.Context, r infraRef) (time.Duration, error) {
	cached := s.get(r)
	if cached == nil {
		return 0, nil
	}
	obj := cached.DeepCopy()
	if obj.GetDeletionTimestamp() != nil {
		if r.res == resEnclave {
			return s.deleteEnclave(ctx, obj)
		}
		return 0, nil
	}
	if msg, ok := obj.GetAnnotations()[FailAnnotation]; ok {
		return 0, s.writeStatus(ctx, r, obj, false, ReasonError, msg, verdict{reason: ReasonError, message: msg})
	}
	delay := DefaultReadyAfter
	if a, ok := obj.GetAnnotations()[ReadyAfterAnnotation]; ok {
		d, err := time.ParseDuration(a)
		if err != nil || d < 0 {
			msg := fmt.Sprintf("annotation %s: %q is not a duration (e.g. 2s, 1m30s)", ReadyAfterAnnotation, a)
			return 0, s.writeStatus(ctx, r, obj, false, ReasonError, msg, verdict{reason: ReasonError, message: msg})
		}
		delay = d
	}
	remaining := obj.GetCreationTimestamp().Add(delay).Sub(s.Now())
	creating := verdict{reason: ReasonCreating, retry: remaining,
		message: fmt.Sprintf("the test environment's stand-in makes it Ready %s after its creation (annotation %s)", delay, ReadyAfterAnnotation)}
	var v verdict
	var err error
	switch r.res {
	case resS3:
		v = verdict{ready: true, reason: ReasonAvailable}
		if bucket, _, _ := unstructured.NestedString(obj.Object, "spec", "bucketName"); bucket != "" {
			v.status = map[string]any{"atProvider": map[string]any{"bucketName": bucket,
				"arn": "arn:aws:s3:::" + bucket}}
		}
		if remaining > 0 {
			v = creating
		}
	case resClusterStore:
		v = verdict{ready: true, reason: ReasonStoreValid, message: "store validated"}
		if remaining > 0 {
			v = creating
		}
	case resKmsparty:
		v, err = s.syncKmsparty(ctx, obj, remaining, creating)
	case resEnclave:
		v, err = s.syncEnclave(ctx, obj, remaining, creating)
	case resExternalSecret:
		v, err = s.syncExternalSecret(ctx, obj, remaining, creating)
	}
	if err != nil {
		if apierrors.IsConflict(err) {
			return 0, err
		}
		// Crossplane shows a failed reconcile as Synced=False and tries again.
		_ = s.writeStatus(ctx, r, obj, false, ReasonError, err.Error(), currentReady(obj))
		return 0, err
	}
	if err := s.writeStatus(ctx, r, obj, true, ReasonSuccess, "", v); err != nil {
		return 0, err
	}
	return v.retry, nil
}

// currentReady is the object's Ready condition as it is (kept when a reconcile errs).
func currentReady(obj *unstructured.Unstructured) verdict {
	v := verdict{reason: ReasonCreating}
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
			v.ready = m["status"] == "True"
			v.reason, _ = m["reason"].(string)
			v.message, _ = m["message"].(string)
		}
	}
	return v
}

func condition(typ string, ok bool, reason, message string, old []any, now time.Time) map[string]any {
	st := "False"
	if ok {
		st = "True"
	}
	c := map[string]any{"type": typ, "status": st, "reason": reason,
		"lastTransitionTime": now.UTC().Format(time.RFC3339)}
	if message != "" {
		c["message"] = message
	}
	for _, o := range old {
		if m, ok := o.(map[string]any); ok && m["type"] == typ && m["status"] == st {
			if t, ok := m["lastTransitionTime"].(string); ok && t != "" {
				c["lastTransitionTime"] = t // the status did not change
			}
		}
	}
	return c
}

// writeStatus patches status.conditions (Synced, Ready) and v's extra fields, if they changed.
func (s *Infra) writeStatus(ctx context.Context, r infraRef, obj *unstructured.Unstructured, synced bool,
	syncedReason, syncedMsg string, v verdict) error {
	old, _, _ := unstructured.NestedMap(obj.Object, "status")
	if old == nil {
		old = map[string]any{}
	}
	oldConds, _ := old["conditions"].([]any)
	now := s.Now()
	status := maps.Clone(old)
	maps.Copy(status, v.status)
	// Like Crossplane, each condition says which generation it is about, so a wait after a spec
	// change does not take the previous generation's Ready for this one's.
	gen := obj.GetGeneration()
	conds := []any{
		condition("Synced", synced, syncedReason, syncedMsg, oldConds, now),
		condition("Ready", v.ready, v.reason, v.message, oldConds, now),
	}
	for _, c := range conds {
		c.(map[string]any)["observedGeneration"] = gen
	}
	status["conditions"] = conds
	if reflect.DeepEqual(normalize(old), normalize(status)) {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	api := s.resource(r)
	_, err = api.Patch(ctx, r.name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err == nil && (currentReady(obj).ready != v.ready || currentReady(obj).reason != v.reason) {
		log.Printf("infra: %s: Ready=%t %s %s", r, v.ready, v.reason, v.message)
	}
	return err
}

func (s *Infra) resource(r infraRef) dynamic.ResourceInterface {
	k := infraKinds[r.res]
	if k.namespaced {
		return s.dyn.Resource(k.gvr).Namespace(r.ns)
	}
	return s.dyn.Resource(k.gvr)
}

func ownerRef(obj *unstructured.Unstructured) metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: obj.GetAPIVersion(), Kind: obj.GetKind(), Name: obj.GetName(),
		UID: obj.GetUID(), Controller: new(true), BlockOwnerDeletion: new(true)}
}

// withOwner is refs with the owner added (or its entry refreshed); changed tells whether it had to.
func withOwner(refs []metav1.OwnerReference, o metav1.OwnerReference) ([]metav1.OwnerReference, bool) {
	for _, r := range refs {
		if r.UID == o.UID {
			return refs, false
		}
	}
	out := []metav1.OwnerReference{o}
	for _, r := range refs {
		if r.Controller == nil || !*r.Controller { // one controller: ours
			out = append(out, r)
		}
	}
	return out, true
}

// ---- Kmsparty ---------------------------------------------------------------------------

// MatchBucket is the Ready S3 of the party's namespace that its selector matches (the first
// by name), or, when none is Ready, a message saying what it waits for.
func MatchBucket(party *unstructured.Unstructured, buckets []*unstructured.Unstructured) (*unstructured.Unstructured, string) {
	want, _, _ := unstructured.NestedStringMap(party.Object, "spec", "publicBucketVaultRef", "matchLabels")
	sel := labels.SelectorFromSet(want)
	var waiting []string
	for _, b := range buckets {
		if b.GetNamespace() != party.GetNamespace() || b.GetDeletionTimestamp() != nil || !sel.Matches(labels.Set(b.GetLabels())) {
			continue
		}
		if currentReady(b).ready {
			return b, ""
		}
		waiting = append(waiting, b.GetName())
	}
	if len(waiting) > 0 {
		return nil, fmt.Sprintf("the S3 matching publicBucketVaultRef.matchLabels {%s} is not Ready yet: %s", sel, strings.Join(waiting, ", "))
	}
	return nil, fmt.Sprintf("no S3 in namespace %s matches publicBucketVaultRef.matchLabels {%s}", party.GetNamespace(), sel)
}

// PartyConnection is the party's connection details: the ConfigMap's data.
func PartyConnection(party, bucket *unstructured.Unstructured) map[string]string {
	spec := func(path ...string) string {
		v, _, _ := unstructured.NestedFieldNoCopy(party.Object, append([]string{"spec"}, path...)...)
		if v == nil {
			return ""
		}
		return fmt.Sprint(v)
	}
	bucketName, _, _ := unstructured.NestedString(bucket.Object, "spec", "bucketName")
	region := spec("region")
	data := map[string]string{
		"AWS_REGION":        region,
		"KMS_PARTY_INDEX":   spec("partyIndex"),
		"KMS_PUBLIC_BUCKET": bucketName,
		// What the KMS chart's config reads (envsubst at pod start). The private and backup
		// buckets are the party's own, which the real composition makes; no S3 stands for them.
		"KMS_CORE__PUBLIC_VAULT__STORAGE__S3__BUCKET":  bucketName,
		"KMS_CORE__PRIVATE_VAULT__STORAGE__S3__BUCKET": party.GetName() + "-private",
		"KMS_CORE__BACKUP_VAULT__STORAGE__S3__BUCKET":  party.GetName() + "-backup",
	}
	if enabled, _, _ := unstructured.NestedBool(party.Object, "spec", "awsKms", "enabled"); enabled {
		data["KMS_RECIPIENT_ATTESTATION_SHA384"] = spec("awsKms", "recipientAttestationImageSHA384")
		data["KMS_CORE__PRIVATE_VAULT__KEYCHAIN__AWS_KMS__ROOT_KEY_ID"] =
			fmt.Sprintf("arn:aws:kms:%s:000000000000:key/testenv-%s", region, party.GetName())
	}
	return data
}

func (s *Infra) syncKmsparty(ctx context.Context, party *unstructured.Unstructured, remaining time.Duration, creating verdict) (verdict, error) {
	bucket, waiting := MatchBucket(party, s.list(resS3, party.GetNamespace()))
	if bucket == nil {
		return verdict{reason: ReasonBucket, message: waiting}, nil
	}
	if remaining > 0 {
		return creating, nil
	}
	sa, _, _ := unstructured.NestedString(party.Object, "spec", "serviceAccountName")
	cmName, _, _ := unstructured.NestedString(party.Object, "spec", "connectionConfigMap")
	if sa == "" || cmName == "" {
		return verdict{}, fmt.Errorf("spec.serviceAccountName and spec.connectionConfigMap are required")
	}
	if err := s.ensureServiceAccount(ctx, party, sa); err != nil {
		return verdict{}, err
	}
	if err := s.ensureConfigMap(ctx, party, cmName, PartyConnection(party, bucket)); err != nil {
		return verdict{}, err
	}
	bucketName, _, _ := unstructured.NestedString(bucket.Object, "spec", "bucketName")
	return verdict{ready: true, reason: ReasonAvailable, status: map[string]any{
		"publicBucketName": bucketName, "serviceAccount": sa, "connectionConfigMap": cmName,
	}}, nil
}

func (s *Infra) ensureServiceAccount(ctx context.Context, owner *unstructured.Unstructured, name string) error {
	api := s.client.CoreV1().ServiceAccounts(owner.GetNamespace())
	// IRSA, as the composition's role would be bound (a made-up account: nothing checks it).
	role := fmt.Sprintf("arn:aws:iam::000000000000:role/%s", owner.GetName())
	cur, err := api.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = api.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: owner.GetNamespace(), OwnerReferences: []metav1.OwnerReference{ownerRef(owner)},
			Annotations: map[string]string{"eks.amazonaws.com/role-arn": role},
		}}, metav1.CreateOptions{})
		if err == nil {
			log.Printf("infra: kmsparties/%s/%s: created ServiceAccount %s", owner.GetNamespace(), owner.GetName(), name)
		}
		return err
	}
	if err != nil {
		return err
	}
	refs, changed := withOwner(cur.OwnerReferences, ownerRef(owner))
	if !changed && cur.Annotations["eks.amazonaws.com/role-arn"] == role {
		return nil
	}
	cur.OwnerReferences = refs
	if cur.Annotations == nil {
		cur.Annotations = map[string]string{}
	}
	cur.Annotations["eks.amazonaws.com/role-arn"] = role
	_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

func (s *Infra) ensureConfigMap(ctx context.Context, owner *unstructured.Unstructured, name string, data map[string]string) error {
	api := s.client.CoreV1().ConfigMaps(owner.GetNamespace())
	cur, err := api.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = api.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: owner.GetNamespace(), OwnerReferences: []metav1.OwnerReference{ownerRef(owner)},
		}, Data: data}, metav1.CreateOptions{})
		if err == nil {
			log.Printf("infra: kmsparties/%s/%s: created ConfigMap %s", owner.GetNamespace(), owner.GetName(), name)
		}
		return err
	}
	if err != nil {
		return err
	}
	refs, changed := withOwner(cur.OwnerReferences, ownerRef(owner))
	if !changed && maps.Equal(cur.Data, data) {
		return nil
	}
	cur.OwnerReferences, cur.Data = refs, data
	_, err = api.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

// ---- EnclaveNodeGroup -------------------------------------------------------------------

// EKSAllocatable is what the EKS AMI leaves of a node: kube-reserved CPU (6% of the first
// core, 1% of the second, 0.5% of the next two, 0.25% of the rest), memory 11 MiB per pod +
// 255 MiB, and the 100 MiB eviction threshold (as in profiles/eks.yaml).
func EKSAllocatable(cores, memMi, pods int64) (cpuMilli, allocMi int64) {
	tenths := int64(0) // reserved CPU in tenths of a millicore
	for c := int64(1); c <= cores; c++ {
		switch {
		case c == 1:
			tenths += 600
		case c == 2:
			tenths += 100
		case c <= 4:
			tenths += 50
		default:
			tenths += 25
		}
	}
	return cores*1000 - tenths/10, memMi - (11*pods + 255) - 100
}

// The enclave nodes' size (one node type for every instance type; see the README).
const (
	enclaveCores      = 64
	enclaveMemoryMi   = 128 * 1024
	enclavePods       = 110
	enclaveHugepagesG = 96 // 1Gi hugepages the node group reserves for the enclaves
	enclaveDevices    = 1  // the Nitro Enclaves device plugin's aws.ec2.amazonaws.com/nitro_enclaves
)

// EnclaveNodes are the Nodes an EnclaveNodeGroup stands for (kwok's, like the profile's).
func EnclaveNodes(group *unstructured.Unstructured, region string) ([]corev1.Node, error) {
	size, found, err := unstructured.NestedInt64(group.Object, "spec", "size")
	if err != nil || !found || size < 0 {
		return nil, fmt.Errorf("spec.size must be a number >= 0")
	}
	itype, _, _ := unstructured.NestedString(group.Object, "spec", "instanceType")
	if itype == "" {
		itype = DefaultInstanceType
	}
	var taints []corev1.Taint
	raw, _, _ := unstructured.NestedSlice(group.Object, "spec", "taint")
	for i, t := range raw {
		m, _ := t.(map[string]any)
		key, _ := m["key"].(string)
		value, _ := m["value"].(string)
		effect, _ := m["effect"].(string)
		if key == "" || effect == "" {
			return nil, fmt.Errorf("spec.taint[%d]: key and effect are required", i)
		}
		taints = append(taints, corev1.Taint{Key: key, Value: value, Effect: corev1.TaintEffect(effect)})
	}
	cpuMilli, memMi := EKSAllocatable(enclaveCores, enclaveMemoryMi, enclavePods)
	hp := resource.MustParse(fmt.Sprintf("%dGi", enclaveHugepagesG))
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:                     *resource.NewQuantity(enclaveCores, resource.DecimalSI),
		corev1.ResourceMemory:                  resource.MustParse(fmt.Sprintf("%dMi", enclaveMemoryMi)),
		corev1.ResourcePods:                    *resource.NewQuantity(enclavePods, resource.DecimalSI),
		corev1.ResourceEphemeralStorage:        resource.MustParse("100Gi"),
		"hugepages-1Gi":                        hp,
		"aws.ec2.amazonaws.com/nitro_enclaves": *resource.NewQuantity(enclaveDevices, resource.DecimalSI),
	}
	alloc := capacity.DeepCopy()
	alloc[corev1.ResourceCPU] = *resource.NewMilliQuantity(cpuMilli, resource.DecimalSI)
	// The kubelet takes the reserved hugepages out of allocatable memory.
	alloc[corev1.ResourceMemory] = resource.MustParse(fmt.Sprintf("%dMi", memMi-enclaveHugepagesG*1024))
	alloc[corev1.ResourceEphemeralStorage] = resource.MustParse("95Gi")
	zones := []string{"a", "b", "c"}
	var nodes []corev1.Node
	for i := range int(size) {
		// Node names are also hostname labels (63 bytes at most): named by a hash of the group.
		name := fmt.Sprintf("enclave-%08x-%d", groupHash(group.GetNamespace(), group.GetName()), i)
		zone := region + zones[i%len(zones)]
		nodes = append(nodes, corev1.Node{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
			ObjectMeta: metav1.ObjectMeta{Name: name,
				Labels: map[string]string{
					"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
					"node.kubernetes.io/instance-type": itype,
					"topology.kubernetes.io/region":    region, "topology.kubernetes.io/zone": zone,
					"eks.amazonaws.com/nodegroup": labelValue(group.GetName()), "eks.amazonaws.com/capacityType": "ON_DEMAND",
					"k8s.io/cloud-provider-aws": "testenv",
					EnclaveGroupLabel:           group.GetName(), EnclaveGroupNSLabel: group.GetNamespace(),
					NitroLabel: "true",
				},
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			},
			Spec:   corev1.NodeSpec{Taints: taints, ProviderID: fmt.Sprintf("aws:///%s/i-0e%015d", zone, i)},
			Status: corev1.NodeStatus{Capacity: capacity.DeepCopy(), Allocatable: alloc.DeepCopy()},
		})
	}
	return nodes, nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func groupSelector(group *unstructured.Unstructured) string {
	return labels.Set{EnclaveGroupLabel: group.GetName(), EnclaveGroupNSLabel: group.GetNamespace()}.String()
}

func (s *Infra) syncEnclave(ctx context.Context, group *unstructured.Unstructured, remaining time.Duration, creating verdict) (verdict, error) {
	if !slices.Contains(group.GetFinalizers(), EnclaveFinalizer) {
		group.SetFinalizers(append(group.GetFinalizers(), EnclaveFinalizer))
		updated, err := s.resource(infraRef{resEnclave, group.GetNamespace(), group.GetName()}).Update(ctx, group, metav1.UpdateOptions{})
		if err != nil {
			return verdict{}, err
		}
		group = updated
	}
	want, err := EnclaveNodes(group, s.Region)
	if err != nil {
		return verdict{}, err
	}
	have, err := s.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: groupSelector(group)})
	if err != nil {
		return verdict{}, err
	}
	wanted := map[string]bool{}
	for _, n := range want {
		wanted[n.Name] = true
	}
	existing := map[string]*corev1.Node{}
	for i := range have.Items {
		n := &have.Items[i]
		if !wanted[n.Name] { // the group shrank
			if err := s.client.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return verdict{}, err
			}
			log.Printf("infra: enclavenodegroups/%s/%s: deleted node %s", group.GetNamespace(), group.GetName(), n.Name)
			continue
		}
		existing[n.Name] = n
	}
	ready := 0
	for i := range want {
		n := &want[i]
		cur, ok := existing[n.Name]
		if !ok {
			if _, err := s.client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return verdict{}, err
			}
			log.Printf("infra: enclavenodegroups/%s/%s: created node %s", group.GetNamespace(), group.GetName(), n.Name)
			continue
		}
		if !reflect.DeepEqual(cur.Spec.Taints, n.Spec.Taints) && !(len(cur.Spec.Taints) == 0 && len(n.Spec.Taints) == 0) {
			cur.Spec.Taints = n.Spec.Taints
			if _, err := s.client.CoreV1().Nodes().Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
				return verdict{}, err
			}
		}
		if nodeReady(cur) {
			ready++
		}
	}
	status := map[string]any{"nodes": int64(len(want)), "readyNodes": int64(ready)}
	if ready < len(want) {
		return verdict{reason: ReasonCreating, status: status,
			message: fmt.Sprintf("%d of %d nodes Ready", ready, len(want))}, nil
	}
	if remaining > 0 {
		creating.status = status
		return creating, nil
	}
	return verdict{ready: true, reason: ReasonAvailable, status: status}, nil
}

// deleteEnclave deletes the group's nodes, then lets the group go.
func (s *Infra) deleteEnclave(ctx context.Context, group *unstructured.Unstructured) (time.Duration, error) {
	if !slices.Contains(group.GetFinalizers(), EnclaveFinalizer) {
		return 0, nil
	}
	have, err := s.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: groupSelector(group)})
	if err != nil {
		return 0, err
	}
	for _, n := range have.Items {
		if n.DeletionTimestamp != nil {
			continue
		}
		if err := s.client.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return 0, err
		}
		log.Printf("infra: enclavenodegroups/%s/%s: deleting node %s", group.GetNamespace(), group.GetName(), n.Name)
	}
	if len(have.Items) > 0 {
		return 200 * time.Millisecond, nil // the node events bring it back sooner
	}
	group.SetFinalizers(slices.DeleteFunc(group.GetFinalizers(), func(f string) bool { return f == EnclaveFinalizer }))
	_, err = s.resource(infraRef{resEnclave, group.GetNamespace(), group.GetName()}).Update(ctx, group, metav1.UpdateOptions{})
	if apierrors.IsNotFound(err) {
		return 0, nil
	}
	if err == nil {
		log.Printf("infra: enclavenodegroups/%s/%s: nodes gone; finalizer removed", group.GetNamespace(), group.GetName())
	}
	return 0, err
}

// ---- ExternalSecret ---------------------------------------------------------------------

// RegistryHost is the registry a remote key names, by the convention of the KMS values:
// common/<host with dots as dashes>-registry-credentials.
func RegistryHost(key string) string {
	base := key[strings.LastIndex(key, "/")+1:]
	base = strings.TrimSuffix(strings.TrimSuffix(base, "-registry-credentials"), "-credentials")
	return strings.ReplaceAll(base, "-", ".")
}

// FakeSecretValue is what the stand-in "fetches" for a remote key: for a .dockerconfigjson,
// a well-formed docker config with a made-up login for the registry the key names; otherwise
// a placeholder naming the key. Never a real credential.
func FakeSecretValue(secretKey, remoteKey string) []byte {
	if secretKey == corev1.DockerConfigJsonKey {
		user, pass := "testenv", "testenv-not-a-real-password"
		auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
		b, _ := json.Marshal(map[string]any{"auths": map[string]any{RegistryHost(remoteKey): map[string]any{
			"username": user, "password": pass, "auth": auth}}})
		return b
	}
	return []byte("testenv-fake-value-of-" + remoteKey)
}

// ExternalSecretData is the target Secret's type and data.
func ExternalSecretData(es *unstructured.Unstructured) (corev1.SecretType, map[string][]byte, error) {
	typ, _, _ := unstructured.NestedString(es.Object, "spec", "target", "template", "type")
	if typ == "" {
		typ = string(corev1.SecretTypeOpaque)
	}
	data := map[string][]byte{}
	items, _, _ := unstructured.NestedSlice(es.Object, "spec", "data")
	for i, it := range items {
		m, _ := it.(map[string]any)
		key, _ := m["secretKey"].(string)
		remote, _, _ := unstructured.NestedString(m, "remoteRef", "key")
		if key == "" || remote == "" {
			return "", nil, fmt.Errorf("spec.data[%d]: secretKey and remoteRef.key are required", i)
		}
		data[key] = FakeSecretValue(key, remote)
	}
	if typ == dockerConfigJSONType && data[corev1.DockerConfigJsonKey] == nil {
		return "", nil, fmt.Errorf("a %s Secret needs a %s key in spec.data", typ, corev1.DockerConfigJsonKey)
	}
	return corev1.SecretType(typ), data, nil
}

func (s *Infra) syncExternalSecret(ctx context.Context, es *unstructured.Unstructured, remaining time.Duration, creating verdict) (verdict, error) {
	kind, _, _ := unstructured.NestedString(es.Object, "spec", "secretStoreRef", "kind")
	store, _, _ := unstructured.NestedString(es.Object, "spec", "secretStoreRef", "name")
	if kind == "" {
		kind = "SecretStore"
	}
	var found *unstructured.Unstructured
	if kind == clusterStoreKind {
		found = s.get(infraRef{resClusterStore, "", store})
	}
	if found == nil {
		msg := fmt.Sprintf("%s %q not found", kind, store)
		if kind != clusterStoreKind {
			msg += " (the test environment has ClusterSecretStores only)"
		}
		return verdict{reason: ReasonStoreNotFound, message: msg}, nil
	}
	if !currentReady(found).ready {
		return verdict{reason: ReasonStoreNotReady, message: fmt.Sprintf("%s %q is not Ready", kind, store)}, nil
	}
	if remaining > 0 {
		return creating, nil
	}
	target, _, _ := unstructured.NestedString(es.Object, "spec", "target", "name")
	if target == "" {
		target = es.GetName()
	}
	typ, data, err := ExternalSecretData(es)
	if err != nil {
		return verdict{}, err
	}
	api := s.client.CoreV1().Secrets(es.GetNamespace())
	cur, err := api.Get(ctx, target, metav1.GetOptions{})
	if err == nil && cur.Type != typ { // the type is immutable
		if err := api.Delete(ctx, target, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return verdict{}, err
		}
		err = apierrors.NewNotFound(corev1.Resource("secrets"), target)
	}
	switch {
	case apierrors.IsNotFound(err):
		_, err = api.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
			Name: target, Namespace: es.GetNamespace(), OwnerReferences: []metav1.OwnerReference{ownerRef(es)},
		}, Type: typ, Data: data}, metav1.CreateOptions{})
		if err != nil {
			return verdict{}, err
		}
		log.Printf("infra: externalsecrets/%s/%s: created Secret %s (%s)", es.GetNamespace(), es.GetName(), target, typ)
	case err != nil:
		return verdict{}, err
	default:
		refs, changed := withOwner(cur.OwnerReferences, ownerRef(es))
		if changed || !reflect.DeepEqual(cur.Data, data) {
			cur.OwnerReferences, cur.Data = refs, data
			if _, err := api.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
				return verdict{}, err
			}
		}
	}
	v := verdict{ready: true, reason: ReasonSecretSynced, message: "Secret was synced",
		status: map[string]any{"binding": map[string]any{"name": target}}}
	if currentReady(es).reason != ReasonSecretSynced {
		v.status["refreshTime"] = s.Now().UTC().Format(time.RFC3339)
	}
	return v, nil
}

// groupHash names an enclave node group's nodes: short, stable, distinct per namespace/name.
func groupHash(ns, name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(ns + "/" + name))
	return h.Sum32()
}

// labelValue is v cut to a label value's 63 bytes, ending alphanumeric.
func labelValue(v string) string {
	if len(v) > 63 {
		v = strings.TrimRight(v[:63], "-_.")
	}
	return v
}
