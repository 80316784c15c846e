//! The certificates of Magnum clusters (spec §7).
//!
//! Each cluster has its own certificate authority ([`ClusterCa`]): RSA keys, SHA-256
//! signatures, `CA:TRUE, pathlen 0` with only `keyCertSign`. The CA issues the conductor's
//! client certificate and node server certificates directly, and signs users' CSRs under the
//! rules of spec §7.3 ([`SigningRules`]). CA private keys leave memory only sealed with the
//! service's key ([`KeySealer`], AES-256-GCM); this crate never writes them anywhere.

mod csr;
pub mod key_pool;
mod sealing;

pub use csr::{SigningRules, SubjectCheck};
pub use sealing::{binding as sealing_binding, KeySealer};

use chrono::{DateTime, Utc};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_RSA_SHA256,
};
use rsa::pkcs8::{EncodePrivateKey, LineEnding};
use std::net::IpAddr;

/// Why a certificate operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    /// The CSR cannot be read or its signature does not verify.
    #[error("Received invalid csr: {0}")]
    InvalidCsr(String),
    /// A critical extension or key usage the service does not allow.
    #[error("Extension '{0}' not allowed")]
    ExtensionNotAllowed(String),
    /// The subject asks for more than the requester may have.
    #[error("{0}")]
    SubjectNotAllowed(String),
    /// Key generation, signing, sealing or a stored value failed.
    #[error("certificate operation failed: {0}")]
    Crypto(String),
}

fn crypto(error: impl std::fmt::Display) -> X509Error {
    X509Error::Crypto(error.to_string())
}

/// Settings of `[x509]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Settings {
    pub rsa_key_size: usize,
    /// Days a signed certificate is valid.
    pub term_of_validity_days: i64,
}

impl Default for X509Settings {
    fn default() -> Self {
        Self {
            rsa_key_size: 2048,
            term_of_validity_days: 1825,
        }
    }
}

/// How certificates are made and how their keys are kept.
#[derive(Debug, Clone)]
pub struct CertificateSettings {
    pub x509: X509Settings,
    pub sealer: KeySealer,
}

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertifiedKey {
    pub certificate_pem: String,
    pub private_key_pem: String,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey").finish_non_exhaustive()
    }
}

/// A new RSA key (`bits` long) as PKCS#8 PEM.
pub fn generate_rsa_key_pem(bits: usize) -> Result<String, X509Error> {
    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, bits).map_err(crypto)?;
    Ok(key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(crypto)?
        .to_string())
}

/// A new client key and a certificate signing request for it, both PEM, as
/// `cluster-config` makes them: RSA-2048, SHA-256, subject `CN=common_name` (plus
/// `O=organization` when given), no extensions.
pub fn client_key_and_csr(
    common_name: &str,
    organization: Option<&str>,
) -> Result<CertifiedKey, X509Error> {
    let private_key_pem = generate_rsa_key_pem(2048)?;
    let key_pair = rsa_key_pair(&private_key_pem)?;
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        subject.push(DnType::OrganizationName, organization);
    }
    params.distinguished_name = subject;
    let request = params.serialize_request(&key_pair).map_err(crypto)?;
    Ok(CertifiedKey {
        certificate_pem: request.pem().map_err(crypto)?,
        private_key_pem,
    })
}

fn rsa_key_pair(pem: &str) -> Result<KeyPair, X509Error> {
    KeyPair::from_pkcs8_pem_and_sign_algo(pem, &PKCS_RSA_SHA256).map_err(crypto)
}

fn to_offset(at: DateTime<Utc>) -> Result<time::OffsetDateTime, X509Error> {
    time::OffsetDateTime::from_unix_timestamp(at.timestamp()).map_err(crypto)
}

/// A random positive 128-bit serial number.
fn random_serial() -> SerialNumber {
    let mut bytes = rand::random::<[u8; 16]>();
    bytes[0] &= 0x7f;
    SerialNumber::from_slice(&bytes)
}

/// Validity of a certificate signed now: from a day ago (clock skew) for `days`.
fn validity(
    params: &mut CertificateParams,
    now: DateTime<Utc>,
    days: i64,
) -> Result<(), X509Error> {
    params.not_before = to_offset(now - chrono::Duration::days(1))?;
    params.not_after = to_offset(now + chrono::Duration::days(days))?;
    params.serial_number = Some(random_serial());
    Ok(())
}

fn common_name(name: &str) -> DistinguishedName {
    let mut distinguished_name = DistinguishedName::new();
    distinguished_name.push(DnType::CommonName, name);
    distinguished_name
}

/// One cluster's certificate authority.
pub struct ClusterCa {
    certificate_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
    settings: X509Settings,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa").finish_non_exhaustive()
    }
}

impl ClusterCa {
    /// A new self-signed CA named after the cluster (its uuid when it has no name).
    pub fn generate(
        name: &str,
        settings: &X509Settings,
        now: DateTime<Utc>,
    ) -> Result<ClusterCa, X509Error> {
        let key_pem = key_pool::take(settings.rsa_key_size)?;
        let key_pair = rsa_key_pair(&key_pem)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        validity(&mut params, now, settings.term_of_validity_days)?;
        let certificate = params.self_signed(&key_pair).map_err(crypto)?;
        Ok(ClusterCa {
            certificate_pem: certificate.pem(),
            key_pem,
            issuer: Issuer::new(params, key_pair),
            settings: settings.clone(),
        })
    }

    /// A CA from its stored certificate and (unsealed) key.
    pub fn from_pem(
        certificate_pem: &str,
        key_pem: &str,
        settings: &X509Settings,
    ) -> Result<ClusterCa, X509Error> {
        let issuer =
            Issuer::from_ca_cert_pem(certificate_pem, rsa_key_pair(key_pem)?).map_err(crypto)?;
        Ok(ClusterCa {
            certificate_pem: certificate_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer,
            settings: settings.clone(),
        })
    }

    /// A CA from its stored certificate and sealed key.
    /// The CA from its certificate and its key as sealed for `binding`
    /// ([`sealing_binding`] of the cluster and CA type).
    pub fn from_sealed(
        certificate_pem: &str,
        sealed_key: &str,
        binding: &str,
        sealer: &KeySealer,
        settings: &X509Settings,
    ) -> Result<ClusterCa, X509Error> {
        Self::from_pem(
            certificate_pem,
            &sealer.unseal(sealed_key, binding)?,
            settings,
        )
    }

    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// The private key; only to seal it for storage.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    fn issue(
        &self,
        mut params: CertificateParams,
        now: DateTime<Utc>,
    ) -> Result<CertifiedKey, X509Error> {
        let key_pem = key_pool::take(self.settings.rsa_key_size)?;
        let key_pair = rsa_key_pair(&key_pem)?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        validity(&mut params, now, self.settings.term_of_validity_days)?;
        let certificate = params.signed_by(&key_pair, &self.issuer).map_err(crypto)?;
        Ok(CertifiedKey {
            certificate_pem: certificate.pem(),
            private_key_pem: key_pem,
        })
    }

    /// A client certificate (EKU clientAuth) with a new key, e.g. the conductor's
    /// `CN=admin, O=system:masters`.
    pub fn issue_client(
        &self,
        common: &str,
        organization: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<CertifiedKey, X509Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(common);
        if let Some(organization) = organization {
            params
                .distinguished_name
                .push(DnType::OrganizationName, organization);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params, now)
    }

    /// A server certificate for a node (EKU serverAuth and clientAuth) naming its addresses
    /// and host names.
    pub fn issue_server(
        &self,
        common: &str,
        addresses: &[IpAddr],
        dns_names: &[String],
        now: DateTime<Utc>,
    ) -> Result<CertifiedKey, X509Error> {
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name(common);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.subject_alt_names = addresses
            .iter()
            .map(|address| SanType::IpAddress(*address))
            .collect();
        for name in dns_names {
            params
                .subject_alt_names
                .push(SanType::DnsName(name.clone().try_into().map_err(crypto)?));
        }
        self.issue(params, now)
    }

    /// Signs a user's CSR under `rules` (spec §7.3), checking its subject with `check`.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        rules: &SigningRules,
        check: Option<&SubjectCheck>,
        now: DateTime<Utc>,
    ) -> Result<String, X509Error> {
        let (public_key, mut params) = csr::certificate_params(csr_pem, rules, check)?;
        validity(&mut params, now, self.settings.term_of_validity_days)?;
        let certificate = params
            .signed_by(&public_key, &self.issuer)
            .map_err(crypto)?;
        Ok(certificate.pem())
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::sync::OnceLock;

    /// One CA shared by the tests of this crate (RSA key generation is slow in debug builds).
    pub fn ca() -> &'static ClusterCa {
        static CA: OnceLock<ClusterCa> = OnceLock::new();
        CA.get_or_init(|| {
            ClusterCa::generate("test-cluster", &X509Settings::default(), Utc::now()).unwrap()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::testing::ca;
    use super::*;
    use x509_parser::prelude::*;

    fn parse(pem: &str) -> Vec<u8> {
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        block.contents
    }

    #[test]
    fn the_ca_is_a_constrained_self_signed_authority() {
        let der = parse(ca().certificate_pem());
        let (_, certificate) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(certificate.subject().to_string(), "CN=test-cluster");
        assert_eq!(certificate.issuer().to_string(), "CN=test-cluster");
        let constraints = certificate.basic_constraints().unwrap().unwrap();
        assert!(constraints.critical && constraints.value.ca);
        assert_eq!(constraints.value.path_len_constraint, Some(0));
        let usage = certificate.key_usage().unwrap().unwrap();
        assert!(usage.value.key_cert_sign() && !usage.value.digital_signature());
        assert!(certificate.verify_signature(None).is_ok());
        let days = (certificate.validity().not_after.timestamp()
            - certificate.validity().not_before.timestamp())
            / 86_400;
        assert_eq!(days, 1826);
    }

    #[test]
    fn client_and_server_certificates_chain_to_the_ca() {
        let ca_der = parse(ca().certificate_pem());
        let (_, ca_certificate) = X509Certificate::from_der(&ca_der).unwrap();
        let client = ca()
            .issue_client("admin", Some("system:masters"), Utc::now())
            .unwrap();
        let client_der = parse(&client.certificate_pem);
        let (_, client_certificate) = X509Certificate::from_der(&client_der).unwrap();
        assert_eq!(
            client_certificate.subject().to_string(),
            "CN=admin, O=system:masters"
        );
        assert!(client_certificate
            .verify_signature(Some(ca_certificate.public_key()))
            .is_ok());
        assert!(
            client_certificate
                .extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .client_auth
        );
        let server = ca()
            .issue_server(
                "swarm.invalid",
                &["10.200.0.10".parse().unwrap()],
                &["master-0".to_string()],
                Utc::now(),
            )
            .unwrap();
        let server_der = parse(&server.certificate_pem);
        let (_, server_certificate) = X509Certificate::from_der(&server_der).unwrap();
        let names = server_certificate
            .subject_alternative_name()
            .unwrap()
            .unwrap();
        assert_eq!(names.value.general_names.len(), 2);
        assert!(
            server_certificate
                .extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .server_auth
        );
    }

    #[test]
    fn a_client_csr_made_here_is_signed_with_its_subject() {
        let request = client_key_and_csr("alice", Some("developers")).unwrap();
        assert!(request
            .certificate_pem
            .starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let signed = ca()
            .sign_csr(
                &request.certificate_pem,
                &SigningRules::default(),
                None,
                Utc::now(),
            )
            .unwrap();
        let der = parse(&signed);
        let (_, certificate) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(certificate.subject().to_string(), "CN=alice, O=developers");
        assert!(certificate.extensions().is_empty());
    }

    #[test]
    fn a_stored_ca_signs_again() {
        let restored = ClusterCa::from_pem(
            ca().certificate_pem(),
            ca().key_pem(),
            &X509Settings::default(),
        )
        .unwrap();
        let client = restored.issue_client("admin", None, Utc::now()).unwrap();
        let ca_der = parse(ca().certificate_pem());
        let (_, ca_certificate) = X509Certificate::from_der(&ca_der).unwrap();
        let der = parse(&client.certificate_pem);
        let (_, certificate) = X509Certificate::from_der(&der).unwrap();
        assert!(certificate
            .verify_signature(Some(ca_certificate.public_key()))
            .is_ok());
        assert!(!format!("{restored:?} {client:?}").contains("PRIVATE"));
    }
}
