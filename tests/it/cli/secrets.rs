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
    log::step("use the secret", || {
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
        .args(["run", "p.rhai", "--password", SECRET, "--artifacts", "out"])
        .code(1)
        .run();
    check_clean(&r.stderr, "stderr");
    check_clean(&r.stdout, "stdout");
    assert!(r.stderr.contains("token ***, password ***"), "{}", r.stderr);
    assert!(r.stderr.contains("login failed for ***"), "{}", r.stderr);
    let out = r.path().join("out");
    let mut files = 0;
    for e in std::fs::read_dir(&out).unwrap() {
        let p = e.unwrap().path();
        check_clean(&std::fs::read_to_string(&p).unwrap(), &p.display().to_string());
        files += 1;
    }
    assert_eq!(files, 3, "events.jsonl, error.txt and notes.txt");
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
