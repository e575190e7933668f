//! The simulated nodes: Ready, EKS-like labels, loopback addresses, the pinned version.

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};

use crate::testenv::testenv;

#[tokio::test]
async fn kube_rs_lists_ready_nodes_with_eks_labels() {
    let env = testenv!();
    let version = env.client.apiserver_version().await.expect("/version");
    if let Ok(want) = std::env::var("TESTENV_K8S_VERSION") {
        assert_eq!(version.git_version, want, "kube-apiserver is not the pinned version");
    }

    let nodes = Api::<Node>::all(env.client.clone())
        .list(&ListParams::default().labels("type=kwok"))
        .await
        .expect("list nodes");
    assert!(!nodes.items.is_empty(), "no kwok nodes");
    if let Some(n) = std::env::var("TESTENV_NODES").ok().and_then(|n| n.parse::<usize>().ok()) {
        assert_eq!(nodes.items.len(), n, "TESTENV_NODES");
    }
    for node in &nodes.items {
        let name = node.metadata.name.as_deref().expect("name");
        let labels = node.metadata.labels.as_ref().expect("labels");
        for key in ["eks.amazonaws.com/nodegroup", "node.kubernetes.io/instance-type", "topology.kubernetes.io/zone"] {
            assert!(labels.get(key).is_some_and(|v| !v.is_empty()), "{name}: no label {key}");
        }
        assert_eq!(labels.get("kubernetes.io/hostname").map(String::as_str), Some(name));
        let spec = node.spec.as_ref().expect("spec");
        assert!(spec.taints.as_ref().is_none_or(Vec::is_empty), "{name} has taints");

        let status = node.status.as_ref().expect("status");
        let ready = status.conditions.iter().flatten().find(|c| c.type_ == "Ready");
        assert_eq!(ready.map(|c| c.status.as_str()), Some("True"), "{name} is not Ready");
        let ips: Vec<_> =
            status.addresses.iter().flatten().filter(|a| a.type_ == "InternalIP").map(|a| a.address.as_str()).collect();
        assert_eq!(ips, ["127.0.0.1"], "{name}: InternalIP must be loopback");
        let pods = status.allocatable.as_ref().and_then(|a| a.get("pods")).map(|q| q.0.as_str());
        assert!(pods.is_some_and(|p| p.parse::<u32>().is_ok_and(|p| p > 0)), "{name}: no pods");
    }
}
