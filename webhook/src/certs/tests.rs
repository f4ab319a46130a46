//! The certificates in a real rustls handshake (in memory): a client trusting
//! only the caBundle PEM verifies the Service name, before and after renewal.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use rustls::client::ClientConnection;
use rustls::server::{ResolvesServerCert, ServerConnection};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::*;

#[derive(Debug)]
struct One(Arc<CertifiedKey>);

impl ResolvesServerCert for One {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn handshake(ca_pem: &str, b: &Bundle, name: &str) -> Result<(), rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(One(certified_key(
            b.cert.as_bytes(),
            b.key.as_bytes(),
        )
        .unwrap())));
    let mut c =
        ClientConnection::new(Arc::new(client), name.to_string().try_into().unwrap()).unwrap();
    let mut s = ServerConnection::new(Arc::new(server)).unwrap();
    for _ in 0..10 {
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        s.read_tls(&mut &buf[..]).unwrap();
        s.process_new_packets()?;
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        c.read_tls(&mut &buf[..]).unwrap();
        c.process_new_packets()?;
        if !c.is_handshaking() && !s.is_handshaking() {
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

fn names() -> Vec<String> {
    dns_names("vfplex-webhook", "kube-system")
}

#[test]
fn the_ca_bundle_verifies_the_service_name() {
    let b = issue(None, &names(), now()).unwrap();
    handshake(&b.ca_cert, &b, "vfplex-webhook.kube-system.svc").unwrap();
    assert!(
        handshake(&b.ca_cert, &b, "other.kube-system.svc").is_err(),
        "another name"
    );
    let stranger = issue(None, &names(), now()).unwrap();
    assert!(
        handshake(&stranger.ca_cert, &b, "vfplex-webhook.kube-system.svc").is_err(),
        "another CA"
    );
    assert!(!format!("{b:?}").contains("PRIVATE"), "keys never printed");
}

#[test]
fn renewal_keeps_the_ca_so_the_bundle_stays() {
    // Issued a year ago: due for renewal now.
    let then = now() - secs(SERVING_LIFE) + secs(RENEW_BEFORE) - 1;
    let b = issue(None, &names(), then).unwrap();
    assert!(fresh(&b, &names(), then));
    assert!(!fresh(&b, &names(), now()), "due for renewal");
    let r = issue(Some(&b), &names(), now()).unwrap();
    assert_eq!(r.ca_cert, b.ca_cert, "same CA");
    assert_ne!(r.cert, b.cert);
    assert!(r.not_after > b.not_after);
    // The renewed certificate verifies against the CA PEM the caBundle holds.
    handshake(&b.ca_cert, &r, "vfplex-webhook.kube-system.svc").unwrap();
    let late = now();
    // Other names (the Service renamed): not fresh.
    assert!(!fresh(&r, &dns_names("x", "y"), late));
}

#[test]
fn an_old_ca_is_replaced_before_it_outlives_no_serving_certificate() {
    let b = issue(None, &names(), now()).unwrap();
    let late = b.ca_not_after - secs(SERVING_LIFE);
    let r = issue(Some(&b), &names(), late).unwrap();
    assert_ne!(r.ca_cert, b.ca_cert, "a new CA");
    assert!(r.ca_not_after >= r.not_after);
}
