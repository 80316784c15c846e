//! The commands, named as in python-magnumclient, and the requests they make.

use crate::error::CliError;
use crate::table::{print_dict, print_list};
use clap::{Args, Subcommand};
use magnum_client::MagnumClient;
use serde_json::{json, Map, Value};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a cluster template.
    ClusterTemplateCreate(TemplateCreateArgs),
    /// Print a list of cluster templates.
    ClusterTemplateList(ListArgs),
    /// Show details about the given cluster template.
    ClusterTemplateShow { cluster_template: String },
    /// Delete specified cluster template(s).
    ClusterTemplateDelete {
        #[arg(required = true)]
        cluster_templates: Vec<String>,
    },
    /// Updates one or more cluster template attributes.
    ClusterTemplateUpdate(UpdateArgs),
    /// Create a baymodel (the 2016 name of a cluster template).
    BaymodelCreate(TemplateCreateArgs),
    /// Print a list of baymodels.
    BaymodelList(ListArgs),
    /// Show details about the given baymodel.
    BaymodelShow { baymodel: String },
    /// Delete specified baymodel(s).
    BaymodelDelete {
        #[arg(required = true)]
        baymodels: Vec<String>,
    },
    /// Updates one or more baymodel attributes.
    BaymodelUpdate(UpdateArgs),
    /// Print a list of magnum services.
    ServiceList,
    #[command(flatten)]
    Cluster(crate::clusters::ClusterCommand),
    #[command(flatten)]
    Admin(crate::admin::AdminCommand),
}

/// Options of `cluster-template-create` and `baymodel-create`.
#[derive(Debug, Args)]
pub struct TemplateCreateArgs {
    /// Name of the template (also accepted as --name).
    positional_name: Option<String>,
    #[arg(long)]
    name: Option<String>,
    /// The name or UUID of the base image.
    #[arg(long, alias = "image-id", required = true)]
    image: String,
    /// The SSH keypair to load into the nodes.
    #[arg(long, alias = "keypair-id")]
    keypair: Option<String>,
    /// The external network to connect the cluster to.
    #[arg(long, alias = "external-network-id")]
    external_network: Option<String>,
    /// The container orchestration engine: kubernetes, swarm, swarm-mode or mesos.
    #[arg(long, required = true)]
    coe: String,
    #[arg(long)]
    fixed_network: Option<String>,
    #[arg(long)]
    fixed_subnet: Option<String>,
    #[arg(long)]
    network_driver: Option<String>,
    #[arg(long)]
    volume_driver: Option<String>,
    #[arg(long, default_value = "8.8.8.8")]
    dns_nameserver: String,
    #[arg(long, alias = "flavor-id", default_value = "m1.medium")]
    flavor: String,
    #[arg(long, alias = "master-flavor-id")]
    master_flavor: Option<String>,
    #[arg(long)]
    docker_volume_size: Option<i64>,
    /// Docker storage driver (overlay2 unless given, as `openstack coe` does).
    #[arg(long, default_value = "overlay2")]
    docker_storage_driver: String,
    #[arg(long)]
    http_proxy: Option<String>,
    #[arg(long)]
    https_proxy: Option<String>,
    #[arg(long)]
    no_proxy: Option<String>,
    /// Labels as KEY=VALUE, KEY1=VALUE1,KEY2=VALUE2 or KEY1=VALUE1;KEY2=VALUE2; repeatable.
    #[arg(long)]
    labels: Vec<String>,
    #[arg(long)]
    tls_disabled: bool,
    #[arg(long)]
    public: bool,
    #[arg(long)]
    registry_enabled: bool,
    #[arg(long, default_value = "vm")]
    server_type: String,
    #[arg(long)]
    master_lb_enabled: bool,
    #[arg(long, conflicts_with = "floating_ip_disabled")]
    floating_ip_enabled: bool,
    #[arg(long)]
    floating_ip_disabled: bool,
    #[arg(long)]
    insecure_registry: Option<String>,
    #[arg(long, conflicts_with = "visible")]
    hidden: bool,
    #[arg(long)]
    visible: bool,
    #[arg(long)]
    tags: Option<String>,
    /// The driver to use (selected from the image otherwise).
    #[arg(long)]
    driver: Option<String>,
}

/// Options of the list commands.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Maximum number of templates to return.
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long)]
    sort_key: Option<String>,
    #[arg(long, value_parser = ["asc", "desc"])]
    sort_dir: Option<String>,
    /// Comma-separated extra columns.
    #[arg(long)]
    fields: Option<String>,
    /// Show every attribute.
    #[arg(long)]
    detail: bool,
}

/// Options of the update commands: `<template> <op> <path=value>...`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    template: String,
    /// add, replace or remove.
    #[arg(value_parser = ["add", "replace", "remove"])]
    op: String,
    /// Attributes as PATH=VALUE (only PATH for remove).
    #[arg(required = true)]
    attributes: Vec<String>,
}

/// Turns repeated `--labels` values into a map, as python-magnumclient does: one value with
/// several `=` is split on `,` or `;`; a repeated key appends with a comma.
pub fn parse_labels(values: &[String]) -> Result<Map<String, Value>, CliError> {
    let items: Vec<String> = if values.len() == 1 && values[0].matches('=').count() > 1 {
        values[0]
            .replace(';', ",")
            .split(',')
            .map(str::to_string)
            .collect()
    } else {
        values.to_vec()
    };
    let mut labels = Map::new();
    for item in items {
        let (key, value) = item.split_once('=').ok_or_else(|| {
            CliError::Usage(format!("labels must be a list of KEY=VALUE not {item}"))
        })?;
        match labels.get_mut(key) {
            Some(Value::String(existing)) => {
                existing.push(',');
                existing.push_str(value);
            }
            _ => {
                labels.insert(key.to_string(), Value::String(value.to_string()));
            }
        }
    }
    Ok(labels)
}

/// Turns `<op> <path=value>...` into a JSON patch; values are parsed as JSON when they are.
pub fn build_patch(op: &str, attributes: &[String]) -> Result<Value, CliError> {
    let mut operations = Vec::new();
    for attribute in attributes {
        let attribute = if attribute.starts_with('/') {
            attribute.clone()
        } else {
            format!("/{attribute}")
        };
        if op == "remove" {
            operations.push(json!({"op": op, "path": attribute}));
            continue;
        }
        let (path, raw) = attribute.split_once('=').ok_or_else(|| {
            CliError::Usage(format!(
                "Attributes must be a list of PATH=VALUE not \"{attribute}\""
            ))
        })?;
        let value = if path == "/labels" {
            Value::String(crate::table::python_repr(&Value::Object(parse_labels(&[
                raw.to_string(),
            ])?)))
        } else {
            serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
        };
        operations.push(json!({"op": op, "path": path, "value": value}));
    }
    Ok(Value::Array(operations))
}

fn create_body(args: &TemplateCreateArgs, seed: bool) -> Result<Value, CliError> {
    if args.positional_name.is_some() && args.name.is_some() {
        return Err(CliError::Usage(
            "The --name parameter and the positional name are mutually exclusive".to_string(),
        ));
    }
    let mut body = json!({
        "name": args.positional_name.clone().or_else(|| args.name.clone()),
        "image_id": args.image,
        "keypair_id": args.keypair,
        "external_network_id": args.external_network,
        "coe": args.coe,
        "fixed_network": args.fixed_network,
        "network_driver": args.network_driver,
        "volume_driver": args.volume_driver,
        "dns_nameserver": args.dns_nameserver,
        "flavor_id": args.flavor,
        "master_flavor_id": args.master_flavor,
        "docker_volume_size": args.docker_volume_size,
        "http_proxy": args.http_proxy,
        "https_proxy": args.https_proxy,
        "no_proxy": args.no_proxy,
        "labels": parse_labels(&args.labels)?,
        "tls_disabled": args.tls_disabled,
        "public": args.public,
        "registry_enabled": args.registry_enabled,
        "server_type": args.server_type,
    });
    if !seed {
        body["fixed_subnet"] = json!(args.fixed_subnet);
        body["docker_storage_driver"] = json!(args.docker_storage_driver);
        body["master_lb_enabled"] = json!(args.master_lb_enabled);
        body["insecure_registry"] = json!(args.insecure_registry);
        body["hidden"] = json!(args.hidden);
        if args.floating_ip_enabled || args.floating_ip_disabled {
            body["floating_ip_enabled"] = json!(args.floating_ip_enabled);
        }
        if let Some(tags) = &args.tags {
            body["tags"] = json!(tags);
        }
        if let Some(driver) = &args.driver {
            body["driver"] = json!(driver);
        }
    }
    Ok(body)
}

pub fn show(value: &Value, as_json: bool) {
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        println!("{}", print_dict(value));
    }
}

/// The columns of the plain list, plus `--fields` (or every attribute with `--detail`).
fn list_columns(items: &[Value], args: &ListArgs) -> Result<Vec<String>, CliError> {
    let mut columns = vec!["uuid".to_string(), "name".to_string()];
    if args.detail {
        if let Some(first) = items.first().and_then(Value::as_object) {
            let extra: Vec<String> = first
                .keys()
                .filter(|key| !columns.contains(key) && key.as_str() != "links")
                .cloned()
                .collect();
            columns.extend(extra);
        }
    }
    if let Some(fields) = &args.fields {
        for field in fields
            .split(',')
            .map(str::trim)
            .filter(|field| !field.is_empty())
        {
            if let Some(first) = items.first() {
                if first.get(field).is_none() {
                    return Err(CliError::Usage(format!(
                        "Non-existent fields are specified: ['{field}']"
                    )));
                }
            }
            if !columns.iter().any(|column| column == field) {
                columns.push(field.to_string());
            }
        }
    }
    Ok(columns)
}

async fn list(
    client: &MagnumClient,
    collection: &str,
    args: &ListArgs,
    as_json: bool,
) -> Result<(), CliError> {
    let path = if args.detail {
        format!("{collection}/detail")
    } else {
        collection.to_string()
    };
    let items = client
        .list(
            &path,
            collection,
            args.limit,
            args.sort_key.as_deref(),
            args.sort_dir.as_deref(),
        )
        .await?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&items).unwrap_or_default()
        );
        return Ok(());
    }
    let columns = list_columns(&items, args)?;
    let column_names: Vec<&str> = columns.iter().map(String::as_str).collect();
    println!("{}", print_list(&items, &column_names));
    Ok(())
}

async fn delete_each(
    client: &MagnumClient,
    collection: &str,
    noun: &str,
    idents: &[String],
) -> Result<(), CliError> {
    let mut failed = None;
    for ident in idents {
        match client.delete(collection, ident).await {
            Ok(()) => println!("Request to delete {noun} {ident} has been accepted."),
            Err(error) => {
                println!("Delete for {noun} {ident} failed: {error}");
                failed = Some(error);
            }
        }
    }
    failed.map_or(Ok(()), |error| Err(error.into()))
}

pub async fn run(client: &MagnumClient, command: Command, as_json: bool) -> Result<(), CliError> {
    let output = crate::Output { json: as_json };
    match command {
        Command::Cluster(command) => crate::clusters::run(client, command, output).await?,
        Command::Admin(command) => crate::admin::run(client, command, output).await?,
        Command::ClusterTemplateCreate(args) => {
            let created = client
                .create("clustertemplates", &create_body(&args, false)?)
                .await?;
            show(&created, as_json);
        }
        Command::BaymodelCreate(args) => {
            let created = client
                .create("baymodels", &create_body(&args, true)?)
                .await?;
            show(&created, as_json);
        }
        Command::ClusterTemplateList(args) => {
            list(client, "clustertemplates", &args, as_json).await?
        }
        Command::BaymodelList(args) => list(client, "baymodels", &args, as_json).await?,
        Command::ClusterTemplateShow { cluster_template } => show(
            &client.show("clustertemplates", &cluster_template).await?,
            as_json,
        ),
        Command::BaymodelShow { baymodel } => {
            show(&client.show("baymodels", &baymodel).await?, as_json)
        }
        Command::ClusterTemplateDelete { cluster_templates } => {
            delete_each(
                client,
                "clustertemplates",
                "cluster template",
                &cluster_templates,
            )
            .await?
        }
        Command::BaymodelDelete { baymodels } => {
            delete_each(client, "baymodels", "baymodel", &baymodels).await?
        }
        Command::ClusterTemplateUpdate(args) => {
            let patch = build_patch(&args.op, &args.attributes)?;
            show(
                &client
                    .update("clustertemplates", &args.template, &patch)
                    .await?,
                as_json,
            );
        }
        Command::BaymodelUpdate(args) => {
            let patch = build_patch(&args.op, &args.attributes)?;
            show(
                &client.update("baymodels", &args.template, &patch).await?,
                as_json,
            );
        }
        Command::ServiceList => {
            let mut services = client
                .list("mservices", "mservices", None, None, None)
                .await?;
            services.sort_by_key(|service| service["id"].as_i64().unwrap_or_default());
            if as_json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&services).unwrap_or_default()
                );
            } else {
                let columns = [
                    "id",
                    "host",
                    "binary",
                    "state",
                    "disabled",
                    "disabled_reason",
                    "created_at",
                    "updated_at",
                ];
                println!("{}", print_list(&services, &columns));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_like_python_magnumclient() {
        let one = parse_labels(&["a=1,b=2;c=3".to_string()]).unwrap();
        assert_eq!(Value::Object(one), json!({"a": "1", "b": "2", "c": "3"}));
        let repeated =
            parse_labels(&["a=1".to_string(), "a=2".to_string(), "k=v=w".to_string()]).unwrap();
        assert_eq!(Value::Object(repeated), json!({"a": "1,2", "k": "v=w"}));
        assert!(parse_labels(&["novalue".to_string()]).is_err());
    }

    #[test]
    fn update_arguments_become_a_json_patch() {
        let patch = build_patch(
            "replace",
            &[
                "docker_volume_size=7".to_string(),
                "name=new".to_string(),
                "public=true".to_string(),
            ],
        )
        .unwrap();
        assert_eq!(
            patch,
            json!([
            {"op": "replace", "path": "/docker_volume_size", "value": 7},
            {"op": "replace", "path": "/name", "value": "new"},
            {"op": "replace", "path": "/public", "value": true}])
        );
        let labels = build_patch("add", &["labels=a=1,b=2".to_string()]).unwrap();
        assert_eq!(labels[0]["value"], "{'a': '1', 'b': '2'}");
        let nested = build_patch("add", &["labels/smoke=2".to_string()]).unwrap();
        assert_eq!(
            nested[0],
            json!({"op": "add", "path": "/labels/smoke", "value": 2})
        );
        let remove = build_patch("remove", &["flavor_id".to_string()]).unwrap();
        assert_eq!(remove, json!([{"op": "remove", "path": "/flavor_id"}]));
        assert!(build_patch("replace", &["nothing".to_string()]).is_err());
    }
}
