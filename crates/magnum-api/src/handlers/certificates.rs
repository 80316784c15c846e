//! `/v1/certificates`: a cluster's CA (GET), signing users' CSRs with it (POST), and CA
//! rotation (PATCH), per spec §7.

use crate::error::ApiError;
use crate::handlers::clusters::find_cluster;
use crate::policy::enforce;
use crate::policy::PolicyTarget;
use crate::request::{json_body, BaseUrl, Caller};
use crate::views::Links;
use crate::SharedState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use chrono::Utc;
use magnum_core::cluster::Cluster;
use magnum_core::fields::decode_string;
use magnum_core::lifecycle::{self, Operation};
use magnum_db::DbError;
use magnum_x509::{ClusterCa, SubjectCheck, X509Error};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The client name the stock clients ask for: the cluster's own administrator (with group
/// `system:masters`), not a Keystone user.
const CLUSTER_ADMIN_NAME: &str = "admin";

/// The CA record every cluster has (named as upstream's default CA type).
const DEFAULT_CA_TYPE: &str = "kubernetes";

pub fn routes() -> Router<SharedState> {
    Router::new()
        .route("/v1/certificates", post(sign))
        .route("/v1/certificates/{ident}", get(show).patch(rotate))
}

/// The stored CA a `ca_cert_type` names: the default (`kubernetes`), or a Kubernetes
/// cluster's `etcd` or `front_proxy` (also spelled `front-proxy`) CA.
fn ca_type_of(requested: Option<&str>) -> Result<&'static str, ApiError> {
    match requested {
        None | Some("kubernetes") => Ok(DEFAULT_CA_TYPE),
        Some("etcd") => Ok("etcd"),
        Some("front_proxy" | "front-proxy") => Ok("front_proxy"),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid ca_cert_type {other}; expecting kubernetes, etcd or front_proxy."
        ))),
    }
}

async fn stored_ca(
    state: &SharedState,
    cluster: &Cluster,
    ca_type: &str,
) -> Result<magnum_db::certificate::CertificateRecord, ApiError> {
    let certificates = state.database.certificates();
    match certificates.get(&cluster.uuid, ca_type).await {
        Ok(record) => return Ok(record),
        Err(DbError::NotFound) => {}
        Err(other) => return Err(other.into()),
    }
    let has_default = ca_type != DEFAULT_CA_TYPE
        && match certificates.get(&cluster.uuid, DEFAULT_CA_TYPE).await {
            Ok(_) => true,
            Err(DbError::NotFound) => false,
            Err(other) => return Err(other.into()),
        };
    if has_default {
        Err(ApiError::bad_request(format!(
            "Cluster {} has no {ca_type} certificate authority: only Kubernetes clusters have the etcd and front-proxy CAs.",
            cluster.uuid
        )))
    } else {
        Err(ApiError::conflict(format!(
            "The certificate authority of cluster {} is not ready yet; it is made when the cluster's creation starts.",
            cluster.uuid
        )))
    }
}

/// Whether the caller is the cluster's own trustee: its nodes, with a token scoped to the
/// trust the owner gave when the cluster was created.
async fn is_clusters_trustee(
    state: &SharedState,
    caller: &Caller,
    cluster: &Cluster,
) -> Result<bool, ApiError> {
    let Some(trust_id) = &caller.context.trust_id else {
        return Ok(false);
    };
    match state.database.trusts().get(&cluster.uuid).await {
        Ok(trust) => Ok(&trust.trust_id == trust_id),
        Err(DbError::NotFound) => Ok(false),
        Err(other) => Err(other.into()),
    }
}

async fn show(
    State(state): State<SharedState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    Path(ident): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let ca_type = ca_type_of(query.get("ca_cert_type").map(String::as_str))?;
    let cluster = find_cluster(&state, &caller, &ident, "Cluster").await?;
    enforce(
        &state,
        "certificate:get",
        &caller,
        &PolicyTarget::of(&cluster.project_id, &cluster.user_id),
    )?;
    let record = stored_ca(&state, &cluster, ca_type).await?;
    Ok(Json(json!({
        "cluster_uuid": cluster.uuid,
        "pem": record.certificate_pem,
        "links": Links { base: &base, collection: "certificates", uuid: &cluster.uuid },
        "created_at": null,
        "updated_at": null,
    }))
    .into_response())
}

async fn sign(
    State(state): State<SharedState>,
    caller: Caller,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&headers, &body)?;
    let Value::Object(object) = &body else {
        return Err(ApiError::bad_request(
            "The request body must be an object with cluster_uuid and csr.",
        ));
    };
    if let Some(unknown) = object
        .keys()
        .find(|key| !["cluster_uuid", "bay_uuid", "csr", "ca_cert_type"].contains(&key.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "Unknown attribute for argument certificate: {unknown}"
        )));
    }
    let (key, ident) = match (object.get("cluster_uuid"), object.get("bay_uuid")) {
        (Some(value), _) if !value.is_null() => ("cluster_uuid", decode_string("cluster_uuid", value, 1, 255)?),
        (_, Some(value)) if !value.is_null() => ("bay_uuid", decode_string("bay_uuid", value, 1, 255)?),
        _ => return Err(ApiError::bad_request("Invalid input for field/attribute cluster_uuid. Value: 'None'. Mandatory field missing.")),
    };
    let ident = ident.unwrap_or_default();
    let csr = decode_string("csr", object.get("csr").unwrap_or(&Value::Null), 1, 1 << 20)?
        .ok_or_else(|| {
            ApiError::bad_request(
                "Invalid input for field/attribute csr. Value: 'None'. Mandatory field missing.",
            )
        })?;
    let ca_type = ca_type_of(object.get("ca_cert_type").and_then(Value::as_str))?;
    let cluster = match find_cluster(&state, &caller, &ident, "Cluster").await {
        Ok(cluster) => cluster,
        Err(error) if error.status == StatusCode::NOT_FOUND => {
            return Err(ApiError::bad_request(error.message))
        }
        Err(error) => return Err(error),
    };
    enforce(
        &state,
        "certificate:create",
        &caller,
        &PolicyTarget::of(&cluster.project_id, &cluster.user_id),
    )?;
    let record = stored_ca(&state, &cluster, ca_type).await?;
    // Members of the cluster's project administer their own cluster, as upstream lets
    // them: the stock `openstack coe cluster config` asks for CN=admin, O=system:masters.
    // Nobody but an administrator may name another user. The cluster's trustee is its
    // nodes: they name themselves (kube-apiserver, system:node:<host>, etcd members).
    let own_cluster = caller.context.project_id == cluster.project_id;
    let restricted = state.restrict_client_subjects
        && !(own_cluster && is_clusters_trustee(&state, &caller, &cluster).await?);
    let check = restricted.then(|| SubjectCheck {
        allowed_common_names: (!caller.is_admin).then(|| {
            let mut names = vec![caller.context.user_id.clone()];
            names.extend(caller.context.user_name.clone());
            if own_cluster {
                names.push(CLUSTER_ADMIN_NAME.to_string());
            }
            names
        }),
        may_use_admin_groups: caller.is_admin || own_cluster,
    });
    let settings = state.certificates.clone();
    let rules = state.signing_rules.clone();
    let signed = tokio::task::spawn_blocking(move || {
        let ca = ClusterCa::from_sealed(
            &record.certificate_pem,
            &record.private_key_sealed,
            &magnum_x509::sealing_binding(&record.cluster_uuid, &record.ca_type),
            &settings.sealer,
            &settings.x509,
        )?;
        ca.sign_csr(&csr, &rules, check.as_ref(), Utc::now())
            .map(|pem| (csr, pem))
    })
    .await
    .map_err(|error| ApiError::internal("signing a certificate", &error))?;
    let (csr, pem) = match signed {
        Ok(signed) => signed,
        Err(X509Error::Crypto(reason)) => {
            return Err(ApiError::internal("signing a certificate", &reason))
        }
        Err(X509Error::SubjectNotAllowed(reason)) => return Err(ApiError::forbidden(reason)),
        Err(refused) => return Err(ApiError::bad_request(refused.to_string())),
    };
    tracing::info!(cluster = %cluster.uuid, user = %caller.context.user_id, "signed a client certificate");
    Ok((
        StatusCode::CREATED,
        Json(json!({
            key: cluster.uuid,
            "csr": csr,
            "pem": pem,
            "links": Links { base: &base, collection: "certificates", uuid: &cluster.uuid },
        })),
    )
        .into_response())
}

async fn rotate(
    State(state): State<SharedState>,
    caller: Caller,
    Path(ident): Path<String>,
) -> Result<Response, ApiError> {
    for attempt in 0..20u64 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(2 * attempt)).await;
        }
        let mut cluster = find_cluster(&state, &caller, &ident, "Cluster").await?;
        enforce(
            &state,
            "certificate:rotate_ca",
            &caller,
            &PolicyTarget::of(&cluster.project_id, &cluster.user_id),
        )?;
        let template = state
            .database
            .cluster_templates()
            .get_by_uuid(&cluster.cluster_template_id)
            .await?;
        if template.tls_disabled {
            return Err(ApiError::bad_request(
                "Rotating the CA certificate on a non-TLS cluster is not supported",
            ));
        }
        cluster.status = lifecycle::begin(Some(cluster.status), Operation::RotateCa)?;
        cluster.status_reason = None;
        cluster.operation = Some(Operation::RotateCa);
        cluster.operation_generation += 1;
        match state.database.clusters().update(&cluster).await {
            Ok(stored) => {
                tracing::info!(cluster = %stored.uuid, "CA rotation requested");
                return Ok(
                    (StatusCode::ACCEPTED, Json(json!({"uuid": stored.uuid}))).into_response()
                );
            }
            Err(DbError::Stale) => continue,
            Err(other) => return Err(other.into()),
        }
    }
    Err(ApiError::conflict(format!(
        "The cluster {ident} is being changed by other requests; try again."
    )))
}
