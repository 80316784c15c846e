//! Container orchestration engines and what each supports.
//!
//! The network-driver matrix is the one of the 2016 user guide (flannel for Kubernetes and
//! Swarm, docker for Swarm and Mesos) extended with the drivers the current API accepts
//! (calico for Kubernetes, the `swarm-mode` engine).

use crate::{ApiGeneration, DomainError};
use std::fmt;
use std::str::FromStr;

/// A container orchestration engine a cluster template can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Coe {
    Kubernetes,
    Swarm,
    /// Docker's built-in swarm mode; only known to the current API.
    SwarmMode,
    Mesos,
}

impl Coe {
    pub const ALL: [Coe; 4] = [Coe::Kubernetes, Coe::Mesos, Coe::Swarm, Coe::SwarmMode];

    pub fn as_str(self) -> &'static str {
        match self {
            Coe::Kubernetes => "kubernetes",
            Coe::Swarm => "swarm",
            Coe::SwarmMode => "swarm-mode",
            Coe::Mesos => "mesos",
        }
    }

    /// Parses the `coe` attribute as the given API generation accepts it.
    pub fn parse_for(value: &str, generation: ApiGeneration) -> Result<Coe, DomainError> {
        let parsed = value.parse::<Coe>().ok();
        match (parsed, generation) {
            (Some(Coe::SwarmMode), ApiGeneration::Seed) | (None, ApiGeneration::Seed) => Err(
                DomainError::invalid(format!("Requested COE type {value} is not supported.")),
            ),
            (Some(coe), _) => Ok(coe),
            (None, ApiGeneration::Current) => Err(DomainError::invalid_field(
                "coe",
                value,
                "Value should be one of: kubernetes, mesos, swarm, swarm-mode",
            )),
        }
    }

    /// Network drivers this engine can run with, in the order error messages list them.
    pub fn supported_network_drivers(self, generation: ApiGeneration) -> &'static [&'static str] {
        match (self, generation) {
            (Coe::Kubernetes, ApiGeneration::Seed) => &["flannel"],
            (Coe::Kubernetes, ApiGeneration::Current) => &["flannel", "calico"],
            (Coe::Swarm, _) | (Coe::SwarmMode, _) => &["docker", "flannel"],
            (Coe::Mesos, _) => &["docker"],
        }
    }

    /// Volume drivers this engine can run with.
    pub fn supported_volume_drivers(self) -> &'static [&'static str] {
        match self {
            Coe::Kubernetes => &["cinder"],
            Coe::Swarm | Coe::SwarmMode | Coe::Mesos => &["rexray"],
        }
    }

    /// The network driver used when a template names none (operators may override it).
    pub fn builtin_default_network_driver(self) -> &'static str {
        match self {
            Coe::Kubernetes => "flannel",
            Coe::Swarm | Coe::SwarmMode | Coe::Mesos => "docker",
        }
    }
}

impl fmt::Display for Coe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Coe {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "kubernetes" => Ok(Coe::Kubernetes),
            "swarm" => Ok(Coe::Swarm),
            "swarm-mode" => Ok(Coe::SwarmMode),
            "mesos" => Ok(Coe::Mesos),
            _ => Err(()),
        }
    }
}

/// Operator settings that shape network-driver validation, one entry per engine
/// (`[cluster_template] <coe>_allowed_network_drivers` and `<coe>_default_network_driver`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkDriverSettings {
    /// `None` means every supported driver is allowed (the upstream `['all']`).
    pub allowed: Option<Vec<String>>,
    pub default: String,
}

/// Network-driver settings for every engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRules {
    pub kubernetes: NetworkDriverSettings,
    pub swarm: NetworkDriverSettings,
    pub mesos: NetworkDriverSettings,
}

impl Default for TemplateRules {
    fn default() -> Self {
        let settings = |coe: Coe| NetworkDriverSettings {
            allowed: None,
            default: coe.builtin_default_network_driver().to_string(),
        };
        Self {
            kubernetes: settings(Coe::Kubernetes),
            swarm: settings(Coe::Swarm),
            mesos: settings(Coe::Mesos),
        }
    }
}

impl TemplateRules {
    pub fn network_settings(&self, coe: Coe) -> &NetworkDriverSettings {
        match coe {
            Coe::Kubernetes => &self.kubernetes,
            Coe::Swarm | Coe::SwarmMode => &self.swarm,
            Coe::Mesos => &self.mesos,
        }
    }

    /// Checks `network_driver` against the engine's matrix and the operator's allow-list.
    pub fn check_network_driver(
        &self,
        coe: Coe,
        network_driver: &str,
        generation: ApiGeneration,
    ) -> Result<(), DomainError> {
        let supported = coe.supported_network_drivers(generation);
        if !supported.contains(&network_driver) {
            return Err(DomainError::invalid(format!(
                "Network driver type {network_driver} is not supported, expecting a {}/unspecified network driver.",
                supported.join("/")
            )));
        }
        if let Some(allowed) = &self.network_settings(coe).allowed {
            if !allowed.iter().any(|candidate| candidate == network_driver) {
                return Err(DomainError::invalid(format!(
                    "Network driver type {network_driver} is not allowed, expecting a {}/unspecified network driver.",
                    allowed.join("/")
                )));
            }
        }
        Ok(())
    }
}

/// Checks `volume_driver` against the engine's supported list.
pub fn check_volume_driver(coe: Coe, volume_driver: &str) -> Result<(), DomainError> {
    let supported = coe.supported_volume_drivers();
    if supported.contains(&volume_driver) {
        Ok(())
    } else {
        Err(DomainError::invalid(format!(
            "Volume driver type {volume_driver} is not supported, expecting a {}/unspecified volume driver.",
            supported.join("/")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The user guide's matrix: flannel for Kubernetes and Swarm, docker for Swarm and Mesos.
    #[test]
    fn network_driver_matrix_matches_the_user_guide() {
        let rules = TemplateRules::default();
        let seed = ApiGeneration::Seed;
        assert!(rules
            .check_network_driver(Coe::Kubernetes, "flannel", seed)
            .is_ok());
        assert!(rules
            .check_network_driver(Coe::Kubernetes, "docker", seed)
            .is_err());
        assert!(rules
            .check_network_driver(Coe::Swarm, "flannel", seed)
            .is_ok());
        assert!(rules
            .check_network_driver(Coe::Swarm, "docker", seed)
            .is_ok());
        assert!(rules
            .check_network_driver(Coe::Mesos, "docker", seed)
            .is_ok());
        assert!(rules
            .check_network_driver(Coe::Mesos, "flannel", seed)
            .is_err());
    }

    #[test]
    fn unsupported_network_driver_message_lists_the_alternatives() {
        let error = TemplateRules::default()
            .check_network_driver(Coe::Mesos, "flannel", ApiGeneration::Current)
            .unwrap_err();
        assert_eq!(
            error.message,
            "Network driver type flannel is not supported, expecting a docker/unspecified network driver."
        );
    }

    #[test]
    fn operator_allow_list_narrows_the_matrix() {
        let mut rules = TemplateRules::default();
        rules.swarm.allowed = Some(vec!["docker".to_string()]);
        assert!(rules
            .check_network_driver(Coe::Swarm, "flannel", ApiGeneration::Current)
            .unwrap_err()
            .message
            .contains("is not allowed"));
        assert!(rules
            .check_network_driver(Coe::Swarm, "docker", ApiGeneration::Current)
            .is_ok());
    }

    #[test]
    fn swarm_mode_is_unknown_to_the_seed_api() {
        assert!(Coe::parse_for("swarm-mode", ApiGeneration::Seed).is_err());
        assert_eq!(
            Coe::parse_for("swarm-mode", ApiGeneration::Current),
            Ok(Coe::SwarmMode)
        );
        assert_eq!(
            Coe::parse_for("k8s", ApiGeneration::Seed)
                .unwrap_err()
                .message,
            "Requested COE type k8s is not supported."
        );
    }

    #[test]
    fn volume_drivers_follow_the_engine() {
        assert!(check_volume_driver(Coe::Kubernetes, "cinder").is_ok());
        assert!(check_volume_driver(Coe::Swarm, "rexray").is_ok());
        assert_eq!(
            check_volume_driver(Coe::Mesos, "cinder").unwrap_err().message,
            "Volume driver type cinder is not supported, expecting a rexray/unspecified volume driver."
        );
    }
}
