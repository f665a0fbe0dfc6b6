//! TLS to Redis: reading the certificate files, and telling a certificate problem apart from
//! a Redis that is not there.

use super::redact_url;
use crate::connect::TlsFiles;
use crate::{Error, ErrorKind, Result};
use redis::{ClientTlsConfig, RedisError, TlsCertificates};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Once;

/// rustls needs a process-wide crypto provider, and picks one by itself only when exactly one
/// is compiled in; an application that links another (aws-lc-rs) would otherwise panic on its
/// first TLS connection. One already installed by the application is kept.
pub(crate) fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Reads and checks the files; `None` when none is set. Checked here rather than left to the
/// handshake, so that a wrong path or a key in the certificate's place is named at once.
pub(crate) fn certificates(files: &TlsFiles) -> Result<Option<TlsCertificates>> {
    if files.is_empty() {
        return Ok(None);
    }
    let root_cert = match &files.ca_file {
        None => None,
        Some(path) => {
            let pem = read(path, "CA file (ca_file)")?;
            let count = certificates_in(&pem, path, "CA file (ca_file)")?;
            if count == 0 {
                return Err(Error::invalid(format!(
                    "the CA file (ca_file) {} holds no PEM certificate (-----BEGIN \
                     CERTIFICATE-----)",
                    path.display()
                )));
            }
            Some(pem)
        }
    };
    let client_tls = match (&files.cert_file, &files.key_file) {
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::invalid(
                "a client certificate needs both files: set cert_file and key_file (or \
                 neither)",
            ));
        }
        (Some(cert), Some(key)) => {
            let client_cert = read(cert, "client certificate file (cert_file)")?;
            if certificates_in(&client_cert, cert, "client certificate file (cert_file)")? == 0 {
                return Err(Error::invalid(format!(
                    "the client certificate file (cert_file) {} holds no PEM certificate",
                    cert.display()
                )));
            }
            let client_key = read(key, "client key file (key_file)")?;
            PrivateKeyDer::from_pem_slice(&client_key).map_err(|e| {
                Error::invalid(format!(
                    "the client key file (key_file) {} holds no PEM private key: {e}",
                    key.display()
                ))
            })?;
            Some(ClientTlsConfig {
                client_cert,
                client_key,
            })
        }
    };
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::invalid(format!("cannot read the {what} {}: {e}", path.display())))
}

fn certificates_in(pem: &[u8], path: &Path, what: &str) -> Result<usize> {
    let mut count = 0;
    for cert in CertificateDer::pem_slice_iter(pem) {
        cert.map_err(|e| {
            Error::invalid(format!(
                "the {what} {} is not valid PEM: {e}",
                path.display()
            ))
        })?;
        count += 1;
    }
    Ok(count)
}

/// The error for a connection that failed in the TLS handshake, or `None` when `e` is not
/// about TLS. Each message names the setting that fixes it, in the words of [`TlsFiles`].
pub(crate) fn failure(url: &str, e: &RedisError) -> Option<Error> {
    let problem = match rustls_error(e) {
        Some(tls) => Problem::of(tls),
        // The Cluster client keeps only the text of the error of its first connections.
        None => Problem::from_text(&e.to_string())?,
    };
    let at = redact_url(url);
    let message = match problem {
        Problem::Untrusted(why) => format!(
            "Redis' TLS certificate at {at} is not trusted ({why}): set ca_file to the CA that \
             signed Redis' certificate"
        ),
        Problem::WrongName(why) => format!(
            "Redis' TLS certificate is not valid for the host in {at} ({why}): connect with a \
             host name the certificate names"
        ),
        Problem::Expired(why) => format!(
            "Redis' TLS certificate at {at} is expired or not valid yet ({why}); renew it, or \
             check this machine's clock"
        ),
        Problem::OtherCertificate(why) => format!(
            "Redis' TLS certificate at {at} was refused ({why}): check the CA file (ca_file) \
             and the certificate Redis serves"
        ),
        Problem::Refused(why) => format!(
            "Redis at {at} refused the TLS handshake ({why}): if it requires client \
             certificates (tls-auth-clients), set cert_file and key_file to a certificate \
             signed by the CA Redis trusts"
        ),
        Problem::Other(why) => format!("TLS to Redis at {at} failed: {why}"),
    };
    Some(Error::new(ErrorKind::Tls, message))
}

/// What went wrong in a handshake, with rustls' words for it.
enum Problem {
    Untrusted(String),
    WrongName(String),
    Expired(String),
    OtherCertificate(String),
    Refused(String),
    Other(String),
}

impl Problem {
    fn of(tls: &rustls::Error) -> Problem {
        use rustls::CertificateError as C;
        match tls {
            rustls::Error::InvalidCertificate(cert) => {
                let why = format!("{cert:?}");
                match cert {
                    C::UnknownIssuer | C::BadSignature | C::UnhandledCriticalExtension => {
                        Problem::Untrusted(why)
                    }
                    C::NotValidForName | C::NotValidForNameContext { .. } => {
                        Problem::WrongName(why)
                    }
                    C::Expired | C::ExpiredContext { .. } | C::NotValidYet => Problem::Expired(why),
                    _ => Problem::OtherCertificate(why),
                }
            }
            rustls::Error::AlertReceived(alert) => Problem::Refused(format!("{alert:?}")),
            other => Problem::Other(other.to_string()),
        }
    }

    /// The same from rustls' `Display` text, when only that is left.
    fn from_text(text: &str) -> Option<Problem> {
        if let Some((_, rest)) = text.split_once("invalid peer certificate: ") {
            let why = rest.split([')', ' ']).next().unwrap_or(rest).to_owned();
            return Some(match why.as_str() {
                "UnknownIssuer" | "BadSignature" | "UnhandledCriticalExtension" => {
                    Problem::Untrusted(why)
                }
                w if w.starts_with("NotValidForName") => Problem::WrongName(why),
                w if w.starts_with("Expired") || w == "NotValidYet" => Problem::Expired(why),
                _ => Problem::OtherCertificate(why),
            });
        }
        if let Some((_, rest)) = text.split_once("received fatal alert: ") {
            let why = rest.split([')', ' ']).next().unwrap_or(rest).to_owned();
            return Some(Problem::Refused(why));
        }
        None
    }
}

/// The rustls error somewhere in `e`'s chain of causes.
///
/// redis-rs keeps the I/O error of a failed handshake as an `Arc<dyn Error>`, and
/// `io::Error::source` skips the error it wraps, so both are unwrapped by hand.
fn rustls_error(e: &RedisError) -> Option<&rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(mut err) = cause {
        if let Some(shared) = err.downcast_ref::<Shared>() {
            err = &**shared;
        }
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        cause = err.source();
    }
    None
}
