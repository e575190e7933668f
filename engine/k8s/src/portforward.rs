//! Port-forwards managed by the host: a local listener on 127.0.0.1 whose every connection
//! opens its own stream to the pod. A Service target picks a ready pod per connection, and a
//! pod target is looked up again, so a forward keeps working when the pod restarts. The caller
//! registers [`Forward::stopper`] as a cleanup hook so forwards end with the run.

use crate::client::Cluster;
use crate::error::K8sError;
use crate::json::{at, condition_is, str_at};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long the readiness check listens for the node refusing the forward (it answers within a
/// round trip; silence means it connected).
const CHECK_GRACE: Duration = Duration::from_millis(500);

/// What to forward to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ForwardTarget {
    /// A pod by name.
    Pod(String),
    /// A Service: its selector picks a ready pod, its port maps to the pod's target port.
    Service(String),
}

impl ForwardTarget {
    /// `svc/name`, `service/name`, `pod/name` or a bare pod name.
    pub(crate) fn parse(s: &str) -> Self {
        match s.split_once('/') {
            Some(("svc" | "service" | "services", n)) => Self::Service(n.to_string()),
            Some(("pod" | "pods", n)) => Self::Pod(n.to_string()),
            _ => Self::Pod(s.to_string()),
        }
    }
}

/// A forward to set up.
#[derive(Clone, Debug)]
pub(crate) struct ForwardSpec {
    /// Namespace of the target.
    pub(crate) namespace: String,
    /// Pod or Service.
    pub(crate) target: ForwardTarget,
    /// The port on the pod, or the Service port.
    pub(crate) remote_port: u16,
    /// The local port on 127.0.0.1 (0 picks a free one).
    pub(crate) local_port: u16,
}

impl ForwardSpec {
    /// `127.0.0.1:50100 → svc/kms-core:50100 (ns)`.
    pub(crate) fn describe(&self, local: Option<SocketAddr>) -> String {
        let target = match &self.target {
            ForwardTarget::Pod(p) => format!("pod/{p}"),
            ForwardTarget::Service(s) => format!("svc/{s}"),
        };
        let local = local.map(|a| a.to_string()).unwrap_or_else(|| format!("127.0.0.1:{}", self.local_port));
        format!("{local} → {}/{target}:{}", self.namespace, self.remote_port)
    }
}

/// A running forward.
pub(crate) struct Forward {
    /// The local address.
    pub(crate) local: SocketAddr,
    /// A one-line description.
    pub(crate) description: String,
    stop: CancellationToken,
}

impl Forward {
    /// A handle that stops the forward (for cleanup hooks).
    pub(crate) fn stopper(&self) -> CancellationToken {
        self.stop.clone()
    }
}

/// Start a forward: check the target, bind the local port, prove a stream can be opened, then
/// serve connections until stopped.
pub(crate) async fn start(cluster: &Cluster, spec: ForwardSpec) -> Result<Forward, K8sError> {
    let (pod, port) = resolve(cluster, &spec).await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client().clone(), &spec.namespace);
    // Readiness check: the API server and the node agree to forward this port, and the node
    // reaches it. A node that cannot connect to the pod's port says so at once on the port's
    // error channel; one that connected stays silent.
    let what = format!("port-forward to pod {}/{pod}:{port}", spec.namespace);
    let mut pf = pods.portforward(&pod, &[port]).await.map_err(|e| K8sError::from_kube(&what, e))?;
    let (Some(stream), Some(error)) = (pf.take_stream(port), pf.take_error(port)) else {
        return Err(K8sError::Unreachable(format!("{what}: no stream")));
    };
    let refused = tokio::time::timeout(CHECK_GRACE, error).await;
    drop(stream);
    pf.abort();
    if let Ok(Some(message)) = refused {
        return Err(K8sError::Unreachable(format!("{what}: {}", message.trim())));
    }
    let listener = TcpListener::bind(("127.0.0.1", spec.local_port))
        .await
        .map_err(|e| K8sError::Usage(format!("cannot listen on 127.0.0.1:{}: {e}", spec.local_port)))?;
    let local = listener.local_addr().map_err(|e| K8sError::Usage(e.to_string()))?;
    let stop = CancellationToken::new();
    let description = spec.describe(Some(local));
    let (cluster, token) = (cluster.clone(), stop.clone());
    tokio::spawn(async move {
        loop {
            let conn = tokio::select! {
                _ = token.cancelled() => break,
                c = listener.accept() => c,
            };
            let Ok((mut socket, _)) = conn else { continue };
            let (cluster, spec, token) = (cluster.clone(), spec.clone(), token.clone());
            tokio::spawn(async move {
                let serve = async {
                    let (pod, port) = resolve(&cluster, &spec).await.map_err(|e| e.to_string())?;
                    let api: Api<Pod> = Api::namespaced(cluster.client().clone(), &spec.namespace);
                    let mut pf = api.portforward(&pod, &[port]).await.map_err(|e| e.to_string())?;
                    let mut upstream = pf.take_stream(port).ok_or("no stream")?;
                    let _ = tokio::io::copy_bidirectional(&mut socket, &mut upstream).await;
                    drop(upstream);
                    let _ = pf.join().await;
                    Ok::<_, String>(())
                };
                tokio::select! {
                    _ = token.cancelled() => {}
                    r = serve => if let Err(e) = r { tracing::debug!(error = %e, "port-forward connection failed") },
                }
            });
        }
    });
    Ok(Forward { local, description, stop })
}

/// The pod and pod port a forward should use now.
async fn resolve(cluster: &Cluster, spec: &ForwardSpec) -> Result<(String, u16), K8sError> {
    let pods: Api<Pod> = Api::namespaced(cluster.client().clone(), &spec.namespace);
    match &spec.target {
        ForwardTarget::Pod(p) => {
            let pod = pods
                .get_opt(p)
                .await
                .map_err(|e| K8sError::from_kube(&format!("get pod {}/{p}", spec.namespace), e))?;
            match pod {
                Some(_) => Ok((p.clone(), spec.remote_port)),
                None => Err(K8sError::NotFound(format!("pod {}/{p} does not exist", spec.namespace))),
            }
        }
        ForwardTarget::Service(s) => {
            let svcs: Api<Service> = Api::namespaced(cluster.client().clone(), &spec.namespace);
            let svc = svcs
                .get_opt(s)
                .await
                .map_err(|e| K8sError::from_kube(&format!("get service {}/{s}", spec.namespace), e))?
                .ok_or_else(|| K8sError::NotFound(format!("service {}/{s} does not exist", spec.namespace)))?;
            let svc = serde_json::to_value(svc).unwrap_or_default();
            let selector: Vec<String> = at(&svc, &["spec", "selector"])
                .and_then(Value::as_object)
                .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect())
                .unwrap_or_default();
            if selector.is_empty() {
                return Err(K8sError::Usage(format!("service {}/{s} has no selector to pick a pod", spec.namespace)));
            }
            let lp = ListParams { label_selector: Some(selector.join(",")), ..Default::default() };
            let list = pods.list(&lp).await.map_err(|e| K8sError::from_kube(&format!("pods of service {s}"), e))?;
            let mut ready: Vec<Value> = list
                .items
                .into_iter()
                .map(|p| serde_json::to_value(p).unwrap_or_default())
                .filter(|p| condition_is(p, "Ready", "True") && at(p, &["metadata", "deletionTimestamp"]).is_none())
                .collect();
            ready.sort_by(|a, b| str_at(a, &["metadata", "name"]).cmp(&str_at(b, &["metadata", "name"])));
            let pod = ready
                .first()
                .ok_or_else(|| K8sError::Unreachable(format!("service {}/{s} has no ready pod", spec.namespace)))?;
            Ok((
                str_at(pod, &["metadata", "name"]).unwrap_or_default().to_string(),
                target_port(&svc, pod, spec.remote_port),
            ))
        }
    }
}

/// Map a Service port to the pod's port (`targetPort`, numeric or a named container port).
fn target_port(svc: &Value, pod: &Value, port: u16) -> u16 {
    let ports = at(svc, &["spec", "ports"]).and_then(Value::as_array);
    let Some(p) =
        ports.and_then(|ps| ps.iter().find(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port))))
    else {
        return port;
    };
    match p.get("targetPort") {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()).unwrap_or(port),
        Some(Value::String(name)) => at(pod, &["spec", "containers"])
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .flat_map(|c| c.get("ports").and_then(Value::as_array).into_iter().flatten())
            .find(|cp| cp.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|cp| cp.get("containerPort").and_then(Value::as_u64))
            .and_then(|n| u16::try_from(n).ok())
            .unwrap_or(port),
        _ => port,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn targets_parse() {
        assert_eq!(ForwardTarget::parse("svc/kms"), ForwardTarget::Service("kms".into()));
        assert_eq!(ForwardTarget::parse("pod/p"), ForwardTarget::Pod("p".into()));
        assert_eq!(ForwardTarget::parse("p-0"), ForwardTarget::Pod("p-0".into()));
    }

    #[test]
    fn service_ports_map_to_numeric_and_named_target_ports() {
        let svc =
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 50100, "targetPort": "client"}]}});
        let pod = json!({"spec": {"containers": [{"ports": [{"name": "client", "containerPort": 50101}]}]}});
        assert_eq!(target_port(&svc, &pod, 80), 8080);
        assert_eq!(target_port(&svc, &pod, 50100), 50101);
        assert_eq!(target_port(&svc, &pod, 9999), 9999);
    }
}
