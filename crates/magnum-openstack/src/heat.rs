//! Heat's orchestration API (v1) as a client: create a stack from a template, its files and
//! environment; read its status, outputs and resources; update it with PATCH semantics
//! (parameters not given keep their values); delete it.

use crate::keystone::path_segment;
use crate::service_api::ServiceApi;
use crate::OpenStackError;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const SERVICE: &str = "heat";

/// The most resources read back from one stack.
const MAX_RESOURCES: usize = 10_000;

/// A stack to create.
#[derive(Debug, Clone, PartialEq)]
pub struct StackCreate {
    pub name: String,
    /// The template (HOT) as text.
    pub template: String,
    /// Files the template refers to (`get_file`, nested template types), by name.
    pub files: BTreeMap<String, String>,
    /// The environment (resource registry, parameter defaults) as text.
    pub environment: Option<String>,
    pub parameters: Map<String, Value>,
    /// Heat fails the create after this many minutes.
    pub timeout_mins: Option<u32>,
    /// Tags to find the stack by later ([`Heat::list_tagged`]); none may hold a comma.
    pub tags: Vec<String>,
}

/// A change to a stack: parameters not named keep their values (PATCH).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StackUpdate {
    pub parameters: Map<String, Value>,
    /// A new template with its files and environment, or None to keep the current ones.
    pub template: Option<String>,
    pub files: BTreeMap<String, String>,
    pub environment: Option<String>,
    pub timeout_mins: Option<u32>,
}

/// Where a stack is: Heat names a stack by name and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRef {
    pub name: String,
    pub id: String,
}

impl StackRef {
    fn path(&self) -> String {
        format!(
            "/stacks/{}/{}",
            path_segment(&self.name),
            path_segment(&self.id)
        )
    }
}

/// The state part of a stack or resource status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackState {
    InProgress,
    Complete,
    Failed,
}

/// A status as Heat writes it: `<ACTION>_<STATE>`, as `CREATE_IN_PROGRESS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackStatus {
    pub action: String,
    pub state: StackState,
}

impl StackStatus {
    pub fn parse(text: &str) -> Option<StackStatus> {
        let (action, state) = [
            ("_IN_PROGRESS", StackState::InProgress),
            ("_COMPLETE", StackState::Complete),
            ("_FAILED", StackState::Failed),
        ]
        .into_iter()
        .find_map(|(suffix, state)| text.strip_suffix(suffix).map(|action| (action, state)))?;
        (!action.is_empty()).then(|| StackStatus {
            action: action.to_string(),
            state,
        })
    }
}

impl std::fmt::Display for StackStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            StackState::InProgress => "IN_PROGRESS",
            StackState::Complete => "COMPLETE",
            StackState::Failed => "FAILED",
        };
        write!(f, "{}_{state}", self.action)
    }
}

/// A stack as Heat shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stack {
    pub reference: StackRef,
    pub status: StackStatus,
    pub status_reason: Option<String>,
    /// Outputs by key (present once the stack has been created).
    pub outputs: BTreeMap<String, Value>,
    pub parameters: Map<String, Value>,
}

/// A stack as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedStack {
    pub reference: StackRef,
    pub status: StackStatus,
}

/// The most stacks read from one listing by tag.
pub const MAX_TAGGED_STACKS: usize = 1000;

/// One resource of a stack (or of a nested stack).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StackResource {
    #[serde(rename = "resource_name")]
    pub name: String,
    #[serde(rename = "resource_type")]
    pub resource_type: String,
    #[serde(rename = "resource_status")]
    pub status: String,
    #[serde(rename = "resource_status_reason", default)]
    pub status_reason: Option<String>,
    #[serde(rename = "physical_resource_id", default)]
    pub physical_id: Option<String>,
    /// The resource whose nested stack holds this one.
    #[serde(rename = "parent_resource", default)]
    pub parent: Option<String>,
}

/// Heat's API for one project (the endpoint from the catalog, project filled in).
#[derive(Debug, Clone)]
pub struct Heat {
    api: ServiceApi,
}

impl Heat {
    pub fn new(http: reqwest::Client, endpoint: &str) -> Heat {
        Heat {
            api: ServiceApi::new(http, endpoint, SERVICE),
        }
    }

    async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<reqwest::Response, OpenStackError> {
        self.api.call(token, method, path, body).await
    }

    /// Creates a stack (Heat builds it in the background); never rolls back on failure, so
    /// that the failed resource's reason can be read.
    pub async fn create(
        &self,
        token: &str,
        stack: &StackCreate,
    ) -> Result<StackRef, OpenStackError> {
        let mut body = json!({
            "stack_name": stack.name,
            "template": stack.template,
            "files": stack.files,
            "parameters": stack.parameters,
            "disable_rollback": true,
        });
        if let Some(environment) = &stack.environment {
            body["environment"] = Value::String(environment.clone());
        }
        if let Some(minutes) = stack.timeout_mins {
            body["timeout_mins"] = json!(minutes);
        }
        if !stack.tags.is_empty() {
            body["tags"] = Value::String(stack.tags.join(","));
        }
        let answer = self
            .api
            .json(
                self.call(token, reqwest::Method::POST, "/stacks", Some(body))
                    .await?,
            )
            .await?;
        let id = answer
            .pointer("/stack/id")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                OpenStackError::Malformed("Heat created a stack without an id".into())
            })?;
        Ok(StackRef {
            name: stack.name.clone(),
            id: id.to_string(),
        })
    }

    /// The stack, or None when Heat does not know it.
    pub async fn get(
        &self,
        token: &str,
        stack: &StackRef,
    ) -> Result<Option<Stack>, OpenStackError> {
        let response = match self
            .call(token, reqwest::Method::GET, &stack.path(), None)
            .await
        {
            Ok(response) => response,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(error) => return Err(error),
        };
        let answer = self.api.json(response).await?;
        parse_stack(answer.get("stack").unwrap_or(&Value::Null)).map(Some)
    }

    /// The stack named `name` (Heat answers a look-up by name with the stack's full
    /// address), or None when Heat knows no stack of that name.
    pub async fn get_by_name(
        &self,
        token: &str,
        name: &str,
    ) -> Result<Option<Stack>, OpenStackError> {
        let path = format!("/stacks/{}", path_segment(name));
        let response = match self.call(token, reqwest::Method::GET, &path, None).await {
            Ok(response) => response,
            Err(error) if error.is_not_found() => return Ok(None),
            Err(error) => return Err(error),
        };
        let answer = self.api.json(response).await?;
        parse_stack(answer.get("stack").unwrap_or(&Value::Null)).map(Some)
    }

    /// The stacks carrying `tag` (deleted ones are not listed), at most
    /// [`MAX_TAGGED_STACKS`].
    pub async fn list_tagged(
        &self,
        token: &str,
        tag: &str,
    ) -> Result<Vec<TaggedStack>, OpenStackError> {
        let path = format!(
            "/stacks?tags={}&limit={MAX_TAGGED_STACKS}",
            crate::keystone::query_value(tag)
        );
        let answer = self
            .api
            .json(self.call(token, reqwest::Method::GET, &path, None).await?)
            .await?;
        let stacks = answer
            .get("stacks")
            .and_then(Value::as_array)
            .ok_or_else(|| OpenStackError::Malformed("Heat listed no stacks array".into()))?;
        stacks
            .iter()
            .take(MAX_TAGGED_STACKS)
            .map(|stack| {
                let text = |key: &str| {
                    stack.get(key).and_then(Value::as_str).ok_or_else(|| {
                        OpenStackError::Malformed(format!("Heat listed a stack without {key}"))
                    })
                };
                let status_text = text("stack_status")?;
                Ok(TaggedStack {
                    reference: StackRef {
                        name: text("stack_name")?.to_string(),
                        id: text("id")?.to_string(),
                    },
                    status: StackStatus::parse(status_text).ok_or_else(|| {
                        OpenStackError::Malformed(format!(
                            "Heat listed a stack with the status {status_text:?}"
                        ))
                    })?,
                })
            })
            .collect()
    }

    /// Updates a stack: given parameters change, the others keep their values.
    pub async fn update(
        &self,
        token: &str,
        stack: &StackRef,
        update: &StackUpdate,
    ) -> Result<(), OpenStackError> {
        let mut body = json!({ "parameters": update.parameters });
        if let Some(template) = &update.template {
            body["template"] = Value::String(template.clone());
            body["files"] = json!(update.files);
        }
        if let Some(environment) = &update.environment {
            body["environment"] = Value::String(environment.clone());
        }
        if let Some(minutes) = update.timeout_mins {
            body["timeout_mins"] = json!(minutes);
        }
        self.call(token, reqwest::Method::PATCH, &stack.path(), Some(body))
            .await?;
        Ok(())
    }

    /// Starts deleting a stack; a stack Heat does not know is already gone.
    pub async fn delete(&self, token: &str, stack: &StackRef) -> Result<(), OpenStackError> {
        match self
            .call(token, reqwest::Method::DELETE, &stack.path(), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.is_not_found() => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// The stack's resources, nested stacks' resources too down to `nested_depth`.
    pub async fn resources(
        &self,
        token: &str,
        stack: &StackRef,
        nested_depth: u8,
    ) -> Result<Vec<StackResource>, OpenStackError> {
        let path = format!("{}/resources?nested_depth={nested_depth}", stack.path());
        let answer = self
            .api
            .json(self.call(token, reqwest::Method::GET, &path, None).await?)
            .await?;
        let resources = answer
            .get("resources")
            .and_then(Value::as_array)
            .ok_or_else(|| OpenStackError::Malformed("Heat listed no resources array".into()))?;
        resources
            .iter()
            .take(MAX_RESOURCES)
            .map(|resource| {
                serde_json::from_value(resource.clone()).map_err(|error| {
                    OpenStackError::Malformed(format!(
                        "Heat listed an unreadable resource: {error}"
                    ))
                })
            })
            .collect()
    }

    /// Why a stack failed, in the words of its failed resources when Heat says which
    /// (`name: reason; …`), else the stack's own reason.
    pub async fn failure_reason(
        &self,
        token: &str,
        stack: &Stack,
    ) -> Result<Option<String>, OpenStackError> {
        let resources = self.resources(token, &stack.reference, 5).await?;
        let failed: Vec<String> = resources
            .iter()
            .filter(|resource| resource.status.ends_with("_FAILED"))
            // A group fails because a member failed: name the member, not the group too.
            .filter(|resource| {
                !resources.iter().any(|other| {
                    other.parent.as_deref() == Some(resource.name.as_str())
                        && other.status.ends_with("_FAILED")
                })
            })
            .map(|resource| {
                format!(
                    "{}: {}",
                    resource.name,
                    resource
                        .status_reason
                        .as_deref()
                        .unwrap_or(&resource.status)
                )
            })
            .collect();
        if failed.is_empty() {
            Ok(stack.status_reason.clone())
        } else {
            Ok(Some(failed.join("; ")))
        }
    }
}

fn parse_stack(stack: &Value) -> Result<Stack, OpenStackError> {
    let text = |key: &str| stack.get(key).and_then(Value::as_str);
    let malformed = |what: &str| OpenStackError::Malformed(format!("Heat showed a stack {what}"));
    let status_text = text("stack_status").ok_or_else(|| malformed("without a status"))?;
    let status = StackStatus::parse(status_text)
        .ok_or_else(|| malformed(&format!("with the status {status_text:?}")))?;
    let outputs = stack
        .get("outputs")
        .and_then(Value::as_array)
        .map(|outputs| {
            outputs
                .iter()
                .filter_map(|output| {
                    let key = output.get("output_key")?.as_str()?.to_string();
                    let value = output.get("output_value").cloned().unwrap_or(Value::Null);
                    Some((key, value))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Stack {
        reference: StackRef {
            name: text("stack_name")
                .ok_or_else(|| malformed("without a name"))?
                .to_string(),
            id: text("id")
                .ok_or_else(|| malformed("without an id"))?
                .to_string(),
        },
        status,
        status_reason: text("stack_status_reason").map(str::to_string),
        outputs,
        parameters: stack
            .get("parameters")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_split_into_action_and_state() {
        let status = StackStatus::parse("CREATE_IN_PROGRESS").unwrap();
        assert_eq!(status.action, "CREATE");
        assert_eq!(status.state, StackState::InProgress);
        assert_eq!(status.to_string(), "CREATE_IN_PROGRESS");
        assert_eq!(
            StackStatus::parse("ROLLBACK_FAILED").unwrap().state,
            StackState::Failed
        );
        assert_eq!(
            StackStatus::parse("CHECK_COMPLETE").unwrap().action,
            "CHECK"
        );
        assert_eq!(StackStatus::parse("_COMPLETE"), None);
        assert_eq!(StackStatus::parse("CREATED"), None);
    }

    #[test]
    fn a_stack_body_is_read_with_its_outputs() {
        let stack = parse_stack(&json!({
            "id": "s1", "stack_name": "k8s-abc", "stack_status": "CREATE_COMPLETE",
            "stack_status_reason": "Stack CREATE completed successfully",
            "outputs": [{"output_key": "api_address", "output_value": "10.0.0.5"},
                        {"output_key": "kube_masters", "output_value": ["10.0.0.5"]}],
            "parameters": {"number_of_minions": "2"}}))
        .unwrap();
        assert_eq!(stack.reference.path(), "/stacks/k8s-abc/s1");
        assert_eq!(stack.outputs["api_address"], json!("10.0.0.5"));
        assert_eq!(stack.parameters["number_of_minions"], json!("2"));
        assert!(
            parse_stack(&json!({"id": "s1", "stack_name": "x", "stack_status": "BAD"})).is_err()
        );
    }
}
