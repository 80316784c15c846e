//! cloud-config documents for nodes whose image runs cloud-init (the seed's Fedora Atomic
//! and Ubuntu images): the files a node needs at first boot and the command that configures
//! it. Written as JSON after the `#cloud-config` line — JSON is YAML, so cloud-init reads it,
//! and no YAML is assembled from strings here.

use crate::ignition::NodeFile;
use serde_json::{json, Value};

/// The document writing `files` and then running `commands` (each an argument vector).
pub fn document(files: &[NodeFile], commands: &[&[&str]]) -> Value {
    let files: Vec<Value> = files
        .iter()
        .map(|file| {
            json!({
                "path": file.path,
                "permissions": format!("{:04o}", file.mode),
                "owner": "root:root",
                "content": file.contents,
            })
        })
        .collect();
    json!({"write_files": files, "runcmd": commands})
}

/// The user data of `document`: the `#cloud-config` header, then the document.
pub fn user_data(document: &Value) -> String {
    let body = serde_json::to_string_pretty(document).unwrap_or_else(|_| "{}".to_string());
    format!("#cloud-config\n{body}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_keep_their_modes_and_commands_run_in_order() {
        let document = document(
            &[NodeFile {
                path: "/etc/sysconfig/heat-params".to_string(),
                mode: 0o600,
                contents: "A='1'\n".to_string(),
            }],
            &[&["/usr/local/bin/configure", "--now"]],
        );
        let text = user_data(&document);
        assert!(text.starts_with("#cloud-config\n{"));
        let parsed: Value =
            serde_json::from_str(text.trim_start_matches("#cloud-config\n")).unwrap_or_default();
        assert_eq!(parsed["write_files"][0]["permissions"], "0600");
        assert_eq!(parsed["write_files"][0]["content"], "A='1'\n");
        assert_eq!(parsed["runcmd"][0][1], "--now");
    }
}
