//! `kmsctl run --plan` (issue #11): every change recorded instead of made. The project's
//! playbooks plan without a cluster, AWS or docker (helm renders their charts); a plan against
//! the local cluster reads it and changes nothing.

use crate::harness::{Kmsctl, kmsctl};
use crate::testenv::{TestEnv, testenv};
use serde_json::Value;
use std::collections::BTreeMap;

fn root() -> String {
    std::fs::canonicalize(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).expect("root").display().to_string()
}

/// A real playbook of the project, planned from the repository's root with no kubeconfig and
/// helm from the test environment (which is only needed for its helm binary).
fn planned(env: &TestEnv, playbook: &str, args: &[&str]) -> Kmsctl {
    let root = root();
    // The deploy playbooks read the KMS checkout; the cluster-only ones take no --kms-repo.
    let own =
        ["pr-preview-destroy", "perf-cleanup", "network-diagnostics", "sample-cpu", "release", "canary", "bluegreen"];
    let repo: Vec<String> = if own.iter().any(|p| playbook.contains(p)) {
        Vec::new()
    } else {
        vec!["--kms-repo".into(), format!("{root}/tests/kms-repo")]
    };
    let k = kmsctl()
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("KMSCTL_STDLIB_DIR", &format!("{root}/stdlib"))
        .env("KMSCTL_HELM", &env.dir.join("bin/helm").display().to_string())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("KMSCTL_DOCKER", "/nonexistent/docker")
        .env("KMSCTL_KIND", "/nonexistent/kind")
        .args(["run", &format!("{root}/{playbook}")])
        .args(repo)
        .args(args)
        .args(["--plan", "--artifacts", "art"]);
    helm_homes(k, env)
}

/// helm's homes (repositories, registry config) of the test environment.
fn helm_homes(mut k: Kmsctl, env: &TestEnv) -> Kmsctl {
    for (key, v) in env.env_vars() {
        if key.starts_with("HELM_") {
            k = k.env(&key, &v.to_string_lossy());
        }
    }
    k
}

/// The plan event of a `--output json` run.
pub(crate) fn plan_of(r: &crate::harness::Run) -> Value {
    r.events().into_iter().find(|e| e["event"] == "plan").map(|e| e["plan"].clone()).expect("a plan event")
}

/// Every operation of a plan's tree, in order, with the task it ran in.
fn ops(plan: &Value) -> Vec<Value> {
    fn walk(nodes: &Value, out: &mut Vec<Value>) {
        for n in nodes.as_array().into_iter().flatten() {
            match n["type"].as_str() {
                Some("step") => walk(&n["children"], out),
                _ => out.push(n.clone()),
            }
        }
    }
    let mut out = Vec::new();
    walk(&plan["tree"], &mut out);
    out
}

fn releases(plan: &Value) -> Vec<String> {
    ops(plan)
        .iter()
        .filter(|o| o["action"] == "helm upgrade")
        .map(|o| o["target"].as_str().unwrap().split(' ').nth(1).unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn kind_ci_plans_without_a_cluster_with_rendered_releases_and_masked_secrets() {
    let env = testenv!();
    let certs = format!("{}/tests/kms-repo/ci/kube-testing/certs", root());
    let listing = || std::fs::read_dir(&certs).map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>()).ok();
    let before = listing();
    let r = planned(&env, "playbooks/kind-ci.rhai", &[])
        .env("HARBOR_READ_LOGIN", "robot")
        .env("HARBOR_READ_TOKEN", "harbor-token-9f2e")
        .code(0)
        .run();
    let root = root();
    let tmp = r.path().display().to_string();
    let text = r.stdout.replace(&root, "[root]").replace(&tmp, "[tmp]");
    insta::assert_snapshot!(text);
    // Nothing changed on disk: the certificates kind-ci writes into the checkout are recorded.
    assert_eq!(listing(), before, "{certs} is as it was");
    let art = r.path().join("art");
    let plan: Value = serde_json::from_str(&std::fs::read_to_string(art.join("plan.json")).unwrap()).unwrap();
    assert_eq!(
        releases(&plan),
        [
            "kms-test/localstack",
            "kms-test/kms-core-1",
            "kms-test/kms-core-2",
            "kms-test/kms-core-3",
            "kms-test/kms-core-4",
            "kms-test/kms-core-init"
        ]
    );
    assert_eq!(plan["kinds"]["StatefulSet"], 4, "{}", plan["kinds"]);
    // One manifest per release and per apply, as helm template rendered it with kmsctl's values.
    let party2 = std::fs::read_to_string(art.join("plan/helm-kms-test-kms-core-2.yaml")).unwrap();
    let docs = kmsctl_k8s::parse_manifests(&party2).unwrap();
    let sts = docs.iter().find(|d| d["kind"] == "StatefulSet").expect("the party's StatefulSet");
    assert_eq!(sts["metadata"]["namespace"], "kms-test");
    let env_of = serde_json::to_string(&sts["spec"]["template"]).unwrap();
    assert!(env_of.contains("kms-core-2"), "party 2's own values: {env_of}");
    let secret = std::fs::read_to_string(art.join("plan/apply-secret-kms-test-registry-credentials.yaml")).unwrap();
    assert!(secret.contains(".dockerconfigjson: '***'") || secret.contains(".dockerconfigjson: \"***\""), "{secret}");
    for f in walk(&art) {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        assert!(!text.contains("harbor-token-9f2e"), "{} shows the token", f.display());
        assert!(!text.contains("cm9ib3Q6aGFyYm9yLXRva2VuLTlmMmU"), "{} shows the token in base64", f.display());
    }
    assert!(!r.stdout.contains("harbor-token-9f2e") && !r.stderr.contains("harbor-token-9f2e"));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[tokio::test]
async fn aws_perf_plans_13_parties_and_init_without_aws_as_json() {
    let env = testenv!();
    let r = planned(
        &env,
        "playbooks/aws-perf.rhai",
        &["--target", "aws-perf", "--num-parties", "13", "--eks-cluster", "zws-dev", "--output", "json"],
    )
    .code(0)
    .run();
    let plan = plan_of(&r);
    let mut parties: Vec<String> =
        releases(&plan).into_iter().filter(|r| r.starts_with("kms-test/kms-core-")).collect();
    parties.sort();
    let mut want: Vec<String> = (1..=13).map(|i| format!("kms-test/kms-core-{i}")).collect();
    want.push("kms-test/kms-core-init".into());
    want.sort();
    assert_eq!(parties, want);
    // The parties are one parallel group: each in a task of its own under one step.
    let deploy =
        plan["tree"].as_array().unwrap().iter().find(|n| n["name"] == "deploy 13 parties").expect("the deploy step");
    let tasks: Vec<&str> = deploy["children"].as_array().unwrap().iter().map(|c| c["task"].as_str().unwrap()).collect();
    assert_eq!(tasks, (1..=13).map(|i| format!("party-{i}")).collect::<Vec<_>>());
    let kinds: BTreeMap<String, u64> = serde_json::from_value(plan["kinds"].clone()).unwrap();
    // 13 parties, and the core client of the init release.
    assert_eq!(kinds.get("StatefulSet"), Some(&14), "{kinds:?}");
    // The OCI charts cannot be fetched here: recorded with the reason, not a failure.
    let infra =
        ops(&plan).into_iter().find(|o| o["target"].as_str().unwrap().starts_with("release kms-test/tkms-infra"));
    assert!(infra.expect("tkms-infra")["note"].as_str().unwrap().starts_with("not rendered: "));
    // The EKS context is not known without AWS: the guard is recorded for the run.
    let guard = ops(&plan).into_iter().find(|o| o["action"] == "k8s require_context").expect("the context guard");
    assert_eq!(guard["target"], "arn:aws:eks:*, *.ts.net");
}

const OFFLINE: &str = r#"
    import "k8s" as k8s;
    import "fs" as fs;
    import "proc" as proc;
    import "aws" as aws;
    import "log" as log;
    let kc = k8s::connect(#{ context: "kind-plan", require_context: ["kind-*"] });
    log::step("prepare", || {
        kc.ensure_namespace("plan-ns", #{ labels: #{ team: "kms" } });
        fs::write("written.txt", "no");
        proc::run("sh", ["-c", "echo ran > ran.txt"]);
        let ro = proc::run("sh", ["-c", "echo read-only > read-only.txt; echo out"], #{ read_only: true });
        log::info(`read-only stdout ${ro.stdout}`);
        aws::s3_put("bucket", "key", secret("s3-secret-value"), #{ endpoint: "http://127.0.0.1:1" });
        log::info(`s3: ${aws::s3_list("bucket", "", #{ endpoint: "http://127.0.0.1:1" }).len()} objects`);
        try { aws::caller_identity(); } catch (e) { log::info(`aws: ${e.kind}: ${e.message}`); }
    });
    let objs = kc.apply(`
apiVersion: v1
kind: ConfigMap
metadata: { name: cfg }
data: { a: "1" }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web }
spec: { selector: { matchLabels: { app: web } }, template: { metadata: { labels: { app: web } }, spec: { containers: [{ name: c, image: nginx }] } } }
`, #{ namespace: "plan-ns" });
    kc.wait(objs, #{ timeout: "10m" });
    log::info(`get: ${kc.get("ConfigMap", "cfg", #{ namespace: "plan-ns" }) == ()} list: ${kc.list("Pod", #{ namespace: "plan-ns" }).len()}`);
    log::info(`deleted: ${kc.delete("Deployment", "old", #{ namespace: "plan-ns" })}`);
    import "kind" as kind;
    log::info(`kind: ${kind::clusters().len()} clusters, then ${kind::ensure_cluster("c").context}`);
"#;

#[test]
fn mutating_functions_are_recorded_and_not_performed() {
    let r = kmsctl()
        .file("p.rhai", OFFLINE)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("KMSCTL_KIND", "/nonexistent/kind")
        .args(["run", "p.rhai", "--plan", "--artifacts", "art"])
        .code(0)
        .run();
    insta::assert_snapshot!(r.stdout);
    assert!(r.stderr.contains("kind: 0 clusters, then kind-c"), "kind is not run in a plan: {}", r.stderr);
    let dir = r.path();
    assert!(!dir.join("written.txt").exists(), "fs::write ran");
    assert!(!dir.join("ran.txt").exists(), "proc::run ran");
    assert!(dir.join("read-only.txt").exists(), "a read_only command runs in a plan");
    assert!(r.stderr.contains("read-only stdout out"), "{}", r.stderr);
    assert!(r.stderr.contains("get: true list: 0"), "reads see an empty cluster: {}", r.stderr);
    assert!(r.stderr.contains("deleted: false"), "{}", r.stderr);
    assert!(r.stderr.contains("s3: 0 objects"), "{}", r.stderr);
    assert!(
        r.stderr.contains("aws: unavailable: AWS is not contacted in a plan without --against-cluster"),
        "{}",
        r.stderr
    );
    let manifest = std::fs::read_to_string(dir.join("art/plan/apply.yaml")).unwrap();
    let docs = kmsctl_k8s::parse_manifests(&manifest).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[1]["metadata"]["labels"]["app.kubernetes.io/managed-by"], "kmsctl");
    assert_eq!(docs[1]["metadata"]["labels"]["kmsctl.io/playbook"], "p");
    assert_eq!(docs[1]["metadata"]["namespace"], "plan-ns");
    let all: String = walk(&dir.join("art")).iter().map(|f| std::fs::read_to_string(f).unwrap_or_default()).collect();
    assert!(!all.contains("s3-secret-value") && !r.stdout.contains("s3-secret-value"));
}

#[test]
fn a_plan_still_refuses_a_context_it_knows_to_be_wrong() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"import "k8s" as k8s; let kc = k8s::connect(#{ context: "prod-eks", require_context: ["kind-*"] });"#,
        )
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .args(["run", "p.rhai", "--plan"])
        .run();
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("refusing to run against context 'prod-eks'"), "{}", r.stderr);
    // The kubeconfig's current context, read without a request (its server is a closed port).
    let kubeconfig = r#"
apiVersion: v1
kind: Config
current-context: prod-eks
clusters: [{ name: prod, cluster: { server: "https://127.0.0.1:1" } }]
contexts: [{ name: prod-eks, context: { cluster: prod, user: u, namespace: kms } }]
users: [{ name: u, user: { token: t } }]
"#;
    let r = kmsctl()
        .file("kubeconfig", kubeconfig)
        .file(
            "p.rhai",
            r#"import "k8s" as k8s; import "log" as log;
               let kc = k8s::connect();
               log::info(`${kc.context()} ${kc.server()} ${kc.default_namespace()}`);
               kc.require_context(["kind-*"]);"#,
        )
        .env("KUBECONFIG", "kubeconfig")
        .args(["run", "p.rhai", "--plan"])
        .run();
    assert!(r.stderr.contains("prod-eks https://127.0.0.1:1 kms"), "what the kubeconfig says: {}", r.stderr);
    assert!(r.stderr.contains("refusing to run against context 'prod-eks'"), "{}", r.stderr);
    assert_ne!(r.code, 0);
}

#[test]
fn against_cluster_needs_plan() {
    let r = kmsctl().file("p.rhai", "let x = 1;").args(["run", "p.rhai", "--against-cluster"]).code(2).run();
    assert!(r.stderr.contains("--against-cluster only goes with --plan"), "{}", r.stderr);
}

#[tokio::test]
async fn a_plan_against_the_cluster_reads_it_and_changes_nothing() {
    let env = testenv!();
    let ns = env.namespace("plan").await;
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(env.client.clone(), &ns.name);
    let cm: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(serde_json::json!({ "metadata": { "name": "there" }, "data": { "a": "1" } })).unwrap();
    let before = cms.create(&Default::default(), &cm).await.unwrap().metadata.resource_version;
    let script = r#"
        import "k8s" as k8s;
        import "log" as log;
        let kc = k8s::connect();
        let there = kc.get("ConfigMap", "there", #{ namespace: "@NS@" });
        log::info(`read ${there.data.a}`);
        kc.apply(#{ apiVersion: "v1", kind: "ConfigMap", metadata: #{ name: "there" }, data: #{ a: "2" } }, #{ namespace: "@NS@" });
        kc.apply(#{ apiVersion: "v1", kind: "ConfigMap", metadata: #{ name: "new" }, data: #{ b: "1" } }, #{ namespace: "@NS@" });
        log::info(`deleted ${kc.delete("ConfigMap", "there", #{ namespace: "@NS@" })}`);
        kc.ensure_namespace("@NS@");
    "#;
    let r = crate::k8s::playbook(&env, script, &[("NS", &ns.name)]).args(["--plan", "--against-cluster"]).code(0).run();
    let msgs: Vec<String> =
        r.events().iter().filter(|e| e["event"] == "log").map(|e| e["message"].as_str().unwrap().to_string()).collect();
    assert!(msgs.contains(&"read 1".to_string()), "a real read: {msgs:?}");
    assert!(msgs.contains(&"deleted true".to_string()), "the delete sees the object: {msgs:?}");
    let plan = plan_of(&r);
    assert_eq!(plan["against_cluster"], true);
    let actions: Vec<String> = ops(&plan)
        .iter()
        .map(|o| format!("{} {}", o["action"].as_str().unwrap(), o["target"].as_str().unwrap()))
        .collect();
    let n = &ns.name;
    assert_eq!(
        actions,
        [
            format!("k8s apply ConfigMap {n}/there"),
            format!("k8s apply ConfigMap {n}/new"),
            format!("k8s delete ConfigMap {n}/there"),
            format!("k8s ensure_namespace Namespace {n}"),
        ]
    );
    let after = cms.get("there").await.unwrap();
    assert_eq!(after.metadata.resource_version, before, "the object was changed");
    assert_eq!(after.data.unwrap()["a"], "1");
    assert!(cms.get_opt("new").await.unwrap().is_none(), "the plan created an object");
}

const DIFF: &str = r#"
    import "k8s" as k8s;
    import "helm" as helm;
    let kc = k8s::connect();
    kc.apply(`
apiVersion: v1
kind: ConfigMap
metadata: { name: there }
data: { a: "@A@" }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: new }
data: { b: "1" }
`, #{ namespace: "@NS@" });
    kc.secret("@NS@", "creds", #{ token: secret("@TOKEN@") });
    helm::upgrade(kc, "party", "@CHART@", #{ namespace: "@NS@", values: #{ kmsPeers: #{ id: 1 }, kmsCore: #{ image: #{ tag: "@TAG@" } } }, timeout: "60s" });
"#;

#[tokio::test]
async fn diff_shows_each_change_against_the_cluster_and_changes_nothing() {
    let env = testenv!();
    let ns = env.namespace("diff").await;
    let chart = crate::testenv::chart("kms-core").display().to_string();
    let run = |a: &str, tag: &str, token: &str, extra: &[&str]| {
        let mut k = crate::k8s::playbook(
            &env,
            DIFF,
            &[("NS", &ns.name), ("A", a), ("TAG", tag), ("TOKEN", token), ("CHART", &chart)],
        )
        .env("KMSCTL_HELM", &env.dir.join("bin/helm").display().to_string());
        for (key, v) in env.env_vars() {
            if key.starts_with("HELM_") {
                k = k.env(&key, &v.to_string_lossy());
            }
        }
        k.args(extra)
    };
    // Before the first deploy every object is new.
    let first = run("1", "v1", "token-one-7c1d", &["--diff"]).code(5).run();
    let plan = plan_of(&first);
    let new: Vec<String> = ops(&plan).iter().filter_map(|o| o["diff"].as_str().map(str::to_string)).collect();
    assert_eq!(new.len(), 3, "the apply, the secret and the release: {plan}");
    for d in &new {
        assert!(d.lines().filter(|l| l.starts_with("--- ")).all(|l| l == "--- /dev/null"), "{d}");
    }
    assert_eq!(plan["changed"], 3 + release_objects(&plan), "two ConfigMaps, the Secret, the release's objects");
    // The first deploy, for real; then the same again changes nothing.
    run("1", "v1", "token-one-7c1d", &[]).code(0).run();
    let cms: kube::Api<k8s_openapi::api::core::v1::ConfigMap> = kube::Api::namespaced(env.client.clone(), &ns.name);
    let versions = || async {
        let list = cms.list(&Default::default()).await.unwrap();
        let mut v: Vec<(String, String)> =
            list.items.into_iter().map(|c| (c.metadata.name.unwrap(), c.metadata.resource_version.unwrap())).collect();
        v.sort();
        v
    };
    let before = versions().await;
    let same = run("1", "v1", "token-one-7c1d", &["--diff"]).code(0).run();
    let text: String = same.events().iter().filter(|e| e["event"] == "plan").map(|e| e["plan"].to_string()).collect();
    assert!(text.contains("\"changed\":0"), "nothing would change: {text}");
    // A value, an image tag and a secret changed: exit 5, one diff per changed object.
    let changed = run("2", "v2", "token-two-93ab", &["--diff"]).code(5).run();
    let plan = plan_of(&changed);
    let diffs: String = ops(&plan).iter().filter_map(|o| o["diff"].as_str().map(str::to_string)).collect();
    let n = &ns.name;
    assert!(diffs.contains(&format!("--- live ConfigMap {n}/there")), "{diffs}");
    assert!(diffs.contains("-  a: '1'") || diffs.contains("-  a: \"1\""), "{diffs}");
    assert!(diffs.contains("+  a: '2'") || diffs.contains("+  a: \"2\""), "{diffs}");
    assert!(!diffs.contains(&format!("planned ConfigMap {n}/new")), "unchanged objects have no diff: {diffs}");
    assert!(diffs.contains(&format!("+++ planned Secret {n}/creds")), "{diffs}");
    assert!(diffs.contains("*** (changed)"), "{diffs}");
    assert!(diffs.contains(":v2"), "the release's image tag: {diffs}");
    for secret in ["token-one-7c1d", "token-two-93ab", "dG9rZW4tb25lLTdjMWQ", "dG9rZW4tdHdvLTkzYWI"] {
        assert!(!diffs.contains(secret) && !changed.stdout.contains(secret), "{secret} shown");
    }
    assert!(!diffs.contains("managedFields") && !diffs.contains("resourceVersion"), "{diffs}");
    assert_eq!(versions().await, before, "a diff changed the cluster");
    let status = crate::testenv::run(env.helm().args(["history", "party", "-n", n, "-o", "json"])).await;
    let revisions: Vec<Value> = serde_json::from_str(&status).unwrap();
    assert_eq!(revisions.len(), 1, "a diff made a release revision: {status}");
}

/// How many objects the plan's Helm releases hold.
fn release_objects(plan: &Value) -> u64 {
    ops(plan)
        .iter()
        .filter(|o| o["action"] == "helm upgrade")
        .map(|o| o["objects"].as_array().map_or(0, |a| a.len() as u64))
        .sum()
}

/// The actions of a plan, `action target` each.
pub(crate) fn actions(plan: &Value) -> Vec<String> {
    ops(plan).iter().map(|o| format!("{} {}", o["action"].as_str().unwrap(), o["target"].as_str().unwrap())).collect()
}

/// A successful `--plan --output json` of a playbook: its plan, and the run.
fn plan_json(env: &TestEnv, playbook: &str, args: &[&str]) -> (Value, crate::harness::Run) {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let r = planned(env, playbook, &all).code(0).run();
    (plan_of(&r), r)
}

#[tokio::test]
async fn every_other_playbook_plans_without_a_cluster() {
    let env = testenv!();
    let plan = |playbook: &str, args: &[&str]| plan_json(&env, playbook, args);
    let guard = "k8s require_context arn:aws:eks:*, *.ts.net".to_string();

    let (p, _) = plan("playbooks/deploy.rhai", &[]);
    let parties: Vec<String> = (1..=4).map(|i| format!("kms-test/kms-core-{i}")).collect();
    assert!(parties.iter().all(|r| releases(&p).contains(r)), "{:?}", releases(&p));
    let (p, _) = plan("playbooks/kind-local.rhai", &["--yes"]);
    assert!(releases(&p).contains(&"kms-test/kms-core-init".to_string()), "{:?}", releases(&p));

    // The preview namespace as it would be applied: labelled, with its RoleBinding.
    let (p, r) = plan("playbooks/aws-ci.rhai", &["--pr-number", "12", "--owner", "octo"]);
    let a = actions(&p);
    assert_eq!(a.iter().filter(|x| **x == guard).count(), 1, "the context guard once: {a:?}");
    assert!(a.contains(&"k8s apply Namespace kms-test".to_string()), "{a:?}");
    assert!(a.contains(&"k8s apply RoleBinding kms-test/kms-dev-binding".to_string()), "{a:?}");
    let ns = std::fs::read_to_string(r.path().join("art/plan/apply-namespace-kms-test.yaml")).unwrap();
    let ns = &kmsctl_k8s::parse_manifests(&ns).unwrap()[0];
    assert_eq!(ns["metadata"]["labels"]["kmsctl.io/preview"], "true");
    assert_eq!(ns["metadata"]["labels"]["kmsctl.io/pr"], "12");

    // Upgrades of an empty cluster: every party's release, nothing else changed.
    let (p, _) = plan(
        "playbooks/rolling-upgrade.rhai",
        &["--old-tag", "v1", "--new-tag", "v2", "--all-upgraded-parties", "1,2", "--deployment-type", "threshold"],
    );
    assert!(releases(&p).contains(&"kms-ci/kms-core-2".to_string()), "{:?}", releases(&p));

    // Destroying what an empty cluster does not have changes nothing; the guard is kept.
    for (playbook, args) in [
        ("playbooks/pr-preview-destroy.rhai", &["--namespace", "kms-ci-pr-12"][..]),
        ("playbooks/perf-cleanup.rhai", &["--namespace", "kms-ci"][..]),
    ] {
        let (p, _) = plan(playbook, args);
        assert_eq!(actions(&p), std::slice::from_ref(&guard), "{playbook}");
    }

    // Local files are changes too: recorded, not written.
    let (p, r) = plan("playbooks/collect-logs.rhai", &[]);
    let writes: Vec<String> = actions(&p).into_iter().filter(|a| a.starts_with("fs write")).collect();
    assert_eq!(writes.len(), 4, "{writes:?}");
    assert!(!r.path().join("kms-core-1-logs.txt").exists());
    let (p, _) = plan("playbooks/network-diagnostics.rhai", &["--phase", "before-perf"]);
    assert!(
        actions(&p).iter().any(|a| a.starts_with("fs write network-diagnostics/before-perf/pods.tsv")),
        "{:?}",
        actions(&p)
    );

    // The nightly perf job: the 13 parties, and the workflow it would submit (not waited for).
    let (p, _) = plan("playbooks/perf-run.rhai", &["--num-parties", "13", "--tag", "v1", "--eks-cluster", "zws-dev"]);
    let a = actions(&p);
    assert!(releases(&p).contains(&"kms-ci/kms-core-13".to_string()), "{:?}", releases(&p));
    assert_eq!(a.iter().filter(|x| x.starts_with("k8s apply Workflow kms-ci/kms-perf-")).count(), 1, "{a:?}");
    // The sampler only reads: offline it never starts.
    let (p, r) = plan("playbooks/sample-cpu.rhai", &["--duration", "1s"]);
    assert!(actions(&p).is_empty(), "{:?}", actions(&p));
    assert!(!r.path().join("art/core-cpu-samples.log").exists());
}

/// The rolling-upgrade run's arguments in the plan tests.
const ROLLING_RUN: &[&str] = &[
    "--old-tag",
    "v1",
    "--new-tag",
    "v2",
    "--num-parties",
    "4",
    "--parties-to-upgrade",
    "1,2",
    "--eks-cluster",
    "zws-dev",
];

/// The delivery playbooks, chart CI and the rolling-upgrade run plan too: what they would
/// deploy, test and submit, with the waits and gates said, not run.
#[tokio::test]
async fn the_release_chart_ci_and_rolling_upgrade_run_playbooks_plan_without_a_cluster() {
    let env = testenv!();
    let plan = |playbook: &str, args: &[&str]| plan_json(&env, playbook, args);
    let chart = format!("{}/tests/charts/web", root());
    let (p, r) = plan(
        "playbooks/release.rhai",
        &["--chart", &chart, "--release", "web", "--namespace", "shop", "--env", "staging"],
    );
    assert_eq!(releases(&p), ["shop/web"]);
    assert!(
        !actions(&p).iter().any(|a| a.starts_with("helm uninstall")),
        "a plan is no failed health gate: {:?}",
        actions(&p)
    );
    assert!(
        crate::k8s::logs(&r.events()).iter().any(|m| m == "plan: 3 rounds of health gates on web after the deploy")
    );

    let (p, _) = plan("playbooks/chart-ci.rhai", &[]);
    let a = actions(&p);
    assert!(a.iter().any(|x| x == "helm test kms-chart-ci/kms-core-1"), "{a:?}");
    assert!(a.iter().any(|x| x.starts_with("helm uninstall")), "the install step cleans up: {a:?}");

    // Its baseline workflow's output feeds the mixed one: a placeholder in a plan; the enclave
    // images' PCRs too.
    let (p, r) = plan("playbooks/rolling-upgrade-run.rhai", ROLLING_RUN);
    let workflows: Vec<String> = actions(&p).into_iter().filter(|a| a.starts_with("k8s apply Workflow")).collect();
    assert_eq!(workflows.len(), 2, "{workflows:?}");
    let mixed =
        walk(&r.path().join("art/plan")).into_iter().find(|f| f.to_string_lossy().contains("kms-rolling-mixed"));
    let mixed = std::fs::read_to_string(mixed.expect("the mixed workflow's manifest")).unwrap();
    assert!(mixed.contains("<output request-id of insecure-key-gen in kms-perf-"), "{mixed}");
}

#[tokio::test]
async fn kind_lifecycle_plans_its_background_deploy_and_its_stop() {
    let env = testenv!();
    let r = planned(&env, "playbooks/kind-lifecycle.rhai", &["--action", "start", "--output", "json"]).code(0).run();
    let a = actions(&plan_of(&r));
    assert!(a[0].starts_with("proc start ") && a[0].contains("kind-ci.rhai --block"), "{a:?}");
    assert!(a[0].ends_with("(detached: outlives the run)"), "{a:?}");
    assert!(a[1].starts_with("fs write .kmsctl-lifecycle.json"), "{a:?}");
    assert!(!r.path().join(".kmsctl-lifecycle.json").exists(), "the state file was written");
    // A state file left by a start whose process is gone: stop would find nothing to stop.
    let state = r#"{"pid": 999999, "playbook": "kind-ci.rhai", "namespace": "kms-test", "created_cluster": true}"#;
    let r = planned(&env, "playbooks/kind-lifecycle.rhai", &["--action", "stop", "--output", "json"])
        .file(".kmsctl-lifecycle.json", state)
        .code(0)
        .run();
    let p = plan_of(&r);
    assert_eq!(
        actions(&p),
        ["proc stop_pid 999999 (kind-ci.rhai)", "kind delete_cluster kms-test", "fs remove .kmsctl-lifecycle.json"]
    );
    assert_eq!(ops(&p)[0]["note"], "not running: nothing to stop");
    assert!(r.path().join(".kmsctl-lifecycle.json").exists(), "the state file was removed");
}

/// The plan of every playbook that plans without a cluster, as `kmsctl run --plan` prints it:
/// a snapshot each (canary and blue/green plan from the live cluster: their tests in
/// tests/it/playbooks). Unix times in generated names and the temp dirs are filtered.
#[tokio::test]
async fn every_playbooks_plan_is_snapshotted() {
    let env = testenv!();
    let web = format!("{}/tests/charts/web", root());
    let cases: &[(&str, &[&str])] = &[
        ("deploy", &[]),
        ("kind-local", &["--yes"]),
        ("kind-ci", &[]),
        ("kind-lifecycle", &["--action", "start"]),
        ("aws-ci", &["--pr-number", "12", "--owner", "octo"]),
        ("aws-perf", &["--target", "aws-perf", "--num-parties", "13", "--eks-cluster", "zws-dev"]),
        ("perf-run", &["--num-parties", "13", "--tag", "v1", "--eks-cluster", "zws-dev"]),
        (
            "rolling-upgrade",
            &["--old-tag", "v1", "--new-tag", "v2", "--all-upgraded-parties", "1,2", "--deployment-type", "threshold"],
        ),
        ("rolling-upgrade-run", ROLLING_RUN),
        ("pr-preview-destroy", &["--namespace", "kms-ci-pr-12"]),
        ("perf-cleanup", &["--namespace", "kms-ci"]),
        ("collect-logs", &[]),
        ("network-diagnostics", &["--phase", "before-perf"]),
        ("sample-cpu", &["--duration", "1s"]),
        ("chart-ci", &[]),
        ("release", &["--chart", &web, "--release", "web", "--namespace", "shop", "--env", "staging"]),
    ];
    let unix = regex::Regex::new(r"\b1[78]\d{8}\b").expect("regex");
    // Charts this machine cannot fetch (OCI registries, chart repositories) are planned
    // unrendered; helm's own error text depends on the network.
    let unfetched =
        regex::Regex::new(r"(note: not rendered: helm template \S+ \S+ failed) \(exit code \d+\): .*").expect("regex");
    let mut snapshotted = Vec::new();
    for (name, args) in cases {
        let r = planned(&env, &format!("playbooks/{name}.rhai"), args).code(0).run();
        // The binary first: CI builds into a target directory outside the clone (scripts/lib.sh).
        let text = r.stdout.replace(crate::harness::bin(), "[kmsctl]");
        let text = text.replace(&root(), "[root]").replace(&r.path().display().to_string(), "[tmp]");
        let text = unix.replace_all(&text, "[unix]");
        let text = unfetched.replace_all(&text, "$1: [helm's error]");
        assert!(text.starts_with(&format!("Plan for [root]/playbooks/{name}.rhai")), "{name}:\n{text}");
        insta::assert_snapshot!(format!("plan-{name}"), text);
        snapshotted.push(name.to_string());
    }
    // Every playbook of the repository is covered, here or (from the cluster) in its own tests.
    let mut all: Vec<String> = std::fs::read_dir(format!("{}/playbooks", root()))
        .expect("playbooks")
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".rhai").map(str::to_string))
        .collect();
    all.retain(|p| !["canary", "bluegreen"].contains(&p.as_str()));
    all.sort();
    snapshotted.sort();
    assert_eq!(snapshotted, all, "a playbook without a plan snapshot");
}

/// In a plan, the releases of a `parallel` group render at once (the tasks record one after
/// another, then their renders are awaited): a local chart that does not render still fails
/// its task, naming the release and helm's reason, and the other releases are planned in
/// the playbook's order.
#[tokio::test]
async fn a_release_that_does_not_render_in_a_parallel_plan_fails_its_task() {
    let env = testenv!();
    let k = kmsctl()
        .file("chart/Chart.yaml", "apiVersion: v2\nname: c\nversion: 0.1.0\n")
        .file(
            "chart/templates/cm.yaml",
            "{{ if eq .Release.Name \"b\" }}{{ fail \"b cannot render\" }}{{ end }}\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
        )
        .file(
            "p.rhai",
            r#"
            import "k8s" as k8s;
            import "helm" as helm;
            let kc = k8s::connect();
            parallel_map(["a", "b", "c"], |r| helm::upgrade(kc, r, "chart", #{ namespace: "shop" }), #{ fail_fast: false });
            "#,
        )
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("KMSCTL_HELM", &env.dir.join("bin/helm").display().to_string())
        .args(["run", "p.rhai", "--plan", "--artifacts", "art"]);
    let r = helm_homes(k, &env).code(1).run();
    assert!(r.stderr.contains("1 of 3 tasks failed: b: "), "{}", r.stderr);
    assert!(r.stderr.contains("b cannot render"), "{}", r.stderr);
    let a = r.stderr.find("plan: helm upgrade release shop/a").expect("a planned");
    let c = r.stderr.find("plan: helm upgrade release shop/c").expect("c planned");
    assert!(a < c, "in the playbook's order:\n{}", r.stderr);
    assert!(
        r.path().join("art/plan/helm-shop-a.yaml").is_file() && r.path().join("art/plan/helm-shop-c.yaml").is_file()
    );
}
