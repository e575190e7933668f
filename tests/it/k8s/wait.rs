//! `kc.wait(...)`: built-in kinds reaching Ready, custom resources with Ready/Stalled
//! conditions, selector targets with `min`, predicates, the per-object and global timeouts
//! (the per-object one counted from when each object appears), `fail_fast: false`.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use super::{Crd, Live, artifact, cond, error_of, finish, logged, logs, playbook, progress, step};
use crate::testenv::testenv;

const WORKLOADS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: main, image: kms-core:test}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 3
  ordinals: {start: 5}
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec: {containers: [{name: main, image: postgres:test}]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: main, image: agent:test}]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: migrate:test}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Service
metadata: {name: public}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 443}]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_until_each_builtin_kind_is_ready() {
    let env = testenv!();
    let ns = env.namespace("wait-kinds").await;
    let r = finish(
        playbook(
            &env,
            r#"
            import "k8s" as k8s;
            import "log" as log;
            let kc = k8s::connect();
            let objs = kc.apply_file("workloads.yaml", #{ namespace: "@NS@" });
            let ready = kc.wait(objs, #{ timeout: "120s", what: "the workloads" });
            for o in ready { log::info(`ready: ${o.kind} ${o.metadata.name}`); }
            "#,
            &[("NS", &ns.name)],
        )
        .file("workloads.yaml", WORKLOADS),
    )
    .await;
    r.code(0);
    let ev = r.events();
    assert_eq!(step(&ev, "wait for the workloads")["outcome"], "ok");
    let mut ready: Vec<String> =
        logs(&ev).into_iter().filter_map(|m| m.strip_prefix("ready: ").map(String::from)).collect();
    ready.sort();
    assert_eq!(
        ready,
        [
            "DaemonSet agent",
            "Deployment web",
            "Job migrate",
            "PersistentVolumeClaim data",
            "Service public",
            "StatefulSet db"
        ]
    );

    // The wait returned only once the cluster says so.
    let c = env.client.clone();
    let d = Api::<Deployment>::namespaced(c.clone(), &ns.name).get("web").await.expect("Deployment");
    assert_eq!(d.status.and_then(|s| s.ready_replicas), Some(2));
    let s = Api::<StatefulSet>::namespaced(c.clone(), &ns.name).get("db").await.expect("StatefulSet");
    assert_eq!(s.status.map(|s| s.ready_replicas), Some(Some(3)));
    let mut pods: Vec<String> = Api::<Pod>::namespaced(c.clone(), &ns.name)
        .list(&ListParams::default().labels("app=db"))
        .await
        .expect("pods")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    pods.sort();
    assert_eq!(pods, ["db-5", "db-6", "db-7"], "spec.ordinals.start");
    let ds = Api::<DaemonSet>::namespaced(c.clone(), &ns.name).get("agent").await.expect("DaemonSet");
    let st = ds.status.expect("DaemonSet status");
    assert!(st.desired_number_scheduled > 0);
    assert_eq!(st.number_ready, st.desired_number_scheduled);
    let job = Api::<Job>::namespaced(c.clone(), &ns.name).get("migrate").await.expect("Job");
    assert_eq!(job.status.and_then(|s| s.succeeded), Some(1));
    let pvc = Api::<PersistentVolumeClaim>::namespaced(c.clone(), &ns.name).get("data").await.expect("PVC");
    assert_eq!(pvc.status.and_then(|s| s.phase).as_deref(), Some("Bound"));
    let svc = Api::<Service>::namespaced(c, &ns.name).get("public").await.expect("Service");
    let ingress = svc.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).unwrap_or_default();
    assert_eq!(ingress.first().and_then(|i| i.ip.as_deref()), Some("127.0.0.1"));
}

/// A CRD, then custom resources whose controller (the test) reports through Ready and Stalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_follow_ready_and_stalled_conditions() {
    let env = testenv!();
    let ns = env.namespace("wait-cr").await;
    let crd = Crd::create(&env, "wait-cr").await;
    let provisioning = json!([cond("Ready", "False", "Provisioning", "creating the widget")]);
    for name in ["ok", "stuck"] {
        crd.widget(&env, &ns.name, name, provisioning.clone()).await;
    }
    crd.widget(&env, &ns.name, "flaky", json!([cond("Stalled", "True", "QuotaExceeded", "no widgets left")])).await;

    let mut live = Live::start(playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "log" as log;
        let kc = k8s::connect();
        let crd = kc.wait(#{ kind: "CustomResourceDefinition", name: "@CRD@" });
        log::info(`crd: ${crd[0].metadata.name}`);
        let w = |name| #{ api_version: "@AV@", kind: "Widget", namespace: "@NS@", name: name };
        kc.wait(w.call("ok"), #{ timeout: "60s" });
        log::info("ok: ready");
        let r = "no error";
        try { kc.wait(w.call("stuck"), #{ timeout: "60s" }); } catch (e) { r = `${e.kind}: ${e.message}`; }
        log::info(`stuck: ${r}`);
        kc.wait(w.call("flaky"), #{ timeout: "60s", fail_fast: false });
        log::info("flaky: ready");
        "#,
        &[("NS", &ns.name), ("CRD", &crd.name), ("AV", &crd.api_version)],
    ));
    assert_eq!(live.log("crd: ").await, crd.name);

    let ok = format!("Widget {}/ok", ns.name);
    assert_eq!(
        live.progress(&ok).await,
        format!("0/1 ready; waiting for {ok} (not ready: Provisioning: creating the widget)")
    );
    crd.set_conditions(&env, &ns.name, "ok", json!([cond("Ready", "True", "Done", "")])).await;
    live.log("ok: ready").await;

    let stuck = format!("Widget {}/stuck", ns.name);
    live.progress(&stuck).await;
    crd.set_conditions(
        &env,
        &ns.name,
        "stuck",
        json!([
            cond("Stalled", "True", "QuotaExceeded", "no widgets left"),
            cond("Ready", "False", "Provisioning", "")
        ]),
    )
    .await;
    assert_eq!(live.log("stuck: ").await, format!("failed: {stuck}: stalled: QuotaExceeded: no widgets left"));

    // Without fail_fast a failed object is only pending: it may recover.
    let flaky = format!("Widget {}/flaky", ns.name);
    assert_eq!(
        live.progress(&flaky).await,
        format!("0/1 ready; waiting for {flaky} (stalled: QuotaExceeded: no widgets left)")
    );
    crd.set_conditions(&env, &ns.name, "flaky", json!([cond("Ready", "True", "Done", "")])).await;
    live.log("flaky: ready").await;
    live.end().await.code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_targets_wait_for_a_minimum_count() {
    let env = testenv!();
    let ns = env.namespace("wait-min").await;
    let r = finish(playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "log" as log;
        let kc = k8s::connect();
        let ns = "@NS@";
        kc.apply(#{ apiVersion: "apps/v1", kind: "Deployment", metadata: #{ name: "sel" },
            spec: #{ replicas: 2, selector: #{ matchLabels: #{ app: "sel" } },
                template: #{ metadata: #{ labels: #{ app: "sel" } },
                    spec: #{ containers: [#{ name: "main", image: "kms-core:test" }] } } } }, #{ namespace: ns });
        let target = #{ kind: "Pod", namespace: ns, selector: "app=sel", min: 3 };
        let r = "no error";
        try { kc.wait(target, #{ timeout: "3s" }); } catch (e) { r = `${e.kind}: ${e.message}`; }
        log::info(`two replicas: ${r}`);
        kc.patch("Deployment", "sel", #{ spec: #{ replicas: 3 } }, #{ namespace: ns });
        let pods = kc.wait(target, #{ timeout: "60s" });
        log::info(`three replicas: ${pods.len()} pods, ${pods.filter(|p| p.status.phase == "Running").len()} running`);
        "#,
        &[("NS", &ns.name)],
    ))
    .await;
    r.code(0);
    let ev = r.events();
    let two = logged(&ev, "two replicas: ");
    assert!(
        two.starts_with(&format!(
            "timeout: timed out after 3s waiting for 1 object: 1 of 1 not ready: Pod {}/[app=sel] (",
            ns.name
        )) && two.ends_with(" of at least 3 found)"),
        "{two}"
    );
    assert_eq!(logged(&ev, "three replicas: "), "3 pods, 3 running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_predicate_replaces_the_built_in_rules() {
    let env = testenv!();
    let ns = env.namespace("wait-pred").await;
    let r = finish(playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "log" as log;
        let kc = k8s::connect();
        let ns = "@NS@";
        kc.config_map(ns, "flag", #{ phase: "start" });
        let target = #{ kind: "ConfigMap", name: "flag", namespace: ns };
        let r = "no error";
        try { kc.wait(target, #{ predicate: |o| o.data.phase == "done", timeout: "2s" }); } catch (e) { r = `${e.kind}: ${e.message}`; }
        log::info(`before: ${r}`);
        kc.patch("ConfigMap", "flag", #{ data: #{ phase: "done" } }, #{ namespace: ns });
        let got = kc.wait(target, #{ predicate: |o| o.data.phase == "done", timeout: "30s" });
        log::info(`after: ${got[0].data.phase}`);
        let f = "no error";
        try {
            kc.wait(target, #{ predicate: |o| #{ failed: o.data.phase == "done", message: `phase is ${o.data.phase}` }, timeout: "30s" });
        } catch (e) { f = `${e.kind}: ${e.message}`; }
        log::info(`map: ${f}`);
        "#,
        &[("NS", &ns.name)],
    ))
    .await;
    r.code(0);
    let ev = r.events();
    let cm = format!("ConfigMap {}/flag", ns.name);
    assert_eq!(
        logged(&ev, "before: "),
        format!("timeout: timed out after 2s waiting for 1 object: 1 of 1 not ready: {cm} (waiting for the predicate)")
    );
    assert_eq!(logged(&ev, "after: "), "done");
    assert_eq!(logged(&ev, "map: "), format!("failed: {cm}: phase is done"));
}

/// A PVC of a StorageClass that does not exist stays Pending: the global timeout and the
/// per-object timeout both end the run with exit code 3, naming it, and write its report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_exit_3_and_name_what_is_pending() {
    let env = testenv!();
    let ns = env.namespace("wait-timeout").await;
    let script = r#"
        import "k8s" as k8s;
        let kc = k8s::connect();
        let ns = "@NS@";
        kc.config_map(ns, "ok", #{ a: "1" });
        kc.apply(#{ apiVersion: "v1", kind: "PersistentVolumeClaim", metadata: #{ name: "stuck" },
            spec: #{ storageClassName: "no-such-class", accessModes: ["ReadWriteOnce"],
                resources: #{ requests: #{ storage: "1Gi" } } } }, #{ namespace: ns });
        kc.wait([#{ kind: "ConfigMap", name: "ok", namespace: ns },
                 #{ kind: "PersistentVolumeClaim", name: "stuck", namespace: ns }], @OPTS@);
        "#;
    let pvc = format!("PersistentVolumeClaim {}/stuck", ns.name);

    let r = finish(playbook(&env, script, &[("NS", &ns.name), ("OPTS", r#"#{ timeout: "2s" }"#)])).await;
    r.code(3);
    let ev = r.events();
    assert_eq!(
        error_of(&ev),
        ("timeout".into(), format!("timed out after 2s waiting for 2 objects: 1 of 2 not ready: {pvc} (pending)"))
    );
    assert_eq!(step(&ev, "wait for 2 objects")["outcome"], "failed");
    let report_dir = format!("failures/persistentvolumeclaim-{}-stuck", ns.name);
    assert!(artifact(&r.path(), &format!("{report_dir}/summary.txt")).starts_with(&format!("{pvc}: pending\n")));
    let report: serde_json::Value =
        serde_json::from_str(&artifact(&r.path(), &format!("{report_dir}/report.json"))).expect("report.json");
    assert_eq!(report["object"]["name"], "stuck");

    let r = finish(playbook(
        &env,
        script,
        &[("NS", &ns.name), ("OPTS", r#"#{ per_object_timeout: "2s", timeout: "10m" }"#)],
    ))
    .await;
    r.code(3);
    let ev = r.events();
    assert_eq!(error_of(&ev), ("timeout".into(), format!("{pvc} not ready after 2s: pending")));
    let ms = step(&ev, "wait for 2 objects")["duration_ms"].as_u64().expect("duration");
    assert!((2000..60_000).contains(&ms), "per-object timeout after {ms}ms");
    assert!(progress(&ev).iter().any(|p| p.contains(&format!("{pvc} (pending)"))), "{:?}", progress(&ev));
}

/// `per_object_timeout` is each object's own: an object created during the wait gets its full
/// time from when it appears (it used to be a second deadline from the start of the wait,
/// which failed here with "not found yet").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_object_timeout_counts_from_when_the_object_appears() {
    let env = testenv!();
    let ns = env.namespace("wait-per-object").await;
    let mut live = Live::start(playbook(
        &env,
        r#"
        import "k8s" as k8s;
        let kc = k8s::connect();
        kc.wait(#{ kind: "PersistentVolumeClaim", name: "late", namespace: "@NS@" },
            #{ per_object_timeout: "3s", timeout: "2m" });
        "#,
        &[("NS", &ns.name)],
    ));
    let pvc = format!("PersistentVolumeClaim {}/late", ns.name);
    live.progress(&format!("{pvc} (not found yet)")).await;
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let claim: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {"name": "late"},
        "spec": {"storageClassName": "no-such-class", "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}}}))
    .expect("pvc");
    let created = std::time::Instant::now();
    Api::<PersistentVolumeClaim>::namespaced(env.client.clone(), &ns.name)
        .create(&PostParams::default(), &claim)
        .await
        .expect("create PVC");
    let ended = live.end().await;
    ended.code(3);
    assert_eq!(error_of(&ended.events), ("timeout".into(), format!("{pvc} not ready after 3s: pending")));
    assert!(created.elapsed().as_millis() >= 2500, "3s after it appeared, not after the wait started");
}
