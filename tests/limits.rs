//! Per-principal request rate: RESOURCE_EXHAUSTED with a retry delay, per
//! principal however many connections it opens.

mod common;

use common::*;
use hotfixd::limits::LimitSettings;

#[tokio::test]
async fn a_principal_over_its_rate_is_told_when_to_retry_on_any_connection() {
    let d = Daemon::start_configured(|s| {
        s.limits = LimitSettings {
            per_principal_rate: 1.0,
            per_principal_burst: 5,
            ..LimitSettings::default()
        }
    })
    .await;
    for _ in 0..5 {
        d.ctl("bob", &["whoami"]).await.unwrap();
    }
    // Each `ctl` opens a new connection: no escape.
    let msg = d.ctl_err("bob", &["whoami"], RATE_LIMITED).await;
    assert!(msg.contains("retry in"), "{msg}");
    let status = d
        .client("bob")
        .await
        .policy
        .who_am_i(hotfixctl::pb::WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let ms: u64 = status
        .metadata()
        .get("retry-after-ms")
        .expect("retry delay in metadata")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(ms > 0 && ms <= 1000, "{ms}");
    // Others are not held back by bob.
    d.ctl("alice", &["whoami"]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(ms + 50)).await;
    d.ctl("bob", &["whoami"]).await.unwrap();
}

use std::time::Duration;

/// A channel from `source` (another loopback address: another client).
async fn channel_from(d: &Daemon, source: &str) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(d.endpoint.clone())
        .unwrap()
        .local_address(Some(source.parse().unwrap()))
        .connect()
        .await
        .unwrap()
}

async fn who_am_i(
    channel: tonic::transport::Channel,
    token: &str,
) -> Result<String, tonic::Status> {
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    let mut c = hotfixctl::pb::policy_service_client::PolicyServiceClient::with_interceptor(
        channel,
        move |mut r: tonic::Request<()>| {
            r.metadata_mut().insert("authorization", bearer.clone());
            Ok(r)
        },
    );
    tokio::time::timeout(
        Duration::from_secs(5),
        c.who_am_i(hotfixctl::pb::WhoAmIRequest {}),
    )
    .await
    .map_err(|_| tonic::Status::deadline_exceeded("no answer within 5 s"))?
    .map(|r| r.into_inner().handle)
}

/// `n` requests that send their headers and never their body, as `token`.
async fn hung_requests(
    d: &Daemon,
    token: &str,
    n: usize,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    Vec<h2::SendStream<bytes::Bytes>>,
) {
    let addr = d.endpoint.trim_start_matches("http://").to_string();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let mut held = Vec::new();
    for _ in 0..n {
        let req = http::Request::post(format!("{}/hotfix.v1.PolicyService/WhoAmI", d.endpoint))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap();
        let (_response, stream) = client.send_request(req, false).unwrap();
        held.push(stream);
        client = client.ready().await.unwrap();
    }
    (client, held)
}

#[tokio::test]
async fn requests_without_a_body_cannot_hold_the_slots_of_others() {
    let d = Daemon::start_configured(|s| {
        s.limits.max_in_flight = 16;
        s.limits.per_principal_in_flight = 8;
        s.limits.request_read_timeout = Duration::from_millis(500);
    })
    .await;
    let (_conn, _held) = hung_requests(&d, "dev-bob", 40).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // bob holds at most his own 8; alice is answered at once.
    let alice = who_am_i(channel_from(&d, "127.0.0.1").await, "dev-alice").await;
    assert_eq!(alice.unwrap(), "alice");
    // bob's own slots come back when his bodies time out.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let bob = who_am_i(channel_from(&d, "127.0.0.1").await, "dev-bob").await;
    assert_eq!(bob.unwrap(), "bob");
}

#[tokio::test]
async fn one_principals_watch_streams_are_capped_and_returned_when_closed() {
    let d = Daemon::start_configured(|s| s.limits.per_principal_watches = 3).await;
    let watch = || async {
        d.client("dave")
            .await
            .events
            .watch(hotfixctl::pb::WatchRequest::default())
            .await
    };
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(watch().await.expect("within the cap"));
    }
    let e = watch().await.expect_err("over the cap");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(
        e.message().contains("per_principal_watches"),
        "{}",
        e.message()
    );
    // Another principal has its own.
    d.client("bob")
        .await
        .events
        .watch(hotfixctl::pb::WatchRequest::default())
        .await
        .expect("bob's first");
    drop(open.pop());
    let mut ok = false;
    for _ in 0..50 {
        if watch().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "a closed stream gives its slot back");
}

#[tokio::test]
async fn wrong_tokens_are_refused_unread_past_a_burst_for_that_address_only() {
    let d = Daemon::start_configured(|s| {
        s.limits.failed_auth_rate = 1.0;
        s.limits.failed_auth_burst = 5;
    })
    .await;
    let attacker = channel_from(&d, "127.0.0.2").await;
    let mut codes = Vec::new();
    for _ in 0..50 {
        codes.push(
            who_am_i(attacker.clone(), "guess")
                .await
                .unwrap_err()
                .code(),
        );
    }
    assert!(
        codes[..5]
            .iter()
            .all(|c| *c == tonic::Code::Unauthenticated),
        "{codes:?}"
    );
    assert!(
        codes[5..]
            .iter()
            .all(|c| *c == tonic::Code::ResourceExhausted),
        "{codes:?}"
    );
    // Even a right token from that address waits out the penalty ...
    let e = who_am_i(attacker.clone(), "dev-bob").await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted);
    assert!(e.message().contains("127.0.0.2"), "{}", e.message());
    // ... while everyone else is answered.
    let alice = who_am_i(channel_from(&d, "127.0.0.1").await, "dev-alice").await;
    assert_eq!(alice.unwrap(), "alice");
}

#[tokio::test]
async fn idle_sockets_are_capped_per_address_and_closed_if_silent() {
    use tokio::io::AsyncReadExt;
    let http = free_addr();
    let d = Daemon::start_configured(|s| {
        s.limits.max_connections_per_peer = 10;
        s.limits.handshake_timeout = Duration::from_millis(300);
        s.http_listen = Some(http);
    })
    .await;
    let addr: std::net::SocketAddr = d.endpoint.trim_start_matches("http://").parse().unwrap();
    let mut idle = Vec::new();
    for _ in 0..15 {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        idle.push(s.connect(addr).await.unwrap());
    }
    // Others are served meanwhile.
    let alice = who_am_i(channel_from(&d, "127.0.0.1").await, "dev-alice").await;
    assert_eq!(alice.unwrap(), "alice");
    // Every idle socket is closed by the daemon: the five over the cap at
    // once, the others when they have said nothing for the handshake time.
    // (The daemon may speak first: HTTP/2's server preface.)
    for s in &mut idle {
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
            .await
            .expect("closed by the daemon, not left open")
            .ok();
    }
    // Each refusal is counted, by the limit that refused it: five over the
    // cap, ten silent.
    let refused = |limit: &str| {
        let series = format!("hotfixd_limit_rejections_total{{limit=\"{limit}\"}}");
        async move { metric(http, &series).await }
    };
    assert_eq!(refused("connections_per_peer").await, Some(5.0));
    assert_eq!(refused("handshake").await, Some(10.0));
    assert_eq!(refused("connections").await, Some(0.0));
}
