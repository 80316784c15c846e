//! How Magnum-rs talks about infrastructure without knowing which one it is.
//!
//! - [`context`]: who a lookup or driver call acts for.
//! - [`provider`]: the [`InfrastructureProvider`] trait answering the lookups a template needs
//!   (image, flavors, keypair, networks), and [`UnverifiedProvider`], which knows nothing.
//! - [`cluster_driver`]: the [`ClusterDriver`] trait the conductor drives, one step at a
//!   time, and the [`ClusterSpec`] it builds from.
//! - [`registry`]: the drivers (COE × provider), the providers a deployment enables side by
//!   side ([`Infrastructure`]), and how a template selects both.
//! - `test_doubles` (feature `test-doubles`): a fake provider and a fake driver for tests.
//!
//! Architecture invariant: the API only asks providers questions here; it never creates
//! infrastructure. Creating it is the conductor's job, through drivers.

pub mod cluster_driver;
pub mod context;
pub mod provider;
pub mod registry;
#[cfg(feature = "test-doubles")]
pub mod test_doubles;

pub use cluster_driver::{
    ClusterCertificates, ClusterDriver, ClusterRef, ClusterSpec, DriverError, HealthReport,
    IssuedCertificate, NetworkSpec, NodeGroupSpec, Observed, Progress, ProgressSink, Removal,
    Waiting,
};
pub use context::{CallerContext, ClusterCredentials};
pub use provider::{
    ClusterGrant, FlavorInfo, ImageInfo, InfrastructureProvider, LookupError, NetworkInfo,
    UnverifiedProvider,
};
pub use registry::{
    DriverInfo, DriverRegistry, EnabledProvider, Infrastructure, ProviderKind, PROVIDER_LABEL,
};
