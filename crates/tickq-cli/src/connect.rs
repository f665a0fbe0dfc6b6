//! Connecting to Redis from the CLI: the one place that turns an address into a `Client`.

use crate::config::{Redis, tls_setting_names, usage};
use std::time::Duration;
use tickq::{Client, ErrorKind};

/// Connect to Redis.
pub async fn connect(redis: &Redis) -> anyhow::Result<Client> {
    if let Err(e) = probe(&redis.url).await {
        anyhow::bail!(
            "no Redis at {} ({e}); start one with `redis-server` or pass --redis",
            tickq::redact_url(&redis.url)
        );
    }
    let client = Client::connect_with(&redis.url, &redis.connect_options())
        .await
        .map_err(connect_error)?;
    Ok(match redis.high_water {
        Some(mark) => client.with_memory_high_water(mark)?,
        None => client,
    })
}

/// One quick connection attempt to the URL's address.
///
/// The library's connect retries with backoff for several seconds, right for a node riding
/// out a Redis restart but slow for a command whose Redis is simply not there. Addresses this
/// cannot read are left to the library.
async fn probe(url: &str) -> std::io::Result<()> {
    const TIMEOUT: Duration = Duration::from_secs(3);
    let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(());
    };
    match scheme {
        "redis" | "rediss" | "valkey" => {
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let (host, port) = split_host_port(hostport);
            if host.is_empty() {
                return Ok(());
            }
            tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect((host, port)))
                .await
                .map_err(|_| timed_out())??;
        }
        "redis+unix" | "unix" => {
            let path = rest.split('?').next().unwrap_or("");
            tokio::time::timeout(TIMEOUT, tokio::net::UnixStream::connect(path))
                .await
                .map_err(|_| timed_out())??;
        }
        _ => {}
    }
    Ok(())
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; the port defaults to 6379.
fn split_host_port(text: &str) -> (&str, u16) {
    const PORT: u16 = 6379;
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return (host, port.unwrap_or(PORT));
    }
    match text.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().unwrap_or(PORT)),
        None => (text, PORT),
    }
}

/// A URL or TLS file the library cannot use is the user's to fix (exit 2); anything else is
/// an operation that failed (exit 1), with the command line's way out when Redis is not
/// there. The library names TLS settings by its own fields, which become the CLI's.
fn connect_error(e: tickq::Error) -> anyhow::Error {
    match e.kind() {
        ErrorKind::InvalidArgument => usage(tls_setting_names(&e.to_string())),
        ErrorKind::Tls => anyhow::anyhow!(tls_setting_names(&e.to_string())),
        ErrorKind::Unavailable if e.message().starts_with("no Redis at") => {
            anyhow::anyhow!("{e}; start one with `redis-server` or pass --redis")
        }
        _ => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port() {
        assert_eq!(split_host_port("h"), ("h", 6379));
        assert_eq!(split_host_port("h:1"), ("h", 1));
        assert_eq!(split_host_port("[::1]:7"), ("::1", 7));
        assert_eq!(split_host_port("[::1]"), ("::1", 6379));
    }
}
