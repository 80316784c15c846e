//! What Kubernetes itself makes in the cloud for a cluster, outside its Heat stack, and
//! which must go with the cluster: the Octavia load balancers of `LoadBalancer` services
//! (cloud-provider-openstack describes each as "Kubernetes external service <ns>/<name>
//! from cluster <cluster>", the cluster being named by its uuid) and the Cinder volumes of
//! persistent volumes (Cinder CSI tags each with the metadata
//! `cinder.csi.openstack.org/cluster = <cluster>`).

use crate::service_api::ServiceApi;
use crate::{keystone::path_segment, OpenStackError};
use serde_json::Value;

/// The Cinder metadata key naming the cluster a CSI volume belongs to.
pub const CSI_CLUSTER_KEY: &str = "cinder.csi.openstack.org/cluster";

/// One thing to remove, as the service lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub id: String,
    /// The service's status of it (`PENDING_DELETE`, `deleting`, `available`, `in-use`…).
    pub status: String,
}

fn leftover(item: &Value, status_key: &str) -> Option<Leftover> {
    Some(Leftover {
        id: item.get("id")?.as_str()?.to_string(),
        status: item
            .get(status_key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    })
}

/// Whether a load balancer's description says Kubernetes made it for `cluster`.
pub fn made_for_cluster(description: &str, cluster: &str) -> bool {
    description.starts_with("Kubernetes ")
        && description
            .rsplit_once(" from cluster ")
            .is_some_and(|(_, named)| named == cluster)
}

/// Octavia, for the load balancers Kubernetes made.
#[derive(Debug, Clone)]
pub struct Octavia {
    api: ServiceApi,
}

impl Octavia {
    /// `endpoint`: Octavia's from the catalog (its root; `/v2` is added).
    pub fn new(http: reqwest::Client, endpoint: &str) -> Octavia {
        let root = endpoint.trim_end_matches('/');
        let root = root.strip_suffix("/v2").unwrap_or(root);
        Octavia {
            api: ServiceApi::new(http, &format!("{root}/v2"), "octavia"),
        }
    }

    /// The project's load balancers that Kubernetes made for `cluster`.
    pub async fn cluster_load_balancers(
        &self,
        token: &str,
        cluster: &str,
    ) -> Result<Vec<Leftover>, OpenStackError> {
        let answer = self.api.get_json(token, "/lbaas/loadbalancers").await?;
        Ok(answer
            .get("loadbalancers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|lb| {
                lb.get("description")
                    .and_then(Value::as_str)
                    .is_some_and(|description| made_for_cluster(description, cluster))
            })
            .filter_map(|lb| leftover(lb, "provisioning_status"))
            .collect())
    }

    /// Deletes a load balancer with its listeners, pools and members.
    pub async fn delete_cascade(&self, token: &str, id: &str) -> Result<(), OpenStackError> {
        self.api
            .delete(
                token,
                &format!("/lbaas/loadbalancers/{}?cascade=true", path_segment(id)),
            )
            .await
    }
}

/// Cinder, for the volumes of persistent volumes.
#[derive(Debug, Clone)]
pub struct BlockStorage {
    api: ServiceApi,
}

impl BlockStorage {
    /// `endpoint`: the block-storage endpoint of the project (`…/v3/<project>`).
    pub fn new(http: reqwest::Client, endpoint: &str) -> BlockStorage {
        BlockStorage {
            api: ServiceApi::new(http, endpoint, "cinder"),
        }
    }

    /// The project's volumes Cinder CSI made for `cluster`.
    pub async fn cluster_volumes(
        &self,
        token: &str,
        cluster: &str,
    ) -> Result<Vec<Leftover>, OpenStackError> {
        let answer = self.api.get_json(token, "/volumes/detail").await?;
        Ok(answer
            .get("volumes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|volume| {
                volume
                    .pointer(&format!("/metadata/{}", CSI_CLUSTER_KEY.replace('/', "~1")))
                    .and_then(Value::as_str)
                    == Some(cluster)
            })
            .filter_map(|volume| leftover(volume, "status"))
            .collect())
    }

    pub async fn delete_volume(&self, token: &str, id: &str) -> Result<(), OpenStackError> {
        self.api
            .delete(token, &format!("/volumes/{}", path_segment(id)))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kubernetes_load_balancers_of_the_cluster_are_its_own() {
        let cluster = "5d12f6fd-a196-4bf0-ae4c-1f639a523a52";
        assert!(made_for_cluster(
            &format!("Kubernetes external service default/web from cluster {cluster}"),
            cluster
        ));
        assert!(!made_for_cluster(
            &format!("Kubernetes external service default/web from cluster {cluster}-2"),
            cluster
        ));
        assert!(!made_for_cluster(
            &format!("my lb from cluster {cluster}"),
            cluster
        ));
        assert!(!made_for_cluster("", cluster));
    }
}
