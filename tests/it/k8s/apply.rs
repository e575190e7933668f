//! `kc.apply` / `kc.apply_file`: ordering (Namespaces and CRDs first, CRDs Established before
//! the custom resources that need them), ownership labels, server-side apply with the kmsctl
//! field manager, directories of manifests.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ObjectMeta};
use serde_json::{Value, json};

use super::{Cleanup, Crd, crd_doc, finish, logged, named_playbook, playbook};
use crate::testenv::{testenv, unique};

fn check_owned(meta: &ObjectMeta, what: &str) {
    let labels = meta.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("app.kubernetes.io/managed-by").map(String::as_str), Some("kmsctl"), "{what}: {labels:?}");
    assert_eq!(labels.get("kmsctl.io/playbook").map(String::as_str), Some("deploy-kms"), "{what}: {labels:?}");
    let managers: Vec<(String, String)> = meta
        .managed_fields
        .iter()
        .flatten()
        .map(|m| (m.manager.clone().unwrap_or_default(), m.operation.clone().unwrap_or_default()))
        .collect();
    assert!(managers.contains(&("kmsctl".into(), "Apply".into())), "{what}: server-side apply by kmsctl: {managers:?}");
}

/// One manifest, written in the worst order: the custom resource first, its CRD and its
/// Namespace last. kmsctl applies the Namespace and the CRD first, waits until the CRD is
/// Established, refreshes discovery, then applies the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_and_its_custom_resource_apply_in_one_manifest() {
    let env = testenv!();
    let ns = unique("apply-order");
    let _ns_cleanup = Cleanup::new(&env, "namespace", &ns);
    let (group, _crd_cleanup) = Crd::reserve(&env, "apply-order");
    let docs: Vec<Value> = vec![
        json!({"apiVersion": format!("{group}/v1"), "kind": "Widget", "metadata": {"name": "w1", "namespace": ns},
               "spec": {"size": 3}}),
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": ns},
               "data": {"mode": "threshold"}}),
        crd_doc(&group),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    ];
    let manifest: String =
        docs.iter().map(|d| format!("---\n{}\n", serde_json::to_string_pretty(d).unwrap())).collect();
    let r = finish(
        named_playbook(
            &env,
            "deploy-kms.rhai",
            r#"
            import "k8s" as k8s;
            import "log" as log;
            let kc = k8s::connect();
            let applied = kc.apply_file("all.yaml");
            log::info(`applied: ${applied.map(|o| o.kind)}`);
            let w = kc.get("Widget", "w1", #{ namespace: "@NS@", api_version: "@GROUP@/v1" });
            log::info(`widget: ${w.spec.size}`);
            "#,
            &[("NS", &ns), ("GROUP", &group)],
        )
        .file("all.yaml", &manifest),
    )
    .await;
    r.code(0);
    let ev = r.events();
    assert_eq!(logged(&ev, "applied: "), r#"["Widget", "ConfigMap", "CustomResourceDefinition", "Namespace"]"#);
    assert_eq!(logged(&ev, "widget: "), "3");

    let c = env.client.clone();
    let nso = Api::<Namespace>::all(c.clone()).get(&ns).await.expect("Namespace");
    check_owned(&nso.metadata, "Namespace");
    let cm = Api::<ConfigMap>::namespaced(c.clone(), &ns).get("settings").await.expect("ConfigMap");
    check_owned(&cm.metadata, "ConfigMap");
    let crds = Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(
        c.clone(),
    );
    check_owned(&crds.get(&format!("widgets.{group}")).await.expect("CRD").metadata, "CRD");
    let gvk = GroupVersionKind::gvk(&group, "v1", "Widget");
    let widgets = Api::<DynamicObject>::namespaced_with(c, &ns, &ApiResource::from_gvk_with_plural(&gvk, "widgets"));
    check_owned(&widgets.get("w1").await.expect("Widget").metadata, "Widget");
}

/// A directory: every .yaml/.yml/.json file, in name order; a List is expanded; other files
/// are not manifests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_file_with_a_directory_applies_each_manifest_file() {
    let env = testenv!();
    let ns = env.namespace("apply-dir").await;
    let cm =
        |name: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{from: {name}}}\n");
    let list = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c1"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c2"}},
    ]});
    let r = finish(
        playbook(
            &env,
            r#"
            import "k8s" as k8s;
            import "log" as log;
            let kc = k8s::connect();
            let applied = kc.apply_file("manifests", #{ namespace: "@NS@", labels: #{ tier: "config" } });
            log::info(`applied: ${applied.map(|o| o.metadata.name)}`);
            "#,
            &[("NS", &ns.name)],
        )
        .file("manifests/b.yml", &cm("b1"))
        .file("manifests/a.yaml", &format!("{}---\n{}", cm("a1"), cm("a2")))
        .file("manifests/c.json", &list.to_string())
        .file("manifests/README.md", &cm("readme"))
        .file("manifests/notes.txt", &cm("notes")),
    )
    .await;
    r.code(0);
    assert_eq!(logged(&r.events(), "applied: "), r#"["a1", "a2", "b1", "c1", "c2"]"#);
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name);
    for name in ["a1", "a2", "b1", "c1", "c2"] {
        let c = cms.get(name).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.metadata.labels.unwrap_or_default().get("tier").map(String::as_str), Some("config"), "{name}");
    }
    for name in ["readme", "notes"] {
        assert!(cms.get_opt(name).await.expect("get").is_none(), "{name} is not a manifest file");
    }
}
