//! Cluster commands (`cluster-*`, the 2016 `bay-*`, `nodegroup-*`) and `--wait`.
//!
//! Creates, updates and deletes are asynchronous on the server; with `--wait` the command
//! polls the cluster and keeps one status line up to date until the operation ends, then
//! exits non-zero when the cluster ended FAILED.
//!
//! This module holds what the rest of the CLI sees: the subcommands, the API generation a
//! command speaks and the dispatch. The arguments, the cluster and nodegroup requests and the
//! wait UI live in the submodules.

mod args;
mod cluster_commands;
mod nodegroup_commands;
mod wait;

use crate::commands::show;
use crate::config::{write_cluster_config, ConfigArgs};
use crate::error::CliError;
use crate::Output;
use args::{
    BayCreateArgs, ClusterCreateArgs, ClusterListArgs, ClusterResizeArgs, ClusterUpdateArgs,
    ClusterUpgradeArgs, NodegroupCreateArgs, NodegroupListArgs, NodegroupUpdateArgs,
};
use clap::Subcommand;
use cluster_commands::{
    bay_create, cluster_create, cluster_list, cluster_resize, cluster_show, cluster_update,
    cluster_upgrade, delete_clusters,
};
use magnum_client::MagnumClient;
use nodegroup_commands::{nodegroup_create, nodegroup_delete, nodegroup_list, nodegroup_update};

pub(crate) use wait::wait_for_cluster;

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
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

/// The two API generations a cluster command can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Generation {
    Cluster,
    Bay,
}

impl Generation {
    pub(crate) fn collection(self) -> &'static str {
        match self {
            Generation::Cluster => "clusters",
            Generation::Bay => "bays",
        }
    }

    pub(crate) fn noun(self) -> &'static str {
        match self {
            Generation::Cluster => "cluster",
            Generation::Bay => "bay",
        }
    }

    pub(crate) fn template_collection(self) -> &'static str {
        match self {
            Generation::Cluster => "clustertemplates",
            Generation::Bay => "baymodels",
        }
    }

    pub(crate) fn template_field(self) -> &'static str {
        match self {
            Generation::Cluster => "cluster_template_id",
            Generation::Bay => "baymodel_id",
        }
    }
}

pub(crate) async fn run(
    client: &MagnumClient,
    command: ClusterCommand,
    output: Output,
) -> Result<(), CliError> {
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
