//! Port-forwards managed by the host. kwok's ClusterPortForward sends the pod's port 8080 to a
//! TCP echo server this test runs on 127.0.0.1, so bytes really cross the API server and kwok's
//! kubelet stand-in.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::await_condition;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Cleanup, Live, kwok, playbook, run_finished};
use crate::testenv::{TestEnv, TestNamespace, testenv, within};

const ECHO: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: echo}
spec:
  replicas: 1
  serviceName: echo
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: main
        image: echo:test
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{port: 80, targetPort: http}]
"#;

/// An echo server on 127.0.0.1 (`echo:<bytes>` back for each read) and a ClusterPortForward
/// sending port 8080 of the namespace's pods to it. Serves until the test ends.
async fn echo_behind_kwok(env: &TestEnv, ns: &TestNamespace) -> Cleanup {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&[b"echo:", &buf[..n]].concat()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let (_, cleanup) = kwok(
        env,
        "ClusterPortForward",
        "echo",
        json!({"selector": {"matchNamespaces": [ns.name]},
               "forwards": [{"ports": [8080], "target": {"address": "127.0.0.1", "port": port}}]}),
    )
    .await;
    cleanup
}

/// Send `msg` through 127.0.0.1:port and read the answer.
async fn roundtrip(port: u16, msg: &str) -> String {
    within(30, "an answer through the forward", async {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.expect("connect to the forward");
        s.write_all(msg.as_bytes()).await.expect("write");
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await.expect("read");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
}

/// Until nothing listens on the port any more.
async fn until_closed(port: u16) {
    within(10, "the forward's port to close", async {
        while TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

fn ports(line: &str) -> Vec<u16> {
    line.split_whitespace().map(|p| p.parse().expect("port")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forwards_to_a_pod_and_a_service_survive_a_pod_restart() {
    let env = testenv!();
    let ns = env.namespace("pf").await;
    let _pf = echo_behind_kwok(&env, &ns).await;
    let mut live = Live::start(
        playbook(
            &env,
            r#"
            import "k8s" as k8s;
            import "log" as log;
            let kc = k8s::connect();
            let ns = "@NS@";
            kc.wait(kc.apply_file("echo.yaml", #{ namespace: ns }));
            let pod = kc.port_forward("pod/echo-0", #{ namespace: ns, port: 8080 });
            let svc = kc.port_forward("svc/echo", #{ namespace: ns, port: 80 });
            let tmp = kc.port_forward("echo-0", #{ namespace: ns, port: 8080 });
            log::info(`ports: ${pod.local_port()} ${svc.local_port()} ${tmp.local_port()}`);
            tmp.stop();
            log::info(`stopped: ${tmp}`);
            kc.wait(#{ kind: "ConfigMap", name: "done", namespace: ns }, #{ timeout: "3m" });
            log::info("done");
            "#,
            &[("NS", &ns.name)],
        )
        .file("echo.yaml", ECHO),
    );
    let p = ports(&live.log("ports: ").await);
    let (pod_port, svc_port, tmp_port) = (p[0], p[1], p[2]);
    live.log("stopped: ").await;
    assert_eq!(roundtrip(pod_port, "to the pod").await, "echo:to the pod");
    assert_eq!(roundtrip(svc_port, "to the service").await, "echo:to the service");
    until_closed(tmp_port).await;

    // The StatefulSet replaces the pod: same name, new uid. New connections reach the new pod.
    let pods = Api::<Pod>::namespaced(env.client.clone(), &ns.name);
    let old_uid = pods.get("echo-0").await.expect("pod").metadata.uid.expect("uid");
    pods.delete("echo-0", &DeleteParams::default()).await.expect("delete pod");
    within(
        60,
        "a new ready echo-0",
        await_condition(pods.clone(), "echo-0", move |p: Option<&Pod>| {
            p.is_some_and(|p| {
                p.metadata.uid.as_deref() != Some(old_uid.as_str())
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
        }),
    )
    .await
    .expect("watch pod");
    assert_eq!(roundtrip(pod_port, "after the restart").await, "echo:after the restart");
    assert_eq!(roundtrip(svc_port, "again").await, "echo:again");

    let cms = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(env.client.clone(), &ns.name);
    let done = serde_json::from_value(json!({"metadata": {"name": "done"}})).expect("cm");
    cms.create(&PostParams::default(), &done).await.expect("create ConfigMap");
    live.log("done").await;
    let ended = live.end().await;
    ended.code(0);
    let mut closed: Vec<String> =
        serde_json::from_value(run_finished(&ended.events)["closed"].clone()).expect("closed");
    closed.sort();
    let mut want = [
        format!("port-forward 127.0.0.1:{pod_port} → {}/pod/echo-0:8080", ns.name),
        format!("port-forward 127.0.0.1:{svc_port} → {}/svc/echo:80", ns.name),
    ];
    want.sort();
    assert_eq!(closed, want, "the run summary lists the forwards it closed (not the one stopped before)");
    until_closed(pod_port).await;
    until_closed(svc_port).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_tears_port_forwards_down() {
    let env = testenv!();
    let ns = env.namespace("pf-int").await;
    let _pf = echo_behind_kwok(&env, &ns).await;
    let mut live = Live::start(
        playbook(
            &env,
            r#"
            import "k8s" as k8s;
            import "log" as log;
            let kc = k8s::connect();
            let ns = "@NS@";
            kc.wait(kc.apply_file("echo.yaml", #{ namespace: ns }));
            let svc = kc.port_forward("svc/echo", #{ namespace: ns, port: 80 });
            log::info(`port: ${svc.local_port()}`);
            kc.wait(#{ kind: "ConfigMap", name: "never", namespace: ns }, #{ timeout: "3m" });
            "#,
            &[("NS", &ns.name)],
        )
        .file("echo.yaml", ECHO),
    );
    let port: u16 = live.log("port: ").await.parse().expect("port");
    assert_eq!(roundtrip(port, "hello").await, "echo:hello");
    live.until("the wait to start", |e| e["event"] == "step_started").await;
    let t = std::time::Instant::now();
    live.signal("INT");
    let ended = live.end().await;
    let took = t.elapsed();
    ended.code(130);
    assert!(took < std::time::Duration::from_secs(2), "exit took {took:?}");
    let closed = &run_finished(&ended.events)["closed"];
    assert_eq!(closed, &json!([format!("port-forward 127.0.0.1:{port} → {}/svc/echo:80", ns.name)]));
    until_closed(port).await;
}

/// Regression: the readiness check only proved that the API server upgraded the connection, so
/// a forward to a port the node cannot reach "started" and then dropped every connection. It
/// now fails at once with the node's reason (here: kwok has no forward for that port).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_to_a_port_the_node_cannot_reach_fails_at_start() {
    let env = testenv!();
    let ns = env.namespace("pf-none").await;
    let r = super::finish(
        playbook(
            &env,
            r#"
            import "k8s" as k8s;
            import "log" as log;
            let kc = k8s::connect();
            let ns = "@NS@";
            kc.wait(kc.apply_file("echo.yaml", #{ namespace: ns }));
            let f = kc.port_forward("pod/echo-0", #{ namespace: ns, port: 8080 });
            log::info(`started: ${f}`);
            "#,
            &[("NS", &ns.name)],
        )
        .file("echo.yaml", ECHO),
    )
    .await;
    r.code(4);
    let ev = r.events();
    let (kind, message) = super::error_of(&ev);
    assert_eq!(kind, "unavailable");
    assert!(message.contains(&format!("port-forward to pod {}/echo-0:8080: ", ns.name)), "{message}");
    assert!(message.contains("no forward found for port 8080"), "{message}");
    assert!(super::logs(&ev).iter().all(|l| !l.starts_with("started: ")));
    assert!(run_finished(&ev).get("closed").is_none(), "nothing to close");
}
