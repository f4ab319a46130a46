//! The webhook's own certificates, made with rcgen on ring: a CA (10 years)
//! whose PEM goes into the webhook configurations' `caBundle`, and a serving
//! certificate (1 year) for the Service's DNS names, signed by it. The serving
//! certificate is renewed by the same CA — so the `caBundle` stays — once it
//! has less than [`RENEW_BEFORE`] left; the CA is made anew only when it has
//! less than a serving certificate's life left. Pure: no I/O.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use crate::error::WebhookError;

/// The CA's life.
pub const CA_LIFE: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// A serving certificate's life.
pub const SERVING_LIFE: Duration = Duration::from_secs(365 * 24 * 3600);
/// A serving certificate with less than this left is renewed.
pub const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// The CA's subject: fixed, so a CA key read back signs as the same issuer.
const CA_NAME: &str = "vfplex-webhook CA";

/// A CA and a serving certificate, as PEM, with when each ends (Unix seconds)
/// and the names the serving one holds.
#[derive(Clone, PartialEq, Eq)]
pub struct Bundle {
    pub ca_cert: String,
    pub ca_key: String,
    pub ca_not_after: i64,
    pub cert: String,
    pub key: String,
    pub not_after: i64,
    pub dns_names: Vec<String>,
}

impl std::fmt::Debug for Bundle {
    // Keys are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("ca_not_after", &self.ca_not_after)
            .field("not_after", &self.not_after)
            .field("dns_names", &self.dns_names)
            .finish_non_exhaustive()
    }
}

/// The names the API server checks: `<service>.<namespace>.svc` and its kin.
pub fn dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_string(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

fn err(what: &str) -> impl FnOnce(rcgen::Error) -> WebhookError + '_ {
    move |e| WebhookError::Cert {
        what: what.to_string(),
        why: e.to_string(),
    }
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn ca_params(now: i64) -> Result<CertificateParams, WebhookError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(err("CA parameters"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = at(now - 3600)?;
    p.not_after = at(now + secs(CA_LIFE))?;
    Ok(p)
}

fn at(unix: i64) -> Result<OffsetDateTime, WebhookError> {
    OffsetDateTime::from_unix_timestamp(unix).map_err(|e| WebhookError::Cert {
        what: "validity".into(),
        why: e.to_string(),
    })
}

/// Whether `b` still serves `names` at `now` without renewal.
pub fn fresh(b: &Bundle, names: &[String], now: i64) -> bool {
    b.dns_names == names
        && b.not_after - now > secs(RENEW_BEFORE)
        && b.ca_not_after >= b.not_after
        && load(b).is_ok()
}

/// A serving certificate for `names`, signed by `old`'s CA when that CA
/// outlives a new serving certificate, else by a new CA.
pub fn issue(old: Option<&Bundle>, names: &[String], now: i64) -> Result<Bundle, WebhookError> {
    let keep_ca = old.filter(|b| b.ca_not_after - now > secs(SERVING_LIFE) + 86400);
    let (ca_cert_pem, ca_key, ca_not_after, issuer): (String, KeyPair, i64, Certificate) =
        match keep_ca {
            Some(b) => {
                let key = KeyPair::from_pem(&b.ca_key).map_err(err("CA key"))?;
                // Same subject and key: leaves it signs verify against the
                // stored CA certificate (whose PEM is what the caBundle holds).
                let issuer = ca_params(now)?.self_signed(&key).map_err(err("CA"))?;
                (b.ca_cert.clone(), key, b.ca_not_after, issuer)
            }
            None => {
                let key = KeyPair::generate().map_err(err("CA key"))?;
                let cert = ca_params(now)?.self_signed(&key).map_err(err("CA"))?;
                (cert.pem(), key, now + secs(CA_LIFE), cert)
            }
        };
    let mut p = CertificateParams::new(names.to_vec()).map_err(err("serving parameters"))?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().map_or("vfplex-webhook", String::as_str),
    );
    p.distinguished_name = dn;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_before = at(now - 3600)?;
    let not_after = (now + secs(SERVING_LIFE)).min(ca_not_after);
    p.not_after = at(not_after)?;
    let key = KeyPair::generate().map_err(err("serving key"))?;
    let cert = p
        .signed_by(&key, &issuer, &ca_key)
        .map_err(err("serving"))?;
    Ok(Bundle {
        ca_cert: ca_cert_pem,
        ca_key: ca_key.serialize_pem(),
        ca_not_after,
        cert: cert.pem(),
        key: key.serialize_pem(),
        not_after,
        dns_names: names.to_vec(),
    })
}

/// The serving certificate and key as rustls takes them.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, WebhookError> {
    let bad = |why: String| WebhookError::Cert {
        what: "serving certificate".into(),
        why,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if chain.is_empty() {
        return Err(bad("no certificate in the PEM".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad(e.to_string()))?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| bad(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(chain, signer)))
}

fn load(b: &Bundle) -> Result<Arc<CertifiedKey>, WebhookError> {
    certified_key(b.cert.as_bytes(), b.key.as_bytes())
}

#[cfg(test)]
mod tests;
