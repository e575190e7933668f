//! A wait survives its watch breaking and having to relist.
//!
//! How the watch is broken without disturbing the other tests that share the cluster: the
//! waited-for object is a custom resource of a CRD group only this test uses. Changing that
//! CRD's spec makes the API server replace the CRD's storage: every open watch on it ends, and
//! the new watch cache starts at the current resource version, so re-watching from the old one
//! answers 410 Gone ("too old resource version"), exactly as after an API server restart. The
//! watcher must then list again and carry on. The wait runs in this process, so the cluster's
//! own watch counters show the relist (the API server's metrics cannot single out this wait's
//! namespace-wide list: the namespace controller lists every group of the namespaces other
//! tests delete). Restarting kube-apiserver itself would break every other test running at the
//! same time (tests/it/faults.rs does it on a private environment).

use kmsctl_k8s::{Cluster, ConnectOptions};
use serde_json::json;

use super::{Crd, cond};
use crate::testenv::testenv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_resumes_after_its_watch_is_relisted() {
    let env = testenv!();
    let ns = env.namespace("relist").await;
    let crd = Crd::create(&env, "relist").await;
    crd.widget(&env, &ns.name, "w", json!([cond("Ready", "False", "Provisioning", "")])).await;

    let opts = ConnectOptions { kubeconfig: Some(env.kubeconfig.clone()), ..Default::default() };
    let cluster = Cluster::connect(&opts).await.expect("connect");
    let steps = async {
        assert_eq!(cluster.watch_stats().relists, 0, "one initial list");
        super::break_watches(&env, &crd).await;
        // (The object must not become ready before the relist, or the old watch could deliver it.)
        super::relisted(&cluster).await;
        // Still waiting, now on the new watch: the object becoming ready ends the wait.
        crd.set_conditions(&env, &ns.name, "w", json!([cond("Ready", "True", "Relisted", "")])).await;
    };
    let ready = super::wait_beside(&cluster, &crd, &ns.name, "w", steps).await;
    assert_eq!(ready[0]["status"]["conditions"][0]["reason"], "Relisted");
    let stats = cluster.watch_stats();
    assert_eq!((stats.started, stats.open), (1, 0), "one watch, closed when the wait ended");
}
