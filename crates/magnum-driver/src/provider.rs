//! Infrastructure lookups: does this image, flavor, keypair or network exist, and what is it?
//!
//! The API validates templates and clusters through this trait so that the Docker provider
//! (local images, named sizes) and the Heat provider (Glance, Nova, Neutron) can each answer
//! with what they know.

use crate::context::CallerContext;
use crate::registry::ProviderKind;
use async_trait::async_trait;
use magnum_core::cluster_template::ClusterTemplate;
use magnum_core::DomainError;

/// What an image lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub id: String,
    pub name: String,
    /// The `os_distro` property; drivers are selected by it. None when unknown.
    pub os_distro: Option<String>,
    /// The `magnum_driver` property naming a driver explicitly.
    pub magnum_driver: Option<String>,
}

/// What a flavor lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlavorInfo {
    pub id: String,
    pub name: String,
    /// Root disk size in GB, when known.
    pub root_disk_gb: Option<u64>,
}

/// What a network or subnet lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    pub id: String,
    pub name: String,
}

/// What lets a cluster act for its owner later, made when the cluster is created: on a
/// cloud, a trustee user of the cluster's own and a trust from the owner to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterGrant {
    pub trustee_user_id: String,
    pub trustee_username: String,
    pub trust_id: String,
}

/// Why a lookup failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("not found")]
    NotFound,
    #[error("more than one match")]
    Ambiguous,
    #[error("not authorized")]
    Forbidden,
    #[error("the infrastructure could not be asked: {0}")]
    Unavailable(String),
    /// It exists, but this deployment does not let it be used; the text says why.
    #[error("{0}")]
    Refused(String),
}

/// The kinds of things a template or cluster names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    Image,
    Flavor,
    Keypair,
    ExternalNetwork,
    FixedNetwork,
    FixedSubnet,
    /// The trust a new cluster (named by its uuid) is given to act for its owner.
    Trust,
}

impl LookupError {
    /// The user-facing error for a failed lookup of `name`, in upstream's wording.
    pub fn into_domain(self, kind: LookupKind, name: &str) -> DomainError {
        match (self, kind) {
            (LookupError::Unavailable(reason), _) => DomainError::unavailable(format!(
                "Could not check {name}: the infrastructure provider is unavailable ({reason})."
            )),
            (LookupError::Refused(reason), _) => DomainError::invalid(reason),
            (LookupError::NotFound, LookupKind::Image) => {
                DomainError::invalid(format!("Image {name} could not be found."))
            }
            (LookupError::Ambiguous, LookupKind::Image) => DomainError::conflict(format!(
                "Multiple images exist with same name {name}. Please use the image id instead."
            )),
            (LookupError::Forbidden, LookupKind::Image) => {
                DomainError::forbidden(format!("Not authorized for image {name}."))
            }
            (LookupError::NotFound, LookupKind::Flavor) | (LookupError::Ambiguous, LookupKind::Flavor) => {
                DomainError::invalid(format!("Unable to find flavor {name}."))
            }
            (LookupError::NotFound, LookupKind::Keypair) => {
                DomainError::not_found(format!("Unable to find keypair {name}."))
            }
            (LookupError::NotFound, LookupKind::ExternalNetwork) => {
                DomainError::invalid(format!("Unable to find external network {name}."))
            }
            (LookupError::Ambiguous, LookupKind::ExternalNetwork) => DomainError::conflict(format!(
                "Multiple external networks exist with same name {name}. Please use the external network ID instead."
            )),
            (LookupError::NotFound, LookupKind::FixedNetwork) => {
                DomainError::invalid(format!("Unable to find fixed network {name}."))
            }
            (LookupError::Ambiguous, LookupKind::FixedNetwork) => DomainError::conflict(format!(
                "Multiple fixed networks exist with same name {name}. Please use the fixed network ID instead."
            )),
            (LookupError::NotFound, LookupKind::FixedSubnet) => {
                DomainError::invalid(format!("Unable to find fixed subnet {name}."))
            }
            (LookupError::Ambiguous, LookupKind::FixedSubnet) => DomainError::conflict(format!(
                "Multiple fixed subnets exist with same name {name}. Please use the fixed subnet ID instead."
            )),
            (LookupError::NotFound | LookupError::Ambiguous | LookupError::Forbidden, LookupKind::Trust) => {
                DomainError::forbidden(format!(
                    "Not authorized to delegate to cluster {name}: the cloud refused the trust it needs to act for you."
                ))
            }
            (LookupError::Forbidden, _) | (LookupError::Ambiguous, LookupKind::Keypair) => {
                DomainError::forbidden(format!("Not authorized to use {name}."))
            }
        }
    }
}

/// Answers the questions templates and clusters ask about infrastructure, for the caller in
/// `context` (a cloud answers from the caller's project).
#[async_trait]
pub trait InfrastructureProvider: Send + Sync + std::fmt::Debug {
    /// Which provider this is.
    fn kind(&self) -> ProviderKind;
    /// Whether lookups check anything; false for [`UnverifiedProvider`].
    fn verifies(&self) -> bool;
    async fn find_image(
        &self,
        context: &CallerContext,
        image: &str,
    ) -> Result<ImageInfo, LookupError>;
    async fn find_flavor(
        &self,
        context: &CallerContext,
        flavor: &str,
    ) -> Result<FlavorInfo, LookupError>;
    async fn find_keypair(&self, context: &CallerContext, keypair: &str)
        -> Result<(), LookupError>;
    async fn find_external_network(
        &self,
        context: &CallerContext,
        network: &str,
    ) -> Result<NetworkInfo, LookupError>;
    async fn find_fixed_network(
        &self,
        context: &CallerContext,
        network: &str,
    ) -> Result<NetworkInfo, LookupError>;
    async fn find_fixed_subnet(
        &self,
        context: &CallerContext,
        subnet: &str,
    ) -> Result<NetworkInfo, LookupError>;
    /// Refuses template settings this infrastructure cannot honour (beyond the COE's own
    /// rules, which the template checks): a network driver it cannot provide, an option it
    /// would otherwise silently ignore. Accepts all by default.
    fn check_template(&self, _template: &ClusterTemplate) -> Result<(), DomainError> {
        Ok(())
    }

    /// Refuses a new cluster whose settings need what this infrastructure cannot give (a
    /// load balancer where there is none) or does not allow; `labels` are the cluster's
    /// (its template's merged with its own). A service that cannot be asked is unavailable.
    /// Accepts all by default.
    async fn check_cluster(
        &self,
        _template: &ClusterTemplate,
        _labels: &magnum_core::labels::Labels,
        _master_lb_enabled: bool,
    ) -> Result<(), DomainError> {
        Ok(())
    }

    /// Refuses a `docker_volume_size` (of a cluster or nodegroup) it cannot honour.
    fn check_docker_volume_size(&self, _size: Option<i64>) -> Result<(), DomainError> {
        Ok(())
    }

    /// Gives a new cluster what it needs to act for its owner later, with the owner's
    /// request in `context` (a cloud makes a trustee user and a trust from the caller to
    /// it). None where nothing is needed, as on the local engine.
    async fn grant_cluster(
        &self,
        _context: &CallerContext,
        _cluster_uuid: &str,
    ) -> Result<Option<ClusterGrant>, LookupError> {
        Ok(None)
    }

    /// Removes what [`InfrastructureProvider::grant_cluster`] made; what is gone already is
    /// not an error.
    async fn revoke_cluster(
        &self,
        _cluster_uuid: &str,
        _grant: &ClusterGrant,
    ) -> Result<(), LookupError> {
        Ok(())
    }
}

/// A provider that knows no infrastructure: every name is accepted as given and nothing is
/// verified (an image's distro is unknown, so driver selection waits for a real provider).
/// It exists so the API can run before a real provider is configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnverifiedProvider;

#[async_trait]
impl InfrastructureProvider for UnverifiedProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Unverified
    }

    fn verifies(&self) -> bool {
        false
    }

    async fn find_image(
        &self,
        _context: &CallerContext,
        image: &str,
    ) -> Result<ImageInfo, LookupError> {
        Ok(ImageInfo {
            id: image.to_string(),
            name: image.to_string(),
            os_distro: None,
            magnum_driver: None,
        })
    }

    async fn find_flavor(
        &self,
        _context: &CallerContext,
        flavor: &str,
    ) -> Result<FlavorInfo, LookupError> {
        Ok(FlavorInfo {
            id: flavor.to_string(),
            name: flavor.to_string(),
            root_disk_gb: None,
        })
    }

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
        Ok(NetworkInfo {
            id: network.to_string(),
            name: network.to_string(),
        })
    }

    async fn find_fixed_network(
        &self,
        context: &CallerContext,
        network: &str,
    ) -> Result<NetworkInfo, LookupError> {
        self.find_external_network(context, network).await
    }

    async fn find_fixed_subnet(
        &self,
        context: &CallerContext,
        subnet: &str,
    ) -> Result<NetworkInfo, LookupError> {
        self.find_external_network(context, subnet).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnum_core::DomainErrorKind;

    #[tokio::test]
    async fn unverified_provider_accepts_everything_and_knows_no_distro() {
        let provider = UnverifiedProvider;
        let caller = CallerContext {
            project_id: "p".to_string(),
            user_id: "u".to_string(),
            roles: Vec::new(),
            token: None,
        };
        assert!(!provider.verifies());
        let image = provider.find_image(&caller, "fedora-atomic").await.unwrap();
        assert_eq!(image.os_distro, None);
        assert!(provider.find_keypair(&caller, "kp").await.is_ok());
    }

    #[test]
    fn lookup_failures_use_upstream_wording_and_kinds() {
        let image = LookupError::NotFound.into_domain(LookupKind::Image, "nope");
        assert_eq!(
            (image.kind, image.message.as_str()),
            (DomainErrorKind::Invalid, "Image nope could not be found.")
        );
        let keypair = LookupError::NotFound.into_domain(LookupKind::Keypair, "kp");
        assert_eq!(keypair.kind, DomainErrorKind::NotFound);
        let ambiguous = LookupError::Ambiguous.into_domain(LookupKind::ExternalNetwork, "public");
        assert_eq!(ambiguous.kind, DomainErrorKind::Conflict);
        let flavor = LookupError::NotFound.into_domain(LookupKind::Flavor, "m1.nope");
        assert_eq!(flavor.message, "Unable to find flavor m1.nope.");
    }
}
