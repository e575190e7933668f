//! Which pods a workload runs. Pods are tied to their workload by `ownerReferences` (the
//! controller's UID: Pod → ReplicaSet → Deployment; Pod → StatefulSet, DaemonSet, Job,
//! ReplicaSet or ReplicationController), not by label selector: the StatefulSets of several
//! releases may share one (`app: kms-core` in every party), and one party's crashing pod must
//! fail that party only. Selectors only narrow what is listed from the API server.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::Selector;
use serde_json::Value;

use crate::json::{api_group, at, str_at};

/// Does the readiness of this kind depend on the pods it runs, so that a crashing pod fails
/// it? Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController and Job; the
/// group counts (an `example.com` Deployment is a custom resource).
pub(crate) fn is_workload(api_version: &str, kind: &str) -> bool {
    matches!(
        (api_group(api_version), kind),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
            | ("batch", "Job")
            | ("", "ReplicationController")
    )
}

/// [`is_workload`] of an object.
pub(crate) fn is_workload_object(obj: &Value) -> bool {
    is_workload(str_at(obj, &["apiVersion"]).unwrap_or_default(), str_at(obj, &["kind"]).unwrap_or_default())
}

/// `metadata.uid`.
fn uid(obj: &Value) -> Option<&str> {
    str_at(obj, &["metadata", "uid"]).filter(|u| !u.is_empty())
}

/// The owner reference to follow upward: the controller, else the first one.
pub(crate) fn owner_ref(obj: &Value) -> Option<&Value> {
    let refs = at(obj, &["metadata", "ownerReferences"])?.as_array()?;
    refs.iter().find(|r| r.get("controller").and_then(Value::as_bool) == Some(true)).or_else(|| refs.first())
}

/// The UID of the object's controller (the owner reference with `controller: true`).
fn controller_uid(obj: &Value) -> Option<&str> {
    at(obj, &["metadata", "ownerReferences"])?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| r.get("uid").and_then(Value::as_str))
}

/// Does `workload` control `pod`, directly or (a Deployment) through one of `replicasets`?
pub(crate) fn owns(workload: &Value, pod: &Value, replicasets: &[&Value]) -> bool {
    let (Some(uid), Some(owner)) = (uid(workload), controller_uid(pod)) else {
        return false;
    };
    owner == uid
        || (str_at(workload, &["kind"]) == Some("Deployment")
            && replicasets.iter().any(|rs| self::uid(rs) == Some(owner) && controller_uid(rs) == Some(uid)))
}

/// Does a fatal state of `pod` fail `workload`? Its own pods do, except a Deployment's pods of an
/// older ReplicaSet: they are on their way out (a rollback away from a crash-looping version
/// still shows its pods for a while), so only the ReplicaSet of the Deployment's current
/// revision counts, and none while the controller has not observed the latest spec (which
/// ReplicaSet is current is not known yet). Without revision annotations, every one counts.
pub(crate) fn fails_with(workload: &Value, pod: &Value, replicasets: &[&Value]) -> bool {
    if !owns(workload, pod, replicasets) {
        return false;
    }
    if str_at(workload, &["kind"]) != Some("Deployment") {
        return true;
    }
    let Some(current) = revision(workload) else {
        return true;
    };
    let generation = at(workload, &["metadata", "generation"]).and_then(Value::as_i64).unwrap_or(0);
    let observed = at(workload, &["status", "observedGeneration"]).and_then(Value::as_i64).unwrap_or(0);
    if observed < generation {
        return false;
    }
    // Some: `owns` found the pod's controller.
    let owner = controller_uid(pod);
    replicasets.iter().filter(|rs| uid(rs) == owner).any(|rs| revision(rs).is_none_or(|r| r == current))
}

/// The `deployment.kubernetes.io/revision` annotation of a Deployment or its ReplicaSet.
fn revision(obj: &Value) -> Option<&str> {
    str_at(obj, &["metadata", "annotations", "deployment.kubernetes.io/revision"])
}

/// The label selector of a workload's pods, for listing them (ownership then decides which are
/// its own). `None` for other kinds and for empty or invalid selectors: Kubernetes refuses an
/// empty selector on apps/v1 and batch/v1 workloads (the Deployment controller will not act on
/// one: "SelectingAll"), so it selects nothing here rather than every pod in the namespace. A
/// ReplicationController's plain map, empty or missing, defaults to its template's labels, as
/// the API server defaults it; so does a selector not yet defaulted (a Job's).
pub(crate) fn pod_selector(workload: &Value) -> Option<Selector> {
    if !is_workload_object(workload) {
        return None;
    }
    let template_labels = || labels(at(workload, &["spec", "template", "metadata", "labels"])?);
    let selector = match at(workload, &["spec", "selector"]) {
        Some(map) if str_at(workload, &["kind"]) == Some("ReplicationController") => {
            labels(map).filter(|s| !s.selects_all()).or_else(template_labels)?
        }
        Some(sel) => Selector::try_from(serde_json::from_value::<LabelSelector>(sel.clone()).ok()?).ok()?,
        None => template_labels()?,
    };
    (!selector.selects_all()).then_some(selector)
}

/// A map of label values as a selector (`None` if a value is not a string).
fn labels(map: &Value) -> Option<Selector> {
    map.as_object()?.iter().map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, name: &str, uid: &str, owner: Option<&str>) -> Value {
        let av = match kind {
            "Pod" => "v1",
            "Job" => "batch/v1",
            _ => "apps/v1",
        };
        let mut o = json!({"apiVersion": av, "kind": kind,
            "metadata": {"name": name, "namespace": "kms", "uid": uid, "labels": {"app": "kms-core"}},
            "spec": {"selector": {"matchLabels": {"app": "kms-core"}}}});
        if let Some(owner) = owner {
            o["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "X", "name": "x",
                "uid": owner, "controller": true}]);
        }
        o
    }

    /// Two parties' StatefulSets select `app: kms-core` alike; each owns only its own pods.
    #[test]
    fn pods_belong_to_their_controller_not_to_every_matching_selector() {
        let (sts1, sts2) = (obj("StatefulSet", "p1", "u-sts1", None), obj("StatefulSet", "p2", "u-sts2", None));
        let (pod1, pod2) = (obj("Pod", "p1-0", "u-pod1", Some("u-sts1")), obj("Pod", "p2-0", "u-pod2", Some("u-sts2")));
        assert!(owns(&sts1, &pod1, &[]) && !owns(&sts1, &pod2, &[]));
        assert!(owns(&sts2, &pod2, &[]) && !owns(&sts2, &pod1, &[]));
        // A pod without a controller belongs to nobody, whatever its labels.
        assert!(!owns(&sts1, &obj("Pod", "bare", "u-bare", None), &[]));
    }

    #[test]
    fn deployments_own_pods_through_their_replicasets() {
        let deploy = obj("Deployment", "web", "u-d", None);
        let other = obj("Deployment", "web2", "u-d2", None);
        let rs = obj("ReplicaSet", "web-5d", "u-rs", Some("u-d"));
        let rs2 = obj("ReplicaSet", "web2-7f", "u-rs2", Some("u-d2"));
        let pod = obj("Pod", "web-5d-x", "u-p", Some("u-rs"));
        assert!(owns(&deploy, &pod, &[&rs, &rs2]));
        assert!(!owns(&other, &pod, &[&rs, &rs2]));
        assert!(!owns(&deploy, &pod, &[]), "without the ReplicaSet there is no chain");
        // Only a Deployment owns through a ReplicaSet.
        assert!(!owns(&obj("StatefulSet", "web", "u-d", None), &pod, &[&rs]));
    }

    /// Regression: a rollback away from a crash-looping version failed at once on the old
    /// ReplicaSet's crash-looping pods, still there while they were scaled down.
    #[test]
    fn only_the_current_replicasets_pods_fail_a_deployment() {
        let rev = |mut o: Value, r: &str| {
            o["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": r});
            o
        };
        let mut deploy = rev(obj("Deployment", "web", "u-d", None), "3");
        deploy["metadata"]["generation"] = json!(4);
        deploy["status"] = json!({"observedGeneration": 4});
        let (old, new) = (
            rev(obj("ReplicaSet", "web-b", "u-old", Some("u-d")), "2"),
            rev(obj("ReplicaSet", "web-g", "u-new", Some("u-d")), "3"),
        );
        let (old_pod, new_pod) =
            (obj("Pod", "web-b-x", "u-p1", Some("u-old")), obj("Pod", "web-g-x", "u-p2", Some("u-new")));
        let rs = [&old, &new];
        assert!(owns(&deploy, &old_pod, &rs), "still its pod");
        assert!(!fails_with(&deploy, &old_pod, &rs));
        assert!(fails_with(&deploy, &new_pod, &rs));
        // Before the controller observed the spec, the current ReplicaSet is not known.
        deploy["metadata"]["generation"] = json!(5);
        assert!(!fails_with(&deploy, &new_pod, &rs));
        // Without revisions (objects not made by the controller), every pod counts.
        let bare = obj("Deployment", "web", "u-d", None);
        assert!(fails_with(&bare, &old_pod, &rs));
        let sts = obj("StatefulSet", "db", "u-s", None);
        assert!(fails_with(&sts, &obj("Pod", "db-0", "u-p3", Some("u-s")), &[]));
    }

    #[test]
    fn workloads_are_kinds_of_their_groups() {
        for (av, kind) in [
            ("apps/v1", "Deployment"),
            ("apps/v1", "StatefulSet"),
            ("apps/v1", "DaemonSet"),
            ("apps/v1", "ReplicaSet"),
            ("batch/v1", "Job"),
            ("v1", "ReplicationController"),
        ] {
            assert!(is_workload(av, kind), "{av} {kind}");
        }
        for (av, kind) in [("batch/v1", "CronJob"), ("v1", "Pod"), ("example.com/v1", "Deployment")] {
            assert!(!is_workload(av, kind), "{av} {kind}");
        }
    }

    #[test]
    fn selectors() {
        let w = |av: &str, kind: &str, spec: Value| json!({"apiVersion": av, "kind": kind, "metadata": {"name": "x"}, "spec": spec});
        let cases = [
            (
                w("apps/v1", "Deployment", json!({"selector": {"matchLabels": {"app": "web", "tier": "front"}}})),
                Some("app=web,tier=front"),
            ),
            (
                w(
                    "apps/v1",
                    "StatefulSet",
                    json!({"selector": {"matchLabels": {"app": "db"}, "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "NotIn", "values": ["true"]},
                {"key": "shard", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"}]}}),
                ),
                Some("app=db,env in (a,b),canary notin (true),shard,!legacy"),
            ),
            (
                w(
                    "apps/v1",
                    "DaemonSet",
                    json!({"selector": {"matchExpressions": [{"key": "k", "operator": "Exists"}]}}),
                ),
                Some("k"),
            ),
            (
                w(
                    "apps/v1",
                    "ReplicaSet",
                    json!({"selector": {"matchLabels": {"pod-template-hash": "5d", "app": "web"}}}),
                ),
                Some("app=web,pod-template-hash=5d"),
            ),
            (
                w(
                    "batch/v1",
                    "Job",
                    json!({"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u1"}}}),
                ),
                Some("batch.kubernetes.io/controller-uid=u1"),
            ),
            (
                w("batch/v1", "Job", json!({"template": {"metadata": {"labels": {"job": "migrate"}}}})),
                Some("job=migrate"),
            ),
            (w("v1", "ReplicationController", json!({"selector": {"app": "old"}})), Some("app=old")),
            (
                w(
                    "apps/v1",
                    "Deployment",
                    json!({"selector": {"matchExpressions": [{"key": "k", "operator": "Bogus"}]}}),
                ),
                None,
            ),
            (w("v1", "Pod", json!({})), None),
            (w("v1", "Service", json!({"selector": {"app": "web"}})), None),
            (w("example.com/v1", "Deployment", json!({"selector": {"matchLabels": {"a": "b"}}})), None),
        ];
        for (obj, want) in cases {
            assert_eq!(pod_selector(&obj).map(|s| s.to_string()).as_deref(), want, "{obj}");
        }
    }

    /// The bug: `{}` matched every pod of the namespace, so any crashing pod failed a workload
    /// whose selector was empty. Kubernetes refuses empty selectors on workloads; here they
    /// select nothing, and a ReplicationController's empty map means its template's labels.
    #[test]
    fn an_empty_selector_selects_no_pods_not_every_pod() {
        let w = |av: &str, kind: &str, spec: Value| json!({"apiVersion": av, "kind": kind, "metadata": {"name": "x"}, "spec": spec});
        assert_eq!(pod_selector(&w("apps/v1", "Deployment", json!({"selector": {}}))), None);
        assert_eq!(pod_selector(&w("batch/v1", "Job", json!({"selector": {"matchLabels": {}}}))), None);
        let rc = w(
            "v1",
            "ReplicationController",
            json!({"selector": {}, "template": {"metadata": {"labels": {"app": "old"}}}}),
        );
        assert_eq!(pod_selector(&rc).map(|s| s.to_string()).as_deref(), Some("app=old"));
        let rc_without_labels = w("v1", "ReplicationController", json!({"selector": {}}));
        assert_eq!(pod_selector(&rc_without_labels), None);
    }
}
