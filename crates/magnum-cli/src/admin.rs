//! Certificate (`ca-*`), quota (`quotas-*`) and statistics (`stats-list`) commands.

use crate::clusters::{wait_for_cluster, Generation};
use crate::commands::show;
use crate::error::{CliError, FileOperation};
use crate::table::print_list;
use crate::Output;
use clap::{Args, Subcommand};
use magnum_client::MagnumClient;
use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Show the CA certificate of a cluster.
    CaShow(ClusterChoice),
    /// Have a CSR signed by the CA of a cluster.
    CaSign(CaSignArgs),
    /// Replace the CA of a cluster (and every certificate it signed).
    CaRotate(CaRotateArgs),
    /// Create a quota.
    QuotasCreate(QuotaArgs),
    /// Update a quota.
    QuotasUpdate(QuotaArgs),
    /// Delete a quota.
    QuotasDelete(QuotaKey),
    /// Show a quota.
    QuotasShow(QuotaKey),
    /// Print a list of quotas.
    QuotasList(QuotaListArgs),
    /// Show the cluster and node counts of a project (all projects for admins).
    StatsList {
        #[arg(long)]
        project_id: Option<String>,
    },
}

/// A cluster given positionally or with `--cluster` (`--bay` in 2016).
#[derive(Debug, Args)]
pub struct ClusterChoice {
    positional_cluster: Option<String>,
    #[arg(long)]
    cluster: Option<String>,
    #[arg(long)]
    bay: Option<String>,
}

impl ClusterChoice {
    fn resolve(&self) -> Result<(Generation, String), CliError> {
        match (&self.positional_cluster, &self.cluster, &self.bay) {
            (Some(cluster), None, None) | (None, Some(cluster), None) => {
                Ok((Generation::Cluster, cluster.clone()))
            }
            (None, None, Some(bay)) => Ok((Generation::Bay, bay.clone())),
            (None, None, None) => Err(CliError::Usage(
                "A cluster must be given, positionally or with --cluster".to_string(),
            )),
            _ => Err(CliError::Usage(
                "Give the cluster only once (positionally, --cluster or --bay)".to_string(),
            )),
        }
    }
}

/// Options of `ca-sign`.
#[derive(Debug, Args)]
pub struct CaSignArgs {
    #[command(flatten)]
    cluster: ClusterChoice,
    /// File with the certificate signing request (PEM).
    #[arg(long, required = true)]
    csr: PathBuf,
}

/// Options of `ca-rotate`.
#[derive(Debug, Args)]
pub struct CaRotateArgs {
    #[command(flatten)]
    cluster: ClusterChoice,
    /// Wait until the new certificates are in place.
    #[arg(long)]
    wait: bool,
}

/// The project and resource a quota is about.
#[derive(Debug, Args)]
pub struct QuotaKey {
    #[arg(long, required = true)]
    project_id: String,
    /// The resource the quota limits (Cluster).
    #[arg(long, required = true)]
    resource: String,
}

/// Options of `quotas-create` and `quotas-update`.
#[derive(Debug, Args)]
pub struct QuotaArgs {
    #[command(flatten)]
    key: QuotaKey,
    #[arg(long, default_value_t = 1)]
    hard_limit: i64,
}

/// Options of `quotas-list`.
#[derive(Debug, Args)]
pub struct QuotaListArgs {
    #[arg(long)]
    marker: Option<String>,
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long)]
    sort_key: Option<String>,
    #[arg(long, value_parser = ["asc", "desc"])]
    sort_dir: Option<String>,
    /// Quotas of every project (admin only).
    #[arg(long)]
    all_tenants: bool,
}

fn print_pem(value: &Value, output: Output) {
    if output.json {
        show(value, true);
    } else {
        println!("{}", value["pem"].as_str().unwrap_or_default().trim_end());
    }
}

pub async fn run(
    client: &MagnumClient,
    command: AdminCommand,
    output: Output,
) -> Result<(), CliError> {
    match command {
        AdminCommand::CaShow(choice) => {
            let (generation, ident) = choice.resolve()?;
            let cluster = client.show(generation.collection(), &ident).await?;
            let uuid = cluster["uuid"].as_str().unwrap_or(&ident).to_string();
            print_pem(
                &client.get(&format!("/v1/certificates/{uuid}")).await?,
                output,
            );
        }
        AdminCommand::CaSign(args) => {
            let (generation, ident) = args.cluster.resolve()?;
            let csr = std::fs::read_to_string(&args.csr)
                .map_err(|error| CliError::file(FileOperation::Read, &args.csr, error))?;
            let key = match generation {
                Generation::Cluster => "cluster_uuid",
                Generation::Bay => "bay_uuid",
            };
            let signed = client
                .post("/v1/certificates", Some(&json!({key: ident, "csr": csr})))
                .await?;
            print_pem(&signed, output);
        }
        AdminCommand::CaRotate(args) => {
            let (generation, ident) = args.cluster.resolve()?;
            let cluster = client.show(generation.collection(), &ident).await?;
            let uuid = cluster["uuid"].as_str().unwrap_or(&ident).to_string();
            client
                .patch(&format!("/v1/certificates/{uuid}"), None)
                .await?;
            println!(
                "Request to rotate the CA of {} {ident} has been accepted.",
                generation.noun()
            );
            if args.wait {
                wait_for_cluster(client, generation, &uuid).await?;
            }
        }
        AdminCommand::QuotasCreate(args) => {
            let created = client
                .create(
                    "quotas",
                    &json!({
                        "project_id": args.key.project_id,
                        "resource": args.key.resource,
                        "hard_limit": args.hard_limit,
                    }),
                )
                .await?;
            show(&created, output.json);
        }
        AdminCommand::QuotasUpdate(args) => {
            let updated = client
                .patch(
                    &format!("/v1/quotas/{}/{}", args.key.project_id, args.key.resource),
                    Some(&json!({
                        "project_id": args.key.project_id,
                        "resource": args.key.resource,
                        "hard_limit": args.hard_limit,
                    })),
                )
                .await?;
            show(&updated, output.json);
        }
        AdminCommand::QuotasDelete(key) => {
            client
                .delete("quotas", &format!("{}/{}", key.project_id, key.resource))
                .await?;
            println!(
                "Request to delete quota for project id {} and resource {} has been accepted.",
                key.project_id, key.resource
            );
        }
        AdminCommand::QuotasShow(key) => {
            let quota = client
                .get(&format!("/v1/quotas/{}/{}", key.project_id, key.resource))
                .await?;
            show(&quota, output.json);
        }
        AdminCommand::QuotasList(args) => {
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
            if args.all_tenants {
                query.push("all_tenants=True".to_string());
            }
            let quotas = client
                .list_with_query("quotas", "quotas", args.limit, &query)
                .await?;
            if output.json {
                show(&Value::Array(quotas), true);
            } else {
                println!(
                    "{}",
                    print_list(&quotas, &["project_id", "resource", "hard_limit"])
                );
            }
        }
        AdminCommand::StatsList { project_id } => {
            let path = match &project_id {
                Some(project_id) => format!("/v1/stats?project_id={project_id}"),
                None => "/v1/stats".to_string(),
            };
            show(&client.get(&path).await?, output.json);
        }
    }
    Ok(())
}
