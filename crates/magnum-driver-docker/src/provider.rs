//! Template lookups answered by the local engine: an image is a local image (the configured
//! node image counts even before its first build), a flavor is a named size from
//! `[docker] flavors`, the external network is `local` (the host), and a fixed network is the
//! subnet (CIDR) the cluster's network should use.

use crate::layout::OS_DISTRO_LABEL;
use crate::LocalEngine;
use async_trait::async_trait;
use ipnet::Ipv4Net;
use magnum_core::DomainError;
use magnum_driver::{FlavorInfo, ImageInfo, InfrastructureProvider, LookupError, NetworkInfo};
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
}

#[async_trait]
impl InfrastructureProvider for DockerProvider {
    fn name(&self) -> &'static str {
        "docker"
    }

    fn verifies(&self) -> bool {
        true
    }

    fn check_network_driver(&self, _coe: &str, network_driver: &str) -> Result<(), DomainError> {
        if network_driver == "flannel" {
            return Err(DomainError::invalid(
                "Network driver flannel cannot be used with the docker provider: no flannel \
                 (flanneld) binary exists for these nodes. Use network driver docker (the \
                 swarm's own overlay network).",
            ));
        }
        Ok(())
    }

    async fn find_image(&self, image: &str) -> Result<ImageInfo, LookupError> {
        let docker = self
            .engine
            .docker()
            .await
            .map_err(|error| LookupError::Unavailable(error.to_string()))?;
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
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) if image == self.engine.settings.node_image => {
                // Built from Debian packages the first time a cluster needs it.
                Ok(ImageInfo {
                    id: image.to_string(),
                    name: image.to_string(),
                    os_distro: Some("debian".to_string()),
                    magnum_driver: None,
                })
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Err(LookupError::NotFound),
            Err(error) => Err(LookupError::Unavailable(error.to_string())),
        }
    }

    async fn find_flavor(&self, flavor: &str) -> Result<FlavorInfo, LookupError> {
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
    async fn find_keypair(&self, _user_id: &str, _keypair: &str) -> Result<(), LookupError> {
        Ok(())
    }

    async fn find_external_network(&self, network: &str) -> Result<NetworkInfo, LookupError> {
        if network == LOCAL_NETWORK {
            Ok(NetworkInfo {
                id: LOCAL_NETWORK.to_string(),
                name: LOCAL_NETWORK.to_string(),
            })
        } else {
            Err(LookupError::NotFound)
        }
    }

    async fn find_fixed_network(&self, network: &str) -> Result<NetworkInfo, LookupError> {
        let subnet: Ipv4Net = network.parse().map_err(|_| LookupError::NotFound)?;
        if !(16..=26).contains(&subnet.prefix_len()) || subnet.network() != subnet.addr() {
            return Err(LookupError::NotFound);
        }
        Ok(NetworkInfo {
            id: subnet.to_string(),
            name: subnet.to_string(),
        })
    }

    async fn find_fixed_subnet(&self, _subnet: &str) -> Result<NetworkInfo, LookupError> {
        Err(LookupError::NotFound)
    }
}
