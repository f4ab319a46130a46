//! NetworkAttachmentDefinitions from the API server: one by GET, or a pod's
//! all at once in as few round trips as the answers allow.

use serde_json::Value;

use super::transport::Request;
use super::{KubeClient, KubeError, Pending};

impl KubeClient {
    pub fn get_nad(&self, ns: &str, name: &str) -> Result<Option<Value>, KubeError> {
        self.json("GET", &nad_path(ns, name), None)
    }

    /// NADs by namespace and name, in as few round trips as the answers
    /// allow: a namespace that several are wanted from is listed once from
    /// the API server's watch cache (`resourceVersion=0`, no etcd read), the
    /// others are GETs, all pipelined; a NAD the cached list lacks (created
    /// a moment ago) is then read with a GET. Written now, their answers read
    /// by [`NadReads::answers`].
    pub fn send_nads(&self, wanted: Vec<(String, String)>) -> NadReads<'_> {
        let mut per_ns: std::collections::BTreeMap<&str, usize> = Default::default();
        for (ns, _) in &wanted {
            *per_ns.entry(ns.as_str()).or_default() += 1;
        }
        let listed: Vec<String> = per_ns
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(ns, _)| ns.to_string())
            .collect();
        let paths: Vec<String> = listed
            .iter()
            .map(|ns| format!("{}?resourceVersion=0", nads_path(ns)))
            .chain(
                wanted
                    .iter()
                    .filter(|(ns, _)| !listed.contains(ns))
                    .map(|(ns, name)| nad_path(ns, name)),
            )
            .collect();
        let pending = self.send(&gets(&paths));
        NadReads {
            client: self,
            wanted,
            listed,
            pending,
        }
    }

    /// GETs of `paths`, pipelined.
    fn gets(&self, paths: &[String]) -> Vec<Result<Option<Value>, KubeError>> {
        self.pipelined(&gets(paths))
    }
}

fn gets(paths: &[String]) -> Vec<Request<'_>> {
    paths
        .iter()
        .map(|p| Request {
            method: "GET",
            path: p,
            body: None,
        })
        .collect()
}

/// A NAD (namespace, name) and what was read of it.
pub type NadRead = ((String, String), Result<Option<Value>, KubeError>);

/// NAD reads on their way ([`KubeClient::send_nads`]).
#[derive(Debug)]
pub struct NadReads<'c> {
    client: &'c KubeClient,
    wanted: Vec<(String, String)>,
    /// Namespaces read by a LIST, in the order their LISTs were sent.
    listed: Vec<String>,
    pending: Pending<'c>,
}

impl NadReads<'_> {
    /// Each wanted NAD (namespace and name) and what was read of it, in the
    /// order asked: `None` for one not there.
    pub fn answers(self) -> Vec<NadRead> {
        let NadReads {
            client,
            wanted,
            listed,
            pending,
        } = self;
        let mut answers = pending.answers().into_iter();
        let mut lists: std::collections::BTreeMap<&str, Result<Vec<Value>, KubeError>> =
            Default::default();
        for ns in &listed {
            let items = answers.next().map(|a| {
                a.map(|v| {
                    v.and_then(|v| v.get("items").and_then(Value::as_array).cloned())
                        .unwrap_or_default()
                })
            });
            if let Some(items) = items {
                lists.insert(ns, items);
            }
        }
        let mut out = Vec::with_capacity(wanted.len());
        let mut missing = Vec::new();
        for (i, (ns, name)) in wanted.iter().enumerate() {
            match lists.get(ns.as_str()) {
                Some(Ok(items)) => {
                    match items
                        .iter()
                        .find(|n| n["metadata"]["name"].as_str() == Some(name))
                    {
                        Some(nad) => out.push(Ok(Some(nad.clone()))),
                        None => {
                            missing.push(i);
                            out.push(Ok(None));
                        }
                    }
                }
                Some(Err(e)) => out.push(Err(e.clone())),
                None => out.push(answers.next().unwrap_or(Ok(None))),
            }
        }
        if !missing.is_empty() {
            let paths: Vec<String> = missing
                .iter()
                .map(|&i| nad_path(&wanted[i].0, &wanted[i].1))
                .collect();
            for (&i, a) in missing.iter().zip(client.gets(&paths)) {
                out[i] = a;
            }
        }
        wanted.into_iter().zip(out).collect()
    }
}

fn nads_path(ns: &str) -> String {
    format!("/apis/k8s.cni.cncf.io/v1/namespaces/{ns}/network-attachment-definitions")
}

fn nad_path(ns: &str, name: &str) -> String {
    format!("{}/{name}", nads_path(ns))
}
