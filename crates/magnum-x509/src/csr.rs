//! Signing users' CSRs under the rules of spec §7.3. The CSR is not trusted: only allowed
//! extensions are copied, disallowed critical ones refuse the request, CA rights are never
//! granted unless the operator allows them, and the subject may be checked against who asks.

use crate::X509Error;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    SanType, SubjectPublicKeyInfo,
};
use std::net::IpAddr;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension, X509Extension};
use x509_parser::prelude::FromDer;

/// `[x509]` signing settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningRules {
    /// Extension names copied from CSRs.
    pub allowed_extensions: Vec<String>,
    /// keyUsage bits that survive ("Digital Signature", "Key Encipherment", …).
    pub allowed_key_usage: Vec<String>,
    /// Whether a CSR may obtain CA rights.
    pub allow_ca: bool,
}

impl Default for SigningRules {
    fn default() -> Self {
        Self {
            allowed_extensions: [
                "keyUsage",
                "extendedKeyUsage",
                "subjectAltName",
                "basicConstraints",
                "subjectKeyIdentifier",
            ]
            .map(str::to_string)
            .to_vec(),
            allowed_key_usage: ["Digital Signature", "Key Encipherment", "Non Repudiation"]
                .map(str::to_string)
                .to_vec(),
            allow_ca: false,
        }
    }
}

/// Who may be named in a client certificate (spec §11 decision 15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectCheck {
    /// Common names the requester may use (its user name and id); None allows any.
    pub allowed_common_names: Option<Vec<String>>,
    /// Whether the requester may name administrator groups (`O=system:masters`).
    pub may_use_admin_groups: bool,
}

/// Groups that grant administrator rights inside a cluster.
const ADMIN_GROUPS: [&str; 1] = ["system:masters"];

fn extension_name(extension: &X509Extension<'_>) -> String {
    match extension.oid.to_id_string().as_str() {
        "2.5.29.15" => "keyUsage".to_string(),
        "2.5.29.37" => "extendedKeyUsage".to_string(),
        "2.5.29.17" => "subjectAltName".to_string(),
        "2.5.29.19" => "basicConstraints".to_string(),
        "2.5.29.14" => "subjectKeyIdentifier".to_string(),
        "2.5.29.35" => "authorityKeyIdentifier".to_string(),
        "2.5.29.30" => "nameConstraints".to_string(),
        "2.5.29.31" => "cRLDistributionPoints".to_string(),
        "2.5.29.32" => "certificatePolicies".to_string(),
        other => other.to_string(),
    }
}

fn invalid(reason: impl Into<String>) -> X509Error {
    X509Error::InvalidCsr(reason.into())
}

fn subject(
    request: &X509CertificationRequest<'_>,
    check: Option<&SubjectCheck>,
) -> Result<DistinguishedName, X509Error> {
    let mut distinguished_name = DistinguishedName::new();
    let mut seen = Vec::new();
    let mut common_names = Vec::new();
    let mut organizations = Vec::new();
    for attribute in request.certification_request_info.subject.iter_attributes() {
        let oid: Vec<u64> = attribute
            .attr_type()
            .iter()
            .ok_or_else(|| invalid("the subject has an attribute type that cannot be read"))?
            .collect();
        let value = attribute
            .as_str()
            .map_err(|_| invalid("the subject has a value that is not text"))?
            .to_string();
        let kind = DnType::from_oid(&oid);
        if seen.contains(&kind) {
            return Err(invalid(
                "subjects that repeat an attribute (such as two O values) are not supported",
            ));
        }
        seen.push(kind.clone());
        match oid.as_slice() {
            [2, 5, 4, 3] => common_names.push(value.clone()),
            [2, 5, 4, 10] => organizations.push(value.clone()),
            _ => {}
        }
        distinguished_name.push(kind, value);
    }
    if let Some(check) = check {
        if let Some(allowed) = &check.allowed_common_names {
            if let Some(name) = common_names.iter().find(|name| !allowed.contains(name)) {
                return Err(X509Error::SubjectNotAllowed(format!(
                    "A client certificate must name the requesting user; CN={name} is not allowed."
                )));
            }
        }
        if !check.may_use_admin_groups {
            if let Some(group) = organizations
                .iter()
                .find(|group| ADMIN_GROUPS.contains(&group.as_str()))
            {
                return Err(X509Error::SubjectNotAllowed(format!(
                    "Only administrators may request a certificate in group {group}."
                )));
            }
        }
    }
    Ok(distinguished_name)
}

fn key_usages(
    usage: &x509_parser::extensions::KeyUsage,
    critical: bool,
    rules: &SigningRules,
) -> Result<Vec<KeyUsagePurpose>, X509Error> {
    let bits = [
        (
            usage.digital_signature(),
            "Digital Signature",
            KeyUsagePurpose::DigitalSignature,
        ),
        (
            usage.non_repudiation(),
            "Non Repudiation",
            KeyUsagePurpose::ContentCommitment,
        ),
        (
            usage.key_encipherment(),
            "Key Encipherment",
            KeyUsagePurpose::KeyEncipherment,
        ),
        (
            usage.data_encipherment(),
            "Data Encipherment",
            KeyUsagePurpose::DataEncipherment,
        ),
        (
            usage.key_agreement(),
            "Key Agreement",
            KeyUsagePurpose::KeyAgreement,
        ),
        (
            usage.key_cert_sign(),
            "Certificate Sign",
            KeyUsagePurpose::KeyCertSign,
        ),
        (usage.crl_sign(), "CRL Sign", KeyUsagePurpose::CrlSign),
        (
            usage.encipher_only(),
            "Encipher Only",
            KeyUsagePurpose::EncipherOnly,
        ),
        (
            usage.decipher_only(),
            "Decipher Only",
            KeyUsagePurpose::DecipherOnly,
        ),
    ];
    let mut kept = Vec::new();
    for (requested, name, purpose) in bits {
        if !requested {
            continue;
        }
        let is_ca_bit = matches!(
            purpose,
            KeyUsagePurpose::KeyCertSign | KeyUsagePurpose::CrlSign
        );
        let allowed = rules
            .allowed_key_usage
            .iter()
            .any(|allowed| allowed == name)
            && (rules.allow_ca || !is_ca_bit);
        match (allowed, critical) {
            (true, _) => kept.push(purpose),
            (false, true) => {
                return Err(X509Error::ExtensionNotAllowed(format!("keyUsage: {name}")))
            }
            (false, false) => {}
        }
    }
    Ok(kept)
}

fn subject_alt_names(names: &[GeneralName<'_>]) -> Result<Vec<SanType>, X509Error> {
    names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => (*dns)
                .to_string()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|_| invalid(format!("the DNS name {dns} is not valid"))),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => Ok(SanType::IpAddress(IpAddr::from(
                    <[u8; 4]>::try_from(*bytes).unwrap_or_default(),
                ))),
                16 => Ok(SanType::IpAddress(IpAddr::from(
                    <[u8; 16]>::try_from(*bytes).unwrap_or_default(),
                ))),
                _ => Err(invalid(
                    "an IP address alternative name has the wrong length",
                )),
            },
            GeneralName::RFC822Name(email) => (*email)
                .to_string()
                .try_into()
                .map(SanType::Rfc822Name)
                .map_err(|_| invalid(format!("the e-mail name {email} is not valid"))),
            GeneralName::URI(uri) => (*uri)
                .to_string()
                .try_into()
                .map(SanType::URI)
                .map_err(|_| invalid(format!("the URI {uri} is not valid"))),
            other => Err(invalid(format!(
                "alternative names of kind {other:?} are not supported"
            ))),
        })
        .collect()
}

/// Reads a CSR and builds the parameters of the certificate it may get.
pub(crate) fn certificate_params(
    csr_pem: &str,
    rules: &SigningRules,
    check: Option<&SubjectCheck>,
) -> Result<(SubjectPublicKeyInfo, CertificateParams), X509Error> {
    let (_, block) = x509_parser::pem::parse_x509_pem(csr_pem.trim().as_bytes())
        .map_err(|_| invalid("it is not a PEM document"))?;
    if !block.label.ends_with("CERTIFICATE REQUEST") {
        return Err(invalid(format!(
            "expected a CERTIFICATE REQUEST, got {}",
            block.label
        )));
    }
    let (_, request) = X509CertificationRequest::from_der(&block.contents)
        .map_err(|error| invalid(format!("it cannot be decoded ({error})")))?;
    request
        .verify_signature()
        .map_err(|_| invalid("its signature does not verify"))?;
    let public_key =
        SubjectPublicKeyInfo::from_der(request.certification_request_info.subject_pki.raw)
            .map_err(|error| invalid(format!("its public key is not supported ({error})")))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&request, check)?;
    params.is_ca = IsCa::NoCa;
    for attribute in request.certification_request_info.iter_attributes() {
        let ParsedCriAttribute::ExtensionRequest(extensions) = attribute.parsed_attribute() else {
            continue;
        };
        for extension in &extensions.extensions {
            let name = extension_name(extension);
            if !rules.allowed_extensions.contains(&name) {
                if extension.critical {
                    return Err(X509Error::ExtensionNotAllowed(name));
                }
                continue;
            }
            match extension.parsed_extension() {
                ParsedExtension::KeyUsage(usage) => {
                    params.key_usages = key_usages(usage, extension.critical, rules)?;
                }
                ParsedExtension::ExtendedKeyUsage(usage) => {
                    let mut purposes = Vec::new();
                    for (requested, purpose) in [
                        (usage.any, ExtendedKeyUsagePurpose::Any),
                        (usage.server_auth, ExtendedKeyUsagePurpose::ServerAuth),
                        (usage.client_auth, ExtendedKeyUsagePurpose::ClientAuth),
                        (usage.code_signing, ExtendedKeyUsagePurpose::CodeSigning),
                        (
                            usage.email_protection,
                            ExtendedKeyUsagePurpose::EmailProtection,
                        ),
                        (usage.time_stamping, ExtendedKeyUsagePurpose::TimeStamping),
                        (usage.ocsp_signing, ExtendedKeyUsagePurpose::OcspSigning),
                    ] {
                        if requested {
                            purposes.push(purpose);
                        }
                    }
                    for other in &usage.other {
                        let oid: Vec<u64> = other.iter().map(Iterator::collect).unwrap_or_default();
                        purposes.push(ExtendedKeyUsagePurpose::Other(oid));
                    }
                    params.extended_key_usages = purposes;
                }
                ParsedExtension::SubjectAlternativeName(names) => {
                    params.subject_alt_names = subject_alt_names(&names.general_names)?;
                }
                ParsedExtension::BasicConstraints(constraints) => {
                    params.is_ca = match (constraints.ca, rules.allow_ca, extension.critical) {
                        (false, _, _) => IsCa::ExplicitNoCa,
                        (true, true, _) => IsCa::Ca(match constraints.path_len_constraint {
                            Some(length) => rcgen::BasicConstraints::Constrained(
                                u8::try_from(length).unwrap_or(u8::MAX),
                            ),
                            None => rcgen::BasicConstraints::Unconstrained,
                        }),
                        (true, false, true) => {
                            return Err(X509Error::ExtensionNotAllowed(
                                "basicConstraints: CA:TRUE".to_string(),
                            ))
                        }
                        (true, false, false) => IsCa::ExplicitNoCa,
                    };
                }
                // The subject key identifier is computed from the key itself.
                ParsedExtension::SubjectKeyIdentifier(_) => {}
                _ => {
                    if extension.critical {
                        return Err(X509Error::ExtensionNotAllowed(name));
                    }
                }
            }
        }
    }
    Ok((public_key, params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::ca;
    use crate::{generate_rsa_key_pem, rsa_key_pair};
    use chrono::Utc;
    use std::sync::OnceLock;
    use x509_parser::prelude::X509Certificate;

    /// One requester key for all CSRs of the tests.
    fn requester_key() -> &'static str {
        static KEY: OnceLock<String> = OnceLock::new();
        KEY.get_or_init(|| generate_rsa_key_pem(2048).unwrap())
    }

    fn csr(build: impl FnOnce(&mut CertificateParams)) -> String {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, "alice");
        build(&mut params);
        let key = rsa_key_pair(requester_key()).unwrap();
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    fn signed(
        csr_pem: &str,
        rules: &SigningRules,
        check: Option<&SubjectCheck>,
    ) -> Result<Vec<u8>, X509Error> {
        let pem = ca().sign_csr(csr_pem, rules, check, Utc::now())?;
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        Ok(block.contents)
    }

    #[test]
    fn a_plain_csr_is_signed_with_its_subject_and_key() {
        let der = signed(&csr(|_| {}), &SigningRules::default(), None).unwrap();
        let (_, certificate) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(certificate.subject().to_string(), "CN=alice");
        assert_eq!(certificate.issuer().to_string(), "CN=test-cluster");
        assert!(certificate.basic_constraints().unwrap().is_none());
        assert!(certificate.key_usage().unwrap().is_none());
    }

    #[test]
    fn allowed_extensions_are_copied() {
        let request = csr(|params| {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.subject_alt_names = vec![SanType::IpAddress("10.0.0.5".parse().unwrap())];
        });
        let der = signed(&request, &SigningRules::default(), None).unwrap();
        let (_, certificate) = X509Certificate::from_der(&der).unwrap();
        assert!(
            certificate
                .extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .client_auth
        );
        let usage = certificate.key_usage().unwrap().unwrap().value;
        assert!(usage.digital_signature() && usage.key_encipherment());
        assert_eq!(
            certificate
                .subject_alternative_name()
                .unwrap()
                .unwrap()
                .value
                .general_names
                .len(),
            1
        );
    }

    #[test]
    fn ca_rights_and_signing_bits_are_never_granted() {
        // rcgen marks basicConstraints and keyUsage critical: both requests are refused.
        let ca_request =
            csr(|params| params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained));
        assert_eq!(
            signed(&ca_request, &SigningRules::default(), None).unwrap_err(),
            X509Error::ExtensionNotAllowed("basicConstraints: CA:TRUE".to_string())
        );
        let signing = csr(|params| params.key_usages = vec![KeyUsagePurpose::KeyCertSign]);
        assert_eq!(
            signed(&signing, &SigningRules::default(), None)
                .unwrap_err()
                .to_string(),
            "Extension 'keyUsage: Certificate Sign' not allowed"
        );
        let permissive = SigningRules {
            allow_ca: true,
            allowed_key_usage: vec!["Certificate Sign".to_string()],
            ..SigningRules::default()
        };
        assert!(signed(&signing, &permissive, None).is_ok());
        let restrictive = SigningRules {
            allowed_extensions: vec!["keyUsage".to_string()],
            ..SigningRules::default()
        };
        let alt_names = csr(|params| {
            params.subject_alt_names = vec![SanType::IpAddress("10.0.0.5".parse().unwrap())]
        });
        let der = signed(&alt_names, &restrictive, None).unwrap();
        let (_, certificate) = X509Certificate::from_der(&der).unwrap();
        assert!(
            certificate.subject_alternative_name().unwrap().is_none(),
            "a non-critical disallowed extension is dropped"
        );
    }

    #[test]
    fn subjects_are_checked_against_the_requester() {
        let masters = csr(|params| {
            params
                .distinguished_name
                .push(DnType::OrganizationName, "system:masters")
        });
        let member = SubjectCheck {
            allowed_common_names: Some(vec!["alice".to_string()]),
            may_use_admin_groups: false,
        };
        assert!(matches!(
            signed(&masters, &SigningRules::default(), Some(&member)),
            Err(X509Error::SubjectNotAllowed(_))
        ));
        let admin = SubjectCheck {
            allowed_common_names: None,
            may_use_admin_groups: true,
        };
        assert!(signed(&masters, &SigningRules::default(), Some(&admin)).is_ok());
        let bob = SubjectCheck {
            allowed_common_names: Some(vec!["bob".to_string()]),
            may_use_admin_groups: false,
        };
        let refused = signed(&csr(|_| {}), &SigningRules::default(), Some(&bob)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "A client certificate must name the requesting user; CN=alice is not allowed."
        );
    }

    #[test]
    fn garbage_is_an_invalid_csr() {
        for text in [
            "",
            "not pem",
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----",
        ] {
            assert!(
                matches!(
                    signed(text, &SigningRules::default(), None),
                    Err(X509Error::InvalidCsr(_))
                ),
                "{text}"
            );
        }
        assert!(matches!(
            signed(ca().certificate_pem(), &SigningRules::default(), None),
            Err(X509Error::InvalidCsr(_))
        ));
    }
}
