//! Starting and stopping the long-running roles: the API (with the built-in identity) and
//! the conductor. Startup steps are narrated in the log; the addresses clients need are
//! printed on standard output.

use anyhow::Context;
use magnum_api::{ApiState, Policy};
use magnum_conductor::{CertificateSettings, Conductor, ConductorSettings, RetryPolicy};
use magnum_config::{AuthStrategy, MagnumConfig};
use magnum_core::coe::{NetworkDriverSettings, TemplateRules};
use magnum_db::Database;
use magnum_driver::{
    ClusterDriver, EnabledProvider, Infrastructure, ProviderKind, UnverifiedProvider,
};
use magnum_driver_docker::{
    provider::DockerProvider, swarm::SwarmDockerDriver, DockerSettings, Flavor, LocalEngine,
};
use magnum_driver_openstack::{
    k8s_fedora_atomic, k8s_fedora_coreos, Cloud, CloudService, HeatClusterDriver, NodeEndpoints,
    OpenStackProvider, ServiceChoice, StackDefinition, TrustSettings, Trustees,
};
use magnum_identity::{
    admin, Authenticator, Catalog, IdentityService, NoauthDefaults, RevocationList,
};
use magnum_openstack::{AuthMethod, AuthRequest, Interface, Keystone, NameOrId, Scope, Session};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Which roles this process runs.
#[derive(Debug, Clone, Copy)]
pub struct Roles {
    pub api: bool,
    pub conductor: bool,
}

impl Roles {
    pub fn all() -> Self {
        Self {
            api: true,
            conductor: true,
        }
    }
    pub fn api_only() -> Self {
        Self {
            api: true,
            conductor: false,
        }
    }
    pub fn conductor_only() -> Self {
        Self {
            api: false,
            conductor: true,
        }
    }
}

/// The Docker provider's settings from `[docker]`.
pub fn docker_settings(config: &MagnumConfig) -> anyhow::Result<DockerSettings> {
    let docker = &config.docker;
    Ok(DockerSettings {
        socket: docker.socket.clone(),
        node_image: docker.node_image.clone(),
        image_cache_dir: docker.image_cache_dir.clone().into(),
        debian_mirror: docker.debian_mirror.clone(),
        debian_suite: docker.debian_suite.clone(),
        subnet_pool: docker.subnet_pool.parse().context("[docker] subnet_pool")?,
        swarm_address_pool: docker.swarm_address_pool.clone(),
        flavors: docker
            .flavors
            .iter()
            .filter_map(|text| magnum_config::parse_flavor(text))
            .map(|(name, cpus, memory_mib, pids)| Flavor {
                name,
                cpus,
                memory_mib,
                pids,
            })
            .collect(),
        default_flavor: docker.default_flavor.clone(),
        allow_tls_disabled: docker.allow_tls_disabled,
        state_dir: config.state_path().join("clusters"),
        ready_timeout: Duration::from_secs(docker.ready_timeout),
    })
}

/// Builds the enabled providers (`[drivers] enabled_providers`) side by side. Nothing is
/// contacted yet: the Docker engine is reached on first use, so magnumd starts even where
/// no engine runs.
pub fn infrastructure(config: &MagnumConfig) -> anyhow::Result<Arc<Infrastructure>> {
    let (enabled, default) = config.providers();
    let mut providers = Vec::new();
    for name in &enabled {
        match ProviderKind::parse(name) {
            Some(ProviderKind::Docker) => {
                let engine = LocalEngine::new(docker_settings(config)?);
                let swarm: Arc<dyn ClusterDriver> =
                    Arc::new(SwarmDockerDriver::new(engine.clone()));
                providers.push(EnabledProvider {
                    lookups: Arc::new(DockerProvider::new(engine)),
                    drivers: vec![swarm],
                });
            }
            Some(ProviderKind::Unverified) => {
                tracing::warn!("the unverified provider is enabled: its templates' image, flavor and network names are accepted without checks, and no cluster can be built from them");
                providers.push(EnabledProvider {
                    lookups: Arc::new(UnverifiedProvider),
                    drivers: Vec::new(),
                });
            }
            Some(ProviderKind::OpenStack) => {
                let cloud = openstack_cloud(config)?;
                let trustees = Arc::new(Trustees::new(
                    cloud.session().keystone().clone(),
                    trust_settings(config)?,
                ));
                let definitions: [Arc<dyn StackDefinition>; 2] = [
                    Arc::new(k8s_fedora_coreos::FedoraCoreos),
                    Arc::new(k8s_fedora_atomic::FedoraAtomic),
                ];
                let drivers = definitions
                    .into_iter()
                    .map(|definition| {
                        Arc::new(HeatClusterDriver::new(
                            definition,
                            cloud.clone(),
                            trustees.clone(),
                            node_endpoints(config),
                        )) as Arc<dyn ClusterDriver>
                    })
                    .collect();
                providers.push(EnabledProvider {
                    lookups: Arc::new(OpenStackProvider::new(cloud, trustees)),
                    drivers,
                });
            }
            None => anyhow::bail!("[drivers] enabled_providers: unknown provider {name}"),
        }
    }
    let default = ProviderKind::parse(&default)
        .with_context(|| format!("[drivers] default_provider: unknown provider {default}"))?;
    Ok(Arc::new(
        Infrastructure::new(providers, default).map_err(anyhow::Error::msg)?,
    ))
}

/// The cloud of the openstack provider: a session of `[keystone_authtoken]`'s service user
/// (whose token's catalog locates the services) and how each service is reached
/// (`[heat_client]`, `[glance_client]`, `[nova_client]`, `[neutron_client]`,
/// `[octavia_client]`, `[cinder_client]`). Nothing is contacted yet.
fn openstack_cloud(config: &MagnumConfig) -> anyhow::Result<Arc<Cloud>> {
    let auth = &config.keystone_authtoken;
    let (Some(auth_url), Some(username), Some(password)) =
        (&auth.auth_url, &auth.username, &auth.password)
    else {
        anyhow::bail!(
            "the openstack provider needs [keystone_authtoken] auth_url, username and password"
        );
    };
    let request = AuthRequest {
        method: AuthMethod::Password {
            user: NameOrId::named(username, &auth.user_domain_name),
            password: password.clone(),
        },
        scope: Scope::Project(NameOrId::named(
            &auth.project_name,
            &auth.project_domain_name,
        )),
    };
    let session = Session::new(
        Keystone::new(magnum_openstack::http_client()?, auth_url),
        request,
    );
    let sections = [
        (
            CloudService::Orchestration,
            "heat_client",
            &config.heat_client.region_name,
            &config.heat_client.endpoint_type,
            &config.heat_client.ca_file,
            config.heat_client.insecure,
        ),
        (
            CloudService::Image,
            "glance_client",
            &config.glance_client.region_name,
            &config.glance_client.endpoint_type,
            &config.glance_client.ca_file,
            config.glance_client.insecure,
        ),
        (
            CloudService::Compute,
            "nova_client",
            &config.nova_client.region_name,
            &config.nova_client.endpoint_type,
            &config.nova_client.ca_file,
            config.nova_client.insecure,
        ),
        (
            CloudService::Network,
            "neutron_client",
            &config.neutron_client.region_name,
            &config.neutron_client.endpoint_type,
            &config.neutron_client.ca_file,
            config.neutron_client.insecure,
        ),
        (
            CloudService::LoadBalancer,
            "octavia_client",
            &config.octavia_client.region_name,
            &config.octavia_client.endpoint_type,
            &config.octavia_client.ca_file,
            config.octavia_client.insecure,
        ),
        (
            CloudService::BlockStorage,
            "cinder_client",
            &config.cinder_client.region_name,
            &config.cinder_client.endpoint_type,
            &config.cinder_client.ca_file,
            config.cinder_client.insecure,
        ),
    ];
    let mut choices = std::collections::BTreeMap::new();
    for (service, section, region, endpoint_type, ca_file, insecure) in sections {
        let interface = Interface::parse(endpoint_type).with_context(|| {
            format!("[{section}] endpoint_type: {endpoint_type:?} is not publicURL, internalURL or adminURL")
        })?;
        let http = magnum_openstack::http_client_verifying(
            ca_file.as_deref().map(std::path::Path::new),
            insecure,
        )
        .with_context(|| format!("[{section}] ca_file"))?;
        choices.insert(
            service,
            ServiceChoice {
                interface,
                region: region.clone(),
                http,
            },
        );
    }
    Ok(Arc::new(
        Cloud::new(session, choices).map_err(anyhow::Error::msg)?,
    ))
}

/// Where a cloud cluster's nodes reach magnum (`[api] public_url`, else the API's address)
/// and Keystone (`[keystone_authtoken] www_authenticate_uri`, else `auth_url`).
fn node_endpoints(config: &MagnumConfig) -> NodeEndpoints {
    let magnum = config
        .api
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}:{}", config.api.host, config.api.port));
    let magnum = magnum.trim_end_matches('/');
    let magnum_url = if magnum.ends_with("/v1") {
        magnum.to_string()
    } else {
        format!("{magnum}/v1")
    };
    let keystone = &config.keystone_authtoken;
    let auth_url = keystone
        .www_authenticate_uri
        .clone()
        .or_else(|| keystone.auth_url.clone())
        .unwrap_or_default();
    NodeEndpoints {
        magnum_url,
        auth_url: magnum_openstack::keystone::v3_url(&auth_url),
        region_name: config
            .heat_client
            .region_name
            .clone()
            .unwrap_or_else(|| "RegionOne".to_string()),
    }
}

/// Clusters' trustees from `[trust]`; their passwords derive from the service's key.
fn trust_settings(config: &MagnumConfig) -> anyhow::Result<TrustSettings> {
    let trust = &config.trust;
    let (Some(domain_name), Some(admin_name), Some(admin_password)) = (
        &trust.trustee_domain_name,
        &trust.trustee_domain_admin_name,
        &trust.trustee_domain_admin_password,
    ) else {
        anyhow::bail!(
            "the openstack provider needs [trust] trustee_domain_name, trustee_domain_admin_name \
             and trustee_domain_admin_password (the domain of clusters' trustee users and its \
             administrator)"
        );
    };
    Ok(TrustSettings {
        domain_name: domain_name.clone(),
        admin_name: admin_name.clone(),
        admin_password: admin_password.clone(),
        admin_domain_name: trust.trustee_domain_admin_domain_name.clone(),
        roles: trust.roles.clone(),
        password_key: magnum_config::Secret::new(service_key_hex(config)?),
        cluster_user_trust: trust.cluster_user_trust,
    })
}

/// The conductor's settings from `[DEFAULT]` and `[conductor]`.
pub fn conductor_settings(config: &MagnumConfig, lease_owner: String) -> ConductorSettings {
    let conductor = &config.conductor;
    ConductorSettings {
        host: config.default.host.clone(),
        lease_owner,
        heartbeat_interval: Duration::from_secs(config.default.periodic_interval_max),
        workers: conductor.workers,
        lease: Duration::from_secs(conductor.lease_seconds),
        poll_interval: Duration::from_secs(conductor.poll_interval.max(1)),
        sync_interval: Duration::from_secs(conductor.sync_interval.max(1)),
        retry: RetryPolicy {
            max_attempts: conductor.max_attempts,
            first_delay: Duration::from_secs(conductor.retry_delay),
            max_delay: Duration::from_secs(conductor.max_retry_delay),
        },
        operation_timeout: Duration::from_secs(conductor.operation_timeout.saturating_mul(60)),
        call_timeout: Duration::from_secs(conductor.call_timeout),
        health_check_timeout: Duration::from_secs(conductor.health_check_timeout),
        health_check_concurrency: conductor.health_check_concurrency.max(1),
    }
}

/// The service's own key (`[x509] encryption_key_file`, hex, created mode 0600 on first
/// use): it seals CA private keys and derives trustee passwords, so every process sharing
/// the database needs the same file.
fn service_key_hex(config: &MagnumConfig) -> anyhow::Result<String> {
    let path = config.encryption_key_file();
    magnum_identity::secrets::read_or_create(&path, || magnum_identity::secrets::random_hex(32))
        .with_context(|| {
            format!(
                "cannot read or create the key-encryption key {}",
                path.display()
            )
        })
}

/// The key sealing CA private keys, created (mode 0600) on first use.
pub fn certificate_settings(config: &MagnumConfig) -> anyhow::Result<CertificateSettings> {
    let path = config.encryption_key_file();
    let hex = service_key_hex(config)?;
    let key: Vec<u8> = (0..hex.len())
        .step_by(2)
        .filter_map(|index| hex.get(index..index + 2))
        .map(|pair| u8::from_str_radix(pair, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} does not hold hex digits", path.display()))?;
    Ok(CertificateSettings {
        x509: magnum_x509::X509Settings {
            rsa_key_size: config.x509.rsa_key_size,
            term_of_validity_days: config.x509.term_of_validity,
        },
        sealer: magnum_x509::KeySealer::new(&key).map_err(anyhow::Error::msg)?,
    })
}

/// Connects to the configured database.
pub async fn connect(config: &MagnumConfig) -> anyhow::Result<Database> {
    let connection = config.database_connection();
    Database::connect_with(
        &connection,
        config.database.max_pool_size,
        std::time::Duration::from_secs(config.database.pool_timeout),
    )
    .await
    .with_context(|| format!("cannot connect to the database {connection}"))
}

fn template_rules(config: &MagnumConfig) -> TemplateRules {
    let settings = |allowed: &Vec<String>, default: &String| NetworkDriverSettings {
        allowed: if allowed.iter().any(|driver| driver == "all") {
            None
        } else {
            Some(allowed.clone())
        },
        default: default.clone(),
    };
    let section = &config.cluster_template;
    TemplateRules {
        kubernetes: settings(
            &section.kubernetes_allowed_network_drivers,
            &section.kubernetes_default_network_driver,
        ),
        swarm: settings(
            &section.swarm_allowed_network_drivers,
            &section.swarm_default_network_driver,
        ),
        mesos: settings(
            &section.mesos_allowed_network_drivers,
            &section.mesos_default_network_driver,
        ),
    }
}

fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn url_of(address: SocketAddr, path: &str) -> String {
    format!("http://{address}{path}")
}

async fn bind(host: &str, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen for the {what} on {host}:{port}"))
}

/// SIGTERM and SIGINT, registered before the process announces it is ready so that a signal
/// arriving right after start-up still shuts down gracefully.
struct TerminationSignals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl TerminationSignals {
    fn register() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            terminate: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        })
    }

    /// Waits for the next SIGTERM or SIGINT.
    async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {},
            _ = self.interrupt.recv() => {},
        }
    }
}

/// A running magnumd: the roles' tasks and where they listen.
#[derive(Debug)]
pub struct Started {
    /// The API's URL (ending in /v1), when the API runs.
    pub api_url: Option<String>,
    /// The built-in identity's URL (ending in /v3), when it runs.
    pub identity_url: Option<String>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    database: Database,
    graceful_shutdown_timeout: Duration,
}

impl Started {
    /// Stops every role gracefully within `[DEFAULT] graceful_shutdown_timeout`, or at once
    /// when `abort` resolves first.
    pub async fn stop(self, abort: impl std::future::Future<Output = ()>) {
        self.shutdown.cancel();
        let deadline = self.graceful_shutdown_timeout;
        tokio::select! {
            _ = self.tasks.wait() => tracing::info!("all tasks finished"),
            _ = tokio::time::sleep(deadline) => tracing::warn!(?deadline, "shutdown deadline passed; exiting"),
            _ = abort => tracing::warn!("second signal; exiting"),
        }
        self.database.close().await;
    }
}

/// Starts the chosen roles on `infrastructure` and returns once they listen.
pub async fn start(
    config: MagnumConfig,
    roles: Roles,
    infrastructure: Arc<Infrastructure>,
) -> anyhow::Result<Started> {
    let state_path = config.state_path();
    magnum_config::private_files::create_private_dir(&state_path)
        .with_context(|| format!("cannot create the state directory {}", state_path.display()))?;
    tracing::info!(state_path = %state_path.display(), "starting magnumd");

    tracing::info!(database = %config.database_connection(), "connecting to the database");
    let database = connect(&config).await?;
    if config.database.auto_upgrade {
        database.upgrade().await.context("schema upgrade failed")?;
    }
    let (applied, known) = database.schema_version().await?;
    if applied < known {
        anyhow::bail!("the database schema is at version {applied} but this magnumd needs {known}; run `magnumd db upgrade`");
    }

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();

    let certificates = certificate_settings(&config)?;
    let (api_url, identity_url) = if roles.api {
        start_api(
            &config,
            &database,
            &infrastructure,
            &certificates,
            &shutdown,
            &tasks,
        )
        .await?
    } else {
        (None, None)
    };
    if roles.conductor {
        let instance =
            magnum_conductor::instance::ConductorInstance::claim(&state_path, &config.default.host)
                .with_context(|| {
                    format!(
                        "cannot claim a conductor identity in {}",
                        state_path.display()
                    )
                })?;
        let settings = conductor_settings(&config, instance.lease_owner.clone());
        tracing::info!(host = %settings.host, "launching the conductor");
        magnum_conductor::register(&database, &settings)
            .await
            .context("the conductor cannot register in the database")?;
        let conductor = Arc::new(Conductor::new(
            database.clone(),
            infrastructure.clone(),
            certificates.clone(),
            settings,
        ));
        let conductor_shutdown = shutdown.child_token();
        tasks.spawn(async move {
            // The identity's slot stays locked for as long as the conductor runs.
            let _identity = instance;
            magnum_conductor::run(conductor, conductor_shutdown).await
        });
        say(&format!("Conductor running as {}", config.default.host));
    }
    tasks.close();
    Ok(Started {
        api_url,
        identity_url,
        shutdown,
        tasks,
        database,
        graceful_shutdown_timeout: Duration::from_secs(config.default.graceful_shutdown_timeout),
    })
}

/// Runs the chosen roles until a termination signal, then shuts down gracefully within
/// `[DEFAULT] graceful_shutdown_timeout` (a second signal exits at once).
pub async fn run(config: MagnumConfig, roles: Roles) -> anyhow::Result<()> {
    let mut signals = TerminationSignals::register()?;
    let infrastructure = infrastructure(&config)?;
    let started = start(config, roles, infrastructure).await?;
    signals.next().await;
    tracing::info!("shutting down; a second signal stops at once");
    started.stop(signals.next()).await;
    Ok(())
}

/// The connection limits of the API and identity servers, from `[api]`.
fn connection_limits(config: &MagnumConfig) -> crate::http::ConnectionLimits {
    crate::http::ConnectionLimits {
        max_connections: config.api.max_connections,
        header_read_timeout: Duration::from_secs(config.api.header_read_timeout),
    }
}

async fn start_api(
    config: &MagnumConfig,
    database: &Database,
    infrastructure: &Arc<Infrastructure>,
    certificates: &CertificateSettings,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> anyhow::Result<(Option<String>, Option<String>)> {
    let api_listener = bind(&config.api.host, config.api.port, "API").await?;
    let api_address = api_listener.local_addr()?;
    let magnum_url = config
        .api
        .public_url
        .clone()
        .unwrap_or_else(|| url_of(api_address, "/v1"));
    let public_base_url = config.api.public_url.as_ref().map(|url| {
        url.trim_end_matches('/')
            .trim_end_matches("/v1")
            .to_string()
    });

    let mut identity_url = None;
    let mut identity_listening = None;
    let authenticator = match config.api.auth_strategy {
        AuthStrategy::Builtin => {
            let identity_listener = bind(
                &config.identity.host,
                config.identity.port,
                "identity endpoint",
            )
            .await?;
            let identity_address = identity_listener.local_addr()?;
            identity_listening = Some(url_of(identity_address, "/v3"));
            let url = config
                .identity
                .public_url
                .clone()
                .unwrap_or_else(|| url_of(identity_address, "/v3"));
            identity_url = Some(url.clone());
            tracing::info!("bootstrapping the built-in identity");
            let state_path = config.state_path();
            let outcome = admin::bootstrap(database, &config.identity, &state_path).await?;
            if outcome.created {
                say(&format!(
                    "Created user '{}' with roles admin, member, reader in project '{}' (domain Default).",
                    outcome.user_name, outcome.project_name
                ));
                match &outcome.password_file {
                    Some(file) => say(&format!(
                        "Its password is in {} (mode 0600).",
                        file.display()
                    )),
                    None => say("Its password is the one set in [identity] admin_password."),
                }
            }
            let signer = admin::load_token_signer(&state_path)?;
            let revocations = RevocationList::default();
            revocations.refresh(database).await?;
            let service = IdentityService::with_login_policy(
                database.clone(),
                signer.clone(),
                revocations.clone(),
                Catalog {
                    identity_url: url.clone(),
                    magnum_url: magnum_url.clone(),
                    region: config.identity.region_name.clone(),
                },
                chrono::Duration::seconds(
                    i64::try_from(config.identity.token_expiration).unwrap_or(3600),
                ),
                magnum_identity::service::LoginPolicy {
                    lockout_failure_attempts: config.security_compliance.lockout_failure_attempts,
                    lockout_duration: chrono::Duration::seconds(
                        i64::try_from(config.security_compliance.lockout_duration).unwrap_or(1800),
                    ),
                    max_concurrent_checks: config.identity.max_concurrent_password_checks,
                },
            );
            let identity_router = magnum_identity::server::router_with_limits(
                Arc::new(service),
                magnum_identity::server::RequestLimits {
                    timeout: Duration::from_secs(config.api.request_timeout),
                    // Authentication requests are small: a flood of large bodies must not
                    // take the memory the connection limit allows.
                    max_body_size: config.api.max_body_size.min(64 * 1024),
                },
            );
            let identity_shutdown = shutdown.child_token();
            let limits = connection_limits(config);
            tasks.spawn(crate::http::serve(
                identity_listener,
                identity_router,
                limits,
                identity_shutdown,
            ));
            let refresh_database = database.clone();
            let refresh_list = revocations.clone();
            let refresh_interval =
                Duration::from_secs(config.identity.revocation_refresh_interval.max(1));
            let refresh_shutdown = shutdown.child_token();
            tasks.spawn(async move {
                let mut ticker = tokio::time::interval(refresh_interval);
                loop {
                    tokio::select! {
                        _ = refresh_shutdown.cancelled() => break,
                        _ = ticker.tick() => {
                            if let Err(error) = refresh_list.refresh(&refresh_database).await {
                                tracing::warn!(%error, "cannot refresh the revoked-token list");
                            }
                        }
                    }
                }
            });
            say(&format!(
                "Identity (Keystone v3) listening on {}",
                url_of(identity_address, "/v3")
            ));
            if config.identity.public_url.is_some() {
                say(&format!("Identity (Keystone v3) published at {url}"));
            }
            Authenticator::Builtin {
                signer,
                revocations,
            }
        }
        AuthStrategy::Keystone => Authenticator::Keystone(Box::new(
            magnum_identity::keystone::KeystoneValidator::new(config.keystone_authtoken.clone())
                .map_err(anyhow::Error::msg)?,
        )),
        AuthStrategy::Noauth => {
            tracing::warn!("[api] auth_strategy = noauth: requests are trusted without authentication; never use this in production");
            Authenticator::Noauth(NoauthDefaults {
                user_id: config.api.noauth_user_id.clone(),
                project_id: config.api.noauth_project_id.clone(),
                roles: config.api.noauth_roles.clone(),
            })
        }
    };

    let policy_file = config.policy_file();
    let policy = Policy::load(&policy_file, config.oslo_policy.enforce_new_defaults)?;
    tracing::info!(policy_file = %policy_file.display(), exists = policy_file.exists(), "loaded policy");
    let state = Arc::new(ApiState {
        database: database.clone(),
        authenticator,
        policy,
        infrastructure: infrastructure.clone(),
        max_clusters_per_project: config.quotas.max_clusters_per_project,
        max_nodes_per_project: config.quotas.max_nodes_per_project,
        restrict_client_subjects: config.x509.restrict_client_subjects,
        checks_projects: config.api.auth_strategy == AuthStrategy::Builtin,
        signing_rules: magnum_x509::SigningRules {
            allowed_extensions: config.x509.allowed_extensions.clone(),
            allowed_key_usage: config.x509.allowed_key_usage.clone(),
            allow_ca: config.x509.allow_ca,
        },
        certificates: certificates.clone(),
        template_rules: template_rules(config),
        max_limit: config.api.max_limit,
        service_down_time_seconds: i64::try_from(config.default.service_down_time).unwrap_or(180),
        public_base_url,
        identity_url,
        request_timeout: Duration::from_secs(config.api.request_timeout),
        max_body_size: config.api.max_body_size,
        encoded_views: magnum_api::encoded_views::EncodedViews::default(),
        discovery: magnum_api::handlers::discovery::DiscoveryHub::default(),
    });
    let app = magnum_api::app(state);
    tasks.spawn(crate::http::serve(
        api_listener,
        app,
        connection_limits(config),
        shutdown.child_token(),
    ));
    say(&format!(
        "Magnum API listening on {}",
        url_of(api_address, "/v1")
    ));
    if config.api.public_url.is_some() {
        say(&format!("Magnum API published at {magnum_url}"));
    }
    Ok((Some(url_of(api_address, "/v1")), identity_listening))
}
