//! `docker`, against a recording fake of the docker CLI (no container engine runs here).

use super::fake::Fake;
use crate::harness::kmsctl;

/// `image inspect X` prints `$FAKE_DIR/images/<X with / and : as _>.json` or fails like docker;
/// `manifest inspect` fails until it has been called `$FAKE_DIR/manifest-fails` times;
/// `build` records the values of env-passed build args and secrets to `env.log` and echoes
/// one into its output the way a build log might.
const DOCKER: &str = r##"
    #!/bin/sh
    d="$FAKE_DIR"
    echo "docker $*" >> "$d/calls.log"
    last=""; for a in "$@"; do last="$a"; done
    case "$1" in
      buildx|build)
        prev=""
        for a in "$@"; do
          if [ "$prev" = "--build-arg" ] && [ "${a#*=}" = "$a" ]; then eval "v=\${$a}"; echo "$a=$v" >> "$d/env.log"; echo "#5 using $a=$v" >&2; fi
          if [ "$prev" = "--secret" ]; then var="${a##*env=}"; eval "v=\${$var}"; echo "$var=$v" >> "$d/env.log"; fi
          prev="$a"
        done
        echo "#9 naming to core-service:latest-dev done" >&2 ;;
      image)
        f="$d/images/$(echo "$last" | tr '/:' '__').json"
        if [ -f "$f" ]; then cat "$f"; else echo "[]"; echo "Error response from daemon: No such image: $last" >&2; exit 1; fi ;;
      pull)
        echo "latest: Pulling from $last" ;;
      manifest)
        n=$(cat "$d/manifest-count" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$d/manifest-count"
        if [ "$n" -le "$(cat "$d/manifest-fails" 2>/dev/null || echo 0)" ]; then echo "no such manifest: $last" >&2; exit 1; fi
        echo '{"schemaVersion": 2}' ;;
      *) echo "fake docker: unexpected: $*" >&2; exit 1 ;;
    esac
"##;

fn fake() -> Fake {
    let f = Fake::new();
    f.install("docker", DOCKER);
    std::fs::create_dir(f.dir().join("images")).unwrap();
    f
}

const NPM: &str = "planted-npm-t0ken";
const GH: &str = "planted-gh-t0ken";

/// Uses a fake docker on PATH because no container engine runs on test machines: the toolkit's
/// build command line, with secret build values passed through docker's environment only.
#[test]
fn build_passes_build_args_and_keeps_secrets_off_the_command_line() {
    let fake = fake();
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "docker" as docker;
            import "env" as env;
            import "log" as log;
            let r = docker::build(#{
                dockerfile: "docker/core/service/Dockerfile",
                tags: ["core-service:latest-dev"],
                build_args: #{ RUST_IMAGE_VERSION: "1.94", NPM_TOKEN: env::secret("NPM_TOKEN") },
                secrets: #{ gh: env::secret("GH_TOKEN") },
                load: true,
            });
            log::info(`built ${r.tags}`);
            docker::build(#{ context: "ctx", tags: "x:1", buildx: false, target: "prod", platform: "linux/amd64", labels: #{ team: "kms" } });
            let typo = #{ tag: "x" }; // a literal with it is refused before the run
            try { docker::build(typo); } catch (e) { log::info(e.message); }
            "#,
        )
        .env("PATH", &fake.path_env())
        .env("FAKE_DIR", &fake.dir().display().to_string())
        .env("NPM_TOKEN", NPM)
        .env("GH_TOKEN", GH)
        .args(["run", "p.rhai", "--output", "json"])
        .code(0).run();
    assert_eq!(
        fake.calls(),
        vec![
            "docker buildx build --file docker/core/service/Dockerfile --tag core-service:latest-dev \
             --build-arg NPM_TOKEN --build-arg RUST_IMAGE_VERSION=1.94 --secret id=gh,env=KMSCTL_BUILD_SECRET_0 --load .",
            "docker build --tag x:1 --label team=kms --target prod --platform linux/amd64 ctx",
        ]
    );
    let argv = fake.read("calls.log");
    assert!(!argv.contains(NPM) && !argv.contains(GH), "a secret reached docker's argv: {argv}");
    assert_eq!(
        fake.read("env.log"),
        format!("NPM_TOKEN={NPM}\nKMSCTL_BUILD_SECRET_0={GH}\n"),
        "values reach docker via env"
    );
    for text in [&r.stdout, &r.stderr] {
        assert!(!text.contains(NPM) && !text.contains(GH), "a secret leaked:\n{text}");
    }
    let logs: Vec<String> =
        r.events().iter().filter(|e| e["event"] == "log").map(|e| e["message"].as_str().unwrap().to_string()).collect();
    assert!(logs.contains(&"docker: #5 using NPM_TOKEN=***".to_string()), "build output is logged, redacted: {logs:?}");
    assert!(logs.contains(&"built [\"core-service:latest-dev\"]".to_string()), "{logs:?}");
    assert!(logs.iter().any(|l| l.contains("unknown option 'tag' (did you mean 'tags'?)")), "{logs:?}");
}

/// Uses a fake docker because no container engine runs here: PCRs come from the enclave image's
/// labels; a missing label reads as `()` with `?[..]` from the label map and is a `not_found`
/// error naming it from `pcrs` (the toolkit passed the string "null" on).
#[test]
fn pcrs_come_from_image_labels_and_missing_ones_are_named() {
    let fake = fake();
    fake.write(
        "images/hub_kms_core-service-enclave_v1.json",
        r#"[{"Id": "sha256:1", "Config": {"Labels": {"zama.kms.eif_pcr0": "aa00", "zama.kms.eif_pcr1": "bb11", "zama.kms.eif_pcr2": "cc22", "org.opencontainers.image.version": "v1"}}}]"#,
    );
    fake.write("images/hub_kms_core-service_v1.json", r#"[{"Id": "sha256:2", "Config": {"Labels": null}}]"#);
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "docker" as docker;
            import "fs" as fs;
            import "data" as data;
            let pcrs = docker::pcrs("hub/kms/core-service-enclave:v1", #{ pull: true });
            let labels = docker::image_labels("hub/kms/core-service-enclave:v1");
            let plain = docker::image_labels("hub/kms/core-service:v1");
            let no_pcr = ""; try { docker::pcrs("hub/kms/core-service:v1"); } catch (e) { no_pcr = `${e.kind}: ${e.message}`; }
            let absent = ""; try { docker::image_labels("hub/kms/absent:v1"); } catch (e) { absent = `${e.kind}: ${e.message}`; }
            fs::write("out.json", data::to_json(#{
                pcrs: pcrs, version: labels["org.opencontainers.image.version"], plain: plain,
                missing_label: type_of(plain?["zama.kms.eif_pcr0"]), no_pcr: no_pcr, absent: absent,
            }));
            "#,
        )
        .env("PATH", &fake.path_env())
        .env("FAKE_DIR", &fake.dir().display().to_string())
        .args(["run", "p.rhai"])
        .code(0).run();
    let out: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(r.path().join("out.json")).unwrap()).unwrap();
    assert_eq!(out["pcrs"], serde_json::json!({"pcr0": "aa00", "pcr1": "bb11", "pcr2": "cc22"}));
    assert_eq!(out["version"], "v1");
    assert_eq!(out["plain"], serde_json::json!({}));
    assert_eq!(out["missing_label"], "()");
    assert_eq!(
        out["no_pcr"],
        "not_found: image hub/kms/core-service:v1 has no label zama.kms.eif_pcr0 (is it an enclave image?)"
    );
    assert!(
        out["absent"].as_str().unwrap().starts_with("not_found: image hub/kms/absent:v1 not found locally"),
        "{out}"
    );
    assert_eq!(
        fake.calls(),
        vec![
            "docker pull hub/kms/core-service-enclave:v1",
            "docker image inspect hub/kms/core-service-enclave:v1",
            "docker image inspect hub/kms/core-service-enclave:v1",
            "docker image inspect hub/kms/core-service:v1",
            "docker image inspect hub/kms/core-service:v1",
            "docker image inspect hub/kms/absent:v1",
        ]
    );
}

/// Uses a fake docker because no container engine runs here: `image_exists` retries
/// `docker manifest inspect` until the tag appears, gives up after `attempts`, and a
/// `wait::timeout` around it cancels the retries.
#[test]
fn image_exists_retries_until_the_tag_appears() {
    let fake = fake();
    fake.write("manifest-fails", "2\n");
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "docker" as docker;
            import "wait" as wait;
            import "log" as log;
            log::info(`found=${docker::image_exists("hub/kms/core-client:pr-42", #{ attempts: 5, interval: "50ms" })}`);
            log::info(`again=${docker::image_exists("hub/kms/core-client:pr-42")}`);
            "#,
        )
        .env("PATH", &fake.path_env())
        .env("FAKE_DIR", &fake.dir().display().to_string())
        .args(["run", "p.rhai"])
        .code(0)
        .run();
    assert!(r.stderr.contains("found=true") && r.stderr.contains("again=true"), "{}", r.stderr);
    assert!(
        r.stderr.contains("image hub/kms/core-client:pr-42 not found (attempt 1/5: no such manifest: hub/kms/core-client:pr-42); retrying in 50ms"),
        "{}",
        r.stderr
    );
    assert_eq!(fake.calls(), vec!["docker manifest inspect hub/kms/core-client:pr-42"; 4]);

    let fake = self::fake();
    fake.write("manifest-fails", "1000\n");
    let start = std::time::Instant::now();
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "docker" as docker;
            import "wait" as wait;
            import "log" as log;
            log::info(`found=${docker::image_exists("x:never", #{ attempts: 3, interval: "10ms" })}`);
            try { wait::timeout("300ms", || docker::image_exists("x:never", #{ attempts: 100, interval: "1s" })); } catch (e) { log::info(`${e.kind}: ${e.message}`); }
            "#,
        )
        .env("PATH", &fake.path_env())
        .env("FAKE_DIR", &fake.dir().display().to_string())
        .args(["run", "p.rhai"])
        .code(0).run();
    assert!(r.stderr.contains("found=false") && r.stderr.contains("not found after 3 attempts"), "{}", r.stderr);
    assert!(r.stderr.contains("timeout: timed out after 300ms"), "{}", r.stderr);
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(fake.calls().len(), 4, "3 attempts, then 1 before the timeout: {:?}", fake.calls());
}
