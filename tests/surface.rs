//! The gRPC surface beyond the lane: health without credentials,
//! reflection (v1 and v1alpha) behind them, and the size limit.

mod common;

use common::*;
use hotfixctl::pb;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn channel(d: &Daemon) -> Channel {
    Channel::from_shared(d.endpoint.clone())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn health_needs_no_token_and_reports_serving() {
    let d = Daemon::start().await;
    let mut health = HealthClient::new(channel(&d).await);
    for service in [
        "",
        "hotfix.v1.LaneService",
        "hotfix.v1.EventService",
        "hotfix.v1.PolicyService",
    ] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, 1, "{service} SERVING");
    }
}

#[tokio::test]
async fn reflection_lists_the_services_for_an_authenticated_caller() {
    let d = Daemon::start().await;
    let list = || {
        tokio_stream::iter(vec![ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        }])
    };
    let mut anon = ServerReflectionClient::new(channel(&d).await);
    let err = anon.server_reflection_info(list()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    let mut authed = ServerReflectionClient::with_interceptor(
        channel(&d).await,
        hotfixctl::BearerAuth::new(Some("dev-bob")).unwrap(),
    );
    let mut stream = authed
        .server_reflection_info(list())
        .await
        .unwrap()
        .into_inner();
    let resp = stream.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(services)) = resp.message_response else {
        panic!("unexpected reflection answer: {resp:?}");
    };
    let names: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    for want in [
        "hotfix.v1.LaneService",
        "hotfix.v1.PolicyService",
        "hotfix.v1.EventService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
}

#[tokio::test]
async fn oversized_requests_are_refused_before_they_reach_the_lane() {
    let d = Daemon::start().await;
    declare(&d, INC, &[]).await.unwrap();
    let mut c = d.client("bob").await;
    let err = c
        .lane
        .submit_fix(pb::SubmitFixRequest {
            mutation: None,
            incident_id: INC.into(),
            branch: branch(INC),
            sha: SHA1.into(),
            commit_message: "x".repeat(2 * 1024 * 1024),
            files: vec![],
        })
        .await
        .unwrap_err();
    // The gRPC status-code guide's code for a message over the limit.
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("too large"), "{}", err.message());
    // Within the frame limit but over a field's bound: the field is named.
    let err = c
        .lane
        .submit_fix(pb::SubmitFixRequest {
            mutation: None,
            incident_id: INC.into(),
            branch: branch(INC),
            sha: SHA1.into(),
            commit_message: format!("{INC} approver: @alice {}", "x".repeat(20_000)),
            files: vec![pb::ChangedFile {
                path: "a/b".into(),
                added: 1,
                removed: 0,
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("commit_message"),
        "{}",
        err.message()
    );
    assert_eq!(d.state(INC).await, "DECLARED");
}

#[tokio::test]
async fn a_body_that_is_not_the_message_is_the_clients_fault() {
    let d = Daemon::start().await;
    hotfixd::integrations::install_crypto_provider();
    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    // A gRPC frame (uncompressed, 3 bytes) holding no valid protobuf.
    let body = vec![0u8, 0, 0, 0, 3, 0xff, 0xff, 0xff];
    let r = http
        .post(format!(
            "{}/hotfix.v1.PolicyService/RecordTeamReview",
            d.endpoint
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", "Bearer dev-erin")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        status.as_deref(),
        Some("3"),
        "INVALID_ARGUMENT: {:?}",
        r.headers()
    );
    assert!(d.ctl("bob", &["report"]).await.is_ok());
}
