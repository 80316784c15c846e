//! `cluster-config` / `bay-config`: give the native client (docker, kubectl) what it needs
//! to reach a cluster (spec §7.6).
//!
//! The client key never leaves this machine: the command makes an RSA key and a CSR here,
//! has the CSR signed through `POST /v1/certificates`, fetches the cluster CA, writes
//! `key.pem`, `cert.pem` and `ca.pem` (and a kubeconfig for Kubernetes) and prints the
//! environment lines to source.

use crate::clusters::Generation;
use crate::error::{CliError, FileOperation};
use base64::Engine;
use clap::Args;
use magnum_client::MagnumClient;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Options of `cluster-config` and `bay-config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// ID or name of the cluster.
    cluster: String,
    /// Directory to write the certificates and config files to.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Overwrite files that exist.
    #[arg(long)]
    force: bool,
    /// Also write the certificates for Kubernetes clusters (always written for Swarm).
    #[arg(long)]
    output_certs: bool,
}

/// Writes `contents` to `path` unless it exists and `force` is off; `private` files get
/// mode 0600.
fn write_file(path: &Path, contents: &str, force: bool, private: bool) -> Result<(), CliError> {
    if path.exists() && !force {
        return Err(CliError::FileExists(path.to_path_buf()));
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options
        .open(path)
        .map_err(|error| CliError::file(FileOperation::Write, path, error))?;
    std::io::Write::write_all(&mut file, contents.as_bytes())
        .map_err(|error| CliError::file(FileOperation::Write, path, error))
}

/// The name the client certificate carries: the authenticated user, as the service's
/// subject check expects.
fn certificate_common_name(client: &MagnumClient) -> String {
    client
        .user_name()
        .map(str::to_string)
        .or_else(|| std::env::var("OS_USERNAME").ok())
        .or_else(|| std::env::var("OS_USER_ID").ok())
        .unwrap_or_else(|| "admin".to_string())
}

struct ClientCertificates {
    key: String,
    cert: String,
    ca: String,
}

async fn client_certificates(
    client: &MagnumClient,
    generation: Generation,
    uuid: &str,
    coe: &str,
) -> Result<ClientCertificates, CliError> {
    // Kubernetes maps O=system:masters to cluster-admin; only admins ask for it.
    let organization = (coe == "kubernetes" && client.roles().iter().any(|role| role == "admin"))
        .then_some("system:masters");
    let request = magnum_x509::client_key_and_csr(&certificate_common_name(client), organization)?;
    let ca = client.get(&format!("/v1/certificates/{uuid}")).await?;
    let uuid_field = match generation {
        Generation::Cluster => "cluster_uuid",
        Generation::Bay => "bay_uuid",
    };
    let signed = client
        .post(
            "/v1/certificates",
            Some(&json!({uuid_field: uuid, "csr": request.certificate_pem})),
        )
        .await?;
    let text = |value: &Value, what: &str| {
        value["pem"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| CliError::NotConfigurable(format!("the service answered no {what}")))
    };
    Ok(ClientCertificates {
        key: request.private_key_pem,
        cert: text(&signed, "signed certificate")?,
        ca: text(&ca, "CA certificate")?,
    })
}

fn kubeconfig(cluster: &Value, certificates: Option<&ClientCertificates>) -> String {
    let name = cluster["name"]
        .as_str()
        .or_else(|| cluster["uuid"].as_str())
        .unwrap_or("cluster");
    let server = cluster["api_address"].as_str().unwrap_or_default();
    let encode = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    match certificates {
        Some(certificates) => format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: {name}\ncontexts:\n- context:\n    cluster: {name}\n    user: admin\n  name: default\ncurrent-context: default\nkind: Config\npreferences: {{}}\nusers:\n- name: admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            encode(&certificates.ca),
            encode(&certificates.cert),
            encode(&certificates.key),
        ),
        None => format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    server: {server}\n  name: {name}\ncontexts:\n- context:\n    cluster: {name}\n    user: {name}\n  name: {name}\ncurrent-context: {name}\nkind: Config\npreferences: {{}}\nusers:\n- name: {name}\n"
        ),
    }
}

fn environment_line(csh: bool, name: &str, value: &str) -> String {
    if csh {
        format!("setenv {name} {value}")
    } else {
        format!("export {name}={value}")
    }
}

pub async fn write_cluster_config(
    client: &MagnumClient,
    generation: Generation,
    args: &ConfigArgs,
) -> Result<(), CliError> {
    let dir = std::path::absolute(&args.dir)
        .map_err(|error| CliError::file(FileOperation::Resolve, &args.dir, error))?;
    let cluster = client.show(generation.collection(), &args.cluster).await?;
    let status = cluster["status"].as_str().unwrap_or_default();
    if !matches!(
        status,
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "ROLLBACK_COMPLETE" | "UPDATE_IN_PROGRESS"
    ) {
        return Err(CliError::NotConfigurable(format!(
            "{} {} is in status {status}; its configuration is available once it is created",
            generation.noun(),
            args.cluster
        )));
    }
    if cluster["api_address"].is_null() {
        return Err(CliError::NotConfigurable(format!(
            "{} {} has no API address yet",
            generation.noun(),
            args.cluster
        )));
    }
    let uuid = cluster["uuid"].as_str().unwrap_or_default().to_string();
    let template_id = cluster[generation.template_field()]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let template = client
        .show(generation.template_collection(), &template_id)
        .await?;
    let coe = template["coe"].as_str().unwrap_or_default().to_string();
    let tls_disabled = template["tls_disabled"].as_bool().unwrap_or(false);
    std::fs::create_dir_all(&dir)
        .map_err(|error| CliError::file(FileOperation::CreateDirectory, &dir, error))?;
    let certificates = if tls_disabled {
        None
    } else {
        Some(client_certificates(client, generation, &uuid, &coe).await?)
    };
    let write_certificates = coe != "kubernetes" || args.output_certs;
    if let (Some(certificates), true) = (&certificates, write_certificates) {
        write_file(&dir.join("key.pem"), &certificates.key, args.force, true)?;
        write_file(&dir.join("cert.pem"), &certificates.cert, args.force, false)?;
        write_file(&dir.join("ca.pem"), &certificates.ca, args.force, false)?;
    }
    let csh = std::env::var("SHELL").is_ok_and(|shell| shell.contains("csh"));
    let dir_text = dir.display().to_string();
    match coe.as_str() {
        "kubernetes" => {
            let path = dir.join("config");
            write_file(
                &path,
                &kubeconfig(&cluster, certificates.as_ref()),
                args.force,
                true,
            )?;
            println!(
                "{}",
                environment_line(csh, "KUBECONFIG", &path.display().to_string())
            );
        }
        "swarm" | "swarm-mode" => {
            let api_address = cluster["api_address"].as_str().unwrap_or_default();
            println!("{}", environment_line(csh, "DOCKER_HOST", api_address));
            println!("{}", environment_line(csh, "DOCKER_CERT_PATH", &dir_text));
            println!(
                "{}",
                environment_line(
                    csh,
                    "DOCKER_TLS_VERIFY",
                    if tls_disabled { "" } else { "1" }
                )
            );
        }
        other => {
            return Err(CliError::NotConfigurable(format!(
                "cluster-config does not know how to configure a client for COE {other}"
            )))
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_embeds_the_certificates_when_tls_is_on() {
        let cluster = json!({"name": "k1", "api_address": "https://10.0.0.5:6443"});
        let certificates = ClientCertificates {
            key: "KEY".to_string(),
            cert: "CERT".to_string(),
            ca: "CA".to_string(),
        };
        let text = kubeconfig(&cluster, Some(&certificates));
        assert!(text.contains("certificate-authority-data: Q0E=\n"));
        assert!(text.contains("server: https://10.0.0.5:6443\n"));
        assert!(text.contains("client-key-data: S0VZ\n"));
        assert!(text.contains("current-context: default\n"));
        let plain = kubeconfig(&cluster, None);
        assert!(!plain.contains("certificate-authority"));
        assert!(plain.contains("current-context: k1\n"));
    }

    #[test]
    fn existing_files_are_kept_without_force() {
        let dir = std::env::temp_dir().join(format!("magnum-cli-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key.pem");
        write_file(&path, "one", false, true).unwrap();
        let refused = write_file(&path, "two", false, true).unwrap_err();
        assert!(refused.to_string().contains("exists, aborting"));
        write_file(&path, "three", true, true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
