//! vfplex-webhook: admission for vfplex. Pods get the device requests of
//! their networks (a mutating webhook), and a NetworkAttachmentDefinition the
//! meta plugin would refuse at pod start is refused at `kubectl apply` (a
//! validating one, running the same `vfplex_config` code). The server is
//! HTTPS with a certificate it makes itself (kept in a Secret, its CA patched
//! into its own webhook configurations) or one cert-manager mounts.

pub mod admit;
pub mod certs;
pub mod cluster;
pub mod error;
pub mod nadcache;
pub mod nads;
pub mod pods;
pub mod quantity;
pub mod review;
pub mod server;

pub use error::WebhookError;
