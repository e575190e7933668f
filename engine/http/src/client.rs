//! One request with reqwest, timed from send to the end of the body.

use crate::error::HttpError;
use std::time::{Duration, Instant};

/// What to send.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// An `http://` or `https://` URL.
    pub url: String,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body (none for a GET).
    pub body: Option<String>,
    /// The whole request's deadline.
    pub timeout: Duration,
    /// Bodies longer than this are cut (the status and latency still count).
    pub max_body: usize,
}

/// What came back.
#[derive(Clone, Debug)]
pub struct Response {
    /// The HTTP status.
    pub status: u16,
    /// From sending the request to the end of the body.
    pub latency: Duration,
    /// The body as text (lossy UTF-8), at most `max_body` bytes.
    pub body: String,
    /// Whether the body was cut.
    pub truncated: bool,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<serde_json::Value>,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
}

/// Send `req` with `client`. Any status is a response; only no response is an error.
pub async fn request(client: &reqwest::Client, req: &Request) -> Result<Response, HttpError> {
    let method = reqwest::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| HttpError::Usage(format!("'{}' is not an HTTP method", req.method)))?;
    let url =
        reqwest::Url::parse(&req.url).map_err(|e| HttpError::Usage(format!("'{}' is not a URL: {e}", req.url)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(HttpError::Usage(format!("'{}': only http:// and https:// URLs", req.url)));
    }
    let mut b = client.request(method.clone(), url).timeout(req.timeout);
    for (k, v) in &req.headers {
        b = b.header(k, v);
    }
    if let Some(body) = &req.body {
        b = b.body(body.clone());
    }
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            HttpError::Timeout { method: method.to_string(), url: req.url.clone(), secs: req.timeout.as_secs_f64() }
        } else if e.is_builder() {
            HttpError::Usage(format!("{method} {}: {}", req.url, chain(&e)))
        } else {
            HttpError::Unreachable { method: method.to_string(), url: req.url.clone(), reason: chain(&e) }
        }
    };
    let started = Instant::now();
    let mut resp = b.send().await.map_err(failed)?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let mut bytes = Vec::new();
    let mut truncated = false;
    while let Some(chunk) = resp.chunk().await.map_err(failed)? {
        let room = req.max_body.saturating_sub(bytes.len());
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        bytes.extend_from_slice(&chunk);
    }
    let latency = started.elapsed();
    let json = if truncated { None } else { serde_json::from_slice(&bytes).ok() };
    Ok(Response { status, latency, body: String::from_utf8_lossy(&bytes).into_owned(), truncated, json, headers })
}

/// An error and its causes, `a: b: c` (reqwest's own message says only "error sending request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server on loopback answering `reply` (raw HTTP/1.1).
    async fn serve(reply: &'static str) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.expect("accept");
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(reply.as_bytes()).await;
        });
        format!("http://{addr}/healthz")
    }

    fn get(url: String) -> Request {
        Request {
            method: "GET".into(),
            url,
            headers: vec![],
            body: None,
            timeout: Duration::from_secs(5),
            max_body: 1 << 20,
        }
    }

    #[tokio::test]
    async fn a_response_of_any_status_is_a_response_with_its_json() {
        let c = reqwest::Client::new();
        let url =
            serve("HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 15\r\nconnection: close\r\n\r\n{\"ok\": false}\r\n")
                .await;
        let r = request(&c, &get(url)).await.expect("response");
        assert_eq!(r.status, 503);
        assert_eq!(r.json, Some(serde_json::json!({"ok": false})));
        assert!(r.headers.iter().any(|(k, v)| k == "content-type" && v == "application/json"));
        assert!(!r.truncated);
    }

    #[tokio::test]
    async fn a_long_body_is_cut_and_not_parsed() {
        let c = reqwest::Client::new();
        let url = serve("HTTP/1.1 200 OK\r\ncontent-length: 10\r\nconnection: close\r\n\r\n0123456789").await;
        let mut req = get(url);
        req.max_body = 4;
        let r = request(&c, &req).await.expect("response");
        assert_eq!((r.status, r.body.as_str(), r.truncated, r.json), (200, "0123", true, None));
    }

    #[tokio::test]
    async fn nothing_listening_is_unreachable_and_bad_input_is_usage() {
        let c = reqwest::Client::new();
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let e = request(&c, &get(format!("http://127.0.0.1:{port}/"))).await.expect_err("refused");
        assert!(matches!(e, HttpError::Unreachable { .. }), "{e}");
        assert!(e.to_string().contains("onnection refused"), "{e}");
        let e = request(&c, &get("ftp://x/".into())).await.expect_err("scheme");
        assert!(matches!(e, HttpError::Usage(_)), "{e}");
        let mut req = get("http://127.0.0.1:1/".into());
        req.method = "NOT A METHOD".into();
        assert!(matches!(request(&c, &req).await, Err(HttpError::Usage(_))));
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let _hold = tokio::spawn(async move {
            let (_s, _) = l.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(10)).await;
        });
        let mut req = get(format!("http://{addr}/"));
        req.timeout = Duration::from_millis(200);
        let e = request(&reqwest::Client::new(), &req).await.expect_err("timeout");
        assert!(matches!(e, HttpError::Timeout { .. }), "{e}");
    }
}
