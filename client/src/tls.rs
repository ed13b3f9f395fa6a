//! TLS for the broker's MQTT-over-TLS listener: trust a CA file (PEM) or the system's roots.
//! The server name checked is the host the client connects to.

use crate::Error;
use rumqttc::{TlsConfiguration, Transport};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{self, RootCertStore};

/// Which certificates to trust.
#[derive(Debug, Clone)]
pub enum Tls {
    /// The operating system's trust store.
    NativeRoots,
    /// Every certificate in a PEM file.
    CaFile(PathBuf),
    /// Every certificate in PEM text.
    CaPem(Vec<u8>),
}

fn roots(tls: &Tls) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    let certs: Vec<CertificateDer<'static>> = match tls {
        Tls::NativeRoots => rustls_native_certs::load_native_certs().certs,
        Tls::CaFile(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| Error::Tls(format!("reading CA file {}: {e}", path.display())))?;
            pem_certs(&pem)?
        }
        Tls::CaPem(pem) => pem_certs(pem)?,
    };
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(Error::Tls("no usable CA certificate".into()));
    }
    Ok(store)
}

fn pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls(format!("bad PEM: {e}")))
}

/// The rumqttc transport for `tls`. The crypto provider is named explicitly: with more than
/// one compiled in, rustls cannot pick a process default.
pub fn transport(tls: &Tls) -> Result<Transport, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots(tls)?)
        .with_no_client_auth();
    Ok(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(config),
    )))
}
