//! The cluster PKI that skyplan makes before any node boots: the cluster,
//! etcd and front-proxy CAs, the service-account key pair, and admin client
//! certificates signed by the cluster CA.
//!
//! As kubeadm and cluster-api make them (research note §2): RSA-2048 keys
//! written as PKCS#1 (`RSA PRIVATE KEY`); CAs self-signed with serial 0,
//! valid from five minutes ago (clock skew) for 3650 days, CA:TRUE with
//! path length 0, key usages digital signature, key encipherment and
//! certificate sign. Subjects are kubeadm's own: `CN=kubernetes`,
//! `CN=etcd-ca`, `CN=front-proxy-ca` (cluster-api names all three
//! `kubernetes`; kubeadm checks none of them). The service-account key has
//! no certificate; its public half is a PKIX `PUBLIC KEY`.
//!
//! The admin certificate is `CN=kubernetes-admin, O=system:masters`: the
//! group the API server grants every right to from its first second, which
//! skyplan needs to wait for the API and apply the CNI before `kubeadm init`
//! has created any RBAC binding. `kubeadm:cluster-admins` (kubeadm's own
//! choice since 1.29) would be revocable through RBAC but only works once
//! init has finished. The price of `system:masters` is that a leaked
//! kubeconfig is valid until it expires (one year): keep the file private.

use std::collections::BTreeMap;
use std::time::SystemTime;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, RsaKeySize, SerialNumber,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

/// How long the CAs are valid (kubeadm's and cluster-api's default).
pub const CA_VALIDITY_DAYS: i64 = 3650;
/// How long an admin client certificate is valid.
pub const ADMIN_CERT_VALIDITY_DAYS: i64 = 365;
/// How far back certificates start, for nodes whose clock lags.
pub const BACKDATE_MINUTES: i64 = 5;
/// The admin certificate's subject.
pub const ADMIN_COMMON_NAME: &str = "kubernetes-admin";
pub const ADMIN_ORGANIZATION: &str = "system:masters";

/// What went wrong making or reading PKI material. Never quotes key bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PkiError {
    #[error("could not make {what}: {reason}")]
    Generate { what: &'static str, reason: String },
    #[error("the cluster PKI secret is not what skyplan wrote: {0}")]
    Archive(String),
    #[error("{what} is not a PEM {expected}")]
    Pem { what: &'static str, expected: &'static str },
}

/// A CA: its certificate (public) and its key (secret).
#[derive(Clone)]
pub struct CertificateAuthority {
    cert_pem: String,
    key_pem: String,
}

impl CertificateAuthority {
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }
}

impl std::fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertificateAuthority { key: (sensitive) }")
    }
}

/// Everything a control plane needs on disk before `kubeadm init` or
/// `kubeadm join --control-plane`, under `/etc/kubernetes/pki`.
#[derive(Clone)]
pub struct ClusterPki {
    pub cluster_ca: CertificateAuthority,
    pub etcd_ca: CertificateAuthority,
    pub front_proxy_ca: CertificateAuthority,
    sa_key_pem: String,
    sa_pub_pem: String,
}

impl std::fmt::Debug for ClusterPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterPki { keys: (sensitive) }")
    }
}

/// A file of the PKI archive: its path under `/etc/kubernetes/pki` and mode.
struct PkiFile {
    path: &'static str,
    mode: u32,
}

/// The archive's files in the order written, as kubeadm names them.
/// Certificates and the public key 0644, keys 0600 (kubeadm's modes).
const FILES: [PkiFile; 8] = [
    PkiFile { path: "ca.crt", mode: 0o644 },
    PkiFile { path: "ca.key", mode: 0o600 },
    PkiFile { path: "etcd/ca.crt", mode: 0o644 },
    PkiFile { path: "etcd/ca.key", mode: 0o600 },
    PkiFile { path: "front-proxy-ca.crt", mode: 0o644 },
    PkiFile { path: "front-proxy-ca.key", mode: 0o600 },
    PkiFile { path: "sa.pub", mode: 0o644 },
    PkiFile { path: "sa.key", mode: 0o600 },
];

impl ClusterPki {
    /// New CAs and service-account key, valid from `now` minus
    /// [`BACKDATE_MINUTES`]. Takes a few RSA key generations (about a
    /// second unoptimized).
    pub fn generate(now: SystemTime) -> Result<Self, PkiError> {
        let now = OffsetDateTime::from(now);
        let sa = rsa_key("the service-account key")?;
        Ok(Self {
            cluster_ca: new_ca("kubernetes", now)?,
            etcd_ca: new_ca("etcd-ca", now)?,
            front_proxy_ca: new_ca("front-proxy-ca", now)?,
            sa_key_pem: pkcs1_pem(&sa)?,
            sa_pub_pem: sa.public_key_pem(),
        })
    }

    /// `sha256:<hex>` of the cluster CA's public key: what joining nodes pin.
    pub fn ca_cert_hash(&self) -> String {
        ca_cert_hash(&self.cluster_ca.cert_pem).expect("a certificate rcgen just made parses")
    }

    pub fn sa_pub_pem(&self) -> &str {
        &self.sa_pub_pem
    }

    /// The files as a ustar archive (root-owned, kubeadm's names and modes,
    /// an `etcd/` directory entry first), the bytes of the PKI secret. The
    /// node unpacks it with `tar -x -C /etc/kubernetes/pki`.
    pub fn to_archive(&self, now: SystemTime) -> Vec<u8> {
        let mtime = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut builder = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_ustar();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_size(0);
        dir.set_mode(0o755);
        dir.set_uid(0);
        dir.set_gid(0);
        dir.set_mtime(mtime);
        builder.append_data(&mut dir, "etcd/", std::io::empty()).expect("writing to memory");
        for file in &FILES {
            let content = self.file(file.path);
            let mut header = tar::Header::new_ustar();
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(content.len() as u64);
            header.set_mode(file.mode);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(mtime);
            builder.append_data(&mut header, file.path, content.as_bytes()).expect("writing to memory");
        }
        builder.into_inner().expect("writing to memory")
    }

    /// The PKI back from [`to_archive`](Self::to_archive)'s bytes.
    pub fn from_archive(bytes: &[u8]) -> Result<Self, PkiError> {
        let files = read_archive(bytes)?;
        let take = |path: &str| files.get(path).cloned().ok_or_else(|| PkiError::Archive(format!("it has no {path}")));
        let ca = |cert: &str, key: &str| -> Result<CertificateAuthority, PkiError> {
            Ok(CertificateAuthority { cert_pem: take(cert)?, key_pem: take(key)? })
        };
        let cluster_ca = ca("ca.crt", "ca.key")?;
        let etcd_ca = ca("etcd/ca.crt", "etcd/ca.key")?;
        let front_proxy_ca = ca("front-proxy-ca.crt", "front-proxy-ca.key")?;
        Ok(Self { cluster_ca, etcd_ca, front_proxy_ca, sa_key_pem: take("sa.key")?, sa_pub_pem: take("sa.pub")? })
    }

    fn file(&self, path: &str) -> &str {
        match path {
            "ca.crt" => &self.cluster_ca.cert_pem,
            "ca.key" => &self.cluster_ca.key_pem,
            "etcd/ca.crt" => &self.etcd_ca.cert_pem,
            "etcd/ca.key" => &self.etcd_ca.key_pem,
            "front-proxy-ca.crt" => &self.front_proxy_ca.cert_pem,
            "front-proxy-ca.key" => &self.front_proxy_ca.key_pem,
            "sa.pub" => &self.sa_pub_pem,
            "sa.key" => &self.sa_key_pem,
            other => unreachable!("no PKI file {other}"),
        }
    }
}

fn read_archive(bytes: &[u8]) -> Result<BTreeMap<String, String>, PkiError> {
    let bad = |e: std::io::Error| PkiError::Archive(e.to_string());
    let mut archive = tar::Archive::new(bytes);
    let mut files = BTreeMap::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let mut content = String::new();
        std::io::Read::read_to_string(&mut entry, &mut content).map_err(bad)?;
        files.insert(path, content);
    }
    Ok(files)
}

/// A new RSA-2048 key.
fn rsa_key(what: &'static str) -> Result<KeyPair, PkiError> {
    KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
        .map_err(|e| PkiError::Generate { what, reason: e.to_string() })
}

/// The subject `CN=<common_name>` (and `O=<organization>`).
fn subject(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    if let Some(org) = organization {
        name.push(DnType::OrganizationName, org);
    }
    name.push(DnType::CommonName, common_name);
    name
}

/// A CA's certificate parameters; also how an issuer is rebuilt from the
/// key alone (the subject is all rcgen needs of the issuer).
fn ca_params(common_name: &str, now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(common_name, None);
    params.serial_number = Some(SerialNumber::from_slice(&[0]));
    params.not_before = now - Duration::minutes(BACKDATE_MINUTES);
    params.not_after = now + Duration::days(CA_VALIDITY_DAYS);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages =
        vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::KeyCertSign];
    params
}

fn new_ca(common_name: &'static str, now: OffsetDateTime) -> Result<CertificateAuthority, PkiError> {
    let key = rsa_key(common_name)?;
    let cert = ca_params(common_name, now)
        .self_signed(&key)
        .map_err(|e| PkiError::Generate { what: common_name, reason: e.to_string() })?;
    Ok(CertificateAuthority { cert_pem: cert.pem(), key_pem: pkcs1_pem(&key)? })
}

/// An admin client certificate and its key, signed by the cluster CA:
/// `CN=kubernetes-admin, O=system:masters`, client auth only, a random
/// serial, valid from five minutes ago for [`ADMIN_CERT_VALIDITY_DAYS`].
/// Returns (certificate PEM, key PEM).
pub fn admin_certificate(ca: &CertificateAuthority, now: SystemTime) -> Result<(String, String), PkiError> {
    let now = OffsetDateTime::from(now);
    let what = "the admin client certificate";
    let fail = |e: rcgen::Error| PkiError::Generate { what, reason: e.to_string() };
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(fail)?;
    let ca_subject = certificate_subject_cn(&ca.cert_pem)?;
    let issuer = Issuer::new(ca_params(&ca_subject, now), ca_key);

    let key = rsa_key(what)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(ADMIN_COMMON_NAME, Some(ADMIN_ORGANIZATION));
    let mut serial = [0u8; 16];
    aws_lc_rs::rand::fill(&mut serial).expect("the operating system's random source failed");
    serial[0] &= 0x7f; // positive
    serial[0] |= 0x01; // and no leading zero byte
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = now - Duration::minutes(BACKDATE_MINUTES);
    params.not_after = now + Duration::days(ADMIN_CERT_VALIDITY_DAYS);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).map_err(fail)?;
    Ok((cert.pem(), pkcs1_pem(&key)?))
}

/// A serving certificate for `names` (DNS names or IP addresses) and its
/// key, signed by `ca`, server auth only, valid from five minutes ago for a
/// day: what an API server shows, for local stand-ins of one (the AWS
/// provider's tests of its wait on the API server). Returns (certificate
/// PEM, key PEM).
pub fn serving_certificate(
    ca: &CertificateAuthority,
    names: &[&str],
    now: SystemTime,
) -> Result<(String, String), PkiError> {
    let now = OffsetDateTime::from(now);
    let what = "a serving certificate";
    let fail = |e: rcgen::Error| PkiError::Generate { what, reason: e.to_string() };
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(fail)?;
    let ca_subject = certificate_subject_cn(&ca.cert_pem)?;
    let issuer = Issuer::new(ca_params(&ca_subject, now), ca_key);
    let key = rsa_key(what)?;
    let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).map_err(fail)?;
    params.distinguished_name = subject("kube-apiserver", None);
    params.not_before = now - Duration::minutes(BACKDATE_MINUTES);
    params.not_after = now + Duration::days(1);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).map_err(fail)?;
    Ok((cert.pem(), pkcs1_pem(&key)?))
}

/// `sha256:` and the lowercase hex SHA-256 of the certificate's DER
/// SubjectPublicKeyInfo: kubeadm's `caCertHashes` format.
pub fn ca_cert_hash(cert_pem: &str) -> Result<String, PkiError> {
    let der = pem_contents(cert_pem, "a CA certificate", "CERTIFICATE")?;
    let spki = certificate_field(&der, Field::Spki)
        .ok_or(PkiError::Pem { what: "a CA certificate", expected: "X.509 certificate" })?;
    let digest = Sha256::digest(spki);
    Ok(format!("sha256:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

fn pem_contents(text: &str, what: &'static str, tag: &'static str) -> Result<Vec<u8>, PkiError> {
    let parsed = pem::parse(text).map_err(|_| PkiError::Pem { what, expected: tag })?;
    if parsed.tag() != tag {
        return Err(PkiError::Pem { what, expected: tag });
    }
    Ok(parsed.into_contents())
}

/// A key as PKCS#1 `RSA PRIVATE KEY` PEM, cluster-api's form. aws-lc-rs
/// hands out PKCS#8, whose private-key octet string is the PKCS#1 key.
fn pkcs1_pem(key: &KeyPair) -> Result<String, PkiError> {
    let pkcs8 = key.serialize_der();
    let pkcs1 = pkcs8_rsa_key(&pkcs8)
        .ok_or(PkiError::Generate { what: "a PKCS#1 key", reason: "the PKCS#8 key is not an RSA key".to_string() })?;
    Ok(pem::encode_config(
        &pem::Pem::new("RSA PRIVATE KEY", pkcs1),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    ))
}

/// One DER element: (tag, contents, the whole element, what follows).
type DerElement<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn der_element(bytes: &[u8]) -> Option<DerElement<'_>> {
    let tag = *bytes.first()?;
    let first = *bytes.get(1)?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let len = bytes.get(2..2 + n)?.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    let contents = bytes.get(header..end)?;
    Some((tag, contents, &bytes[..end], &bytes[end..]))
}

/// PKCS#8 PrivateKeyInfo: SEQUENCE { version, algorithm, OCTET STRING key }.
fn pkcs8_rsa_key(der: &[u8]) -> Option<Vec<u8>> {
    const RSA_ENCRYPTION: &[u8] = &[0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (0x30, info, _, _) = der_element(der)? else { return None };
    let (0x02, _, _, rest) = der_element(info)? else { return None };
    let (0x30, algorithm, _, rest) = der_element(rest)? else { return None };
    let (0x04, key, _, _) = der_element(rest)? else { return None };
    algorithm.starts_with(RSA_ENCRYPTION).then(|| key.to_vec())
}

enum Field {
    Subject,
    Spki,
}

/// A field of an X.509 certificate's TBSCertificate, as the whole DER element.
fn certificate_field(der: &[u8], field: Field) -> Option<&[u8]> {
    let (0x30, cert, _, _) = der_element(der)? else { return None };
    let (0x30, tbs, _, _) = der_element(cert)? else { return None };
    let mut rest = tbs;
    let (tag, _, _, after) = der_element(rest)?;
    if tag == 0xa0 {
        rest = after; // [0] version
    }
    // serial, signature algorithm, issuer, validity, subject, SPKI
    let mut elements = Vec::new();
    for _ in 0..6 {
        let (_, _, whole, after) = der_element(rest)?;
        elements.push(whole);
        rest = after;
    }
    Some(match field {
        Field::Subject => elements[4],
        Field::Spki => elements[5],
    })
}

/// The common name of a certificate's subject (the CAs skyplan makes have
/// only that), to rebuild the issuer name exactly.
fn certificate_subject_cn(cert_pem: &str) -> Result<String, PkiError> {
    const CN: &[u8] = &[0x06, 0x03, 0x55, 0x04, 0x03];
    let bad = PkiError::Pem { what: "the cluster CA certificate", expected: "CERTIFICATE with a CN" };
    let der = pem_contents(cert_pem, "the cluster CA certificate", "CERTIFICATE")?;
    let (_, mut sets, _, _) = certificate_field(&der, Field::Subject).and_then(der_element).ok_or(bad.clone())?;
    let mut found = None;
    while let Some((_, set, _, after)) = der_element(sets) {
        let (_, attr, _, _) = der_element(set).ok_or(bad.clone())?;
        if let Some(value) = attr.strip_prefix(CN) {
            let (_, text, _, _) = der_element(value).ok_or(bad.clone())?;
            found = Some(String::from_utf8_lossy(text).into_owned());
        } else {
            return Err(bad);
        }
        sets = after;
    }
    found.ok_or(bad)
}

/// The target of an admin kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigTarget {
    pub cluster_name: String,
    /// `https://<API load balancer DNS name>:<port>`.
    pub server: String,
}

/// An administrator's kubeconfig for the cluster, with a fresh admin
/// certificate (see [`admin_certificate`]): cluster `<name>`, user
/// `<name>-admin`, context `<name>-admin@<name>` (cluster-api's layout).
/// It holds a private key: write it with mode 0600, print it only on request.
pub fn admin_kubeconfig(
    ca: &CertificateAuthority,
    target: &KubeconfigTarget,
    now: SystemTime,
) -> Result<String, PkiError> {
    use base64::Engine;
    let (cert, key) = admin_certificate(ca, now)?;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    let name = &target.cluster_name;
    let user = format!("{name}-admin");
    let context = format!("{user}@{name}");
    let q = crate::bootstrap::yaml::scalar;
    Ok(format!(
        "apiVersion: v1\nkind: Config\nclusters:\n  - name: {n}\n    cluster:\n      server: {server}\n      certificate-authority-data: {ca}\nusers:\n  - name: {u}\n    user:\n      client-certificate-data: {cert}\n      client-key-data: {key}\ncontexts:\n  - name: {c}\n    context:\n      cluster: {n}\n      user: {u}\ncurrent-context: {c}\npreferences: {{}}\n",
        n = q(name),
        server = q(&target.server),
        ca = b64(&ca.cert_pem),
        u = q(&user),
        cert = b64(&cert),
        key = b64(&key),
        c = q(&context),
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::PublicKeyData;
    use std::sync::OnceLock;

    /// One PKI for every test of the module (RSA keys take a while unoptimized).
    pub(crate) fn pki() -> &'static ClusterPki {
        static PKI: OnceLock<ClusterPki> = OnceLock::new();
        PKI.get_or_init(|| ClusterPki::generate(SystemTime::now()).unwrap())
    }

    #[test]
    fn keys_are_pkcs1_and_certificates_pem() {
        let pki = pki();
        for ca in [&pki.cluster_ca, &pki.etcd_ca, &pki.front_proxy_ca] {
            assert!(ca.cert_pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{}", ca.cert_pem);
            assert!(ca.key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
            assert!(!ca.key_pem.contains('\r') && !ca.cert_pem.contains('\r'));
            // The key reads back and is the certificate's.
            let key = KeyPair::from_pem(&ca.key_pem).unwrap();
            let der = pem_contents(&ca.cert_pem, "t", "CERTIFICATE").unwrap();
            assert_eq!(certificate_field(&der, Field::Spki).unwrap(), key.subject_public_key_info());
        }
        assert!(pki.sa_key_pem.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        assert!(pki.sa_pub_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert_eq!(KeyPair::from_pem(&pki.sa_key_pem).unwrap().public_key_pem(), pki.sa_pub_pem);
    }

    #[test]
    fn subjects_are_kubeadms() {
        let pki = pki();
        assert_eq!(certificate_subject_cn(&pki.cluster_ca.cert_pem).unwrap(), "kubernetes");
        assert_eq!(certificate_subject_cn(&pki.etcd_ca.cert_pem).unwrap(), "etcd-ca");
        assert_eq!(certificate_subject_cn(&pki.front_proxy_ca.cert_pem).unwrap(), "front-proxy-ca");
    }

    #[test]
    fn ca_hash_is_sha256_of_the_spki() {
        let pki = pki();
        let hash = pki.ca_cert_hash();
        let hex = hash.strip_prefix("sha256:").unwrap();
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{hash}");
        let key = KeyPair::from_pem(&pki.cluster_ca.key_pem).unwrap();
        let expected: String =
            Sha256::digest(key.subject_public_key_info()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, expected);
        assert_ne!(hash, ca_cert_hash(&pki.etcd_ca.cert_pem).unwrap());
        assert!(matches!(ca_cert_hash("not pem"), Err(PkiError::Pem { .. })));
    }

    #[test]
    fn archive_round_trips_with_modes() {
        let pki = pki();
        let bytes = pki.to_archive(SystemTime::now());
        let back = ClusterPki::from_archive(&bytes).unwrap();
        for file in &FILES {
            assert_eq!(back.file(file.path), pki.file(file.path), "{}", file.path);
        }
        let mut archive = tar::Archive::new(&bytes[..]);
        let modes: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.header().mode().unwrap(), e.header().uid().unwrap())
            })
            .collect();
        assert_eq!(modes[0], ("etcd/".to_string(), 0o755, 0));
        assert_eq!(modes[2], ("ca.key".to_string(), 0o600, 0));
        assert_eq!(modes[1], ("ca.crt".to_string(), 0o644, 0));
        assert_eq!(modes.len(), 9);
        let err = ClusterPki::from_archive(b"garbage").unwrap_err();
        assert!(matches!(err, PkiError::Archive(_)), "{err}");
    }

    #[test]
    fn debug_never_shows_keys() {
        let shown = format!("{:?}", pki());
        assert!(!shown.contains("PRIVATE"), "{shown}");
    }

    #[test]
    fn kubeconfig_names_server_ca_and_admin() {
        let pki = pki();
        let target = KubeconfigTarget {
            cluster_name: "demo".into(),
            server: "https://demo-apiserver-1.us-east-1.elb.amazonaws.com:6443".into(),
        };
        let text = admin_kubeconfig(&pki.cluster_ca, &target, SystemTime::now()).unwrap();
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(doc["current-context"], "demo-admin@demo");
        assert_eq!(doc["clusters"][0]["cluster"]["server"], target.server.as_str());
        use base64::Engine;
        let decode = |v: &serde_yaml_ng::Value| {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap()).unwrap()
        };
        assert_eq!(decode(&doc["clusters"][0]["cluster"]["certificate-authority-data"]), pki.cluster_ca.cert_pem);
        let cert = decode(&doc["users"][0]["user"]["client-certificate-data"]);
        let key = decode(&doc["users"][0]["user"]["client-key-data"]);
        let der = pem_contents(&cert, "t", "CERTIFICATE").unwrap();
        let key = KeyPair::from_pem(&key).unwrap();
        assert_eq!(certificate_field(&der, Field::Spki).unwrap(), key.subject_public_key_info());
    }
}
