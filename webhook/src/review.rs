//! AdmissionReview `admission.k8s.io/v1`: the request the API server posts,
//! and the response it reads back (allowed or denied with a status, an
//! optional base64 JSONPatch, warnings). Only the fields the webhook uses.

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::WebhookError;

pub const API_VERSION: &str = "admission.k8s.io/v1";
pub const KIND: &str = "AdmissionReview";

/// The request half of an AdmissionReview.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AdmissionRequest {
    pub uid: String,
    #[serde(default)]
    pub kind: GroupVersionKind,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub object: Option<Value>,
    #[serde(default)]
    pub dry_run: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GroupVersionKind {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    request: Option<AdmissionRequest>,
}

/// Read an AdmissionReview v1 body; its request.
pub fn parse(body: &[u8]) -> Result<AdmissionRequest, WebhookError> {
    let r: Review =
        serde_json::from_slice(body).map_err(|e| WebhookError::BadReview(e.to_string()))?;
    if r.api_version != API_VERSION || r.kind != KIND {
        return Err(WebhookError::BadReview(format!(
            "apiVersion {:?} kind {:?}",
            r.api_version, r.kind
        )));
    }
    r.request
        .ok_or_else(|| WebhookError::BadReview("no request".into()))
}

/// What the webhook decided about one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Admitted; with JSONPatch operations (empty: unchanged) and warnings.
    Allow {
        patch: Vec<Value>,
        warnings: Vec<String>,
    },
    /// Refused, with the HTTP-ish code and the message `kubectl` prints.
    Deny { code: u16, message: String },
}

impl Verdict {
    pub fn allow() -> Verdict {
        Verdict::Allow {
            patch: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn deny(e: &WebhookError) -> Verdict {
        Verdict::Deny {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// The AdmissionReview the API server reads back for request `uid`.
pub fn response(uid: &str, verdict: &Verdict) -> Value {
    let resp = match verdict {
        Verdict::Allow { patch, warnings } => {
            let mut r = json!({"uid": uid, "allowed": true});
            if !patch.is_empty() {
                let text = Value::Array(patch.clone()).to_string();
                r["patchType"] = json!("JSONPatch");
                r["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(text));
            }
            if !warnings.is_empty() {
                r["warnings"] = json!(warnings);
            }
            r
        }
        Verdict::Deny { code, message } => json!({
            "uid": uid,
            "allowed": false,
            "status": {"code": code, "message": message,
                       "reason": if *code >= 500 { "InternalError" } else { "Invalid" }},
        }),
    };
    json!({"apiVersion": API_VERSION, "kind": KIND, "response": resp})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_a_request_and_answers_with_its_uid() {
        let body = json!({"apiVersion": API_VERSION, "kind": KIND, "request": {
            "uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "namespace": "t", "operation": "CREATE", "object": {"metadata": {}}}});
        let r = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!((r.uid.as_str(), r.kind.kind.as_str()), ("u-1", "Pod"));
        let patch = vec![json!({"op": "add", "path": "/a", "value": 1})];
        let out = response(
            &r.uid,
            &Verdict::Allow {
                patch: patch.clone(),
                warnings: vec![],
            },
        );
        assert_eq!(out["response"]["uid"], "u-1");
        assert_eq!(out["response"]["patchType"], "JSONPatch");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(out["response"]["patch"].as_str().unwrap())
            .unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&raw).unwrap(), json!(patch));
        let out = response("u-2", &Verdict::allow());
        assert!(
            out["response"].get("patch").is_none(),
            "unchanged: no patch"
        );
        let out = response(
            "u-3",
            &Verdict::Deny {
                code: 400,
                message: "no".into(),
            },
        );
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["message"], "no");
    }

    #[test]
    fn refuses_other_versions_and_empty_reviews() {
        let v1beta1 = json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": KIND,
                             "request": {"uid": "u"}});
        assert!(parse(v1beta1.to_string().as_bytes()).is_err());
        let empty = json!({"apiVersion": API_VERSION, "kind": KIND});
        assert!(parse(empty.to_string().as_bytes()).is_err());
        assert!(parse(b"{").is_err());
    }
}
