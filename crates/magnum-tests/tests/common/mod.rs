//! The harness: a real `magnumd` process per test, and an HTTP helper.

#![allow(dead_code)]

pub mod cli;
pub mod cloud_double;
pub mod docker;
pub mod in_process;
pub mod openstack;
pub mod outage;

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const ADMIN_PASSWORD: &str = "admin-secret-pw";

/// The directory holding the workspace's built binaries (target/debug).
pub fn binary_directory() -> PathBuf {
    let executable = std::env::current_exe().expect("test executable path");
    // target/debug/deps/main-xxxx → target/debug
    executable
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_path_buf()
}

/// The path of a workspace binary; fails with a clear message when it was not built.
pub fn binary(name: &str) -> PathBuf {
    let path = binary_directory().join(name);
    assert!(
        path.exists(),
        "{} does not exist; run `cargo build --bins` before the end-to-end tests",
        path.display()
    );
    path
}

/// True when the README's test command runs us: missing prerequisites must fail.
pub fn require_all() -> bool {
    std::env::var("MAGNUM_TEST_REQUIRE_ALL").is_ok_and(|value| value == "1")
}

static DATABASE_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Creates a fresh database on the server named by `MAGNUM_TEST_DATABASE_URL` and returns
/// its oslo-style URL, or None to use SQLite.
pub async fn fresh_server_database() -> Option<String> {
    let server = std::env::var("MAGNUM_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())?;
    let name = format!(
        "magnum_t_e2e_{}_{}_{}",
        std::process::id(),
        DATABASE_COUNTER.fetch_add(1, Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or_default()
    );
    // The server URL names a database the user can connect to; a sibling gets created.
    let (prefix, _) = server
        .rsplit_once('/')
        .expect("database URL with a database name");
    let (scheme, rest) = prefix.split_once("://").expect("database URL");
    let sqlx_scheme = if scheme.starts_with("postgres") {
        "postgres"
    } else {
        "mysql"
    };
    let (_, admin_database) = server.rsplit_once('/').unwrap_or_default();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&format!("{sqlx_scheme}://{rest}/{admin_database}"))
        .await
        .expect("connect to the test database server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create a test database");
    pool.close().await;
    Some(format!("{prefix}/{name}"))
}

/// Starts magnumd on `config_path` and waits until every role it runs has said so on
/// stdout; returns the process, the API and identity URLs and the lines read.
fn spawn(config_path: &Path, options: &Options) -> (Child, String, Option<String>, Vec<String>) {
    let mut child = Command::new(binary("magnumd"))
        .arg("--config-file")
        .arg(config_path)
        .arg(options.role)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start magnumd");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let wants_api = options.role != "conductor";
    let wants_identity = wants_api && options.auth_strategy == "builtin";
    let wants_conductor = options.role != "api";
    let mut api_url = None;
    let mut identity_url = None;
    let mut conductor_started = false;
    let mut stdout_lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (wants_api && api_url.is_none())
        || (wants_identity && identity_url.is_none())
        || (wants_conductor && !conductor_started)
    {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(remaining) {
            Ok(line) => {
                if let Some(url) = line.strip_prefix("Magnum API listening on ") {
                    api_url = Some(url.trim().to_string());
                }
                if let Some(url) = line.strip_prefix("Identity (Keystone v3) listening on ") {
                    identity_url = Some(url.trim().to_string());
                }
                if line.starts_with("Conductor running as ") {
                    conductor_started = true;
                }
                stdout_lines.push(line);
            }
            Err(_) => {
                let _ = child.kill();
                panic!("magnumd did not start; its output so far: {stdout_lines:?}");
            }
        }
    }
    (
        child,
        api_url.unwrap_or_default(),
        identity_url,
        stdout_lines,
    )
}

/// How a test wants magnumd configured.
#[derive(Debug, Clone)]
pub struct Options {
    pub auth_strategy: &'static str,
    /// Extra lines appended to magnum.conf (may open new sections).
    pub extra_config: String,
    /// Whether to set `[identity] admin_password` (otherwise it is generated).
    pub configured_admin_password: bool,
    /// Use this database URL instead of a fresh one.
    pub database_url: Option<String>,
    /// The magnumd role: `serve`, `api` or `conductor`.
    pub role: &'static str,
    /// A policy.yaml written next to magnum.conf before start.
    pub policy_yaml: Option<String>,
    /// `[drivers] provider`: `unverified` unless a test builds real clusters. Several
    /// providers, comma-separated, become `enabled_providers` with the first as default.
    pub provider: &'static str,
    /// Run magnumd's roles inside the test process on a fake infrastructure (the fake
    /// provider and driver of `magnum_driver::test_doubles`) instead of a `magnumd` process.
    pub in_process: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            auth_strategy: "builtin",
            extra_config: String::new(),
            configured_admin_password: true,
            database_url: None,
            role: "serve",
            policy_yaml: None,
            provider: "unverified",
            in_process: false,
        }
    }
}

/// A running magnumd, stopped (SIGTERM, by PID) when dropped.
pub struct Magnumd {
    /// The magnumd process (None when it runs in-process).
    child: Option<Child>,
    /// The in-process magnumd and its fakes, when `Options::in_process`.
    pub in_process: Option<in_process::InProcess>,
    options: Options,
    pub api_url: String,
    pub identity_url: Option<String>,
    pub config_path: PathBuf,
    pub state_dir: tempfile::TempDir,
    pub admin_password: String,
    pub stdout_lines: Vec<String>,
}

impl Magnumd {
    pub async fn start() -> Magnumd {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options) -> Magnumd {
        let state_dir = tempfile::tempdir().expect("state directory");
        let database_url = match options.database_url.clone() {
            Some(url) => Some(url),
            None => fresh_server_database().await,
        };
        let mut config = format!(
            "[DEFAULT]\nstate_path = {state}\nhost = test-conductor\nperiodic_interval_max = 2\n\
             graceful_shutdown_timeout = 5\n[drivers]\n{drivers}\n[api]\nhost = 127.0.0.1\nport = 0\nauth_strategy = {strategy}\n\
             [identity]\nhost = 127.0.0.1\nport = 0\n",
            state = state_dir.path().display(),
            strategy = options.auth_strategy,
            drivers = match options.provider.split_once(',') {
                Some((default, _)) => format!(
                    "enabled_providers = {}\ndefault_provider = {}",
                    options.provider,
                    default.trim()
                ),
                None => format!("provider = {}", options.provider),
            },
        );
        if options.configured_admin_password {
            config.push_str(&format!("admin_password = {ADMIN_PASSWORD}\n"));
        }
        if let Some(url) = &database_url {
            config.push_str(&format!("[database]\nconnection = {url}\n"));
        }
        config.push_str(&options.extra_config);
        config.push('\n');
        let config_path = state_dir.path().join("magnum.conf");
        std::fs::write(&config_path, config).expect("write magnum.conf");
        if let Some(policy) = &options.policy_yaml {
            std::fs::write(state_dir.path().join("policy.yaml"), policy)
                .expect("write policy.yaml");
        }
        let (child, in_process, api_url, identity_url, stdout_lines) =
            launch(&config_path, &options);
        let admin_password = if options.configured_admin_password {
            ADMIN_PASSWORD.to_string()
        } else {
            std::fs::read_to_string(state_dir.path().join("admin-password"))
                .map(|text| text.trim().to_string())
                .unwrap_or_default()
        };
        Magnumd {
            child,
            in_process,
            options,
            api_url,
            identity_url,
            config_path,
            state_dir,
            admin_password,
            stdout_lines,
        }
    }

    /// The `[database] connection` this process uses, for a second process to share.
    pub fn database_url(&self) -> String {
        std::fs::read_to_string(&self.config_path)
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix("connection = ").map(str::to_string))
            .unwrap_or_else(|| {
                format!(
                    "sqlite:///{}",
                    self.state_dir.path().join("magnum.sqlite").display()
                )
            })
    }

    pub fn pid(&self) -> i32 {
        self.child
            .as_ref()
            .map(|child| i32::try_from(child.id()).unwrap_or_default())
            .expect("a magnumd process (not an in-process one)")
    }

    /// The API's base URL without `/v1`.
    pub fn base_url(&self) -> String {
        self.api_url.trim_end_matches("/v1").to_string()
    }

    /// Runs `magnumd <args>` against the same configuration.
    pub fn magnumd(&self, args: &[&str]) -> Output {
        Command::new(binary("magnumd"))
            .arg("--config-file")
            .arg(&self.config_path)
            .args(args)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run magnumd")
    }

    /// Creates project `project` with user `user` (password `<user>-pw`) holding `roles`.
    pub fn add_user(&self, user: &str, project: &str, roles: &[&str]) {
        let project_output = self.magnumd(&["identity", "project-create", "--name", project]);
        let project_error = String::from_utf8_lossy(&project_output.stderr);
        assert!(
            project_output.status.success() || project_error.contains("already exists"),
            "{project_error}"
        );
        let password = format!("{user}-pw");
        let output = self.magnumd(&[
            "identity",
            "user-create",
            "--name",
            user,
            "--password",
            &password,
            "--project",
            project,
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        for role in roles {
            let output = self.magnumd(&[
                "identity",
                "role-add",
                "--user",
                user,
                "--project",
                project,
                "--role",
                role,
            ]);
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// A token of the built-in identity.
    pub async fn token(&self, user: &str, password: &str, project: &str) -> String {
        let reply = self.password_auth(user, password, project).await;
        assert_eq!(
            reply.status, 201,
            "authentication of {user} failed: {}",
            reply.text
        );
        reply
            .headers
            .get("x-subject-token")
            .and_then(|value| value.to_str().ok())
            .expect("X-Subject-Token")
            .to_string()
    }

    pub async fn password_auth(&self, user: &str, password: &str, project: &str) -> Reply {
        let identity = self.identity_url.clone().expect("built-in identity");
        let body = serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}});
        Api::anonymous(&identity).post("/auth/tokens", body).await
    }

    pub async fn admin(&self) -> Api {
        let token = self
            .token("admin", &self.admin_password.clone(), "admin")
            .await;
        Api::new(&self.base_url(), Some(token))
    }

    /// An API client for a user created with [`Magnumd::add_user`].
    pub async fn user(&self, user: &str, project: &str) -> Api {
        let token = self.token(user, &format!("{user}-pw"), project).await;
        Api::new(&self.base_url(), Some(token))
    }

    /// Kills the process with SIGKILL (a crash at an arbitrary instant) and reaps it.
    pub fn kill_hard(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.in_process = None;
    }

    /// Starts the process again on the same configuration, state and database (after
    /// [`Magnumd::kill_hard`] or [`Magnumd::stop`]); the ports may change.
    pub fn restart(&mut self) {
        if self.is_running() {
            self.stop();
        }
        let (child, in_process, api_url, identity_url, stdout_lines) =
            launch(&self.config_path, &self.options);
        self.child = child;
        self.in_process = in_process;
        self.api_url = api_url;
        self.identity_url = identity_url;
        self.stdout_lines = stdout_lines;
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        if self.in_process.take().is_some() {
            return Some(0);
        }
        // SAFETY: kill(2) with the PID of our own child process and a valid signal number.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.pid(), libc::SIGTERM);
        }
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Whether the process (or the in-process roles) still runs.
    fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => self.in_process.is_some(),
        }
    }
}

impl Drop for Magnumd {
    fn drop(&mut self) {
        if self.is_running() {
            self.stop();
        }
    }
}

/// Starts magnumd as the options say: a process, or the roles in-process on fakes.
#[allow(clippy::type_complexity)]
fn launch(
    config_path: &Path,
    options: &Options,
) -> (
    Option<Child>,
    Option<in_process::InProcess>,
    String,
    Option<String>,
    Vec<String>,
) {
    if options.in_process {
        let running = in_process::InProcess::start(config_path, options.role);
        let api_url = running.api_url.clone();
        let identity_url = running.identity_url.clone();
        (None, Some(running), api_url, identity_url, Vec::new())
    } else {
        let (child, api_url, identity_url, lines) = spawn(config_path, options);
        (Some(child), None, api_url, identity_url, lines)
    }
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The detail of a current-format error.
    pub fn error_detail(&self) -> String {
        self.body["errors"][0]["detail"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The fault string of a 2016-format error.
    pub fn seed_fault(&self) -> Value {
        let inner = self.body["error_message"].as_str().unwrap_or("{}");
        serde_json::from_str(inner).unwrap_or(Value::Null)
    }
}

/// A small HTTP client for the API and identity endpoints.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    pub base: String,
    pub token: Option<String>,
    pub extra_headers: Vec<(String, String)>,
}

impl Api {
    pub fn new(base: &str, token: Option<String>) -> Api {
        // magnumd closes a keep-alive connection that stays idle for `[api]
        // header_read_timeout` (10 s). Tests block their runtime at times (running the CLI,
        // docker), so the client may not have seen that close yet when it next sends: it
        // must drop idle connections sooner itself, as any client of a server with an idle
        // timeout should.
        let http = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        Api {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
            extra_headers: Vec::new(),
        }
    }

    pub fn anonymous(base: &str) -> Api {
        Self::new(base, None)
    }

    pub fn with_header(&self, name: &str, value: &str) -> Api {
        let mut copy = self.clone();
        copy.extra_headers
            .push((name.to_string(), value.to_string()));
        copy
    }

    /// Sends a request with a raw body and content type.
    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("X-Auth-Token", token);
        }
        for (name, value) in &self.extra_headers {
            request = request.header(name, value);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("Content-Type", content_type).body(bytes);
        }
        let response = request.send().await.expect("HTTP request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.raw(reqwest::Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.raw(reqwest::Method::DELETE, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.raw(
            reqwest::Method::POST,
            path,
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.raw(
            reqwest::Method::PATCH,
            path,
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }
}
