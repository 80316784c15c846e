//! Every shell fragment the drivers put on nodes passes `shellcheck` (Debian's package; the
//! README's test command installs it). Without shellcheck the test is skipped, unless
//! `MAGNUM_TEST_REQUIRE_ALL=1` makes that a failure.

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
