//! HTTPS for `drover serve --tls-cert FILE --tls-key FILE`: loads the certificate chain and its
//! private key from PEM files into a rustls server configuration (the `ring` provider, TLS 1.2 and
//! 1.3, HTTP/1.1 by ALPN), and says which file is wrong and why when they cannot be used. A
//! problem is found here, before the server listens, never at a visitor's first handshake. It
//! does not serve: `server.rs` hands [`TlsConfig`] to axum-server's rustls acceptor, which does
//! each handshake in its connection's own task, so a slow client stalls nobody else. The files
//! are read once (restart the server after renewing the certificate).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::{CertifiedKey, SingleCertAndKey};

/// A certificate and key ready to serve HTTPS with.
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("TlsConfig").finish_non_exhaustive()
    }
}

/// Why the certificate or key cannot be used. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file was read but holds no usable certificate chain or private key.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key is not the key of the certificate.
    #[error("{} is not the private key of the certificate in {}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
}

impl TlsConfig {
    /// Reads the certificate chain in `cert` (PEM, the server's certificate first) and the private
    /// key in `key` (PEM: PKCS#8, PKCS#1 or SEC1), and checks that they belong together.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
        // ring, not rustls's default aws-lc-rs (which needs cmake and clang to build). rustls
        // 0.23.48 deprecates ring's provider for lacking post-quantum key exchange; the classical
        // groups (X25519, P-256, P-384) it offers are what browsers fall back to.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = certificates(cert, &read(cert)?)?;
        let private = private_key(key, &read(key)?)?;
        let signing = provider
            .key_provider
            .load_private_key(private)
            .map_err(|e| invalid(key, format!("not a private key rustls can sign with: {e}")))?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(TlsError::Mismatch { cert: cert.to_path_buf(), key: key.to_path_buf() });
            }
            Err(e) => return Err(invalid(cert, format!("not a valid X.509 certificate: {e}"))),
        }
        TlsConfig::with_key(provider, certified).map_err(|e| invalid(cert, e.to_string()))
    }

    fn with_key(provider: Arc<CryptoProvider>, certified: CertifiedKey) -> Result<TlsConfig, rustls::Error> {
        let mut server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        // The server speaks HTTP/1.1 only, over TLS as over plain TCP.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig { server: Arc::new(server) })
    }

    /// The rustls configuration.
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        self.server.clone()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_path_buf(), source })
}

fn invalid(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid { path: path.to_path_buf(), reason: reason.into() }
}

/// What is wrong with a PEM file, without quoting it (a key file's lines are secret).
fn pem_problem(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a PEM block has no END line".to_string(),
        pem::Error::IllegalSectionStart { .. } => "a PEM block has a malformed BEGIN line".to_string(),
        pem::Error::Base64Decode(_) => "a PEM block is not valid base64".to_string(),
        pem::Error::SectionTooLarge => "a PEM block is larger than 256 MB".to_string(),
        pem::Error::Io(e) => e.to_string(),
        _ => "not a PEM file".to_string(),
    }
}

fn certificates(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(path, pem_problem(&e)))?;
    if chain.is_empty() {
        return Err(invalid(path, "no certificate in it (a PEM block `BEGIN CERTIFICATE`)"));
    }
    Ok(chain)
}

fn private_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => invalid(
            path,
            "no private key in it (a PEM block `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`)",
        ),
        e => invalid(path, pem_problem(&e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for localhost and its key, as PEM.
    fn self_signed() -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("a certificate");
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }

    fn message(result: Result<TlsConfig, TlsError>) -> String {
        result.expect_err("the files are refused").to_string()
    }

    #[test]
    fn a_certificate_and_its_key_load() {
        let dir = tempfile::tempdir().expect("a directory");
        let (cert, key) = self_signed();
        let config =
            TlsConfig::load(&write(dir.path(), "cert.pem", &cert), &write(dir.path(), "key.pem", &key))
                .expect("they load");
        assert_eq!(config.server_config().alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn every_problem_names_the_file_and_what_is_wrong() {
        let dir = tempfile::tempdir().expect("a directory");
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();
        let cert = write(dir.path(), "cert.pem", &cert);
        let key = write(dir.path(), "key.pem", &key);
        let missing = dir.path().join("missing.pem");

        let e = message(TlsConfig::load(&missing, &key));
        assert!(e.starts_with(&format!("cannot read {}: ", missing.display())), "{e}");
        let e = message(TlsConfig::load(&cert, &missing));
        assert!(e.starts_with(&format!("cannot read {}: ", missing.display())), "{e}");

        let garbage = write(dir.path(), "garbage.pem", "this is not a key\n");
        let e = message(TlsConfig::load(&cert, &garbage));
        assert_eq!(
            e,
            format!(
                "{}: no private key in it (a PEM block `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY`)",
                garbage.display()
            )
        );
        let e = message(TlsConfig::load(&garbage, &key));
        assert_eq!(
            e,
            format!("{}: no certificate in it (a PEM block `BEGIN CERTIFICATE`)", garbage.display())
        );
        // The two files swapped: each lacks what it should hold.
        let e = message(TlsConfig::load(&key, &cert));
        assert!(e.starts_with(&format!("{}: no certificate", key.display())), "{e}");

        let cut = write(dir.path(), "cut.pem", "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n");
        let e = message(TlsConfig::load(&cert, &cut));
        assert_eq!(e, format!("{}: a PEM block has no END line", cut.display()));

        let not_der = write(
            dir.path(),
            "not-der.pem",
            "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        );
        let e = message(TlsConfig::load(&not_der, &key));
        assert!(e.starts_with(&format!("{}: not a valid X.509 certificate", not_der.display())), "{e}");
        let not_key = write(
            dir.path(),
            "not-key.pem",
            "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n",
        );
        let e = message(TlsConfig::load(&cert, &not_key));
        assert!(
            e.starts_with(&format!("{}: not a private key rustls can sign with", not_key.display())),
            "{e}"
        );

        let other = write(dir.path(), "other.pem", &other_key);
        let e = message(TlsConfig::load(&cert, &other));
        assert_eq!(
            e,
            format!("{} is not the private key of the certificate in {}", other.display(), cert.display())
        );
    }
}
