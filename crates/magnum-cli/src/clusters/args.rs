//! The clap arguments of the cluster, bay and nodegroup commands, apart from the requests
//! they turn into so that the options can be read in one place.

use clap::Args;

/// Options of `nodegroup-create`.
#[derive(Debug, Args)]
pub(crate) struct NodegroupCreateArgs {
    pub(super) cluster: String,
    pub(super) name: String,
    #[arg(long)]
    pub(super) docker_volume_size: Option<i64>,
    /// Labels as KEY=VALUE[,KEY=VALUE...]; repeatable.
    #[arg(long)]
    pub(super) labels: Vec<String>,
    #[arg(long, default_value_t = 1)]
    pub(super) node_count: i64,
    #[arg(long, default_value_t = 0)]
    pub(super) min_nodes: i64,
    #[arg(long)]
    pub(super) max_nodes: Option<i64>,
    #[arg(long, default_value = "worker")]
    pub(super) role: String,
    #[arg(long)]
    pub(super) image: Option<String>,
    #[arg(long)]
    pub(super) flavor: Option<String>,
    /// Merge the labels with the cluster's instead of replacing them.
    #[arg(long)]
    pub(super) merge_labels: bool,
    /// Wait until the nodegroup's nodes are built, showing progress.
    #[arg(long)]
    pub(super) wait: bool,
}

/// Options of `nodegroup-update`.
#[derive(Debug, Args)]
pub(crate) struct NodegroupUpdateArgs {
    pub(super) cluster: String,
    pub(super) nodegroup: String,
    #[arg(value_parser = ["add", "replace", "remove"])]
    pub(super) op: String,
    /// Attributes as PATH=VALUE (only PATH for remove).
    #[arg(required = true)]
    pub(super) attributes: Vec<String>,
    #[arg(long)]
    pub(super) wait: bool,
}

/// Options of `cluster-create`.
#[derive(Debug, Args)]
pub(crate) struct ClusterCreateArgs {
    /// Name of the cluster (also accepted as --name).
    pub(super) positional_name: Option<String>,
    #[arg(long)]
    pub(super) name: Option<String>,
    /// ID or name of the cluster template.
    #[arg(long, required = true)]
    pub(super) cluster_template: String,
    #[arg(long, alias = "keypair-id")]
    pub(super) keypair: Option<String>,
    #[arg(long)]
    pub(super) docker_volume_size: Option<i64>,
    /// Labels as KEY=VALUE, KEY1=VALUE1,KEY2=VALUE2; repeatable.
    #[arg(long)]
    pub(super) labels: Vec<String>,
    #[arg(long, default_value_t = 1)]
    pub(super) node_count: i64,
    #[arg(long, default_value_t = 1)]
    pub(super) master_count: i64,
    #[arg(long)]
    pub(super) discovery_url: Option<String>,
    /// Minutes before the creation is declared failed.
    #[arg(long, default_value_t = 60)]
    pub(super) timeout: i64,
    #[arg(long)]
    pub(super) master_flavor: Option<String>,
    #[arg(long)]
    pub(super) flavor: Option<String>,
    #[arg(long)]
    pub(super) fixed_network: Option<String>,
    #[arg(long)]
    pub(super) fixed_subnet: Option<String>,
    #[arg(long, conflicts_with = "floating_ip_disabled")]
    pub(super) floating_ip_enabled: bool,
    #[arg(long)]
    pub(super) floating_ip_disabled: bool,
    /// Merge the labels with the template's instead of replacing them.
    #[arg(long)]
    pub(super) merge_labels: bool,
    #[arg(long, conflicts_with = "master_lb_disabled")]
    pub(super) master_lb_enabled: bool,
    #[arg(long)]
    pub(super) master_lb_disabled: bool,
    /// Wait until the cluster is created, showing its progress.
    #[arg(long)]
    pub(super) wait: bool,
}

/// Options of `bay-create`.
#[derive(Debug, Args)]
pub(crate) struct BayCreateArgs {
    pub(super) positional_name: Option<String>,
    #[arg(long)]
    pub(super) name: Option<String>,
    /// ID or name of the baymodel.
    #[arg(long, required = true)]
    pub(super) baymodel: String,
    #[arg(long, default_value_t = 1)]
    pub(super) node_count: i64,
    #[arg(long, default_value_t = 1)]
    pub(super) master_count: i64,
    #[arg(long)]
    pub(super) discovery_url: Option<String>,
    /// Minutes before the creation is declared failed.
    #[arg(long, default_value_t = 60)]
    pub(super) timeout: i64,
    /// Wait until the bay is created, showing its progress.
    #[arg(long)]
    pub(super) wait: bool,
}

/// Options of `cluster-list` and `bay-list`.
#[derive(Debug, Args)]
pub(crate) struct ClusterListArgs {
    /// The last UUID of the previous page.
    #[arg(long)]
    pub(super) marker: Option<String>,
    #[arg(long)]
    pub(super) limit: Option<usize>,
    #[arg(long)]
    pub(super) sort_key: Option<String>,
    #[arg(long, value_parser = ["asc", "desc"])]
    pub(super) sort_dir: Option<String>,
    /// Comma-separated extra columns.
    #[arg(long)]
    pub(super) fields: Option<String>,
}

/// Options of `cluster-update` and `bay-update`.
#[derive(Debug, Args)]
pub(crate) struct ClusterUpdateArgs {
    pub(super) cluster: String,
    /// add, replace or remove.
    #[arg(value_parser = ["add", "replace", "remove"])]
    pub(super) op: String,
    /// Attributes as PATH=VALUE (only PATH for remove).
    #[arg(required = true)]
    pub(super) attributes: Vec<String>,
    /// Roll back the cluster when the update fails.
    #[arg(long)]
    pub(super) rollback: bool,
    /// Wait until the update ends, showing its progress.
    #[arg(long)]
    pub(super) wait: bool,
}

/// Options of `cluster-resize`.
#[derive(Debug, Args)]
pub(crate) struct ClusterResizeArgs {
    pub(super) cluster: String,
    /// The wanted number of worker nodes.
    pub(super) node_count: i64,
    /// A node to remove (name, address or index); repeatable.
    #[arg(long)]
    pub(super) nodes_to_remove: Vec<String>,
    #[arg(long)]
    pub(super) nodegroup: Option<String>,
    /// Wait until the resize ends, showing its progress.
    #[arg(long)]
    pub(super) wait: bool,
}

/// Options of `cluster-upgrade`.
#[derive(Debug, Args)]
pub(crate) struct ClusterUpgradeArgs {
    pub(super) cluster: String,
    pub(super) cluster_template: String,
    #[arg(long, default_value_t = 1)]
    pub(super) max_batch_size: i64,
    #[arg(long)]
    pub(super) nodegroup: Option<String>,
    #[arg(long)]
    pub(super) wait: bool,
}

/// Options of `nodegroup-list`.
#[derive(Debug, Args)]
pub(crate) struct NodegroupListArgs {
    pub(super) cluster: String,
    #[arg(long)]
    pub(super) limit: Option<usize>,
    #[arg(long)]
    pub(super) sort_key: Option<String>,
    #[arg(long, value_parser = ["asc", "desc"])]
    pub(super) sort_dir: Option<String>,
    /// Only nodegroups with this role.
    #[arg(long)]
    pub(super) role: Option<String>,
}
