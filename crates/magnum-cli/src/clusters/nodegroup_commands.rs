//! The nodegroup requests (`nodegroup-*`), which address nodegroups through their cluster.

use super::args::{NodegroupCreateArgs, NodegroupListArgs, NodegroupUpdateArgs};
use super::cluster_commands::cluster_uuid;
use super::wait::wait_for_cluster;
use super::Generation;
use crate::commands::{build_patch, parse_labels, show};
use crate::error::CliError;
use crate::table::print_list;
use crate::Output;
use magnum_client::MagnumClient;
use serde_json::{json, Value};

pub(super) async fn nodegroup_list(
    client: &MagnumClient,
    args: &NodegroupListArgs,
    output: Output,
) -> Result<(), CliError> {
    let mut query = Vec::new();
    if let Some(sort_key) = &args.sort_key {
        query.push(format!("sort_key={sort_key}"));
    }
    if let Some(sort_dir) = &args.sort_dir {
        query.push(format!("sort_dir={sort_dir}"));
    }
    if let Some(role) = &args.role {
        query.push(format!("role={role}"));
    }
    let items = client
        .list_with_query(
            &format!("clusters/{}/nodegroups", args.cluster),
            "nodegroups",
            args.limit,
            &query,
        )
        .await?;
    if output.json {
        show(&Value::Array(items), true);
        return Ok(());
    }
    let columns = [
        "uuid",
        "name",
        "flavor_id",
        "image_id",
        "node_count",
        "status",
        "role",
    ];
    println!("{}", print_list(&items, &columns));
    Ok(())
}

/// Waits for the cluster's operation on a nodegroup, then shows the nodegroup (or, once it
/// is gone, the cluster).
async fn wait_for_nodegroup(
    client: &MagnumClient,
    cluster: &str,
    nodegroup: &str,
    output: Output,
) -> Result<(), CliError> {
    let settled = wait_for_cluster(client, Generation::Cluster, cluster).await?;
    match client
        .get(&format!("/v1/clusters/{cluster}/nodegroups/{nodegroup}"))
        .await
    {
        Ok(group) => show(&group, output.json),
        Err(_) => show(&settled, output.json),
    }
    Ok(())
}

pub(super) async fn nodegroup_create(
    client: &MagnumClient,
    args: &NodegroupCreateArgs,
    output: Output,
) -> Result<(), CliError> {
    let uuid = cluster_uuid(client, &args.cluster).await?;
    let mut body = json!({
        "name": args.name,
        "node_count": args.node_count,
        "min_node_count": args.min_nodes,
        "role": args.role,
    });
    for (key, value) in [
        (
            "docker_volume_size",
            args.docker_volume_size.map(Value::from),
        ),
        ("max_node_count", args.max_nodes.map(Value::from)),
        ("image_id", args.image.clone().map(Value::from)),
        ("flavor_id", args.flavor.clone().map(Value::from)),
    ] {
        if let Some(value) = value {
            body[key] = value;
        }
    }
    if !args.labels.is_empty() {
        body["labels"] = Value::Object(parse_labels(&args.labels)?);
    }
    if args.merge_labels {
        body["merge_labels"] = json!(true);
    }
    let created = client
        .post(&format!("/v1/clusters/{uuid}/nodegroups"), Some(&body))
        .await?;
    println!(
        "Request to create nodegroup {} has been accepted.",
        created["uuid"].as_str().unwrap_or(&args.name)
    );
    if args.wait {
        wait_for_nodegroup(client, &uuid, &args.name, output).await?;
    }
    Ok(())
}

pub(super) async fn nodegroup_update(
    client: &MagnumClient,
    args: &NodegroupUpdateArgs,
    output: Output,
) -> Result<(), CliError> {
    let uuid = cluster_uuid(client, &args.cluster).await?;
    let patch = build_patch(&args.op, &args.attributes)?;
    let updated = client
        .patch(
            &format!("/v1/clusters/{uuid}/nodegroups/{}", args.nodegroup),
            Some(&patch),
        )
        .await?;
    if args.wait {
        wait_for_nodegroup(client, &uuid, &args.nodegroup, output).await
    } else {
        show(&updated, output.json);
        Ok(())
    }
}

pub(super) async fn nodegroup_delete(
    client: &MagnumClient,
    cluster: &str,
    nodegroups: &[String],
    wait: bool,
) -> Result<(), CliError> {
    let uuid = cluster_uuid(client, cluster).await?;
    let collection = format!("clusters/{uuid}/nodegroups");
    let mut failed = None;
    for nodegroup in nodegroups {
        match client.delete(&collection, nodegroup).await {
            Ok(()) => println!("Request to delete nodegroup {nodegroup} has been accepted."),
            Err(error) => {
                println!("Delete for nodegroup {nodegroup} failed: {error}");
                failed = Some(error);
            }
        }
    }
    if wait {
        wait_for_cluster(client, Generation::Cluster, &uuid).await?;
    }
    match failed {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}
