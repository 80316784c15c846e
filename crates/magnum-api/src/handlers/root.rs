//! The version documents: `GET /` and `GET /v1`.

use crate::request::BaseUrl;
use crate::version::{MAX_VERSION, MIN_VERSION};
use axum::Json;
use serde_json::{json, Map, Value};

/// `GET /`: the versions this API serves.
pub async fn root(BaseUrl(base): BaseUrl) -> Json<Value> {
    let link = json!([{"href": format!("{base}/v1/"), "rel": "self"}]);
    Json(json!({
        "name": "OpenStack Magnum API",
        "description": "Magnum is an OpenStack project which aims to provide container cluster management.",
        "versions": [{
            "id": "v1",
            "links": link,
            "status": "CURRENT",
            "max_version": MAX_VERSION.to_string(),
            "min_version": MIN_VERSION.to_string(),
        }],
        "default_version": {"id": "v1", "links": link},
    }))
}

/// Collections listed in the v1 document, with the path each link points at.
const COLLECTIONS: [(&str, &str); 11] = [
    ("clustertemplates", "clustertemplates"),
    ("clusters", "clusters"),
    ("quotas", "quotas"),
    ("certificates", "certificates"),
    ("mservices", "mservices"),
    ("stats", "stats"),
    ("federations", "federations"),
    ("nodegroups", "clusters/{cluster_id}/nodegroups"),
    ("credentials", "credentials"),
    ("baymodels", "baymodels"),
    ("bays", "bays"),
];

/// `GET /v1`: the v1 document with a link pair per collection.
pub async fn v1(BaseUrl(base): BaseUrl) -> Json<Value> {
    let mut document = Map::new();
    document.insert("id".to_string(), json!("v1"));
    document.insert(
        "media_types".to_string(),
        json!([{"base": "application/json", "type": "application/vnd.openstack.magnum.v1+json"}]),
    );
    document.insert(
        "links".to_string(),
        json!([
            {"href": format!("{base}/v1/"), "rel": "self"},
            {"href": "http://docs.openstack.org/developer/magnum/dev/api-spec-v1.html",
             "rel": "describedby", "type": "text/html"}
        ]),
    );
    for (name, path) in COLLECTIONS {
        document.insert(
            name.to_string(),
            json!([
                {"href": format!("{base}/v1/{path}/"), "rel": "self"},
                {"href": format!("{base}/{path}/"), "rel": "bookmark"}
            ]),
        );
    }
    Json(Value::Object(document))
}
