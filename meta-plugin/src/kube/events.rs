//! What the meta plugin writes about a pod: its network-status annotation
//! (merge-patched onto pods/status, an update where the server takes no
//! PATCH) and its Events — one at a time, or all of one ADD pipelined.

use serde_json::Value;

use super::transport::Request;
use super::{KubeClient, KubeError, Pending};

impl KubeClient {
    /// The annotation set by reading the pod and updating it whole.
    fn update_annotation(
        &self,
        ns: &str,
        name: &str,
        key: &str,
        value: &str,
    ) -> Result<(), KubeError> {
        let path = format!("/api/v1/namespaces/{ns}/pods/{name}/status");
        let not_found = |method: &str| KubeError::Status {
            method: method.into(),
            path: path.clone(),
            status: 404,
            body: "not found".into(),
        };
        let mut pod = self.get_pod(ns, name)?.ok_or_else(|| not_found("GET"))?;
        if !pod["metadata"]["annotations"].is_object() {
            pod["metadata"]["annotations"] = serde_json::json!({});
        }
        pod["metadata"]["annotations"][key] = Value::String(value.to_string());
        let body = pod.to_string();
        self.json("PUT", &path, Some(("application/json", body.as_bytes())))?
            .map(|_| ())
            .ok_or_else(|| not_found("PUT"))
    }

    /// One annotation (the network-status) merge-patched onto the pod
    /// through its status subresource (what Multus's RBAC grants:
    /// pods/status), and the pod's Events, pipelined: written now, the
    /// patch's outcome and each Event's read by [`ReportSent::outcome`]. A
    /// server that takes no PATCH there gets what Multus sends: the whole
    /// pod, updated (PUT).
    pub fn send_report(
        &self,
        pod: &PodRef<'_>,
        key: &str,
        value: &str,
        events: &[EventDesc<'_>],
    ) -> ReportSent<'_> {
        let status_path = format!("/api/v1/namespaces/{}/pods/{}/status", pod.ns, pod.name);
        let events_path = format!("/api/v1/namespaces/{}/events", pod.ns);
        let patch = serde_json::json!({"metadata": {"annotations": {key: value}}}).to_string();
        let bodies: Vec<String> = events.iter().map(|e| event_body(pod, e)).collect();
        let mut reqs = vec![Request {
            method: "PATCH",
            path: &status_path,
            body: Some(("application/merge-patch+json", patch.as_bytes())),
        }];
        reqs.extend(bodies.iter().map(|b| Request {
            method: "POST",
            path: &events_path,
            body: Some(("application/json", b.as_bytes())),
        }));
        ReportSent {
            client: self,
            ns: pod.ns.to_string(),
            name: pod.name.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            pending: self.send(&reqs),
        }
    }

    /// A Kubernetes Event about the pod (best effort).
    pub fn event(
        &self,
        ns: &str,
        pod: &str,
        uid: &str,
        kind: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), KubeError> {
        let body = event_body(
            &PodRef { ns, name: pod, uid },
            &EventDesc {
                kind,
                reason,
                message,
            },
        );
        self.json(
            "POST",
            &format!("/api/v1/namespaces/{ns}/events"),
            Some(("application/json", body.as_bytes())),
        )
        .map(|_| ())
    }
}

/// A report on its way ([`KubeClient::send_report`]).
#[derive(Debug)]
pub struct ReportSent<'c> {
    client: &'c KubeClient,
    ns: String,
    name: String,
    key: String,
    value: String,
    pending: Pending<'c>,
}

impl ReportSent<'_> {
    /// The patch's outcome (after the PUT a server that takes no PATCH
    /// gets) and each Event's.
    pub fn outcome(self) -> (Result<(), KubeError>, Vec<Result<(), KubeError>>) {
        let c = self.client;
        let mut answers = self.pending.answers().into_iter();
        let patched = match answers.next() {
            Some(Ok(Some(_))) => Ok(()),
            Some(
                Ok(None)
                | Err(KubeError::Status {
                    status: 405 | 415, ..
                }),
            ) => c.update_annotation(&self.ns, &self.name, &self.key, &self.value),
            Some(Err(e)) => Err(e),
            None => Err(c
                .transport
                .unavailable("no answer to the status patch".into())),
        };
        (patched, answers.map(|a| a.map(|_| ())).collect())
    }
}

/// The pod an Event or a status is about.
#[derive(Debug, Clone, Copy)]
pub struct PodRef<'a> {
    pub ns: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

/// One Event: its type (Normal, Warning), reason and message.
#[derive(Debug, Clone, Copy)]
pub struct EventDesc<'a> {
    pub kind: &'a str,
    pub reason: &'a str,
    pub message: &'a str,
}

fn event_body(pod: &PodRef<'_>, e: &EventDesc<'_>) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    serde_json::json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"generateName": format!("{}.", pod.name), "namespace": pod.ns},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod.name,
                           "namespace": pod.ns, "uid": pod.uid},
        "reason": e.reason, "message": e.message, "type": e.kind,
        "source": {"component": "vfplex"},
        "firstTimestamp": rfc3339(now), "lastTimestamp": rfc3339(now), "count": 1
    })
    .to_string()
}

fn rfc3339(secs: u64) -> String {
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_420_800), "2026-11-23T08:00:00Z");
    }
}
