//! TLS for `rediss://`: rustls with the ring provider, trusting the system's
//! roots plus an optional private CA file. No OpenSSL anywhere.

use std::path::Path;
use std::sync::Arc;

use fred::types::config::{TlsConfig, TlsConnector};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

use crate::Error;

/// The client TLS configuration.
///
/// # Errors
/// [`Error::Tls`] when `ca_file` cannot be read or holds no certificate, or
/// when no root certificate at all could be found.
pub(crate) fn config(ca_file: Option<&Path>) -> Result<TlsConfig, Error> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::debug!(errors = ?native.errors, "some system root certificates could not be loaded");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
            .map_err(|e| Error::Tls(format!("cannot read tls_ca_file {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(Error::Tls(format!(
                "tls_ca_file {} holds no PEM certificate",
                path.display()
            )));
        }
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::Tls(format!(
                "tls_ca_file {}: no usable CA certificate",
                path.display()
            )));
        }
    }
    if roots.is_empty() {
        return Err(Error::Tls(
            "no trusted root certificates: install the system CA bundle or set tls_ca_file".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(client).into())
}
