//! The node image: Debian with docker.io, built with debootstrap and imported into the local
//! engine. The .deb files and the root filesystem tarball are kept in a cache directory, so a
//! rebuild after the image was removed takes seconds; an existing image is used as it is.

use crate::{DockerSettings, LocalEngine};
use bollard::query_parameters::CreateImageOptions;
use futures::StreamExt;
use magnum_driver::DriverError;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::process::Command;

/// The node's entrypoint, copied into the image.
pub const NODE_INIT: &str = include_str!("../node/magnum-node-init");

/// Packages of the node image (beyond debootstrap's minimal base).
pub const PACKAGES: &str = "docker.io,iproute2,ca-certificates,openssl,iptables,procps,tini";

/// Files a node never uses, removed to keep the image small.
const REMOVED_PATHS: [&str; 9] = [
    "usr/share/doc",
    "usr/share/man",
    "usr/share/locale",
    "usr/share/info",
    "var/lib/apt/lists",
    "var/cache/apt",
    "usr/bin/ctr",
    "usr/bin/containerd-shim",
    "usr/bin/containerd-shim-runc-v1",
];

fn permanent(context: &str, error: impl std::fmt::Display) -> DriverError {
    DriverError::Permanent(format!("{context}: {error}"))
}

async fn run(command: &mut Command, what: &str) -> Result<(), DriverError> {
    let output = command
        .output()
        .await
        .map_err(|error| permanent(&format!("cannot run {what}"), error))?;
    if output.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        Err(DriverError::Permanent(format!(
            "{what} failed ({}): {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" / ")
        )))
    }
}

/// The cached root filesystem tarball for the configured suite.
pub fn tarball_path(settings: &DockerSettings) -> PathBuf {
    settings
        .image_cache_dir
        .join(format!("magnum-node-{}-rootfs.tar", settings.debian_suite))
}

/// Builds the root filesystem tarball with debootstrap unless it is cached.
pub async fn build_rootfs_tarball(settings: &DockerSettings) -> Result<PathBuf, DriverError> {
    let tarball = tarball_path(settings);
    if tarball.exists() {
        return Ok(tarball);
    }
    let cache = &settings.image_cache_dir;
    let debs = cache.join("debs");
    let root = cache.join("rootfs.building");
    tokio::fs::create_dir_all(&debs)
        .await
        .map_err(|error| permanent(&format!("cannot create {}", debs.display()), error))?;
    if root.exists() {
        tokio::fs::remove_dir_all(&root)
            .await
            .map_err(|error| permanent(&format!("cannot clear {}", root.display()), error))?;
    }
    tracing::info!(suite = %settings.debian_suite, mirror = %settings.debian_mirror, "building the node image root filesystem with debootstrap");
    run(
        Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={PACKAGES}"))
            .arg(format!("--cache-dir={}", debs.display()))
            .arg(&settings.debian_suite)
            .arg(&root)
            .arg(&settings.debian_mirror),
        "debootstrap",
    )
    .await?;
    for path in REMOVED_PATHS {
        let full = root.join(path);
        if full.is_dir() {
            let _ = tokio::fs::remove_dir_all(&full).await;
            let _ = tokio::fs::create_dir_all(&full).await;
        } else if full.exists() {
            let _ = tokio::fs::remove_file(&full).await;
        }
    }
    let init = root.join("usr/local/bin/magnum-node-init");
    tokio::fs::write(&init, NODE_INIT)
        .await
        .map_err(|error| permanent("cannot write the node entrypoint", error))?;
    set_executable(&init).await?;
    let partial = tarball.with_extension("tar.partial");
    run(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("--numeric-owner")
            .arg("-cf")
            .arg(&partial)
            .arg("."),
        "tar",
    )
    .await?;
    tokio::fs::rename(&partial, &tarball)
        .await
        .map_err(|error| permanent("cannot keep the root filesystem tarball", error))?;
    let _ = tokio::fs::remove_dir_all(&root).await;
    Ok(tarball)
}

async fn set_executable(path: &Path) -> Result<(), DriverError> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .await
        .map_err(|error| permanent("cannot make the node entrypoint executable", error))
}

/// The image name split into repository and tag.
fn split_image(image: &str) -> (String, String) {
    match image.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') => (repository.to_string(), tag.to_string()),
        _ => (image.to_string(), "latest".to_string()),
    }
}

/// Makes sure the configured node image exists in the engine, building it if needed.
pub async fn ensure_node_image(
    engine: &LocalEngine,
    settings: &DockerSettings,
) -> Result<(), DriverError> {
    let _building = engine.image_build_lock.lock().await;
    if engine
        .docker()
        .await?
        .inspect_image(&settings.node_image)
        .await
        .is_ok()
    {
        return Ok(());
    }
    let tarball = build_rootfs_tarball(settings).await?;
    tracing::info!(image = %settings.node_image, tarball = %tarball.display(), "importing the node image");
    let (repository, tag) = split_image(&settings.node_image);
    let options = CreateImageOptions {
        from_src: Some("-".to_string()),
        repo: Some(repository),
        tag: Some(tag),
        changes: vec![
            "ENTRYPOINT [\"/usr/bin/tini\", \"-g\", \"--\", \"/usr/local/bin/magnum-node-init\"]"
                .to_string(),
            format!("LABEL {}=debian", crate::layout::OS_DISTRO_LABEL),
        ],
        ..CreateImageOptions::default()
    };
    let file = tokio::fs::File::open(&tarball)
        .await
        .map_err(|error| permanent("cannot open the root filesystem tarball", error))?;
    let body = bollard::body_try_stream(tokio_util::io::ReaderStream::new(file));
    let mut progress = engine
        .docker()
        .await?
        .create_image(Some(options), Some(body), None);
    while let Some(step) = progress.next().await {
        step.map_err(|error| permanent("importing the node image failed", error))?;
    }
    Ok(())
}

/// Whether the node image is there, starting its build in the background when it is not
/// (a build takes a minute or more the first time: no worker waits for it). A failed build
/// is reported once, and the next call starts another.
pub async fn poll_node_image(engine: &Arc<LocalEngine>) -> Result<bool, DriverError> {
    let settings = &engine.settings;
    if engine
        .docker()
        .await?
        .inspect_image(&settings.node_image)
        .await
        .is_ok()
    {
        return Ok(true);
    }
    let finished = {
        let mut slot = engine
            .image_build
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match slot.as_ref() {
            Some(build) if build.is_finished() => slot.take(),
            Some(_) => return Ok(false),
            None => {
                let builder = engine.clone();
                *slot = Some(tokio::spawn(async move {
                    ensure_node_image(&builder, &builder.settings).await
                }));
                return Ok(false);
            }
        }
    };
    match finished {
        Some(build) => match build.await {
            Ok(Ok(())) => Ok(true),
            Ok(Err(error)) => Err(error),
            Err(error) => Err(permanent("the node image build stopped", error)),
        },
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_into_repository_and_tag() {
        assert_eq!(
            split_image("magnum-node:bookworm"),
            ("magnum-node".to_string(), "bookworm".to_string())
        );
        assert_eq!(
            split_image("magnum-node"),
            ("magnum-node".to_string(), "latest".to_string())
        );
        assert_eq!(
            split_image("registry:5000/node"),
            ("registry:5000/node".to_string(), "latest".to_string())
        );
    }

    #[test]
    fn the_entrypoint_is_a_shell_script_that_starts_dockerd() {
        assert!(NODE_INIT.starts_with("#!/bin/sh"));
        assert!(NODE_INIT.contains("exec \"$@\""));
        assert!(NODE_INIT.contains("--tlsverify"));
    }
}
