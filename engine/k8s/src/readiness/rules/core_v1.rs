//! core/v1 kinds besides pods: a PersistentVolumeClaim is done when Bound, a Service when it
//! exists, but a LoadBalancer needs an address (kstatus calls it Current without one).

use serde_json::Value;

use super::Assessment;
use crate::json::{at, str_at};

pub(super) fn pvc(obj: &Value) -> Assessment {
    match str_at(obj, &["status", "phase"]) {
        Some("Bound") => Assessment::ready("bound"),
        Some("Lost") => Assessment::failed("lost its volume"),
        Some(p) => Assessment::progressing(p.to_lowercase()),
        None => Assessment::progressing("pending"),
    }
}

pub(super) fn service(obj: &Value) -> Assessment {
    if str_at(obj, &["spec", "type"]) != Some("LoadBalancer") {
        return Assessment::ready("exists");
    }
    let ingress = at(obj, &["status", "loadBalancer", "ingress"])
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("hostname").or_else(|| i.get("ip")).and_then(Value::as_str).filter(|s| !s.is_empty()))
        .next();
    if let Some(addr) = ingress {
        return Assessment::ready(format!("address {addr}"));
    }
    let external =
        at(obj, &["spec", "externalIPs"]).and_then(Value::as_array).and_then(|a| a.first()).and_then(Value::as_str);
    if let Some(ip) = external {
        return Assessment::ready(format!("external IP {ip}"));
    }
    Assessment::progressing("waiting for a load balancer address")
}

#[cfg(test)]
mod tests {
    use crate::readiness::rules::Health;
    use crate::readiness::rules::tests::check;
    use serde_json::{Value, json};

    #[test]
    fn pvc_service_crd() {
        let pvc = |phase: Option<&str>| {
            let mut v = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}, "status": {}});
            if let Some(p) = phase {
                v["status"]["phase"] = json!(p);
            }
            v
        };
        let svc = |ty: &str, extra: Value, status: Value| {
            let mut spec = json!({"type": ty, "clusterIP": "10.0.0.7"});
            for (k, v) in extra.as_object().unwrap() {
                spec[k] = v.clone();
            }
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "api"}, "spec": spec, "status": status})
        };
        let crd = |conds: Value| {
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"}, "status": {"conditions": conds}})
        };
        check(&[
            ("pvc bound", pvc(Some("Bound")), Health::Ready, "bound"),
            ("pvc pending", pvc(Some("Pending")), Health::Progressing, "pending"),
            ("pvc lost", pvc(Some("Lost")), Health::Failed, "lost its volume"),
            ("pvc no status", pvc(None), Health::Progressing, "pending"),
            ("service ClusterIP", svc("ClusterIP", json!({}), json!({})), Health::Ready, "exists"),
            ("service headless", svc("ClusterIP", json!({"clusterIP": "None"}), json!({})), Health::Ready, "exists"),
            (
                "service ExternalName",
                svc("ExternalName", json!({"externalName": "db.example.com"}), json!({})),
                Health::Ready,
                "exists",
            ),
            // kstatus calls this Current as soon as a clusterIP exists.
            (
                "lb without ingress",
                svc("LoadBalancer", json!({}), json!({"loadBalancer": {}})),
                Health::Progressing,
                "waiting for a load balancer address",
            ),
            (
                "lb with empty ingress",
                svc("LoadBalancer", json!({}), json!({"loadBalancer": {"ingress": []}})),
                Health::Progressing,
                "waiting for a load balancer address",
            ),
            (
                "lb with ip",
                svc("LoadBalancer", json!({}), json!({"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}})),
                Health::Ready,
                "address 127.0.0.1",
            ),
            (
                "lb with hostname",
                svc("LoadBalancer", json!({}), json!({"loadBalancer": {"ingress": [{"hostname": "a.elb.example"}]}})),
                Health::Ready,
                "address a.elb.example",
            ),
            (
                "lb with externalIPs",
                svc("LoadBalancer", json!({"externalIPs": ["192.0.2.1"]}), json!({})),
                Health::Ready,
                "external IP 192.0.2.1",
            ),
            ("crd new", crd(json!([])), Health::Progressing, "not established yet"),
            (
                "crd established",
                crd(json!([{"type": "NamesAccepted", "status": "True"}, {"type": "Established", "status": "True"}])),
                Health::Ready,
                "established",
            ),
            // Helm's legacy wait calls this ready.
            (
                "crd names rejected",
                crd(json!([{"type": "NamesAccepted", "status": "False", "reason": "ListKindConflict",
                "message": "\"WidgetList\" is already in use"}, {"type": "Established", "status": "False"}])),
                Health::Failed,
                "names not accepted: ListKindConflict: \"WidgetList\" is already in use",
            ),
        ]);
    }
}
