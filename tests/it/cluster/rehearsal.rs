//! The rehearsal refuses what a real cluster refuses: pods whose ConfigMap, Secret, key or
//! pull secret is missing (the rehearsal controller plays the kubelet: waiting status, events,
//! retry once the object appears), PVCs of a StorageClass that does not exist (kube-controller-
//! manager and kube-scheduler), and, in the kind and eks profiles, what their node pools
//! cannot hold or do not tolerate (kube-scheduler).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, PersistentVolumeClaim, Pod, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::runtime::watcher;
use serde_json::{Value, json};

use crate::testenv::{TestEnv, testenv, testenv_profile, within};

const IMAGE: &str = "zama-ai/kms-core-service:v0.12.0";

fn pod(name: &str, spec: Value) -> Pod {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "main", "image": IMAGE}]);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("pod")
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The waiting (reason, message) of the named container (init containers too).
fn waiting(p: &Pod, container: &str) -> Option<(String, String)> {
    let st = p.status.as_ref()?;
    st.container_statuses
        .iter()
        .flatten()
        .chain(st.init_container_statuses.iter().flatten())
        .find(|c| c.name == container)
        .and_then(|c| c.state.as_ref()?.waiting.as_ref())
        .map(|w| (w.reason.clone().unwrap_or_default(), w.message.clone().unwrap_or_default()))
}

/// Fails the test if the pod is ever Ready before `allow()` is called: a gate that opens
/// briefly (a race with kwok's pod-ready stage) would show here.
struct NeverReadyUntil {
    allowed: Arc<AtomicBool>,
    early: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl NeverReadyUntil {
    fn watch(pods: &Api<Pod>, name: &str) -> Self {
        let (allowed, early) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (a, e) = (allowed.clone(), early.clone());
        let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let stream = watcher::watcher(pods.clone(), cfg);
        let task = tokio::spawn(async move {
            let mut s = std::pin::pin!(stream);
            while let Some(Ok(ev)) = s.next().await {
                let pods: Vec<Pod> = match ev {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => vec![p],
                    _ => vec![],
                };
                if pods.iter().any(is_ready) && !a.load(Ordering::SeqCst) {
                    e.store(true, Ordering::SeqCst);
                }
            }
        });
        NeverReadyUntil { allowed, early, task }
    }

    fn allow(&self) {
        assert!(!self.early.load(Ordering::SeqCst), "the pod was Ready before its reference existed");
        self.allowed.store(true, Ordering::SeqCst);
    }
}

impl Drop for NeverReadyUntil {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn wait_pod(pods: &Api<Pod>, name: &str, what: &str, cond: impl Fn(&Pod) -> bool) -> Pod {
    within(60, what, await_condition(pods.clone(), name, move |p: Option<&Pod>| p.is_some_and(&cond)))
        .await
        .expect("watch pod")
        .expect("pod exists")
}

/// The first event about `object` (in `ns`) that matches, watched (not polled).
async fn wait_event(env: &TestEnv, ns: &str, object: &str, what: &str, want: impl Fn(&Event) -> bool) -> Event {
    let events = Api::<Event>::namespaced(env.client.clone(), ns);
    let cfg = watcher::Config::default().fields(&format!("involvedObject.name={object}"));
    let mut stream = std::pin::pin!(watcher::watcher(events, cfg));
    within(60, what, async {
        while let Some(ev) = stream.next().await {
            match ev.expect("watch events") {
                watcher::Event::Apply(e) | watcher::Event::InitApply(e) if want(&e) => return e,
                _ => {}
            }
        }
        panic!("the event watch ended")
    })
    .await
}

/// Create the object that `json` describes through `api`.
macro_rules! create {
    ($api:expr, $json:expr) => {
        $api.create(&PostParams::default(), &serde_json::from_value($json).expect("object")).await.expect("create")
    };
}

/// A pod that `spec` makes refused: it shows `reason`/`message` on container `main` and the
/// kubelet event `event_reason`/`event_message`, never becomes Ready, and becomes Ready once
/// `fix` has created what was missing.
async fn refused_until_fixed<F, Fut>(
    prefix: &str,
    spec: Value,
    reason: &str,
    message: &str,
    event: (&str, &str),
    fix: F,
) where
    F: FnOnce(kube::Client, String) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let env = testenv!();
    let ns = env.namespace(prefix).await;
    let message = message.replace("@NS@", &ns.name);
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    let guard = NeverReadyUntil::watch(&pods, "p");
    pods.create(&PostParams::default(), &pod("p", spec)).await.expect("create pod");
    let p = wait_pod(&pods, "p", reason, |p| waiting(p, "main").is_some_and(|(r, _)| r == reason)).await;
    assert_eq!(waiting(&p, "main"), Some((reason.to_string(), message.clone())));
    assert!(!is_ready(&p));
    let e = wait_event(&env, &ns.name, "p", event.0, |e| e.reason.as_deref() == Some(event.0)).await;
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(e.message.as_deref(), Some(event.1.replace("@NS@", &ns.name).as_str()));
    assert_eq!(e.source.as_ref().and_then(|s| s.component.as_deref()), Some("kubelet"));
    assert_eq!(e.source.as_ref().and_then(|s| s.host.as_deref()), p.spec.as_ref().and_then(|s| s.node_name.as_deref()));

    guard.allow();
    fix(env.client.clone(), ns.name.clone()).await;
    let p = wait_pod(&pods, "p", "Ready once the reference exists", is_ready).await;
    assert_eq!(p.status.and_then(|s| s.phase).as_deref(), Some("Running"));
}

async fn make_config_map(client: kube::Client, ns: String, data: Value) {
    let cms = Api::<ConfigMap>::namespaced(client, &ns);
    create!(&cms, json!({"metadata": {"name": "settings"}, "data": data}));
}

#[tokio::test]
async fn missing_config_map_is_create_container_config_error_until_it_exists() {
    let spec = json!({"containers": [{"name": "main", "image": IMAGE, "env": [
        {"name": "A", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "a"}}}]}]});
    refused_until_fixed(
        "rehearsal-cm",
        spec,
        "CreateContainerConfigError",
        r#"configmap "settings" not found"#,
        ("Failed", r#"Error: configmap "settings" not found"#),
        |c, ns| make_config_map(c, ns, json!({"a": "1"})),
    )
    .await;
}

#[tokio::test]
async fn missing_key_is_create_container_config_error_until_it_is_added() {
    let env = testenv!();
    let ns = env.namespace("rehearsal-key").await;
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name);
    create!(&cms, json!({"metadata": {"name": "settings"}, "data": {"other": "x"}}));
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    let guard = NeverReadyUntil::watch(&pods, "p");
    let spec = json!({"initContainers": [{"name": "init", "image": IMAGE, "env": [
            {"name": "K", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}}]}],
        "containers": [{"name": "main", "image": IMAGE}]});
    pods.create(&PostParams::default(), &pod("p", spec)).await.expect("create pod");
    let want = format!("couldn't find key k in ConfigMap {}/settings", ns.name);
    let p = wait_pod(&pods, "p", "CreateContainerConfigError", |p| waiting(p, "init").is_some()).await;
    assert_eq!(waiting(&p, "init"), Some(("CreateContainerConfigError".into(), want.clone())));
    assert_eq!(waiting(&p, "main").map(|w| w.0).as_deref(), Some("PodInitializing"));
    let e = wait_event(&env, &ns.name, "p", "the Failed event", |e| e.reason.as_deref() == Some("Failed")).await;
    assert_eq!(e.message, Some(format!("Error: {want}")));
    assert_eq!(e.involved_object.field_path.as_deref(), Some("spec.initContainers{init}"));

    guard.allow();
    cms.patch("settings", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "v"}}))).await.expect("add key");
    wait_pod(&pods, "p", "Ready once the key exists", is_ready).await;
}

#[tokio::test]
async fn missing_secret_in_env_from_is_refused_until_it_exists() {
    let spec = json!({"containers": [{"name": "main", "image": IMAGE,
        "envFrom": [{"configMapRef": {"name": "absent", "optional": true}}, {"secretRef": {"name": "creds"}}]}]});
    refused_until_fixed(
        "rehearsal-secret",
        spec,
        "CreateContainerConfigError",
        r#"secret "creds" not found"#,
        ("Failed", r#"Error: secret "creds" not found"#),
        |c, ns| async move {
            let secrets = Api::<Secret>::namespaced(c, &ns);
            create!(&secrets, json!({"metadata": {"name": "creds"}, "stringData": {"pw": "x"}}));
        },
    )
    .await;
}

#[tokio::test]
async fn missing_config_map_volume_fails_to_mount_until_it_exists() {
    let spec = json!({"containers": [{"name": "main", "image": IMAGE,
            "volumeMounts": [{"name": "cfg", "mountPath": "/etc/kms"}]}],
        "volumes": [{"name": "cfg", "configMap": {"name": "settings", "items": [{"key": "peers", "path": "peers.toml"}]}}]});
    refused_until_fixed(
        "rehearsal-vol",
        spec,
        "ContainerCreating",
        "",
        ("FailedMount", r#"MountVolume.SetUp failed for volume "cfg" : configmap "settings" not found"#),
        |c, ns| make_config_map(c, ns, json!({"peers": "[]"})),
    )
    .await;
}

#[tokio::test]
async fn optional_missing_references_do_not_block() {
    let env = testenv!();
    let ns = env.namespace("rehearsal-opt").await;
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    let spec = json!({"containers": [{"name": "main", "image": IMAGE,
            "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "absent", "key": "a", "optional": true}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "b", "optional": true}}}],
            "envFrom": [{"secretRef": {"name": "absent", "optional": true}}]}],
        "volumes": [{"name": "v", "projected": {"sources": [
            {"configMap": {"name": "absent", "optional": true}}, {"secret": {"name": "absent", "optional": true}}]}}]});
    pods.create(&PostParams::default(), &pod("p", spec)).await.expect("create pod");
    let p = wait_pod(&pods, "p", "Ready", is_ready).await;
    assert_eq!(p.metadata.annotations.and_then(|a| a.get("testenv.kmsctl/admitted").cloned()).as_deref(), Some("true"));
}

#[tokio::test]
async fn missing_image_pull_secret_is_image_pull_back_off_until_it_exists() {
    let env = testenv!();
    let ns = env.namespace("rehearsal-pull").await;
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    let guard = NeverReadyUntil::watch(&pods, "p");
    pods.create(&PostParams::default(), &pod("p", json!({"imagePullSecrets": [{"name": "registry-credentials"}]})))
        .await
        .expect("create pod");
    let names_secret = |w: &(String, String)| w.1.contains(r#""registry-credentials""#);
    let p = wait_pod(&pods, "p", "ErrImagePull", |p| waiting(p, "main").is_some()).await;
    let w = waiting(&p, "main").expect("waiting");
    assert!(["ErrImagePull", "ImagePullBackOff"].contains(&w.0.as_str()) && names_secret(&w), "{w:?}");
    let e = wait_event(&env, &ns.name, "p", "FailedToRetrieveImagePullSecret", |e| {
        e.reason.as_deref() == Some("FailedToRetrieveImagePullSecret")
    })
    .await;
    assert_eq!(
        e.message.as_deref(),
        Some(
            "Unable to retrieve some image pull secrets (registry-credentials); attempting to pull the image may not succeed."
        )
    );
    let p = wait_pod(&pods, "p", "ImagePullBackOff", |p| waiting(p, "main").is_some_and(|w| w.0 == "ImagePullBackOff"))
        .await;
    assert!(names_secret(&waiting(&p, "main").expect("waiting")), "{:?}", waiting(&p, "main"));
    wait_event(&env, &ns.name, "p", "the BackOff event", |e| e.reason.as_deref() == Some("BackOff")).await;

    guard.allow();
    let secrets = Api::<Secret>::namespaced(env.client.clone(), &ns.name);
    let auth = r#"{"auths":{"registry.invalid":{"auth":"dTpw"}}}"#;
    let secret = json!({"metadata": {"name": "registry-credentials"}, "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": auth}});
    create!(&secrets, secret);
    wait_pod(&pods, "p", "Ready once the pull secret exists", is_ready).await;
}

fn pvc(name: &str, class: Option<&str>) -> Value {
    let mut spec = json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
    if let Some(c) = class {
        spec["storageClassName"] = json!(c);
    }
    json!({"metadata": {"name": name}, "spec": spec})
}

fn with_claim(claim: &str) -> Value {
    json!({"containers": [{"name": "main", "image": IMAGE, "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]})
}

fn scheduled_false(p: &Pod) -> Option<(String, String)> {
    let c =
        p.status.as_ref()?.conditions.as_ref()?.iter().find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    Some((c.reason.clone().unwrap_or_default(), c.message.clone().unwrap_or_default()))
}

#[tokio::test]
async fn pvc_of_a_missing_class_stays_pending_and_its_pod_unschedulable() {
    let env = testenv!();
    let ns = env.namespace("rehearsal-nope").await;
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(env.client.clone(), &ns.name);
    create!(&pvcs, pvc("data", Some("nope")));
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    pods.create(&PostParams::default(), &pod("p", with_claim("data"))).await.expect("create pod");

    let e =
        wait_event(&env, &ns.name, "data", "ProvisioningFailed", |e| e.reason.as_deref() == Some("ProvisioningFailed"))
            .await;
    assert_eq!(e.message.as_deref(), Some(r#"storageclass.storage.k8s.io "nope" not found"#));
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    let p = wait_pod(&pods, "p", "Unschedulable", |p| scheduled_false(p).is_some()).await;
    let (reason, message) = scheduled_false(&p).expect("PodScheduled=False");
    assert_eq!(reason, "Unschedulable");
    assert!(message.contains("unbound immediate PersistentVolumeClaims"), "{message}");
    let claim = pvcs.get("data").await.expect("PVC");
    assert_eq!(claim.status.and_then(|s| s.phase).as_deref(), Some("Pending"));
    assert_eq!(claim.spec.and_then(|s| s.volume_name), None, "a PVC of a class that does not exist got a volume");
}

/// `class`'s PVC binds (through kube-controller-manager naming the class's provisioner and the
/// kwok stage playing it) and a pod using it becomes Ready.
async fn pvc_binds_and_its_pod_runs(env: &TestEnv, class: Option<&str>, want_class: &str) {
    let ns = env.namespace("rehearsal-pvc").await;
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(env.client.clone(), &ns.name);
    create!(&pvcs, pvc("data", class));
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    pods.create(&PostParams::default(), &pod("p", with_claim("data"))).await.expect("create pod");
    wait_pod(&pods, "p", "the pod using the PVC to be Ready", is_ready).await;
    let claim = pvcs.get("data").await.expect("PVC");
    let spec = claim.spec.expect("spec");
    assert_eq!(spec.storage_class_name.as_deref(), Some(want_class));
    assert!(spec.volume_name.is_some());
    assert_eq!(claim.status.and_then(|s| s.phase).as_deref(), Some("Bound"));
    let events = Api::<Event>::namespaced(env.client.clone(), &ns.name)
        .list(&ListParams::default().fields("involvedObject.name=data"))
        .await
        .expect("events");
    let warnings: Vec<_> = events.items.iter().filter(|e| e.type_.as_deref() == Some("Warning")).collect();
    assert!(warnings.is_empty(), "a bound PVC with warnings (e.g. ClaimLost): {warnings:?}");
}

#[tokio::test]
async fn pvc_of_an_existing_class_binds() {
    let env = testenv!();
    pvc_binds_and_its_pod_runs(&env, Some("kwok-volume"), "kwok-volume").await;
}

// ---- profiles --------------------------------------------------------------------------

fn requests(name: &str, cpu: &str, memory: &str, extra: Value) -> Pod {
    let mut spec = json!({"containers": [{"name": "main", "image": IMAGE,
        "resources": {"requests": {"cpu": cpu, "memory": memory}}}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    pod(name, spec)
}

async fn node_of(pods: &Api<Pod>, name: &str) -> String {
    let p = wait_pod(pods, name, &format!("{name} to be Ready"), is_ready).await;
    p.spec.and_then(|s| s.node_name).expect("nodeName")
}

async fn unschedulable(pods: &Api<Pod>, name: &str) -> String {
    let p = wait_pod(pods, name, &format!("{name} to be Unschedulable"), |p| scheduled_false(p).is_some()).await;
    let (reason, message) = scheduled_false(&p).expect("PodScheduled=False");
    assert_eq!(reason, "Unschedulable", "{message}");
    message
}

#[tokio::test]
async fn kind_control_plane_taint_refuses_an_untolerated_pod() {
    let env = testenv_profile!("kind");
    let ns = env.namespace("kind-taint").await;
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    let on_cp = json!({"nodeSelector": {"kubernetes.io/hostname": "kind-control-plane"}});
    pods.create(&PostParams::default(), &requests("p", "100m", "64Mi", on_cp.clone())).await.expect("create");
    let message = unschedulable(&pods, "p").await;
    assert!(message.contains("1 node(s) didn't match Pod's node affinity/selector"), "{message}");
    assert!(message.contains("1 node(s) had untolerated taint"), "{message}");
    let mut tolerated = on_cp;
    tolerated["tolerations"] = json!([{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]);
    pods.create(&PostParams::default(), &requests("q", "100m", "64Mi", tolerated)).await.expect("create");
    assert_eq!(node_of(&pods, "q").await, "kind-control-plane");
}

#[tokio::test]
async fn kind_worker_holds_four_parties_but_not_a_fifth_large_pod() {
    let env = testenv_profile!("kind");
    let worker = Api::<Node>::all(env.client.clone()).get("kind-worker").await.expect("kind-worker");
    let cpu = worker.status.and_then(|s| s.allocatable).and_then(|a| a.get("cpu").cloned()).map(|q| q.0);
    assert_eq!(cpu.as_deref(), Some("64"), "kind-worker's CPU (TESTENV_KIND_WORKER_CPU changed?)");
    let ns = env.namespace("kind-fit").await;
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    for i in 1..=4 {
        pods.create(&PostParams::default(), &requests(&format!("party-{i}"), "12", "24Gi", json!({})))
            .await
            .expect("create");
    }
    for i in 1..=4 {
        assert_eq!(node_of(&pods, &format!("party-{i}")).await, "kind-worker");
    }
    pods.create(&PostParams::default(), &requests("big", "24", "24Gi", json!({}))).await.expect("create");
    let message = unschedulable(&pods, "big").await;
    assert!(message.starts_with("0/2 nodes are available"), "{message}");
    assert!(message.contains("Insufficient cpu"), "{message}");
    assert!(message.contains("1 node(s) had untolerated taint"), "{message}");
}

#[tokio::test]
async fn kind_default_class_is_standard_and_binds_once_the_pod_is_scheduled() {
    let env = testenv_profile!("kind");
    pvc_binds_and_its_pod_runs(&env, None, "standard").await;
}

#[tokio::test]
async fn eks_party_without_the_karpenter_toleration_is_unschedulable() {
    let env = testenv_profile!("eks");
    let _pools = crate::testenv::EKS_POOLS.lock().await;
    let ns = env.namespace("eks-taint").await;
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    pods.create(&PostParams::default(), &requests("p", "12", "24Gi", json!({}))).await.expect("create");
    let message = unschedulable(&pods, "p").await;
    assert!(message.starts_with("0/5 nodes are available"), "{message}");
    assert!(message.contains("4 node(s) had untolerated taint"), "the spot and zws pools: {message}");
    assert!(message.contains("Insufficient cpu"), "the untainted kms-pool is too small: {message}");
}

#[tokio::test]
async fn eks_thirteen_tolerating_parties_run_on_the_spot_pool() {
    let env = testenv_profile!("eks");
    let _pools = crate::testenv::EKS_POOLS.lock().await;
    let ns = env.namespace("eks-parties").await;
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    let tolerate = json!({"tolerations": [{"key": "karpenter.sh/nodepool", "operator": "Equal",
        "value": "kms-bench-spot-64", "effect": "NoSchedule"}]});
    for i in 1..=13 {
        pods.create(&PostParams::default(), &requests(&format!("party-{i}"), "12", "24Gi", tolerate.clone()))
            .await
            .expect("create");
    }
    let nodes = Api::<Node>::all(env.client.clone())
        .list(&ListParams::default().labels("karpenter.sh/nodepool=kms-bench-spot-64"))
        .await
        .expect("nodes");
    let spot: Vec<String> = nodes.items.iter().filter_map(|n| n.metadata.name.clone()).collect();
    assert_eq!(spot.len(), 3, "{spot:?}");
    for i in 1..=13 {
        let node = node_of(&pods, &format!("party-{i}")).await;
        assert!(spot.contains(&node), "party-{i} runs on {node}, not on the spot pool");
    }
}

#[tokio::test]
async fn eks_default_class_is_gp3_and_binds() {
    let env = testenv_profile!("eks");
    pvc_binds_and_its_pod_runs(&env, None, "gp3").await;
}
