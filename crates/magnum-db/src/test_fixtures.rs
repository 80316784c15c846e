//! Shared pieces of the repository tests: a stored template, clusters made from it, and
//! the conductor's side of an operation.

use crate::cluster::Clusters;
use crate::nodegroup::DefaultNodeGroups;
use crate::{Page, SortDirection};
use chrono::Utc;
use magnum_core::cluster::{Cluster, ClusterInput, ClusterOwner, CountRules};
use magnum_core::cluster_template::{ClusterTemplate, Ownership, TemplateInput};
use magnum_core::coe::TemplateRules;
use magnum_core::lifecycle::ClusterStatus;
use magnum_core::nodegroup::{NodeGroup, NodeGroupRole};
use magnum_core::ApiGeneration;
use serde_json::json;

/// The uuid of the one template every test cluster is made from.
pub const TEMPLATE_UUID: &str = "5a1c0b2e-3d4f-4a5b-8c6d-7e8f9a0b1c2d";

pub fn template() -> ClusterTemplate {
    let input = TemplateInput::decode(
        &json!({"name": "t", "coe": "swarm", "image_id": "img"}),
        ApiGeneration::Current,
    )
    .unwrap();
    ClusterTemplate::from_input(
        &input,
        ApiGeneration::Current,
        Ownership {
            project_id: "p".to_string(),
            user_id: "u".to_string(),
            now: Utc::now(),
        },
        &TemplateRules::default(),
    )
    .map(|mut template| {
        template.uuid = TEMPLATE_UUID.to_string();
        template
    })
    .unwrap()
}

pub fn cluster(project: &str, name: &str, nodes: i64) -> Cluster {
    let input = ClusterInput::decode(
        &json!({"cluster_template_id": "t", "name": name, "node_count": nodes}),
        ApiGeneration::Current,
        CountRules {
            zero_nodes_allowed: true,
        },
    )
    .unwrap();
    let owner = ClusterOwner {
        project_id: project.to_string(),
        user_id: "u".to_string(),
        now: chrono::SubsecRound::trunc_subsecs(Utc::now(), 6),
    };
    Cluster::new(&input, &template(), ApiGeneration::Current, owner).unwrap()
}

/// The default nodegroups of a test cluster, storing its template first when needed.
pub async fn defaults(clusters: &Clusters<'_>) -> DefaultNodeGroups {
    let templates = clusters.database().cluster_templates();
    let stored = match templates.get_by_uuid(TEMPLATE_UUID).await {
        Ok(stored) => stored,
        Err(_) => templates.insert(&template()).await.unwrap(),
    };
    DefaultNodeGroups {
        template_revision: stored.revision,
        image_id: "img".to_string(),
        master_flavor_id: None,
        worker_flavor_id: Some("m1.small".to_string()),
        min_node_count: 0,
    }
}

pub fn page() -> Page {
    Page {
        limit: 100,
        marker: None,
        sort_key: "id".to_string(),
        sort_dir: SortDirection::Asc,
    }
}

/// Claims the cluster's pending operation and finishes it with `status`.
pub async fn finish_operation(
    clusters: &Clusters<'_>,
    status: ClusterStatus,
    nodegroups: Option<&crate::nodegroup::ObservedGroups>,
) -> Cluster {
    let queue = clusters.database().work_queue();
    let claimed = queue
        .claim_next("a", chrono::Duration::seconds(30), Utc::now())
        .await
        .unwrap()
        .unwrap();
    let mut observed = claimed.clone();
    observed.status = status;
    assert!(queue
        .record_progress(
            &observed,
            "a",
            claimed.operation_generation,
            true,
            nodegroups
        )
        .await
        .unwrap());
    clusters.get_by_uuid(&claimed.uuid).await.unwrap()
}

pub fn extra_group(cluster: &Cluster, name: &str, count: i64) -> NodeGroup {
    NodeGroup {
        id: 0,
        uuid: uuid::Uuid::new_v4().to_string(),
        name: name.to_string(),
        cluster_id: cluster.uuid.clone(),
        project_id: cluster.project_id.clone(),
        docker_volume_size: None,
        labels: Default::default(),
        flavor_id: None,
        image_id: Some("img".to_string()),
        node_addresses: Vec::new(),
        node_count: count,
        role: NodeGroupRole::Worker,
        max_node_count: None,
        min_node_count: 0,
        is_default: false,
        stack_id: None,
        status: ClusterStatus::CreateInProgress,
        status_reason: None,
        node_labels: Some(json!({"tier": "b"})),
        node_taints: None,
        created_at: chrono::SubsecRound::trunc_subsecs(Utc::now(), 0),
        updated_at: None,
    }
}
