//! Running a command in a pod's container.

use crate::client::Cluster;
use crate::error::K8sError;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a command printed and how it exited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExecOutput {
    /// Exit code (0 on success).
    pub(crate) code: i64,
    /// Standard output.
    pub(crate) stdout: String,
    /// Standard error.
    pub(crate) stderr: String,
}

/// Run `command` (no shell unless you call one) in `pod`'s `container` (default: the pod's
/// default container, see [`crate::logs::container_or_default`]), feeding `stdin` when given.
pub(crate) async fn exec(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    command: &[String],
    stdin: Option<&[u8]>,
) -> Result<ExecOutput, K8sError> {
    let api: Api<Pod> = Api::namespaced(cluster.client().clone(), namespace);
    let mut ap = AttachParams::default().stdout(true).stderr(true).stdin(stdin.is_some());
    if let Some(c) = crate::logs::container_or_default(&api, namespace, pod, container).await? {
        ap = ap.container(c);
    }
    let what = format!("exec in pod {namespace}/{pod}");
    let mut proc = api.exec(pod, command.to_vec(), &ap).await.map_err(|e| K8sError::from_kube(&what, e))?;
    if let (Some(data), Some(mut w)) = (stdin, proc.stdin()) {
        w.write_all(data).await.map_err(|e| K8sError::Unreachable(format!("{what}: {e}")))?;
        drop(w);
    }
    let (mut out, mut err) = (String::new(), String::new());
    let (stdout, stderr, status) = (proc.stdout(), proc.stderr(), proc.take_status());
    let read_out = async {
        if let Some(mut r) = stdout {
            let _ = r.read_to_string(&mut out).await;
        }
    };
    let read_err = async {
        if let Some(mut r) = stderr {
            let _ = r.read_to_string(&mut err).await;
        }
    };
    tokio::join!(read_out, read_err);
    let status = match status {
        Some(s) => s.await,
        None => None,
    };
    let code = match status {
        Some(s) if s.status.as_deref() == Some("Success") => 0,
        Some(s) => s
            .details
            .and_then(|d| d.causes)
            .and_then(|causes| causes.into_iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
            .and_then(|c| c.message)
            .and_then(|m| m.parse().ok())
            .unwrap_or(1),
        None => 0,
    };
    Ok(ExecOutput { code, stdout: out, stderr: err })
}
