//! Connections to Redis: TLS-capable clients, connections with deadlines so that a Redis that
//! stops answering is noticed, and the primary found through Sentinel
//! (`redis+sentinel://host:port[,host:port…]/master-name`), asked again at every connection so
//! that a reconnect after a failover reaches the new primary. Every part of cluster mode connects
//! through here.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use super::ClusterError;

/// How long one blocking read of the log waits for new entries before asking again.
pub(super) const BLOCK_MS: u64 = 1_000;

/// Where the log is: one Redis, or whichever primary Sentinel names now. Cheap to clone; the
/// clones share what they learnt (the primary in use, the failovers seen).
#[derive(Clone)]
pub(crate) struct Redis(Arc<Inner>);

struct Inner {
    target: Target,
    /// The primary connected to last (`host:port`).
    primary: Mutex<String>,
    failovers: AtomicU64,
}

enum Target {
    Direct(redis::Client),
    Sentinel(Sentinel),
}

struct Sentinel {
    /// Each sentinel: its address and a client for it.
    sentinels: Vec<(String, redis::Client)>,
    master: String,
    /// `redis` or `rediss`, and the `user:password@` of the URL (for the primary).
    scheme: &'static str,
    credentials: String,
}

impl Redis {
    /// `redis://`, `rediss://` (TLS), `redis+sentinel://` or `rediss+sentinel://`.
    pub(crate) fn open(url: &str) -> Result<Self, ClusterError> {
        // TLS with rustls and ring. Installing it twice is harmless (it stays).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let bad = |error: String| ClusterError::Url {
            url: address_of(url),
            error,
        };
        let target = match url.split_once("://") {
            Some((scheme @ ("redis+sentinel" | "rediss+sentinel"), rest)) => {
                let scheme = if scheme == "rediss+sentinel" {
                    "rediss"
                } else {
                    "redis"
                };
                let (credentials, rest) = match rest.rsplit_once('@') {
                    Some((c, r)) => (format!("{c}@"), r),
                    None => (String::new(), rest),
                };
                let (hosts, master) = rest.split_once('/').ok_or_else(|| {
                    bad("name the primary after the sentinels: \
                         redis+sentinel://host:port[,host:port…]/master-name"
                        .into())
                })?;
                let master = master.trim_end_matches('/');
                if master.is_empty() || master.contains(['/', '?', '#']) {
                    return Err(bad(format!(
                        "`{master}` is not a master name (redis+sentinel://host:port/master-name)"
                    )));
                }
                let sentinels = hosts
                    .split(',')
                    .filter(|h| !h.is_empty())
                    .map(|host| {
                        let client = redis::Client::open(format!("{scheme}://{host}"))
                            .map_err(|e| bad(format!("sentinel `{host}`: {e}")))?;
                        Ok((host.to_owned(), client))
                    })
                    .collect::<Result<Vec<_>, ClusterError>>()?;
                if sentinels.is_empty() {
                    return Err(bad("no sentinel address before the master name".into()));
                }
                Target::Sentinel(Sentinel {
                    sentinels,
                    master: master.to_owned(),
                    scheme,
                    credentials,
                })
            }
            _ => Target::Direct(redis::Client::open(url).map_err(|e| bad(e.to_string()))?),
        };
        let primary = match &target {
            Target::Direct(_) => address_of(url),
            Target::Sentinel(_) => String::new(),
        };
        Ok(Self(Arc::new(Inner {
            target,
            primary: Mutex::new(primary),
            failovers: AtomicU64::new(0),
        })))
    }

    /// A connection to the primary, with deadlines.
    pub(super) fn connect(&self) -> Result<redis::Connection, ClusterError> {
        match &self.0.target {
            Target::Direct(client) => connect(client, &self.address()),
            Target::Sentinel(sentinel) => {
                let (address, con) = sentinel.connect_to_primary()?;
                self.note_primary(address);
                Ok(con)
            }
        }
    }

    /// The primary in use: Redis's `host:port`, never its password.
    pub(crate) fn address(&self) -> String {
        let primary = self.0.primary.lock().unwrap_or_else(|p| p.into_inner());
        match (&self.0.target, primary.is_empty()) {
            (Target::Sentinel(s), true) => s.describe(),
            _ => primary.clone(),
        }
    }

    /// Times a connection found another primary than the one before.
    pub(crate) fn failovers(&self) -> u64 {
        self.0.failovers.load(Ordering::Relaxed)
    }

    fn note_primary(&self, address: String) {
        let mut primary = self.0.primary.lock().unwrap_or_else(|p| p.into_inner());
        if *primary == address {
            return;
        }
        if !primary.is_empty() {
            self.0.failovers.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("viralglobe_log_failovers_total").increment(1);
            tracing::warn!(from = %primary, to = %address, "Sentinel names a new primary: following it");
        }
        *primary = address;
    }
}

impl Sentinel {
    fn describe(&self) -> String {
        let hosts: Vec<&str> = self.sentinels.iter().map(|(h, _)| h.as_str()).collect();
        format!("sentinel {} (master {})", hosts.join(","), self.master)
    }

    /// Asks each sentinel in turn for the primary, and connects to it if it says it is one (a
    /// sentinel may still name a primary that was demoted a moment ago).
    fn connect_to_primary(&self) -> Result<(String, redis::Connection), ClusterError> {
        let mut why = Vec::new();
        for (host, client) in &self.sentinels {
            let named = client
                .get_connection_with_timeout(Duration::from_secs(1))
                .and_then(|mut con| {
                    redis::cmd("SENTINEL")
                        .arg("get-master-addr-by-name")
                        .arg(&self.master)
                        .query::<Option<(String, u16)>>(&mut con)
                });
            let (ip, port) = match named {
                Ok(Some(named)) => named,
                Ok(None) => {
                    why.push(format!("{host} knows no master `{}`", self.master));
                    continue;
                }
                Err(e) => {
                    why.push(format!("{host}: {e}"));
                    continue;
                }
            };
            let address = format!("{ip}:{port}");
            let primary =
                redis::Client::open(format!("{}://{}{address}", self.scheme, self.credentials))
                    .map_err(|e| ClusterError::Url {
                        url: address.clone(),
                        error: e.to_string(),
                    })?;
            let mut con = match connect(&primary, &address) {
                Ok(con) => con,
                Err(e) => {
                    why.push(format!("{host} names {address}: {e}"));
                    continue;
                }
            };
            let role: redis::RedisResult<Vec<redis::Value>> = redis::cmd("ROLE").query(&mut con);
            match role.as_deref() {
                Ok([redis::Value::BulkString(role), ..]) if role == b"master" => {
                    return Ok((address, con));
                }
                _ => why.push(format!(
                    "{host} names {address}, which is not a primary (yet)"
                )),
            }
        }
        Err(ClusterError::Unreachable {
            address: self.describe(),
            error: why.join("; "),
        })
    }
}

fn connect(client: &redis::Client, address: &str) -> Result<redis::Connection, ClusterError> {
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

    #[test]
    fn a_sentinel_url_names_its_sentinels_and_master() {
        let redis = Redis::open("redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/viral")
            .expect("a sentinel URL");
        assert_eq!(
            redis.address(),
            "sentinel 10.0.0.1:26379,10.0.0.2:26379 (master viral)"
        );
        let Target::Sentinel(sentinel) = &redis.0.target else {
            panic!("not a sentinel target")
        };
        assert_eq!(sentinel.credentials, ":pw@");
        assert_eq!(sentinel.scheme, "redis");
        for bad in [
            "redis+sentinel://10.0.0.1:26379",
            "redis+sentinel://10.0.0.1:26379/",
            "redis+sentinel:///viral",
        ] {
            let error = Redis::open(bad).err().expect(bad).to_string();
            assert!(!error.contains("pw"), "{error}");
        }
    }
}
