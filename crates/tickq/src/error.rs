//! The library's one error type.

use std::fmt;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The job, queue or schedule does not exist.
    NotFound,
    /// A job with that id (or unique key) already exists.
    AlreadyExists,
    /// The caller passed something invalid.
    InvalidArgument,
    /// The object is in the wrong state for that: retrying or deleting a running job, killing
    /// a finished one, cancelling a completed one. Nothing changed; it may succeed later.
    Conflict,
    /// Redis could not be reached or answered with an error.
    Unavailable,
    /// The TLS handshake with Redis failed: its certificate is not trusted, or it wants a
    /// client certificate. The message names the [`TlsFiles`](crate::TlsFiles) setting to fix.
    Tls,
    /// An operation did not finish in time.
    Timeout,
    /// Data read from Redis could not be decoded.
    Corrupt,
    /// The worker is shutting down.
    Shutdown,
    /// Redis is (nearly) out of memory: used memory is above the client's high-water mark, or
    /// Redis itself refused a write (`maxmemory` reached). Nothing was written. Jobs already
    /// accepted still run: workers keep draining and the janitor drops completed jobs first.
    /// Retry later, raise `maxmemory`, or keep completed jobs for less time.
    RedisFull,
}

/// The error of every fallible tickq operation: a kind, a message, and the cause if any.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
    existing: Option<Box<crate::Enqueued>>,
    partial: Option<Box<crate::PartialEnqueue>>,
}

/// `Result` with tickq's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a message that says what to do next.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
            source: None,
            existing: None,
            partial: None,
        }
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the cause.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// For [`ErrorKind::AlreadyExists`] from an enqueue: the job that is there already (the
    /// same id, or the holder of the unique key).
    pub fn existing_job(&self) -> Option<&crate::Enqueued> {
        self.existing.as_deref()
    }

    pub(crate) fn with_existing(mut self, job: crate::Enqueued) -> Error {
        self.existing = Some(Box::new(job));
        self
    }

    /// For a failed enqueue ([`Client::enqueue`](crate::Client::enqueue),
    /// [`Client::enqueue_bulk`](crate::Client::enqueue_bulk)): which jobs Redis confirmed, and
    /// the others with their ids, safe to enqueue again.
    pub fn partial_enqueue(&self) -> Option<&crate::PartialEnqueue> {
        self.partial.as_deref()
    }

    /// Take the [`partial_enqueue`](Error::partial_enqueue) out of the error, to enqueue
    /// its unconfirmed jobs again.
    pub fn into_partial_enqueue(self) -> Option<crate::PartialEnqueue> {
        self.partial.map(|p| *p)
    }

    pub(crate) fn partial_enqueue_mut(&mut self) -> Option<&mut crate::PartialEnqueue> {
        self.partial.as_deref_mut()
    }

    pub(crate) fn with_partial(mut self, partial: crate::PartialEnqueue) -> Error {
        self.partial = Some(Box::new(partial));
        self
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, what)
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidArgument, what)
    }

    pub(crate) fn conflict(what: impl Into<String>) -> Error {
        Error::new(ErrorKind::Conflict, what)
    }

    pub(crate) fn corrupt(what: impl Into<String>) -> Error {
        Error::new(ErrorKind::Corrupt, what)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, " ({source})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The one place Redis errors become tickq errors.
impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Error {
        if is_oom(&e) {
            return Error::new(
                ErrorKind::RedisFull,
                format!("Redis is full: it refused a write at maxmemory; {FULL_ADVICE}"),
            )
            .with_source(e);
        }
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Unavailable
        };
        let message = if e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
            "lost the connection to Redis; tickq reconnects on its own, check that Redis is up"
        } else if e.is_timeout() {
            "Redis did not answer in time"
        } else {
            "Redis returned an error"
        };
        Error::new(kind, message).with_source(e)
    }
}

/// What a [`ErrorKind::RedisFull`] message tells the user to do.
pub(crate) const FULL_ADVICE: &str = "nothing was written. Jobs already accepted keep running \
    and the janitor drops completed jobs first; enqueue again later, raise Redis' maxmemory, or \
    keep completed jobs for less time";

/// Redis' refusal of a write at `maxmemory` (`-OOM command not allowed when used memory >
/// 'maxmemory'`), alone or as the reason a transaction was aborted (EXECABORT).
fn is_oom(e: &redis::RedisError) -> bool {
    e.code() == Some("OOM")
        || e.clone()
            .into_server_errors()
            .is_some_and(|errors| errors.iter().any(|(_, e)| e.code() == "OOM"))
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::new(ErrorKind::InvalidArgument, "invalid JSON").with_source(e)
    }
}
