//! Objects: Secrets and ConfigMaps from maps and files (secret values redacted everywhere),
//! delete waiting for finalizers, recreate_namespace.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;

use super::{Live, all_files, finish, logged, playbook};
use crate::testenv::{testenv, unique, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_config_maps_from_maps_and_files_keep_secrets_out_of_every_output() {
    let env = testenv!();
    let ns = env.namespace("secrets").await;
    let password = unique("pw-literal");
    let key = format!("-----BEGIN KEY-----\n{}\n-----END KEY-----", unique("keydata"));
    let r = finish(
        playbook(
            &env,
            r#"
            import "k8s" as k8s;
            import "log" as log;
            let kc = k8s::connect();
            let ns = "@NS@";
            let password = "@PASSWORD@";
            let s = kc.secret(ns, "creds", #{ password: password, user: "kms" },
                #{ files: #{ "signing.key": "keys/signing.key" }, labels: #{ party: "1" } });
            let c = kc.config_map(ns, "conf", #{ mode: "threshold" }, #{ files: #{ "app.toml": "app.toml" } });
            log::info(`secret: ${s}`);
            log::info(`password: ${password}`);
            log::info(`data: ${s.data.password} ${s.data["signing.key"]}`);
            let again = kc.get("Secret", "creds", #{ namespace: ns });
            log::info(`again: ${again.data}`);
            log::info(`config: ${c.data.mode} ${c.data["app.toml"].len()}`);
            let r = "no error";
            try { kc.wait(#{ kind: "Secret", name: "creds", namespace: ns }, #{ predicate: |o| false, timeout: "1s" }); }
            catch (e) { r = e.kind; }
            log::info(`wait: ${r}`);
            "#,
            &[("NS", &ns.name), ("PASSWORD", &password)],
        )
        .file("keys/signing.key", &key)
        .file("app.toml", "[core]\nthreshold = 1\n"),
    )
    .await;
    r.code(0);
    let ev = r.events();
    assert_eq!(logged(&ev, "password: "), "***");
    assert_eq!(logged(&ev, "data: "), "*** ***");
    assert_eq!(logged(&ev, "config: "), format!("threshold {}", "[core]\nthreshold = 1\n".len()));
    assert_eq!(logged(&ev, "wait: "), "timeout");

    // The values arrived.
    let s = Api::<Secret>::namespaced(env.client.clone(), &ns.name).get("creds").await.expect("Secret");
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
    let data = s.data.expect("data");
    let text = |k: &str| String::from_utf8(data[k].0.clone()).expect("utf-8");
    assert_eq!(text("password"), password);
    assert_eq!(text("user"), "kms");
    // The harness writes files with a final newline.
    assert_eq!(text("signing.key"), format!("{key}\n"));
    assert_eq!(s.metadata.labels.unwrap_or_default().get("party").map(String::as_str), Some("1"));
    let c = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name).get("conf").await.expect("ConfigMap");
    let cdata = c.data.expect("data");
    assert_eq!(cdata["mode"], "threshold");
    assert_eq!(cdata["app.toml"], "[core]\nthreshold = 1\n");

    // And went nowhere else: not stdout, stderr, events.jsonl, nor the failure report.
    let key_line = key.lines().nth(1).expect("key line").to_string();
    let mut outputs = vec![("stdout".to_string(), r.stdout.clone()), ("stderr".to_string(), r.stderr.clone())];
    outputs.extend(all_files(&r.path().join("art")).into_iter().map(|(p, t)| (p.display().to_string(), t)));
    assert!(outputs.iter().any(|(p, _)| p.ends_with("events.jsonl")));
    assert!(outputs.iter().any(|(p, _)| p.contains("failures")), "the timed-out wait wrote a report");
    for (what, text) in &outputs {
        for secret in [&password, &key_line] {
            assert!(!text.contains(secret.as_str()), "{secret} leaked into {what}:\n{text}");
        }
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(password.as_bytes());
        assert!(!text.contains(&encoded), "the base64 of the password leaked into {what}:\n{text}");
    }
}

/// delete waits until the object is gone; on timeout it names the finalizers holding it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_waits_for_finalizers_and_names_them_on_timeout() {
    let env = testenv!();
    let ns = env.namespace("finalizer").await;
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name);
    for name in ["held", "released"] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "finalizers": ["kmsctl.test/hold"]}}))
                .expect("cm");
        cms.create(&PostParams::default(), &cm).await.expect("create ConfigMap");
    }
    let release = |name: &'static str| {
        let cms = cms.clone();
        async move {
            cms.patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
                .await
                .expect("remove the finalizer");
        }
    };
    let mut live = Live::start(playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "log" as log;
        let kc = k8s::connect();
        let ns = "@NS@";
        let r = "no error";
        try { kc.delete("ConfigMap", "held", #{ namespace: ns, timeout: "2s" }); }
        catch (e) { r = `${e.kind} | ${e.message} | ${e.finalizers}`; }
        log::info(`held: ${r}`);
        let existed = kc.delete("ConfigMap", "released", #{ namespace: ns, timeout: "2m" });
        log::info(`released: ${existed} ${type_of(kc.get("ConfigMap", "released", #{ namespace: ns }))}`);
        log::info(`missing: ${kc.delete("ConfigMap", "never-was", #{ namespace: ns })}`);
        "#,
        &[("NS", &ns.name)],
    ));
    assert_eq!(
        live.log("held: ").await,
        r#"timeout | ConfigMap held still exists after 2s; blocked by finalizers: kmsctl.test/hold | ["kmsctl.test/hold"]"#
    );
    // Once kmsctl has deleted it (it is marked for deletion), let the "controller" finish.
    within(
        60,
        "kmsctl to delete the ConfigMap",
        await_condition(cms.clone(), "released", |o: Option<&ConfigMap>| {
            o.is_some_and(|o| o.metadata.deletion_timestamp.is_some())
        }),
    )
    .await
    .expect("watch ConfigMap");
    release("released").await;
    assert_eq!(live.log("released: ").await, "true ()");
    assert_eq!(live.log("missing: ").await, "false");
    live.end().await.code(0);
    assert!(cms.get_opt("held").await.expect("get").and_then(|c| c.metadata.deletion_timestamp).is_some());
    release("held").await; // so that the namespace can go
}

/// Regression: recreate_namespace deleted any namespace by name. A namespace kmsctl did not
/// create (this one is the test's) is refused, naming it and how to force; `force: true`
/// recreates it, empty and labelled as kmsctl's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_namespace_refuses_a_namespace_kmsctl_did_not_create_unless_forced() {
    let env = testenv!();
    let ns = env.namespace("recreate").await;
    let namespaces = Api::<Namespace>::all(env.client.clone());
    let old_uid = namespaces.get(&ns.name).await.expect("ns").metadata.uid.expect("uid");
    let cms = Api::<ConfigMap>::namespaced(env.client.clone(), &ns.name);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "leftover"}})).expect("cm");
    cms.create(&PostParams::default(), &cm).await.expect("create ConfigMap");

    let r = finish(playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "log" as log;
        let kc = k8s::connect();
        try { kc.recreate_namespace("@NS@"); } catch (e) { log::info(`refused: ${e.kind}: ${e.message}`); }
        let n = kc.recreate_namespace("@NS@", #{ labels: #{ team: "kms" }, timeout: "2m", force: true });
        log::info(`uid: ${n.metadata.uid}`);
        log::info(`team: ${n.metadata.labels.team}`);
        log::info(`left: ${kc.list("ConfigMap", #{ namespace: "@NS@", fields: "metadata.name=leftover" }).len()}`);
        "#,
        &[("NS", &ns.name)],
    ))
    .await;
    r.code(0);
    let ev = r.events();
    assert_eq!(
        logged(&ev, "refused: "),
        format!(
            "conflict: namespace {} was not created by kmsctl (no label app.kubernetes.io/managed-by=kmsctl): \
             refusing to delete it; pass #{{ force: true }} to recreate it anyway",
            ns.name
        )
    );
    let new_uid = logged(&ev, "uid: ");
    assert_ne!(new_uid, old_uid, "a new namespace");
    assert_eq!(logged(&ev, "team: "), "kms");
    assert_eq!(logged(&ev, "left: "), "0");
    let n = namespaces.get(&ns.name).await.expect("ns");
    assert_eq!(n.metadata.uid.as_deref(), Some(new_uid.as_str()));
    let labels = n.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("kms"));
    assert_eq!(labels.get("app.kubernetes.io/managed-by").map(String::as_str), Some("kmsctl"));
    assert!(cms.get_opt("leftover").await.expect("get").is_none());
}

/// Regression: ensure_namespace server-side applied the namespace with only the labels of the
/// call, so calling it without labels removed the labels an earlier kmsctl call had set (e.g.
/// recreate_namespace's, or a pod-security label). It now only adds what is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_namespace_keeps_labels_set_earlier() {
    let env = testenv!();
    let existing = env.namespace("ensure").await;
    let fresh = unique("ensure-new");
    let _cleanup = super::Cleanup::new(&env, "namespace", &fresh);
    let r = finish(playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "log" as log;
        let kc = k8s::connect();
        let a = kc.recreate_namespace("@FRESH@", #{ labels: #{ team: "kms" } });
        let b = kc.ensure_namespace("@FRESH@");
        let c = kc.ensure_namespace("@FRESH@", #{ labels: #{ tier: "b" } });
        log::info(`same: ${a.metadata.uid == b.metadata.uid && b.metadata.uid == c.metadata.uid}`);
        kc.ensure_namespace("@EXISTING@");
        "#,
        &[("FRESH", &fresh), ("EXISTING", &existing.name)],
    ))
    .await;
    r.code(0);
    assert_eq!(logged(&r.events(), "same: "), "true");
    let namespaces = Api::<Namespace>::all(env.client.clone());
    let labels = namespaces.get(&fresh).await.expect("ns").metadata.labels.unwrap_or_default();
    for (k, v) in [("team", "kms"), ("tier", "b"), ("app.kubernetes.io/managed-by", "kmsctl")] {
        assert_eq!(labels.get(k).map(String::as_str), Some(v), "{k}: {labels:?}");
    }
    let labels = namespaces.get(&existing.name).await.expect("ns").metadata.labels.unwrap_or_default();
    assert!(!labels.contains_key("app.kubernetes.io/managed-by"), "kmsctl did not create it: {labels:?}");
}
