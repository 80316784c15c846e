//! The `openstack` infrastructure provider: clusters on an OpenStack cloud.
//!
//! magnumd's service user (`[keystone_authtoken]`) holds a [`Session`] whose token's catalog
//! says where each service is (chosen per service by `[<service>_client] region_name` and
//! `endpoint_type`). Look-ups that validate templates and clusters are then made **with the
//! caller's own token**, so that Glance shows the images the caller's project may use and
//! Nova the caller's own keypairs (spec §3.3).
//!
//! Clusters are Heat stacks ([`heat_driver`]), rendered by a driver's [`definition`]: the
//! Kubernetes drivers [`k8s_fedora_coreos`] (Ignition) and [`k8s_fedora_atomic`] (the
//! seed's, cloud-init); Heat is called as each cluster's trustee ([`trust`]).

pub mod addons;
pub mod autoscaler;
pub mod cloud_config;
pub mod definition;
pub mod heat_driver;
pub mod ignition;
pub mod k8s_fedora_atomic;
pub mod k8s_fedora_coreos;
pub mod lookups;
pub mod trust;

use magnum_openstack::{EndpointFilter, Interface, OpenStackError, Session};
use std::collections::BTreeMap;

pub use definition::StackDefinition;
pub use heat_driver::{HeatClusterDriver, NodeEndpoints};
pub use lookups::OpenStackProvider;
pub use trust::{TrustSettings, Trustees};

/// The cloud services magnumd calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CloudService {
    Orchestration,
    Image,
    Compute,
    Network,
    LoadBalancer,
    BlockStorage,
}

impl CloudService {
    pub const ALL: [CloudService; 6] = [
        CloudService::Orchestration,
        CloudService::Image,
        CloudService::Compute,
        CloudService::Network,
        CloudService::LoadBalancer,
        CloudService::BlockStorage,
    ];

    /// The service type in the catalog.
    pub fn service_type(self) -> &'static str {
        match self {
            CloudService::Orchestration => "orchestration",
            CloudService::Image => "image",
            CloudService::Compute => "compute",
            CloudService::Network => "network",
            CloudService::LoadBalancer => "load-balancer",
            CloudService::BlockStorage => "volumev3",
        }
    }

    /// The name users know the service by, for messages.
    pub fn name(self) -> &'static str {
        match self {
            CloudService::Orchestration => "Heat",
            CloudService::Image => "Glance",
            CloudService::Compute => "Nova",
            CloudService::Network => "Neutron",
            CloudService::LoadBalancer => "Octavia",
            CloudService::BlockStorage => "Cinder",
        }
    }
}

/// How one service is reached: which endpoint of the catalog, with which HTTP client (its
/// own TLS settings).
#[derive(Debug, Clone)]
pub struct ServiceChoice {
    pub interface: Interface,
    pub region: Option<String>,
    pub http: reqwest::Client,
}

/// The cloud as magnumd reaches it.
#[derive(Debug)]
pub struct Cloud {
    session: Session,
    choices: BTreeMap<CloudService, ServiceChoice>,
}

impl Cloud {
    /// `choices` names how every service in [`CloudService::ALL`] is reached.
    pub fn new(
        session: Session,
        choices: BTreeMap<CloudService, ServiceChoice>,
    ) -> Result<Cloud, String> {
        if let Some(missing) = CloudService::ALL
            .into_iter()
            .find(|service| !choices.contains_key(service))
        {
            return Err(format!("no endpoint choice for {}", missing.name()));
        }
        Ok(Cloud { session, choices })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    fn choice(&self, service: CloudService) -> &ServiceChoice {
        // Every service has a choice: `new` checks it.
        &self.choices[&service]
    }

    /// The endpoint of `service` for `project_id`, and the client to call it with.
    pub async fn endpoint(
        &self,
        service: CloudService,
        project_id: &str,
    ) -> Result<(String, reqwest::Client), OpenStackError> {
        let token = self.session.token().await?;
        let choice = self.choice(service);
        let filter = EndpointFilter::new(
            service.service_type(),
            choice.interface,
            choice.region.as_deref(),
        );
        let url = token.catalog.endpoint(&filter, Some(project_id))?;
        Ok((url, choice.http.clone()))
    }

    /// The endpoint of `service` in another token's `catalog` (a trustee's, say), and the
    /// client to call it with.
    pub fn endpoint_in(
        &self,
        catalog: &magnum_openstack::Catalog,
        service: CloudService,
        project_id: &str,
    ) -> Result<(String, reqwest::Client), OpenStackError> {
        let choice = self.choice(service);
        let filter = EndpointFilter::new(
            service.service_type(),
            choice.interface,
            choice.region.as_deref(),
        );
        Ok((
            catalog.endpoint(&filter, Some(project_id))?,
            choice.http.clone(),
        ))
    }

    /// Whether the catalog lists `service` where the configuration looks for it.
    pub async fn offers(&self, service: CloudService) -> Result<bool, OpenStackError> {
        match self.endpoint(service, "-").await {
            Ok(_) => Ok(true),
            Err(OpenStackError::NoEndpoint { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }
}
