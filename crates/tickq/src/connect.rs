//! How to connect beyond the URL: TLS certificates for `rediss://`, and how long a reply may
//! take.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Settings for [`Client::connect_with`](crate::Client::connect_with) beyond the URL.
///
/// ```no_run
/// # async fn demo() -> tickq::Result<()> {
/// use tickq::{Client, ConnectOptions, TlsFiles};
///
/// let tls = TlsFiles::new()
///     .ca_file("/etc/tickq/redis-ca.pem")
///     .client_cert("/etc/tickq/client.pem", "/etc/tickq/client.key");
/// let client = Client::connect_with(
///     "rediss://redis.internal:6380",
///     &ConnectOptions::new().tls(tls),
/// )
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Certificates for TLS. Default: none ([`TlsFiles::new`]).
    pub tls: TlsFiles,
    /// How long one reply may take before the call fails. Default: 5 s.
    pub response_timeout: Duration,
}

/// The default [`ConnectOptions::response_timeout`] (redis-rs' own default, 500 ms, is shorter
/// than a loaded Redis sometimes takes).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            tls: TlsFiles::new(),
            response_timeout: RESPONSE_TIMEOUT,
        }
    }
}

impl ConnectOptions {
    /// The defaults: the URL alone decides.
    pub fn new() -> ConnectOptions {
        ConnectOptions::default()
    }

    /// How long one reply may take before the call fails (`Unavailable`, "timed out"). Default:
    /// 5 s. No call tickq makes, admin ones included, grows with the size of the database:
    /// purges, bulk actions and job pages work in bounded rounds. So this bounds how long a
    /// stalled or unreachable Redis holds each call up, not how big a queue may be. Blocking
    /// reads (the worker's wake stream) get their block time on top.
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> ConnectOptions {
        self.response_timeout = timeout;
        self
    }

    /// Use these certificates for TLS (`rediss://`, `rediss-cluster://`,
    /// `rediss-sentinel://`). Default: none, so Redis' certificate must chain to one of the
    /// Mozilla root certificates (webpki-roots) and no client certificate is sent.
    #[must_use]
    pub fn tls(mut self, tls: TlsFiles) -> ConnectOptions {
        self.tls = tls;
        self
    }
}

/// PEM files for TLS to Redis: the private CA that signed Redis' certificate, and a client
/// certificate with its key for a Redis that requires one (`tls-auth-clients yes`).
///
/// The files are read when connecting. Giving any of them with a URL that is not TLS is an
/// error, so a certificate meant for Redis is never silently unused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// CA certificates (PEM) that Redis' certificate must chain to. Default: none, meaning the
    /// Mozilla root certificates.
    pub ca_file: Option<PathBuf>,
    /// The client certificate chain (PEM). Default: none (no client certificate).
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1). Default: none.
    pub key_file: Option<PathBuf>,
}

impl TlsFiles {
    /// No files: public roots, no client certificate.
    pub fn new() -> TlsFiles {
        TlsFiles::default()
    }

    /// Trust the CA certificates in this PEM file (and only them) for Redis' certificate.
    #[must_use]
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> TlsFiles {
        self.ca_file = Some(path.as_ref().to_owned());
        self
    }

    /// Present this client certificate chain, with its private key.
    #[must_use]
    pub fn client_cert(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> TlsFiles {
        self.cert_file = Some(cert.as_ref().to_owned());
        self.key_file = Some(key.as_ref().to_owned());
        self
    }

    /// Whether any file is set.
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.cert_file.is_none() && self.key_file.is_none()
    }
}
