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

pub use catalog::{Catalog, EndpointFilter, Interface};
pub use error::OpenStackError;
pub use heat::{Heat, Stack, StackCreate, StackResource, StackStatus, StackUpdate};
pub use keystone::{AuthMethod, AuthRequest, Keystone, NameOrId, Scope, Session, Token};

/// The longest any single call to an OpenStack service may take.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// An HTTP client for OpenStack calls: a connect and a total timeout on every call, no
/// redirects followed across hosts (a token must never be sent to another host), and no
/// idle connections kept: WSGI servers (uwsgi's HTTP socket, wsgiref) close a connection
/// after each answer without saying so, and a reused one fails with a reset.
pub fn http_client() -> Result<reqwest::Client, OpenStackError> {
    reqwest::Client::builder()
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
