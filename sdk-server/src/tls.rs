//! HTTPS for every server: the rustls settings from PEM files, so tokens
//! and the registrations never cross the network in clear. [`serve`](crate::serve) runs
//! the connections.

use std::{io, path::Path, sync::Arc};

use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

/// The server's TLS settings from a PEM certificate chain and a PEM private key; an error
/// names the file and the problem.
pub fn load(cert: &Path, key: &Path) -> io::Result<Arc<rustls::ServerConfig>> {
    let invalid = |file: &Path, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: {e}", file.display()),
        )
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| invalid(cert, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(cert, &e))?;
    if chain.is_empty() {
        return Err(invalid(cert, &"no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid(key, &e))?;
    let mut config = rustls::ServerConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid(cert, &e))?
    .with_no_client_auth()
    .with_single_cert(chain, key_der)
    .map_err(|e| invalid(key, &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing or empty file is an error that names it, for every binary that serves TLS.
    #[test]
    fn a_file_that_is_missing_or_empty_is_named() {
        let dir = std::env::temp_dir().join(format!("sdk-server-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
        let (cert, key, empty) = (
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.join("empty.pem"),
        );
        std::fs::write(&cert, certified.cert.pem()).expect("write");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write");
        std::fs::write(&empty, "").expect("write");
        let error = |cert: &Path, key: &Path| load(cert, key).expect_err("refused").to_string();

        assert!(load(&cert, &key).is_ok(), "a certificate and its key load");
        let missing = dir.join("missing-key.pem");
        assert!(error(&cert, &missing).contains("missing-key.pem"));
        assert!(error(&empty, &key).contains("empty.pem: no certificate"));
        assert!(error(&cert, &empty).contains("empty.pem"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
