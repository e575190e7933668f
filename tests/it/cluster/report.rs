//! The failure report against the real local cluster: a Deployment whose pod a kwok Stage
//! drives into CrashLoopBackOff, reported the way a failed wait reports it. Also: the readiness
//! rules agree with what real controllers write into status.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim, Pod, Service};
use kmsctl_k8s::{FailureReport, Health, RuleOptions, assess, pod_blocker};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

use crate::testenv::{testenv, unique, within};

/// kwok has no kubelet: this Stage plays one whose container keeps exiting with code 1.
fn crash_loop_stage(name: &str) -> Value {
    json!({"spec": {
        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
        "selector": {
            "matchLabels": {"testenv.kmsctl/stage": name},
            "matchExpressions": [
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
            ],
        },
        "weight": 1,
        "next": {"statusTemplate": concat!(
            "{{ $now := Now }}\n",
            "phase: Running\n",
            "startTime: {{ $now | Quote }}\n",
            "conditions:\n",
            "- {type: PodScheduled, status: \"True\", lastTransitionTime: {{ $now | Quote }}}\n",
            "- {type: Initialized, status: \"True\", lastTransitionTime: {{ $now | Quote }}}\n",
            "- {type: Ready, status: \"False\", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}\n",
            "- {type: ContainersReady, status: \"False\", reason: ContainersNotReady, lastTransitionTime: {{ $now | Quote }}}\n",
            "containerStatuses:\n",
            "{{ range .spec.containers }}\n",
            "- name: {{ .name | Quote }}\n",
            "  image: {{ .image | Quote }}\n",
            "  ready: false\n",
            "  started: false\n",
            "  restartCount: 4\n",
            "  state:\n",
            "    waiting: {reason: CrashLoopBackOff, message: \"back-off 1m20s restarting failed container\"}\n",
            "  lastState:\n",
            "    terminated: {exitCode: 1, reason: Error, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}\n",
            "{{ end }}\n",
        )},
    }})
}

#[tokio::test]
async fn report_of_a_crash_looping_deployment_pod() {
    let env = testenv!();
    let ns = env.namespace("report").await;
    let stage_name = unique("crash-loop");
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Stage"));
    let stages = Api::<DynamicObject>::all_with(env.client.clone(), &ar);
    let stage = DynamicObject::new(&stage_name, &ar).data(crash_loop_stage(&stage_name));
    stages.create(&PostParams::default(), &stage).await.expect("create Stage");

    let deployments = Api::<Deployment>::namespaced(env.client.clone(), &ns.name);
    let deploy: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "kms-core"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "kms-core"}},
            "template": {
                "metadata": {"labels": {"app": "kms-core", "testenv.kmsctl/stage": stage_name}},
                "spec": {"containers": [{"name": "kms-core", "image": "zama-ai/kms-core-service:v0.12.0"}]},
            },
        },
    }))
    .expect("deployment");
    deployments.create(&PostParams::default(), &deploy).await.expect("create Deployment");

    // The blocking pod, as the waiter finds it: a pod of the Deployment with a fatal state.
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    let opts = RuleOptions::default();
    let pod = within(30, "a crash-looping pod", async {
        loop {
            let list = pods.list(&ListParams::default().labels("app=kms-core")).await.expect("list pods");
            let found = list
                .items
                .iter()
                .map(|p| serde_json::to_value(p).expect("pod json"))
                .find(|p| pod_blocker(p, k8s_openapi::jiff::Timestamp::now(), &opts).is_some());
            if let Some(p) = found {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    let pod_name = pod["metadata"]["name"].as_str().expect("pod name").to_string();
    let rs_name = pod["metadata"]["ownerReferences"][0]["name"].as_str().expect("owner").to_string();
    let blocker = pod_blocker(&pod, k8s_openapi::jiff::Timestamp::now(), &opts).expect("blocker");
    assert_eq!(blocker, "CrashLoopBackOff in container kms-core (exit code 1, 4 restarts)");

    // No kubelet means no BackOff event: post the one it would have posted.
    let events = Api::<Event>::namespaced(env.client.clone(), &ns.name);
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let backoff: Event = serde_json::from_value(json!({
        "metadata": {"name": format!("{pod_name}.backoff")},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "namespace": ns.name,
                           "uid": pod["metadata"]["uid"], "fieldPath": "spec.containers{kms-core}"},
        "type": "Warning",
        "reason": "BackOff",
        "message": format!("Back-off restarting failed container kms-core in pod {pod_name}"),
        "count": 5,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "source": {"component": "kubelet"},
    }))
    .expect("event");
    events.create(&PostParams::default(), &backoff).await.expect("create Event");

    let reason = format!("pod {pod_name}: {blocker}");
    let r = FailureReport::collect(&env.client, &pod, &reason).await;

    assert_eq!(r.object.kind, "Pod");
    assert_eq!(r.object.name, pod_name);
    let chain: Vec<(&str, &str)> = r.owners.iter().map(|o| (o.kind.as_str(), o.name.as_str())).collect();
    assert_eq!(chain, [("ReplicaSet", rs_name.as_str()), ("Deployment", "kms-core")], "notes: {:?}", r.notes);
    assert_eq!(r.pods.len(), 1);
    let p = &r.pods[0];
    assert_eq!(p.name, pod_name);
    assert!(p.node.as_deref().is_some_and(|n| !n.is_empty()), "scheduled on a node");
    let c = &p.containers[0];
    assert_eq!((c.name.as_str(), c.state.as_str()), ("kms-core", "waiting: CrashLoopBackOff"));
    assert_eq!(c.last_state.as_deref(), Some("terminated: Error (exit code 1)"));
    assert_eq!(c.restart_count, 4);
    // Current and previous logs were asked for; kwok may not serve them, which is recorded.
    let asked: Vec<bool> = p.logs.iter().map(|l| l.previous).collect();
    assert_eq!(asked, [false, true]);
    assert!(p.logs.iter().all(|l| !l.lines.is_empty() || l.error.is_some()), "{:?}", p.logs);
    assert!(r.events.iter().any(|e| e.reason == "BackOff" && e.type_ == "Warning" && e.count == 5));
    assert!(
        r.events.iter().any(|e| e.object == "Deployment kms-core" && e.reason == "ScalingReplicaSet"),
        "the owners' events too: {:?}",
        r.events
    );

    let at = |reason: &str| r.events.iter().position(|e| e.reason == reason).unwrap_or(usize::MAX);
    assert!(
        at("ScalingReplicaSet") < at("SuccessfulCreate") && at("SuccessfulCreate") < at("Scheduled"),
        "{:?}",
        r.events
    );

    let summary = r.summary();
    insta::with_settings!({filters => vec![
        (regex_escape(&pod_name), "[pod]"),
        (regex_escape(&rs_name), "[rs]"),
        (regex_escape(&ns.name), "[ns]"),
    ]}, {
        insta::assert_snapshot!(summary, @r"
        Pod [ns]/[pod]: pod [pod]: CrashLoopBackOff in container kms-core (exit code 1, 4 restarts)
          owners: ReplicaSet [rs] → Deployment kms-core
          pod [pod]: container kms-core waiting: CrashLoopBackOff, last terminated: Error (exit code 1), 4 restarts
          event Warning BackOff (x5) on Pod [pod]: Back-off restarting failed container kms-core in pod [pod]
        ");
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let written = r.write(dir.path(), &kmsctl_host::Redactor::new()).expect("write report");
    assert_eq!(written, dir.path().join(format!("pod-{}-{pod_name}", ns.name)));
    let json: Value = serde_json::from_str(&std::fs::read_to_string(written.join("report.json")).expect("report.json"))
        .expect("json");
    assert_eq!(json["pods"][0]["containers"][0]["state"], "waiting: CrashLoopBackOff");
    assert_eq!(std::fs::read_to_string(written.join("summary.txt")).expect("summary.txt"), summary);

    // Reported from the Deployment instead: its pods are found by its selector.
    let deploy = serde_json::to_value(deployments.get("kms-core").await.expect("get Deployment")).expect("json");
    assert_eq!(assess(&deploy, k8s_openapi::jiff::Timestamp::now(), &opts).health, Health::Progressing);
    let r = FailureReport::collect(&env.client, &deploy, "timed out after 5m").await;
    assert!(r.owners.is_empty());
    assert_eq!(r.pods.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), [pod_name.as_str()]);
    assert!(r.events.iter().any(|e| e.reason == "SuccessfulCreate" && e.object == format!("ReplicaSet {rs_name}")));
    assert!(r.summary().starts_with(&format!("Deployment {}/kms-core: timed out after 5m\n", ns.name)));

    stages.delete(&stage_name, &DeleteParams::default()).await.expect("delete Stage");
}

/// Poll until `get` assesses as Ready; returns the last message.
async fn until_ready<F, Fut>(what: &str, mut get: F) -> String
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let opts = RuleOptions::default();
    let mut last = String::new();
    let done = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let a = assess(&get().await, k8s_openapi::jiff::Timestamp::now(), &opts);
            assert_ne!(a.health, Health::Failed, "{what}: {}", a.message);
            last = a.message;
            if a.health == Health::Ready {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    assert!(done.is_ok(), "{what} not ready after 60s: {last}");
    last
}

fn v<T: k8s_openapi::serde::Serialize>(o: T) -> Value {
    serde_json::to_value(o).expect("json")
}

#[tokio::test]
async fn rules_agree_with_real_controllers() {
    let env = testenv!();
    let ns = env.namespace("rules").await;
    let c = env.client.clone();
    let pp = PostParams::default();
    let deployments = Api::<Deployment>::namespaced(c.clone(), &ns.name);
    let statefulsets = Api::<StatefulSet>::namespaced(c.clone(), &ns.name);
    let jobs = Api::<Job>::namespaced(c.clone(), &ns.name);
    let services = Api::<Service>::namespaced(c.clone(), &ns.name);
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(c.clone(), &ns.name);
    let template = |app: &str| {
        json!({"metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": "zama-ai/kms-core-service:v0.12.0"}]}})
    };

    let deploy: Deployment = serde_json::from_value(json!({"metadata": {"name": "web"}, "spec": {
        "replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": template("web")}}))
    .expect("deploy");
    let created = deployments.create(&pp, &deploy).await.expect("create Deployment");
    let opts = RuleOptions::default();
    let now = k8s_openapi::jiff::Timestamp::now;
    assert_eq!(assess(&v(&created), now(), &opts).health, Health::Progressing, "no status yet");
    // Ordinals 5, 6, 7.
    let sts: StatefulSet = serde_json::from_value(json!({"metadata": {"name": "db"}, "spec": {
        "replicas": 3, "ordinals": {"start": 5}, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
        "template": template("db")}}))
    .expect("sts");
    statefulsets.create(&pp, &sts).await.expect("create StatefulSet");
    let job: Job = serde_json::from_value(json!({"metadata": {"name": "migrate"}, "spec": {
        "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox"}]}}}}))
    .expect("job");
    jobs.create(&pp, &job).await.expect("create Job");
    let svc: Service = serde_json::from_value(json!({"metadata": {"name": "public"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 443}]}}))
    .expect("svc");
    services.create(&pp, &svc).await.expect("create Service");
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
    .expect("pvc");
    pvcs.create(&pp, &pvc).await.expect("create PVC");

    assert_eq!(
        until_ready("Deployment", || async { v(deployments.get("web").await.expect("get")) }).await,
        "2 of 2 replicas ready"
    );
    assert_eq!(
        until_ready("StatefulSet", || async { v(statefulsets.get("db").await.expect("get")) }).await,
        "3 of 3 replicas ready"
    );
    assert!(until_ready("Job", || async { v(jobs.get("migrate").await.expect("get")) }).await.starts_with("completed"));
    assert_eq!(
        until_ready("Service", || async { v(services.get("public").await.expect("get")) }).await,
        "address 127.0.0.1"
    );
    assert_eq!(until_ready("PVC", || async { v(pvcs.get("data").await.expect("get")) }).await, "bound");

    // A new rollout: the object the API server returns has the new generation and the old
    // (complete-looking) status, which must not count as ready.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "zama-ai/kms-core-service:v0.13.0"}]}}}});
    let patched = deployments.patch("web", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("patch");
    assert_eq!(assess(&v(&patched), now(), &opts).health, Health::Progressing);
    assert_eq!(
        until_ready("Deployment rollout", || async { v(deployments.get("web").await.expect("get")) }).await,
        "2 of 2 replicas ready"
    );

    // A partitioned StatefulSet rollout. The controller counts the partition from the start
    // ordinal: partition 2 updates ordinal 7 only (the API docs' "ordinal >= partition" would
    // update all three). The revisions never converge; ready means that one pod is updated.
    let patch = json!({"spec": {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
        "template": {"spec": {"containers": [{"name": "main", "image": "zama-ai/kms-core-service:v0.13.0"}]}}}});
    statefulsets.patch("db", &PatchParams::default(), &Patch::Strategic(&patch)).await.expect("patch");
    assert_eq!(
        until_ready("StatefulSet partition", || async { v(statefulsets.get("db").await.expect("get")) }).await,
        "3 of 3 replicas ready, 1 updated (partition 2: ordinals 7 and up)"
    );
    let st = v(statefulsets.get("db").await.expect("get"));
    assert_eq!(st["status"]["updatedReplicas"], 1);
    let update_rev = st["status"]["updateRevision"].as_str().expect("updateRevision").to_string();
    assert_ne!(st["status"]["currentRevision"].as_str(), Some(update_rev.as_str()));
    let pods = Api::<Pod>::namespaced(c.clone(), &ns.name)
        .list(&ListParams::default().labels("app=db"))
        .await
        .expect("list pods");
    let mut updated: Vec<(String, bool)> = pods
        .items
        .iter()
        .map(|p| {
            let rev = p.metadata.labels.as_ref().and_then(|l| l.get("controller-revision-hash"));
            (p.metadata.name.clone().unwrap_or_default(), rev == Some(&update_rev))
        })
        .collect();
    updated.sort();
    assert_eq!(updated, [("db-5".into(), false), ("db-6".into(), false), ("db-7".into(), true)]);
}

fn regex_escape(s: &str) -> &str {
    // Kubernetes names are [a-z0-9.-]; only '.' is special, and generated names have none.
    assert!(!s.contains('.'), "{s}");
    s
}
