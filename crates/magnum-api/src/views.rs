//! JSON representations of resources, per API generation.

use magnum_core::cluster_template::{ClusterTemplate, FieldKind, FIELDS};
use magnum_core::ApiGeneration;
use serde_json::{json, Map, Value};

/// The `links` of an item: self (with `/v1`) and bookmark (without).
pub fn links(base: &str, collection: &str, uuid: &str) -> Value {
    json!([
        {"href": format!("{base}/v1/{collection}/{uuid}"), "rel": "self"},
        {"href": format!("{base}/{collection}/{uuid}"), "rel": "bookmark"},
    ])
}

/// Attributes the 2016 plain list shows for a baymodel.
const SEED_SUMMARY: [&str; 5] = ["uuid", "name", "image_id", "apiserver_port", "coe"];

/// A cluster template as the given generation shows it; `summary` gives the 2016 plain-list
/// view (the current API lists full objects).
pub fn cluster_template(
    template: &ClusterTemplate,
    generation: ApiGeneration,
    base: &str,
    summary: bool,
) -> Value {
    let mut object = Map::new();
    for spec in FIELDS {
        if !spec.availability.includes(generation) {
            continue;
        }
        let shown = match (generation, spec.kind) {
            (_, FieldKind::Internal) => match spec.name {
                "created_at" | "updated_at" => !summary,
                "project_id" | "user_id" => generation == ApiGeneration::Current,
                _ => false,
            },
            (ApiGeneration::Seed, _) if summary => SEED_SUMMARY.contains(&spec.name),
            _ => true,
        };
        if shown {
            object.insert(spec.name.to_string(), template.field_json(spec.name));
        }
    }
    let collection = match generation {
        ApiGeneration::Seed => "baymodels",
        ApiGeneration::Current => "clustertemplates",
    };
    object.insert("links".to_string(), links(base, collection, &template.uuid));
    Value::Object(object)
}
