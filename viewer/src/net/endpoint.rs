//! The server's addresses: `ws://host:port` as given on the command line, and the HTTP and
//! websocket URLs the viewer derives from it.

use viralglobe_protocol::{CampaignStats, Timeline};

#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// `host:port`.
    pub authority: String,
    pub token: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EndpointError {
    #[error("`{0}` is not a server address: expected ws://host:port")]
    NotWebsocket(String),
    #[error("`{0}`: wss:// is not supported; put the viewer on the server's network or a tunnel")]
    Tls(String),
}

impl Endpoint {
    pub fn parse(url: &str, token: Option<String>) -> Result<Self, EndpointError> {
        if url.starts_with("wss://") {
            return Err(EndpointError::Tls(url.to_owned()));
        }
        let authority = url
            .strip_prefix("ws://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .ok_or_else(|| EndpointError::NotWebsocket(url.to_owned()))?;
        Ok(Self {
            authority: authority.to_owned(),
            token: token.filter(|t| !t.is_empty()),
        })
    }

    /// A websocket URL on this server with `query` pairs (and the token) percent-encoded.
    pub fn websocket(&self, path: &str, query: &[(&str, String)]) -> String {
        format!("ws://{}{path}{}", self.authority, self.query(query))
    }

    pub fn http(&self, path: &str, query: &[(&str, String)]) -> String {
        format!("http://{}{path}{}", self.authority, self.query(query))
    }

    fn query(&self, pairs: &[(&str, String)]) -> String {
        let token = self.token.iter().map(|t| ("token", t.clone()));
        let pairs: Vec<String> = pairs
            .iter()
            .cloned()
            .chain(token)
            .map(|(k, v)| format!("{k}={}", encode(&v)))
            .collect();
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    }

    pub fn stats(&self, campaign: &str) -> Result<CampaignStats, String> {
        self.get_json(&self.http(&format!("/v1/campaigns/{}/stats", encode(campaign)), &[]))
    }

    pub fn timeline(&self, campaign: &str, buckets: usize) -> Result<Timeline, String> {
        let path = format!("/v1/campaigns/{}/timeline", encode(campaign));
        self.get_json(&self.http(&path, &[("buckets", buckets.to_string())]))
    }

    fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let text = ureq::get(url)
            .call()
            .and_then(|mut response| response.body_mut().read_to_string())
            .map_err(|e| format!("GET {url}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("GET {url}: {e}"))
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_urls_and_refuses_what_it_cannot_reach() {
        let endpoint = Endpoint::parse("ws://127.0.0.1:8080/", Some("a b&c".into())).expect("ok");
        assert_eq!(
            endpoint.websocket("/v1/live", &[("campaign", "bones brigade".into())]),
            "ws://127.0.0.1:8080/v1/live?campaign=bones%20brigade&token=a%20b%26c"
        );
        assert_eq!(
            endpoint.http("/healthz", &[]),
            "http://127.0.0.1:8080/healthz?token=a%20b%26c"
        );
        assert!(matches!(
            Endpoint::parse("wss://x:1", None),
            Err(EndpointError::Tls(_))
        ));
        assert!(matches!(
            Endpoint::parse("http://x:1", None),
            Err(EndpointError::NotWebsocket(_))
        ));
        assert!(
            Endpoint::parse("ws://x:1/v1/live", None).is_err(),
            "a path is not an address"
        );
    }
}
