//! RFC 6902 patches as Magnum applies them to templates and clusters.
//!
//! Only `add`, `replace` and `remove` exist; paths are plain `/attr` or `/attr/key` segments.
//! Before applying, each operation is checked against the resource's attribute rules:
//! internal attributes are refused, mandatory ones cannot be removed, `add` cannot overwrite
//! a top-level attribute that already has a value, and unknown top-level attributes are refused.

use crate::fields::display_value;
use crate::{ApiGeneration, DomainError};
use serde_json::{Map, Value};

/// What the patched resource says about its top-level attributes.
pub trait PatchTarget {
    /// The attribute exists on the resource (in the request's API generation).
    fn is_known(&self, attribute: &str) -> bool;
    /// The attribute is set by the service and may not be patched.
    fn is_internal(&self, attribute: &str) -> bool;
    /// A `remove` of the attribute is allowed.
    fn is_removable(&self, attribute: &str) -> bool;
}

/// The three operations Magnum accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchOp {
    Add,
    Replace,
    Remove,
}

impl PatchOp {
    pub fn as_str(self) -> &'static str {
        match self {
            PatchOp::Add => "add",
            PatchOp::Replace => "replace",
            PatchOp::Remove => "remove",
        }
    }
}

/// One decoded patch operation.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchOperation {
    pub op: PatchOp,
    /// The path split into segments: `/labels/a` is `["labels", "a"]`.
    pub segments: Vec<String>,
    pub path: String,
    pub value: Option<Value>,
}

fn is_valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

/// Decodes a request body into patch operations; anything but a list of operation objects
/// is refused before any lookup.
pub fn decode_patch(body: &Value) -> Result<Vec<PatchOperation>, DomainError> {
    let Value::Array(items) = body else {
        return Err(DomainError::invalid(
            "Invalid input for field/attribute patch. The request body must be a JSON list of patch operations.",
        ));
    };
    let mut operations = Vec::with_capacity(items.len());
    for item in items {
        let Value::Object(object) = item else {
            return Err(DomainError::invalid_field(
                "patch",
                display_value(item),
                "Each patch operation must be an object with 'op' and 'path'.",
            ));
        };
        if let Some(unknown) = object
            .keys()
            .find(|key| !["op", "path", "value"].contains(&key.as_str()))
        {
            return Err(DomainError::invalid(format!(
                "Unknown attribute for argument patch: {unknown}"
            )));
        }
        let op = match object.get("op").and_then(Value::as_str) {
            Some("add") => PatchOp::Add,
            Some("replace") => PatchOp::Replace,
            Some("remove") => PatchOp::Remove,
            other => {
                return Err(DomainError::invalid_field(
                    "op",
                    other.unwrap_or("None"),
                    "Value should be one of: add, replace, remove",
                ))
            }
        };
        let path = match object.get("path") {
            Some(Value::String(path)) => path.clone(),
            other => {
                return Err(DomainError::invalid_field(
                    "path",
                    other
                        .map(display_value)
                        .unwrap_or_else(|| "None".to_string()),
                    "Mandatory field missing.",
                ))
            }
        };
        let segments: Vec<String> = path.split('/').skip(1).map(str::to_string).collect();
        if !path.starts_with('/') || !segments.iter().all(|s| is_valid_segment(s)) {
            return Err(DomainError::invalid_field(
                "path",
                &path,
                "Invalid patch path",
            ));
        }
        operations.push(PatchOperation {
            op,
            segments,
            path,
            value: object.get("value").cloned(),
        });
    }
    Ok(operations)
}

fn is_falsy(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
    }
}

fn apply_failure(operation: &PatchOperation, reason: &str) -> DomainError {
    DomainError::invalid(format!(
        "Couldn't apply patch '{{'op': '{}', 'path': '{}'}}'. Reason: {reason}",
        operation.op.as_str(),
        operation.path
    ))
}

/// Checks the operations against `target`'s rules and applies them to `document`.
pub fn apply_patch(
    document: &Value,
    operations: &[PatchOperation],
    target: &dyn PatchTarget,
    generation: ApiGeneration,
) -> Result<Value, DomainError> {
    let mut document = document.clone();
    for operation in operations {
        let attribute = operation.segments[0].as_str();
        if target.is_internal(attribute) {
            return Err(DomainError::invalid(format!(
                "'/{attribute}' is an internal attribute and can not be updated"
            )));
        }
        if !target.is_known(attribute) {
            return Err(apply_failure(
                operation,
                &format!("{attribute} is not an attribute of this resource"),
            ));
        }
        match operation.op {
            PatchOp::Remove => {
                if operation.segments.len() == 1 && !target.is_removable(attribute) {
                    return Err(DomainError::invalid(format!(
                        "'/{attribute}' is a mandatory attribute and can not be removed"
                    )));
                }
            }
            PatchOp::Add | PatchOp::Replace => {
                let missing = match (&operation.value, generation) {
                    (None, _) => true,
                    (Some(value), ApiGeneration::Seed) => is_falsy(value),
                    (Some(_), ApiGeneration::Current) => false,
                };
                if missing {
                    return Err(DomainError::invalid(
                        "'add' and 'replace' operations need a value",
                    ));
                }
            }
        }
        apply_one(&mut document, operation)?;
    }
    Ok(document)
}

fn apply_one(document: &mut Value, operation: &PatchOperation) -> Result<(), DomainError> {
    let (last, parents) = operation
        .segments
        .split_last()
        .ok_or_else(|| apply_failure(operation, "empty path"))?;
    let mut parent: &mut Value = document;
    for segment in parents {
        parent = match parent {
            Value::Object(map) => map
                .get_mut(segment)
                .ok_or_else(|| apply_failure(operation, &format!("{segment} does not exist")))?,
            _ => {
                return Err(apply_failure(
                    operation,
                    &format!("{segment} is not an object"),
                ))
            }
        };
    }
    if parent.is_null() && operation.op == PatchOp::Add && !parents.is_empty() {
        *parent = Value::Object(Map::new());
    }
    let Value::Object(map) = parent else {
        return Err(apply_failure(operation, "the target is not an object"));
    };
    let is_top_level = parents.is_empty();
    match operation.op {
        PatchOp::Add => {
            if is_top_level && map.get(last).is_some_and(|value| !value.is_null()) {
                return Err(DomainError::invalid(format!(
                    "Couldn't apply patch: the attribute /{last} already has a value, please use 'replace' to change it"
                )));
            }
            map.insert(last.clone(), operation.value.clone().unwrap_or(Value::Null));
        }
        PatchOp::Replace => {
            if !map.contains_key(last) {
                return Err(apply_failure(
                    operation,
                    &format!("can't replace non-existent object '{last}'"),
                ));
            }
            map.insert(last.clone(), operation.value.clone().unwrap_or(Value::Null));
        }
        PatchOp::Remove => {
            if is_top_level {
                if !map.contains_key(last) {
                    return Err(apply_failure(
                        operation,
                        &format!("can't remove non-existent object '{last}'"),
                    ));
                }
                map.insert(last.clone(), Value::Null);
            } else if map.remove(last).is_none() {
                return Err(apply_failure(
                    operation,
                    &format!("can't remove non-existent object '{last}'"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Sample;

    impl PatchTarget for Sample {
        fn is_known(&self, attribute: &str) -> bool {
            ["name", "labels", "coe", "flavor_id", "uuid"].contains(&attribute)
        }
        fn is_internal(&self, attribute: &str) -> bool {
            attribute == "uuid"
        }
        fn is_removable(&self, attribute: &str) -> bool {
            attribute != "coe"
        }
    }

    fn apply(document: Value, patch: Value) -> Result<Value, DomainError> {
        let operations = decode_patch(&patch)?;
        apply_patch(&document, &operations, &Sample, ApiGeneration::Current)
    }

    fn document() -> Value {
        json!({"name": "a", "labels": {"x": "1"}, "coe": "swarm", "flavor_id": null})
    }

    #[test]
    fn replace_add_and_remove_follow_the_rfc() {
        let patched = apply(
            document(),
            json!([
                {"op": "replace", "path": "/name", "value": "b"},
                {"op": "add", "path": "/labels/y", "value": "2"},
                {"op": "remove", "path": "/labels/x"},
                {"op": "add", "path": "/flavor_id", "value": "m1.small"}
            ]),
        )
        .unwrap();
        assert_eq!(
            patched,
            json!({"name": "b", "labels": {"y": "2"}, "coe": "swarm", "flavor_id": "m1.small"})
        );
    }

    #[test]
    fn removing_a_top_level_attribute_sets_it_to_null() {
        let patched = apply(document(), json!([{"op": "remove", "path": "/name"}])).unwrap();
        assert_eq!(patched["name"], Value::Null);
    }

    #[test]
    fn rules_are_enforced() {
        let cases = [
            (json!({"op": "replace"}), "Mandatory field missing"),
            (
                json!([{"op": "move", "path": "/name"}]),
                "add, replace, remove",
            ),
            (
                json!([{"op": "replace", "path": "name", "value": 1}]),
                "Invalid patch path",
            ),
            (
                json!([{"op": "replace", "path": "/uuid", "value": "x"}]),
                "internal attribute",
            ),
            (
                json!([{"op": "remove", "path": "/coe"}]),
                "can not be removed",
            ),
            (json!([{"op": "replace", "path": "/name"}]), "need a value"),
            (
                json!([{"op": "add", "path": "/name", "value": "x"}]),
                "please use 'replace'",
            ),
            (
                json!([{"op": "add", "path": "/colour", "value": "x"}]),
                "not an attribute",
            ),
            (
                json!([{"op": "remove", "path": "/labels/missing"}]),
                "non-existent",
            ),
            (json!({"name": "x"}), "JSON list"),
        ];
        for (patch, expected) in cases {
            let wrapped = if patch.is_object() && patch.get("op").is_some() {
                json!([patch])
            } else {
                patch.clone()
            };
            let error = apply(document(), wrapped).unwrap_err();
            assert!(
                error.message.contains(expected),
                "{patch}: {} does not mention {expected}",
                error.message
            );
        }
    }

    #[test]
    fn seed_treats_falsy_values_as_missing() {
        let operations =
            decode_patch(&json!([{"op": "replace", "path": "/flavor_id", "value": ""}])).unwrap();
        assert!(apply_patch(&document(), &operations, &Sample, ApiGeneration::Seed).is_err());
        assert!(apply_patch(&document(), &operations, &Sample, ApiGeneration::Current).is_ok());
    }
}
