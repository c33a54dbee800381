//! Resuming: `seq` is an offset any client can come back to, across disconnects and restarts.

use std::time::Duration;

use viralglobe_protocol::{ArcEvent, ServerMessage};

use crate::support::{TestServer, events, ips};

const CAMPAIGN: &str = "bones-brigade";

/// A share from Los Angeles and `n` clicks on it from Tokyo: `n + 1` arcs.
fn share_and_clicks(share: &str, first_click: usize, n: usize) -> Vec<String> {
    let mut lines = vec![events::share(
        share,
        None,
        "twitter",
        ips::LOS_ANGELES,
        1_350_406_800_000,
    )];
    lines.extend((first_click..first_click + n).map(|i| {
        events::click(
            &format!("c{i}"),
            share,
            ips::TOKYO,
            1_350_406_801_000 + i as i64,
        )
    }));
    lines
}

fn clicks(share: &str, from: usize, n: usize) -> Vec<String> {
    (from..from + n)
        .map(|i| {
            events::click(
                &format!("c{i}"),
                share,
                ips::TOKYO,
                1_350_406_801_000 + i as i64,
            )
        })
        .collect()
}

fn epoch_of(hello: &ServerMessage) -> (String, u64) {
    let ServerMessage::Hello { campaigns, .. } = hello else {
        panic!("not a hello: {hello:?}")
    };
    let ours = campaigns
        .iter()
        .find(|c| c.id == CAMPAIGN)
        .expect("the campaign");
    (ours.epoch.clone().expect("an epoch"), ours.seq)
}

fn seqs(arcs: &[ArcEvent]) -> Vec<u64> {
    arcs.iter().map(|a| a.seq).collect()
}

/// A subscriber that drops its connection, misses arcs (and a whole restart of the server), and
/// resumes with `since` ends with exactly the arcs of one that never disconnected.
#[tokio::test]
async fn a_resumed_subscriber_ends_with_exactly_the_arcs_of_one_that_stayed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    let query = format!("?campaign={CAMPAIGN}");
    let (mut stayed, _) = server.subscribe(&query).await;
    let (mut leaves, hello) = server.subscribe(&query).await;
    assert!(
        matches!(&hello, ServerMessage::Hello { campaigns, .. } if campaigns.is_empty()),
        "no such campaign yet: {hello:?}"
    );

    let (status, _) = server.post_ndjson(&share_and_clicks("s1", 0, 9)).await;
    assert_eq!(status, 200);
    // The campaign's line begins: subscribers that came first learn its epoch.
    let Some(ServerMessage::Reset { epoch, .. }) =
        leaves.next_message(Duration::from_secs(5)).await
    else {
        panic!("a new campaign's line is announced with `reset`")
    };
    let before = leaves.arcs(10, Duration::from_secs(5)).await;
    assert_eq!(seqs(&before), (1..=10).collect::<Vec<_>>());
    drop(leaves);

    // Missed while away: more arcs, and a geo miss that takes no seq.
    let mut missed = clicks("s1", 100, 20);
    missed.push(events::click("miss", "s1", ips::PRIVATE, 1_350_406_900_000));
    assert_eq!(server.post_ndjson(&missed).await.0, 200);
    let mut stayed_arcs = stayed.arcs(30, Duration::from_secs(5)).await;
    assert_eq!(seqs(&stayed_arcs), (1..=30).collect::<Vec<_>>());

    let resume = format!("?campaign={CAMPAIGN}&since=10&epoch={epoch}");
    let (mut resumed, hello) = server.subscribe(&resume).await;
    assert_eq!(epoch_of(&hello), (epoch.clone(), 30));
    let mut after = resumed.arcs(20, Duration::from_secs(5)).await;
    // Live from here: both see the same new arcs.
    assert_eq!(server.post_ndjson(&clicks("s1", 200, 5)).await.0, 200);
    after.extend(resumed.arcs(5, Duration::from_secs(5)).await);
    stayed_arcs.extend(stayed.arcs(5, Duration::from_secs(5)).await);
    let mut all = before;
    all.extend(after);
    assert_eq!(all, stayed_arcs, "resumed = stayed, field for field");
    assert!(
        resumed
            .next_message(Duration::from_millis(300))
            .await
            .is_none(),
        "no duplicate"
    );

    // The server restarts: the line goes on in the same epoch, from the recording.
    server.kill();
    let server = TestServer::start_in(dir.path(), &[]);
    assert_eq!(server.post_ndjson(&clicks("s1", 300, 3)).await.0, 200);
    let resume = format!("?campaign={CAMPAIGN}&since=20&epoch={epoch}");
    let (mut resumed, hello) = server.subscribe(&resume).await;
    assert_eq!(epoch_of(&hello), (epoch.clone(), 38));
    let arcs = resumed.arcs(18, Duration::from_secs(5)).await;
    assert_eq!(seqs(&arcs), (21..=38).collect::<Vec<_>>());
    assert_eq!(
        &arcs[..15],
        &stayed_arcs[20..],
        "the same arcs after a restart"
    );

    // The export says the same, seq for seq, in the same epoch.
    let export = reqwest::get(server.url(&format!("/v1/campaigns/{CAMPAIGN}/export")))
        .await
        .expect("export");
    assert_eq!(export.headers()["x-viralglobe-epoch"], epoch.as_str());
    let export = export.text().await.expect("text");
    let exported: Vec<ArcEvent> = export
        .lines()
        .map(|l| serde_json::from_str(l).expect("an arc"))
        .collect();
    assert_eq!(&exported[..35], &stayed_arcs[..]);
    assert_eq!(&exported[35..], &arcs[15..]);
}

/// A resume from an epoch the campaign no longer has (a recreated data directory) is told
/// `reset` and gets the campaign's line from its start; a replay accepts `since` as well.
#[tokio::test]
async fn a_stale_epoch_gets_reset_and_the_whole_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    assert_eq!(
        server.post_ndjson(&share_and_clicks("s1", 0, 4)).await.0,
        200
    );
    let (_, hello) = server.subscribe(&format!("?campaign={CAMPAIGN}")).await;
    let (epoch, seq) = epoch_of(&hello);
    assert_eq!(seq, 5);
    // The read API says the same as `hello`.
    let (_, list) = server.get_json("/v1/campaigns").await;
    assert_eq!(list["campaigns"][0]["epoch"], epoch.as_str());
    assert_eq!(list["campaigns"][0]["seq"], 5);
    assert_eq!(server.stats(CAMPAIGN).await["summary"]["seq"], 5);

    let stale = format!("?campaign={CAMPAIGN}&since=3&epoch=gone-1234");
    let (mut client, _) = server.subscribe(&stale).await;
    assert_eq!(
        client.next_message(Duration::from_secs(5)).await,
        Some(ServerMessage::Reset {
            campaign: CAMPAIGN.into(),
            epoch: epoch.clone()
        })
    );
    assert_eq!(
        seqs(&client.arcs(5, Duration::from_secs(5)).await),
        [1, 2, 3, 4, 5]
    );

    let mut replay = server
        .replay(CAMPAIGN, &format!("?speed=10000000&since=3&epoch={epoch}"))
        .await;
    let arcs = replay.arcs(2, Duration::from_secs(5)).await;
    assert_eq!(seqs(&arcs), [4, 5], "a replay resumes after `since` too");
    let mut replay = server
        .replay(CAMPAIGN, "?speed=10000000&since=3&epoch=gone-1234")
        .await;
    assert!(matches!(
        replay.next_message(Duration::from_secs(5)).await,
        Some(ServerMessage::Reset { .. })
    ));
    assert_eq!(
        seqs(&replay.arcs(5, Duration::from_secs(5)).await),
        [1, 2, 3, 4, 5]
    );
}

/// Bad `since` and `epoch` values are refused with a 400 that names the parameter.
#[tokio::test]
async fn bad_resume_parameters_get_a_clear_400() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = TestServer::start_in(dir.path(), &[]);
    assert_eq!(
        server.post_ndjson(&share_and_clicks("s1", 0, 1)).await.0,
        200
    );
    for (query, field) in [
        ("?campaign=bones-brigade&since=-1&epoch=e", "since"),
        ("?campaign=bones-brigade&since=ten&epoch=e", "since"),
        ("?campaign=bones-brigade&since=3", "epoch"),
        ("?campaign=bones-brigade&epoch=e", "since"),
        ("?campaign=bones-brigade&since=3&epoch=a%20b", "epoch"),
        ("?since=3&epoch=e", "campaign"),
    ] {
        for path in ["/v1/live", "/v1/campaigns/bones-brigade/replay"] {
            if path.contains("replay") && field == "campaign" {
                continue;
            }
            let response = reqwest::get(server.url(&format!("{path}{query}")))
                .await
                .expect("GET");
            assert_eq!(response.status().as_u16(), 400, "{path}{query}");
            let body: serde_json::Value = response.json().await.expect("JSON");
            let error = body["error"].as_str().unwrap_or_default();
            assert!(
                error.contains(&format!("`{field}`")),
                "{path}{query}: {error}"
            );
        }
    }
}
