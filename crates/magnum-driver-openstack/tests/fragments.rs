//! What the drivers put on nodes passes the checks of the tools made for it: every shell
//! fragment `shellcheck` (Debian's package, installed by the README's test command), every
//! cloud-config `cloud-init schema`, every Ignition configuration `ignition-validate` (both
//! unpacked from Debian's packages by the test command). Without a tool its test is
//! skipped, unless `MAGNUM_TEST_REQUIRE_ALL=1` makes that a failure.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

fn shell_fragments(directory: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            shell_fragments(&path, found);
        } else if path.extension().is_some_and(|extension| extension == "sh") {
            found.push(path);
        }
    }
}

#[test]
fn every_shell_fragment_passes_shellcheck() {
    let templates = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut fragments = Vec::new();
    shell_fragments(&templates, &mut fragments);
    assert!(
        !fragments.is_empty(),
        "no fragments under {}",
        templates.display()
    );
    let version = std::process::Command::new("shellcheck")
        .arg("--version")
        .output();
    if version.is_err() {
        assert!(
            std::env::var("MAGNUM_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
            "shellcheck is not installed"
        );
        eprintln!("skipped: shellcheck is not installed");
        return;
    }
    for fragment in fragments {
        let checked = std::process::Command::new("shellcheck")
            .arg("--severity=style")
            .arg(&fragment)
            .output()
            .unwrap();
        assert!(
            checked.status.success(),
            "{}:\n{}",
            fragment.display(),
            String::from_utf8_lossy(&checked.stdout)
        );
    }
}

/// cloud-init's own schema check (`cloud-init schema`, from Debian's cloud-init package
/// that the test command unpacks into `MAGNUM_TEST_CLOUD_INIT`) of the cloud-config every
/// cloud-init driver renders, over the variants that change it.
#[test]
fn every_cloud_config_passes_cloud_inits_schema() {
    use magnum_driver::test_doubles::sample_spec;
    use magnum_driver_openstack::definition::NodeAccess;

    let Some(cloud_init) = std::env::var_os("MAGNUM_TEST_CLOUD_INIT") else {
        assert!(
            std::env::var("MAGNUM_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
            "MAGNUM_TEST_CLOUD_INIT does not name an unpacked cloud-init"
        );
        eprintln!("skipped: MAGNUM_TEST_CLOUD_INIT is not set");
        return;
    };
    let cloud_init = PathBuf::from(cloud_init);
    let access = NodeAccess {
        magnum_url: "http://127.0.0.1:9511/v1".to_string(),
        auth_url: "http://127.0.0.1:5000/v3".to_string(),
        region_name: "RegionOne".to_string(),
        trustee_user_id: "trustee".to_string(),
        trustee_username: "trustee-name".to_string(),
        trustee_password: magnum_config::Secret::new("it's 'quoted'"),
        trust_id: "trust".to_string(),
        cluster_user_trust: false,
    };
    let directory = tempfile::tempdir().unwrap();
    let mut plain = sample_spec(2, &[]);
    plain.discovery_url = Some("http://127.0.0.1:9511/v1/discovery/0123".to_string());
    let mut proxied = plain.clone();
    proxied.network.http_proxy = Some("http://proxy:3128".to_string());
    proxied.docker_volume_size = Some(10);
    proxied.tls_disabled = true;
    for (index, spec) in [plain, proxied].iter().enumerate() {
        let rendered = magnum_driver_openstack::k8s_fedora_atomic::render(spec, &access).unwrap();
        for key in ["master_user_data", "minion_user_data"] {
            let path = directory.path().join(format!("{index}-{key}.yaml"));
            std::fs::write(&path, rendered.parameters[key].as_str().unwrap()).unwrap();
            let checked = std::process::Command::new(cloud_init.join("venv/bin/python"))
                .env(
                    "PYTHONPATH",
                    cloud_init.join("root/usr/lib/python3/dist-packages"),
                )
                .args([
                    "-c",
                    "import sys; from cloudinit.cmd.main import main; sys.exit(main())",
                    "schema",
                    "--config-file",
                ])
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                checked.status.success(),
                "{}: {}{}",
                path.display(),
                String::from_utf8_lossy(&checked.stdout),
                String::from_utf8_lossy(&checked.stderr)
            );
        }
    }
}

/// Ignition's own validator (`ignition-validate`, from Debian's ignition package that the
/// test command unpacks; `MAGNUM_TEST_IGNITION_VALIDATE` names it) accepts the Ignition
/// configuration of every Fedora CoreOS node, over the variants that change it.
#[test]
fn every_ignition_config_passes_ignition_validate() {
    use magnum_driver::test_doubles::sample_spec;
    use magnum_driver_openstack::definition::NodeAccess;

    let Some(validator) = std::env::var_os("MAGNUM_TEST_IGNITION_VALIDATE") else {
        assert!(
            std::env::var("MAGNUM_TEST_REQUIRE_ALL").as_deref() != Ok("1"),
            "MAGNUM_TEST_IGNITION_VALIDATE does not name ignition-validate"
        );
        eprintln!("skipped: MAGNUM_TEST_IGNITION_VALIDATE is not set");
        return;
    };
    let access = NodeAccess {
        magnum_url: "http://127.0.0.1:9511/v1".to_string(),
        auth_url: "http://127.0.0.1:5000/v3".to_string(),
        region_name: "RegionOne".to_string(),
        trustee_user_id: "trustee".to_string(),
        trustee_username: "trustee-name".to_string(),
        trustee_password: magnum_config::Secret::new("it's 'quoted'"),
        trust_id: "trust".to_string(),
        cluster_user_trust: false,
    };
    let directory = tempfile::tempdir().unwrap();
    let plain = sample_spec(2, &[]);
    let mut changed = plain.clone();
    changed.network.https_proxy = Some("http://proxy:3128".to_string());
    changed.network.network_driver = Some("calico".to_string());
    changed.tls_disabled = true;
    for (index, spec) in [plain, changed].iter().enumerate() {
        let rendered = magnum_driver_openstack::k8s_fedora_coreos::render(spec, &access).unwrap();
        for key in ["master_user_data", "minion_user_data"] {
            let path = directory.path().join(format!("{index}-{key}.ign"));
            std::fs::write(&path, rendered.parameters[key].as_str().unwrap()).unwrap();
            let checked = std::process::Command::new(&validator)
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                checked.status.success(),
                "{}: {}{}",
                path.display(),
                String::from_utf8_lossy(&checked.stdout),
                String::from_utf8_lossy(&checked.stderr)
            );
        }
    }
}
