//! The drivers Magnum-rs knows, the providers a deployment enables, and how a cluster
//! template selects both.
//!
//! A driver is a (COE, provider) pair identified by name and by the tuple
//! (`server_type`, image `os_distro`, `coe`) it provides, as upstream's drivers are.
//!
//! **Which provider serves a template.** The template's `provider` label names it
//! (`docker`, `openstack`); a template without the label is served by
//! `[drivers] default_provider`. The provider must be one the deployment enables
//! (`[drivers] enabled_providers`), and it must have a driver for the template's COE. That
//! provider answers every lookup the template and its clusters make (image, flavors,
//! keypair, networks), and the driver is chosen among its drivers only (spec §9.1: the
//! template's explicit `driver`, then the image's `magnum_driver` property, then the tuple).
//! The chosen driver is stored with the template and then with each cluster, so changing
//! the default provider later moves no existing template or cluster.

use crate::cluster_driver::ClusterDriver;
use crate::provider::InfrastructureProvider;
use magnum_core::cluster_template::ClusterTemplate;
use magnum_core::coe::Coe;
use magnum_core::labels::Labels;
use magnum_core::DomainError;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The template label naming the provider that serves it.
pub const PROVIDER_LABEL: &str = "provider";

/// Which infrastructure a driver builds on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProviderKind {
    /// Containers on the local Docker engine.
    Docker,
    /// An OpenStack cloud: Heat stacks of Nova servers.
    OpenStack,
    /// No infrastructure: names are accepted unchecked and nothing can be built.
    Unverified,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [
        ProviderKind::Docker,
        ProviderKind::OpenStack,
        ProviderKind::Unverified,
    ];

    /// The name used in configuration and in the `provider` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Docker => "docker",
            ProviderKind::OpenStack => "openstack",
            ProviderKind::Unverified => "unverified",
        }
    }

    pub fn parse(text: &str) -> Option<ProviderKind> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

impl std::fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverInfo {
    pub name: &'static str,
    pub server_type: &'static str,
    pub os_distro: &'static str,
    pub coe: Coe,
    pub provider: ProviderKind,
}

/// Every driver, in name order.
pub const DRIVERS: &[DriverInfo] = &[
    DriverInfo {
        name: "k8s_coreos_v1",
        server_type: "vm",
        os_distro: "coreos",
        coe: Coe::Kubernetes,
        provider: ProviderKind::OpenStack,
    },
    DriverInfo {
        name: "k8s_fedora_atomic_v1",
        server_type: "vm",
        os_distro: "fedora-atomic",
        coe: Coe::Kubernetes,
        provider: ProviderKind::OpenStack,
    },
    DriverInfo {
        name: "k8s_fedora_coreos_v1",
        server_type: "vm",
        os_distro: "fedora-coreos",
        coe: Coe::Kubernetes,
        provider: ProviderKind::OpenStack,
    },
    DriverInfo {
        name: "k8s_fedora_ironic_v1",
        server_type: "bm",
        os_distro: "fedora",
        coe: Coe::Kubernetes,
        provider: ProviderKind::OpenStack,
    },
    DriverInfo {
        name: "mesos_ubuntu_v1",
        server_type: "vm",
        os_distro: "ubuntu",
        coe: Coe::Mesos,
        provider: ProviderKind::OpenStack,
    },
    DriverInfo {
        name: "swarm_docker_v1",
        server_type: "vm",
        os_distro: "debian",
        coe: Coe::Swarm,
        provider: ProviderKind::Docker,
    },
    DriverInfo {
        name: "swarm_fedora_atomic_v1",
        server_type: "vm",
        os_distro: "fedora-atomic",
        coe: Coe::Swarm,
        provider: ProviderKind::OpenStack,
    },
];

/// The set of installed drivers.
#[derive(Debug, Clone)]
pub struct DriverRegistry {
    drivers: Vec<DriverInfo>,
}

impl Default for DriverRegistry {
    fn default() -> Self {
        Self {
            drivers: DRIVERS.to_vec(),
        }
    }
}

impl DriverRegistry {
    pub fn by_name(&self, name: &str) -> Option<&DriverInfo> {
        self.drivers.iter().find(|driver| driver.name == name)
    }

    pub fn drivers(&self) -> &[DriverInfo] {
        &self.drivers
    }

    /// Selects the driver of a template. Returns `Ok(None)` when nothing names a driver and
    /// the image's distro is unknown (the provider cannot tell), so selection must wait.
    /// Whether `provider` has a driver for `coe`.
    pub fn provides(&self, provider: ProviderKind, coe: Coe) -> bool {
        self.drivers
            .iter()
            .any(|driver| driver.provider == provider && driver.coe == coe)
    }

    /// Selects the driver of a template served by `provider`. Returns `Ok(None)` when
    /// nothing names a driver and the image's distro is unknown (the provider cannot tell),
    /// so selection must wait.
    pub fn select(
        &self,
        provider: ProviderKind,
        explicit_driver: Option<&str>,
        image_driver: Option<&str>,
        server_type: &str,
        os_distro: Option<&str>,
        coe: Coe,
    ) -> Result<Option<&DriverInfo>, DomainError> {
        if let Some(name) = explicit_driver.or(image_driver) {
            let driver = self.by_name(name).ok_or_else(|| {
                DomainError::invalid(format!("Cluster driver ({name}) not supported."))
            })?;
            if driver.coe != coe {
                return Err(DomainError::invalid(format!(
                    "Cluster driver ({name}) does not support the {coe} engine."
                )));
            }
            // The unverified provider builds nothing, so any driver may be named there (its
            // clusters need the driver's own provider enabled).
            if driver.provider != provider && provider != ProviderKind::Unverified {
                return Err(DomainError::invalid(format!(
                    "Cluster driver ({name}) belongs to the {} provider, not to the {provider} provider that serves this template.",
                    driver.provider
                )));
            }
            return Ok(Some(driver));
        }
        let Some(os_distro) = os_distro else {
            return Ok(None);
        };
        self.drivers
            .iter()
            .find(|driver| {
                driver.provider == provider
                    && driver.server_type == server_type
                    && driver.os_distro == os_distro
                    && driver.coe == coe
            })
            .map(Some)
            .ok_or_else(|| {
                DomainError::invalid(format!(
                    "Cluster type ({server_type}, {os_distro}, {coe}) not supported."
                ))
            })
    }
}

/// One enabled provider: its lookups and the drivers it runs.
#[derive(Debug, Clone)]
pub struct EnabledProvider {
    pub lookups: Arc<dyn InfrastructureProvider>,
    pub drivers: Vec<Arc<dyn ClusterDriver>>,
}

/// The infrastructure a deployment runs: its enabled providers side by side, and which one
/// serves a template that names none.
#[derive(Debug, Clone)]
pub struct Infrastructure {
    registry: DriverRegistry,
    providers: BTreeMap<ProviderKind, EnabledProvider>,
    default_provider: ProviderKind,
}

impl Infrastructure {
    /// `providers` are the enabled ones; `default_provider` must be among them.
    pub fn new(
        providers: Vec<EnabledProvider>,
        default_provider: ProviderKind,
    ) -> Result<Infrastructure, String> {
        let providers: BTreeMap<ProviderKind, EnabledProvider> = providers
            .into_iter()
            .map(|provider| (provider.lookups.kind(), provider))
            .collect();
        if !providers.contains_key(&default_provider) {
            return Err(format!(
                "the default provider {default_provider} is not enabled"
            ));
        }
        Ok(Infrastructure {
            registry: DriverRegistry::default(),
            providers,
            default_provider,
        })
    }

    /// A deployment with only the unverified provider (nothing is checked or built).
    pub fn unverified() -> Infrastructure {
        Infrastructure {
            registry: DriverRegistry::default(),
            providers: BTreeMap::from([(
                ProviderKind::Unverified,
                EnabledProvider {
                    lookups: Arc::new(crate::provider::UnverifiedProvider),
                    drivers: Vec::new(),
                },
            )]),
            default_provider: ProviderKind::Unverified,
        }
    }

    pub fn registry(&self) -> &DriverRegistry {
        &self.registry
    }

    pub fn default_provider(&self) -> ProviderKind {
        self.default_provider
    }

    /// The enabled providers, by name.
    pub fn enabled(&self) -> Vec<ProviderKind> {
        self.providers.keys().copied().collect()
    }

    fn enabled_names(&self) -> String {
        self.enabled()
            .iter()
            .map(|kind| kind.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The provider a template with these labels is served by: its `provider` label, or
    /// the default. Refused (400) when the label names no provider or one that is not
    /// enabled, or when the provider has no driver for `coe`.
    pub fn provider_for(&self, labels: &Labels, coe: Coe) -> Result<ProviderKind, DomainError> {
        let kind = match labels.get(PROVIDER_LABEL) {
            None => self.default_provider,
            Some(name) => ProviderKind::parse(name).ok_or_else(|| {
                DomainError::invalid(format!(
                    "Invalid value '{name}' for label {PROVIDER_LABEL}: expected one of docker, openstack, unverified."
                ))
            })?,
        };
        if !self.providers.contains_key(&kind) {
            return Err(DomainError::invalid(format!(
                "The {kind} provider is not enabled in this deployment ([drivers] enabled_providers = {}).",
                self.enabled_names()
            )));
        }
        if kind != ProviderKind::Unverified && !self.registry.provides(kind, coe) {
            let elsewhere: Vec<&str> = ProviderKind::ALL
                .into_iter()
                .filter(|other| self.registry.provides(*other, coe))
                .map(ProviderKind::as_str)
                .collect();
            // Clients show an error up to its first full stop: the reason comes first.
            let hint = match elsewhere.as_slice() {
                [] => String::new(),
                names => format!(
                    "; they are built by the {} provider (label {PROVIDER_LABEL}={}), which {} enabled here ([drivers] enabled_providers = {})",
                    names.join(" or "),
                    names[0],
                    if names.iter().any(|name| ProviderKind::parse(name).is_some_and(|kind| self.providers.contains_key(&kind))) { "is" } else { "is not" },
                    self.enabled_names()
                ),
            };
            return Err(DomainError::invalid(format!(
                "The {kind} provider cannot build {coe} clusters{hint}."
            )));
        }
        Ok(kind)
    }

    /// The lookups of an enabled provider.
    pub fn lookups(
        &self,
        kind: ProviderKind,
    ) -> Result<&Arc<dyn InfrastructureProvider>, DomainError> {
        self.providers
            .get(&kind)
            .map(|provider| &provider.lookups)
            .ok_or_else(|| {
                DomainError::invalid(format!(
                    "The {kind} provider is not enabled in this deployment ([drivers] enabled_providers = {}).",
                    self.enabled_names()
                ))
            })
    }

    /// The provider that serves a stored template: its driver's, else its labels'.
    pub fn provider_of(&self, template: &ClusterTemplate) -> Result<ProviderKind, DomainError> {
        match template
            .driver
            .as_deref()
            .and_then(|name| self.registry.by_name(name))
        {
            Some(driver) => Ok(driver.provider),
            None => self.provider_for(&template.labels, template.coe),
        }
    }

    /// The running driver of this name, or why it cannot run here.
    pub fn driver(&self, name: &str) -> Result<Arc<dyn ClusterDriver>, DomainError> {
        let info = self.registry.by_name(name).ok_or_else(|| {
            DomainError::invalid(format!("Cluster driver ({name}) not supported."))
        })?;
        let provider = self.providers.get(&info.provider).ok_or_else(|| {
            DomainError::invalid(format!(
                "Cluster driver ({name}) needs the {} provider, which is not enabled in this deployment ([drivers] enabled_providers = {}).",
                info.provider,
                self.enabled_names()
            ))
        })?;
        provider
            .drivers
            .iter()
            .find(|driver| driver.name() == name)
            .cloned()
            .ok_or_else(|| {
                DomainError::invalid(format!(
                    "Cluster driver ({name}) is not available in this deployment."
                ))
            })
    }

    /// The driver that builds clusters of `template`, or why none can.
    pub fn driver_for(
        &self,
        template: &ClusterTemplate,
    ) -> Result<Arc<dyn ClusterDriver>, DomainError> {
        match &template.driver {
            Some(name) => self.driver(name),
            None => Err(DomainError::invalid(format!(
                "No driver can build clusters from template {}: the distribution of image {} is unknown (is the template's provider able to look images up?).",
                template.uuid, template.image_id
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_tuples_select_their_drivers() {
        let registry = DriverRegistry::default();
        let select = |provider, server_type, distro, coe| {
            registry
                .select(provider, None, None, server_type, Some(distro), coe)
                .unwrap()
                .map(|driver| driver.name)
        };
        use ProviderKind::{Docker, OpenStack};
        assert_eq!(
            select(OpenStack, "vm", "fedora-atomic", Coe::Kubernetes),
            Some("k8s_fedora_atomic_v1")
        );
        assert_eq!(
            select(OpenStack, "vm", "coreos", Coe::Kubernetes),
            Some("k8s_coreos_v1")
        );
        assert_eq!(
            select(OpenStack, "vm", "fedora-atomic", Coe::Swarm),
            Some("swarm_fedora_atomic_v1")
        );
        assert_eq!(
            select(OpenStack, "vm", "ubuntu", Coe::Mesos),
            Some("mesos_ubuntu_v1")
        );
        assert_eq!(
            select(Docker, "vm", "debian", Coe::Swarm),
            Some("swarm_docker_v1")
        );
        // A provider chooses among its own drivers only.
        assert!(registry
            .select(Docker, None, None, "vm", Some("fedora-atomic"), Coe::Swarm)
            .is_err());
        assert!(registry
            .select(
                Docker,
                Some("k8s_coreos_v1"),
                None,
                "vm",
                None,
                Coe::Kubernetes
            )
            .is_err());
        assert!(registry.provides(Docker, Coe::Swarm));
        assert!(!registry.provides(Docker, Coe::Kubernetes));
    }

    #[test]
    fn unknown_tuples_and_names_are_refused() {
        let registry = DriverRegistry::default();
        assert_eq!(
            registry
                .select(
                    ProviderKind::OpenStack,
                    None,
                    None,
                    "vm",
                    Some("windows"),
                    Coe::Kubernetes
                )
                .unwrap_err()
                .message,
            "Cluster type (vm, windows, kubernetes) not supported."
        );
        assert_eq!(
            registry
                .select(
                    ProviderKind::Docker,
                    Some("nope"),
                    None,
                    "vm",
                    None,
                    Coe::Swarm
                )
                .unwrap_err()
                .message,
            "Cluster driver (nope) not supported."
        );
        assert!(registry
            .select(
                ProviderKind::OpenStack,
                Some("mesos_ubuntu_v1"),
                None,
                "vm",
                None,
                Coe::Swarm
            )
            .is_err());
    }

    #[test]
    fn explicit_driver_beats_image_property_beats_tuple() {
        let registry = DriverRegistry::default();
        let chosen = registry
            .select(
                ProviderKind::OpenStack,
                Some("k8s_coreos_v1"),
                Some("k8s_fedora_atomic_v1"),
                "vm",
                Some("fedora-atomic"),
                Coe::Kubernetes,
            )
            .unwrap()
            .unwrap();
        assert_eq!(chosen.name, "k8s_coreos_v1");
        let from_image = registry
            .select(
                ProviderKind::OpenStack,
                None,
                Some("k8s_fedora_coreos_v1"),
                "vm",
                Some("fedora-atomic"),
                Coe::Kubernetes,
            )
            .unwrap()
            .unwrap();
        assert_eq!(from_image.name, "k8s_fedora_coreos_v1");
        assert_eq!(
            registry
                .select(
                    ProviderKind::OpenStack,
                    None,
                    None,
                    "vm",
                    None,
                    Coe::Kubernetes
                )
                .unwrap(),
            None
        );
    }
}
