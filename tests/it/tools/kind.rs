//! `kind`, against a recording fake of the kind CLI (no container engine runs here).

use super::fake::Fake;
use crate::harness::kmsctl;

/// Keeps a cluster list in `$FAKE_DIR/clusters`, copies a `--config` file (and its mode) to
/// `config-<call number>.yaml`,
/// fails `create` when `FAKE_FAIL` is set.
const KIND: &str = r#"
    #!/bin/sh
    d="$FAKE_DIR"
    echo "kind $*" >> "$d/calls.log"
    name=""; config=""; prev=""
    for a in "$@"; do
      case "$prev" in --name) name="$a";; --config) config="$a";; esac
      prev="$a"
    done
    case "$1 $2" in
      "get clusters")
        if [ -s "$d/clusters" ]; then cat "$d/clusters"; else echo "No kind clusters found." >&2; fi ;;
      "create cluster")
        if [ -n "$FAKE_FAIL" ]; then echo "Creating cluster \"$name\" ..." >&2; echo "ERROR: failed to create cluster: node(s) already exist" >&2; exit 1; fi
        n=$(wc -l < "$d/calls.log" | tr -d ' ')
        if [ -n "$config" ]; then cp "$config" "$d/config-$n.yaml"; stat -c %a "$config" > "$d/config-$n.mode"; fi
        echo "Creating cluster \"$name\" ..." >&2
        echo "$name" >> "$d/clusters" ;;
      "delete cluster")
        grep -vx "$name" "$d/clusters" > "$d/clusters.new"; mv "$d/clusters.new" "$d/clusters"
        echo "Deleting cluster \"$name\" ..." >&2 ;;
      "export kubeconfig")
        echo "Set kubectl context to \"kind-$name\"" >&2 ;;
      "load docker-image")
        echo "Image: \"$3\" with ID \"sha256:1\" not yet present on node, loading..." >&2 ;;
      *) echo "fake kind: unexpected: $*" >&2; exit 1 ;;
    esac
"#;

/// Uses a fake kind on PATH because no container engine runs on test machines: checks the
/// exact command lines of ensure (create once, export the kubeconfig of an existing one,
/// recreate on request), load and delete.
#[test]
fn ensure_creates_once_recreates_on_request_loads_and_deletes() {
    let fake = Fake::new();
    fake.install("kind", KIND);
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "kind" as kind;
            import "fs" as fs;
            import "data" as data;
            let before = kind::clusters();
            let a = kind::ensure_cluster("kms-test", #{ config: #{ nodes: [#{ role: "control-plane" }, #{ role: "worker" }] } });
            let b = kind::ensure_cluster("kms-test");
            let c = kind::ensure_cluster("kms-test", #{ recreate: true, wait: "60s", config: "kind-config.yaml" });
            let list = kind::clusters();
            kind::load_image("kms-test", ["core-service:latest-dev", "core-client:latest-dev"], #{ nodes: "kms-test-worker" });
            let d = kind::delete_cluster("kms-test");
            let e = kind::delete_cluster("kms-test");
            fs::write("out.json", data::to_json(#{ before: before, a: a, b: b, c: c, list: list, d: d, e: e }));
            "#,
        )
        .file("kind-config.yaml", "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n")
        .env("PATH", &fake.path_env())
        .env("FAKE_DIR", &fake.dir().display().to_string())
        .args(["run", "p.rhai"])
        .code(0).run();
    let calls = fake.calls();
    let temp = calls[2].rsplit(' ').next().unwrap().to_string();
    assert!(temp.contains("kmsctl-kind-") && temp.ends_with(".yaml"), "{temp}");
    assert_eq!(
        calls,
        vec![
            "kind get clusters".to_string(),
            "kind get clusters".into(),
            format!("kind create cluster --name kms-test --config {temp}"),
            "kind get clusters".into(),
            "kind export kubeconfig --name kms-test".into(),
            "kind get clusters".into(),
            "kind delete cluster --name kms-test".into(),
            "kind create cluster --name kms-test --config kind-config.yaml --wait 60s".into(),
            "kind get clusters".into(),
            "kind load docker-image core-service:latest-dev core-client:latest-dev --name kms-test --nodes kms-test-worker"
                .into(),
            "kind get clusters".into(),
            "kind delete cluster --name kms-test".into(),
            "kind get clusters".into(),
        ]
    );
    let config = fake.read("config-3.yaml");
    assert!(config.contains("kind: Cluster") && config.contains("apiVersion: kind.x-k8s.io/v1alpha4"), "{config}");
    assert!(config.contains("role: control-plane") && config.contains("role: worker"), "{config}");
    assert_eq!(fake.read("config-3.mode").trim(), "600", "the rendered config is private");
    assert_eq!(fake.read("config-8.yaml"), "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n");
    assert!(!std::path::Path::new(&temp).exists(), "the temp config is removed");
    let out: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.path().join("out.json")).unwrap()).unwrap();
    assert_eq!(out["before"], serde_json::json!([]));
    assert_eq!(
        out["a"],
        serde_json::json!({"name": "kms-test", "context": "kind-kms-test", "created": true, "recreated": false})
    );
    assert_eq!((out["b"]["created"].as_bool(), out["c"]["recreated"].as_bool()), (Some(false), Some(true)));
    assert_eq!(out["list"], serde_json::json!(["kms-test"]));
    assert_eq!((out["d"].as_bool(), out["e"].as_bool()), (Some(true), Some(false)));
}

/// Uses a fake kind because no container engine runs here: a failing create reports kind's
/// own error line; a bad name is refused before kind runs.
#[test]
fn failures_quote_kind_and_bad_names_never_reach_it() {
    let fake = Fake::new();
    fake.install("kind", KIND);
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "kind" as kind;
            import "log" as log;
            try { kind::ensure_cluster("--help"); } catch (e) { log::info(`${e.kind}: ${e.message}`); }
            let typo = #{ recreat: true }; // a literal with it is refused before the run
            try { kind::ensure_cluster("x", typo); } catch (e) { log::info(`${e.kind}: ${e.message}`); }
            kind::ensure_cluster("kms-test");
            "#,
        )
        .env("PATH", &fake.path_env())
        .env("FAKE_DIR", &fake.dir().display().to_string())
        .env("FAKE_FAIL", "1")
        .args(["run", "p.rhai"])
        .code(1)
        .run();
    assert!(r.stderr.contains("usage: '--help' is not a valid kind cluster name"), "{}", r.stderr);
    assert!(r.stderr.contains("unknown option 'recreat' (did you mean 'recreate'?)"), "{}", r.stderr);
    assert!(
        r.stderr.contains("`kind create cluster --name kms-test` exited with code 1:")
            && r.stderr.contains("ERROR: failed to create cluster: node(s) already exist"),
        "{}",
        r.stderr
    );
    assert_eq!(fake.calls(), vec!["kind get clusters", "kind create cluster --name kms-test"]);
}

/// Uses a fake kind because no container engine runs here: `KMSCTL_KIND` picks the binary; a
/// missing one is `unavailable` (exit 4) with a hint naming the variable.
#[test]
fn kmsctl_kind_overrides_the_binary() {
    let fake = Fake::new();
    let bin = fake.install("my-kind", KIND);
    fake.write("clusters", "one\ntwo\n");
    let r = kmsctl()
        .file("p.rhai", "import \"kind\" as kind;\nimport \"log\" as log;\nlog::info(`${kind::clusters()}`);\n")
        .env("KMSCTL_KIND", &bin.display().to_string())
        .env("FAKE_DIR", &fake.dir().display().to_string())
        .args(["run", "p.rhai"])
        .code(0)
        .run();
    assert!(r.stderr.contains(r#"["one", "two"]"#), "{}", r.stderr);

    let r = kmsctl()
        .file("p.rhai", "import \"kind\" as kind;\nkind::clusters();\n")
        .env("KMSCTL_KIND", "/nonexistent/kind")
        .args(["run", "p.rhai"])
        .code(4)
        .run();
    assert!(r.stderr.contains("program '/nonexistent/kind' not found"), "{}", r.stderr);
    assert!(r.stderr.contains("KMSCTL_KIND"), "{}", r.stderr);
}
