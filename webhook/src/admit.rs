//! The two admission handlers: a request in, a verdict out. Kinds and
//! operations the webhook configurations do not send are allowed unchanged,
//! so a widened configuration never blocks anything by mistake.

use crate::error::WebhookError;
use crate::nads::{self, NadRules};
use crate::pods::{self, NadSource};
use crate::review::{AdmissionRequest, Verdict};

fn creates_or_updates(req: &AdmissionRequest) -> bool {
    matches!(req.operation.as_str(), "CREATE" | "UPDATE")
}

/// Pods (CREATE): their networks' device requests added, and — with
/// `podnetinfo` — the downward-API volume of their labels and annotations.
pub async fn mutate_pod<S: NadSource>(
    req: &AdmissionRequest,
    nads: &S,
    podnetinfo: bool,
) -> Verdict {
    if req.kind.kind != "Pod" || req.operation != "CREATE" {
        return Verdict::allow();
    }
    let Some(pod) = &req.object else {
        return Verdict::deny(&WebhookError::BadReview(
            "a Pod CREATE without object".into(),
        ));
    };
    let ns = req
        .namespace
        .as_deref()
        .or_else(|| pod["metadata"]["namespace"].as_str())
        .unwrap_or("default");
    let result = async {
        let need = pods::needs(pod, ns, nads).await?;
        let mut ops = pods::patch(pod, ns, &need)?;
        if podnetinfo && !need.is_empty() {
            ops.extend(pods::podnetinfo(pod, ns)?);
        }
        Ok(ops)
    };
    match result.await {
        Ok(patch) => {
            if !patch.is_empty() {
                tracing::info!(pod = %pods::pod_label(pod, ns), uid = %req.uid, "device requests added: {}", serde_json::Value::Array(patch.clone()));
            }
            Verdict::Allow {
                patch,
                warnings: Vec::new(),
            }
        }
        Err(e) => {
            tracing::info!(uid = %req.uid, "pod refused: {e}");
            Verdict::deny(&e)
        }
    }
}

/// NetworkAttachmentDefinitions (CREATE, UPDATE): judged as the meta plugin
/// judges them.
pub fn validate_nad(req: &AdmissionRequest, rules: &NadRules) -> Verdict {
    if req.kind.kind != "NetworkAttachmentDefinition" || !creates_or_updates(req) {
        return Verdict::allow();
    }
    let Some(obj) = &req.object else {
        return Verdict::deny(&WebhookError::BadReview(
            "a NetworkAttachmentDefinition write without object".into(),
        ));
    };
    match nads::judge(obj, req.namespace.as_deref().unwrap_or_default(), rules) {
        Ok(warnings) => Verdict::Allow {
            patch: Vec::new(),
            warnings,
        },
        Err(e) => {
            tracing::info!(uid = %req.uid, "NAD refused: {e}");
            Verdict::deny(&e)
        }
    }
}
