//! Operating magnumd: configuration errors, schema commands, shutdown.

use crate::common::{binary, Magnumd};
use std::process::Command;

fn magnumd_with_config(text: &str, args: &[&str]) -> std::process::Output {
    let directory = tempfile::tempdir().unwrap();
    let config = directory.path().join("magnum.conf");
    std::fs::write(&config, text).unwrap();
    Command::new(binary("magnumd"))
        .arg("--config-file")
        .arg(&config)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn a_bad_value_stops_startup_naming_file_option_and_reason() {
    let output = magnumd_with_config("[api]\nport = ninety\n", &["serve"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("magnum.conf: [api] port: 'ninety' is not an integer"),
        "{stderr}"
    );
    let output = magnumd_with_config(
        "[database]\nconnection = oracle://db/magnum\n",
        &["db", "upgrade"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains("[database] connection: unsupported database 'oracle'"));
    let output = magnumd_with_config("[api\n", &["serve"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("magnum.conf:1: not an INI line"));
    // noauth trusts every caller, so it stays on loopback unless the operator says otherwise.
    let exposed = magnumd_with_config(
        "[api]\nauth_strategy = noauth\nhost = 0.0.0.0\n",
        &["serve"],
    );
    assert_eq!(exposed.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&exposed.stderr).contains("noauth_allow_remote"),
        "{}",
        String::from_utf8_lossy(&exposed.stderr)
    );
    let missing = Command::new(binary("magnumd"))
        .args(["--config-file", "/nonexistent/magnum.conf", "serve"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn state_is_private_and_logs_are_plain_text_off_a_terminal() {
    use std::os::unix::fs::PermissionsExt;
    let directory = tempfile::tempdir().unwrap();
    let state = directory.path().join("state");
    let config = directory.path().join("magnum.conf");
    std::fs::write(
        &config,
        format!("[DEFAULT]\nstate_path = {}\n", state.display()),
    )
    .unwrap();
    let output = Command::new(binary("magnumd"))
        .arg("--config-file")
        .arg(&config)
        .args(["db", "upgrade"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("INFO"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "colour codes in {stderr:?}");
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("magnum.sqlite")), 0o600);
}

#[test]
fn db_upgrade_and_version_report_the_schema() {
    let directory = tempfile::tempdir().unwrap();
    let config = format!("[DEFAULT]\nstate_path = {}\n", directory.path().display());
    let before = magnumd_with_config(&config, &["db", "version"]);
    assert!(before.status.success());
    assert!(
        String::from_utf8_lossy(&before.stdout).contains("applied: 0"),
        "{}",
        String::from_utf8_lossy(&before.stdout)
    );
    let upgrade = magnumd_with_config(&config, &["db", "upgrade"]);
    assert!(
        upgrade.status.success(),
        "{}",
        String::from_utf8_lossy(&upgrade.stderr)
    );
    let after = magnumd_with_config(&config, &["db", "version"]);
    let text = String::from_utf8_lossy(&after.stdout).to_string();
    let applied = text
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("applied: ")
        .to_string();
    let known = text
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches("newest known: ")
        .to_string();
    assert_eq!(applied, known);
    assert_ne!(applied, "0");
}

#[test]
fn config_sample_lists_options_and_loads_back() {
    let sample = Command::new(binary("magnumd"))
        .args(["config", "sample"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&sample.stdout).to_string();
    for option in [
        "#state_path = ./state",
        "#port = 9511",
        "#auth_strategy = builtin",
        "#port = 5000",
    ] {
        assert!(text.contains(option), "{option}");
    }
    let directory = tempfile::tempdir().unwrap();
    let reloaded = magnumd_with_config(
        &format!(
            "{text}\n[DEFAULT]\nstate_path = {}\n",
            directory.path().display()
        ),
        &["db", "version"],
    );
    assert!(
        reloaded.status.success(),
        "{}",
        String::from_utf8_lossy(&reloaded.stderr)
    );
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let mut magnumd = Magnumd::start().await;
    let admin = magnumd.admin().await;
    assert_eq!(admin.get("/v1/clustertemplates").await.status, 200);
    assert_eq!(magnumd.stop(), Some(0));
}

#[tokio::test]
async fn identity_commands_manage_users_projects_and_roles() {
    let magnumd = Magnumd::start().await;
    magnumd.add_user("carol", "project-c", &["member"]);
    let carol = magnumd.user("carol", "project-c").await;
    assert_eq!(carol.get("/v1/clustertemplates").await.status, 200);
    let duplicate = magnumd.magnumd(&[
        "identity",
        "user-create",
        "--name",
        "carol",
        "--password",
        "x",
    ]);
    assert!(!duplicate.status.success());
    assert!(String::from_utf8_lossy(&duplicate.stderr).contains("user carol already exists"));
    let change = magnumd.magnumd(&[
        "identity",
        "user-password",
        "--name",
        "carol",
        "--password",
        "new-pw",
    ]);
    assert!(change.status.success());
    assert_eq!(
        magnumd
            .password_auth("carol", "carol-pw", "project-c")
            .await
            .status,
        401
    );
    assert_eq!(
        magnumd
            .password_auth("carol", "new-pw", "project-c")
            .await
            .status,
        201
    );
    let remove = magnumd.magnumd(&[
        "identity",
        "role-remove",
        "--user",
        "carol",
        "--project",
        "project-c",
        "--role",
        "member",
    ]);
    assert!(remove.status.success());
    assert_eq!(
        magnumd
            .password_auth("carol", "new-pw", "project-c")
            .await
            .status,
        401
    );
    let users =
        String::from_utf8_lossy(&magnumd.magnumd(&["identity", "user-list"]).stdout).to_string();
    assert!(users.contains("carol") && users.contains("admin"));
}
