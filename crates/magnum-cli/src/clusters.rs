//! Cluster commands (`cluster-*`, the 2016 `bay-*`, `nodegroup-*`) and `--wait`.
//!
//! Creates, updates and deletes are asynchronous on the server; with `--wait` the command
//! polls the cluster and keeps one status line up to date until the operation ends, then
//! exits non-zero when the cluster ended FAILED.

use crate::commands::{build_patch, parse_labels, show};
use crate::config::{write_cluster_config, ConfigArgs};
use crate::table::print_list;
use crate::Output;
use clap::{Args, Subcommand};
use magnum_client::{ClientError, MagnumClient};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create a cluster.
    ClusterCreate(ClusterCreateArgs),
    /// Print a list of available clusters.
    ClusterList(ClusterListArgs),
    /// Show details about the given cluster.
    ClusterShow {
        cluster: String,
        /// Also show the attributes of the cluster template.
        #[arg(long)]
        long: bool,
    },
    /// Delete specified cluster(s).
    ClusterDelete {
        #[arg(required = true)]
        clusters: Vec<String>,
        /// Wait until the clusters are gone.
        #[arg(long)]
        wait: bool,
    },
    /// Update information about the given cluster: `<cluster> <op> <path=value>...`.
    ClusterUpdate(ClusterUpdateArgs),
    /// Resize the worker nodes of a cluster.
    ClusterResize(ClusterResizeArgs),
    /// Upgrade a cluster to another cluster template.
    ClusterUpgrade(ClusterUpgradeArgs),
    /// Configure the native client (docker, kubectl) to reach the cluster.
    ClusterConfig(ConfigArgs),
    /// Create a bay (the 2016 name of a cluster).
    BayCreate(BayCreateArgs),
    /// Print a list of available bays.
    BayList(ClusterListArgs),
    /// Show details about the given bay.
    BayShow { bay: String },
    /// Delete specified bay(s).
    BayDelete {
        #[arg(required = true)]
        bays: Vec<String>,
        /// Wait until the bays are gone.
        #[arg(long)]
        wait: bool,
    },
    /// Update information about the given bay: `<bay> <op> <path=value>...`.
    BayUpdate(ClusterUpdateArgs),
    /// Configure the native client to reach the bay.
    BayConfig(ConfigArgs),
    /// Print a list of the nodegroups of a cluster.
    NodegroupList(NodegroupListArgs),
    /// Show details about a nodegroup.
    NodegroupShow { cluster: String, nodegroup: String },
    /// Add a worker nodegroup to a cluster.
    NodegroupCreate(NodegroupCreateArgs),
    /// Update a nodegroup's limits, node labels or taints: `<cluster> <nodegroup> <op>
    /// <path=value>...`.
    NodegroupUpdate(NodegroupUpdateArgs),
    /// Delete nodegroup(s) of a cluster.
    NodegroupDelete {
        cluster: String,
        #[arg(required = true)]
        nodegroups: Vec<String>,
        /// Wait until the cluster has removed their nodes.
        #[arg(long)]
        wait: bool,
    },
}

/// Options of `nodegroup-create`.
#[derive(Debug, Args)]
pub struct NodegroupCreateArgs {
    cluster: String,
    name: String,
    #[arg(long)]
    docker_volume_size: Option<i64>,
    /// Labels as KEY=VALUE[,KEY=VALUE...]; repeatable.
    #[arg(long)]
    labels: Vec<String>,
    #[arg(long, default_value_t = 1)]
    node_count: i64,
    #[arg(long, default_value_t = 0)]
    min_nodes: i64,
    #[arg(long)]
    max_nodes: Option<i64>,
    #[arg(long, default_value = "worker")]
    role: String,
    #[arg(long)]
    image: Option<String>,
    #[arg(long)]
    flavor: Option<String>,
    /// Merge the labels with the cluster's instead of replacing them.
    #[arg(long)]
    merge_labels: bool,
    /// Wait until the nodegroup's nodes are built, showing progress.
    #[arg(long)]
    wait: bool,
}

/// Options of `nodegroup-update`.
#[derive(Debug, Args)]
pub struct NodegroupUpdateArgs {
    cluster: String,
    nodegroup: String,
    #[arg(value_parser = ["add", "replace", "remove"])]
    op: String,
    /// Attributes as PATH=VALUE (only PATH for remove).
    #[arg(required = true)]
    attributes: Vec<String>,
    #[arg(long)]
    wait: bool,
}

/// Options of `cluster-create`.
#[derive(Debug, Args)]
pub struct ClusterCreateArgs {
    /// Name of the cluster (also accepted as --name).
    positional_name: Option<String>,
    #[arg(long)]
    name: Option<String>,
    /// ID or name of the cluster template.
    #[arg(long, required = true)]
    cluster_template: String,
    #[arg(long, alias = "keypair-id")]
    keypair: Option<String>,
    #[arg(long)]
    docker_volume_size: Option<i64>,
    /// Labels as KEY=VALUE, KEY1=VALUE1,KEY2=VALUE2; repeatable.
    #[arg(long)]
    labels: Vec<String>,
    #[arg(long, default_value_t = 1)]
    node_count: i64,
    #[arg(long, default_value_t = 1)]
    master_count: i64,
    #[arg(long)]
    discovery_url: Option<String>,
    /// Minutes before the creation is declared failed.
    #[arg(long, default_value_t = 60)]
    timeout: i64,
    #[arg(long)]
    master_flavor: Option<String>,
    #[arg(long)]
    flavor: Option<String>,
    #[arg(long)]
    fixed_network: Option<String>,
    #[arg(long)]
    fixed_subnet: Option<String>,
    #[arg(long, conflicts_with = "floating_ip_disabled")]
    floating_ip_enabled: bool,
    #[arg(long)]
    floating_ip_disabled: bool,
    /// Merge the labels with the template's instead of replacing them.
    #[arg(long)]
    merge_labels: bool,
    #[arg(long, conflicts_with = "master_lb_disabled")]
    master_lb_enabled: bool,
    #[arg(long)]
    master_lb_disabled: bool,
    /// Wait until the cluster is created, showing its progress.
    #[arg(long)]
    wait: bool,
}

/// Options of `bay-create`.
#[derive(Debug, Args)]
pub struct BayCreateArgs {
    positional_name: Option<String>,
    #[arg(long)]
    name: Option<String>,
    /// ID or name of the baymodel.
    #[arg(long, required = true)]
    baymodel: String,
    #[arg(long, default_value_t = 1)]
    node_count: i64,
    #[arg(long, default_value_t = 1)]
    master_count: i64,
    #[arg(long)]
    discovery_url: Option<String>,
    /// Minutes before the creation is declared failed.
    #[arg(long, default_value_t = 60)]
    timeout: i64,
    /// Wait until the bay is created, showing its progress.
    #[arg(long)]
    wait: bool,
}

/// Options of `cluster-list` and `bay-list`.
#[derive(Debug, Args)]
pub struct ClusterListArgs {
    /// The last UUID of the previous page.
    #[arg(long)]
    marker: Option<String>,
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long)]
    sort_key: Option<String>,
    #[arg(long, value_parser = ["asc", "desc"])]
    sort_dir: Option<String>,
    /// Comma-separated extra columns.
    #[arg(long)]
    fields: Option<String>,
}

/// Options of `cluster-update` and `bay-update`.
#[derive(Debug, Args)]
pub struct ClusterUpdateArgs {
    cluster: String,
    /// add, replace or remove.
    #[arg(value_parser = ["add", "replace", "remove"])]
    op: String,
    /// Attributes as PATH=VALUE (only PATH for remove).
    #[arg(required = true)]
    attributes: Vec<String>,
    /// Roll back the cluster when the update fails.
    #[arg(long)]
    rollback: bool,
    /// Wait until the update ends, showing its progress.
    #[arg(long)]
    wait: bool,
}

/// Options of `cluster-resize`.
#[derive(Debug, Args)]
pub struct ClusterResizeArgs {
    cluster: String,
    /// The wanted number of worker nodes.
    node_count: i64,
    /// A node to remove (name, address or index); repeatable.
    #[arg(long)]
    nodes_to_remove: Vec<String>,
    #[arg(long)]
    nodegroup: Option<String>,
    /// Wait until the resize ends, showing its progress.
    #[arg(long)]
    wait: bool,
}

/// Options of `cluster-upgrade`.
#[derive(Debug, Args)]
pub struct ClusterUpgradeArgs {
    cluster: String,
    cluster_template: String,
    #[arg(long, default_value_t = 1)]
    max_batch_size: i64,
    #[arg(long)]
    nodegroup: Option<String>,
    #[arg(long)]
    wait: bool,
}

/// Options of `nodegroup-list`.
#[derive(Debug, Args)]
pub struct NodegroupListArgs {
    cluster: String,
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long)]
    sort_key: Option<String>,
    #[arg(long, value_parser = ["asc", "desc"])]
    sort_dir: Option<String>,
    /// Only nodegroups with this role.
    #[arg(long)]
    role: Option<String>,
}

/// The two API generations a cluster command can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    Cluster,
    Bay,
}

impl Generation {
    pub fn collection(self) -> &'static str {
        match self {
            Generation::Cluster => "clusters",
            Generation::Bay => "bays",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Generation::Cluster => "cluster",
            Generation::Bay => "bay",
        }
    }

    pub fn template_collection(self) -> &'static str {
        match self {
            Generation::Cluster => "clustertemplates",
            Generation::Bay => "baymodels",
        }
    }

    pub fn template_field(self) -> &'static str {
        match self {
            Generation::Cluster => "cluster_template_id",
            Generation::Bay => "baymodel_id",
        }
    }
}

fn name_argument(positional: &Option<String>, flag: &Option<String>) -> Result<Value, ClientError> {
    if positional.is_some() && flag.is_some() {
        return Err(ClientError::Auth(
            "The --name parameter and the positional name are mutually exclusive".to_string(),
        ));
    }
    Ok(json!(positional.clone().or_else(|| flag.clone())))
}

async fn cluster_create(
    client: &MagnumClient,
    args: &ClusterCreateArgs,
    output: Output,
) -> Result<(), ClientError> {
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

async fn bay_create(
    client: &MagnumClient,
    args: &BayCreateArgs,
    output: Output,
) -> Result<(), ClientError> {
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

async fn cluster_list(
    client: &MagnumClient,
    generation: Generation,
    args: &ClusterListArgs,
    output: Output,
) -> Result<(), ClientError> {
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
                return Err(ClientError::Auth(format!(
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

async fn cluster_show(
    client: &MagnumClient,
    ident: &str,
    long: bool,
    output: Output,
) -> Result<(), ClientError> {
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

async fn delete_clusters(
    client: &MagnumClient,
    generation: Generation,
    idents: &[String],
    wait: bool,
) -> Result<(), ClientError> {
    let noun = generation.noun();
    let mut failed = None;
    let mut accepted = Vec::new();
    for ident in idents {
        // Resolve first so that --wait can follow the uuid even when a name is given.
        let uuid = if wait {
            match client.show(generation.collection(), ident).await {
                Ok(found) => found["uuid"].as_str().map(str::to_string),
                Err(error) => {
                    println!("Delete for {noun} {ident} failed: {error}");
                    failed = Some(error);
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
                failed = Some(error);
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

async fn cluster_update(
    client: &MagnumClient,
    generation: Generation,
    args: &ClusterUpdateArgs,
    output: Output,
) -> Result<(), ClientError> {
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
async fn cluster_uuid(client: &MagnumClient, ident: &str) -> Result<String, ClientError> {
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
) -> Result<(), ClientError> {
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

async fn cluster_resize(
    client: &MagnumClient,
    args: &ClusterResizeArgs,
    output: Output,
) -> Result<(), ClientError> {
    let mut body = json!({"node_count": args.node_count});
    if !args.nodes_to_remove.is_empty() {
        body["nodes_to_remove"] = json!(args.nodes_to_remove);
    }
    if let Some(nodegroup) = &args.nodegroup {
        body["nodegroup"] = json!(nodegroup);
    }
    cluster_action(client, &args.cluster, "resize", &body, args.wait, output).await
}

async fn cluster_upgrade(
    client: &MagnumClient,
    args: &ClusterUpgradeArgs,
    output: Output,
) -> Result<(), ClientError> {
    let mut body = json!({
        "cluster_template": args.cluster_template,
        "max_batch_size": args.max_batch_size,
    });
    if let Some(nodegroup) = &args.nodegroup {
        body["nodegroup"] = json!(nodegroup);
    }
    cluster_action(client, &args.cluster, "upgrade", &body, args.wait, output).await
}

async fn nodegroup_list(
    client: &MagnumClient,
    args: &NodegroupListArgs,
    output: Output,
) -> Result<(), ClientError> {
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
) -> Result<(), ClientError> {
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

async fn nodegroup_create(
    client: &MagnumClient,
    args: &NodegroupCreateArgs,
    output: Output,
) -> Result<(), ClientError> {
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

async fn nodegroup_update(
    client: &MagnumClient,
    args: &NodegroupUpdateArgs,
    output: Output,
) -> Result<(), ClientError> {
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

async fn nodegroup_delete(
    client: &MagnumClient,
    cluster: &str,
    nodegroups: &[String],
    wait: bool,
) -> Result<(), ClientError> {
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
        Some(error) => Err(error),
        None => Ok(()),
    }
}

pub async fn run(
    client: &MagnumClient,
    command: ClusterCommand,
    output: Output,
) -> Result<(), ClientError> {
    match command {
        ClusterCommand::ClusterCreate(args) => cluster_create(client, &args, output).await,
        ClusterCommand::BayCreate(args) => bay_create(client, &args, output).await,
        ClusterCommand::ClusterList(args) => {
            cluster_list(client, Generation::Cluster, &args, output).await
        }
        ClusterCommand::BayList(args) => cluster_list(client, Generation::Bay, &args, output).await,
        ClusterCommand::ClusterShow { cluster, long } => {
            cluster_show(client, &cluster, long, output).await
        }
        ClusterCommand::BayShow { bay } => {
            show(&client.show("bays", &bay).await?, output.json);
            Ok(())
        }
        ClusterCommand::ClusterDelete { clusters, wait } => {
            delete_clusters(client, Generation::Cluster, &clusters, wait).await
        }
        ClusterCommand::BayDelete { bays, wait } => {
            delete_clusters(client, Generation::Bay, &bays, wait).await
        }
        ClusterCommand::ClusterUpdate(args) => {
            cluster_update(client, Generation::Cluster, &args, output).await
        }
        ClusterCommand::BayUpdate(args) => {
            cluster_update(client, Generation::Bay, &args, output).await
        }
        ClusterCommand::ClusterResize(args) => cluster_resize(client, &args, output).await,
        ClusterCommand::ClusterUpgrade(args) => cluster_upgrade(client, &args, output).await,
        ClusterCommand::ClusterConfig(args) => {
            write_cluster_config(client, Generation::Cluster, &args).await
        }
        ClusterCommand::BayConfig(args) => {
            write_cluster_config(client, Generation::Bay, &args).await
        }
        ClusterCommand::NodegroupList(args) => nodegroup_list(client, &args, output).await,
        ClusterCommand::NodegroupShow { cluster, nodegroup } => {
            let found = client
                .get(&format!("/v1/clusters/{cluster}/nodegroups/{nodegroup}"))
                .await?;
            show(&found, output.json);
            Ok(())
        }
        ClusterCommand::NodegroupCreate(args) => nodegroup_create(client, &args, output).await,
        ClusterCommand::NodegroupUpdate(args) => nodegroup_update(client, &args, output).await,
        ClusterCommand::NodegroupDelete {
            cluster,
            nodegroups,
            wait,
        } => nodegroup_delete(client, &cluster, &nodegroups, wait).await,
    }
}

/// How often `--wait` asks the API for the cluster.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// One line on stderr that says where a long operation is: redrawn in place with a spinner
/// on a terminal, printed once per change otherwise (logs, CI).
struct StatusLine {
    interactive: bool,
    started: Instant,
    frame: usize,
    last: String,
}

impl StatusLine {
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

    fn new() -> StatusLine {
        StatusLine {
            interactive: std::io::stderr().is_terminal(),
            started: Instant::now(),
            frame: 0,
            last: String::new(),
        }
    }

    fn update(&mut self, text: &str) {
        let elapsed = self.started.elapsed().as_secs();
        let mut stderr = std::io::stderr().lock();
        if self.interactive {
            self.frame = (self.frame + 1) % Self::FRAMES.len();
            let _ = write!(
                stderr,
                "\r\x1b[2K{} {text} ({elapsed}s)",
                Self::FRAMES[self.frame]
            );
            let _ = stderr.flush();
        } else if text != self.last {
            let _ = writeln!(stderr, "[{elapsed:>4}s] {text}");
        }
        self.last = text.to_string();
    }

    fn finish(&mut self, text: &str) {
        let elapsed = self.started.elapsed().as_secs();
        let mut stderr = std::io::stderr().lock();
        if self.interactive {
            let _ = writeln!(stderr, "\r\x1b[2K{text} ({elapsed}s)");
        } else {
            let _ = writeln!(stderr, "[{elapsed:>4}s] {text}");
        }
    }
}

fn describe(generation: Generation, cluster: &Value) -> String {
    let name = cluster["name"]
        .as_str()
        .or_else(|| cluster["uuid"].as_str())
        .unwrap_or("?");
    let status = cluster["status"].as_str().unwrap_or("UNKNOWN");
    match cluster["status_reason"].as_str() {
        Some(reason) if !reason.is_empty() => {
            format!("{} {name}: {status}: {reason}", generation.noun())
        }
        _ => format!("{} {name}: {status}", generation.noun()),
    }
}

/// Polls the cluster until its operation ends; FAILED ends in an error with the reason.
pub async fn wait_for_cluster(
    client: &MagnumClient,
    generation: Generation,
    uuid: &str,
) -> Result<Value, ClientError> {
    let mut line = StatusLine::new();
    let mut spinner = tokio::time::interval(Duration::from_millis(120));
    let mut next_poll = Instant::now();
    let mut latest = String::new();
    loop {
        spinner.tick().await;
        if Instant::now() >= next_poll {
            let cluster = client.show(generation.collection(), uuid).await?;
            let status = cluster["status"].as_str().unwrap_or_default().to_string();
            latest = describe(generation, &cluster);
            if !status.ends_with("_IN_PROGRESS") && !status.is_empty() {
                line.finish(&latest);
                // A rolled-back upgrade did not do what was asked either.
                if status.ends_with("_FAILED") || status.starts_with("ROLLBACK_") {
                    return Err(ClientError::Auth(format!(
                        "{} {uuid} ended in {status}: {}",
                        generation.noun(),
                        cluster["status_reason"]
                            .as_str()
                            .unwrap_or("no reason given")
                    )));
                }
                return Ok(cluster);
            }
            next_poll = Instant::now() + POLL_INTERVAL;
        }
        line.update(&latest);
    }
}

/// Polls until the cluster is gone (404); DELETE_FAILED ends in an error with the reason.
async fn wait_for_deletion(
    client: &MagnumClient,
    generation: Generation,
    uuid: &str,
) -> Result<(), ClientError> {
    let mut line = StatusLine::new();
    let mut spinner = tokio::time::interval(Duration::from_millis(120));
    let mut next_poll = Instant::now();
    let mut latest = String::new();
    loop {
        spinner.tick().await;
        if Instant::now() >= next_poll {
            match client.show(generation.collection(), uuid).await {
                Err(ClientError::Http { status: 404, .. }) => {
                    line.finish(&format!("{} {uuid}: deleted", generation.noun()));
                    return Ok(());
                }
                Err(error) => return Err(error),
                Ok(cluster) => {
                    latest = describe(generation, &cluster);
                    if cluster["status"] == "DELETE_FAILED" {
                        line.finish(&latest);
                        return Err(ClientError::Auth(format!(
                            "{} {uuid} ended in DELETE_FAILED: {}",
                            generation.noun(),
                            cluster["status_reason"]
                                .as_str()
                                .unwrap_or("no reason given")
                        )));
                    }
                }
            }
            next_poll = Instant::now() + POLL_INTERVAL;
        }
        line.update(&latest);
    }
}
