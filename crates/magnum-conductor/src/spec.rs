//! The driver's view of a cluster ([`ClusterSpec`]), built from the cluster's row, its
//! template and its nodegroups.

use magnum_core::cluster::{Cluster, DEFAULT_MASTER_NODEGROUP, DEFAULT_WORKER_NODEGROUP};
use magnum_core::cluster_template::ClusterTemplate;
use magnum_core::nodegroup::{NodeGroup, NodeGroupRole};
use magnum_driver::{
    ClusterCertificates, ClusterCredentials, ClusterRef, ClusterSpec, NetworkSpec, NodeGroupSpec,
};
use std::sync::Arc;

/// What a cluster's owner lets drivers act with. The docker provider needs no more than the
/// owner; a cloud provider adds the cluster's trust here.
pub fn credentials(cluster: &Cluster) -> ClusterCredentials {
    ClusterCredentials {
        project_id: cluster.project_id.clone(),
        user_id: cluster.user_id.clone(),
        trust_id: None,
        trustee_user_id: None,
    }
}

/// [`credentials`] with the trust a cloud gave the cluster, when it has one.
pub async fn trusted_credentials(
    database: &magnum_db::Database,
    cluster: &Cluster,
) -> Result<ClusterCredentials, String> {
    let mut owner = credentials(cluster);
    match database.trusts().get(&cluster.uuid).await {
        Ok(record) => {
            owner.trust_id = Some(record.trust_id);
            owner.trustee_user_id = Some(record.trustee_user_id);
        }
        Err(magnum_db::DbError::NotFound) => {}
        Err(error) => return Err(error.to_string()),
    }
    Ok(owner)
}

/// The cluster's name, or its uuid when it has none (2016 bays may be unnamed).
pub fn display_name(cluster: &Cluster) -> String {
    cluster.name.clone().unwrap_or_else(|| cluster.uuid.clone())
}

/// What a driver needs to remove a cluster.
pub fn cluster_ref(cluster: &Cluster) -> ClusterRef {
    ClusterRef {
        uuid: cluster.uuid.clone(),
        name: display_name(cluster),
        stack_id: cluster.stack_id.clone(),
        credentials: credentials(cluster),
    }
}

/// One nodegroup with the cluster's and template's defaults applied. The default groups
/// follow the cluster's template (an upgrade moves them to the new template's image); other
/// groups keep the image they were made with.
fn group_spec(
    group: Option<&NodeGroup>,
    name: &str,
    role: NodeGroupRole,
    cluster: &Cluster,
    template: &ClusterTemplate,
) -> NodeGroupSpec {
    let is_default = group.is_none_or(|group| group.is_default);
    let node_count = match (&role, group) {
        (NodeGroupRole::Master, _) => cluster.master_count,
        (_, Some(group)) if !group.is_default => group.node_count,
        _ => cluster.node_count,
    };
    let cluster_flavor = match role {
        NodeGroupRole::Master => cluster
            .master_flavor_id
            .clone()
            .or_else(|| cluster.flavor_id.clone()),
        _ => cluster.flavor_id.clone(),
    };
    let flavor = match group {
        Some(group) if !group.is_default => group.flavor_id.clone().or(cluster_flavor),
        _ => cluster_flavor,
    };
    let image = match group {
        Some(group) if !group.is_default => group
            .image_id
            .clone()
            .unwrap_or_else(|| template.image_id.clone()),
        _ => template.image_id.clone(),
    };
    NodeGroupSpec {
        name: name.to_string(),
        uuid: group.map(|group| group.uuid.clone()),
        role,
        is_default,
        node_count,
        min_node_count: group.map(|group| group.min_node_count).unwrap_or(0),
        max_node_count: group.and_then(|group| group.max_node_count),
        flavor,
        image,
        docker_volume_size: group
            .and_then(|group| group.docker_volume_size)
            .or(cluster.docker_volume_size),
        labels: group
            .filter(|group| !group.is_default)
            .map(|group| group.labels.clone())
            .unwrap_or_else(|| cluster.labels.clone()),
        node_labels: group.map(NodeGroup::node_label_pairs).unwrap_or_default(),
    }
}

/// The driver's view of the cluster. Nodegroups being deleted are left out, so their nodes
/// go.
pub fn cluster_spec(
    cluster: &Cluster,
    template: &ClusterTemplate,
    groups: &[NodeGroup],
    certificates: Option<Arc<dyn ClusterCertificates>>,
    reissue_certificates: bool,
) -> ClusterSpec {
    let find = |name: &str| groups.iter().find(|group| group.name == name);
    let mut nodegroups = vec![
        group_spec(
            find(DEFAULT_MASTER_NODEGROUP),
            DEFAULT_MASTER_NODEGROUP,
            NodeGroupRole::Master,
            cluster,
            template,
        ),
        group_spec(
            find(DEFAULT_WORKER_NODEGROUP),
            DEFAULT_WORKER_NODEGROUP,
            NodeGroupRole::Worker,
            cluster,
            template,
        ),
    ];
    nodegroups.extend(
        groups
            .iter()
            .filter(|group| !group.is_default && !group.role.is_master())
            .filter(|group| !group.is_being_deleted())
            .map(|group| {
                group_spec(
                    Some(group),
                    &group.name,
                    group.role.clone(),
                    cluster,
                    template,
                )
            }),
    );
    ClusterSpec {
        uuid: cluster.uuid.clone(),
        name: display_name(cluster),
        coe: template.coe,
        server_type: template.server_type.clone(),
        template_uuid: template.uuid.clone(),
        image: template.image_id.clone(),
        keypair: cluster.keypair.clone(),
        master_lb_enabled: cluster.master_lb_enabled,
        nodegroups,
        network: NetworkSpec {
            external_network: template.external_network_id.clone(),
            fixed_network: cluster.fixed_network.clone(),
            fixed_subnet: cluster.fixed_subnet.clone(),
            dns_nameserver: template.dns_nameserver.clone(),
            floating_ip_enabled: cluster.floating_ip_enabled,
            network_driver: template.network_driver.clone(),
            http_proxy: template.http_proxy.clone(),
            https_proxy: template.https_proxy.clone(),
            no_proxy: template.no_proxy.clone(),
        },
        volume_driver: template.volume_driver.clone(),
        docker_storage_driver: template.docker_storage_driver.clone(),
        docker_volume_size: cluster.docker_volume_size,
        labels: cluster.labels.clone(),
        discovery_url: cluster.discovery_url.clone(),
        create_timeout: cluster.create_timeout,
        nodes_to_remove: cluster.nodes_to_remove.clone(),
        tls_disabled: template.tls_disabled,
        certificates,
        reissue_certificates,
        stack_id: cluster.stack_id.clone(),
        credentials: credentials(cluster),
    }
}
