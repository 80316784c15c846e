//! `magnum.conf`: the typed configuration of every Magnum-rs process.
//!
//! The file is oslo-style INI (see [`ini`]). Each section is a struct declared once with the
//! [`config_section!`] macro, which gives every option its type, default and help text; the
//! loader, the unknown-option warnings and `magnumd config sample` all come from that one
//! declaration. A bad value stops loading with a [`ConfigError`] that names the file, the
//! section, the option and the reason.

pub mod database_url;
pub mod ini;
pub mod private_files;
pub mod values;

pub use database_url::{DatabaseBackend, DatabaseConnection};
pub use values::{OptionValue, Secret};

use ini::IniDocument;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Why a configuration could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read the configuration file: {reason}")]
    Unreadable { file: String, reason: String },
    #[error("{file}:{line_number}: not an INI line: {line}")]
    Syntax {
        file: String,
        line_number: usize,
        line: String,
    },
    #[error("{file}: [{section}] {option}: {reason}")]
    InvalidValue {
        file: String,
        section: String,
        option: String,
        reason: String,
    },
}

/// Help for one option, as the sample configuration prints it.
#[derive(Debug, Clone, Copy)]
pub struct OptionDoc {
    pub name: &'static str,
    pub help: &'static str,
}

/// Where values come from while loading: the parsed file and its name for messages.
pub struct Source<'a> {
    pub document: &'a IniDocument,
    pub file: &'a str,
    /// Built-in values of `[DEFAULT]` options that `$references` may use.
    pub builtin_defaults: &'a dyn Fn(&str) -> Option<String>,
}

impl std::fmt::Debug for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("file", &self.file).finish()
    }
}

impl Source<'_> {
    #[doc(hidden)]
    pub fn read<T: OptionValue>(
        &self,
        section: &str,
        option: &str,
    ) -> Result<Option<T>, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidValue {
            file: self.file.to_string(),
            section: section.to_string(),
            option: option.to_string(),
            reason,
        };
        match self
            .document
            .expanded(section, option, self.builtin_defaults)
        {
            None => Ok(None),
            Some(Err(reason)) => Err(invalid(reason)),
            Some(Ok(text)) => T::parse_option(&text).map(Some).map_err(invalid),
        }
    }
}

/// Declares a configuration section: a struct whose fields are options with defaults.
#[macro_export]
macro_rules! config_section {
    (
        $(#[doc = $section_doc:literal])*
        $name:ident => $section:literal {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty = $default:expr
            ),* $(,)?
        }
    ) => {
        $(#[doc = $section_doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        impl $name {
            /// The INI section name.
            pub const SECTION: &'static str = $section;
            /// Every option with its help text.
            pub const OPTIONS: &'static [$crate::OptionDoc] = &[
                $( $crate::OptionDoc { name: stringify!($field), help: concat!($($doc, "\n"),*) }, )*
            ];

            /// Reads the section, starting from the defaults.
            pub fn load(source: &$crate::Source<'_>) -> Result<Self, $crate::ConfigError> {
                let mut section = Self::default();
                $(
                    if let Some(value) = source.read::<$ty>($section, stringify!($field))? {
                        section.$field = value;
                    }
                )*
                Ok(section)
            }

            /// The section as it would appear in a sample magnum.conf.
            pub fn sample() -> String {
                let defaults = Self::default();
                let mut text = format!("[{}]\n", $section);
                $(
                    for line in concat!($($doc, "\n"),*).lines() {
                        text.push_str("#");
                        text.push_str(line);
                        text.push('\n');
                    }
                    text.push_str(&format!(
                        "#{} = {}\n\n",
                        stringify!($field),
                        $crate::OptionValue::render_option(&defaults.$field)
                    ));
                )*
                text
            }
        }
    };
}

/// How the API authenticates callers (`[api] auth_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStrategy {
    /// The built-in Keystone v3 subset served by magnumd itself.
    Builtin,
    /// A real Keystone validates every token.
    Keystone,
    /// Trust `X-User-Id`/`X-Project-Id`/`X-Roles` headers. Development only.
    Noauth,
}

impl FromStr for AuthStrategy {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "builtin" => Ok(AuthStrategy::Builtin),
            "keystone" => Ok(AuthStrategy::Keystone),
            "noauth" => Ok(AuthStrategy::Noauth),
            other => Err(format!("'{other}' is not one of builtin, keystone, noauth")),
        }
    }
}

impl OptionValue for AuthStrategy {
    fn parse_option(text: &str) -> Result<Self, String> {
        text.parse()
    }
    fn render_option(&self) -> String {
        match self {
            AuthStrategy::Builtin => "builtin",
            AuthStrategy::Keystone => "keystone",
            AuthStrategy::Noauth => "noauth",
        }
        .to_string()
    }
}

/// Whether a listening address only accepts connections from this machine.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

fn default_host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|name| name.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

config_section! {
    /// Options of the whole process.
    DefaultSection => "DEFAULT" {
        /// Directory for the SQLite database, keys and generated secrets.
        state_path: String = "./state".to_string(),
        /// Name of this host as the conductor reports it in `magnum service list`.
        host: String = default_host_name(),
        /// Log at debug level (RUST_LOG overrides the filter).
        debug: bool = false,
        /// Seconds between conductor heartbeats and periodic tasks.
        periodic_interval_max: u64 = 60,
        /// A conductor whose last heartbeat is older than this many seconds is reported down.
        service_down_time: u64 = 180,
        /// Seconds a graceful shutdown may take before the process exits anyway.
        graceful_shutdown_timeout: u64 = 30,
    }
}

config_section! {
    /// The REST API.
    ApiSection => "api" {
        /// Address the API listens on.
        host: String = "127.0.0.1".to_string(),
        /// Port the API listens on (0 picks a free one).
        port: u16 = 9511,
        /// Worker threads serving requests; 0 uses one per CPU.
        workers: usize = 0,
        /// The URL clients reach the API at, ending in /v1; derived from host and port when unset.
        public_url: Option<String> = None,
        /// The largest page a collection returns, and the page size when a request gives none.
        max_limit: usize = 1000,
        /// How callers are authenticated: builtin, keystone or noauth.
        auth_strategy: AuthStrategy = AuthStrategy::Builtin,
        /// noauth only: the user assumed when a request carries no X-User-Id.
        noauth_user_id: String = "noauth-user".to_string(),
        /// noauth only: the project assumed when a request carries no X-Project-Id.
        noauth_project_id: String = "noauth-project".to_string(),
        /// noauth only: the roles assumed when a request carries no X-Roles.
        noauth_roles: Vec<String> = vec!["member".to_string(), "reader".to_string()],
        /// noauth only: allow listening on an address other than loopback. Anyone who can
        /// reach the port is then trusted with whatever identity they claim.
        noauth_allow_remote: bool = false,
        /// Connections the API and the built-in identity each serve at once; more wait.
        max_connections: usize = 1000,
        /// Seconds a client may take to send a request's headers; a keep-alive connection
        /// idle for this long is closed too (clients must not keep idle connections longer).
        header_read_timeout: u64 = 10,
        /// Seconds a request may take before it is answered 503.
        request_timeout: u64 = 60,
        /// Largest request body accepted, in bytes.
        max_body_size: usize = 1048576,
    }
}

config_section! {
    /// The database holding all desired and observed state.
    DatabaseSection => "database" {
        /// SQLAlchemy-style URL; defaults to sqlite:///$state_path/magnum.sqlite.
        connection: Option<DatabaseConnection> = None,
        /// Connections kept per process.
        max_pool_size: u32 = 16,
        /// Seconds a request waits for a database connection (a busy pool, or a server that
        /// cannot be reached) before it is answered 503. At most 300.
        pool_timeout: u64 = 10,
        /// Apply pending schema migrations when a process starts.
        auto_upgrade: bool = true,
    }
}

config_section! {
    /// The built-in identity service (a Keystone v3 subset), used when `[api] auth_strategy = builtin`.
    IdentitySection => "identity" {
        /// Address the identity endpoint listens on.
        host: String = "127.0.0.1".to_string(),
        /// Port of the identity endpoint (0 picks a free one).
        port: u16 = 5000,
        /// The URL clients use as OS_AUTH_URL, ending in /v3; derived from host and port when unset.
        public_url: Option<String> = None,
        /// Password of the bootstrap user; when unset one is generated and written to $state_path/admin-password.
        admin_password: Option<Secret> = None,
        /// Name of the bootstrap user.
        admin_user: String = "admin".to_string(),
        /// Name of the bootstrap project.
        admin_project: String = "admin".to_string(),
        /// Region of the catalog entries.
        region_name: String = "RegionOne".to_string(),
        /// Lifetime of issued tokens, in seconds.
        token_expiration: u64 = 3600,
        /// Seconds between reloads of the revoked-token list from the database.
        revocation_refresh_interval: u64 = 5,
        /// Password checks (each a deliberately slow, memory-hungry hash) run at once;
        /// further logins wait their turn.
        max_concurrent_password_checks: usize = 4,
    }
}

config_section! {
    /// Validation of tokens by a real Keystone, used when `[api] auth_strategy = keystone`.
    KeystoneAuthtokenSection => "keystone_authtoken" {
        /// Keystone v3 URL used to get the service token and validate user tokens.
        auth_url: Option<String> = None,
        /// The Keystone URL advertised to clients in 401 answers; defaults to auth_url.
        www_authenticate_uri: Option<String> = None,
        /// Service user that validates tokens.
        username: Option<String> = None,
        /// Password of the service user.
        password: Option<Secret> = None,
        /// Project of the service user.
        project_name: String = "service".to_string(),
        /// Domain of the service user.
        user_domain_name: String = "Default".to_string(),
        /// Domain of the service project.
        project_domain_name: String = "Default".to_string(),
        /// Seconds a validated token is trusted without asking Keystone again.
        token_cache_time: u64 = 300,
        /// Most tokens kept in the validation cache.
        token_cache_size: usize = 10000,
    }
}

config_section! {
    /// Authorization rules.
    OsloPolicySection => "oslo_policy" {
        /// YAML or JSON file overriding default rules; relative paths are resolved against the config file's directory.
        policy_file: String = "policy.yaml".to_string(),
        /// Use only the scoped defaults; when false the deprecated admin_or_owner rules are accepted too.
        enforce_new_defaults: bool = true,
    }
}

config_section! {
    /// Cluster template validation.
    ClusterTemplateSection => "cluster_template" {
        /// Network drivers operators allow for Kubernetes ('all' allows every supported one).
        kubernetes_allowed_network_drivers: Vec<String> = vec!["all".to_string()],
        /// Network driver used when a Kubernetes template names none.
        kubernetes_default_network_driver: String = "flannel".to_string(),
        /// Network drivers operators allow for Swarm.
        swarm_allowed_network_drivers: Vec<String> = vec!["all".to_string()],
        /// Network driver used when a Swarm template names none.
        swarm_default_network_driver: String = "docker".to_string(),
        /// Network drivers operators allow for Mesos.
        mesos_allowed_network_drivers: Vec<String> = vec!["all".to_string()],
        /// Network driver used when a Mesos template names none.
        mesos_default_network_driver: String = "docker".to_string(),
    }
}

config_section! {
    /// Which infrastructure builds clusters. Several providers can run side by side: a
    /// template's `provider` label chooses one, and templates without the label use the
    /// default provider.
    DriversSection => "drivers" {
        /// The providers this deployment runs: docker (containers on the local engine),
        /// unverified (no infrastructure: names are accepted unchecked and clusters cannot
        /// be built), openstack (an OpenStack cloud; needs [api] auth_strategy = keystone;
        /// it answers look-ups now, and builds clusters once its Heat drivers exist).
        enabled_providers: Vec<String> = vec!["docker".to_string()],
        /// The provider of templates without a `provider` label; one of enabled_providers.
        default_provider: String = "docker".to_string(),
        /// Deprecated: one provider, enabled and default (overrides the two options above).
        provider: Option<String> = None,
    }
}

config_section! {
    /// The Docker provider: cluster nodes as containers on the local engine.
    DockerSection => "docker" {
        /// The engine's socket.
        socket: String = "unix:///var/run/docker.sock".to_string(),
        /// The node image; built from Debian packages with debootstrap when it is missing.
        node_image: String = "magnum-node:bookworm".to_string(),
        /// Where the node image's .deb files and root filesystem tarball are cached.
        image_cache_dir: String = "/var/cache/magnum-rs/node-image".to_string(),
        /// Debian mirror for building the node image.
        debian_mirror: String = "http://deb.debian.org/debian".to_string(),
        /// Debian release of the node image.
        debian_suite: String = "bookworm".to_string(),
        /// Cluster networks are /24 subnets of this pool (a template's fixed_network picks one).
        subnet_pool: String = "10.200.0.0/16".to_string(),
        /// Address pool of the swarms' overlay networks.
        swarm_address_pool: String = "10.210.0.0/16".to_string(),
        /// Named sizes as name:cpus:memory_mib[:pids], the limits of node containers (pids
        /// defaults to 4096 processes and threads per node).
        flavors: Vec<String> = vec!["m1.tiny:1:512:1024".to_string(), "m1.small:1:2048".to_string(), "m1.medium:2:4096".to_string(), "m1.large:4:8192:8192".to_string()],
        /// The flavor of nodes whose template and nodegroup name none; one of flavors.
        default_flavor: String = "m1.small".to_string(),
        /// Seconds a node may take to start and join; a node that takes longer fails its
        /// operation (an upgrade then rolls back).
        ready_timeout: u64 = 120,
        /// Allow templates with tls_disabled: their clusters' Docker API then accepts
        /// anyone who can reach it.
        allow_tls_disabled: bool = false,
    }
}

config_section! {
    /// Cluster certificates.
    X509Section => "x509" {
        /// Size of RSA keys of CAs and certificates the service makes.
        rsa_key_size: usize = 2048,
        /// Days a certificate signed by a cluster CA is valid.
        term_of_validity: i64 = 1825,
        /// Extensions copied from CSRs.
        allowed_extensions: Vec<String> = vec!["keyUsage".to_string(), "extendedKeyUsage".to_string(), "subjectAltName".to_string(), "basicConstraints".to_string(), "subjectKeyIdentifier".to_string()],
        /// keyUsage bits copied from CSRs.
        allowed_key_usage: Vec<String> = vec!["Digital Signature".to_string(), "Key Encipherment".to_string(), "Non Repudiation".to_string()],
        /// Whether a CSR may obtain CA rights.
        allow_ca: bool = false,
        /// File with the key that seals CA private keys at rest; generated (mode 0600) when missing. Defaults to $state_path/ca-encryption.key.
        encryption_key_file: Option<String> = None,
        /// Refuse client certificates whose subject names another user, or an administrator group for a non-administrator.
        restrict_client_subjects: bool = true,
    }
}

config_section! {
    /// The conductor.
    ConductorSection => "conductor" {
        /// Cluster operations one conductor process carries out at the same time.
        workers: usize = 4,
        /// Seconds a claimed operation stays ours without renewal; a crashed conductor's work is taken over after this.
        lease_seconds: u64 = 30,
        /// Seconds between looks for new work when idle.
        poll_interval: u64 = 1,
        /// Seconds between health checks of idle clusters.
        sync_interval: u64 = 10,
        /// Failed attempts of an operation step after which the operation fails with the
        /// last reason.
        max_attempts: i64 = 8,
        /// Seconds before the first retry of a failed step; each further failure doubles it
        /// (with jitter).
        retry_delay: u64 = 2,
        /// The longest pause between retries, in seconds.
        max_retry_delay: u64 = 300,
        /// Minutes an operation other than a create (which has create_timeout) may take.
        operation_timeout: u64 = 60,
        /// Seconds one driver call may take.
        call_timeout: u64 = 300,
        /// Seconds the health check of one cluster may take.
        health_check_timeout: u64 = 30,
        /// Clusters checked at the same time by a health sync.
        health_check_concurrency: usize = 8,
    }
}

config_section! {
    /// Login protection of the built-in identity, with Keystone's option names and meaning.
    SecurityComplianceSection => "security_compliance" {
        /// Wrong passwords in a row after which a user is locked out; unset disables lockout.
        lockout_failure_attempts: Option<i64> = None,
        /// Seconds a locked-out user stays locked (counted from the last wrong password).
        lockout_duration: u64 = 1800,
    }
}

config_section! {
    /// Quotas.
    QuotasSection => "quotas" {
        /// Clusters a project may have when no quota row says otherwise.
        max_clusters_per_project: i64 = 20,
        /// Nodes (masters and workers of every cluster) a project may have when no quota
        /// row (resource Node) says otherwise.
        max_nodes_per_project: i64 = 100,
    }
}

config_section! {
    /// The trustees of clusters on an OpenStack cloud (the openstack provider): each
    /// cluster gets a user of its own in this domain, and a trust from the user who created
    /// it, so that its nodes and magnumd can act for it later. Upstream's option names.
    TrustSection => "trust" {
        /// The Keystone domain holding clusters' trustee users.
        trustee_domain_name: Option<String> = None,
        /// An administrator of that domain, who creates and deletes the trustees.
        trustee_domain_admin_name: Option<String> = None,
        /// That administrator's password.
        trustee_domain_admin_password: Option<Secret> = None,
        /// The domain of that administrator (the trustee domain itself when unset).
        trustee_domain_admin_domain_name: Option<String> = None,
        /// Which Keystone endpoint clusters' nodes use: public or internal.
        trustee_keystone_interface: String = "public".to_string(),
        /// Roles delegated to the trustee (empty: every role the creating user holds in its project).
        roles: Vec<String> = Vec::new(),
        /// Whether clusters' nodes may act in the cloud with the cluster's trust (the cloud
        /// provider of Kubernetes, label cloud_provider_enabled, defaults to this).
        cluster_user_trust: bool = false,
    }
}

/// The options of every `[<service>_client]` section (upstream's names), declared once.
macro_rules! openstack_client_section {
    ($(#[doc = $doc:literal])* $name:ident => $section:literal) => {
        config_section! {
            $(#[doc = $doc])*
            $name => $section {
                /// Region of the service's endpoint in the catalog; any region when unset.
                region_name: Option<String> = None,
                /// Which of the service's endpoints: publicURL, internalURL or adminURL.
                endpoint_type: String = "publicURL".to_string(),
                /// CA bundle that verifies the endpoint's TLS certificate.
                ca_file: Option<String> = None,
                /// Accept the endpoint's TLS certificate without verifying it.
                insecure: bool = false,
            }
        }
    };
}

openstack_client_section! {
    /// Heat (orchestration), which builds clusters' stacks (the openstack provider).
    HeatClientSection => "heat_client"
}
openstack_client_section! {
    /// Glance (image), asked for templates' images and their os_distro.
    GlanceClientSection => "glance_client"
}
openstack_client_section! {
    /// Nova (compute), asked for flavors and keypairs.
    NovaClientSection => "nova_client"
}
openstack_client_section! {
    /// Neutron (network), asked for external and fixed networks and subnets.
    NeutronClientSection => "neutron_client"
}
openstack_client_section! {
    /// Octavia (load-balancer), needed by clusters with a load balancer in front of the API.
    OctaviaClientSection => "octavia_client"
}
openstack_client_section! {
    /// Cinder (volumev3), asked for the volumes Kubernetes made when a cluster is deleted.
    CinderClientSection => "cinder_client"
}

/// The whole configuration of one process.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MagnumConfig {
    /// The file it was read from, if any.
    pub source_file: Option<PathBuf>,
    pub default: DefaultSection,
    pub api: ApiSection,
    pub database: DatabaseSection,
    pub identity: IdentitySection,
    pub keystone_authtoken: KeystoneAuthtokenSection,
    pub oslo_policy: OsloPolicySection,
    pub cluster_template: ClusterTemplateSection,
    pub drivers: DriversSection,
    pub docker: DockerSection,
    pub x509: X509Section,
    pub conductor: ConductorSection,
    pub quotas: QuotasSection,
    pub security_compliance: SecurityComplianceSection,
    pub trust: TrustSection,
    pub heat_client: HeatClientSection,
    pub glance_client: GlanceClientSection,
    pub nova_client: NovaClientSection,
    pub neutron_client: NeutronClientSection,
    pub octavia_client: OctaviaClientSection,
    pub cinder_client: CinderClientSection,
    /// Options the file sets that no section knows, as `[section] option`.
    pub unknown_options: Vec<String>,
}

/// The sections and options every process understands, for unknown-option warnings.
fn known_options() -> Vec<(&'static str, &'static [OptionDoc])> {
    vec![
        (DefaultSection::SECTION, DefaultSection::OPTIONS),
        (ApiSection::SECTION, ApiSection::OPTIONS),
        (DatabaseSection::SECTION, DatabaseSection::OPTIONS),
        (IdentitySection::SECTION, IdentitySection::OPTIONS),
        (
            KeystoneAuthtokenSection::SECTION,
            KeystoneAuthtokenSection::OPTIONS,
        ),
        (OsloPolicySection::SECTION, OsloPolicySection::OPTIONS),
        (
            ClusterTemplateSection::SECTION,
            ClusterTemplateSection::OPTIONS,
        ),
        (DriversSection::SECTION, DriversSection::OPTIONS),
        (DockerSection::SECTION, DockerSection::OPTIONS),
        (X509Section::SECTION, X509Section::OPTIONS),
        (ConductorSection::SECTION, ConductorSection::OPTIONS),
        (QuotasSection::SECTION, QuotasSection::OPTIONS),
        (
            SecurityComplianceSection::SECTION,
            SecurityComplianceSection::OPTIONS,
        ),
        (TrustSection::SECTION, TrustSection::OPTIONS),
        (HeatClientSection::SECTION, HeatClientSection::OPTIONS),
        (GlanceClientSection::SECTION, GlanceClientSection::OPTIONS),
        (NovaClientSection::SECTION, NovaClientSection::OPTIONS),
        (NeutronClientSection::SECTION, NeutronClientSection::OPTIONS),
        (OctaviaClientSection::SECTION, OctaviaClientSection::OPTIONS),
        (CinderClientSection::SECTION, CinderClientSection::OPTIONS),
    ]
}

impl MagnumConfig {
    /// Reads `path`; a missing file is an error (use [`MagnumConfig::from_text`] for none).
    pub fn load(path: &Path) -> Result<MagnumConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Unreadable {
            file: file.clone(),
            reason: error.to_string(),
        })?;
        let mut config = Self::from_text(&text, &file)?;
        config.source_file = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses configuration text; `file` names it in error messages.
    pub fn from_text(text: &str, file: &str) -> Result<MagnumConfig, ConfigError> {
        let document = IniDocument::parse(text).map_err(|error| ConfigError::Syntax {
            file: file.to_string(),
            line_number: error.line_number,
            line: error.line,
        })?;
        let builtin = DefaultSection::default();
        let builtin_defaults = move |name: &str| match name {
            "state_path" => Some(builtin.state_path.clone()),
            "host" => Some(builtin.host.clone()),
            _ => None,
        };
        let source = Source {
            document: &document,
            file,
            builtin_defaults: &builtin_defaults,
        };
        let config = MagnumConfig {
            source_file: None,
            default: DefaultSection::load(&source)?,
            api: ApiSection::load(&source)?,
            database: DatabaseSection::load(&source)?,
            identity: IdentitySection::load(&source)?,
            keystone_authtoken: KeystoneAuthtokenSection::load(&source)?,
            oslo_policy: OsloPolicySection::load(&source)?,
            cluster_template: ClusterTemplateSection::load(&source)?,
            drivers: DriversSection::load(&source)?,
            docker: DockerSection::load(&source)?,
            x509: X509Section::load(&source)?,
            conductor: ConductorSection::load(&source)?,
            quotas: QuotasSection::load(&source)?,
            security_compliance: SecurityComplianceSection::load(&source)?,
            trust: TrustSection::load(&source)?,
            heat_client: HeatClientSection::load(&source)?,
            glance_client: GlanceClientSection::load(&source)?,
            nova_client: NovaClientSection::load(&source)?,
            neutron_client: NeutronClientSection::load(&source)?,
            octavia_client: OctaviaClientSection::load(&source)?,
            cinder_client: CinderClientSection::load(&source)?,
            unknown_options: unknown_options(&document),
        };
        config.check(file)?;
        Ok(config)
    }

    /// Rules that involve more than one option.
    fn check(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |section: &str, option: &str, reason: &str| ConfigError::InvalidValue {
            file: file.to_string(),
            section: section.to_string(),
            option: option.to_string(),
            reason: reason.to_string(),
        };
        if self.api.max_connections == 0
            || self.api.header_read_timeout == 0
            || self.api.request_timeout == 0
            || self.api.max_body_size < 1024
        {
            return Err(invalid(
                "api",
                "max_connections",
                "max_connections, header_read_timeout and request_timeout must be at least 1, max_body_size at least 1024",
            ));
        }
        if !(1..=300).contains(&self.database.pool_timeout) || self.database.max_pool_size == 0 {
            return Err(invalid(
                "database",
                "pool_timeout",
                "pool_timeout must be between 1 and 300 seconds and max_pool_size at least 1",
            ));
        }
        if self.api.max_limit == 0 {
            return Err(invalid("api", "max_limit", "must be at least 1"));
        }
        if self
            .security_compliance
            .lockout_failure_attempts
            .is_some_and(|attempts| attempts < 1)
            || self.security_compliance.lockout_duration == 0
            || self.identity.max_concurrent_password_checks == 0
        {
            return Err(invalid(
                "security_compliance",
                "lockout_failure_attempts",
                "lockout_failure_attempts and lockout_duration, and [identity] max_concurrent_password_checks, must be at least 1",
            ));
        }
        if self.identity.token_expiration == 0 {
            return Err(invalid(
                "identity",
                "token_expiration",
                "must be at least 1 second",
            ));
        }
        if self.default.periodic_interval_max == 0 {
            return Err(invalid(
                "DEFAULT",
                "periodic_interval_max",
                "must be at least 1 second",
            ));
        }
        if self.providers().0.iter().any(|name| name == "openstack")
            && self.api.auth_strategy != AuthStrategy::Keystone
        {
            return Err(invalid(
                "drivers",
                "enabled_providers",
                "the openstack provider needs [api] auth_strategy = keystone: the cloud must accept the tokens callers bring, and magnumd's service user comes from [keystone_authtoken]",
            ));
        }
        if self.api.auth_strategy == AuthStrategy::Keystone {
            if self.keystone_authtoken.auth_url.is_none() {
                return Err(invalid(
                    "keystone_authtoken",
                    "auth_url",
                    "is required when [api] auth_strategy = keystone",
                ));
            }
            if self.keystone_authtoken.username.is_none()
                || self.keystone_authtoken.password.is_none()
            {
                return Err(invalid(
                    "keystone_authtoken",
                    "username",
                    "username and password of a service user are required when [api] auth_strategy = keystone",
                ));
            }
        }
        if self.api.auth_strategy == AuthStrategy::Noauth
            && !self.api.noauth_allow_remote
            && !is_loopback_host(&self.api.host)
        {
            return Err(invalid(
                "api",
                "host",
                "with auth_strategy = noauth the API trusts every caller, so it listens only on loopback (127.0.0.1, ::1, localhost) unless [api] noauth_allow_remote = true",
            ));
        }
        let (enabled, default) = self.providers();
        for name in &enabled {
            match name.as_str() {
                "docker" | "unverified" | "openstack" => {}
                other => {
                    return Err(invalid(
                        "drivers",
                        "enabled_providers",
                        &format!(
                            "unknown provider '{other}' (known: docker, openstack, unverified)"
                        ),
                    ))
                }
            }
        }
        if enabled.is_empty() {
            return Err(invalid(
                "drivers",
                "enabled_providers",
                "at least one provider must be enabled",
            ));
        }
        if !enabled.contains(&default) {
            return Err(invalid(
                "drivers",
                "default_provider",
                &format!("'{default}' is not one of enabled_providers"),
            ));
        }
        for (option, text) in [
            ("subnet_pool", &self.docker.subnet_pool),
            ("swarm_address_pool", &self.docker.swarm_address_pool),
        ] {
            let valid = text.split_once('/').is_some_and(|(address, length)| {
                address.parse::<std::net::Ipv4Addr>().is_ok()
                    && length
                        .parse::<u8>()
                        .is_ok_and(|length| (8..=24).contains(&length))
            });
            if !valid {
                return Err(invalid(
                    "docker",
                    option,
                    "must be an IPv4 network such as 10.200.0.0/16 (prefix 8 to 24)",
                ));
            }
        }
        for flavor in &self.docker.flavors {
            if parse_flavor(flavor).is_none() {
                return Err(invalid(
                    "docker",
                    "flavors",
                    &format!("'{flavor}' is not name:cpus:memory_mib[:pids]"),
                ));
            }
        }
        if !self
            .docker
            .flavors
            .iter()
            .filter_map(|flavor| parse_flavor(flavor))
            .any(|(name, ..)| name == self.docker.default_flavor)
        {
            return Err(invalid(
                "docker",
                "default_flavor",
                &format!("'{}' is not one of flavors", self.docker.default_flavor),
            ));
        }
        if self.conductor.max_attempts < 1
            || self.conductor.operation_timeout == 0
            || self.conductor.call_timeout == 0
            || self.conductor.health_check_timeout == 0
        {
            return Err(invalid(
                "conductor",
                "max_attempts",
                "max_attempts, operation_timeout, call_timeout and health_check_timeout must be at least 1",
            ));
        }
        if self.conductor.workers == 0 || self.conductor.lease_seconds < 3 {
            return Err(invalid(
                "conductor",
                "lease_seconds",
                "workers must be at least 1 and lease_seconds at least 3",
            ));
        }
        if ![1024, 2048, 3072, 4096].contains(&self.x509.rsa_key_size) {
            return Err(invalid(
                "x509",
                "rsa_key_size",
                "must be 1024, 2048, 3072 or 4096",
            ));
        }
        for (option, url) in [
            ("public_url", &self.api.public_url),
            ("public_url", &self.identity.public_url),
        ] {
            if let Some(url) = url {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid("api/identity", option, "must be an http(s) URL"));
                }
            }
        }
        Ok(())
    }

    /// The enabled providers and the default one (`[drivers] provider`, when set, is both).
    pub fn providers(&self) -> (Vec<String>, String) {
        match &self.drivers.provider {
            Some(only) => (vec![only.clone()], only.clone()),
            None => (
                self.drivers.enabled_providers.clone(),
                self.drivers.default_provider.clone(),
            ),
        }
    }

    /// The state directory as a path.
    pub fn state_path(&self) -> PathBuf {
        PathBuf::from(&self.default.state_path)
    }

    /// The database URL, defaulting to SQLite under the state directory.
    pub fn database_connection(&self) -> DatabaseConnection {
        self.database
            .connection
            .clone()
            .unwrap_or_else(|| DatabaseConnection::Sqlite {
                path: Some(self.state_path().join("magnum.sqlite")),
            })
    }

    /// The file sealing CA keys at rest.
    pub fn encryption_key_file(&self) -> PathBuf {
        self.x509
            .encryption_key_file
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| self.state_path().join("ca-encryption.key"))
    }

    /// The policy file path, resolved against the directory of the config file.
    pub fn policy_file(&self) -> PathBuf {
        let path = PathBuf::from(&self.oslo_policy.policy_file);
        match (&self.source_file, path.is_absolute()) {
            (Some(source), false) => source
                .parent()
                .map(|directory| directory.join(&path))
                .unwrap_or(path),
            _ => path,
        }
    }

    /// A complete sample magnum.conf with every option commented out at its default.
    pub fn sample() -> String {
        [
            DefaultSection::sample(),
            ApiSection::sample(),
            DatabaseSection::sample(),
            IdentitySection::sample(),
            KeystoneAuthtokenSection::sample(),
            OsloPolicySection::sample(),
            ClusterTemplateSection::sample(),
            DriversSection::sample(),
            DockerSection::sample(),
            X509Section::sample(),
            ConductorSection::sample(),
            QuotasSection::sample(),
            SecurityComplianceSection::sample(),
            TrustSection::sample(),
            HeatClientSection::sample(),
            GlanceClientSection::sample(),
            NovaClientSection::sample(),
            NeutronClientSection::sample(),
            OctaviaClientSection::sample(),
            CinderClientSection::sample(),
        ]
        .join("\n")
    }
}

/// Processes and threads a node may have when its flavor does not say.
pub const DEFAULT_FLAVOR_PIDS: i64 = 4096;

/// Reads a `[docker] flavors` entry `name:cpus:memory_mib[:pids]`.
pub fn parse_flavor(text: &str) -> Option<(String, f64, u64, i64)> {
    let mut parts = text.split(':');
    let name = parts.next().filter(|name| !name.is_empty())?;
    let cpus: f64 = parts
        .next()?
        .parse()
        .ok()
        .filter(|cpus: &f64| *cpus > 0.0 && *cpus <= 1024.0)?;
    let memory: u64 = parts.next()?.parse().ok().filter(|memory| *memory >= 64)?;
    let pids: i64 = match parts.next() {
        None => DEFAULT_FLAVOR_PIDS,
        Some(text) => text.parse().ok().filter(|pids| *pids >= 64)?,
    };
    parts
        .next()
        .is_none()
        .then(|| (name.to_string(), cpus, memory, pids))
}

fn unknown_options(document: &IniDocument) -> Vec<String> {
    let known = known_options();
    let mut unknown = Vec::new();
    for (section, options) in document.sections() {
        let known_in_section = known
            .iter()
            .find(|(name, _)| *name == section)
            .map(|(_, docs)| *docs);
        for option in options {
            let is_known = known_in_section
                .map(|docs| docs.iter().any(|doc| doc.name == option))
                .unwrap_or(false);
            if !is_known {
                unknown.push(format!("[{section}] {option}"));
            }
        }
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noauth_listens_only_on_loopback_unless_allowed() {
        for host in ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"] {
            let text = format!("[api]\nauth_strategy = noauth\nhost = {host}\n");
            assert!(MagnumConfig::from_text(&text, "t").is_ok(), "{host}");
        }
        let exposed = "[api]\nauth_strategy = noauth\nhost = 0.0.0.0\n";
        assert!(MagnumConfig::from_text(exposed, "t").is_err());
        let allowed = format!("{exposed}noauth_allow_remote = true\n");
        assert!(MagnumConfig::from_text(&allowed, "t").is_ok());
        assert_eq!(
            MagnumConfig::default().api.noauth_roles,
            vec!["member".to_string(), "reader".to_string()]
        );
    }

    #[test]
    fn every_option_has_a_working_default() {
        let config = MagnumConfig::from_text("", "magnum.conf").unwrap();
        assert_eq!(config.api.port, 9511);
        assert_eq!(config.api.host, "127.0.0.1");
        assert_eq!(config.identity.port, 5000);
        assert_eq!(config.api.auth_strategy, AuthStrategy::Builtin);
        assert_eq!(
            config.database_connection(),
            DatabaseConnection::Sqlite {
                path: Some(PathBuf::from("./state/magnum.sqlite"))
            }
        );
    }

    #[test]
    fn values_from_the_file_override_defaults() {
        let config = MagnumConfig::from_text(
            "[DEFAULT]\nstate_path = /srv/magnum\n[api]\nport = 9600\nauth_strategy = noauth\n[database]\nconnection = sqlite:///$state_path/x.db\n",
            "magnum.conf",
        )
        .unwrap();
        assert_eq!(config.api.port, 9600);
        assert_eq!(config.api.auth_strategy, AuthStrategy::Noauth);
        assert_eq!(
            config.database_connection(),
            DatabaseConnection::Sqlite {
                path: Some(PathBuf::from("/srv/magnum/x.db"))
            }
        );
    }

    #[test]
    fn bad_values_name_file_section_option_and_reason() {
        let error =
            MagnumConfig::from_text("[api]\nport = http\n", "/etc/magnum/magnum.conf").unwrap_err();
        assert_eq!(
            error.to_string(),
            "/etc/magnum/magnum.conf: [api] port: 'http' is not an integer between 0 and 65535"
        );
        let error = MagnumConfig::from_text("[api]\nauth_strategy = ldap\n", "m.conf").unwrap_err();
        assert!(error
            .to_string()
            .starts_with("m.conf: [api] auth_strategy:"));
        let error =
            MagnumConfig::from_text("[database]\nconnection = db2://x/y\n", "m.conf").unwrap_err();
        assert!(error
            .to_string()
            .contains("[database] connection: unsupported database"));
    }

    #[test]
    fn keystone_strategy_needs_its_section() {
        let error =
            MagnumConfig::from_text("[api]\nauth_strategy = keystone\n", "m.conf").unwrap_err();
        assert!(error.to_string().contains("[keystone_authtoken] auth_url"));
    }

    #[test]
    fn the_openstack_provider_needs_keystone_and_reads_its_client_sections() {
        let error = MagnumConfig::from_text(
            "[drivers]\nenabled_providers = docker, openstack\n",
            "m.conf",
        )
        .unwrap_err();
        assert!(error
            .to_string()
            .contains("the openstack provider needs [api] auth_strategy = keystone"));
        let config = MagnumConfig::from_text(
            "[api]\nauth_strategy = keystone\n[keystone_authtoken]\nauth_url = http://k/v3\n\
             username = magnum\npassword = p\n[drivers]\nenabled_providers = docker, openstack\n\
             [glance_client]\nregion_name = RegionTwo\nendpoint_type = internalURL\n\
             [trust]\ntrustee_domain_name = magnum\ntrustee_domain_admin_name = magnum_domain_admin\n",
            "m.conf",
        )
        .unwrap();
        assert_eq!(
            config.glance_client.region_name.as_deref(),
            Some("RegionTwo")
        );
        assert_eq!(config.glance_client.endpoint_type, "internalURL");
        assert_eq!(config.heat_client.endpoint_type, "publicURL");
        assert_eq!(config.trust.trustee_domain_name.as_deref(), Some("magnum"));
        assert_eq!(config.unknown_options, Vec::<String>::new());
    }

    #[test]
    fn every_section_of_the_sample_is_known() {
        let config = MagnumConfig::from_text(
            "[drivers]\nprovider = docker\n[docker]\nnode_image = n:1\n[x509]\nrsa_key_size = 4096\n\
             [conductor]\nsync_interval = 3\n[quotas]\nmax_clusters_per_project = 2\n",
            "m.conf",
        )
        .unwrap();
        assert_eq!(config.unknown_options, Vec::<String>::new());
        let sample = MagnumConfig::from_text(&MagnumConfig::sample(), "sample.conf").unwrap();
        assert_eq!(sample.unknown_options, Vec::<String>::new());
    }

    #[test]
    fn every_client_section_is_known() {
        let text = "[heat_client]\nregion_name = R\n[glance_client]\nregion_name = R\n\
                    [nova_client]\nregion_name = R\n[neutron_client]\nregion_name = R\n\
                    [octavia_client]\nregion_name = R\n[cinder_client]\nregion_name = R\n";
        let config = MagnumConfig::from_text(text, "m.conf").unwrap();
        assert!(
            config.unknown_options.is_empty(),
            "{:?}",
            config.unknown_options
        );
        assert_eq!(config.cinder_client.region_name.as_deref(), Some("R"));
    }

    #[test]
    fn unknown_options_are_reported() {
        let config = MagnumConfig::from_text("[api]\nprot = 1\n[heat]\nx = y\n", "m.conf").unwrap();
        assert_eq!(config.unknown_options, vec!["[api] prot", "[heat] x"]);
    }

    #[test]
    fn sample_lists_every_option_and_loads_back() {
        let sample = MagnumConfig::sample();
        for (section, options) in known_options() {
            assert!(sample.contains(&format!("[{section}]")));
            for option in options {
                assert!(
                    sample.contains(&format!("#{} = ", option.name)),
                    "{}",
                    option.name
                );
            }
        }
        let reloaded = MagnumConfig::from_text(&sample, "sample").unwrap();
        assert_eq!(reloaded.api, ApiSection::default());
    }

    #[test]
    fn docker_and_conductor_options_are_checked() {
        for (text, option) in [
            (
                "[docker]\nsubnet_pool = 10.200.0.0\n",
                "[docker] subnet_pool",
            ),
            ("[docker]\nflavors = tiny:1\n", "[docker] flavors"),
            ("[drivers]\nprovider = heat\n", "unknown provider 'heat'"),
            ("[x509]\nrsa_key_size = 12\n", "[x509] rsa_key_size"),
        ] {
            let error = MagnumConfig::from_text(text, "m.conf")
                .unwrap_err()
                .to_string();
            assert!(error.contains(option), "{text}: {error}");
        }
        assert_eq!(
            parse_flavor("m1.small:1:2048"),
            Some(("m1.small".to_string(), 1.0, 2048, DEFAULT_FLAVOR_PIDS))
        );
        assert_eq!(
            parse_flavor("x:0.5:512:300"),
            Some(("x".to_string(), 0.5, 512, 300))
        );
        assert_eq!(parse_flavor("x:0:512"), None);
        assert_eq!(parse_flavor("x:1:512:10"), None);
        for (text, option) in [
            (
                "[drivers]\nenabled_providers = docker\ndefault_provider = unverified\n",
                "default_provider",
            ),
            ("[drivers]\nenabled_providers = gce\n", "unknown provider"),
            (
                "[drivers]\nenabled_providers = openstack\ndefault_provider = openstack\n",
                "needs [api] auth_strategy = keystone",
            ),
            ("[docker]\ndefault_flavor = m9.huge\n", "default_flavor"),
        ] {
            let error = MagnumConfig::from_text(text, "m.conf")
                .unwrap_err()
                .to_string();
            assert!(error.contains(option), "{text}: {error}");
        }
        let legacy =
            MagnumConfig::from_text("[drivers]\nprovider = unverified\n", "m.conf").unwrap();
        assert_eq!(
            legacy.providers(),
            (vec!["unverified".to_string()], "unverified".to_string())
        );
    }

    #[test]
    fn load_reports_a_missing_file() {
        let error = MagnumConfig::load(Path::new("/nonexistent/magnum.conf")).unwrap_err();
        assert!(matches!(error, ConfigError::Unreadable { .. }));
    }

    #[test]
    fn policy_file_is_relative_to_the_config_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("magnum.conf");
        std::fs::write(&path, "").unwrap();
        let config = MagnumConfig::load(&path).unwrap();
        assert_eq!(config.policy_file(), directory.path().join("policy.yaml"));
    }
}
