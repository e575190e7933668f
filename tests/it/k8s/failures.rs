//! Failure paths, driven by kwok stages: a crash-looping Deployment fails its wait at once with
//! a failure report (snapshotted), a Job that fails, a pod that stays unschedulable, and a pod
//! that becomes ready late (which is not a failure).

use serde_json::{Value, json};

use super::{
    CRASH_LOOP_STATUS, FAILED_STATUS, READY_STATUS, all_files, artifact, cri_log, error_of, finish, kwok, logs,
    playbook, pod_stage, progress, step,
};
use crate::testenv::testenv;

fn deployment(name: &str, stage: &str, extra_spec: Value) -> String {
    let mut spec = json!({"containers": [{"name": name, "image": "kms-core:test"}]});
    for (k, v) in extra_spec.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name, "testenv.kmsctl/stage": stage}}, "spec": spec},
        },
    })
    .to_string()
}

const APPLY_AND_WAIT: &str = r#"
    import "k8s" as k8s;
    let kc = k8s::connect();
    let objs = kc.apply_file("m.json", #{ namespace: "@NS@" });
    kc.wait(objs, @OPTS@);
    "#;

/// The failure report's contents: the blocking pod, its owners, its container's state and exit
/// code, its current and previous logs (served by kwok from files through a ClusterLogs), the
/// events; a short summary on the terminal and files under the artifacts dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_deployment_fails_fast_with_a_report() {
    let env = testenv!();
    let ns = env.namespace("crash").await;
    let logs_dir = tempfile::tempdir().expect("temp dir");
    let (current, previous) = (logs_dir.path().join("current.log"), logs_dir.path().join("previous.log"));
    std::fs::write(&current, cri_log(&["starting kms-core", "waiting for peers"])).expect("write log");
    let crashed: Vec<String> = (1..=60).map(|i| format!("line {i}")).collect();
    let mut crashed: Vec<&str> = crashed.iter().map(String::as_str).collect();
    crashed.push("panicked at 'cannot read the signing key: file not found'");
    std::fs::write(&previous, cri_log(&crashed)).expect("write log");
    let (_logs, _logs_cleanup) = kwok(
        &env,
        "ClusterLogs",
        "crash-logs",
        json!({"selector": {"matchNamespaces": [ns.name]},
               "logs": [{"containers": ["kms-core"], "logsFile": current, "previousLogsFile": previous}]}),
    )
    .await;
    let (stage, _stage_cleanup) = pod_stage(&env, "crash", 0, CRASH_LOOP_STATUS).await;

    let r = finish(
        playbook(&env, APPLY_AND_WAIT, &[("NS", &ns.name), ("OPTS", r#"#{ timeout: "2m" }"#)])
            .file("m.json", &deployment("kms-core", &stage, json!({}))),
    )
    .await;
    r.code(1);
    let ev = r.events();
    let (kind, message) = error_of(&ev);
    assert_eq!(kind, "failed");
    let prefix = format!("Deployment {}/kms-core: pod kms-core-", ns.name);
    assert!(message.starts_with(&prefix), "{message}");
    assert!(message.ends_with(": CrashLoopBackOff in container kms-core (exit code 1, 4 restarts)"), "{message}");
    let pod = message[prefix.len() - "kms-core-".len()..].split(':').next().expect("pod").to_string();
    let wait = step(&ev, &format!("wait for Deployment {}/kms-core", ns.name));
    assert_eq!(wait["outcome"], "failed");
    assert!(wait["duration_ms"].as_u64().expect("duration") < 60_000, "failed fast, not at the timeout");

    // The files.
    let rel = format!("failures/pod-{}-{pod}", ns.name);
    let summary = artifact(&r.path(), &format!("{rel}/summary.txt"));
    let report: Value = serde_json::from_str(&artifact(&r.path(), &format!("{rel}/report.json"))).expect("json");
    assert_eq!(report["object"]["kind"], "Pod");
    assert_eq!(report["object"]["name"], pod.as_str());
    let owners: Vec<&str> =
        report["owners"].as_array().expect("owners").iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(owners, ["ReplicaSet", "Deployment"]);
    let c = &report["pods"][0]["containers"][0];
    assert_eq!(c["state"], "waiting: CrashLoopBackOff");
    assert_eq!(c["last_state"], "terminated: Error (exit code 1)");
    assert_eq!(c["restart_count"], 4);
    let tails = report["pods"][0]["logs"].as_array().expect("logs");
    let tail = |previous: bool| {
        tails.iter().find(|t| t["previous"] == previous).unwrap_or_else(|| panic!("no log tail (previous: {previous})"))
    };
    assert_eq!(tail(false)["lines"], json!(["starting kms-core", "waiting for peers"]));
    let prev_lines = tail(true)["lines"].as_array().expect("lines");
    assert_eq!(prev_lines.len(), 50, "the last 50 lines");
    assert_eq!(prev_lines.last(), Some(&json!("panicked at 'cannot read the signing key: file not found'")));
    assert_eq!(
        artifact(&r.path(), &format!("{rel}/logs/{pod}.kms-core.log")),
        "starting kms-core\nwaiting for peers\n"
    );
    assert!(artifact(&r.path(), &format!("{rel}/logs/{pod}.kms-core.previous.log")).starts_with("line 12\nline 13\n"));
    assert!(report["events"].as_array().expect("events").iter().any(|e| e["reason"] == "ScalingReplicaSet"));

    // The terminal gets the summary (and where the report is).
    let errors: Vec<String> = ev
        .iter()
        .filter(|e| e["event"] == "log" && e["level"] == "error")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(errors.len(), summary.lines().count() + 1, "{errors:#?}");
    assert!(errors.last().is_some_and(|l| l.starts_with("failure report: ") && l.ends_with(&rel)), "{errors:#?}");
    let rs = report["owners"][0]["name"].as_str().expect("rs").to_string();
    let node = report["pods"][0]["node"].as_str().expect("node").to_string();
    let (pod_re, rs_re, ns_re, node_re) =
        (regex::escape(&pod), regex::escape(&rs), regex::escape(&ns.name), regex::escape(&node));
    insta::with_settings!({filters => vec![
        (pod_re.as_str(), "[pod]"),
        (rs_re.as_str(), "[rs]"),
        (ns_re.as_str(), "[ns]"),
        (node_re.as_str(), "[node]"),
    ]}, {
        insta::assert_snapshot!(summary, @r"
        Pod [ns]/[pod]: CrashLoopBackOff in container kms-core (exit code 1, 4 restarts)
          owners: ReplicaSet [rs] → Deployment kms-core
          pod [pod]: container kms-core waiting: CrashLoopBackOff, last terminated: Error (exit code 1), 4 restarts
          event Normal SuccessfulCreate on ReplicaSet [rs]: Created pod: [pod]
          event Normal Scheduled on Pod [pod]: Successfully assigned [ns]/[pod] to [node]
          last log lines of previous [pod]/kms-core:
            | line 59
            | line 60
            | panicked at 'cannot read the signing key: file not found'
        ");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_fails_the_wait_with_its_reason() {
    let env = testenv!();
    let ns = env.namespace("job-fail").await;
    let (stage, _cleanup) = pod_stage(&env, "job-fail", 0, FAILED_STATUS).await;
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"labels": {"testenv.kmsctl/stage": stage}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "migrate", "image": "migrate:test"}]}}},
    });
    let r = finish(
        playbook(&env, APPLY_AND_WAIT, &[("NS", &ns.name), ("OPTS", r#"#{ timeout: "2m" }"#)])
            .file("m.json", &job.to_string()),
    )
    .await;
    r.code(1);
    let ev = r.events();
    assert_eq!(
        error_of(&ev),
        (
            "failed".into(),
            format!("Job {}/migrate: BackoffLimitExceeded: Job has reached the specified backoff limit", ns.name)
        )
    );
    let report: Value =
        serde_json::from_str(&artifact(&r.path(), &format!("failures/job-{}-migrate/report.json", ns.name)))
            .expect("report.json");
    assert_eq!(report["reason"], "BackoffLimitExceeded: Job has reached the specified backoff limit");
    assert_eq!(report["pods"][0]["phase"], "Failed");
    assert_eq!(report["pods"][0]["containers"][0]["state"], "terminated: Error (exit code 1)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unschedulable_pod_fails_after_the_grace() {
    let env = testenv!();
    let ns = env.namespace("unsched").await;
    // No node has this label: the scheduler marks the pod Unschedulable.
    let d = deployment("picky", "none", json!({"nodeSelector": {"kmsctl.test/no-such-node": "true"}}));
    let r = finish(
        playbook(
            &env,
            APPLY_AND_WAIT,
            &[("NS", &ns.name), ("OPTS", r#"#{ timeout: "2m", unschedulable_grace: "2s" }"#)],
        )
        .file("m.json", &d),
    )
    .await;
    r.code(1);
    let ev = r.events();
    let (kind, message) = error_of(&ev);
    assert_eq!(kind, "failed");
    assert!(message.starts_with(&format!("Deployment {}/picky: pod picky-", ns.name)), "{message}");
    assert!(message.contains(": unschedulable for "), "{message}");
    assert!(message.contains("node(s) didn't match Pod's node affinity/selector"), "{message}");
    let ms = step(&ev, &format!("wait for Deployment {}/picky", ns.name))["duration_ms"].as_u64().expect("ms");
    // (lastTransitionTime has whole seconds: the grace may look up to a second longer than it is.)
    assert!((1000..30_000).contains(&ms), "failed after the 2s grace, not the default 30s: {ms}ms");
    assert!(
        progress(&ev).iter().any(|p| p.contains(&format!("Deployment {}/picky (", ns.name))),
        "pending before the grace ran out: {:?}",
        progress(&ev)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_becomes_ready_late_is_waited_for() {
    let env = testenv!();
    let ns = env.namespace("late").await;
    let (stage, _cleanup) = pod_stage(&env, "late", 3000, READY_STATUS).await;
    let r = finish(
        playbook(&env, APPLY_AND_WAIT, &[("NS", &ns.name), ("OPTS", r#"#{ timeout: "2m" }"#)])
            .file("m.json", &deployment("slow", &stage, json!({}))),
    )
    .await;
    r.code(0);
    let ev = r.events();
    let wait = step(&ev, &format!("wait for Deployment {}/slow", ns.name));
    assert_eq!(wait["outcome"], "ok");
    assert!(wait["duration_ms"].as_u64().expect("ms") >= 2500, "{wait}");
    let p = progress(&ev);
    assert!(p.iter().any(|m| m.starts_with(&format!("0/1 ready; waiting for Deployment {}/slow (", ns.name))), "{p:?}");
    assert!(logs(&ev).iter().all(|l| !l.contains("failure report")));
    assert!(all_files(&r.path().join("art")).iter().all(|(p, _)| !p.to_string_lossy().contains("failures")));
}
