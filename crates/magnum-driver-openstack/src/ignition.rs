//! Ignition (spec 3.3.0) configurations for Fedora CoreOS nodes: the files a node needs at
//! first boot (its cluster's settings, the configure script) and the systemd unit that runs
//! the script once. Rendered here rather than in Heat: file contents must be data URLs,
//! which Heat's template functions cannot encode.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

/// The Ignition specification version written.
pub const IGNITION_VERSION: &str = "3.3.0";

/// One file a node gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFile {
    pub path: String,
    pub mode: u32,
    pub contents: String,
}

/// A configuration writing `files` and enabling `units` (name, unit text).
pub fn config(files: &[NodeFile], units: &[(&str, &str)]) -> Value {
    let files: Vec<Value> = files
        .iter()
        .map(|file| {
            json!({
                "path": file.path,
                "mode": file.mode,
                "overwrite": true,
                "contents": {"source": data_url(&file.contents)},
            })
        })
        .collect();
    let units: Vec<Value> = units
        .iter()
        .map(|(name, contents)| json!({"name": name, "enabled": true, "contents": contents}))
        .collect();
    json!({
        "ignition": {"version": IGNITION_VERSION},
        "storage": {"files": files},
        "systemd": {"units": units},
    })
}

/// An RFC 2397 data URL of `text`, base64-encoded.
pub fn data_url(text: &str) -> String {
    format!("data:;base64,{}", STANDARD.encode(text.as_bytes()))
}

/// A shell environment file (`KEY='value'` lines), values quoted so that the shell reads
/// them back exactly.
pub fn environment_file(values: &[(&str, String)]) -> String {
    values
        .iter()
        .map(|(key, value)| format!("{key}='{}'\n", value.replace('\'', r"'\''")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_are_base64() {
        assert_eq!(data_url(""), "data:;base64,");
        assert_eq!(data_url("f"), "data:;base64,Zg==");
        assert_eq!(data_url("fo"), "data:;base64,Zm8=");
        assert_eq!(data_url("foo"), "data:;base64,Zm9v");
        assert_eq!(data_url("hello, node\n"), "data:;base64,aGVsbG8sIG5vZGUK");
    }

    #[test]
    fn environment_values_survive_shell_quoting() {
        assert_eq!(
            environment_file(&[("A", "x y".to_string()), ("B", "it's".to_string())]),
            "A='x y'\nB='it'\\''s'\n"
        );
    }

    #[test]
    fn a_config_lists_files_and_units() {
        let config = config(
            &[NodeFile {
                path: "/etc/x".to_string(),
                mode: 0o600,
                contents: "x".to_string(),
            }],
            &[("a.service", "[Unit]\n")],
        );
        assert_eq!(config["ignition"]["version"], IGNITION_VERSION);
        assert_eq!(config["storage"]["files"][0]["mode"], 384);
        assert_eq!(config["systemd"]["units"][0]["enabled"], true);
    }
}
