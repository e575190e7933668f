//! `playbooks/canary.rhai` (`std/canary`) on the test cluster: a Deployment behind a Service
//! gets a canary of a new image; an HTTP endpoint served by the test (on loopback, its status
//! switched by the test) and the canary's own pods decide. Promoted, rolled back within the
//! threshold, rolled back at once on a crash loop, resumed after an interruption, a second run
//! refused, bad flags refused before anything changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::json;

use crate::harness::Kmsctl;
use crate::k8s::{error_of, finish, logs};
use crate::testenv::{TestEnv, testenv};

/// `kmsctl run playbooks/canary.rhai` against the test cluster, checks every 200 ms.
fn canary(env: &TestEnv, ns: &str, args: &[&str]) -> Kmsctl {
    super::run_playbook(env, "canary.rhai")
        .args(["--namespace", ns, "--deployment", "web", "--check-interval", "200ms"])
        .args(args)
}

/// The stable Deployment `web` (3 replicas of web:1) and its Service, ready.
pub(super) async fn stable(env: &TestEnv, ns: &str) -> Api<Deployment> {
    let labels = json!({"app": "web"});
    let objects = json!([
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
         "spec": {"replicas": 3, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"containers": [{"name": "web", "image": "registry.example/web:1"}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
         "spec": {"selector": labels, "ports": [{"port": 80}]}},
    ]);
    let r = finish(crate::k8s::playbook(
        env,
        r#"import "k8s" as k8s; let kc = k8s::connect(); kc.apply(`@OBJ@`, #{ wait: true, timeout: "60s" });"#,
        &[(
            "OBJ",
            &objects.as_array().expect("array").iter().map(|o| o.to_string()).collect::<Vec<_>>().join("\n---\n"),
        )],
    ))
    .await;
    r.code(0);
    Api::namespaced(env.client.clone(), ns)
}

/// An HTTP endpoint on loopback answering with the status in the returned cell.
pub(super) async fn endpoint() -> (String, Arc<AtomicU16>) {
    let status = Arc::new(AtomicU16::new(200));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/healthz", l.local_addr().expect("addr"));
    let s = status.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut c, _)) = l.accept().await {
            let code = s.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let _ = c.read(&mut buf).await;
                let reply = format!("HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                let _ = c.write_all(reply.as_bytes()).await;
            });
        }
    });
    (url, status)
}

async fn image(api: &Api<Deployment>, name: &str) -> Option<String> {
    let d = api.get_opt(name).await.expect("get")?;
    d.spec?.template.spec?.containers[0].image.clone()
}

async fn annotations(api: &Api<Deployment>) -> std::collections::BTreeMap<String, String> {
    api.get("web").await.expect("web").metadata.annotations.unwrap_or_default()
}

/// The run's decision events as one line each: `decision: <subject>: <decision>: <reason>`.
pub(super) fn decisions(ev: &[serde_json::Value]) -> Vec<String> {
    ev.iter()
        .filter(|e| e["event"] == "decision")
        .map(|e| {
            format!(
                "decision: {}: {}: {}",
                e["subject"].as_str().unwrap_or_default(),
                e["decision"].as_str().unwrap_or_default(),
                e["reason"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test]
async fn a_healthy_canary_is_promoted_step_by_step() {
    let env = testenv!();
    let ns = env.namespace("canary-ok").await;
    let api = stable(&env, &ns.name).await;
    let (url, _status) = endpoint().await;
    let r = finish(canary(
        &env,
        &ns.name,
        &["--image", "registry.example/web:2", "--steps", "20,50", "--checks", "3", "--http-check", &url],
    ))
    .await;
    r.code(0);
    let ev = r.events();
    let all = logs(&ev);
    // 3 stable pods: 20% asks for 1 canary pod (25% of the pods), 50% for 3 (50%).
    assert!(
        all.iter().any(|m| m.starts_with("canary ") && m.contains(": 1 of 4 pods (25% of the traffic for 20% asked")),
        "{all:#?}"
    );
    assert!(
        all.iter().any(|m| m.starts_with("canary ") && m.contains(": 3 of 6 pods (50% of the traffic for 50% asked")),
        "{all:#?}"
    );
    let passed: Vec<&String> = all.iter().filter(|m| m.starts_with("check ")).collect();
    assert_eq!(passed.len(), 6, "{passed:#?}");
    assert!(
        passed[0].starts_with("check 1/3 at 20% passed: web-canary ready; GET ") && passed[0].contains(" 200 in "),
        "{}",
        passed[0]
    );
    assert_eq!(
        decisions(&ev),
        [
            format!("decision: canary {}/web: continue: 3 of 3 checks passed at 20% (threshold 5 failed)", ns.name),
            format!("decision: canary {}/web: promote: 3 of 3 checks passed at 50% (threshold 5 failed)", ns.name),
        ]
    );
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:2"));
    assert_eq!(image(&api, "web-canary").await, None, "the canary is left");
    let a = annotations(&api).await;
    assert!(!a.contains_key("kmsctl.io/canary") && !a.contains_key("kmsctl.io/canary-lock"), "{a:?}");
}

#[tokio::test]
async fn a_failing_endpoint_rolls_the_canary_back_at_the_threshold() {
    let env = testenv!();
    let ns = env.namespace("canary-http").await;
    let api = stable(&env, &ns.name).await;
    let (url, status) = endpoint().await;
    status.store(503, Ordering::SeqCst);
    let r = finish(canary(
        &env,
        &ns.name,
        &["--image", "registry.example/web:2", "--checks", "10", "--health-threshold", "2", "--http-check", &url],
    ))
    .await;
    r.code(1);
    let ev = r.events();
    let (kind, message) = error_of(&ev);
    assert_eq!(kind, "failed");
    assert_eq!(
        message,
        format!("rolled back: 2 failed checks at 20% (threshold 2); the last: GET {url} 503, expected 2xx")
    );
    // Two checks, not ten.
    assert_eq!(logs(&ev).iter().filter(|m| m.starts_with("check ")).count(), 2);
    assert_eq!(
        decisions(&ev),
        [format!(
            "decision: canary {}/web: rollback: 2 failed checks at 20% (threshold 2); the last: GET {url} 503, expected 2xx",
            ns.name
        )]
    );
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:1"));
    assert_eq!(image(&api, "web-canary").await, None, "the canary is left");
    let a = annotations(&api).await;
    assert!(!a.contains_key("kmsctl.io/canary-lock"), "{a:?}");
}

#[tokio::test]
async fn a_crash_looping_canary_is_rolled_back_at_once() {
    let env = testenv!();
    let ns = env.namespace("canary-crash").await;
    let api = stable(&env, &ns.name).await;
    // The canary's pods (and only they) crash-loop.
    let _stage = super::crash_loop(&env, "canary-crash", &ns.name, json!({"kmsctl.io/track": "canary"}), &[]).await;
    let r = finish(canary(&env, &ns.name, &["--image", "registry.example/web:2", "--checks", "10"])).await;
    r.code(1);
    let (kind, message) = error_of(&r.events());
    assert_eq!(kind, "failed");
    assert!(
        message.starts_with("rolled back: canary web-canary did not become ready at 20%: ")
            && message.contains(": CrashLoopBackOff in container web (exit code 1, 4 restarts)"),
        "{message}"
    );
    // No check ran: the canary never became ready.
    assert_eq!(logs(&r.events()).iter().filter(|m| m.starts_with("check ")).count(), 0);
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:1"));
    assert_eq!(image(&api, "web-canary").await, None, "the canary is left");
}

#[tokio::test]
async fn an_interrupted_canary_resumes_and_a_second_run_is_refused() {
    let env = testenv!();
    let ns = env.namespace("canary-resume").await;
    let api = stable(&env, &ns.name).await;
    let (url, _status) = endpoint().await;
    let args = ["--image", "registry.example/web:2", "--checks", "8", "--http-check", &url];
    let first = canary(&env, &ns.name, &args).spawn();
    // Interrupt it once three checks are stored in the cluster.
    crate::testenv::within(60, "three checks stored", async {
        loop {
            let stored = annotations(&api).await.get("kmsctl.io/canary").cloned().unwrap_or_default();
            let check = serde_json::from_str::<serde_json::Value>(&stored).ok().and_then(|s| s["check"].as_i64());
            if check.is_some_and(|c| c >= 3) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    // Meanwhile another run on the same Deployment is refused.
    let r = finish(canary(&env, &ns.name, &args)).await;
    r.code(1);
    let (kind, message) = error_of(&r.events());
    assert_eq!(kind, "conflict");
    assert!(
        message.starts_with("another canary run (") && message.contains(&format!(" holds {}/web for ", ns.name)),
        "{message}"
    );
    first.signal("INT");
    let status = super::exited(first).await;
    assert_eq!(status.code(), Some(130), "the interrupted run");
    let stored: serde_json::Value =
        serde_json::from_str(&annotations(&api).await["kmsctl.io/canary"]).expect("state kept after the interruption");
    let done = stored["check"].as_i64().expect("check");
    assert!(done >= 3, "{stored}");
    // The re-run takes over the lock of the stopped run and goes on from there.
    let r = finish(canary(&env, &ns.name, &args)).await;
    r.code(0);
    let ev = r.events();
    let all = logs(&ev);
    assert!(
        all.iter()
            .any(|m| m
                .starts_with(&format!("resuming the canary of {}/web: step 1 of 1, {done} of 8 checks done", ns.name))),
        "{all:#?}"
    );
    assert_eq!(all.iter().filter(|m| m.starts_with("check ")).count() as i64, 8 - done, "{all:#?}");
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:2"));
}

/// Regression: the lock was taken with the resourceVersion read at the start, so any write to
/// the stable Deployment in between (its controller's status updates while it settles after a
/// promotion) made the take fail with 409, and the canary with it. A conflict is retried on a
/// fresh read; only another holder refuses.
#[tokio::test]
async fn a_canary_takes_its_lock_while_the_stable_deployment_changes() {
    let env = testenv!();
    let ns = env.namespace("canary-churn").await;
    let api = stable(&env, &ns.name).await;
    // A write every 10 ms hits the few milliseconds between a run's read and its take about one
    // run in three: five runs, each with a writer that stops once the lock is taken (one for a
    // whole run would starve the controller's status updates of their resourceVersion).
    for tag in 2..=6 {
        let churn = api.clone();
        let writer = tokio::spawn(async move {
            for i in 0u32..10_000 {
                let d = churn.get("web").await.expect("web");
                if d.metadata.annotations.unwrap_or_default().contains_key("kmsctl.io/canary-lock") {
                    return i;
                }
                // A label: a new resourceVersion, not a new generation (annotations would be one).
                let patch = json!({"metadata": {"labels": {"test-churn": i.to_string()}}});
                churn
                    .patch("web", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
                    .await
                    .expect("churn");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            panic!("the canary never took its lock");
        });
        let image_arg = format!("registry.example/web:{tag}");
        let r = finish(canary(&env, &ns.name, &["--image", &image_arg, "--checks", "1"])).await;
        r.code(0);
        assert!(writer.await.expect("writer") > 0, "the writer wrote while the canary started");
        assert_eq!(image(&api, "web").await.as_deref(), Some(image_arg.as_str()));
    }
    assert!(!annotations(&api).await.contains_key("kmsctl.io/canary-lock"), "the lock is left");
}

#[tokio::test]
async fn bad_flags_are_refused_before_anything_changes() {
    let env = testenv!();
    let ns = env.namespace("canary-bad").await;
    let api = stable(&env, &ns.name).await;
    let before = api.get("web").await.expect("web").metadata.resource_version;
    for (args, want) in [
        (vec!["--image", "w:2", "--canary-weight", "60"], "canary-weight"),
        (vec!["--image", "w:2", "--steps", "50,20"], "--steps must be increasing weights from 1 to 99"),
        (vec!["--image", "w:2", "--http-check", "localhost:8080"], "is not an http:// or https:// URL"),
        (vec!["--image", "nope=w:2"], "has no container 'nope'"),
        (vec![], "--image is required"),
    ] {
        let r = finish(canary(&env, &ns.name, &args)).await;
        let text = format!("{}{}", r.stdout, r.stderr);
        assert!(text.contains(want), "{args:?}: want {want:?} in\n{text}");
        assert_ne!(r.code, 0, "{args:?}");
    }
    assert_eq!(api.get("web").await.expect("web").metadata.resource_version, before, "a refused run changed web");
    assert_eq!(image(&api, "web-canary").await, None);
}

#[tokio::test]
async fn the_manual_gate_promotes_aborts_and_times_out() {
    let env = testenv!();
    let ns = env.namespace("canary-gate").await;
    let api = stable(&env, &ns.name).await;
    let target = format!("{}/web", ns.name);
    let gate = |action: &str| super::gate(&env, action, &target);
    // Abort: rolled back, the stable untouched.
    let args = ["--image", "registry.example/web:2", "--checks", "1", "--manual-gate"];
    let mut run = canary(&env, &ns.name, &args).spawn();
    let mut out = run.wait_for_stdout("waiting up to 1h at the gate: kmsctl gate promote ");
    let answered = gate("abort");
    answered.code(0);
    assert!(
        answered.stderr.contains(&format!("Deployment {target}: kmsctl.io/gate = abort by ")),
        "{}",
        answered.stderr
    );
    let status = tokio::task::spawn_blocking(move || {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest).expect("stdout");
        (run.child.wait().expect("wait"), rest)
    })
    .await
    .expect("join");
    assert_eq!(status.0.code(), Some(1), "{}", status.1);
    assert!(status.1.contains("rolled back: aborted at the gate (abort by "), "{}", status.1);
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:1"));
    assert!(!annotations(&api).await.contains_key("kmsctl.io/gate"), "the answer is left");

    // Promote.
    let mut run = canary(&env, &ns.name, &args).spawn();
    let _out = run.wait_for_stdout("at the gate: kmsctl gate promote ");
    gate("promote").code(0);
    let code = super::exited(run).await;
    assert_eq!(code.code(), Some(0));
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:2"));
    assert!(!annotations(&api).await.contains_key("kmsctl.io/gate"), "the answer is left");

    // Nobody answers.
    let r = finish(canary(
        &env,
        &ns.name,
        &["--image", "registry.example/web:3", "--checks", "1", "--manual-gate", "--gate-timeout", "1s"],
    ))
    .await;
    r.code(1);
    assert_eq!(error_of(&r.events()).1, "rolled back: no gate decision within 1s");
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:2"));
    // A gate of a Deployment that does not exist is refused.
    let r = super::gate(&env, "promote", &format!("{}/nope", ns.name));
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains(&format!("nothing waits at a gate for {}/nope", ns.name)), "{}", r.stderr);
}

/// The environment's Prometheus (`TESTENV_PROMETHEUS`): its URL, from the environment's ports.
fn prometheus(env: &TestEnv) -> String {
    let ports = std::fs::read_to_string(env.dir.join("ports")).expect("ports");
    let port = ports.lines().find_map(|l| l.strip_prefix("prometheus_port=")).expect("prometheus_port");
    format!("http://127.0.0.1:{port}")
}

/// An exporter on loopback that Prometheus scrapes (a file_sd target of this test, removed on
/// drop): each scrape counts 100 more requests of `http_requests_total`, the given per mille of
/// them with code 500.
struct Exporter {
    label: String,
    errors_per_mille: Arc<AtomicU16>,
    target: std::path::PathBuf,
}

impl Exporter {
    async fn start(env: &TestEnv) -> Self {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let errors_per_mille = Arc::new(AtomicU16::new(0));
        let e = errors_per_mille.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut ok, mut failed) = (0u64, 0u64);
            while let Ok((mut c, _)) = l.accept().await {
                let bad = u64::from(e.load(Ordering::SeqCst)) / 10;
                ok += 100 - bad;
                failed += bad;
                let body = format!(
                    "# TYPE http_requests_total counter\nhttp_requests_total{{code=\"200\"}} {ok}\nhttp_requests_total{{code=\"500\"}} {failed}\n"
                );
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = c.write_all(reply.as_bytes()).await;
            }
        });
        let label = crate::testenv::unique("exporter");
        let target = env.dir.join("prometheus/targets").join(format!("{label}.json"));
        let sd = json!([{ "targets": [addr.to_string()], "labels": { "test": label } }]);
        std::fs::write(&target, sd.to_string()).expect("write the file_sd target");
        Self { label, errors_per_mille, target }
    }

    /// The error rate over the last 5 s, as the canary is asked to judge it.
    fn error_rate(&self) -> String {
        format!(
            "sum(rate(http_requests_total{{test=\"{0}\",code=\"500\"}}[5s])) / sum(rate(http_requests_total{{test=\"{0}\"}}[5s]))",
            self.label
        )
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.target);
    }
}

/// Wait until `query` gives `want` in Prometheus (the 5 s window holds only the new rate).
async fn settled(prom: &str, query: &str, want: f64) {
    crate::testenv::within(30, &format!("{query} = {want} in Prometheus"), async {
        loop {
            let out = tokio::process::Command::new("curl")
                .args(["-fsS", "--get", "--data-urlencode", &format!("query={query}"), &format!("{prom}/api/v1/query")])
                .output()
                .await
                .expect("curl");
            let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            let v = body["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok());
            if v.is_some_and(|v| (v - want).abs() < 1e-9) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_prometheus_error_rate_promotes_a_good_canary_and_rolls_back_a_bad_one() {
    let env = testenv!();
    let ns = env.namespace("canary-prom").await;
    let api = stable(&env, &ns.name).await;
    let exporter = Exporter::start(&env).await;
    let prom = prometheus(&env);
    let query = exporter.error_rate();
    // Prometheus has found the exporter and has two scrapes of it (rate() needs them).
    settled(&prom, &query, 0.0).await;
    let args = |image: &'static str, checks: &'static str| {
        vec![
            "--image".to_string(),
            image.into(),
            "--checks".into(),
            checks.into(),
            "--prometheus".into(),
            prom.clone(),
            "--metric-query".into(),
            query.clone(),
            "--metric-name".into(),
            "error rate".into(),
            "--metric-max".into(),
            "0.05".into(),
            "--metric-failure-limit".into(),
            "1".into(),
            // Two scrapes at least, for rate().
            "--metric-initial-delay".into(),
            "3s".into(),
            "--check-interval".into(),
            "500ms".into(),
        ]
    };
    // No errors: measured and passed.
    let a = args("registry.example/web:2", "10");
    let r = finish(canary(&env, &ns.name, &a.iter().map(String::as_str).collect::<Vec<_>>())).await;
    r.code(0);
    let all = logs(&r.events());
    assert!(all.iter().any(|m| m.starts_with("check ") && m.contains("error rate 0 ≤ 0.05")), "{all:#?}");
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:2"));

    // 10% of the requests fail: rolled back after two failed measurements (failure limit 1).
    exporter.errors_per_mille.store(100, Ordering::SeqCst);
    settled(&prom, &query, 0.1).await;
    let a = args("registry.example/web:3", "30");
    let r = finish(canary(&env, &ns.name, &a.iter().map(String::as_str).collect::<Vec<_>>())).await;
    r.code(1);
    let ev = r.events();
    let (kind, message) = error_of(&ev);
    assert_eq!(kind, "failed");
    assert_eq!(
        message,
        format!("rolled back: error rate 0.1 > 0.05 on 2 measurements (failure limit 1; {query})"),
        "{:#?}",
        logs(&ev)
    );
    let failed: Vec<String> =
        logs(&ev).into_iter().filter(|m| m.starts_with("check ") && m.contains("error rate 0.1 > 0.05")).collect();
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:2"));
    assert_eq!(image(&api, "web-canary").await, None);
}

/// A dynamic object's JSON (Ingress, HTTPRoute), or `None`.
async fn object(
    env: &TestEnv,
    ns: &str,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    name: &str,
) -> Option<serde_json::Value> {
    let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
    let ar = kube::api::ApiResource::from_gvk_with_plural(&gvk, plural);
    let api = Api::<kube::api::DynamicObject>::namespaced_with(env.client.clone(), ns, &ar);
    api.get_opt(name).await.expect("get").map(|o| serde_json::to_value(o).expect("json"))
}

async fn apply(env: &TestEnv, yaml: &str) {
    let r =
        finish(crate::k8s::playbook(env, r#"import "k8s" as k8s; k8s::connect().apply(`@Y@`);"#, &[("Y", yaml)])).await;
    r.code(0);
}

#[tokio::test]
async fn gateway_api_weights_carry_the_canary_and_are_restored() {
    let env = testenv!();
    let ns = env.namespace("canary-gw").await;
    let api = stable(&env, &ns.name).await;
    apply(
        &env,
        &format!(
            "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: web, namespace: {}}}\nspec:\n  parentRefs: [{{name: shop}}]\n  rules:\n  - backendRefs: [{{name: web, port: 80}}]\n",
            ns.name
        ),
    )
    .await;
    let args = [
        "--image",
        "registry.example/web:2",
        "--traffic",
        "gateway",
        "--route",
        "web",
        "--steps",
        "20,50",
        "--checks",
        "1",
        "--manual-gate",
    ];
    let mut run = canary(&env, &ns.name, &args).spawn();
    let _out = run.wait_for_stdout("at the gate: kmsctl gate promote ");
    // At 50%: the route splits between the two Services; the canary's pods are out of the stable one.
    let route = object(&env, &ns.name, "gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes", "web")
        .await
        .expect("route");
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"],
        json!([{"group": "", "kind": "Service", "name": "web", "port": 80, "weight": 50}, {"group": "", "kind": "Service", "name": "web-canary", "port": 80, "weight": 50}])
    );
    let svc = Api::<k8s_openapi::api::core::v1::Service>::namespaced(env.client.clone(), &ns.name);
    let canary_svc = svc.get("web-canary").await.expect("the canary's Service");
    assert_eq!(
        canary_svc.spec.and_then(|s| s.selector).unwrap_or_default(),
        [("app".to_string(), "web-canary".to_string()), ("kmsctl.io/track".to_string(), "canary".to_string())].into()
    );
    super::gate(&env, "promote", &format!("{}/web", ns.name)).code(0);
    let status = super::exited(run).await;
    assert_eq!(status.code(), Some(0));
    let route = object(&env, &ns.name, "gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes", "web")
        .await
        .expect("route");
    assert_eq!(
        route["spec"]["rules"][0]["backendRefs"],
        json!([{"group": "", "kind": "Service", "name": "web", "port": 80, "weight": 1}])
    );
    assert!(route["metadata"]["annotations"].get("kmsctl.io/canary-original-rules").is_none(), "{route}");
    assert!(svc.get_opt("web-canary").await.expect("get").is_none());
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:2"));
}

#[tokio::test]
async fn an_ingress_nginx_canary_is_weighted_and_removed_on_abort() {
    let env = testenv!();
    let ns = env.namespace("canary-ing").await;
    let api = stable(&env, &ns.name).await;
    apply(
        &env,
        &format!(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: web, namespace: {}}}\nspec:\n  ingressClassName: nginx\n  rules:\n  - host: shop.example\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}\n",
            ns.name
        ),
    )
    .await;
    let args = [
        "--image",
        "registry.example/web:2",
        "--traffic",
        "ingress-nginx",
        "--ingress",
        "web",
        "--checks",
        "1",
        "--manual-gate",
    ];
    let mut run = canary(&env, &ns.name, &args).spawn();
    let _out = run.wait_for_stdout("at the gate: kmsctl gate promote ");
    let ing = object(&env, &ns.name, "networking.k8s.io", "v1", "Ingress", "ingresses", "web-canary")
        .await
        .expect("canary ingress");
    assert_eq!(ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"], "true");
    assert_eq!(ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"], "20");
    assert_eq!(ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"], "web-canary");
    assert_eq!(ing["spec"]["rules"][0]["host"], "shop.example");
    super::gate(&env, "abort", &format!("{}/web", ns.name)).code(0);
    let status = super::exited(run).await;
    assert_eq!(status.code(), Some(1));
    assert!(object(&env, &ns.name, "networking.k8s.io", "v1", "Ingress", "ingresses", "web-canary").await.is_none());
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:1"));
    assert_eq!(image(&api, "web-canary").await, None);
}

/// std/canary with a promotion of its own: a `helm::upgrade` of the release.
const HELM_CANARY: &str = r#"
import "k8s" as k8s;
import "helm" as helm;
import "std/canary" as canary;
let kc = k8s::connect();
canary::run(kc, "web", #{
    namespace: "@NS@", images: #{ web: "registry.example/web:@TAG@" }, checks: 1, check_interval: "200ms",
    helm_release: "web",
    promote: |info| helm::upgrade(kc, "web", "@CHART@", #{ namespace: "@NS@", values: #{ image: #{ tag: "@TAG@" } }, wait: false }),
})
"#;

#[tokio::test]
async fn a_helm_promotion_that_fails_is_undone_by_helm_rollback() {
    let env = testenv!();
    let ns = env.namespace("canary-helm").await;
    let chart = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/charts/web")).display().to_string();
    let helm = env.dir.join("bin/helm").display().to_string();
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let stdlib = root.join("stdlib").display().to_string();
    let run = |tag: &str| {
        crate::k8s::playbook(&env, HELM_CANARY, &[("NS", &ns.name), ("TAG", tag), ("CHART", &chart)])
            .env("KMSCTL_HELM", &helm)
            .env("KMSCTL_STDLIB_DIR", &stdlib)
    };
    let r = finish(crate::k8s::playbook(
        &env,
        r#"import "k8s" as k8s; import "helm" as helm; helm::upgrade(k8s::connect(), "web", "@CHART@", #{ namespace: "@NS@" });"#,
        &[("NS", &ns.name), ("CHART", &chart)],
    )
    .env("KMSCTL_HELM", &helm))
    .await;
    r.code(0);
    let api: Api<Deployment> = Api::namespaced(env.client.clone(), &ns.name);
    let r = finish(run("2")).await;
    r.code(0);
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:2"));
    // The release's new pods crash-loop: helm rolls the release back to revision 2.
    let _stage = super::crash_loop(
        &env,
        "canary-helm-bad",
        &ns.name,
        json!({}),
        &[
            json!({"key": ".spec.containers.[].image", "operator": "In", "values": ["registry.example/web:bad"]}),
            json!({"key": ".metadata.labels[\"kmsctl.io/track\"]", "operator": "DoesNotExist"}),
        ],
    )
    .await;
    let r = finish(run("bad")).await;
    r.code(1);
    let (_, message) = error_of(&r.events());
    assert!(
        message.starts_with("rolled back: the promotion failed: ")
            && message.ends_with("; helm release web rolled back to revision 2"),
        "{message}\n{}",
        r.stdout
    );
    assert!(message.contains("CrashLoopBackOff"), "{message}");
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:2"));
    assert_eq!(image(&api, "web-canary").await, None);
}

/// std/canary with every hook: each logs its call; `on_before_traffic_increase` says no.
const HOOKS: &str = r#"
import "k8s" as k8s;
import "log" as log;
import "std/canary" as canary;
let kc = k8s::connect();
canary::run(kc, "web", #{
    namespace: "@NS@", images: #{ web: "registry.example/web:2" }, steps: [20, 50], checks: 1, check_interval: "200ms",
    on_confirm_rollout: |i| { log::info(`hook on_confirm_rollout ${i.canary}`); true },
    on_before_traffic_increase: |i| { log::info(`hook on_before_traffic_increase ${i.weight}`); false },
    on_confirm_promotion: |i| { log::info("hook on_confirm_promotion"); true },
    on_rollback: |i| log::info(`hook on_rollback ${i.reason}`),
})
"#;

#[tokio::test]
async fn hooks_are_called_in_order_and_a_no_rolls_back() {
    let env = testenv!();
    let ns = env.namespace("canary-hooks").await;
    let api = stable(&env, &ns.name).await;
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let r = finish(
        crate::k8s::playbook(&env, HOOKS, &[("NS", &ns.name)])
            .env("KMSCTL_STDLIB_DIR", &root.join("stdlib").display().to_string()),
    )
    .await;
    r.code(1);
    let hooks: Vec<String> = logs(&r.events()).into_iter().filter(|m| m.starts_with("hook ")).collect();
    assert_eq!(
        hooks,
        [
            "hook on_confirm_rollout web-canary",
            "hook on_before_traffic_increase 50",
            "hook on_rollback on_before_traffic_increase said no",
        ]
    );
    assert_eq!(error_of(&r.events()).1, "rolled back: on_before_traffic_increase said no");
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:1"));
    assert_eq!(image(&api, "web-canary").await, None);
}

#[tokio::test]
async fn a_critical_service_that_is_not_ready_rolls_the_canary_back() {
    let env = testenv!();
    let ns = env.namespace("canary-critical").await;
    let api = stable(&env, &ns.name).await;
    // The api's pods crash-loop once the canary runs.
    let _stage = super::crash_loop(&env, "canary-critical", &ns.name, json!({"app": "api"}), &[]).await;
    apply(
        &env,
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: api, namespace: {}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: api}}}}\n  template:\n    metadata: {{labels: {{app: api}}}}\n    spec: {{containers: [{{name: api, image: registry.example/api:1}}]}}\n",
            ns.name
        ),
    )
    .await;
    let r = finish(canary(
        &env,
        &ns.name,
        &[
            "--image",
            "registry.example/web:2",
            "--checks",
            "5",
            "--health-threshold",
            "2",
            "--critical-services",
            "api",
        ],
    ))
    .await;
    r.code(1);
    let (_, message) = error_of(&r.events());
    assert!(
        message.starts_with("rolled back: 2 failed checks at 20% (threshold 2); the last: api not ready: "),
        "{message}"
    );
    assert!(message.contains("CrashLoopBackOff"), "{message}");
    assert_eq!(image(&api, "web").await.as_deref(), Some("registry.example/web:1"));
}

/// A loopback server: `/json-ok` and `/json-bad` answer `{"status": {"ok": true|false}}`,
/// `/slow` answers 200 after 300 ms, anything else 404.
async fn json_endpoint() -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let n = c.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (code, body) = match path.as_str() {
                    "/json-ok" => (200, r#"{"status": {"ok": true}}"#),
                    "/json-bad" => (200, r#"{"status": {"ok": false}}"#),
                    "/slow" => {
                        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                        (200, "slow")
                    }
                    _ => (404, "no"),
                };
                let reply =
                    format!("HTTP/1.1 {code} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = c.write_all(reply.as_bytes()).await;
            });
        }
    });
    base
}

#[tokio::test]
async fn http_checks_judge_the_status_the_latency_and_a_json_field() {
    let base = json_endpoint().await;
    let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let script = crate::k8s::fill(
        r#"
import "std/canary" as canary;
import "log" as log;
for h in [
    #{ url: "@U@/json-ok", json_field: "status.ok" },
    #{ url: "@U@/json-bad", json_field: "status.ok" },
    #{ url: "@U@/json-bad", json_field: "status.ok", equals: false },
    #{ url: "@U@/slow", max_latency_ms: 100 },
    #{ url: "@U@/gone" },
    #{ url: "@U@/gone", status: 404 },
] {
    let r = canary::http_check(h);
    log::info(`${r.ok} ${r.what}`);
}
"#,
        &[("U", &base)],
    );
    let r = finish(
        crate::harness::kmsctl()
            .file("p.rhai", &script)
            .env("KMSCTL_STDLIB_DIR", &root.join("stdlib").display().to_string())
            .args(["run", "p.rhai", "--output", "json"]),
    )
    .await;
    r.code(0);
    let lines: Vec<String> = logs(&r.events())
        .into_iter()
        .map(|l| regex::Regex::new(r" in \d+ ms| took \d+ ms").expect("re").replace(&l, " in N ms").into_owned())
        .collect();
    assert_eq!(
        lines,
        [
            format!("true GET {base}/json-ok 200 in N ms"),
            format!("false GET {base}/json-bad status.ok = false, expected true"),
            format!("true GET {base}/json-bad 200 in N ms"),
            format!("false GET {base}/slow in N ms > 100 ms"),
            format!("false GET {base}/gone 404, expected 2xx"),
            format!("true GET {base}/gone 404 in N ms"),
        ]
    );
}

#[tokio::test]
async fn prom_queries_come_back_typed() {
    let env = testenv!();
    let script = r#"
import "prom" as prom;
import "log" as log;
let u = "@PROM@";
log::info(`scalar ${prom::value(u, "1 + 1")}`);
log::info(`empty ${prom::value(u, "absent_metric_kmsctl_test")}`);
let q = prom::query(u, "vector(3)");
log::info(`vector ${q.type} ${q.samples.len()} ${q.value}`);
let r = prom::query_range(u, "vector(4)", #{ range: "10s", step: "5s" });
log::info(`matrix ${r.type} ${r.series.len()} ${r.series[0].values.len()} ${r.series[0].values[0][1]}`);
try { prom::value(u, "sum(") } catch (e) { log::info(`bad ${e.kind}`) }
try { prom::value(u, "vector(1) or label_replace(vector(2), \"a\", \"b\", \"\", \"\")") } catch (e) { log::info(`many ${e.kind} ${e.message.contains("returned 2 series")}`) }
"#;
    let r = finish(crate::k8s::playbook(&env, script, &[("PROM", &prometheus(&env))])).await;
    r.code(0);
    assert_eq!(
        logs(&r.events()),
        ["scalar 2.0", "empty ", "vector vector 1 3.0", "matrix matrix 1 3 4.0", "bad usage", "many usage true"]
    );
}

/// `--plan --against-cluster`: the canary as it would go, read from the live stable Deployment
/// (its lock, the canary, each check's state, the promotion), and nothing changed.
#[tokio::test]
async fn a_canary_plans_against_the_cluster_and_changes_nothing() {
    let env = testenv!();
    let ns = env.namespace("canary-plan").await;
    let api = stable(&env, &ns.name).await;
    let before = api.get("web").await.expect("web").metadata.resource_version;
    let r = finish(canary(
        &env,
        &ns.name,
        &["--image", "registry.example/web:2", "--checks", "2", "--plan", "--against-cluster", "--artifacts", "art"],
    ))
    .await;
    r.code(0);
    let actions = crate::plan::actions(&crate::plan::plan_of(&r));
    let web = format!("Deployment {}/web", ns.name);
    assert!(actions.contains(&format!("k8s apply Deployment {}/web-canary", ns.name)), "{actions:?}");
    assert!(actions.contains(&format!("k8s delete Deployment {}/web-canary", ns.name)), "{actions:?}");
    assert!(
        actions.iter().filter(|a| **a == format!("k8s patch {web}")).count() >= 4,
        "lock, state, promotion: {actions:?}"
    );
    assert_eq!(api.get("web").await.expect("web").metadata.resource_version, before, "the plan changed the stable");
    assert_eq!(image(&api, "web-canary").await, None, "the plan made the canary");
    assert!(!annotations(&api).await.contains_key("kmsctl.io/canary-lock"));
}
