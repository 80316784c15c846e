//! The drivers Magnum-rs knows, and how a cluster template selects one.
//!
//! A driver is a (COE, provider) pair identified by name and by the tuple
//! (`server_type`, image `os_distro`, `coe`) it provides, as upstream's drivers are.
//! Selection order (spec §9.1): the template's explicit `driver`, then the image's
//! `magnum_driver` property, then the tuple.

use magnum_core::coe::Coe;
use magnum_core::DomainError;

/// Which infrastructure a driver builds on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Containers on the local Docker engine.
    Docker,
    /// OpenStack Heat stacks.
    Heat,
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
        provider: ProviderKind::Heat,
    },
    DriverInfo {
        name: "k8s_fedora_atomic_v1",
        server_type: "vm",
        os_distro: "fedora-atomic",
        coe: Coe::Kubernetes,
        provider: ProviderKind::Heat,
    },
    DriverInfo {
        name: "k8s_fedora_coreos_v1",
        server_type: "vm",
        os_distro: "fedora-coreos",
        coe: Coe::Kubernetes,
        provider: ProviderKind::Heat,
    },
    DriverInfo {
        name: "k8s_fedora_ironic_v1",
        server_type: "bm",
        os_distro: "fedora",
        coe: Coe::Kubernetes,
        provider: ProviderKind::Heat,
    },
    DriverInfo {
        name: "mesos_ubuntu_v1",
        server_type: "vm",
        os_distro: "ubuntu",
        coe: Coe::Mesos,
        provider: ProviderKind::Heat,
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
        provider: ProviderKind::Heat,
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
    pub fn select(
        &self,
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
            return Ok(Some(driver));
        }
        let Some(os_distro) = os_distro else {
            return Ok(None);
        };
        self.drivers
            .iter()
            .find(|driver| {
                driver.server_type == server_type
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

/// The drivers this deployment can run, by registry name.
#[derive(Debug, Clone, Default)]
pub struct DriverSet {
    registry: DriverRegistry,
    available: std::collections::HashMap<&'static str, std::sync::Arc<dyn crate::ClusterDriver>>,
}

impl DriverSet {
    pub fn new(available: Vec<std::sync::Arc<dyn crate::ClusterDriver>>) -> Self {
        Self {
            registry: DriverRegistry::default(),
            available: available
                .into_iter()
                .map(|driver| (driver.name(), driver))
                .collect(),
        }
    }

    /// The driver that builds clusters of `template`, or why none can.
    pub fn for_template(
        &self,
        template: &magnum_core::cluster_template::ClusterTemplate,
    ) -> Result<std::sync::Arc<dyn crate::ClusterDriver>, DomainError> {
        let name = match &template.driver {
            Some(name) => name.clone(),
            None => match self.registry.select(
                None,
                None,
                &template.server_type,
                template.cluster_distro.as_deref(),
                template.coe,
            )? {
                Some(driver) => driver.name.to_string(),
                None => {
                    return Err(DomainError::invalid(format!(
                        "No driver can build clusters from template {}: the distribution of image {} is unknown (is an infrastructure provider configured?).",
                        template.uuid, template.image_id
                    )))
                }
            },
        };
        self.available.get(name.as_str()).cloned().ok_or_else(|| {
            DomainError::invalid(format!(
                "Cluster driver ({name}) is not available in this deployment."
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_tuples_select_their_drivers() {
        let registry = DriverRegistry::default();
        let select = |server_type, distro, coe| {
            registry
                .select(None, None, server_type, Some(distro), coe)
                .unwrap()
                .map(|driver| driver.name)
        };
        assert_eq!(
            select("vm", "fedora-atomic", Coe::Kubernetes),
            Some("k8s_fedora_atomic_v1")
        );
        assert_eq!(
            select("vm", "coreos", Coe::Kubernetes),
            Some("k8s_coreos_v1")
        );
        assert_eq!(
            select("vm", "fedora-atomic", Coe::Swarm),
            Some("swarm_fedora_atomic_v1")
        );
        assert_eq!(select("vm", "ubuntu", Coe::Mesos), Some("mesos_ubuntu_v1"));
        assert_eq!(select("vm", "debian", Coe::Swarm), Some("swarm_docker_v1"));
    }

    #[test]
    fn unknown_tuples_and_names_are_refused() {
        let registry = DriverRegistry::default();
        assert_eq!(
            registry
                .select(None, None, "vm", Some("windows"), Coe::Kubernetes)
                .unwrap_err()
                .message,
            "Cluster type (vm, windows, kubernetes) not supported."
        );
        assert_eq!(
            registry
                .select(Some("nope"), None, "vm", None, Coe::Swarm)
                .unwrap_err()
                .message,
            "Cluster driver (nope) not supported."
        );
        assert!(registry
            .select(Some("mesos_ubuntu_v1"), None, "vm", None, Coe::Swarm)
            .is_err());
    }

    #[test]
    fn explicit_driver_beats_image_property_beats_tuple() {
        let registry = DriverRegistry::default();
        let chosen = registry
            .select(
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
                .select(None, None, "vm", None, Coe::Kubernetes)
                .unwrap(),
            None
        );
    }
}
