//! Every write the e2e makes to the API server (create, apply, patch, delete)
//! goes through [`write`]: sent once, and sent again only when the answer
//! itself says "try again" — never on any other error, never on a transport
//! failure. What says so, as the API server words it:
//!
//! - `500`/`504` with reason `ServerTimeout` (for instance the ServiceAccount
//!   admission's "No API token found for service account \"default\", retry
//!   after the token is automatically created"), or any 5xx carrying a
//!   `Retry-After` header or `details.retryAfterSeconds`;
//! - `429 Too Many Requests` with a `Retry-After` header or
//!   `details.retryAfterSeconds` (the max-in-flight filter answers in plain
//!   text with only the header, which is why the raw answer is read here
//!   instead of kube's `Error::Api`, which keeps the body only);
//! - `409 Conflict` (reason `Conflict`, not `AlreadyExists`) on an update: the
//!   object changed under us, so the request is built again from fresh state.
//!
//! The waits are the server's own (`Retry-After`), bounded by a deadline for
//! the whole write; giving up says what was being written and the last answer.

use std::future::Future;
use std::time::{Duration, Instant};

use kube::client::Body;
use kube::Client;
use serde_json::Value;

use crate::{say, E2eError, Result};

/// How long one write may keep being told to retry.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(120);

/// The wait before resending an update that met a conflict (the server names
/// none: the request is rebuilt from the object as it is now).
const CONFLICT_PAUSE: Duration = Duration::from_millis(200);

/// The wait after a `ServerTimeout` that names no time of its own.
const SERVER_TIMEOUT_PAUSE: Duration = Duration::from_secs(1);

/// What kind of write a request is: only an update may meet a conflict that
/// a fresh attempt resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    /// A replace or a patch (server-side apply included).
    Update,
    Delete,
}

/// What an answer says about sending the request again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done.
    Done,
    /// The server asked for the request again, after this long.
    Retry { after: Duration, why: String },
    /// Any other answer: the write failed, and this is why.
    Fail(String),
}

/// A `Retry-After` header as seconds (the API server sends whole seconds;
/// an HTTP date or garbage is no hint).
fn header_seconds(value: Option<&str>) -> Option<u64> {
    value.and_then(|v| v.trim().parse::<u64>().ok())
}

/// The verdict on one answer: its HTTP status, its `Retry-After` header and
/// its body (a `Status` object, or anything else).
pub fn verdict(op: Op, code: u16, retry_after: Option<&str>, body: &[u8]) -> Verdict {
    if (200..300).contains(&code) {
        return Verdict::Done;
    }
    let status: Option<kube::core::Status> = serde_json::from_slice(body).ok();
    let reason = status.as_ref().map_or("", |s| s.reason.as_str());
    let message = match &status {
        Some(s) if !s.message.is_empty() => s.message.clone(),
        _ => String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(300)
            .collect(),
    };
    let details_secs = status
        .as_ref()
        .and_then(|s| s.details.as_ref())
        .map(|d| u64::from(d.retry_after_seconds))
        .filter(|s| *s > 0);
    let hint = header_seconds(retry_after)
        .or(details_secs)
        .map(Duration::from_secs);
    let said = format!(
        "{code}{}: {message}",
        if reason.is_empty() {
            String::new()
        } else {
            format!(" {reason}")
        }
    );
    match (code, hint) {
        (429, Some(after)) => Verdict::Retry { after, why: said },
        (429, None) => Verdict::Fail(format!("{said} (429 without Retry-After)")),
        (500..=599, Some(after)) => Verdict::Retry { after, why: said },
        (500..=599, None) if reason == "ServerTimeout" => Verdict::Retry {
            after: SERVER_TIMEOUT_PAUSE,
            why: said,
        },
        (409, _) if reason == "Conflict" && op == Op::Update => Verdict::Retry {
            after: CONFLICT_PAUSE,
            why: said,
        },
        _ => Verdict::Fail(said),
    }
}

/// Send the request `build` makes (called again for every attempt, so an
/// update is rebuilt from fresh state) until the answer is a success, or one
/// that does not say "retry", or `deadline` would pass; the answer's body.
pub async fn write_within<F, Fut>(
    client: &Client,
    what: &str,
    op: Op,
    deadline: Duration,
    mut build: F,
) -> Result<Value>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<http::Request<Vec<u8>>>>,
{
    let start = Instant::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let request = build().await?;
        let answer = client
            .send(request.map(Body::from))
            .await
            .map_err(crate::kube_err(what))?;
        let code = answer.status().as_u16();
        let retry_after = answer
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = answer
            .into_body()
            .collect_bytes()
            .await
            .map_err(crate::kube_err(format!("{what}: read the answer")))?;
        match verdict(op, code, retry_after.as_deref(), &body) {
            Verdict::Done => {
                return serde_json::from_slice(&body)
                    .map_err(|e| E2eError::Check(format!("{what}: the answer is not JSON: {e}")));
            }
            Verdict::Fail(why) => {
                return Err(E2eError::Api {
                    what: what.into(),
                    why,
                })
            }
            Verdict::Retry { after, why } => {
                let left = deadline.saturating_sub(start.elapsed());
                if after > left {
                    return Err(E2eError::Timeout {
                        what: format!("{what} to be accepted ({attempts} attempts)"),
                        secs: deadline.as_secs(),
                        last: format!("{why}; retry asked after {after:?}"),
                    });
                }
                say(format!(
                    "{what}: the API server says retry after {after:?} ({why})"
                ));
                tokio::time::sleep(after).await;
            }
        }
    }
}

/// [`write_within`] with [`WRITE_DEADLINE`].
pub async fn write<F, Fut>(client: &Client, what: &str, op: Op, build: F) -> Result<Value>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<http::Request<Vec<u8>>>>,
{
    write_within(client, what, op, WRITE_DEADLINE, build).await
}

/// Server-side apply of `obj` (named `name`) at the collection `url_path`
/// (e.g. `Pod::url_path(&(), Some(ns))`), forced, as field manager
/// `vfplex-e2e`.
pub async fn apply(
    client: &Client,
    what: &str,
    url_path: &str,
    name: &str,
    obj: &Value,
) -> Result<Value> {
    let pp = kube::api::PatchParams::apply("vfplex-e2e").force();
    write(client, what, Op::Update, || async {
        kube::core::Request::new(url_path)
            .patch(name, &pp, &kube::api::Patch::Apply(obj))
            .map_err(build_err(what))
    })
    .await
}

/// Create `obj` in the collection `url_path`.
pub async fn create(client: &Client, what: &str, url_path: &str, obj: &Value) -> Result<Value> {
    let body = serde_json::to_vec(obj).map_err(|e| E2eError::Check(format!("{what}: {e}")))?;
    write(client, what, Op::Create, || async {
        kube::core::Request::new(url_path)
            .create(&kube::api::PostParams::default(), body.clone())
            .map_err(build_err(what))
    })
    .await
}

/// Delete `name` from the collection `url_path`; `None` when it was
/// already gone (404).
pub async fn delete(
    client: &Client,
    what: &str,
    url_path: &str,
    name: &str,
    dp: &kube::api::DeleteParams,
) -> Result<Option<Value>> {
    match write(client, what, Op::Delete, || async {
        kube::core::Request::new(url_path)
            .delete(name, dp)
            .map_err(build_err(what))
    })
    .await
    {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A request that could not be built.
pub fn build_err(what: &str) -> impl FnOnce(kube::core::request::Error) -> E2eError + '_ {
    move |e| E2eError::Check(format!("{what}: cannot build the request: {e}"))
}

/// The answer as the object it holds.
pub fn into<T: serde::de::DeserializeOwned>(what: &str, v: Value) -> Result<T> {
    serde_json::from_value(v)
        .map_err(|e| E2eError::Check(format!("{what}: unexpected answer: {e}")))
}

/// Whether a failed write failed on `404 NotFound` (a delete of something
/// already gone).
pub fn is_not_found(e: &E2eError) -> bool {
    matches!(e, E2eError::Api { why, .. } if why.starts_with("404"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};

    const SA_TOKEN: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"No API token found for service account \"default\", retry after the token is automatically created and added to the service account","reason":"ServerTimeout","details":{"name":"create pod","kind":"serviceaccounts","retryAfterSeconds":1},"code":500}"#;

    fn status(code: u16, reason: &str, retry: Option<u32>) -> Vec<u8> {
        let mut v = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "m", "reason": reason, "code": code});
        if let Some(s) = retry {
            v["details"] = serde_json::json!({"retryAfterSeconds": s});
        }
        v.to_string().into_bytes()
    }

    fn retry_after(v: &Verdict) -> Option<Duration> {
        match v {
            Verdict::Retry { after, .. } => Some(*after),
            _ => None,
        }
    }

    #[test]
    fn only_answers_that_say_retry_are_retried() {
        let s = Duration::from_secs;
        // The observed failure: the controller-manager had not minted the token yet.
        let v = verdict(Op::Create, 500, None, SA_TOKEN.as_bytes());
        assert_eq!(retry_after(&v), Some(s(1)), "{v:?}");
        assert!(format!("{v:?}").contains("No API token"), "{v:?}");
        // ServerTimeout naming no time still says retry.
        assert_eq!(
            retry_after(&verdict(
                Op::Create,
                500,
                None,
                &status(500, "ServerTimeout", None)
            )),
            Some(SERVER_TIMEOUT_PAUSE)
        );
        // 5xx with the server's hint, in the header or the details.
        assert_eq!(
            retry_after(&verdict(
                Op::Delete,
                503,
                Some("3"),
                &status(503, "ServiceUnavailable", None)
            )),
            Some(s(3))
        );
        assert_eq!(
            retry_after(&verdict(
                Op::Update,
                504,
                None,
                &status(504, "Timeout", Some(2))
            )),
            Some(s(2))
        );
        // 429 from the max-in-flight filter: plain text and the header only.
        assert_eq!(
            retry_after(&verdict(
                Op::Create,
                429,
                Some("1"),
                b"Too many requests, please try again later.\n"
            )),
            Some(s(1))
        );
        assert_eq!(
            retry_after(&verdict(
                Op::Create,
                429,
                None,
                &status(429, "TooManyRequests", Some(4))
            )),
            Some(s(4))
        );
        // A conflict on an update: rebuilt and sent again.
        assert_eq!(
            retry_after(&verdict(
                Op::Update,
                409,
                None,
                &status(409, "Conflict", None)
            )),
            Some(CONFLICT_PAUSE)
        );
        // Everything else fails at once, saying what the server said.
        let fails: [(Op, u16, Option<&str>, Vec<u8>); 9] = [
            (Op::Create, 429, None, b"Too many requests".to_vec()),
            (Op::Create, 429, Some("soon"), b"Too many requests".to_vec()),
            (Op::Create, 500, None, status(500, "InternalError", None)),
            (Op::Create, 503, None, b"upstream connect error".to_vec()),
            (Op::Create, 409, None, status(409, "Conflict", None)),
            (Op::Update, 409, None, status(409, "AlreadyExists", None)),
            (Op::Create, 404, Some("1"), status(404, "NotFound", Some(1))),
            (Op::Update, 422, None, status(422, "Invalid", None)),
            (Op::Create, 403, None, status(403, "Forbidden", None)),
        ];
        for (op, code, header, body) in fails {
            let v = verdict(op, code, header, &body);
            match &v {
                Verdict::Fail(why) => assert!(why.starts_with(&code.to_string()), "{why}"),
                other => panic!("{op:?} {code} {header:?}: want Fail, got {other:?}"),
            }
        }
        assert_eq!(verdict(Op::Create, 201, None, b"{}"), Verdict::Done);
    }

    /// A stand-in API server answering each request with the next canned
    /// answer; returns its URL and the requests it saw (method and path).
    fn stand_in(answers: Vec<String>) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let handle = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for answer in answers {
                let Ok((stream, _)) = listener.accept() else {
                    break;
                };
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                seen.push(line.trim().to_string());
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let mut stream = reader.into_inner();
                let _ = stream.write_all(answer.as_bytes());
            }
            seen
        });
        (url, handle)
    }

    fn answer(code: u16, headers: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{headers}\r\n{body}",
            body.len()
        )
    }

    async fn client(url: &str) -> Client {
        let config = kube::Config::new(url.parse().expect("url"));
        Client::try_from(config).expect("client")
    }

    fn create_pod() -> Result<http::Request<Vec<u8>>> {
        kube::core::Request::new("/api/v1/namespaces/x/pods")
            .create(&Default::default(), b"{}".to_vec())
            .map_err(build_err("create pod"))
    }

    #[tokio::test]
    async fn the_token_race_is_waited_out_and_a_refusal_is_not() {
        let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}"#;
        let (url, server) = stand_in(vec![
            answer(500, "", SA_TOKEN),
            answer(429, "Retry-After: 1\r\n", "Too many requests"),
            answer(201, "", pod),
        ]);
        let c = client(&url).await;
        let got = write(&c, "create pod x/p", Op::Create, || async { create_pod() })
            .await
            .expect("created after two retries");
        assert_eq!(got["metadata"]["name"], "p");
        assert_eq!(server.join().expect("server").len(), 3);

        // A refusal that does not say retry is the answer: one request.
        let (url, server) = stand_in(vec![answer(
            500,
            "",
            r#"{"kind":"Status","status":"Failure","message":"etcd broke","reason":"InternalError","code":500}"#,
        )]);
        let c = client(&url).await;
        let err = write(&c, "create pod x/p", Op::Create, || async { create_pod() })
            .await
            .expect_err("no retry on a plain 500");
        assert!(err.to_string().contains("etcd broke"), "{err}");
        assert_eq!(server.join().expect("server").len(), 1);

        // A server that keeps saying retry is given up on at the deadline,
        // saying what it waited for.
        // (A deadline of zero: the first "retry after 1 s" is already past it.)
        let (url, server) = stand_in(vec![answer(500, "", SA_TOKEN)]);
        let c = client(&url).await;
        let err = write_within(&c, "create pod x/p", Op::Create, Duration::ZERO, || async {
            create_pod()
        })
        .await
        .expect_err("deadline");
        let text = err.to_string();
        assert!(
            text.contains("create pod x/p to be accepted") && text.contains("No API token"),
            "{text}"
        );
        assert_eq!(server.join().expect("server").len(), 1);
    }
}
