//! Waiting on many objects costs a few watches, not a request per object per poll, and shows
//! live progress naming what is still pending and why.
//!
//! 200 custom resources of a CRD group only this test uses, so the API server's own metrics
//! count this wait's requests alone: open watches (`apiserver_longrunning_requests`, excluding
//! the controllers' cluster-wide watches) and GETs of single objects (`apiserver_request_total`).

use futures::StreamExt;
use serde_json::json;

use super::{Crd, Live, cond, metric, metrics, playbook, step};
use crate::testenv::{TestEnv, testenv};

const N: usize = 200;

async fn set_all(env: &TestEnv, crd: &Crd, ns: &str, range: std::ops::Range<usize>, ready: bool) {
    futures::stream::iter(range)
        .map(|i| async move {
            let c = if ready { cond("Ready", "True", "Done", "") } else { cond("Ready", "False", "Provisioning", "") };
            if ready {
                crd.set_conditions(env, ns, &format!("w-{i}"), json!([c])).await;
            } else {
                crd.widget(env, ns, &format!("w-{i}"), json!([c])).await;
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
}

/// (open namespaced watches of the group, GET requests of the group so far)
async fn requests(env: &TestEnv, group: &str) -> (f64, f64) {
    let m = metrics(env).await;
    let watches =
        metric(&m, "apiserver_longrunning_requests", &[("group", group), ("verb", "WATCH")], &[("scope", "cluster")]);
    let gets = metric(&m, "apiserver_request_total", &[("group", group), ("verb", "GET")], &[]);
    (watches, gets)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_on_200_objects_uses_one_watch_and_shows_what_is_pending() {
    let env = testenv!();
    let ns = env.namespace("many").await;
    let crd = Crd::create(&env, "many").await;
    set_all(&env, &crd, &ns.name, 0..N, false).await;

    let mut live = Live::start(playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "log" as log;
        let kc = k8s::connect();
        let targets = [];
        for i in 0..@N@ { targets.push(#{ api_version: "@AV@", kind: "Widget", namespace: "@NS@", name: `w-${i}` }); }
        let ready = kc.wait(targets, #{ timeout: "5m", what: "the widgets" });
        log::info(`ready: ${ready.len()}`);
        "#,
        &[("NS", &ns.name), ("AV", &crd.api_version), ("N", &N.to_string())],
    ));
    let w = |i: usize| format!("Widget {}/w-{i} (not ready: Provisioning)", ns.name);
    assert_eq!(
        live.progress("0/200 ready").await,
        format!("0/200 ready; waiting for {}, {}, {} and 197 more", w(0), w(1), w(2))
    );
    // (The watch itself may still be starting: the list is done, progress is shown.)
    assert_eq!(requests(&env, &crd.group).await.1, 0.0, "no GET of single objects");

    set_all(&env, &crd, &ns.name, 0..N / 2, true).await;
    assert_eq!(
        live.progress("100/200 ready").await,
        format!("100/200 ready; waiting for {}, {}, {} and 97 more", w(100), w(101), w(102))
    );
    assert_eq!(requests(&env, &crd.group).await, (1.0, 0.0), "(open watches, GETs) while waiting on 200 objects");

    set_all(&env, &crd, &ns.name, N / 2..N, true).await;
    assert_eq!(live.log("ready: ").await, "200");
    let ended = live.end().await;
    ended.code(0);
    assert_eq!(step(&ended.events, "wait for the widgets")["outcome"], "ok");
}

/// 13 parties waiting at once on their own objects of one kind in one namespace share a single
/// watch (each opened its own before: 13 × kinds watches and a copy of the namespace's pods per
/// wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirteen_parallel_waits_share_one_watch() {
    let env = testenv!();
    let ns = env.namespace("shared").await;
    let crd = Crd::create(&env, "shared").await;
    set_all(&env, &crd, &ns.name, 0..13, false).await;

    let mut live = Live::start(playbook(
        &env,
        r#"
        import "k8s" as k8s;
        import "log" as log;
        let kc = k8s::connect();
        let parties = [];
        for i in 0..13 { parties.push(i); }
        // (A copy of the captured client per task: a method call on the captured one itself
        // would lock it for the call's duration.)
        let ready = parallel_map(parties, |i| {
            let k = kc;
            k.wait(#{ api_version: "@AV@", kind: "Widget", namespace: "@NS@", name: `w-${i}` }, #{ timeout: "5m" }).len()
        }, #{ labels: parties.map(|i| `party-${i}`) });
        log::info(`ready: ${ready.reduce(|sum, n| sum + n, 0)}`);
        "#,
        &[("NS", &ns.name), ("AV", &crd.api_version)],
    ));
    // Every party is waiting (its progress shown) before the count is read.
    let mut waiting = std::collections::BTreeSet::new();
    while waiting.len() < 13 {
        let p = live.progress("(not ready: Provisioning)").await;
        waiting.insert(
            p.split(&format!("{}/", ns.name))
                .nth(1)
                .unwrap_or_default()
                .split(' ')
                .next()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(requests(&env, &crd.group).await, (1.0, 0.0), "(open watches, GETs) while 13 waits run");

    set_all(&env, &crd, &ns.name, 0..13, true).await;
    assert_eq!(live.log("ready: ").await, "13");
    live.end().await.code(0);
}
