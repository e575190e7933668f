//! Table tests of parameter parsing, including every form of the bash toolkit's deploy.sh flags.

use super::*;
use rhai::{Dynamic, Engine};

/// deploy.sh's flags, declared the way the KMS playbooks declare them.
const DEPLOY_SH: &str = r#"[
    #{ name: "target", type: "enum", values: ["kind-local", "kind-ci", "aws-ci", "aws-perf"], default_value: "kind-local" },
    #{ name: "namespace", default_value: "kms-test" },
    #{ name: "deployment_type", type: "enum", values: ["threshold", "centralized", "thresholdWithEnclave", "centralizedWithEnclave"], default_value: "threshold" },
    #{ name: "tag" },
    #{ name: "core_tag" },
    #{ name: "client_tag" },
    #{ name: "num_parties", type: "int", default_value: 4, min: 1 },
    #{ name: "kms_chart_version", default_value: "repository", env: "KMS_CHART_VERSION" },
    #{ name: "tkms_infra_version", default_value: "0.3.2", env: "TKMS_INFRA_CHART_VERSION" },
    #{ name: "cleanup", type: "bool" },
    #{ name: "build", type: "bool" },
    #{ name: "block", type: "bool" },
    #{ name: "pcr0", env: "PCR0" },
    #{ name: "pcr1", env: "PCR1" },
    #{ name: "pcr2", env: "PCR2" },
    #{ name: "collect_logs", type: "bool", env: "COLLECT_LOGS" },
    #{ name: "enable_tls", type: "bool", off_aliases: ["disable-tls"], env: "ENABLE_TLS" },
    #{ name: "enable_metrics", type: "bool" },
    #{ name: "debug", type: "bool", env: "DEBUG" },
    #{ name: "wait_timeout", type: "duration", default_value: "20m" },
    #{ name: "parties", type: "int_list" },
    #{ name: "grafana_password", secret: true },
]"#;

fn specs() -> Vec<ParamSpec> {
    let decl: Dynamic = Engine::new().eval(DEPLOY_SH).unwrap();
    parse_specs(&decl).unwrap()
}

fn argv(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn run(args: &str, env: &[(&str, &str)], files: &[(&str, &str)]) -> Result<Resolved, Vec<ParamError>> {
    let specs = specs();
    let a = argv(args);
    let (ra, mut errors) = parse_args(&a, Some(&specs));
    let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let files: Vec<(String, Dynamic)> = files
        .iter()
        .map(|(n, y)| (n.to_string(), crate::value::from_json(crate::modules::data::from_yaml(y).unwrap())))
        .collect();
    match resolve(&specs, &ra, &lookup, &files) {
        Ok(r) if errors.is_empty() => Ok(r),
        Ok(_) => Err(errors),
        Err(mut e) => {
            errors.append(&mut e);
            Err(errors)
        }
    }
}

fn ok(args: &str) -> Resolved {
    run(args, &[], &[]).unwrap_or_else(|e| panic!("{args}: {e:?}"))
}

fn s(v: &str) -> ParamValue {
    ParamValue::String(v.into())
}

#[test]
fn the_toolkit_command_line_works_unchanged() {
    let r = ok("--target aws-perf --namespace kms-ci --deployment-type threshold --core-tag v1 --client-tag v1 \
                --num-parties 13 --cleanup --build --pcr0 X --enable-tls");
    assert_eq!(r.get("target"), Some(&s("aws-perf")));
    assert_eq!(r.get("namespace"), Some(&s("kms-ci")));
    assert_eq!(r.get("deployment_type"), Some(&s("threshold")));
    assert_eq!(r.get("core_tag"), Some(&s("v1")));
    assert_eq!(r.get("client_tag"), Some(&s("v1")));
    assert_eq!(r.get("num_parties"), Some(&ParamValue::Int(13)));
    assert_eq!(r.get("cleanup"), Some(&ParamValue::Bool(true)));
    assert_eq!(r.get("build"), Some(&ParamValue::Bool(true)));
    assert_eq!(r.get("pcr0"), Some(&s("X")));
    assert_eq!(r.get("enable_tls"), Some(&ParamValue::Bool(true)));
    assert_eq!(r.get("block"), Some(&ParamValue::Bool(false)));
    assert_eq!(r.get("tag"), None);
    assert_eq!(r.get("kms_chart_version"), Some(&s("repository")));
}

#[test]
fn every_flag_form_parses() {
    let cases: &[(&str, &str, ParamValue)] = &[
        ("--num-parties 13", "num_parties", ParamValue::Int(13)),
        ("--num-parties=13", "num_parties", ParamValue::Int(13)),
        ("--num_parties 13", "num_parties", ParamValue::Int(13)),
        ("--set num_parties=7", "num_parties", ParamValue::Int(7)),
        ("--set num-parties=7", "num_parties", ParamValue::Int(7)),
        ("--cleanup", "cleanup", ParamValue::Bool(true)),
        ("--cleanup=false", "cleanup", ParamValue::Bool(false)),
        ("--cleanup --no-cleanup", "cleanup", ParamValue::Bool(false)),
        ("--enable-tls --disable-tls", "enable_tls", ParamValue::Bool(false)),
        ("--disable-tls --enable-tls", "enable_tls", ParamValue::Bool(true)),
        ("--set cleanup=yes", "cleanup", ParamValue::Bool(true)),
        ("--tag v2", "tag", s("v2")),
        ("--tag=--weird", "tag", s("--weird")),
        ("--wait-timeout 90s", "wait_timeout", ParamValue::Duration(std::time::Duration::from_secs(90), "90s".into())),
        (
            "--wait-timeout 1200",
            "wait_timeout",
            ParamValue::Duration(std::time::Duration::from_secs(1200), "1200".into()),
        ),
        ("--parties 1,2,3", "parties", ParamValue::IntList(vec![1, 2, 3])),
        ("--parties 1 --parties 2,3", "parties", ParamValue::IntList(vec![1, 2, 3])),
        ("--namespace a --namespace b", "namespace", s("b")),
    ];
    for (args, name, want) in cases {
        assert_eq!(ok(args).get(name), Some(want), "{args}");
    }
}

#[test]
fn layers_default_env_values_file_command_line() {
    let env = [("KMS_CHART_VERSION", "1.4.0"), ("KMSCTL_NAMESPACE", "from-env"), ("PCR0", "env-pcr")];
    let file = [("v.yaml", "namespace: from-file\nnum-parties: 13\ncleanup: true\nparties: [4, 5]\n")];
    let r = run("--namespace from-cli", &env, &file).unwrap();
    assert_eq!(r.values["kms_chart_version"], (Some(s("1.4.0")), Source::Env("KMS_CHART_VERSION".into())));
    assert_eq!(r.values["namespace"], (Some(s("from-cli")), Source::CommandLine));
    assert_eq!(r.values["num_parties"], (Some(ParamValue::Int(13)), Source::ValuesFile("v.yaml".into())));
    assert_eq!(r.get("cleanup"), Some(&ParamValue::Bool(true)));
    assert_eq!(r.get("parties"), Some(&ParamValue::IntList(vec![4, 5])));
    assert_eq!(r.get("pcr0"), Some(&s("env-pcr")));
    // KMSCTL_<NAME> wins over the compatibility name.
    let r = run("", &[("KMS_CHART_VERSION", "a"), ("KMSCTL_KMS_CHART_VERSION", "b")], &[]).unwrap();
    assert_eq!(r.get("kms_chart_version"), Some(&s("b")));
}

fn errors(args: &str) -> Vec<String> {
    run(args, &[], &[]).unwrap_err().into_iter().map(|e| e.message).collect()
}

#[test]
fn bad_input_gets_a_pointed_message() {
    let cases: &[(&str, &str)] = &[
        ("--num-parties abc", "--num-parties wants an integer, got 'abc'"),
        ("--num-parties 0", "--num-parties must be at least 1, got 0"),
        (
            "--deployment-type treshold",
            "--deployment-type must be one of: threshold, centralized, thresholdWithEnclave, centralizedWithEnclave; got 'treshold' (did you mean 'threshold'?)",
        ),
        ("--namespace", "--namespace needs a value (string)"),
        ("--namespace --cleanup", "--namespace needs a value (string)"),
        ("--num-partys 3", "unknown parameter --num-partys"),
        ("--cleanup=maybe", "--cleanup is a flag: give it alone, or as --cleanup=true|false; got 'maybe'"),
        ("--no-cleanup=true", "--no-cleanup=true takes no value"),
        ("--wait-timeout soon", "--wait-timeout wants a duration like 90s, 5m or 1h30m, got 'soon'"),
        ("--parties 1,x", "--parties wants integers, got 'x'"),
        ("--set oops", "--set wants NAME=VALUE"),
        ("stray", "unexpected argument 'stray'"),
    ];
    for (args, want) in cases {
        let got = errors(args);
        assert!(got.iter().any(|g| g == want), "{args}: got {got:?}");
    }
}

#[test]
fn unknown_parameters_suggest_the_closest() {
    let specs = specs();
    let (_, errs) = parse_args(&argv("--num-partys 3"), Some(&specs));
    assert_eq!(errs[0].help.as_deref(), Some("did you mean --num-parties? (--help lists the parameters)"));
    assert_eq!(errs[0].arg, Some(0));
}

#[test]
fn values_file_problems_are_reported() {
    let e = run("", &[], &[("v.yaml", "num_partys: 3\nnum_parties: many\n")]).unwrap_err();
    let msgs: Vec<_> = e.iter().map(|x| x.message.as_str()).collect();
    assert!(msgs.contains(&"v.yaml: unknown parameter 'num_partys' (did you mean 'num_parties'?)"), "{msgs:?}");
    assert!(msgs.contains(&"--num-parties wants an integer, got 'many' (in v.yaml)"), "{msgs:?}");
}

#[test]
fn env_values_are_validated_too() {
    let e = run("", &[("KMSCTL_NUM_PARTIES", "lots")], &[]).unwrap_err();
    assert_eq!(e[0].message, "--num-parties wants an integer, got 'lots' (from $KMSCTL_NUM_PARTIES)");
}

#[test]
fn required_parameters_must_be_given() {
    let decl: Dynamic =
        Engine::new().eval(r#"[#{ name: "core_tag", required: true, doc: "Core image tag" }]"#).unwrap();
    let specs = parse_specs(&decl).unwrap();
    let (ra, _) = parse_args(&[], Some(&specs));
    let e = resolve(&specs, &ra, &|_| None, &[]).unwrap_err();
    assert_eq!(e[0].message, "missing required parameter --core-tag (string: Core image tag)");
}

#[test]
fn run_options_mix_with_parameters_in_any_order() {
    let specs = specs();
    let (ra, errs) = parse_args(
        &argv(
            "--timeout 10m --namespace x -f a.yaml --values=b.yaml --output json --context kind-x --artifacts out -v --stdlib-dir s --cleanup",
        ),
        Some(&specs),
    );
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(ra.timeout.as_ref().map(|t| t.0.as_str()), Some("10m"));
    assert_eq!(ra.values.iter().map(|v| v.0.as_str()).collect::<Vec<_>>(), ["a.yaml", "b.yaml"]);
    assert_eq!(ra.output.as_ref().map(|t| t.0.as_str()), Some("json"));
    assert_eq!(ra.context.as_deref(), Some("kind-x"));
    assert_eq!(ra.artifacts.as_deref(), Some("out"));
    assert_eq!(ra.stdlib_dir.as_deref(), Some("s"));
    assert!(ra.verbose);
    assert_eq!(ra.params.len(), 2);
    // The first pass (before the playbook is compiled) reads run options only.
    let (pre, errs) = parse_args(&argv("--namespace x --stdlib-dir s --help"), None);
    assert!(errs.is_empty());
    assert_eq!(pre.stdlib_dir.as_deref(), Some("s"));
    assert!(pre.help && pre.params.is_empty());
}

#[test]
fn declarations_are_checked() {
    let bad = r#"[
        #{ name: "Bad-Name" },
        #{ name: "x", type: "float" },
        #{ name: "y", type: "enum" },
        #{ name: "z", type: "int", default_value: "seven" },
        #{ name: "timeout" },
        #{ name: "w", defualt_value: 1 },
        #{ name: "v", secret: true, type: "int" },
        #{ name: "u" }, #{ name: "u" },
    ]"#;
    let decl: Dynamic = Engine::new().eval(bad).unwrap();
    let msgs: Vec<String> = parse_specs(&decl).unwrap_err().into_iter().map(|e| e.message).collect();
    let want = [
        "parameter 'Bad-Name': name must be snake_case like num_parties",
        "parameter 'x': unknown type 'float'; use one of string, int, bool, duration, list, int_list, enum",
        "parameter 'y': an enum needs values: [\"a\", \"b\"]",
        "parameter 'z': bad default: --z wants an integer, got 'seven'",
        "parameter 'timeout': --timeout is a kmsctl run option; choose another name",
        "parameter 'w': unknown key 'defualt_value' (did you mean 'default_value'?)",
        "parameter 'v': only string parameters can be secret",
        "parameter flag --u is declared twice",
    ];
    for w in want {
        assert!(msgs.iter().any(|m| m == w), "missing {w:?} in {msgs:#?}");
    }
}

#[test]
fn help_lists_every_parameter_with_defaults_and_env() {
    let h = render_help("playbooks/kind.rhai", "Deploy the KMS.", &specs());
    insta::assert_snapshot!(h);
}

/// Regression: a parameter error echoed the command line as given, so a secret's value (a
/// short one the redactor does not scrub, or one after a misspelt flag) reached stderr and
/// the JSON events. Secret values and unknown flags' values are masked by position.
#[test]
fn a_parameter_error_never_echoes_a_secret_value() {
    let specs = specs();
    let a = argv(
        "--grafana-password pw1 --bogus --grafana-passwrd S3CRET-2 --set grafana_password=pw3 \
         --set grafana_pasword=S3CRET-4 --set S3CRET-5 --unknown=S3CRET-6 --grafana-password=pw7 --num-parties x",
    );
    let (ra, errors) = parse_args(&a, Some(&specs));
    assert_eq!(errors.len(), 5, "{errors:#?}");
    let rendered: String = diags(&errors, "p.rhai", &a, &ra.masked, &crate::secret::Redactor::new())
        .iter()
        .map(|d| d.render(false))
        .collect();
    for leaked in ["pw1", "S3CRET", "pw3", "pw7"] {
        assert!(!rendered.contains(leaked), "{leaked} echoed:\n{rendered}");
    }
    assert!(
        rendered.contains(
            "kmsctl run p.rhai --grafana-password *** --bogus --grafana-passwrd *** --set grafana_password=*** \
             --set grafana_pasword=*** --set *** --unknown=*** --grafana-password=*** --num-parties x"
        ),
        "{rendered}"
    );
}

/// Bad input (issue #12): parameter parsing never panics, whatever the command line, and what
/// it accepts obeys the declarations (bounds, enum values, types). Bounded: 512 cases.
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    /// Command-line words: the declared flags and their forms, run options, and junk.
    fn word() -> impl Strategy<Value = String> {
        let flags: Vec<String> = specs().iter().flat_map(|s| s.flag_names().collect::<Vec<_>>()).collect();
        prop_oneof![
            proptest::sample::select(flags.clone()).prop_map(|f| format!("--{f}")),
            proptest::sample::select(flags.clone()).prop_map(|f| format!("--no-{f}")),
            (proptest::sample::select(flags), "[ -~]{0,12}").prop_map(|(f, v)| format!("--{f}={v}")),
            proptest::sample::select(vec!["--set", "--values", "--timeout", "--output", "--", "-", "--=", "---x"])
                .prop_map(str::to_string),
            "[ -~]{0,16}",
            "-?[0-9]{1,22}",
            proptest::sample::select(vec!["threshold", "aws-perf", "20m", "1h30m", "-5s", "1,2,x", "true", "nope"])
                .prop_map(str::to_string),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_command_line_is_parsed_or_refused_never_panics(args in proptest::collection::vec(word(), 0..12)) {
            let specs = specs();
            let (ra, errors) = parse_args(&args, Some(&specs));
            let Ok(resolved) = resolve(&specs, &ra, &|_| None, &[]) else { return Ok(()) };
            if !errors.is_empty() { return Ok(()) }
            for spec in &specs {
                match (resolved.get(&spec.name), &spec.ty) {
                    (Some(ParamValue::Int(i)), ParamType::Int) => {
                        prop_assert!(spec.min.is_none_or(|m| *i >= m), "{} = {i} below min", spec.name);
                    }
                    (Some(ParamValue::String(s)), ParamType::Enum(values)) => {
                        prop_assert!(values.contains(s), "{} = {s:?} is not one of {values:?}", spec.name);
                    }
                    (Some(ParamValue::Duration(..)), ParamType::Duration)
                    | (Some(ParamValue::Bool(_)), ParamType::Bool)
                    | (Some(ParamValue::IntList(_)), ParamType::IntList)
                    | (Some(ParamValue::String(_)), ParamType::String)
                    | (Some(ParamValue::List(_)), ParamType::List)
                    | (None, _) => {}
                    (v, t) => prop_assert!(false, "{} has {v:?} for a {t:?}", spec.name),
                }
            }
        }

        #[test]
        fn durations_parse_or_refuse_and_written_ones_round_trip(text in "[ -~]{0,20}", h in 0u64..48, m in 0u64..60, s in 0u64..60) {
            let _ = crate::duration::parse(&text);
            let want = std::time::Duration::from_secs(h * 3600 + m * 60 + s);
            prop_assert_eq!(crate::duration::parse(&format!("{h}h{m}m{s}s")), Ok(want));
            prop_assert_eq!(crate::duration::parse(&want.as_secs().to_string()), Ok(want));
            if want.as_secs() >= 60 {
                let written = crate::duration::format(want).replace(' ', "");
                prop_assert_eq!(crate::duration::parse(&written), Ok(want));
            }
        }
    }
}
