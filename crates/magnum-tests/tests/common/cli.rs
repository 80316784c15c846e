//! Running the client programs (the stock `openstack` CLI of the test venv, the Rust
//! `magnum` CLI) and reading their output.

use super::{require_all, Magnumd};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The `openstack` executable of the test venv, or None (skipping) outside the full suite.
pub fn openstack() -> Option<PathBuf> {
    let venv = std::env::var("MAGNUM_TEST_VENV")
        .ok()
        .filter(|v| !v.is_empty());
    let path = venv.map(|venv| PathBuf::from(venv).join("bin/openstack"));
    match path {
        Some(path) if path.exists() => Some(path),
        _ => {
            assert!(
                !require_all(),
                "MAGNUM_TEST_VENV must name a venv with the OpenStack clients"
            );
            eprintln!("skipping: MAGNUM_TEST_VENV is not set (./scripts/test-all.sh sets it)");
            None
        }
    }
}

/// Runs a program with only the given environment (plus PATH and HOME).
pub fn run(program: &PathBuf, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut command = Command::new(program);
    command.env_clear();
    for name in ["PATH", "HOME"] {
        if let Ok(value) = std::env::var(name) {
            command.env(name, value);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.args(args).output().expect("run a client")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).to_string()
}

/// The JSON document in a client's output (after any notice lines).
pub fn json_of(output: &Output) -> Value {
    let text = stdout(output);
    let start = text
        .find(['{', '['])
        .unwrap_or_else(|| panic!("no JSON in {text:?} / {}", stderr(output)));
    serde_json::from_str(&text[start..]).unwrap_or_else(|error| panic!("{error}: {text}"))
}

pub fn password_env(magnumd: &Magnumd) -> Vec<(&'static str, String)> {
    vec![
        ("OS_AUTH_URL", magnumd.identity_url.clone().unwrap()),
        ("OS_USERNAME", "admin".to_string()),
        ("OS_PASSWORD", magnumd.admin_password.clone()),
        ("OS_PROJECT_NAME", "admin".to_string()),
        ("OS_USER_DOMAIN_NAME", "Default".to_string()),
        ("OS_PROJECT_DOMAIN_NAME", "Default".to_string()),
    ]
}
