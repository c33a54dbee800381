//! Campaign-scoped tokens: what a token for campaign A may reach, on every route the server has.

use std::{collections::BTreeSet, path::Path, process::Command, time::Duration};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use viralglobe_protocol::ServerMessage;

use crate::support::{TestServer, ips::*};

pub(crate) const SECRET: &str = "a-test-secret-of-at-least-32-bytes!";
const INGEST: &str = "the-ingest-key";
const T0: i64 = 1_350_406_800_000;

/// `viralglobe-server token …`, as an operator runs it.
pub(crate) fn mint(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_viralglobe-server"))
        .arg("token")
        .args(args)
        .env("VIRALGLOBE_JWT_SECRET", SECRET)
        .output()
        .expect("viralglobe-server token runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("text")
        .trim()
        .to_owned()
}

fn share(id: &str, campaign: &str) -> String {
    json!({"type": "share", "id": id, "campaign": campaign, "channel": "facebook",
           "sharer": "cast", "ip": LOS_ANGELES, "ts": T0})
    .to_string()
}

fn click(id: &str, share: &str) -> String {
    json!({"type": "click", "id": id, "share": share, "ip": BERLIN, "ts": T0 + 1_000}).to_string()
}

async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, String)>,
) -> (StatusCode, String) {
    let mut request = reqwest::Client::new().request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some((content_type, body)) = body {
        request = request.header("content-type", content_type).body(body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    // An event stream never ends: its head is enough.
    let text = if path.starts_with("/v1/live/events") && status.is_success() {
        String::new()
    } else {
        response.text().await.unwrap_or_default()
    };
    (status, text)
}

/// A request's path, and its body with its content type.
type Request = (String, Option<(&'static str, String)>);

/// How a route treats a token for campaign A.
enum Reach {
    /// Reads or writes campaign-by-campaign: A is let in, B refused.
    Scoped {
        method: Method,
        scope: &'static str,
        request: fn(&Fixture, &str) -> Request,
        /// What the answer for A must be.
        allowed: fn(StatusCode, &str) -> bool,
        /// What the answer for B must be.
        refused: fn(StatusCode, &str) -> bool,
    },
    /// Spans every campaign: a scoped token is refused.
    EveryCampaign(&'static str),
    /// Lists campaigns: only the token's.
    Listing(&'static str),
    /// Takes no token, by design (the reason).
    Public(&'static str),
}

struct Fixture {
    /// A tracked link's code in each campaign.
    codes: [(String, String); 2],
}

impl Fixture {
    fn code(&self, campaign: &str) -> &str {
        &self
            .codes
            .iter()
            .find(|(c, _)| c == campaign)
            .expect("a link")
            .1
    }
}

fn forbidden(status: StatusCode, _: &str) -> bool {
    status == StatusCode::FORBIDDEN
}

/// Let in: whatever the route answers then, not a refusal of the token.
fn let_in(status: StatusCode, _: &str) -> bool {
    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN
}

fn ok(status: StatusCode, _: &str) -> bool {
    status.is_success()
}

/// Every route the server registers, by its pattern, with how a scoped token reaches it. A new
/// route must be added here: the test fails on a route it does not list.
fn routes() -> Vec<(&'static str, Reach)> {
    use Reach::*;
    let read = |request| Scoped {
        method: Method::GET,
        scope: "read",
        request,
        allowed: ok,
        refused: forbidden,
    };
    // A websocket route answered without an upgrade: let in, then 400.
    let socket = |request| Scoped {
        method: Method::GET,
        scope: "read",
        request,
        allowed: let_in,
        refused: forbidden,
    };
    vec![
        (
            "/v1/live",
            socket(|_, c| (format!("/v1/live?campaign={c}"), None)),
        ),
        (
            "/v1/live/events",
            read(|_, c| (format!("/v1/live/events?campaign={c}"), None)),
        ),
        (
            "/v1/campaigns/{id}/replay",
            socket(|_, c| (format!("/v1/campaigns/{c}/replay"), None)),
        ),
        (
            "/v1/campaigns/{id}/timeline",
            read(|_, c| (format!("/v1/campaigns/{c}/timeline"), None)),
        ),
        (
            "/v1/campaigns/{id}/export",
            read(|_, c| (format!("/v1/campaigns/{c}/export?format=csv"), None)),
        ),
        (
            "/v1/campaigns/{id}/stats",
            read(|_, c| (format!("/v1/campaigns/{c}/stats"), None)),
        ),
        (
            "/v1/campaigns/{id}/cascades",
            read(|_, c| (format!("/v1/campaigns/{c}/cascades"), None)),
        ),
        (
            "/v1/links/{code}",
            read(|f, c| (format!("/v1/links/{}", f.code(c)), None)),
        ),
        (
            "/v1/events",
            Scoped {
                method: Method::POST,
                scope: "ingest",
                // A share of the campaign, and a click on the campaign's existing share.
                request: |_, c| {
                    let body = format!(
                        "{}\n{}\n",
                        share(&format!("{c}-new"), c),
                        click(&format!("{c}-c9"), &format!("{c}-1"))
                    );
                    ("/v1/events".into(), Some(("application/x-ndjson", body)))
                },
                allowed: |status, body| {
                    status == StatusCode::OK && body.contains(r#""accepted":2"#)
                },
                // Each line refused, naming its field and the campaign; nothing recorded.
                refused: |status, body| {
                    status == StatusCode::BAD_REQUEST
                        && body.contains(r#""accepted":0"#)
                        && body.contains(r#""field":"campaign""#)
                        && body.contains(r#""field":"share""#)
                        && body.contains("may not post events to campaign `b`")
                },
            },
        ),
        (
            "/v1/links",
            Scoped {
                method: Method::POST,
                scope: "links",
                request: |_, c| {
                    let body = json!({"campaign": c, "destination": "https://example.com/",
                                      "channel": "email", "sharer": "list"});
                    (
                        "/v1/links".into(),
                        Some(("application/json", body.to_string())),
                    )
                },
                allowed: |status, _| status == StatusCode::CREATED,
                refused: |status, body| {
                    status == StatusCode::FORBIDDEN
                        && body.contains("may not create links in campaign `b`")
                },
            },
        ),
        ("/v1/campaigns", Listing("/v1/campaigns")),
        ("/metrics", EveryCampaign("/metrics")),
        (
            "/healthz",
            Public("liveness for load balancers: no campaign's figures"),
        ),
        (
            "/l",
            Public("the tracked links' redirect: a visitor has no token"),
        ),
        (
            "/v1/links/{code}/qr.svg",
            Public("the public address of a link, as a QR code"),
        ),
        (
            "/v1/links/{code}/share",
            Public("vg.js on the marketer's site: the code is the capability"),
        ),
        (
            "/v1/links/{code}/conversions",
            Public("vg.js on the marketer's site: the code is the capability"),
        ),
        ("/", Public("the page; its feed asks for the token")),
        ("/app.js", Public("the page's code")),
        ("/feed.js", Public("the page's code")),
        ("/land.js", Public("the page's code")),
        ("/style.css", Public("the page's style")),
        ("/world.json", Public("geography")),
        ("/vg.js", Public("the script for marketers' sites")),
        ("/palette.json", Public("the arcs' colours")),
        (
            "/v1/hooks/dub",
            Public("Dub signs it with --dub-webhook-secret"),
        ),
        (
            "/embed",
            Public("the embeddable globe's page; its feed asks for the token"),
        ),
        (
            "/embed/viral-globe.js",
            Public("the embeddable globe's code"),
        ),
    ]
}

/// The route patterns the server's sources register: `resource("…")`, `web::scope("…")` and
/// the page's assets (`path: "…"`).
fn registered_routes() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut dirs = vec![src];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("sources") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a source");
            for opener in ["resource(\"", "web::scope(\"", "path: \""] {
                for (at, _) in text.match_indices(opener) {
                    let rest = &text[at + opener.len()..];
                    let route = &rest[..rest.find('"').expect("a closing quote")];
                    if route.starts_with('/') {
                        found.insert(route.to_owned());
                    }
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn a_token_for_one_campaign_reaches_only_that_campaign_on_every_route() {
    let listed: BTreeSet<String> = routes().iter().map(|(r, _)| (*r).to_owned()).collect();
    let registered = registered_routes();
    assert!(registered.len() > 20, "found {registered:?}");
    let unlisted: Vec<_> = registered.difference(&listed).collect();
    assert!(
        unlisted.is_empty(),
        "routes without a scope rule in this test: {unlisted:?}"
    );
    let gone: Vec<_> = listed.difference(&registered).collect();
    assert!(
        gone.is_empty(),
        "routes listed here that the server no longer has: {gone:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(
        dir.path(),
        &["--ingest-token", INGEST, "--jwt-secret", SECRET],
    );
    let seed = ["a", "b"]
        .iter()
        .flat_map(|c| {
            [
                share(&format!("{c}-1"), c),
                click(&format!("{c}-c1"), &format!("{c}-1")),
            ]
        })
        .collect::<Vec<_>>()
        .join("\n");
    let (status, answer) = server
        .post(&seed, "application/x-ndjson", Some(INGEST))
        .await;
    assert_eq!(
        (status, answer["accepted"].as_u64()),
        (200, Some(4)),
        "{answer}"
    );
    let mut codes = Vec::new();
    for c in ["a", "b"] {
        let body = json!({"campaign": c, "destination": "https://example.com/", "channel": "facebook", "sharer": "cast"});
        let (status, text) = send(
            &server,
            Method::POST,
            "/v1/links",
            Some(INGEST),
            Some(("application/json", body.to_string())),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
        let link: Value = serde_json::from_str(&text).expect("json");
        codes.push((
            c.to_owned(),
            link["code"].as_str().expect("code").to_owned(),
        ));
    }
    let fixture = Fixture {
        codes: [codes[0].clone(), codes[1].clone()],
    };
    let token_for = |scope: &str| mint(&["--campaign", "a", "--scope", scope, "--ttl", "1h"]);

    for (pattern, reach) in routes() {
        match reach {
            Reach::Scoped {
                method,
                scope,
                request,
                allowed,
                refused,
            } => {
                let token = token_for(scope);
                let (path, body) = request(&fixture, "a");
                let (status, text) = send(&server, method.clone(), &path, Some(&token), body).await;
                assert!(
                    allowed(status, &text),
                    "{pattern}: a token for A on A: {status} {text}"
                );
                let (path, body) = request(&fixture, "b");
                let (status, text) =
                    send(&server, method.clone(), &path, Some(&token), body.clone()).await;
                assert!(
                    refused(status, &text),
                    "{pattern}: a token for A on B: {status} {text}"
                );
                // Another scope's token for A, and no token at all, are refused outright.
                let other = token_for(if scope == "read" { "links" } else { "read" });
                let (status, text) =
                    send(&server, method.clone(), &path, Some(&other), body.clone()).await;
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{pattern}: without `{scope}`: {text}"
                );
                assert!(
                    text.contains(&format!("does not include `{scope}`")),
                    "{pattern}: {text}"
                );
                let (status, _) = send(&server, method, &path, None, body).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{pattern}: no token");
            }
            Reach::EveryCampaign(path) => {
                let (status, text) =
                    send(&server, Method::GET, path, Some(&token_for("read")), None).await;
                assert_eq!(status, StatusCode::FORBIDDEN, "{pattern}: {text}");
                let all = mint(&["--campaign", "*", "--scope", "read"]);
                let (status, _) = send(&server, Method::GET, path, Some(&all), None).await;
                assert_eq!(
                    status,
                    StatusCode::OK,
                    "{pattern}: a token for every campaign"
                );
            }
            Reach::Listing(path) => {
                let (status, text) =
                    send(&server, Method::GET, path, Some(&token_for("read")), None).await;
                assert_eq!(status, StatusCode::OK, "{text}");
                let listed: Value = serde_json::from_str(&text).expect("json");
                let ids: Vec<_> = listed["campaigns"]
                    .as_array()
                    .expect("campaigns")
                    .iter()
                    .map(|c| c["id"].clone())
                    .collect();
                assert_eq!(ids, [json!("a")], "{pattern}: only A's");
            }
            Reach::Public(why) => assert!(!why.is_empty()),
        }
    }
    // Nothing B's was changed by A's token: its share and click, and no more.
    let all = mint(&["--campaign", "*", "--scope", "read"]);
    let (_, text) = send(
        &server,
        Method::GET,
        "/v1/campaigns/b/stats",
        Some(&all),
        None,
    )
    .await;
    let stats: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        (
            stats["summary"]["shares"].as_u64(),
            stats["summary"]["clicks"].as_u64()
        ),
        (Some(2), Some(1)),
        "{stats}"
    );
}

#[tokio::test]
async fn a_scoped_subscriber_reads_its_campaign_and_no_other() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(
        dir.path(),
        &["--ingest-token", INGEST, "--jwt-secret", SECRET],
    );
    let lines = [share("a-1", "a"), share("b-1", "b"), share("c-1", "c")].join("\n");
    let (status, _) = server
        .post(&lines, "application/x-ndjson", Some(INGEST))
        .await;
    assert_eq!(status, 200);
    // Naming no campaign, a token for one reads that one: its hello lists only it.
    let token = mint(&["--campaign", "a"]);
    let (mut subscriber, hello) = server.subscribe(&format!("?token={token}")).await;
    let ServerMessage::Hello { campaigns, .. } = hello else {
        panic!("{hello:?}")
    };
    let ids: Vec<_> = campaigns.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["a"]);
    let more = [share("b-2", "b"), share("a-2", "a")].join("\n");
    server
        .post(&more, "application/x-ndjson", Some(INGEST))
        .await;
    // Until A's new arc (a-1's may come first: it can be published just after the hello), and
    // none of B's on the way.
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|a: &viralglobe_protocol::ArcEvent| a.share == "a-2")
    {
        let more = subscriber.arcs(1, Duration::from_secs(5)).await;
        assert!(!more.is_empty(), "no a-2 after {seen:?}");
        seen.extend(more);
    }
    assert!(
        seen.iter().all(|a| a.campaign == "a"),
        "B's arc reached A's subscriber: {seen:?}"
    );
    // A token for two campaigns must name one.
    let two = mint(&["--campaign", "a", "--campaign", "c"]);
    let (status, text) = send(
        &server,
        Method::GET,
        &format!("/v1/live/events?token={two}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    let (status, _) = send(
        &server,
        Method::GET,
        &format!("/v1/live/events?campaign=c&token={two}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

/// A token's parts: header, claims, signature.
fn parts(token: &str) -> [&str; 3] {
    let mut split = token.split('.');
    [(); 3].map(|()| split.next().expect("three parts"))
}

#[tokio::test]
async fn expired_forged_and_unsigned_tokens_are_refused_and_never_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &["--jwt-secret", SECRET]);
    let for_a = mint(&["--campaign", "a", "--subject", "client-a"]);
    let [head, _, signature_a] = parts(&for_a);
    // Claims for every campaign, under A's signature.
    let all = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"exp": 4_000_000_000u64, "scope": "read ingest links", "campaigns": "*"}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret-another-secret-!!"),
    )
    .expect("signs");
    let [_, claims_all, _] = parts(&all);
    let tampered = format!("{head}.{claims_all}.{signature_a}");
    // `{"alg":"none"}`, unsigned.
    let unsigned = format!("eyJhbGciOiJub25lIn0.{claims_all}.");
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"exp": 1_600_000_000u64, "scope": "read", "campaigns": ["a"]}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("signs");
    let other_origin = mint(&["--campaign", "a", "--origin", "https://client.example"]);
    let cases = [
        (&tampered, StatusCode::UNAUTHORIZED, "does not verify"),
        (&all, StatusCode::UNAUTHORIZED, "does not verify"),
        (
            &unsigned,
            StatusCode::UNAUTHORIZED,
            "not a token this server reads",
        ),
        (&expired, StatusCode::UNAUTHORIZED, "expired"),
    ];
    for (token, status, reason) in cases {
        for query in [true, false] {
            let path = if query {
                format!("/v1/campaigns/a/stats?token={token}")
            } else {
                "/v1/campaigns/a/stats".into()
            };
            let (got, text) = send(
                &server,
                Method::GET,
                &path,
                (!query).then_some(token.as_str()),
                None,
            )
            .await;
            assert_eq!(got, status, "{reason}: {text}");
            assert!(text.contains(reason), "{text}");
        }
    }
    // The token's pages: another site's is refused, the named one let in.
    for (origin, status) in [
        ("https://evil.example", 403),
        ("https://client.example", 404),
    ] {
        let response = reqwest::Client::new()
            .get(server.url("/v1/campaigns/a/stats"))
            .bearer_auth(&other_origin)
            .header("origin", origin)
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status().as_u16(), status, "{origin}");
    }
    let (status, _) = send(
        &server,
        Method::GET,
        "/v1/campaigns/b/stats",
        Some(&for_a),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = server.log();
    assert!(log.matches("token refused").count() >= 10, "{log}");
    assert!(
        log.contains("client-a"),
        "a refusal names the token's subject: {log}"
    );
    for token in [&for_a, &tampered, &all, &unsigned, &expired, &other_origin] {
        for part in parts(token) {
            if part.len() > 8 {
                assert!(!log.contains(part), "a token's part is in the log: {log}");
            }
        }
    }
}

#[tokio::test]
async fn tokens_from_an_issuer_verify_with_its_public_keys() {
    let keys = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/e2e/keys");
    for (public, private, algorithm, kid) in [
        (
            "rsa.pub.pem",
            "rsa.pem",
            jsonwebtoken::Algorithm::RS256,
            None,
        ),
        (
            "jwks.json",
            "ec.pem",
            jsonwebtoken::Algorithm::ES256,
            Some("test-ec"),
        ),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let key_path = keys.join(public);
        let server = TestServer::start_in(
            dir.path(),
            &[
                "--jwt-public-key",
                key_path.to_str().expect("utf-8"),
                "--ingest-token",
                INGEST,
            ],
        );
        server
            .post(&share("a-1", "a"), "application/x-ndjson", Some(INGEST))
            .await;
        let pem = std::fs::read(keys.join(private)).expect("the private key");
        let key = match algorithm {
            jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(&pem),
            _ => jsonwebtoken::EncodingKey::from_ec_pem(&pem),
        }
        .expect("a private key");
        let mut header = jsonwebtoken::Header::new(algorithm);
        header.kid = kid.map(str::to_owned);
        let token = jsonwebtoken::encode(
            &header,
            &json!({"exp": 4_000_000_000u64, "scope": ["read"], "campaigns": ["a"]}),
            &key,
        )
        .expect("signs");
        let (status, text) = send(
            &server,
            Method::GET,
            "/v1/campaigns/a/stats",
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{public}: {text}");
        let (status, _) = send(
            &server,
            Method::GET,
            "/v1/campaigns/b/stats",
            Some(&token),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{public}");
        // The public key used as an HMAC secret (the classic confusion) is refused.
        let public_pem = std::fs::read(&key_path).expect("public key");
        let confused = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &json!({"exp": 4_000_000_000u64, "scope": "read", "campaigns": "*"}),
            &jsonwebtoken::EncodingKey::from_secret(&public_pem),
        )
        .expect("signs");
        let (status, text) = send(
            &server,
            Method::GET,
            "/v1/campaigns/a/stats",
            Some(&confused),
            None,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{public}: {text}");
    }
}
