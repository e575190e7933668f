//! The KMS parties' certificates, as the toolkit's `kms-gen-tls-certs --ca-names <names..>
//! --wildcard` makes them, and reading certificates back.

use crate::error::TlsError;
use kmsctl_host::Secret;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType,
};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::Pem;

/// Validity of party certificates unless told otherwise.
pub const DEFAULT_DAYS: u32 = 365;
/// The longest validity accepted.
pub const MAX_DAYS: u32 = 36_500;
/// Certificates start this long before now, so a peer whose clock is a little behind does not
/// see a certificate that is not valid yet.
const BACKDATE: Duration = Duration::from_secs(300);
const DAY: u64 = 86_400;

/// How [`party_certs`] makes certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartyOptions {
    /// Also name `*.<name>` (our reading of the toolkit's `--wildcard`), so hosts under the
    /// party's name match too. webpki matches no wildcard over a single label: it serves dotted
    /// names (`*.kms-core-1.kms` matches `x.kms-core-1.kms`; `*.kms-core-1` matches nothing).
    pub wildcard: bool,
    /// Days of validity from now.
    pub days: u32,
}

impl Default for PartyOptions {
    fn default() -> Self {
        Self { wildcard: false, days: DEFAULT_DAYS }
    }
}

/// One party's certificate and private key.
#[derive(Clone, Debug)]
pub struct PartyCert {
    /// The party's name: the certificate's CN and first SAN.
    pub name: String,
    /// The self-signed certificate, PEM.
    pub cert_pem: String,
    /// The ECDSA P-256 private key, PKCS#8 PEM; a [`Secret`], so it never prints.
    pub key_pem: Secret,
}

/// Every party's certificate and key, and the bundle each party trusts.
#[derive(Clone, Debug)]
pub struct PartyCerts {
    /// One per name, in the order given.
    pub parties: Vec<PartyCert>,
    /// Every certificate PEM, concatenated in the order given (the toolkit's
    /// `cert_combined.pem`).
    pub combined: String,
}

/// Refuse a name the toolkit refuses: only ASCII letters, digits, `-` and `.`.
///
/// # Errors
/// [`TlsError::InvalidName`] for an empty name or any other character.
pub fn check_name(name: &str) -> Result<(), TlsError> {
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok { Ok(()) } else { Err(TlsError::InvalidName(name.to_string())) }
}

/// For each name, an ECDSA P-256 key pair and a self-signed end-entity certificate: CN and
/// first SAN the name (then `*.<name>` with `wildcard`), also valid for `127.0.0.1`,
/// `localhost`, `192.168.0.1` and `::1`; key usages digitalSignature, keyCertSign, cRLSign,
/// keyEncipherment, keyAgreement; extended key usages serverAuth and clientAuth.
///
/// # Errors
/// No names, an invalid or repeated name, `days` out of range, or a failure of the crypto
/// library.
pub fn party_certs<S: AsRef<str>>(names: &[S], opts: &PartyOptions) -> Result<PartyCerts, TlsError> {
    if names.is_empty() {
        return Err(TlsError::NoNames);
    }
    if opts.days == 0 || opts.days > MAX_DAYS {
        return Err(TlsError::Days { got: opts.days.into() });
    }
    let mut seen = BTreeSet::new();
    for n in names.iter().map(AsRef::as_ref) {
        check_name(n)?;
        if !seen.insert(n) {
            return Err(TlsError::DuplicateName(n.to_string()));
        }
    }
    let now = SystemTime::now();
    let not_before = utc(now - BACKDATE);
    let not_after = utc(now + Duration::from_secs(u64::from(opts.days) * DAY));
    let parties =
        names.iter().map(|n| party(n.as_ref(), opts.wildcard, not_before, not_after)).collect::<Result<Vec<_>, _>>()?;
    let combined = parties.iter().map(|p| p.cert_pem.as_str()).collect();
    Ok(PartyCerts { parties, combined })
}

fn utc(t: SystemTime) -> OffsetDateTime {
    let secs = t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    // MAX_DAYS from now is far inside the representable range.
    OffsetDateTime::from_unix_timestamp(secs as i64).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn party(
    name: &str,
    wildcard: bool,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<PartyCert, TlsError> {
    let fail = |source| TlsError::Generate { name: name.to_string(), source };
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(fail)?;
    let dns = |d: String| d.try_into().map(SanType::DnsName).map_err(fail);
    let mut sans = vec![dns(name.to_string())?];
    if wildcard {
        sans.push(dns(format!("*.{name}"))?);
    }
    sans.extend([
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        dns("localhost".to_string())?,
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(192, 168, 0, 1))),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]);
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    // Not a CA: webpki verifies a peer's certificate as an end entity, and refuses CA ones.
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok(PartyCert { name: name.to_string(), cert_pem: cert.pem(), key_pem: Secret::new(key.serialize_pem()) })
}

/// What a certificate says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject, e.g. `CN=kms-core-1`.
    pub subject: String,
    /// Subject alternative names in certificate order: DNS names as they are, IP addresses as
    /// text (`127.0.0.1`, `::1`).
    pub sans: Vec<String>,
    /// Start of validity, RFC 3339 UTC.
    pub not_before: String,
    /// End of validity, RFC 3339 UTC.
    pub not_after: String,
    /// Does its basic constraints extension make it a CA?
    pub is_ca: bool,
}

/// Describe the one certificate in `pem`.
///
/// # Errors
/// [`TlsError::Parse`] when `pem` holds no certificate, more than one, or one that cannot be
/// read.
pub fn describe(pem: &str) -> Result<CertInfo, TlsError> {
    let mut all = describe_all(pem)?;
    match all.len() {
        1 => Ok(all.remove(0)),
        n => Err(TlsError::Parse(format!("the PEM holds {n} certificates; use describe_all for a bundle"))),
    }
}

/// Describe every certificate in `pem` (a bundle like `combined`), in order; other PEM blocks
/// (keys) are skipped.
///
/// # Errors
/// [`TlsError::Parse`] when `pem` holds no certificate or a block that cannot be read.
pub fn describe_all(pem: &str) -> Result<Vec<CertInfo>, TlsError> {
    let mut out = Vec::new();
    for block in Pem::iter_from_buffer(pem.as_bytes()) {
        let block = block.map_err(|e| TlsError::Parse(format!("not valid PEM: {e}")))?;
        if block.label != "CERTIFICATE" {
            continue;
        }
        let cert = block.parse_x509().map_err(|e| TlsError::Parse(format!("not a valid X.509 certificate: {e}")))?;
        let sans = match cert.subject_alternative_name() {
            Ok(Some(ext)) => ext.value.general_names.iter().map(general_name).collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(TlsError::Parse(format!("unreadable subject alternative names: {e}"))),
        };
        let validity = cert.validity();
        out.push(CertInfo {
            subject: cert.subject().to_string(),
            sans,
            not_before: rfc3339(validity.not_before.timestamp()),
            not_after: rfc3339(validity.not_after.timestamp()),
            is_ca: cert.is_ca(),
        });
    }
    if out.is_empty() {
        return Err(TlsError::Parse("no PEM certificate (-----BEGIN CERTIFICATE-----) in the text".into()));
    }
    Ok(out)
}

fn general_name(n: &GeneralName<'_>) -> String {
    match n {
        GeneralName::DNSName(s) | GeneralName::URI(s) | GeneralName::RFC822Name(s) => s.to_string(),
        GeneralName::IPAddress(b) => match <[u8; 4]>::try_from(*b) {
            Ok(v4) => IpAddr::from(v4).to_string(),
            Err(_) => match <[u8; 16]>::try_from(*b) {
                Ok(v6) => IpAddr::from(v6).to_string(),
                Err(_) => n.to_string(),
            },
        },
        other => other.to_string(),
    }
}

fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix).map(|t| t.to_string()).unwrap_or_else(|_| unix.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    use x509_parser::prelude::{FromDer, X509Certificate};

    const ALL_SANS: [&str; 6] = ["kms-core-1", "*.kms-core-1", "127.0.0.1", "localhost", "192.168.0.1", "::1"];

    fn der(pem: &str) -> Vec<u8> {
        let (rest, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
        assert!(rest.is_empty(), "one certificate");
        block.contents
    }

    fn two(wildcard: bool) -> PartyCerts {
        party_certs(&["kms-core-1", "kms-core-2"], &PartyOptions { wildcard, days: 30 }).expect("certs")
    }

    #[test]
    fn a_party_certificate_names_the_party_and_the_local_addresses() {
        let made = two(true);
        let info = describe(&made.parties[0].cert_pem).unwrap();
        assert_eq!(info.subject, "CN=kms-core-1");
        assert_eq!(info.sans, ALL_SANS);
        assert!(!info.is_ca);
        let secs = |s: &str| s.parse::<jiff::Timestamp>().expect("RFC 3339").as_second();
        let now = jiff::Timestamp::now().as_second();
        assert!((secs(&info.not_before) - (now - 300)).abs() <= 5, "starts 5 minutes back: {}", info.not_before);
        assert!((secs(&info.not_after) - (now + 30 * 86_400)).abs() <= 5, "30 days from now: {}", info.not_after);
        let without = describe(&two(false).parties[1].cert_pem).unwrap();
        assert_eq!(without.sans, ["kms-core-2", "127.0.0.1", "localhost", "192.168.0.1", "::1"]);
    }

    #[test]
    fn key_usages_are_the_toolkits_and_it_is_no_ca() {
        let made = two(false);
        let bytes = der(&made.parties[0].cert_pem);
        let (_, cert) = X509Certificate::from_der(&bytes).unwrap();
        let ku = cert.key_usage().unwrap().expect("key usage").value;
        assert!(ku.digital_signature() && ku.key_cert_sign() && ku.crl_sign());
        assert!(ku.key_encipherment() && ku.key_agreement());
        assert!(!ku.non_repudiation() && !ku.data_encipherment() && !ku.encipher_only() && !ku.decipher_only());
        let eku = cert.extended_key_usage().unwrap().expect("extended key usage").value;
        assert!(eku.server_auth && eku.client_auth && !eku.code_signing && eku.other.is_empty());
        // IsCa::NoCa: no basic constraints at all, like the toolkit's party certificates.
        assert!(cert.basic_constraints().unwrap().is_none());
        assert_eq!(cert.issuer(), cert.subject(), "self-signed");
    }

    #[test]
    fn each_certificate_verifies_as_its_own_end_entity_trust_anchor() {
        let made = two(true);
        let (d1, d2) = (der(&made.parties[0].cert_pem), der(&made.parties[1].cert_pem));
        let (c1, c2) = (CertificateDer::from(d1.as_slice()), CertificateDer::from(d2.as_slice()));
        let anchor1 = [webpki::anchor_from_trusted_cert(&c1).unwrap()];
        let verify = |cert: &CertificateDer<'_>, usage| {
            let ee = webpki::EndEntityCert::try_from(cert).expect("an end entity certificate");
            ee.verify_for_usage(
                &[webpki::aws_lc_rs::ECDSA_P256_SHA256],
                &anchor1,
                &[],
                UnixTime::now(),
                usage,
                None,
                None,
            )
            .map(|_| ())
        };
        verify(&c1, webpki::KeyUsage::server_auth()).expect("server auth");
        verify(&c1, webpki::KeyUsage::client_auth()).expect("client auth");
        assert!(verify(&c2, webpki::KeyUsage::server_auth()).is_err(), "another party's anchor must not verify it");
        let valid = |cert: &CertificateDer<'_>, name: &str| {
            let ee = webpki::EndEntityCert::try_from(cert).unwrap();
            ee.verify_is_valid_for_subject_name(&ServerName::try_from(name).unwrap()).is_ok()
        };
        for name in ["kms-core-1", "localhost", "127.0.0.1", "::1"] {
            assert!(valid(&c1, name), "{name}");
        }
        assert!(!valid(&c1, "kms-core-2"));
        // webpki matches no wildcard over a single label, so `*.<name>` serves dotted names.
        assert!(!valid(&c1, "pod.kms-core-1"));
        let dotted = party_certs(&["kms-core-1.kms"], &PartyOptions { wildcard: true, days: 1 }).unwrap();
        let d = der(&dotted.parties[0].cert_pem);
        assert!(valid(&CertificateDer::from(d.as_slice()), "pod.kms-core-1.kms"));
    }

    #[test]
    fn the_key_is_the_certificates_and_never_printed() {
        let made = two(false);
        let p = &made.parties[0];
        let key = KeyPair::from_pem(p.key_pem.expose()).expect("PKCS#8 PEM key");
        assert!(p.key_pem.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
        let bytes = der(&p.cert_pem);
        let (_, cert) = X509Certificate::from_der(&bytes).unwrap();
        assert_eq!(cert.public_key().subject_public_key.data.as_ref(), key.public_key_raw());
        let debug = format!("{made:?} {p:?}");
        assert!(!debug.contains("PRIVATE KEY") && debug.contains("key_pem: ***"), "{debug}");
    }

    #[test]
    fn combined_is_every_certificate_in_the_order_given() {
        let names = ["p3", "p1", "p2"];
        let made = party_certs(&names, &PartyOptions::default()).unwrap();
        let concat: String = made.parties.iter().map(|p| p.cert_pem.clone()).collect();
        assert_eq!(made.combined, concat);
        let subjects: Vec<String> = describe_all(&made.combined).unwrap().into_iter().map(|c| c.subject).collect();
        assert_eq!(subjects, ["CN=p3", "CN=p1", "CN=p2"]);
        assert_eq!(made.parties.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), names);
        assert!(describe(&made.combined).unwrap_err().to_string().contains("holds 3 certificates"));
    }

    #[test]
    fn invalid_names_and_options_are_refused() {
        let opts = PartyOptions::default();
        for bad in ["kms/1", "", "a b", "a_b", "p\u{e9}", "*.x"] {
            let e = party_certs(&["ok", bad], &opts).unwrap_err();
            assert!(matches!(&e, TlsError::InvalidName(n) if n == bad), "{bad:?}: {e:?}");
        }
        assert!(check_name("kms-core-1.kms.svc").is_ok());
        let e = party_certs(&["p1", "p1"], &opts).unwrap_err();
        assert_eq!(e.to_string(), "the name 'p1' is given twice");
        assert!(matches!(party_certs::<&str>(&[], &opts), Err(TlsError::NoNames)));
        for days in [0, MAX_DAYS + 1] {
            let e = party_certs(&["p1"], &PartyOptions { days, ..opts }).unwrap_err();
            assert_eq!(e.to_string(), format!("days must be from 1 to 36500, got {days}"));
        }
    }

    #[test]
    fn describe_refuses_what_is_not_a_certificate() {
        let made = two(false);
        let e = describe(made.parties[0].key_pem.expose()).unwrap_err();
        assert_eq!(e.to_string(), "no PEM certificate (-----BEGIN CERTIFICATE-----) in the text");
        assert!(!e.to_string().contains("PRIVATE"));
        assert!(matches!(describe("hello"), Err(TlsError::Parse(_))));
        let broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(describe(broken).unwrap_err().to_string().starts_with("not a valid X.509 certificate"));
    }
}
