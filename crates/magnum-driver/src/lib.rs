//! How Magnum-rs talks about infrastructure without knowing which one it is.
//!
//! - [`provider`]: the [`InfrastructureProvider`] trait answering the lookups a template needs
//!   (image, flavors, keypair, networks), and [`UnverifiedProvider`], which knows nothing.
//! - [`registry`]: the drivers (COE × provider) and how a template selects one.
//!
//! Architecture invariant: the API only asks providers questions here; it never creates
//! infrastructure. Creating it is the conductor's job, through drivers.

pub mod cluster_driver;
pub mod provider;
pub mod registry;

pub use cluster_driver::{
    ClusterCertificates, ClusterDriver, ClusterSpec, DriverError, HealthReport, IssuedCertificate,
    Observed, ProgressSink, WorkerGroupSpec,
};
pub use provider::{
    FlavorInfo, ImageInfo, InfrastructureProvider, LookupError, NetworkInfo, UnverifiedProvider,
};
pub use registry::{DriverInfo, DriverRegistry, DriverSet, ProviderKind};
