//! Template and cluster look-ups in the cloud, made with the caller's token (spec §3.3):
//! images in Glance (with the `os_distro` property that chooses the driver), flavors and
//! keypairs in Nova, external and fixed networks and subnets in Neutron.
//!
//! A service that cannot be asked (no answer, its own 5xx, no endpoint in the catalog) is
//! [`LookupError::Unavailable`], which the API answers with 503; a refusal of the caller
//! (401/403) is [`LookupError::Forbidden`].

use crate::{Cloud, CloudService, Trustees};
use async_trait::async_trait;
use magnum_core::cluster_template::ClusterTemplate;
use magnum_core::coe::Coe;
use magnum_core::DomainError;
use magnum_driver::{
    CallerContext, ClusterGrant, FlavorInfo, ImageInfo, InfrastructureProvider, LookupError,
    NetworkInfo, ProviderKind,
};
use magnum_openstack::{path_segment, query_value, OpenStackError};
use serde_json::Value;
use std::sync::Arc;

/// Look-ups in an OpenStack cloud.
#[derive(Debug, Clone)]
pub struct OpenStackProvider {
    cloud: Arc<Cloud>,
    trustees: Arc<Trustees>,
}

impl OpenStackProvider {
    pub fn new(cloud: Arc<Cloud>, trustees: Arc<Trustees>) -> OpenStackProvider {
        OpenStackProvider { cloud, trustees }
    }

    pub fn cloud(&self) -> &Arc<Cloud> {
        &self.cloud
    }

    pub fn trustees(&self) -> &Arc<Trustees> {
        &self.trustees
    }

    /// GETs `path` of `service` for the caller: the body, or None for a 404.
    async fn get(
        &self,
        service: CloudService,
        context: &CallerContext,
        path: &str,
    ) -> Result<Option<Value>, LookupError> {
        let token = context.token.as_deref().ok_or_else(|| {
            LookupError::Unavailable(
                "the request carries no Keystone token to ask the cloud with".to_string(),
            )
        })?;
        let (endpoint, http) = self
            .cloud
            .endpoint(service, &context.project_id)
            .await
            .map_err(|error| unavailable(service, &error))?;
        let url = format!("{}{path}", versioned(service, &endpoint));
        let response = http
            .get(url)
            .header("X-Auth-Token", token)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|error| {
                let reason = if error.is_timeout() {
                    "the call timed out"
                } else {
                    "it could not be reached"
                };
                LookupError::Unavailable(format!("{}: {reason}", service.name()))
            })?;
        let status = response.status().as_u16();
        match status {
            200..=299 => response.json().await.map(Some).map_err(|_| {
                LookupError::Unavailable(format!("{} answered unreadable JSON", service.name()))
            }),
            404 => Ok(None),
            401 | 403 => Err(LookupError::Forbidden),
            _ => {
                let message =
                    magnum_openstack::error::message_of(&response.text().await.unwrap_or_default());
                tracing::warn!(service = service.name(), status, %message, "a cloud look-up failed");
                Err(LookupError::Unavailable(format!(
                    "{} answered {status}",
                    service.name()
                )))
            }
        }
    }

    /// The one item of a listing that `matches`, or why there is not exactly one.
    fn single(items: &[Value], matches: impl Fn(&Value) -> bool) -> Result<&Value, LookupError> {
        let mut found = items.iter().filter(|item| matches(item));
        match (found.next(), found.next()) {
            (Some(item), None) => Ok(item),
            (None, _) => Err(LookupError::NotFound),
            (Some(_), Some(_)) => Err(LookupError::Ambiguous),
        }
    }

    /// Networks or subnets (`collection`) named `reference`, or with it as their id.
    async fn find_neutron(
        &self,
        context: &CallerContext,
        collection: &str,
        reference: &str,
    ) -> Result<NetworkInfo, LookupError> {
        let listed = |filter: &str| {
            let path = format!("/{collection}?{filter}={}", query_value(reference));
            async move {
                let body = self.get(CloudService::Network, context, &path).await?;
                Ok::<Vec<Value>, LookupError>(items(body.as_ref(), collection))
            }
        };
        let mut found = listed("name").await?;
        if found.is_empty() {
            found = listed("id").await?;
        }
        let item = Self::single(&found, |_| true)?;
        Ok(network_info(item))
    }
}

fn unavailable(service: CloudService, error: &OpenStackError) -> LookupError {
    LookupError::Unavailable(match error {
        OpenStackError::NoEndpoint { .. } => {
            format!("{} is not in the cloud's catalog ({error})", service.name())
        }
        OpenStackError::Unreachable { service: which, .. } if *which == "keystone" => {
            format!("Keystone: {error}")
        }
        other => format!("{}: {other}", service.name()),
    })
}

/// The API root of a service from its catalog URL: Glance and Neutron list unversioned
/// URLs (`http://glance:9292`), Nova versioned ones (`http://nova:8774/v2.1`).
fn versioned(service: CloudService, endpoint: &str) -> String {
    let version = match service {
        CloudService::Image => "/v2",
        CloudService::Network => "/v2.0",
        CloudService::LoadBalancer => "/v2",
        CloudService::Compute | CloudService::Orchestration | CloudService::BlockStorage => {
            return endpoint.to_string()
        }
    };
    if endpoint.ends_with(version) {
        endpoint.to_string()
    } else {
        format!("{endpoint}{version}")
    }
}

/// Whether `text` is written like an id (a UUID, with or without dashes).
fn looks_like_uuid(text: &str) -> bool {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    digits.len() == 32
        && digits.chars().all(|c| c.is_ascii_hexdigit())
        && (text.len() == 32 || text.len() == 36)
}

fn items(body: Option<&Value>, key: &str) -> Vec<Value> {
    body.and_then(|body| body.get(key))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn text(item: &Value, key: &str) -> Option<String> {
    item.get(key).and_then(Value::as_str).map(str::to_string)
}

/// The ingress controllers spec §9.4 knows (lower-cased; empty for none).
const INGRESS_CONTROLLERS: [&str; 4] = ["", "traefik", "nginx", "octavia"];

/// What a Kubernetes cluster's labels may not ask for here (spec §9.4): the cloud provider
/// without `[trust] cluster_user_trust`, the cinder volume driver without the cloud
/// provider, an ingress controller that does not exist. Answers whether the labels need
/// Octavia (the octavia ingress controller).
fn check_kubernetes_labels(
    volume_driver: Option<&str>,
    labels: &magnum_core::labels::Labels,
    cluster_user_trust: bool,
) -> Result<bool, DomainError> {
    let cloud_provider = labels
        .get("cloud_provider_enabled")
        .map(|value| value.eq_ignore_ascii_case("true"))
        .unwrap_or(cluster_user_trust);
    if cloud_provider && !cluster_user_trust {
        return Err(DomainError::invalid(
            "The label cloud_provider_enabled=true needs [trust] cluster_user_trust = true in \
             magnum.conf: the cloud provider acts in the cloud with the cluster's trust.",
        ));
    }
    if volume_driver == Some("cinder") && !cloud_provider {
        return Err(DomainError::invalid(
            "The cinder volume driver needs the cloud provider: the label \
             cloud_provider_enabled must be true (or unset where [trust] cluster_user_trust \
             is true).",
        ));
    }
    let ingress = labels
        .get("ingress_controller")
        .map(|value| value.to_lowercase())
        .unwrap_or_default();
    if !INGRESS_CONTROLLERS.contains(&ingress.as_str()) {
        return Err(DomainError::invalid(format!(
            "The label ingress_controller must be traefik, nginx or octavia (or empty), not \
             {ingress}."
        )));
    }
    Ok(ingress == "octavia")
}

fn network_info(item: &Value) -> NetworkInfo {
    NetworkInfo {
        id: text(item, "id").unwrap_or_default(),
        name: text(item, "name").unwrap_or_default(),
    }
}

#[async_trait]
impl InfrastructureProvider for OpenStackProvider {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenStack
    }

    fn verifies(&self) -> bool {
        true
    }

    async fn check_cluster(
        &self,
        template: &ClusterTemplate,
        labels: &magnum_core::labels::Labels,
        master_lb_enabled: bool,
    ) -> Result<(), DomainError> {
        let ingress_needs_octavia = if template.coe == Coe::Kubernetes {
            check_kubernetes_labels(
                template.volume_driver.as_deref(),
                labels,
                self.trustees.cluster_user_trust(),
            )?
        } else {
            false
        };
        if !(master_lb_enabled || ingress_needs_octavia) {
            return Ok(());
        }
        match self.cloud.offers(CloudService::LoadBalancer).await {
            Ok(true) => Ok(()),
            Ok(false) if master_lb_enabled => Err(DomainError::invalid(
                "master_lb_enabled needs a load balancer, and this cloud's catalog lists no \
                 Octavia (load-balancer service) where magnum looks for it ([octavia_client]).",
            )),
            Ok(false) => Err(DomainError::invalid(
                "The octavia ingress controller needs Octavia, and this cloud's catalog lists \
                 no load-balancer service where magnum looks for it ([octavia_client]).",
            )),
            Err(error) => Err(DomainError::unavailable(format!(
                "Could not check for a load-balancer service: the cloud's catalog could not \
                 be read ({error})."
            ))),
        }
    }

    async fn find_image(
        &self,
        context: &CallerContext,
        image: &str,
    ) -> Result<ImageInfo, LookupError> {
        let found = if looks_like_uuid(image) {
            let path = format!("/images/{}", path_segment(image));
            self.get(CloudService::Image, context, &path)
                .await?
                .into_iter()
                .collect::<Vec<_>>()
        } else {
            let path = format!("/images?name={}", query_value(image));
            items(
                self.get(CloudService::Image, context, &path)
                    .await?
                    .as_ref(),
                "images",
            )
        };
        let item = Self::single(&found, |_| true)?;
        Ok(ImageInfo {
            id: text(item, "id").unwrap_or_default(),
            name: text(item, "name").unwrap_or_else(|| image.to_string()),
            os_distro: text(item, "os_distro"),
            magnum_driver: text(item, "magnum_driver"),
        })
    }

    async fn find_flavor(
        &self,
        context: &CallerContext,
        flavor: &str,
    ) -> Result<FlavorInfo, LookupError> {
        let listed = items(
            self.get(CloudService::Compute, context, "/flavors/detail")
                .await?
                .as_ref(),
            "flavors",
        );
        let item = Self::single(&listed, |item| text(item, "id").as_deref() == Some(flavor))
            .or_else(|_| {
                Self::single(&listed, |item| {
                    text(item, "name").as_deref() == Some(flavor)
                })
            })?;
        Ok(FlavorInfo {
            id: text(item, "id").unwrap_or_default(),
            name: text(item, "name").unwrap_or_default(),
            root_disk_gb: item.get("disk").and_then(Value::as_u64),
        })
    }

    async fn find_keypair(
        &self,
        context: &CallerContext,
        keypair: &str,
    ) -> Result<(), LookupError> {
        let path = format!("/os-keypairs/{}", path_segment(keypair));
        match self.get(CloudService::Compute, context, &path).await? {
            Some(_) => Ok(()),
            None => Err(LookupError::NotFound),
        }
    }

    async fn find_external_network(
        &self,
        context: &CallerContext,
        network: &str,
    ) -> Result<NetworkInfo, LookupError> {
        let listed = items(
            self.get(
                CloudService::Network,
                context,
                "/networks?router%3Aexternal=true",
            )
            .await?
            .as_ref(),
            "networks",
        );
        let item = Self::single(&listed, |item| {
            text(item, "id").as_deref() == Some(network)
                || text(item, "name").as_deref() == Some(network)
        })?;
        Ok(network_info(item))
    }

    async fn find_fixed_network(
        &self,
        context: &CallerContext,
        network: &str,
    ) -> Result<NetworkInfo, LookupError> {
        self.find_neutron(context, "networks", network).await
    }

    async fn find_fixed_subnet(
        &self,
        context: &CallerContext,
        subnet: &str,
    ) -> Result<NetworkInfo, LookupError> {
        self.find_neutron(context, "subnets", subnet).await
    }

    async fn grant_cluster(
        &self,
        context: &CallerContext,
        cluster_uuid: &str,
    ) -> Result<Option<ClusterGrant>, LookupError> {
        self.trustees.grant(context, cluster_uuid).await.map(Some)
    }

    async fn revoke_cluster(
        &self,
        _cluster_uuid: &str,
        grant: &ClusterGrant,
    ) -> Result<(), LookupError> {
        self.trustees.revoke(grant).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_roots_get_their_version_once() {
        assert_eq!(
            versioned(CloudService::Image, "http://glance:9292"),
            "http://glance:9292/v2"
        );
        assert_eq!(
            versioned(CloudService::Image, "http://glance:9292/v2"),
            "http://glance:9292/v2"
        );
        assert_eq!(
            versioned(CloudService::Network, "http://neutron:9696"),
            "http://neutron:9696/v2.0"
        );
        assert_eq!(
            versioned(CloudService::Compute, "http://nova:8774/v2.1"),
            "http://nova:8774/v2.1"
        );
    }

    #[test]
    fn ids_are_told_from_names() {
        assert!(looks_like_uuid("4e1b6a5c-3f0e-4a9a-9a57-0d2f6f0c7d11"));
        assert!(looks_like_uuid("4e1b6a5c3f0e4a9a9a570d2f6f0c7d11"));
        assert!(!looks_like_uuid("fedora-coreos-38"));
        assert!(!looks_like_uuid("4e1b6a5c-3f0e-4a9a-9a57-0d2f6f0c7d1z"));
    }

    #[test]
    fn exactly_one_match_is_needed() {
        let listed = vec![
            serde_json::json!({"id": "1", "name": "a"}),
            serde_json::json!({"id": "2", "name": "a"}),
            serde_json::json!({"id": "3", "name": "b"}),
        ];
        let named =
            |name: &'static str| move |item: &Value| text(item, "name").as_deref() == Some(name);
        assert_eq!(
            OpenStackProvider::single(&listed, named("b")).unwrap()["id"],
            "3"
        );
        assert_eq!(
            OpenStackProvider::single(&listed, named("a")).unwrap_err(),
            LookupError::Ambiguous
        );
        assert_eq!(
            OpenStackProvider::single(&listed, named("c")).unwrap_err(),
            LookupError::NotFound
        );
    }

    fn labels(pairs: &[(&str, &str)]) -> magnum_core::labels::Labels {
        pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn kubernetes_labels_ask_only_for_what_is_allowed() {
        let plain = None;
        assert_eq!(
            check_kubernetes_labels(plain, &labels(&[]), false),
            Ok(false)
        );
        let cloud = labels(&[("cloud_provider_enabled", "true")]);
        let refused = check_kubernetes_labels(plain, &cloud, false);
        assert!(
            matches!(&refused, Err(error) if error.message.contains("cluster_user_trust")),
            "{refused:?}"
        );
        assert_eq!(check_kubernetes_labels(plain, &cloud, true), Ok(false));
        // The cinder volume driver needs the cloud provider, which defaults to the option.
        let cinder = Some("cinder");
        assert!(check_kubernetes_labels(cinder, &labels(&[]), false).is_err());
        assert_eq!(
            check_kubernetes_labels(cinder, &labels(&[]), true),
            Ok(false)
        );
        assert!(check_kubernetes_labels(
            cinder,
            &labels(&[("cloud_provider_enabled", "false")]),
            true
        )
        .is_err());
        assert_eq!(
            check_kubernetes_labels(plain, &labels(&[("ingress_controller", "Octavia")]), false),
            Ok(true)
        );
        assert_eq!(
            check_kubernetes_labels(plain, &labels(&[("ingress_controller", "nginx")]), false),
            Ok(false)
        );
        assert!(check_kubernetes_labels(
            plain,
            &labels(&[("ingress_controller", "contour")]),
            false
        )
        .is_err());
    }
}
