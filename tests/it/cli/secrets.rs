//! A planted secret never appears in any output, log or artifact.

use crate::harness::kmsctl;

const SECRET: &str = "planted-s3cr3t-value";

const PLAYBOOK: &str = r#"
    fn params() {[ #{ name: "password", secret: true, required: true } ]}
    import "env" as env;
    import "log" as log;
    import "fs" as fs;
    import "data" as data;

    let token = env::secret("DEMO_TOKEN");
    log::info(`token ${token}, password ${param::password}`);
    log::info("joined: " + ("Bearer " + token));
    log::info(data::to_json(#{ auth: token, user: "me" }));
    print(param::password);
    fs::artifact("notes.txt", "raw " + env::get("DEMO_TOKEN"));
    parallel_map([env::get("DEMO_TOKEN")], |t| log::warn(`task sees ${t}`));
    log::step(`use the secret ${token}`, || {
        throw #{ kind: "failed", message: `login failed for ${env::get("DEMO_TOKEN")}` };
    });
"#;

fn check_clean(text: &str, what: &str) {
    assert!(!text.contains(SECRET), "the secret leaked into {what}:\n{text}");
}

#[test]
fn secrets_are_masked_in_human_output_errors_and_artifacts() {
    let r = kmsctl()
        .file("p.rhai", PLAYBOOK)
        .env("DEMO_TOKEN", SECRET)
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", "step-summary.md")
        .args(["run", "p.rhai", "--password", SECRET, "--artifacts", "out", "--junit", "out/junit.xml"])
        .code(1)
        .run();
    check_clean(&r.stderr, "stderr");
    check_clean(&r.stdout, "stdout");
    assert!(r.stderr.contains("token ***, password ***"), "{}", r.stderr);
    assert!(r.stderr.contains("login failed for ***"), "{}", r.stderr);
    let mut files: Vec<String> = Vec::new();
    for (p, text) in crate::report::artifacts_text(&r, "out") {
        check_clean(&text, &p);
        files.push(p.rsplit('/').next().unwrap().to_string());
    }
    files.sort();
    assert_eq!(
        files,
        ["error.txt", "events.jsonl", "junit.xml", "notes.txt", "report.html", "run.log", "summary.md"],
        "the run report, its summary, log and JUnit file too"
    );
    let summary = std::fs::read_to_string(r.path().join("step-summary.md")).unwrap();
    check_clean(&summary, "$GITHUB_STEP_SUMMARY");
    assert!(summary.contains("use the secret ***"), "{summary}");
    // The report as a browser draws it (what its script makes of the data).
    if let Some(browser) = crate::report::chromium() {
        let dom = crate::report::dom(&browser, &r.path().join("out/report.html"));
        check_clean(&dom, "the rendered report");
        assert!(dom.contains("task sees ***"), "{dom}");
    }
}

#[test]
fn secrets_are_masked_in_json_output() {
    let r = kmsctl()
        .file("p.rhai", PLAYBOOK)
        .env("DEMO_TOKEN", SECRET)
        .env("KMSCTL_PASSWORD", SECRET)
        .args(["run", "p.rhai", "--output", "json"])
        .code(1)
        .run();
    check_clean(&r.stdout, "stdout");
    check_clean(&r.stderr, "stderr");
    let started = r.events().into_iter().find(|e| e["event"] == "run_started").unwrap();
    assert_eq!(started["params"]["password"], "***");
}

/// The parties' private keys from `tls::party_certs` are secrets: masked when printed, in JSON
/// events and in errors quoting them, while the certificates are plain text a playbook checks.
#[test]
fn tls_party_keys_never_reach_the_output() {
    let r = kmsctl()
        .file(
            "p.rhai",
            r#"
            import "tls" as tls;
            import "log" as log;
            import "fs" as fs;
            let made = tls::party_certs(["kms-core-1", "kms-core-2"], #{ wildcard: true, days: 30 });
            let p1 = made.parties["kms-core-1"];
            fs::write("key-text.txt", `${p1.key}`);
            fs::write("cert.pem", p1.cert);
            log::info(`key ${p1.key} ${type_of(p1.key)} secret=${is_secret(p1.key)}`);
            let info = tls::describe(p1.cert);
            log::info(`cert ${info.subject} ${info.sans} ca=${info.is_ca}`);
            log::info(`bundle ${tls::describe_all(made.combined).map(|c| c.subject)}`);
            try { tls::party_certs(["kms core"]); } catch (e) { log::info(`refused: ${e.kind} ${e.message}`); }
            throw #{ kind: "failed", message: "with the key " + p1.key };
            "#,
        )
        .args(["run", "p.rhai", "--output", "json"])
        .code(1)
        .run();
    let cert = std::fs::read_to_string(r.path().join("cert.pem")).unwrap();
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(std::fs::read_to_string(r.path().join("key-text.txt")).unwrap(), "***");
    for text in [&r.stdout, &r.stderr] {
        assert!(!text.contains("PRIVATE KEY"), "a key leaked:\n{text}");
    }
    for want in [
        "key *** Secret secret=true",
        r#"cert CN=kms-core-1 [\"kms-core-1\", \"*.kms-core-1\", \"127.0.0.1\", \"localhost\", \"192.168.0.1\", \"::1\"] ca=false"#,
        r#"bundle [\"CN=kms-core-1\", \"CN=kms-core-2\"]"#,
        "refused: usage tls::party_certs: invalid name 'kms core': names may hold only ASCII letters, digits, '-' and '.'",
        // The message joins text with a secret, so it is a secret: masked whole.
        r#""kind":"failed","message":"***""#,
    ] {
        assert!(r.stdout.contains(want), "{want:?} missing from\n{}", r.stdout);
    }
}

/// Regression: a parameter error printed the whole command line, secrets included, on stderr,
/// and with `--output json` on stdout and in events.jsonl. Masked now: a secret parameter's value
/// (even one too short for the redactor), an unknown flag's value (a misspelt secret flag) and
/// a secret from the environment wherever it is quoted. Regression too: a stray word after a
/// single-dash misspelling (`-registry-token S3CRET`) or after a secret's value (a secret with a
/// space, unquoted) was quoted in "unexpected argument '...'".
#[test]
fn a_parameter_error_never_prints_a_secret() {
    let playbook = r#"
        fn params() {[ #{ name: "registry_token", secret: true, env: "HARBOR_READ_TOKEN" }, #{ name: "n", type: "int" } ]}
        print("ran");
    "#;
    let cases: [(&[&str], &[&str]); 6] = [
        (&["--registry-token", SECRET, "--bogus"], &[SECRET]),
        (&["-registry-token", "stray-s3cr3t"], &["stray-s3cr3t"]),
        (&["--registry-token", "two", "words-s3cr3t"], &["words-s3cr3t"]),
        (&["--registry-token=ab1", "--n", "x"], &["ab1"]),
        (&["--registry-tokn", SECRET], &[SECRET]),
        (&["--bogus", "env-s3cr3t-value"], &["env-s3cr3t-value"]),
    ];
    for (args, secrets) in cases {
        for output in ["human", "json"] {
            let r = kmsctl()
                .file("p.rhai", playbook)
                .env("HARBOR_READ_TOKEN", "env-s3cr3t-value")
                .args(["run", "p.rhai"])
                .args(args)
                .args(["--output", output, "--artifacts", "out"])
                .code(2)
                .run();
            let events = std::fs::read_to_string(r.path().join("out/events.jsonl")).unwrap();
            assert!(output == "human" || events.contains("\"kind\":\"params\""), "{events}");
            for s in secrets {
                for (text, what) in [(&r.stderr, "stderr"), (&r.stdout, "stdout"), (&events, "events.jsonl")] {
                    assert!(!text.contains(s), "{args:?} --output {output}: {s} leaked into {what}:\n{text}");
                }
            }
            assert!(r.stderr.contains("***") || r.stdout.contains("***"), "{}{}", r.stderr, r.stdout);
        }
    }
}
