//! The webhook's calls to the API server: NADs read for pod admission, the
//! certificate Secret (read, or made and stored: every replica serves the
//! same certificate, and a restart keeps it), and the CA patched into its own
//! webhook configurations' `caBundle`.

use std::fmt::Debug;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use vfplex_config::nad;

use crate::certs::{self, Bundle};
use crate::error::WebhookError;
use crate::pods::NadSource;

/// Annotations of the Secret: when the serving certificate and the CA end
/// (Unix seconds), and the serving certificate's names.
pub const NOT_AFTER: &str = "vfplex.io/not-after";
pub const CA_NOT_AFTER: &str = "vfplex.io/ca-not-after";
pub const DNS_NAMES: &str = "vfplex.io/dns-names";

/// Tries at a write another replica may race.
const TRIES: usize = 5;

/// NADs from the API server.
#[derive(Clone)]
pub struct ApiNads {
    client: Client,
    resource: ApiResource,
}

impl std::fmt::Debug for ApiNads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiNads")
    }
}

impl ApiNads {
    pub fn new(client: Client) -> ApiNads {
        let gvk = GroupVersionKind::gvk(nad::GROUP, nad::VERSION, nad::KIND);
        ApiNads {
            client,
            resource: ApiResource::from_gvk_with_plural(&gvk, nad::PLURAL),
        }
    }
}

impl ApiNads {
    /// The NAD resource (group, version, plural).
    pub fn resource(&self) -> &ApiResource {
        &self.resource
    }
}

impl NadSource for ApiNads {
    async fn get(&self, ns: &str, name: &str) -> Result<Option<Value>, WebhookError> {
        let what = format!("GET NetworkAttachmentDefinition {ns}/{name}");
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &self.resource);
        let obj = api.get_opt(name).await.map_err(WebhookError::api(&what))?;
        obj.map(serde_json::to_value)
            .transpose()
            .map_err(|e| WebhookError::BadReview(format!("{what}: {e}")))
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// The certificates a Secret holds, if it holds them all.
pub fn from_secret(s: &Secret) -> Option<Bundle> {
    let data = s.data.as_ref()?;
    let text = |k: &str| {
        data.get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
    };
    let ann = s.metadata.annotations.as_ref()?;
    let num = |k: &str| ann.get(k).and_then(|v| v.parse::<i64>().ok());
    Some(Bundle {
        ca_cert: text("ca.crt")?,
        ca_key: text("ca.key")?,
        ca_not_after: num(CA_NOT_AFTER)?,
        cert: text("tls.crt")?,
        key: text("tls.key")?,
        not_after: num(NOT_AFTER)?,
        dns_names: ann.get(DNS_NAMES)?.split(',').map(str::to_string).collect(),
    })
}

/// A Secret (type kubernetes.io/tls) holding `b`.
pub fn to_secret(ns: &str, name: &str, b: &Bundle) -> Secret {
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let mut s = Secret::default();
    s.metadata.name = Some(name.to_string());
    s.metadata.namespace = Some(ns.to_string());
    s.metadata.annotations = Some(
        [
            (NOT_AFTER.to_string(), b.not_after.to_string()),
            (CA_NOT_AFTER.to_string(), b.ca_not_after.to_string()),
            (DNS_NAMES.to_string(), b.dns_names.join(",")),
        ]
        .into(),
    );
    s.type_ = Some("kubernetes.io/tls".into());
    s.data = Some(
        [
            ("ca.crt".to_string(), bytes(&b.ca_cert)),
            ("ca.key".to_string(), bytes(&b.ca_key)),
            ("tls.crt".to_string(), bytes(&b.cert)),
            ("tls.key".to_string(), bytes(&b.key)),
        ]
        .into(),
    );
    s
}

/// The certificates in Secret `ns/name`, renewed (and stored) when due. When
/// replicas race, the one whose write lands wins and the others take its.
pub async fn load_or_issue(
    client: &Client,
    ns: &str,
    name: &str,
    names: &[String],
) -> Result<Bundle, WebhookError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let what = format!("Secret {ns}/{name}");
    for _ in 0..TRIES {
        let cur = api
            .get_opt(name)
            .await
            .map_err(WebhookError::api(format!("GET {what}")))?;
        let old = cur.as_ref().and_then(from_secret);
        let now = certs::now();
        if let Some(b) = old.as_ref().filter(|b| certs::fresh(b, names, now)) {
            return Ok(b.clone());
        }
        let new = certs::issue(old.as_ref(), names, now)?;
        let mut s = to_secret(ns, name, &new);
        let written = match cur {
            None => api.create(&PostParams::default(), &s).await,
            Some(c) => {
                s.metadata.resource_version = c.metadata.resource_version;
                api.replace(name, &PostParams::default(), &s).await
            }
        };
        match written {
            Ok(_) => {
                tracing::info!("{what}: new serving certificate, until {}", new.not_after);
                return Ok(new);
            }
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(WebhookError::api(format!("write {what}"))(e)),
        }
    }
    Err(WebhookError::Cert {
        what,
        why: format!("{TRIES} writes lost to other writers in a row"),
    })
}

/// Set every webhook's `clientConfig.caBundle` of configuration `name` to
/// `ca_pem`; whether it changed. A missing configuration is an error (it is
/// deployed with the webhook).
async fn ca_bundle_of<K>(client: &Client, name: &str, ca_pem: &str) -> Result<bool, WebhookError>
where
    K: Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned,
{
    let api: Api<K> = Api::all(client.clone());
    let what = format!("{} {name}", K::kind(&()));
    let want = Value::String(base64::engine::general_purpose::STANDARD.encode(ca_pem));
    for _ in 0..TRIES {
        let cur = api
            .get(name)
            .await
            .map_err(WebhookError::api(format!("GET {what}")))?;
        let mut v = serde_json::to_value(&cur)
            .map_err(|e| WebhookError::BadReview(format!("{what}: {e}")))?;
        let mut changed = false;
        if let Some(hooks) = v["webhooks"].as_array_mut() {
            for h in hooks {
                if h["clientConfig"]["caBundle"] != want {
                    h["clientConfig"]["caBundle"] = want.clone();
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(false);
        }
        let new: K = serde_json::from_value(v)
            .map_err(|e| WebhookError::BadReview(format!("{what}: {e}")))?;
        match api.replace(name, &PostParams::default(), &new).await {
            Ok(_) => {
                tracing::info!("{what}: caBundle set");
                return Ok(true);
            }
            Err(e) if is_conflict(&e) => continue,
            Err(e) => return Err(WebhookError::api(format!("update {what}"))(e)),
        }
    }
    Err(WebhookError::Cert {
        what,
        why: format!("{TRIES} caBundle writes lost to other writers in a row"),
    })
}

/// The CA into both webhook configurations (named `name`).
pub async fn ensure_ca_bundle(
    client: &Client,
    name: &str,
    ca_pem: &str,
) -> Result<(), WebhookError> {
    ca_bundle_of::<MutatingWebhookConfiguration>(client, name, ca_pem).await?;
    ca_bundle_of::<ValidatingWebhookConfiguration>(client, name, ca_pem).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_secret_holds_the_bundle_whole() {
        let names = certs::dns_names("s", "n");
        let b = certs::issue(None, &names, 1_800_000_000).unwrap();
        let s = to_secret("n", "tls", &b);
        assert_eq!(from_secret(&s), Some(b));
        let mut partial = s.clone();
        partial.data.as_mut().unwrap().remove("ca.key");
        assert_eq!(
            from_secret(&partial),
            None,
            "a CA without its key cannot renew"
        );
    }
}
