//! The cluster and bay requests (`cluster-*`, `bay-*`): create, list, show, delete, update
//! and the cluster actions (resize, upgrade).

use super::args::{
    BayCreateArgs, ClusterCreateArgs, ClusterListArgs, ClusterResizeArgs, ClusterUpdateArgs,
    ClusterUpgradeArgs,
};
use super::wait::{wait_for_cluster, wait_for_deletion};
use super::Generation;
use crate::commands::{build_patch, parse_labels, show};
use crate::error::CliError;
use crate::table::print_list;
use crate::Output;
use magnum_client::MagnumClient;
use serde_json::{json, Value};

fn name_argument(positional: &Option<String>, flag: &Option<String>) -> Result<Value, CliError> {
    if positional.is_some() && flag.is_some() {
        return Err(CliError::Usage(
            "The --name parameter and the positional name are mutually exclusive".to_string(),
        ));
    }
    Ok(json!(positional.clone().or_else(|| flag.clone())))
}

pub(super) async fn cluster_create(
    client: &MagnumClient,
    args: &ClusterCreateArgs,
    output: Output,
) -> Result<(), CliError> {
    let template = client
        .show("clustertemplates", &args.cluster_template)
        .await?;
    let mut body = json!({
        "name": name_argument(&args.positional_name, &args.name)?,
        "cluster_template_id": template["uuid"],
        "keypair": args.keypair,
        "node_count": args.node_count,
        "master_count": args.master_count,
        "discovery_url": args.discovery_url,
        "create_timeout": args.timeout,
        "master_flavor_id": args.master_flavor,
        "flavor_id": args.flavor,
        "fixed_network": args.fixed_network,
        "fixed_subnet": args.fixed_subnet,
    });
    if let Some(size) = args.docker_volume_size {
        body["docker_volume_size"] = json!(size);
    }
    if !args.labels.is_empty() {
        body["labels"] = Value::Object(parse_labels(&args.labels)?);
    }
    if args.merge_labels {
        body["merge_labels"] = json!(true);
    }
    if args.floating_ip_enabled || args.floating_ip_disabled {
        body["floating_ip_enabled"] = json!(args.floating_ip_enabled);
    }
    if args.master_lb_enabled || args.master_lb_disabled {
        body["master_lb_enabled"] = json!(args.master_lb_enabled);
    }
    let created = client.create("clusters", &body).await?;
    let uuid = created["uuid"].as_str().unwrap_or_default().to_string();
    if output.json && !args.wait {
        show(&created, true);
        return Ok(());
    }
    println!("Request to create cluster {uuid} has been accepted.");
    if args.wait {
        let cluster = wait_for_cluster(client, Generation::Cluster, &uuid).await?;
        show(&cluster, output.json);
    }
    Ok(())
}

pub(super) async fn bay_create(
    client: &MagnumClient,
    args: &BayCreateArgs,
    output: Output,
) -> Result<(), CliError> {
    let baymodel = client.show("baymodels", &args.baymodel).await?;
    let body = json!({
        "name": name_argument(&args.positional_name, &args.name)?,
        "baymodel_id": baymodel["uuid"],
        "node_count": args.node_count,
        "master_count": args.master_count,
        "discovery_url": args.discovery_url,
        "bay_create_timeout": args.timeout,
    });
    let created = client.create("bays", &body).await?;
    let uuid = created["uuid"].as_str().unwrap_or_default().to_string();
    if !args.wait {
        if output.json {
            show(&created, true);
        } else {
            println!("Request to create bay {uuid} has been accepted.");
        }
        return Ok(());
    }
    println!("Request to create bay {uuid} has been accepted.");
    let bay = wait_for_cluster(client, Generation::Bay, &uuid).await?;
    show(&bay, output.json);
    Ok(())
}

pub(super) async fn cluster_list(
    client: &MagnumClient,
    generation: Generation,
    args: &ClusterListArgs,
    output: Output,
) -> Result<(), CliError> {
    let mut query = Vec::new();
    if let Some(marker) = &args.marker {
        query.push(format!("marker={marker}"));
    }
    if let Some(sort_key) = &args.sort_key {
        query.push(format!("sort_key={sort_key}"));
    }
    if let Some(sort_dir) = &args.sort_dir {
        query.push(format!("sort_dir={sort_dir}"));
    }
    let collection = generation.collection();
    let items = client
        .list_with_query(collection, collection, args.limit, &query)
        .await?;
    if output.json {
        show(&Value::Array(items), true);
        return Ok(());
    }
    let mut columns: Vec<String> = match generation {
        Generation::Cluster => vec![
            "uuid",
            "name",
            "keypair",
            "node_count",
            "master_count",
            "status",
            "health_status",
        ],
        Generation::Bay => vec!["uuid", "name", "node_count", "master_count", "status"],
    }
    .into_iter()
    .map(str::to_string)
    .collect();
    if let Some(fields) = &args.fields {
        for field in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            if items
                .first()
                .is_some_and(|first| first.get(field).is_none())
            {
                return Err(CliError::Usage(format!(
                    "Non-existent fields are specified: ['{field}']"
                )));
            }
            if !columns.iter().any(|column| column == field) {
                columns.push(field.to_string());
            }
        }
    }
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    println!("{}", print_list(&items, &names));
    Ok(())
}

pub(super) async fn cluster_show(
    client: &MagnumClient,
    ident: &str,
    long: bool,
    output: Output,
) -> Result<(), CliError> {
    let mut cluster = client.show("clusters", ident).await?;
    if long {
        let template_id = cluster["cluster_template_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let template = client.show("clustertemplates", &template_id).await?;
        if let (Some(cluster), Some(template)) = (cluster.as_object_mut(), template.as_object()) {
            for (key, value) in template {
                if key == "links" || key == "uuid" {
                    continue;
                }
                cluster
                    .entry(format!("clustertemplate_{key}"))
                    .or_insert_with(|| value.clone());
            }
        }
    }
    show(&cluster, output.json);
    Ok(())
}

pub(super) async fn delete_clusters(
    client: &MagnumClient,
    generation: Generation,
    idents: &[String],
    wait: bool,
) -> Result<(), CliError> {
    let noun = generation.noun();
    let mut failed: Option<CliError> = None;
    let mut accepted = Vec::new();
    for ident in idents {
        // Resolve first so that --wait can follow the uuid even when a name is given.
        let uuid = if wait {
            match client.show(generation.collection(), ident).await {
                Ok(found) => found["uuid"].as_str().map(str::to_string),
                Err(error) => {
                    println!("Delete for {noun} {ident} failed: {error}");
                    failed = Some(error.into());
                    continue;
                }
            }
        } else {
            None
        };
        match client.delete(generation.collection(), ident).await {
            Ok(()) => {
                println!("Request to delete {noun} {ident} has been accepted.");
                if let Some(uuid) = uuid {
                    accepted.push(uuid);
                }
            }
            Err(error) => {
                println!("Delete for {noun} {ident} failed: {error}");
                failed = Some(error.into());
            }
        }
    }
    for uuid in accepted {
        if let Err(error) = wait_for_deletion(client, generation, &uuid).await {
            println!("Delete for {noun} {uuid} failed: {error}");
            failed = Some(error);
        }
    }
    failed.map_or(Ok(()), Err)
}

pub(super) async fn cluster_update(
    client: &MagnumClient,
    generation: Generation,
    args: &ClusterUpdateArgs,
    output: Output,
) -> Result<(), CliError> {
    let patch = build_patch(&args.op, &args.attributes)?;
    let mut path = format!("/v1/{}/{}", generation.collection(), args.cluster);
    if args.rollback {
        path.push_str("?rollback=True");
    }
    let answer = client.patch(&path, Some(&patch)).await?;
    let uuid = answer["uuid"].as_str().unwrap_or(&args.cluster).to_string();
    if output.json && !args.wait {
        show(&answer, true);
        return Ok(());
    }
    println!(
        "Request to update {} {} has been accepted.",
        generation.noun(),
        args.cluster
    );
    if args.wait {
        let cluster = wait_for_cluster(client, generation, &uuid).await?;
        show(&cluster, output.json);
    }
    Ok(())
}

/// The uuid of a cluster given by name or uuid.
pub(super) async fn cluster_uuid(client: &MagnumClient, ident: &str) -> Result<String, CliError> {
    let cluster = client.show("clusters", ident).await?;
    Ok(cluster["uuid"].as_str().unwrap_or_default().to_string())
}

/// Posts a cluster action (`resize`, `upgrade`), says it was accepted, and with `wait`
/// follows the cluster until the action ends.
async fn cluster_action(
    client: &MagnumClient,
    ident: &str,
    action: &str,
    body: &Value,
    wait: bool,
    output: Output,
) -> Result<(), CliError> {
    let uuid = cluster_uuid(client, ident).await?;
    client
        .post(&format!("/v1/clusters/{uuid}/actions/{action}"), Some(body))
        .await?;
    println!("Request to {action} cluster {ident} has been accepted.");
    if wait {
        let cluster = wait_for_cluster(client, Generation::Cluster, &uuid).await?;
        show(&cluster, output.json);
    }
    Ok(())
}

pub(super) async fn cluster_resize(
    client: &MagnumClient,
    args: &ClusterResizeArgs,
    output: Output,
) -> Result<(), CliError> {
    let mut body = json!({"node_count": args.node_count});
    if !args.nodes_to_remove.is_empty() {
        body["nodes_to_remove"] = json!(args.nodes_to_remove);
    }
    if let Some(nodegroup) = &args.nodegroup {
        body["nodegroup"] = json!(nodegroup);
    }
    cluster_action(client, &args.cluster, "resize", &body, args.wait, output).await
}

pub(super) async fn cluster_upgrade(
    client: &MagnumClient,
    args: &ClusterUpgradeArgs,
    output: Output,
) -> Result<(), CliError> {
    let mut body = json!({
        "cluster_template": args.cluster_template,
        "max_batch_size": args.max_batch_size,
    });
    if let Some(nodegroup) = &args.nodegroup {
        body["nodegroup"] = json!(nodegroup);
    }
    cluster_action(client, &args.cluster, "upgrade", &body, args.wait, output).await
}
