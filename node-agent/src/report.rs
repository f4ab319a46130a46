//! The node's SR-IOV state on its Node object, for `kubectl describe node`:
//! an Event `SriovNodeState` with the whole state (each PF's phase, what
//! differs, who holds it) whenever it changes, and one Event per PF whose
//! phase changed (`SriovApplied`, `SriovPending`, `SriovFailed`, …). With
//! `--annotate-node` the same summary also goes into the annotation
//! `vfplex.io/sriov-node-state` — which needs `nodes: patch`, a right RBAC
//! cannot narrow to one node, so it is off by default (docs/node-agent.md). The agent's
//! own credentials (in-cluster service account, or `KUBECONFIG`) and
//! `NODE_NAME` (the downward API) say where; without them the agent works
//! and reports only in its state file and log. A report that fails is
//! logged and tried again at the next change, never fatal.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, EventSource, Node, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use vfplex_config::node_policy::{NodeState, Phase};

pub const ANNOTATION: &str = "vfplex.io/sriov-node-state";
const AGENT: &str = "vfplex-node-agent";

/// The annotation's value: compact, one line.
pub fn annotation(state: &NodeState) -> String {
    let mut pfs = serde_json::Map::new();
    for (pci, st) in &state.pfs {
        let mut v = serde_json::json!({"pf": st.pf, "phase": st.phase});
        if !st.differs.is_empty() {
            v["differs"] = serde_json::json!(st.differs);
        }
        if !st.held_by.is_empty() {
            v["heldBy"] = serde_json::json!(st.held_by);
        }
        if let Some(e) = &st.error {
            v["error"] = serde_json::json!(e);
        }
        pfs.insert(pci.clone(), v);
    }
    serde_json::json!({"pfs": pfs, "absent": state.absent}).to_string()
}

/// Where to report: a client and the node's name.
#[derive(Clone)]
pub struct Reporter {
    client: Client,
    node: String,
    /// Patch the Node's annotation too (needs `nodes: patch`).
    annotate: bool,
    /// Each PF's phase as last reported.
    last: BTreeMap<String, Phase>,
    last_annotation: Option<String>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("node", &self.node)
            .finish()
    }
}

impl Reporter {
    /// `None` (with the reason) when there is no node name or no API
    /// credentials: reporting is then off.
    pub async fn new(node: Option<String>, annotate: bool) -> Result<Reporter, String> {
        let node = node
            .filter(|n| vfplex_config::validate::dns1123_subdomain("NODE_NAME", n).is_ok())
            .ok_or("NODE_NAME is not set (or not a node name)")?;
        let client = Client::try_default()
            .await
            .map_err(|e| format!("no API credentials: {e}"))?;
        Ok(Reporter {
            client,
            node,
            annotate,
            last: BTreeMap::new(),
            last_annotation: None,
        })
    }

    /// Patch the annotation and post Events for phases that changed.
    pub async fn report(&mut self, state: &NodeState) -> Result<(), String> {
        let value = annotation(state);
        if self.last_annotation.as_deref() != Some(value.as_str()) {
            if self.annotate {
                let nodes: Api<Node> = Api::all(self.client.clone());
                let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION: value}}});
                nodes
                    .patch(&self.node, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| format!("patch node {}: {e}", self.node))?;
            }
            self.event("Normal", "SriovNodeState", &value).await?;
            self.last_annotation = Some(value);
        }
        for (pci, st) in &state.pfs {
            if self.last.get(pci) == Some(&st.phase) {
                continue;
            }
            let (kind, reason) = match st.phase {
                Phase::Applied => ("Normal", "SriovApplied"),
                Phase::Verified => ("Normal", "SriovVerified"),
                Phase::Differs => ("Warning", "SriovDiffers"),
                Phase::Pending => ("Warning", "SriovPending"),
                Phase::Applying => ("Normal", "SriovApplying"),
                Phase::Failed => ("Warning", "SriovFailed"),
                Phase::Absent => ("Normal", "SriovAbsent"),
            };
            let mut msg = format!("PF {} ({pci}): {:?}", st.pf, st.phase);
            if !st.applied.is_empty() {
                msg.push_str(&format!("; applied {}", st.applied.join(", ")));
            }
            if !st.held_by.is_empty() {
                msg.push_str(&format!(
                    "; waiting: {} (held by {})",
                    st.differs.join(", "),
                    st.held_by.join(", ")
                ));
            }
            if let Some(e) = &st.error {
                msg.push_str(&format!("; {e}"));
            }
            self.event(kind, reason, &msg).await?;
            self.last.insert(pci.clone(), st.phase);
        }
        Ok(())
    }

    async fn event(&self, kind: &str, reason: &str, message: &str) -> Result<(), String> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let ev = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", self.node)),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(self.node.clone()),
                uid: Some(self.node.clone()),
                ..ObjectReference::default()
            },
            reason: Some(reason.into()),
            message: Some(message.chars().take(1024).collect()),
            type_: Some(kind.into()),
            source: Some(EventSource {
                component: Some(AGENT.into()),
                host: Some(self.node.clone()),
            }),
            // The legacy form, as kubelet posts node events: with an
            // eventTime the API server wants involvedObject.namespace to be
            // the event's own, which a cluster-scoped Node has not (the
            // e2e's API server refused it with 422).
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            count: Some(1),
            ..Event::default()
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        events
            .create(&PostParams::default(), &ev)
            .await
            .map(|_| ())
            .map_err(|e| format!("post event {reason} for node {}: {e}", self.node))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vfplex_config::node_policy::PfStatus;

    #[test]
    fn the_annotation_says_phase_differences_and_holders() {
        let mut s = NodeState::default();
        s.pfs.insert(
            "0000:01:00.0".into(),
            PfStatus {
                applied: vec!["link up".into()],
                differs: vec!["numVfs 4 -> 2".into()],
                held_by: vec!["pod a/b (intel.com/x)".into()],
                ..PfStatus::new("ens1f0", Some("0000:01:00.0"), Phase::Pending)
            },
        );
        s.absent.push("ens9".into());
        assert_eq!(
            annotation(&s),
            r#"{"pfs":{"0000:01:00.0":{"pf":"ens1f0","phase":"pending","differs":["numVfs 4 -> 2"],"heldBy":["pod a/b (intel.com/x)"]}},"absent":["ens9"]}"#
        );
        assert_eq!(
            annotation(&NodeState::default()),
            r#"{"pfs":{},"absent":[]}"#
        );
    }
}
