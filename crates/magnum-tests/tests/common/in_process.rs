//! magnumd's roles running inside the test process, on a FAKE infrastructure: the API (and
//! the built-in identity) of the real `magnumd` library, with `FakeProvider` answering
//! look-ups and `FakeDriver` standing in for the Swarm driver. Used by tests of the API's
//! rules that build nothing, so they need no Docker engine. The roles run on a runtime of
//! their own, so blocking test code (running the CLI, sleeping) does not stall them.

use magnum_driver::test_doubles::{FakeDriver, FakeProvider};
use magnum_driver::{EnabledProvider, Infrastructure, ProviderKind};
use std::path::Path;
use std::sync::Arc;

/// A running in-process magnumd.
pub struct InProcess {
    pub api_url: String,
    pub identity_url: Option<String>,
    pub driver: Arc<FakeDriver>,
    pub provider: Arc<FakeProvider>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    /// Starts the roles `role` (`serve`, `api` or `conductor`) of the configuration at
    /// `config_path`.
    pub fn start(config_path: &Path, role: &str) -> InProcess {
        let config = magnum_config::MagnumConfig::load(config_path).expect("magnum.conf");
        let roles = match role {
            "api" => magnumd::serve::Roles::api_only(),
            "conductor" => magnumd::serve::Roles::conductor_only(),
            _ => magnumd::serve::Roles::all(),
        };
        let driver = FakeDriver::new("swarm_docker_v1");
        driver.behave(|behaviour| behaviour.max_workers = 230);
        let provider = Arc::new(FakeProvider::new(ProviderKind::Docker));
        let infrastructure = Arc::new(
            Infrastructure::new(
                vec![EnabledProvider {
                    lookups: provider.clone(),
                    drivers: vec![driver.clone()],
                }],
                ProviderKind::Docker,
            )
            .expect("infrastructure"),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, started) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                match magnumd::serve::start(config, roles, infrastructure).await {
                    Ok(running) => {
                        let _ =
                            ready.send(Ok((running.api_url.clone(), running.identity_url.clone())));
                        let _ = stopped.await;
                        running.stop(std::future::pending()).await;
                    }
                    Err(error) => {
                        let _ = ready.send(Err(format!("{error:#}")));
                    }
                }
            });
        });
        let (api_url, identity_url) = started
            .recv()
            .expect("the in-process magnumd reports")
            .expect("the in-process magnumd starts");
        InProcess {
            api_url: api_url.unwrap_or_default(),
            identity_url,
            driver,
            provider,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
