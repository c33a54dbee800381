//! Connections to Redis: TLS-capable clients, and connections with deadlines so that a Redis that
//! stops answering is noticed. Every part of cluster mode connects through here.

use std::time::Duration;

use super::ClusterError;

/// How long one blocking read of the log waits for new entries before asking again.
pub(super) const BLOCK_MS: u64 = 1_000;

pub(super) fn client(url: &str) -> Result<redis::Client, ClusterError> {
    // `rediss://`: TLS with rustls and ring. Installing it twice is harmless (it stays).
    let _ = rustls::crypto::ring::default_provider().install_default();
    redis::Client::open(url).map_err(|e| ClusterError::Url {
        url: address_of(url),
        error: e.to_string(),
    })
}

/// A connection with deadlines, so that a Redis that stops answering is noticed.
pub(super) fn connect(
    client: &redis::Client,
    address: &str,
) -> Result<redis::Connection, ClusterError> {
    let unreachable = |e: redis::RedisError| ClusterError::Unreachable {
        address: address.to_owned(),
        error: if e.is_connection_refusal() {
            format!("{e} (is redis-server running? README, \"Running several nodes\")")
        } else {
            // A TLS failure names the certificate; a private CA is trusted with SSL_CERT_FILE.
            e.to_string()
        },
    };
    let con = client
        .get_connection_with_timeout(Duration::from_secs(3))
        .map_err(unreachable)?;
    let deadline = Some(Duration::from_millis(BLOCK_MS) + Duration::from_secs(10));
    con.set_read_timeout(deadline).map_err(unreachable)?;
    con.set_write_timeout(deadline).map_err(unreachable)?;
    Ok(con)
}

/// The address in a Redis URL, without its password.
pub(super) fn address_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    host.split(['/', '?', '#'])
        .next()
        .unwrap_or(host)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_is_shown_without_the_password() {
        assert_eq!(
            address_of("redis://:secret@10.0.0.5:6380/2"),
            "10.0.0.5:6380"
        );
        assert_eq!(
            address_of("rediss://user:pw@redis.example:6379"),
            "redis.example:6379"
        );
        assert_eq!(address_of("redis://127.0.0.1"), "127.0.0.1");
    }
}
