//! Template lookups answered by the local engine: an image is a local image (the configured
//! node image counts even before its first build), a flavor is a named size from
//! `[docker] flavors`, the external network is `local` (the host), and a fixed network is a
//! subnet (CIDR) of `[docker] subnet_pool` for the cluster's network.
//!
//! The engine serves every project alike: lookups answer the same whoever asks.

use crate::layout::OS_DISTRO_LABEL;
use crate::LocalEngine;
use async_trait::async_trait;
use ipnet::Ipv4Net;
use magnum_core::cluster_template::ClusterTemplate;
use magnum_core::DomainError;
use magnum_driver::{
    CallerContext, FlavorInfo, ImageInfo, InfrastructureProvider, LookupError, NetworkInfo,
    ProviderKind,
};
use std::sync::Arc;

/// The name under which templates refer to the host's own reachability.
pub const LOCAL_NETWORK: &str = "local";

/// Lookups on the local Docker engine.
#[derive(Debug, Clone)]
pub struct DockerProvider {
    engine: Arc<LocalEngine>,
}

impl DockerProvider {
    pub fn new(engine: Arc<LocalEngine>) -> Self {
        Self { engine }
    }

    fn node_image_info(&self, image: &str) -> ImageInfo {
        ImageInfo {
            id: image.to_string(),
            name: image.to_string(),
            os_distro: Some("debian".to_string()),
            magnum_driver: None,
        }
    }
}

#[async_trait]
impl InfrastructureProvider for DockerProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Docker
    }

    fn verifies(&self) -> bool {
        true
    }

    fn check_template(&self, template: &ClusterTemplate) -> Result<(), DomainError> {
        if template.network_driver.as_deref() == Some("flannel") {
            return Err(DomainError::invalid(
                "Network driver flannel cannot be used with the docker provider: no flannel \
                 (flanneld) binary exists for these nodes. Use network driver docker (the \
                 swarm's own overlay network).",
            ));
        }
        if template.tls_disabled && !self.engine.settings.allow_tls_disabled {
            return Err(DomainError::invalid(
                "tls_disabled cannot be used with the docker provider: the cluster's Docker API \
                 would accept anyone who reaches it. An operator may allow it with [docker] \
                 allow_tls_disabled = true.",
            ));
        }
        self.check_docker_volume_size(template.docker_volume_size)
    }

    fn check_docker_volume_size(&self, size: Option<i64>) -> Result<(), DomainError> {
        match size {
            None => Ok(()),
            Some(_) => Err(DomainError::invalid(
                "docker_volume_size cannot be used with the docker provider: a node's container \
                 storage is a volume of the local engine, which cannot be limited in size.",
            )),
        }
    }

    async fn find_image(
        &self,
        _context: &CallerContext,
        image: &str,
    ) -> Result<ImageInfo, LookupError> {
        let docker = match self.engine.docker().await {
            Ok(docker) => docker,
            // Built from Debian packages the first time a cluster needs it: known even when
            // the engine cannot be asked yet.
            Err(_) if image == self.engine.settings.node_image => {
                return Ok(self.node_image_info(image))
            }
            Err(error) => return Err(LookupError::Unavailable(error.to_string())),
        };
        match docker.inspect_image(image).await {
            Ok(found) => Ok(ImageInfo {
                id: found.id.unwrap_or_else(|| image.to_string()),
                name: image.to_string(),
                os_distro: found
                    .config
                    .and_then(|config| config.labels)
                    .and_then(|labels| labels.get(OS_DISTRO_LABEL).cloned()),
                magnum_driver: None,
            }),
            Err(_) if image == self.engine.settings.node_image => Ok(self.node_image_info(image)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(LookupError::NotFound),
            Err(error) => Err(LookupError::Unavailable(error.to_string())),
        }
    }

    async fn find_flavor(
        &self,
        _context: &CallerContext,
        flavor: &str,
    ) -> Result<FlavorInfo, LookupError> {
        self.engine
            .settings
            .flavors
            .iter()
            .find(|known| known.name == flavor)
            .map(|known| FlavorInfo {
                id: known.name.clone(),
                name: known.name.clone(),
                root_disk_gb: None,
            })
            .ok_or(LookupError::NotFound)
    }

    /// Nodes are containers reached through the Docker API, not over SSH: any keypair name
    /// is accepted and not used.
    async fn find_keypair(
        &self,
        _context: &CallerContext,
        _keypair: &str,
    ) -> Result<(), LookupError> {
        Ok(())
    }

    async fn find_external_network(
        &self,
        _context: &CallerContext,
        network: &str,
    ) -> Result<NetworkInfo, LookupError> {
        if network == LOCAL_NETWORK {
            Ok(NetworkInfo {
                id: LOCAL_NETWORK.to_string(),
                name: LOCAL_NETWORK.to_string(),
            })
        } else {
            Err(LookupError::NotFound)
        }
    }

    /// A fixed network is a subnet for the cluster's bridge, and it must lie inside
    /// `[docker] subnet_pool`: a tenant must not lay a bridge over the host's own networks.
    async fn find_fixed_network(
        &self,
        _context: &CallerContext,
        network: &str,
    ) -> Result<NetworkInfo, LookupError> {
        let subnet: Ipv4Net = network.parse().map_err(|_| LookupError::NotFound)?;
        if !(16..=26).contains(&subnet.prefix_len()) || subnet.network() != subnet.addr() {
            return Err(LookupError::NotFound);
        }
        let pool = self.engine.settings.subnet_pool;
        if !pool.contains(&subnet) {
            return Err(LookupError::Refused(format!(
                "The fixed network {subnet} is outside the subnets the docker provider gives clusters ([docker] subnet_pool = {pool})."
            )));
        }
        Ok(NetworkInfo {
            id: subnet.to_string(),
            name: subnet.to_string(),
        })
    }

    async fn find_fixed_subnet(
        &self,
        _context: &CallerContext,
        _subnet: &str,
    ) -> Result<NetworkInfo, LookupError> {
        Err(LookupError::NotFound)
    }
}
