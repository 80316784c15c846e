//! The local Docker engine that the docker provider builds clusters on, seen from the
//! tests: is it there, what carries a cluster's label, and the stock `docker` CLI pointed
//! either at the local engine or (with `cluster-config`'s environment) at a cluster.

use super::{binary, require_all};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

/// The label every container, volume and network of a cluster carries.
pub const CLUSTER_LABEL: &str = "org.openstack.magnum.cluster";

/// The node image the templates of these tests use (`[docker] node_image`'s default).
pub const NODE_IMAGE: &str = "magnum-node:bookworm";

/// A tiny workload image (static busybox) the tests load into cluster nodes; no registry is
/// reachable from these machines.
pub const WORKLOAD_IMAGE: &str = "magnum-test/busybox:1";

/// The `docker` CLI on the local engine, whatever DOCKER_* variables the caller has.
pub fn local_docker(args: &[&str]) -> Output {
    Command::new("docker")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CONTEXT")
        .args(args)
        .output()
        .expect("run the docker CLI")
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn succeeded(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}{}",
        text(output),
        String::from_utf8_lossy(&output.stderr)
    );
    text(output)
}

static NODE_IMAGE_READY: Mutex<bool> = Mutex::new(false);

/// True when a Docker engine answers and the node image is ready (built now if needed,
/// from the cached debootstrap tarball when there is one). Without an engine the test is
/// skipped, except under the README's test command, where it fails.
pub fn engine_ready() -> bool {
    let answers = Command::new("docker")
        .env_remove("DOCKER_HOST")
        .args(["version", "--format", "{{.Server.Version}}"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !answers {
        assert!(
            !require_all(),
            "no Docker engine answers; ./scripts/test-all.sh installs and starts one"
        );
        eprintln!("skipping: no Docker engine answers (./scripts/test-all.sh starts one)");
        return false;
    }
    let mut ready = NODE_IMAGE_READY.lock().unwrap_or_else(|e| e.into_inner());
    if !*ready {
        let built = Command::new(binary("magnumd"))
            .args(["node-image", "build"])
            .env("RUST_LOG", "warn")
            .output()
            .expect("run magnumd node-image build");
        succeeded(&built, "magnumd node-image build");
        *ready = true;
    }
    true
}

/// Everything on the local engine labelled with the cluster's uuid, as "kind name" lines.
pub fn labelled_resources(uuid: &str) -> Vec<String> {
    let filter = format!("label={CLUSTER_LABEL}={uuid}");
    let mut found = Vec::new();
    for (kind, args) in [
        (
            "container",
            vec!["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
        ),
        (
            "volume",
            vec!["volume", "ls", "--filter", &filter, "--format", "{{.Name}}"],
        ),
        (
            "network",
            vec![
                "network",
                "ls",
                "--filter",
                &filter,
                "--format",
                "{{.Name}}",
            ],
        ),
    ] {
        let output = local_docker(&args);
        for name in succeeded(&output, "listing labelled resources").lines() {
            if !name.trim().is_empty() {
                found.push(format!("{kind} {}", name.trim()));
            }
        }
    }
    found
}

/// The names of the cluster's node containers that are running.
pub fn running_nodes(uuid: &str) -> Vec<String> {
    let filter = format!("label={CLUSTER_LABEL}={uuid}");
    let output = local_docker(&["ps", "--filter", &filter, "--format", "{{.Names}}"]);
    let mut names: Vec<String> = succeeded(&output, "listing node containers")
        .lines()
        .map(str::to_string)
        .filter(|name| !name.is_empty())
        .collect();
    names.sort();
    names
}

static WORKLOAD_IMAGE_READY: Mutex<bool> = Mutex::new(false);

/// Builds the workload image on the local engine once (from the host's static busybox).
pub fn ensure_workload_image() {
    let mut ready = WORKLOAD_IMAGE_READY
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if *ready {
        return;
    }
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.exists(),
        "/bin/busybox is missing; install Debian's busybox-static (./scripts/test-all.sh does)"
    );
    let root = tempfile::tempdir().expect("workload root");
    std::fs::create_dir_all(root.path().join("bin")).expect("bin directory");
    std::fs::copy(busybox, root.path().join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "sleep", "ping", "hostname", "cat"] {
        std::os::unix::fs::symlink("busybox", root.path().join("bin").join(applet))
            .expect("applet link");
    }
    let command = format!(
        "tar -C {} -c . | docker import --change 'CMD [\"/bin/sh\"]' - {WORKLOAD_IMAGE}",
        root.path().display()
    );
    let imported = Command::new("sh")
        .args(["-c", &command])
        .env_remove("DOCKER_HOST")
        .output()
        .expect("import the workload image");
    succeeded(&imported, "importing the workload image");
    *ready = true;
}

/// Loads the workload image into every running node of the cluster (`docker save` on the
/// local engine piped into `docker load` inside each node).
pub fn load_workload_image(uuid: &str) {
    ensure_workload_image();
    for node in running_nodes(uuid) {
        let command = format!("docker save {WORKLOAD_IMAGE} | docker exec -i {node} docker load");
        let loaded = Command::new("sh")
            .args(["-c", &command])
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("DOCKER_TLS_VERIFY")
            .output()
            .expect("load the workload image");
        succeeded(&loaded, &format!("loading the workload image into {node}"));
    }
}

/// The `export NAME=value` (or `setenv NAME value`) lines `cluster-config` prints.
pub fn exported_environment(printed: &str) -> Vec<(String, String)> {
    printed
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("export ") {
                let (name, value) = rest.split_once('=')?;
                Some((name.to_string(), value.to_string()))
            } else {
                let rest = line.strip_prefix("setenv ")?;
                let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
                Some((name.to_string(), value.to_string()))
            }
        })
        .collect()
}

/// The stock `docker` CLI with the given environment (from `cluster-config`) and nothing
/// else of the caller's DOCKER_* variables.
pub fn cluster_docker(environment: &[(String, String)], args: &[&str]) -> Output {
    let mut command = Command::new("docker");
    command
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CONTEXT");
    for (name, value) in environment {
        if !value.is_empty() {
            command.env(name, value);
        }
    }
    command.args(args).output().expect("run the docker CLI")
}

/// `docker node ls` through the cluster endpoint: (hostname, status) pairs.
pub fn swarm_nodes(environment: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    let output = cluster_docker(
        environment,
        &["node", "ls", "--format", "{{.Hostname}} {{.Status}}"],
    );
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).to_string());
    }
    let mut nodes: Vec<(String, String)> = text(&output)
        .lines()
        .filter_map(|line| {
            let (host, status) = line.split_once(' ')?;
            Some((host.to_string(), status.to_string()))
        })
        .collect();
    nodes.sort();
    Ok(nodes)
}

/// Removes, when dropped, whatever the local engine still holds of the clusters a test
/// created, so a failing test does not leave containers behind. It touches only resources
/// labelled with the uuids it was given.
#[derive(Debug, Default)]
pub struct Janitor {
    uuids: Mutex<Vec<String>>,
}

impl Janitor {
    pub fn track(&self, uuid: &str) {
        self.uuids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(uuid.to_string());
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        let uuids = std::mem::take(&mut *self.uuids.lock().unwrap_or_else(|e| e.into_inner()));
        for uuid in uuids {
            let leftovers = labelled_resources(&uuid);
            if leftovers.is_empty() {
                continue;
            }
            eprintln!("removing what a test left of cluster {uuid}: {leftovers:?}");
            for item in &leftovers {
                if let Some(name) = item.strip_prefix("container ") {
                    local_docker(&["rm", "-f", "-v", name]);
                }
            }
            for item in &leftovers {
                if let Some(name) = item.strip_prefix("volume ") {
                    local_docker(&["volume", "rm", "-f", name]);
                }
                if let Some(name) = item.strip_prefix("network ") {
                    local_docker(&["network", "rm", name]);
                }
            }
        }
    }
}
