//! The OpenStack APIs magnumd calls as a client, for the `openstack` infrastructure provider.
//!
//! Kept apart from the provider so that what is plain OpenStack protocol (authenticating
//! with Keystone, choosing an endpoint from the catalog, driving Heat stacks, reading an
//! error body) is written and tested once, against the real services, and knows nothing of
//! clusters.
//!
//! Why not openstack_sdk: its session cannot authenticate with a trust scope, which is how
//! magnumd acts on a cluster's behalf long after the user's request (and its token) is gone,
//! and it would bring about 640 crates for six GET calls; Heat it does not cover at all.

pub mod catalog;
pub mod error;
pub mod heat;
pub mod keystone;
pub mod leftovers;
pub mod service_api;
pub mod testing;

pub use catalog::{Catalog, EndpointFilter, Interface};
pub use error::OpenStackError;
pub use heat::{Heat, Stack, StackCreate, StackResource, StackStatus, StackUpdate};
pub use keystone::{
    path_segment, query_value, AuthMethod, AuthRequest, Keystone, NameOrId, Scope, Session, Token,
};
pub use leftovers::{BlockStorage, Leftover, Octavia};
pub use service_api::ServiceApi;

/// The longest any single call to an OpenStack service may take.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// An HTTP client for OpenStack calls: a connect and a total timeout on every call, no
/// redirects followed across hosts (a token must never be sent to another host), and no
/// idle connections kept: WSGI servers (uwsgi's HTTP socket, wsgiref) close a connection
/// after each answer without saying so, and a reused one fails with a reset.
pub fn http_client() -> Result<reqwest::Client, OpenStackError> {
    http_client_verifying(None, false)
}

/// [`http_client`] that verifies servers with the CA bundle `ca_file` (PEM) as well as the
/// system's roots, or verifies nothing when `insecure` (upstream's `[*_client] ca_file` and
/// `insecure`).
pub fn http_client_verifying(
    ca_file: Option<&std::path::Path>,
    insecure: bool,
) -> Result<reqwest::Client, OpenStackError> {
    let mut builder = reqwest::Client::builder();
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|error| {
            OpenStackError::Malformed(format!(
                "cannot read the CA file {}: {error}",
                path.display()
            ))
        })?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
            OpenStackError::Malformed(format!(
                "the CA file {} is not PEM: {error}",
                path.display()
            ))
        })?;
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder
        .danger_accept_invalid_certs(insecure)
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(CALL_TIMEOUT)
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::custom(|attempt| {
            let same_host = attempt
                .previous()
                .first()
                .map(|first| first.host_str() == attempt.url().host_str())
                .unwrap_or(false);
            if same_host && attempt.previous().len() < 5 {
                attempt.follow()
            } else {
                attempt.stop()
            }
        }))
        .build()
        .map_err(|error| OpenStackError::Malformed(format!("cannot build an HTTP client: {error}")))
}
