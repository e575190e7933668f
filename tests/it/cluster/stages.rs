//! kwok stages beyond pods and nodes: LoadBalancer Services get an address, PVCs bind, and a
//! test can add its own Stage at run time (here: pods that fail), isolated by a label.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

use crate::testenv::{testenv, unique, within};

#[tokio::test]
async fn load_balancer_service_gets_loopback_ingress() {
    let env = testenv!();
    let ns = env.namespace("stage-lb").await;
    let services = Api::<Service>::namespaced(env.client.clone(), &ns.name);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "public"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 443}]},
    }))
    .expect("service");
    services.create(&PostParams::default(), &svc).await.expect("create Service");
    let svc = within(
        30,
        "a LoadBalancer ingress",
        await_condition(services, "public", conditions::is_service_loadbalancer_provisioned()),
    )
    .await
    .expect("watch Service")
    .expect("Service exists");
    let ingress = svc.status.and_then(|s| s.load_balancer).and_then(|lb| lb.ingress).unwrap_or_default();
    assert_eq!(ingress.first().and_then(|i| i.ip.as_deref()), Some("127.0.0.1"));
}

#[tokio::test]
async fn pvc_of_default_class_binds_and_its_volume_goes_with_it() {
    let env = testenv!();
    let ns = env.namespace("stage-pvc").await;
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(env.client.clone(), &ns.name);
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .expect("pvc");
    pvcs.create(&PostParams::default(), &pvc).await.expect("create PVC");
    let bound = |p: Option<&PersistentVolumeClaim>| {
        p.and_then(|p| p.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Bound")
    };
    let pvc = within(30, "the PVC to be Bound", await_condition(pvcs.clone(), "data", bound))
        .await
        .expect("watch PVC")
        .expect("PVC exists");
    let spec = pvc.spec.expect("spec");
    assert_eq!(spec.storage_class_name.as_deref(), Some("kwok-volume"), "the default class");
    let pv_name = spec.volume_name.expect("volumeName");
    let pvs = Api::<PersistentVolume>::all(env.client.clone());
    let pv = pvs.get(&pv_name).await.expect("PV");
    let pv_uid = pv.metadata.uid.clone().expect("uid");
    assert_eq!(pv.status.and_then(|s| s.phase).as_deref(), Some("Bound"));

    pvcs.delete("data", &DeleteParams::default()).await.expect("delete PVC");
    within(60, "the PV to be deleted", await_condition(pvs, &pv_name, conditions::is_deleted(&pv_uid)))
        .await
        .expect("watch PV");
}

#[tokio::test]
async fn a_stage_added_at_run_time_makes_labelled_pods_fail() {
    let env = testenv!();
    let ns = env.namespace("stage-fail").await;
    let stage_name = unique("pod-fail");
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "Stage"));
    let stages = Api::<DynamicObject>::all_with(env.client.clone(), &ar);
    // A positive weight wins over the baseline stages (weight 0) for the pods it selects; the
    // label keeps it away from every other test's pods.
    let stage = DynamicObject::new(&stage_name, &ar).data(json!({"spec": {
        "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
        "selector": {
            "matchLabels": {"testenv.kmsctl/stage": stage_name},
            "matchExpressions": [
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.phase", "operator": "In", "values": ["Pending", "Running"]},
            ],
        },
        "weight": 1,
        "next": {"statusTemplate": concat!(
            "{{ $now := Now }}\n",
            "phase: Failed\n",
            "conditions:\n",
            "- {type: Ready, status: \"False\", reason: PodFailed, lastTransitionTime: {{ $now | Quote }}}\n",
            "- {type: ContainersReady, status: \"False\", reason: PodFailed, lastTransitionTime: {{ $now | Quote }}}\n",
            "containerStatuses:\n",
            "{{ range .spec.containers }}\n",
            "- name: {{ .name | Quote }}\n",
            "  image: {{ .image | Quote }}\n",
            "  ready: false\n",
            "  restartCount: 0\n",
            "  state:\n",
            "    terminated: {exitCode: 1, reason: Error, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}\n",
            "{{ end }}\n",
        )},
    }}));
    stages.create(&PostParams::default(), &stage).await.expect("create Stage");

    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "doomed", "labels": {"testenv.kmsctl/stage": stage_name}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": "zama-ai/kms-core-service:v0.12.0"}]},
    }))
    .expect("pod");
    pods.create(&PostParams::default(), &pod).await.expect("create Pod");
    let failed = |p: Option<&Pod>| p.and_then(|p| p.status.as_ref()).and_then(|s| s.phase.as_deref()) == Some("Failed");
    let pod = within(30, "the pod to fail", await_condition(pods, "doomed", failed))
        .await
        .expect("watch Pod")
        .expect("Pod exists");
    let exit = pod
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|cs| cs.into_iter().next())
        .and_then(|c| c.state)
        .and_then(|s| s.terminated)
        .map(|t| t.exit_code);
    assert_eq!(exit, Some(1));
    stages.delete(&stage_name, &DeleteParams::default()).await.expect("delete Stage");
}
