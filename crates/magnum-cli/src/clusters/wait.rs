//! The `--wait` UI: polls a cluster until its operation ends and keeps one status line on
//! stderr up to date meanwhile. Shared by the cluster, nodegroup and `ca-rotate` commands.

use super::Generation;
use crate::error::CliError;
use magnum_client::{ClientError, MagnumClient};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often `--wait` asks the API for the cluster.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// One line on stderr that says where a long operation is: redrawn in place with a spinner
/// on a terminal, printed once per change otherwise (logs, CI).
struct StatusLine {
    interactive: bool,
    started: Instant,
    frame: usize,
    last: String,
}

impl StatusLine {
    const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

    fn new() -> StatusLine {
        StatusLine {
            interactive: std::io::stderr().is_terminal(),
            started: Instant::now(),
            frame: 0,
            last: String::new(),
        }
    }

    fn update(&mut self, text: &str) {
        let elapsed = self.started.elapsed().as_secs();
        let mut stderr = std::io::stderr().lock();
        if self.interactive {
            self.frame = (self.frame + 1) % Self::FRAMES.len();
            let _ = write!(
                stderr,
                "\r\x1b[2K{} {text} ({elapsed}s)",
                Self::FRAMES[self.frame]
            );
            let _ = stderr.flush();
        } else if text != self.last {
            let _ = writeln!(stderr, "[{elapsed:>4}s] {text}");
        }
        self.last = text.to_string();
    }

    fn finish(&mut self, text: &str) {
        let elapsed = self.started.elapsed().as_secs();
        let mut stderr = std::io::stderr().lock();
        if self.interactive {
            let _ = writeln!(stderr, "\r\x1b[2K{text} ({elapsed}s)");
        } else {
            let _ = writeln!(stderr, "[{elapsed:>4}s] {text}");
        }
    }
}

fn describe(generation: Generation, cluster: &Value) -> String {
    let name = cluster["name"]
        .as_str()
        .or_else(|| cluster["uuid"].as_str())
        .unwrap_or("?");
    let status = cluster["status"].as_str().unwrap_or("UNKNOWN");
    match cluster["status_reason"].as_str() {
        Some(reason) if !reason.is_empty() => {
            format!("{} {name}: {status}: {reason}", generation.noun())
        }
        _ => format!("{} {name}: {status}", generation.noun()),
    }
}

/// Polls the cluster until its operation ends; FAILED ends in an error with the reason.
pub(crate) async fn wait_for_cluster(
    client: &MagnumClient,
    generation: Generation,
    uuid: &str,
) -> Result<Value, CliError> {
    let mut line = StatusLine::new();
    let mut spinner = tokio::time::interval(Duration::from_millis(120));
    let mut next_poll = Instant::now();
    let mut latest = String::new();
    loop {
        spinner.tick().await;
        if Instant::now() >= next_poll {
            let cluster = client.show(generation.collection(), uuid).await?;
            let status = cluster["status"].as_str().unwrap_or_default().to_string();
            latest = describe(generation, &cluster);
            if !status.ends_with("_IN_PROGRESS") && !status.is_empty() {
                line.finish(&latest);
                // A rolled-back upgrade did not do what was asked either.
                if status.ends_with("_FAILED") || status.starts_with("ROLLBACK_") {
                    return Err(CliError::Failed(format!(
                        "{} {uuid} ended in {status}: {}",
                        generation.noun(),
                        cluster["status_reason"]
                            .as_str()
                            .unwrap_or("no reason given")
                    )));
                }
                return Ok(cluster);
            }
            next_poll = Instant::now() + POLL_INTERVAL;
        }
        line.update(&latest);
    }
}

/// Polls until the cluster is gone (404); DELETE_FAILED ends in an error with the reason.
pub(super) async fn wait_for_deletion(
    client: &MagnumClient,
    generation: Generation,
    uuid: &str,
) -> Result<(), CliError> {
    let mut line = StatusLine::new();
    let mut spinner = tokio::time::interval(Duration::from_millis(120));
    let mut next_poll = Instant::now();
    let mut latest = String::new();
    loop {
        spinner.tick().await;
        if Instant::now() >= next_poll {
            match client.show(generation.collection(), uuid).await {
                Err(ClientError::Http { status: 404, .. }) => {
                    line.finish(&format!("{} {uuid}: deleted", generation.noun()));
                    return Ok(());
                }
                Err(error) => return Err(error.into()),
                Ok(cluster) => {
                    latest = describe(generation, &cluster);
                    if cluster["status"] == "DELETE_FAILED" {
                        line.finish(&latest);
                        return Err(CliError::Failed(format!(
                            "{} {uuid} ended in DELETE_FAILED: {}",
                            generation.noun(),
                            cluster["status_reason"]
                                .as_str()
                                .unwrap_or("no reason given")
                        )));
                    }
                }
            }
            next_poll = Instant::now() + POLL_INTERVAL;
        }
        line.update(&latest);
    }
}
