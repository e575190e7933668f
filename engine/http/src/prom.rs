//! The Prometheus HTTP API (`/api/v1/query`, `/api/v1/query_range`), typed: what a canary's
//! analysis asks of the metrics it is judged by.

use crate::error::HttpError;
use std::time::Duration;

/// One series' point.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The series' labels.
    pub metric: Vec<(String, String)>,
    /// Unix seconds.
    pub time: f64,
    /// The value (`NaN` and infinities as Prometheus writes them).
    pub value: f64,
}

/// One series of a range query.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The series' labels.
    pub metric: Vec<(String, String)>,
    /// `(unix seconds, value)`, oldest first.
    pub values: Vec<(f64, f64)>,
}

/// What a query returned.
#[derive(Clone, Debug, PartialEq)]
pub enum QueryResult {
    /// An instant vector.
    Vector(Vec<Sample>),
    /// A scalar.
    Scalar(f64, f64),
    /// A range query's series.
    Matrix(Vec<Series>),
    /// A string.
    String(String),
}

/// A query's answer: the result and Prometheus' warnings.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// The result.
    pub result: QueryResult,
    /// Warnings (e.g. a query over a range with missing data).
    pub warnings: Vec<String>,
}

/// When and how a range query is evaluated.
#[derive(Clone, Debug)]
pub struct Range {
    /// Start, unix seconds.
    pub start: f64,
    /// End, unix seconds.
    pub end: f64,
    /// Resolution.
    pub step: Duration,
}

/// `/api/v1/query` at `time` (now when `None`), or `/api/v1/query_range` over `range`.
pub async fn query(
    client: &reqwest::Client,
    base: &str,
    promql: &str,
    time: Option<f64>,
    range: Option<&Range>,
    timeout: Duration,
) -> Result<Answer, HttpError> {
    let path = if range.is_some() { "api/v1/query_range" } else { "api/v1/query" };
    let mut url = reqwest::Url::parse(base)
        .and_then(|u| u.join(path))
        .map_err(|e| HttpError::Usage(format!("'{base}' is not a Prometheus URL: {e}")))?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("query", promql);
        if let Some(t) = time {
            q.append_pair("time", &t.to_string());
        }
        if let Some(r) = range {
            q.append_pair("start", &r.start.to_string());
            q.append_pair("end", &r.end.to_string());
            q.append_pair("step", &format!("{}s", r.step.as_secs_f64().max(0.001)));
        }
        q.append_pair("timeout", &format!("{}s", timeout.as_secs().max(1)));
    }
    let shown = format!("{base} {promql}");
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            HttpError::Timeout { method: "query".into(), url: shown.clone(), secs: timeout.as_secs_f64() }
        } else {
            HttpError::Unreachable { method: "query".into(), url: shown.clone(), reason: e.to_string() }
        }
    };
    let resp = client.get(url).timeout(timeout).send().await.map_err(failed)?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(failed)?;
    let body: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| HttpError::Unreachable {
        method: "query".into(),
        url: shown.clone(),
        reason: format!("HTTP {status}, not the Prometheus API's JSON: {e}"),
    })?;
    parse(&body).map_err(|why| match body.get("errorType").and_then(|t| t.as_str()) {
        Some("bad_data") => HttpError::Usage(format!("Prometheus refused {promql}: {why}")),
        _ => HttpError::Failed(format!("Prometheus query {promql}: {why}")),
    })
}

/// The API's JSON envelope: `{status, data: {resultType, result}, warnings}` or `{status:
/// "error", errorType, error}`.
pub(crate) fn parse(body: &serde_json::Value) -> Result<Answer, String> {
    if body.get("status").and_then(|s| s.as_str()) != Some("success") {
        let e = body.get("error").and_then(|e| e.as_str()).unwrap_or("no error message");
        let t = body.get("errorType").and_then(|e| e.as_str()).unwrap_or("error");
        return Err(format!("{t}: {e}"));
    }
    let data = body.get("data").ok_or("no data")?;
    let result = data.get("result").ok_or("no result")?;
    let kind = data.get("resultType").and_then(|t| t.as_str()).ok_or("no resultType")?;
    let point = |p: &serde_json::Value| -> Result<(f64, f64), String> {
        let t = p.get(0).and_then(|t| t.as_f64()).ok_or("a point without a time")?;
        let v = p.get(1).and_then(|v| v.as_str()).ok_or("a point without a value")?;
        Ok((t, number(v)?))
    };
    let labels = |s: &serde_json::Value| -> Vec<(String, String)> {
        s.get("metric")
            .and_then(|m| m.as_object())
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default()
    };
    let list = || result.as_array().cloned().unwrap_or_default();
    let result = match kind {
        "vector" => QueryResult::Vector(
            list()
                .iter()
                .map(|s| {
                    let (time, value) = point(s.get("value").ok_or("a sample without a value")?)?;
                    Ok(Sample { metric: labels(s), time, value })
                })
                .collect::<Result<_, String>>()?,
        ),
        "matrix" => QueryResult::Matrix(
            list()
                .iter()
                .map(|s| {
                    let values = s.get("values").and_then(|v| v.as_array()).cloned().unwrap_or_default();
                    Ok(Series { metric: labels(s), values: values.iter().map(point).collect::<Result<_, String>>()? })
                })
                .collect::<Result<_, String>>()?,
        ),
        "scalar" => {
            let (t, v) = point(result)?;
            QueryResult::Scalar(t, v)
        }
        "string" => QueryResult::String(result.get(1).and_then(|v| v.as_str()).unwrap_or_default().to_string()),
        other => return Err(format!("unknown resultType {other}")),
    };
    let warnings = body
        .get("warnings")
        .and_then(|w| w.as_array())
        .map(|w| w.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .unwrap_or_default();
    Ok(Answer { result, warnings })
}

/// Prometheus' number text: decimals, `NaN`, `+Inf`, `-Inf`.
fn number(v: &str) -> Result<f64, String> {
    match v {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => v.parse().map_err(|_| format!("'{v}' is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_every_result_type_and_the_errors() {
        let v = parse(&json!({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"job": "web", "code": "500"}, "value": [1700000000.5, "0.07"]},
            {"metric": {}, "value": [1700000000.5, "NaN"]},
        ]}, "warnings": ["w"]}))
        .unwrap();
        let QueryResult::Vector(s) = &v.result else { panic!("{v:?}") };
        assert_eq!(s[0].value, 0.07);
        assert_eq!(s[0].metric, [("code".to_string(), "500".to_string()), ("job".into(), "web".into())]);
        assert!(s[1].value.is_nan());
        assert_eq!(v.warnings, ["w"]);
        let m = parse(&json!({"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"a": "b"}, "values": [[1, "1"], [2, "+Inf"]]}]}}))
        .unwrap();
        assert_eq!(
            m.result,
            QueryResult::Matrix(vec![Series {
                metric: vec![("a".into(), "b".into())],
                values: vec![(1.0, 1.0), (2.0, f64::INFINITY)]
            }])
        );
        let sc = parse(&json!({"status": "success", "data": {"resultType": "scalar", "result": [3, "2.5"]}})).unwrap();
        assert_eq!(sc.result, QueryResult::Scalar(3.0, 2.5));
        let e =
            parse(&json!({"status": "error", "errorType": "bad_data", "error": "parse error at char 4"})).unwrap_err();
        assert_eq!(e, "bad_data: parse error at char 4");
        assert!(
            parse(&json!({"status": "success", "data": {"resultType": "vector", "result": [{"value": [1, "x"]}]}}))
                .is_err()
        );
    }
}
