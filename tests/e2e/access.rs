use std::process::Command;

use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};

use crate::support::{TestServer, events::*, geolite2_city, ips::*};

const T0: i64 = 1_350_406_800_000;

#[tokio::test]
async fn ingest_needs_the_bearer_token_when_one_is_set() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &["--ingest-token", "s3cret"]);
    let body = share("s1", None, "facebook", LOS_ANGELES, T0);
    let (status, answer) = server.post(&body, "application/x-ndjson", None).await;
    assert_eq!(status, 401, "{answer}");
    let (status, _) = server
        .post(&body, "application/x-ndjson", Some("s3cre"))
        .await;
    assert_eq!(status, 401);
    let (status, answer) = server
        .post(&body, "application/x-ndjson", Some("s3cret"))
        .await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(1)));
    // The scheme is case-insensitive (RFC 9110): `bearer` and `BEARER` are `Bearer`.
    for scheme in ["bearer", "BEARER"] {
        let response = reqwest::Client::new()
            .post(server.url("/v1/events"))
            .header("content-type", "application/x-ndjson")
            .header("authorization", format!("{scheme} s3cret"))
            .body(body.clone())
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status().as_u16(), 200, "{scheme}");
    }
    let response = reqwest::Client::new()
        .post(server.url("/v1/events"))
        .header("content-type", "application/x-ndjson")
        .header("authorization", "Basic s3cret")
        .body(body)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 401, "another scheme");
}

#[tokio::test]
async fn the_live_feed_checks_its_read_token_and_the_origin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(
        dir.path(),
        &[
            "--read-token",
            "viewer",
            "--allowed-origins",
            "https://globe.example",
        ],
    );
    let refused = tokio_tungstenite::connect_async(format!("{}/v1/live", server.ws_base)).await;
    assert!(format!("{:?}", refused.expect_err("no token")).contains("401"));
    server.subscribe("?token=viewer").await;

    let mut request = format!("{}/v1/live?token=viewer", server.ws_base)
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("origin", HeaderValue::from_static("https://evil.example"));
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(format!("{:?}", refused.expect_err("bad origin")).contains("403"));
    let mut request = format!("{}/v1/live?token=viewer", server.ws_base)
        .into_client_request()
        .expect("request");
    request
        .headers_mut()
        .insert("origin", HeaderValue::from_static("https://globe.example"));
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
}

#[tokio::test]
async fn without_a_token_ingest_is_refused_off_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_viralglobe-server"));
    command
        .args(["--listen", "0.0.0.0:0", "--geoip"])
        .arg(geolite2_city());
    command.arg("--data-dir").arg(dir.path());
    let mut server = TestServer::spawn(command);
    server.base = server.base.replace("0.0.0.0", "127.0.0.1");
    let (status, answer) = server
        .post(
            &share("s1", None, "facebook", TOKYO, T0),
            "application/x-ndjson",
            None,
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("--ingest-token"))
    );
}

/// With a read token, the read API (counters, revenue, timelines) and `/metrics` want it too, as a
/// `token` query parameter or a bearer token; `/healthz` stays open for load balancers.
#[tokio::test]
async fn the_read_api_checks_the_read_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &["--read-token", "viewer"]);
    let (status, _) = server
        .post_ndjson(&[crate::support::events::share(
            "s1",
            None,
            "facebook",
            crate::support::ips::LOS_ANGELES,
            1_350_406_800_000,
        )])
        .await;
    assert_eq!(status, 200);
    let client = reqwest::Client::new();
    for path in [
        "/v1/campaigns",
        "/v1/campaigns/bones-brigade/stats",
        "/v1/campaigns/bones-brigade/timeline",
        "/metrics",
    ] {
        let refused = client.get(server.url(path)).send().await.expect("GET");
        assert_eq!(refused.status().as_u16(), 401, "{path}");
        assert_eq!(refused.headers()["www-authenticate"], "Bearer", "{path}");
        let with_query = client
            .get(server.url(&format!("{path}?token=viewer")))
            .send()
            .await
            .expect("GET");
        assert_eq!(with_query.status().as_u16(), 200, "{path}?token=");
        let with_bearer = client
            .get(server.url(path))
            .bearer_auth("viewer")
            .send()
            .await
            .expect("GET");
        assert_eq!(
            with_bearer.status().as_u16(),
            200,
            "{path} with a bearer token"
        );
    }
    let health = client
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("GET");
    assert_eq!(health.status().as_u16(), 200);
}

/// A token-less server on loopback takes events from this machine only: a request for another
/// host name (a web page's DNS rebinding) or from another site's page is refused; this machine's
/// names and `--allowed-host` are served.
#[tokio::test]
async fn token_less_ingest_refuses_other_hosts_and_other_sites() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &["--allowed-host", "globe.internal"]);
    let port = server.base.rsplit(':').next().expect("port").to_owned();
    let post = |headers: Vec<(&'static str, String)>, id: &str| {
        let mut request = reqwest::Client::new()
            .post(server.url("/v1/events"))
            .header("content-type", "application/x-ndjson")
            .body(share(id, None, "facebook", LOS_ANGELES, T0));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.expect("POST");
            let status = response.status().as_u16();
            (status, response.text().await.expect("text"))
        }
    };
    for (headers, why) in [
        (
            vec![("host", format!("attacker.example:{port}"))],
            "rebinding",
        ),
        (
            vec![("origin", "https://attacker.example".to_owned())],
            "cross-site",
        ),
        (vec![("origin", "null".to_owned())], "opaque origin"),
    ] {
        let (status, body) = post(headers, "r1").await;
        assert_eq!(status, 403, "{why}: {body}");
        assert!(body.contains("--allowed-host"), "{body}");
    }
    for (i, headers) in [
        vec![],
        vec![("host", format!("localhost:{port}"))],
        vec![("host", format!("[::1]:{port}"))],
        vec![("host", format!("globe.internal:{port}"))],
        vec![("origin", format!("http://localhost:{port}"))],
    ]
    .into_iter()
    .enumerate()
    {
        let (status, body) = post(headers, &format!("ok{i}")).await;
        assert_eq!(status, 200, "{body}");
    }
}
