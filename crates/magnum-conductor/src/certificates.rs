//! Each cluster's certificate authorities as the conductor keeps them: generated on the
//! first step of a create (or on rotation), stored with the keys sealed, loaded when needed.
//! Every cluster has the default CA (`kubernetes`) and the conductor's client certificate
//! from it; a Kubernetes cluster also has the separate etcd and front-proxy CAs (spec §7.1),
//! which the API shows and signs with (`ca_cert_type`) for its nodes.

use chrono::{SubsecRound, Utc};
use magnum_db::certificate::CertificateRecord;
use magnum_db::{Database, DbError};
use magnum_driver::{ClusterCertificates, IssuedCertificate};
use magnum_x509::{sealing_binding, ClusterCa};
use std::net::IpAddr;
use std::sync::Arc;

/// The CA type every cluster has (upstream calls the default CA `kubernetes`).
pub const DEFAULT_CA_TYPE: &str = "kubernetes";
/// The record holding the conductor's own client certificate of a cluster.
pub const CONDUCTOR_CLIENT_TYPE: &str = "conductor-client";
/// The CA of a Kubernetes cluster's etcd (peers and clients).
pub const ETCD_CA_TYPE: &str = "etcd";
/// The CA of a Kubernetes cluster's API aggregation layer (the front proxy).
pub const FRONT_PROXY_CA_TYPE: &str = "front_proxy";

/// The CAs a cluster of `coe` has besides the default one.
pub fn extra_ca_types(coe: magnum_core::coe::Coe) -> &'static [&'static str] {
    match coe {
        magnum_core::coe::Coe::Kubernetes => &[ETCD_CA_TYPE, FRONT_PROXY_CA_TYPE],
        _ => &[],
    }
}

pub use magnum_x509::CertificateSettings;

/// A cluster's CA and the conductor's client certificate, ready for a driver.
#[derive(Debug)]
pub struct StoredCertificates {
    ca: ClusterCa,
    conductor_client: IssuedCertificate,
}

impl ClusterCertificates for StoredCertificates {
    fn ca_pem(&self) -> String {
        self.ca.certificate_pem().to_string()
    }

    fn issue_server(
        &self,
        common_name: &str,
        addresses: &[IpAddr],
        dns_names: &[String],
    ) -> Result<IssuedCertificate, String> {
        self.ca
            .issue_server(common_name, addresses, dns_names, Utc::now())
            .map(|issued| IssuedCertificate {
                certificate_pem: issued.certificate_pem,
                private_key_pem: issued.private_key_pem,
            })
            .map_err(|error| error.to_string())
    }

    fn conductor_client(&self) -> IssuedCertificate {
        self.conductor_client.clone()
    }
}

/// Loads a cluster's CA; `Ok(None)` when it has none yet.
pub async fn load(
    database: &Database,
    settings: &CertificateSettings,
    cluster_uuid: &str,
) -> Result<Option<Arc<StoredCertificates>>, String> {
    let ca_record = match database
        .certificates()
        .get(cluster_uuid, DEFAULT_CA_TYPE)
        .await
    {
        Ok(record) => record,
        Err(DbError::NotFound) => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    let client_record = match database
        .certificates()
        .get(cluster_uuid, CONDUCTOR_CLIENT_TYPE)
        .await
    {
        Ok(record) => record,
        Err(DbError::NotFound) => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    let ca = ClusterCa::from_sealed(
        &ca_record.certificate_pem,
        &ca_record.private_key_sealed,
        &sealing_binding(cluster_uuid, DEFAULT_CA_TYPE),
        &settings.sealer,
        &settings.x509,
    )
    .map_err(|error| error.to_string())?;
    let client_key = settings
        .sealer
        .unseal(
            &client_record.private_key_sealed,
            &sealing_binding(cluster_uuid, CONDUCTOR_CLIENT_TYPE),
        )
        .map_err(|error| error.to_string())?;
    Ok(Some(Arc::new(StoredCertificates {
        ca,
        conductor_client: IssuedCertificate {
            certificate_pem: client_record.certificate_pem,
            private_key_pem: client_key,
        },
    })))
}

/// Loads the cluster's CA, generating and storing a new one when it has none, or when its
/// CA is older than `replace_if_older_than` (a rotation: the operation's start, so that
/// only its first step makes a new CA). The `extra_types` CAs are made (or rotated) the
/// same way, each on its own, so that a step cut short completes them later.
pub async fn ensure(
    database: &Database,
    settings: &CertificateSettings,
    cluster_uuid: &str,
    cluster_name: &str,
    extra_types: &[&str],
    replace_if_older_than: Option<chrono::DateTime<Utc>>,
) -> Result<Arc<StoredCertificates>, String> {
    for ca_type in extra_types {
        ensure_extra(
            database,
            settings,
            cluster_uuid,
            cluster_name,
            ca_type,
            replace_if_older_than,
        )
        .await?;
    }
    let current = match database
        .certificates()
        .get(cluster_uuid, DEFAULT_CA_TYPE)
        .await
    {
        Ok(record) => Some(record.created_at),
        Err(DbError::NotFound) => None,
        Err(error) => return Err(error.to_string()),
    };
    let stale = match (current, replace_if_older_than) {
        (Some(created), Some(limit)) => created < limit,
        _ => false,
    };
    if current.is_some() && !stale {
        if let Some(existing) = load(database, settings, cluster_uuid).await? {
            return Ok(existing);
        }
    }
    let regenerate = current.is_some();
    let x509 = settings.x509.clone();
    let name = cluster_name.to_string();
    // RSA key generation takes a noticeable moment: keep it off the async threads.
    let (ca, client) = tokio::task::spawn_blocking(move || {
        let now = Utc::now();
        let ca = ClusterCa::generate(&name, &x509, now)?;
        let client = ca.issue_client("admin", Some("system:masters"), now)?;
        Ok::<_, magnum_x509::X509Error>((ca, client))
    })
    .await
    .map_err(|error| error.to_string())?
    .map_err(|error| error.to_string())?;
    // The database's clock, which rotation compares with the operation's start.
    let now = database
        .clock()
        .await
        .map_err(|error| error.to_string())?
        .trunc_subsecs(6);
    for (ca_type, certificate_pem, key_pem) in [
        (
            DEFAULT_CA_TYPE,
            ca.certificate_pem().to_string(),
            ca.key_pem().to_string(),
        ),
        (
            CONDUCTOR_CLIENT_TYPE,
            client.certificate_pem.clone(),
            client.private_key_pem.clone(),
        ),
    ] {
        let record = CertificateRecord {
            cluster_uuid: cluster_uuid.to_string(),
            ca_type: ca_type.to_string(),
            certificate_pem,
            private_key_sealed: settings
                .sealer
                .seal(&key_pem, &sealing_binding(cluster_uuid, ca_type))
                .map_err(|error| error.to_string())?,
            created_at: now,
            updated_at: None,
        };
        database
            .certificates()
            .put(&record)
            .await
            .map_err(|error| error.to_string())?;
    }
    tracing::info!(
        cluster = cluster_uuid,
        rotated = regenerate,
        "stored the cluster's certificate authority"
    );
    Ok(Arc::new(StoredCertificates {
        ca,
        conductor_client: IssuedCertificate {
            certificate_pem: client.certificate_pem,
            private_key_pem: client.private_key_pem,
        },
    }))
}

/// Makes the cluster's `ca_type` CA unless a current one is stored.
async fn ensure_extra(
    database: &Database,
    settings: &CertificateSettings,
    cluster_uuid: &str,
    cluster_name: &str,
    ca_type: &str,
    replace_if_older_than: Option<chrono::DateTime<Utc>>,
) -> Result<(), String> {
    match database.certificates().get(cluster_uuid, ca_type).await {
        Ok(record) if replace_if_older_than.is_none_or(|limit| record.created_at >= limit) => {
            return Ok(())
        }
        Ok(_) | Err(DbError::NotFound) => {}
        Err(error) => return Err(error.to_string()),
    }
    let x509 = settings.x509.clone();
    let name = cluster_name.to_string();
    let ca = tokio::task::spawn_blocking(move || ClusterCa::generate(&name, &x509, Utc::now()))
        .await
        .map_err(|error| error.to_string())?
        .map_err(|error| error.to_string())?;
    let now = database
        .clock()
        .await
        .map_err(|error| error.to_string())?
        .trunc_subsecs(6);
    let record = CertificateRecord {
        cluster_uuid: cluster_uuid.to_string(),
        ca_type: ca_type.to_string(),
        certificate_pem: ca.certificate_pem().to_string(),
        private_key_sealed: settings
            .sealer
            .seal(ca.key_pem(), &sealing_binding(cluster_uuid, ca_type))
            .map_err(|error| error.to_string())?,
        created_at: now,
        updated_at: None,
    };
    database
        .certificates()
        .put(&record)
        .await
        .map_err(|error| error.to_string())?;
    tracing::info!(
        cluster = cluster_uuid,
        ca_type,
        "stored a certificate authority of the cluster"
    );
    Ok(())
}
