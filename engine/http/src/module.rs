//! The Rhai adapter: `import "http" as http;`, then `http::get(url, #{ timeout: "2s" })`.
//! Argument conversion and documentation only; the work is in `client`.

use crate::client::{self, Request, Response};
use crate::prom::{Answer, QueryResult, Range};
use kmsctl_host::value::{Reveal, from_json, to_json};
use kmsctl_host::{BuiltModule, HostCtx, ModuleBuilder, NativeModule, Opts, ScriptResult as R};
use rhai::{Array, Dynamic, Map};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The `http` native module.
pub struct Http;

const KEYS: [&str; 5] = ["headers", "body", "json", "timeout", "max_body"];

/// One client per run: connections are reused from one check to the next.
#[derive(Clone, Default)]
struct State(Arc<OnceLock<reqwest::Client>>);

impl State {
    fn client(&self) -> reqwest::Client {
        self.0.get_or_init(reqwest::Client::new).clone()
    }
}

fn send(ctx: &HostCtx, st: &State, method: &str, url: &str, opts: &Map, func: &str) -> R<Map> {
    let o = Opts::new(opts, func, &KEYS)?;
    let mut headers = Vec::new();
    if let Some(v) = o.get("headers") {
        let Some(m) = v.read_lock::<Map>() else {
            return Err(o.usage(format!("headers must be a map, got {}", v.type_name())));
        };
        for (k, v) in m.iter() {
            match to_json(v, Reveal::Expose) {
                Ok(serde_json::Value::String(s)) => headers.push((k.to_string(), s)),
                _ => return Err(o.usage(format!("header {k} must be a string or a secret, got {}", v.type_name()))),
            }
        }
    }
    let mut body = o.exposed("body")?;
    if let Some(v) = o.get("json") {
        if body.is_some() {
            return Err(o.usage("give body or json, not both"));
        }
        let j = to_json(v, Reveal::Expose).map_err(|e| o.usage(format!("json: {e}")))?;
        body = Some(j.to_string());
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
            headers.push(("content-type".into(), "application/json".into()));
        }
    }
    let max_body = match o.int("max_body")? {
        None => 1 << 20,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| o.usage("max_body must be a positive number of bytes"))?,
    };
    let req = Request {
        method: method.to_string(),
        url: url.to_string(),
        headers,
        body,
        timeout: o.duration("timeout")?.unwrap_or(Duration::from_secs(10)),
        max_body,
    };
    let client = st.client();
    let r = ctx.block_on(async move { client::request(&client, &req).await })?;
    Ok(to_map(r))
}

fn to_map(r: Response) -> Map {
    let mut m = Map::new();
    m.insert("status".into(), (r.status as i64).into());
    m.insert("ok".into(), (200..300).contains(&r.status).into());
    m.insert("latency_ms".into(), (r.latency.as_secs_f64() * 1000.0).into());
    m.insert("body".into(), r.body.into());
    m.insert("truncated".into(), r.truncated.into());
    m.insert("json".into(), r.json.map(from_json).unwrap_or(Dynamic::UNIT));
    let mut h = Map::new();
    for (k, v) in r.headers {
        h.insert(k.into(), v.into());
    }
    m.insert("headers".into(), h.into());
    m
}

impl NativeModule for Http {
    fn name(&self) -> &'static str {
        "http"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let st = State::default();
        let mut b = ModuleBuilder::new(
            ctx,
            self.name(),
            "One HTTP request, measured (health gates, canary analysis): `http::get(url, #{ timeout: \"2s\" })`\n\
             → #{status, ok, latency_ms, body, json, headers}. Any status is a result; no response is an error\n\
             (`unavailable`, or `timeout`).",
        );
        let doc_opts = "Options: headers (map; values may be secrets), timeout (\"10s\"), max_body (bytes, 1 MiB;\n\
                        a longer body is cut, `truncated`, and not parsed).";
        let (c, s) = (ctx.clone(), st.clone());
        b.func(
            "get",
            &["url: string", "options: map", "map"],
            &format!("GET `url`: #{{status, ok (2xx), latency_ms, body, json (the body parsed, or `()`), headers}}. {doc_opts}"),
            move |url: &str, o: Map| send(&c, &s, "GET", url, &o, "http::get"),
        ).options(&KEYS)
        .reads();
        let (c, s) = (ctx.clone(), st.clone());
        b.func("get", &["url: string", "map"], "GET `url` with default options.", move |url: &str| {
            send(&c, &s, "GET", url, &Map::new(), "http::get")
        })
        .reads();
        let (c, s) = (ctx.clone(), st);
        b.func(
            "request",
            &["method: string", "url: string", "options: map", "map"],
            &format!("Any method, as `get` returns. Also body (text, may be a secret) or json (a value, sent as JSON). {doc_opts}"),
            move |method: &str, url: &str, o: Map| send(&c, &s, method, url, &o, "http::request"),
        ).options(&KEYS)
        .mutates();
        b.build()
    }
}

/// The `prom` native module: the Prometheus HTTP API.
pub struct Prom;

const QUERY_KEYS: [&str; 2] = ["time", "timeout"];
const RANGE_KEYS: [&str; 5] = ["start", "end", "range", "step", "timeout"];

/// Unix seconds from a number, or an RFC 3339 text.
fn instant(o: &Opts, k: &str) -> R<Option<f64>> {
    let Some(v) = o.get(k) else { return Ok(None) };
    if let Ok(i) = v.as_int() {
        return Ok(Some(i as f64));
    }
    if let Ok(f) = v.as_float() {
        return Ok(Some(f));
    }
    let t = o.str(k)?.unwrap_or_default();
    let ts: jiff::Timestamp =
        t.parse().map_err(|e| o.usage(format!("{k} must be unix seconds or an RFC 3339 time, got '{t}': {e}")))?;
    Ok(Some(ts.as_millisecond() as f64 / 1000.0))
}

fn labels(l: Vec<(String, String)>) -> Dynamic {
    let mut m = Map::new();
    for (k, v) in l {
        m.insert(k.into(), v.into());
    }
    m.into()
}

fn answer_map(a: Answer) -> Map {
    let mut m = Map::new();
    let (kind, value) = match a.result {
        QueryResult::Vector(samples) => {
            let one = (samples.len() == 1).then(|| samples[0].value);
            let list: Array = samples
                .into_iter()
                .map(|s| {
                    let mut x = Map::new();
                    x.insert("metric".into(), labels(s.metric));
                    x.insert("value".into(), s.value.into());
                    x.insert("time".into(), s.time.into());
                    x.into()
                })
                .collect();
            m.insert("samples".into(), list.into());
            ("vector", one)
        }
        QueryResult::Matrix(series) => {
            let list: Array = series
                .into_iter()
                .map(|s| {
                    let mut x = Map::new();
                    x.insert("metric".into(), labels(s.metric));
                    let pts: Array = s
                        .values
                        .into_iter()
                        .map(|(t, v)| Dynamic::from(vec![Dynamic::from(t), Dynamic::from(v)]))
                        .collect();
                    x.insert("values".into(), pts.into());
                    x.into()
                })
                .collect();
            m.insert("series".into(), list.into());
            ("matrix", None)
        }
        QueryResult::Scalar(_, v) => ("scalar", Some(v)),
        QueryResult::String(s) => {
            m.insert("string".into(), s.into());
            ("string", None)
        }
    };
    m.insert("type".into(), kind.into());
    m.insert("value".into(), value.map(Dynamic::from).unwrap_or(Dynamic::UNIT));
    m.insert("warnings".into(), a.warnings.into_iter().map(Dynamic::from).collect::<Array>().into());
    m
}

fn run_query(
    ctx: &HostCtx,
    st: &State,
    url: &str,
    q: &str,
    time: Option<f64>,
    range: Option<Range>,
    timeout: Duration,
) -> R<Answer> {
    let (client, url, q) = (st.client(), url.to_string(), q.to_string());
    ctx.block_on(async move { crate::prom::query(&client, &url, &q, time, range.as_ref(), timeout).await })
}

fn instant_query(ctx: &HostCtx, st: &State, url: &str, q: &str, opts: &Map, func: &str) -> R<Answer> {
    let o = Opts::new(opts, func, &QUERY_KEYS)?;
    let timeout = o.duration("timeout")?.unwrap_or(Duration::from_secs(10));
    run_query(ctx, st, url, q, instant(&o, "time")?, None, timeout)
}

/// The single value of an instant query: `()` for no series, an error for several.
fn value_of(q: &str, a: Answer) -> R<Dynamic> {
    match a.result {
        QueryResult::Scalar(_, v) => Ok(v.into()),
        QueryResult::Vector(s) if s.is_empty() => Ok(Dynamic::UNIT),
        QueryResult::Vector(s) if s.len() == 1 => Ok(s[0].value.into()),
        QueryResult::Vector(s) => Err(kmsctl_host::usage_err(format!(
            "prom::value: {q} returned {} series, not one; aggregate it (sum(...), max(...))",
            s.len()
        ))),
        _ => Err(kmsctl_host::usage_err(format!("prom::value: {q} is not an instant vector or scalar"))),
    }
}

impl NativeModule for Prom {
    fn name(&self) -> &'static str {
        "prom"
    }
    fn build(&self, ctx: &HostCtx) -> BuiltModule {
        let st = State::default();
        let mut b = ModuleBuilder::new(
            ctx,
            self.name(),
            "The Prometheus HTTP API, typed: `prom::value(\"http://prometheus:9090\", \"sum(rate(errors[1m]))\")`.\n\
             NaN and ±Inf come back as floats; a refused query (bad PromQL) is a `usage` error.",
        );
        let (c, s) = (ctx.clone(), st.clone());
        b.func(
            "query",
            &["url: string", "promql: string", "options: map", "map"],
            "An instant query: #{type (\"vector\", \"scalar\", ...), samples: [#{metric, value, time}], value (the\n\
             one sample's, or `()`), warnings}. Options: time (unix seconds or RFC 3339; now), timeout (\"10s\").",
            move |url: &str, q: &str, o: Map| -> R<Map> {
                Ok(answer_map(instant_query(&c, &s, url, q, &o, "prom::query")?))
            },
        )
        .options(&QUERY_KEYS)
        .reads();
        let (c, s) = (ctx.clone(), st.clone());
        b.func(
            "query",
            &["url: string", "promql: string", "map"],
            "An instant query now.",
            move |url: &str, q: &str| -> R<Map> {
                Ok(answer_map(instant_query(&c, &s, url, q, &Map::new(), "prom::query")?))
            },
        )
        .reads();
        let (c, s) = (ctx.clone(), st.clone());
        b.func(
            "value",
            &["url: string", "promql: string", "options: map", "any"],
            "The one value of an instant query (a float; NaN as Prometheus gives it), `()` when it returns no\n\
             series, an error when several (aggregate them). Options as `query`.",
            move |url: &str, q: &str, o: Map| -> R<Dynamic> {
                value_of(q, instant_query(&c, &s, url, q, &o, "prom::value")?)
            },
        )
        .options(&QUERY_KEYS)
        .reads();
        let (c, s) = (ctx.clone(), st.clone());
        b.func(
            "value",
            &["url: string", "promql: string", "any"],
            "The one value of an instant query now.",
            move |url: &str, q: &str| -> R<Dynamic> {
                value_of(q, instant_query(&c, &s, url, q, &Map::new(), "prom::value")?)
            },
        )
        .reads();
        let (c, s) = (ctx.clone(), st);
        b.func(
            "query_range",
            &["url: string", "promql: string", "options: map", "map"],
            "A range query: #{type: \"matrix\", series: [#{metric, values: [[time, value], ...]}], warnings}.\n\
             Options: range (\"5m\": ending at end) or start, end (unix seconds or RFC 3339; now), step (\"15s\"), timeout.",
            move |url: &str, q: &str, o: Map| -> R<Map> {
                let oo = Opts::new(&o, "prom::query_range", &RANGE_KEYS)?;
                let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
                let end = instant(&oo, "end")?.unwrap_or(now);
                let start = match (instant(&oo, "start")?, oo.duration("range")?) {
                    (Some(_), Some(_)) => return Err(oo.usage("give start or range, not both")),
                    (Some(t), None) => t,
                    (None, r) => end - r.unwrap_or(Duration::from_secs(300)).as_secs_f64(),
                };
                if start > end {
                    return Err(oo.usage("start is after end"));
                }
                let step = oo.duration("step")?.unwrap_or(Duration::from_secs(15));
                let timeout = oo.duration("timeout")?.unwrap_or(Duration::from_secs(10));
                Ok(answer_map(run_query(&c, &s, url, q, None, Some(Range { start, end, step }), timeout)?))
            },
        ).options(&RANGE_KEYS)
        .reads();
        b.build()
    }
}
