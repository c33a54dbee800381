//! Campaign-scoped tokens: JWTs that say what their holder may do (`scope`: `read`, `ingest`,
//! `links`), in which campaigns (`campaigns`: ids, or `*`), until when (`exp`, required), and
//! from which pages (`origins`, optional). Signed with the server's secret (HS256) or by an issuer
//! whose public keys the server holds (RS256/ES256, a PEM or a JWKS file). A key only ever checks
//! its own algorithm, so no token chooses how it is checked (`alg: none`, an RS256 key used as an
//! HMAC secret).

use std::{path::Path, sync::Arc};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation,
    jwk::{AlgorithmParameters, JwkSet},
};
use serde::{Deserialize, Serialize};

/// What a token lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The live feed, replays, exports and the read API of its campaigns.
    Read,
    /// `POST /v1/events` for its campaigns.
    Ingest,
    /// `POST /v1/links` for its campaigns.
    Links,
}

impl Scope {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Ingest => "ingest",
            Self::Links => "links",
        }
    }
}

/// The campaigns a holder may reach: every one, or these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Campaigns {
    All,
    Only(Arc<[String]>),
}

/// The claims the server reads. `scope` is a space-separated string (as OAuth writes it) or a
/// list; `campaigns` a list of ids or `"*"`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    exp: u64,
    #[serde(with = "scopes")]
    scope: Vec<Scope>,
    #[serde(with = "campaign_list")]
    campaigns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origins: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
}

impl Claims {
    pub(crate) fn allows(&self, scope: Scope) -> bool {
        self.scope.contains(&scope)
    }

    pub(crate) fn campaigns(&self) -> Campaigns {
        if self.campaigns.iter().any(|c| c == "*") {
            Campaigns::All
        } else {
            Campaigns::Only(self.campaigns.clone().into())
        }
    }

    /// Whether a page of `origin` may use the token: any, unless the token names its pages.
    pub(crate) fn allows_origin(&self, origin: &str) -> bool {
        self.origins.as_ref().is_none_or(|origins| {
            origins
                .iter()
                .any(|o| o.trim_end_matches('/') == origin.trim_end_matches('/'))
        })
    }

    pub(crate) fn subject(&self) -> Option<&str> {
        self.sub.as_deref()
    }
}

mod scopes {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Scope;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Spaced(String),
        List(Vec<String>),
    }

    pub(super) fn serialize<S: Serializer>(scopes: &[Scope], s: S) -> Result<S::Ok, S::Error> {
        let names: Vec<_> = scopes.iter().map(|scope| scope.name()).collect();
        s.serialize_str(&names.join(" "))
    }

    /// Scopes this server does not know are left out: a token may carry other services' too.
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Scope>, D::Error> {
        let names = match Written::deserialize(d)? {
            Written::Spaced(text) => text.split_whitespace().map(str::to_owned).collect(),
            Written::List(list) => list,
        };
        Ok(names
            .iter()
            .filter_map(|name| match name.as_str() {
                "read" => Some(Scope::Read),
                "ingest" => Some(Scope::Ingest),
                "links" => Some(Scope::Links),
                _ => None,
            })
            .collect())
    }
}

mod campaign_list {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        One(String),
        List(Vec<String>),
    }

    pub(super) fn serialize<S: Serializer>(list: &[String], s: S) -> Result<S::Ok, S::Error> {
        match list {
            [all] if all == "*" => s.serialize_str("*"),
            _ => list.serialize(s),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Written::deserialize(d)? {
            Written::One(one) => vec![one],
            Written::List(list) => list,
        })
    }
}

/// Why a token was refused (never the token itself).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TokenError {
    #[error("expired")]
    Expired,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("no key of this server checks {0}")]
    NoKey(String),
    #[error("not a token this server reads: {0}")]
    Malformed(String),
}

/// The keys that verify tokens, each with the one algorithm it checks.
#[derive(Clone, Default)]
pub(crate) struct TokenKeys {
    keys: Vec<Key>,
}

#[derive(Clone)]
struct Key {
    id: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let algorithms: Vec<_> = self.keys.iter().map(|k| k.algorithm).collect();
        f.debug_struct("TokenKeys")
            .field("algorithms", &algorithms)
            .finish()
    }
}

/// Why the configured keys could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "--jwt-secret must be at least 32 bytes (it is {0}): a short HMAC secret can be guessed"
    )]
    ShortSecret(usize),
    #[error("cannot read --jwt-public-key {path}: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "--jwt-public-key {0}: neither an RSA or EC public key in PEM nor a JWKS with RSA or EC keys"
    )]
    NotAKey(String),
}

/// Shortest HMAC secret accepted: 256 bits, as RFC 7518 asks of HS256.
pub(crate) const MIN_SECRET_BYTES: usize = 32;

impl TokenKeys {
    /// The keys of `--jwt-secret` and `--jwt-public-key` (PEM or JWKS); none when neither is set.
    pub(crate) fn load(secret: Option<&str>, public_key: Option<&Path>) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(KeyError::ShortSecret(secret.len()));
            }
            keys.push(Key {
                id: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            });
        }
        if let Some(path) = public_key {
            let shown = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|source| KeyError::Unreadable {
                path: shown.clone(),
                source,
            })?;
            let found = public_keys(&bytes);
            if found.is_empty() {
                return Err(KeyError::NotAKey(shown));
            }
            keys.extend(found);
        }
        Ok(Self { keys })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The claims of a token a key of ours signed, unexpired.
    pub(crate) fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        let candidates = self.keys.iter().filter(|k| {
            k.algorithm == header.alg
                && match (&header.kid, &k.id) {
                    (Some(wanted), Some(id)) => wanted == id,
                    _ => true,
                }
        });
        let mut refusal = TokenError::NoKey(format!("{:?}", header.alg));
        for key in candidates {
            let mut validation = Validation::new(key.algorithm);
            // The server is the audience of every token it verifies; an `aud` is not checked.
            validation.validate_aud = false;
            validation.leeway = 30;
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind;
                    refusal = match e.kind() {
                        ErrorKind::ExpiredSignature => return Err(TokenError::Expired),
                        ErrorKind::InvalidSignature => TokenError::BadSignature,
                        _ => TokenError::Malformed(e.to_string()),
                    };
                }
            }
        }
        Err(refusal)
    }
}

fn public_keys(bytes: &[u8]) -> Vec<Key> {
    if let Ok(set) = serde_json::from_slice::<JwkSet>(bytes) {
        return set
            .keys
            .iter()
            .filter_map(|jwk| {
                let algorithm = match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                    // A shared secret has no place in a file of public keys.
                    _ => return None,
                };
                Some(Key {
                    id: jwk.common.key_id.clone(),
                    algorithm,
                    key: DecodingKey::from_jwk(jwk).ok()?,
                })
            })
            .collect();
    }
    let pem = |algorithm, key| Key {
        id: None,
        algorithm,
        key,
    };
    if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
        return vec![pem(Algorithm::RS256, key)];
    }
    if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
        return vec![pem(Algorithm::ES256, key)];
    }
    Vec::new()
}

/// A token for `campaigns` (`*` for all) with `scopes`, valid for `ttl`, signed with `secret`
/// (HS256): what `viralglobe-server token` prints.
pub fn mint(
    secret: &str,
    campaigns: &[String],
    scopes: &[Scope],
    ttl: std::time::Duration,
    origins: Option<Vec<String>>,
    subject: Option<String>,
) -> Result<String, KeyError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(KeyError::ShortSecret(secret.len()));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let claims = Claims {
        exp: (now + ttl).as_secs(),
        scope: scopes.to_vec(),
        campaigns: campaigns.to_vec(),
        origins,
        sub: subject,
    };
    let key = EncodingKey::from_secret(secret.as_bytes());
    Ok(
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
            .expect("HS256 signs any claims"),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes";

    fn keys() -> TokenKeys {
        TokenKeys::load(Some(SECRET), None).expect("a long secret")
    }

    fn token(campaigns: &[&str], scopes: &[Scope]) -> String {
        let campaigns: Vec<_> = campaigns.iter().map(|c| (*c).to_owned()).collect();
        mint(
            SECRET,
            &campaigns,
            scopes,
            Duration::from_secs(60),
            None,
            None,
        )
        .expect("minted")
    }

    #[test]
    fn a_minted_token_verifies_with_its_campaigns_and_scopes() {
        let claims = keys()
            .verify(&token(&["a", "b"], &[Scope::Read, Scope::Links]))
            .expect("verifies");
        assert!(claims.allows(Scope::Read) && claims.allows(Scope::Links));
        assert!(!claims.allows(Scope::Ingest));
        assert_eq!(
            claims.campaigns(),
            Campaigns::Only(vec!["a".to_owned(), "b".to_owned()].into())
        );
        let all = keys().verify(&token(&["*"], &[Scope::Read])).expect("ok");
        assert_eq!(all.campaigns(), Campaigns::All);
    }

    #[test]
    fn tampered_unsigned_and_foreign_tokens_are_refused() {
        let good = token(&["a"], &[Scope::Read]);
        let (head, rest) = good.split_once('.').expect("three parts");
        let (_, signature) = rest.split_once('.').expect("three parts");
        // The same signature over claims for every campaign.
        let forged_claims = base64_url(br#"{"exp":9999999999,"scope":"read","campaigns":"*"}"#);
        let forged = format!("{head}.{forged_claims}.{signature}");
        assert_eq!(keys().verify(&forged).err(), Some(TokenError::BadSignature));
        // alg: none, no signature.
        let none = format!(
            "{}.{forged_claims}.",
            base64_url(br#"{"alg":"none","typ":"JWT"}"#)
        );
        assert!(matches!(
            keys().verify(&none),
            Err(TokenError::Malformed(_))
        ));
        // Another server's secret.
        let other = mint(
            "another-secret-of-at-least-thirty-two-bytes",
            &["a".to_owned()],
            &[Scope::Read],
            Duration::from_secs(60),
            None,
            None,
        )
        .expect("minted");
        assert_eq!(keys().verify(&other).err(), Some(TokenError::BadSignature));
        // An RS256 header on an HMAC server: no key checks it.
        let rs = format!(
            "{}.{forged_claims}.{signature}",
            base64_url(br#"{"alg":"RS256"}"#)
        );
        assert!(matches!(keys().verify(&rs), Err(TokenError::NoKey(_))));
    }

    #[test]
    fn expired_tokens_and_short_secrets_are_refused() {
        let claims = Claims {
            exp: 1_000_000,
            scope: vec![Scope::Read],
            campaigns: vec!["a".to_owned()],
            origins: None,
            sub: None,
        };
        let old = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("signs");
        assert_eq!(keys().verify(&old).err(), Some(TokenError::Expired));
        assert!(matches!(
            TokenKeys::load(Some("short"), None),
            Err(KeyError::ShortSecret(5))
        ));
    }

    fn base64_url(bytes: &[u8]) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            }
        }
        out
    }
}
