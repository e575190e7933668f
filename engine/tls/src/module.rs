//! The Rhai adapter: `import "tls" as tls;`, then `tls::party_certs(["kms-core-1"], #{})`.
//! Argument conversion and documentation only; the work is in `certs`.

use crate::certs::{self, CertInfo, DEFAULT_DAYS, PartyOptions};
use crate::error::TlsError;
use kmsctl_host::{BuiltModule, Failure, HostCtx, HostFailure, ModuleBuilder, NativeModule, Opts, Secret};
use kmsctl_host::{ScriptResult as R, to_rhai, usage_err};
use rhai::{Array, Dynamic, EvalAltResult, Map};

/// The `tls` native module.
pub struct Tls;

const PARTY_KEYS: [&str; 2] = ["wildcard", "days"];

/// A failure of `func`, named in its message like the option errors are.
fn fail(func: &str, e: &TlsError) -> Box<EvalAltResult> {
    to_rhai(&Failure::new(e.kind(), format!("{func}: {e}")))
}

fn names(func: &str, a: &Array) -> R<Vec<String>> {
    a.iter()
        .enumerate()
        .map(|(i, v)| {
            if v.is::<Secret>() || !v.is_string() {
                return Err(usage_err(format!("{func}: name {} must be a string, got {}", i + 1, v.type_name())));
            }
            Ok(v.to_string())
        })
        .collect()
}

fn party_certs(ctx: &HostCtx, names_in: &Array, opts: &Map) -> R<Map> {
    const F: &str = "tls::party_certs";
    let o = Opts::new(opts, F, &PARTY_KEYS)?;
    let days = match o.int("days")? {
        None => DEFAULT_DAYS,
        Some(d) => u32::try_from(d).map_err(|_| fail(F, &TlsError::Days { got: d }))?,
    };
    let opts = PartyOptions { wildcard: o.bool("wildcard", false)?, days };
    let made = certs::party_certs(&names(F, names_in)?, &opts).map_err(|e| fail(F, &e))?;
    let mut parties = Map::new();
    for p in made.parties {
        ctx.redactor().register(&p.key_pem);
        let mut m = Map::new();
        m.insert("cert".into(), p.cert_pem.into());
        m.insert("key".into(), Dynamic::from(p.key_pem));
        parties.insert(p.name.into(), m.into());
    }
    let mut out = Map::new();
    out.insert("parties".into(), parties.into());
    out.insert("combined".into(), made.combined.into());
    Ok(out)
}

fn info_map(c: CertInfo) -> Dynamic {
    let mut m = Map::new();
    m.insert("subject".into(), c.subject.into());
    m.insert("sans".into(), c.sans.into_iter().map(Dynamic::from).collect::<Array>().into());
    m.insert("not_before".into(), c.not_before.into());
    m.insert("not_after".into(), c.not_after.into());
    m.insert("is_ca".into(), c.is_ca.into());
    m.into()
}

impl NativeModule for Tls {
    fn name(&self) -> &'static str {
        "tls"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let mut b = ModuleBuilder::new(
            ctx,
            self.name(),
            "TLS certificates for the KMS parties, made in-process (what the toolkit's kms-gen-tls-certs\n\
             did): `tls::party_certs([\"kms-core-1\", \"kms-core-2\"], #{ wildcard: true })`.",
        );
        let c = ctx.clone();
        b.func(
            "party_certs",
            &["names: array", "options: map", "map"],
            "For each name, an ECDSA P-256 key and a self-signed certificate (not a CA: webpki verifies\n\
             peers as end entities): CN and first SAN the name, also valid for 127.0.0.1, localhost,\n\
             192.168.0.1 and ::1; key usages digitalSignature, keyCertSign, cRLSign, keyEncipherment,\n\
             keyAgreement; extended key usages serverAuth and clientAuth. Names may hold ASCII letters,\n\
             digits, '-' and '.'. Options: wildcard (false: true also names `*.<name>`), days (365: the\n\
             validity from now; it starts 5 minutes back for clock skew). Returns #{ parties: #{ <name>:\n\
             #{ cert: PEM, key: Secret PEM } }, combined: every cert PEM concatenated in the order given }.",
            move |n: Array, o: Map| party_certs(&c, &n, &o),
        )
        .options(&PARTY_KEYS)
        .reads();
        let c = ctx.clone();
        b.func(
            "party_certs",
            &["names: array", "map"],
            "Party certificates with the defaults (no wildcard, 365 days).",
            move |n: Array| party_certs(&c, &n, &Map::new()),
        )
        .reads();
        b.func(
            "describe",
            &["pem: string", "map"],
            "What one PEM certificate says: #{ subject (\"CN=name\"), sans: [..] (DNS names, IP addresses),\n\
             not_before, not_after (RFC 3339), is_ca }. Throws `parse` for anything else, or for a bundle.",
            |pem: &str| -> R<Dynamic> { certs::describe(pem).map(info_map).map_err(|e| fail("tls::describe", &e)) },
        )
        .reads();
        b.func(
            "describe_all",
            &["pem: string", "array"],
            "Every certificate of a PEM bundle (like `combined`), in order, each as `describe` gives it.",
            |pem: &str| -> R<Array> {
                let all = certs::describe_all(pem).map_err(|e| fail("tls::describe_all", &e))?;
                Ok(all.into_iter().map(info_map).collect())
            },
        )
        .reads();
        b.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmsctl_host::{CancelScope, Events, Redactor};

    fn engine() -> (tokio::runtime::Runtime, rhai::Engine, Redactor) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let redactor = Redactor::new();
        let events = Events::new(Vec::new(), redactor.clone());
        let ctx = HostCtx::new(rt.handle().clone(), CancelScope::root(), events, Default::default());
        let mut e = rhai::Engine::new();
        e.register_static_module("tls", Tls.build(&ctx).functions.into());
        (rt, e, redactor)
    }

    fn error(e: &rhai::Engine, script: &str) -> (String, String) {
        let err = e.eval::<Dynamic>(script).expect_err("must fail");
        let rhai::EvalAltResult::ErrorRuntime(v, _) = err.unwrap_inner() else { panic!("not a runtime error: {err}") };
        let m = v.clone().cast::<Map>();
        (m["kind"].to_string(), m["message"].to_string())
    }

    #[test]
    fn keys_are_registered_secrets_and_certs_plain_text() {
        let (_rt, e, redactor) = engine();
        let out = e.eval::<Map>(r#"tls::party_certs(["p1", "p2"], #{ wildcard: true, days: 10 })"#).unwrap();
        let parties = out["parties"].clone().cast::<Map>();
        let p1 = parties["p1"].clone().cast::<Map>();
        let key = p1["key"].clone().cast::<Secret>();
        assert_eq!(redactor.redact(&format!("leaked: {}", key.expose())), "leaked: ***");
        assert!(p1["cert"].is_string());
        let combined = out["combined"].clone().into_string().unwrap();
        assert_eq!(combined, format!("{}{}", p1["cert"], parties["p2"].clone().cast::<Map>()["cert"]));
        let sans = e
            .eval::<Array>(
                r#"let c = tls::party_certs(["p9"], #{ wildcard: true }); tls::describe(c.parties.p9.cert).sans"#,
            )
            .unwrap();
        assert_eq!(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..2], ["p9", "*.p9"]);
    }

    #[test]
    fn bad_arguments_are_pointed_usage_errors() {
        let (_rt, e, _) = engine();
        for (script, want) in [
            (
                r#"tls::party_certs(["p1"], #{ wildcrd: true })"#,
                "tls::party_certs: unknown option 'wildcrd' (did you mean 'wildcard'?); options are wildcard, days",
            ),
            (
                r#"tls::party_certs(["p1", "kms/2"])"#,
                "tls::party_certs: invalid name 'kms/2': names may hold only ASCII letters, digits, '-' and '.'",
            ),
            (r#"tls::party_certs(["p1", 2])"#, "tls::party_certs: name 2 must be a string, got i64"),
            (r#"tls::party_certs([])"#, "tls::party_certs: give at least one party name"),
            (r#"tls::party_certs(["p1"], #{ days: -1 })"#, "tls::party_certs: days must be from 1 to 36500, got -1"),
            (
                r#"tls::party_certs(["p1"], #{ wildcard: "yes" })"#,
                "tls::party_certs: wildcard must be true or false, got string",
            ),
        ] {
            assert_eq!(error(&e, script), ("usage".to_string(), want.to_string()), "{script}");
        }
        let (kind, msg) = error(&e, r#"tls::describe("nope")"#);
        assert_eq!(
            (kind.as_str(), msg.as_str()),
            ("parse", "tls::describe: no PEM certificate (-----BEGIN CERTIFICATE-----) in the text")
        );
    }
}
