//! The audit sink: every audit record streamed to the SIEM (Splunk HEC's
//! format, against `common::siem`'s contract-checking collector), in
//! order, at least once, without ever blocking the lane.

mod common;

use std::time::Duration;

use common::*;
use hotfixd::integrations::siem::{SiemFormat, SiemSettings};

fn sink(url: &str, token: &str) -> SiemSettings {
    SiemSettings {
        url: url.into(),
        format: SiemFormat::SplunkHec,
        token: Some(token.into()),
        timeout: Duration::from_secs(5),
        batch: 3,
        backoff: Duration::from_millis(50),
    }
}

/// The sequence numbers the collector took, in order of arrival.
fn seqs(c: &common::siem::Shared) -> Vec<u64> {
    c.lock()
        .unwrap()
        .events
        .iter()
        .map(|e| e["event"]["seq"].as_u64().unwrap())
        .collect()
}

/// How many records the trail holds, as `audit verify` counts them.
async fn trail(d: &Daemon) -> u64 {
    d.ctl_json("bob", &["audit", "verify"]).await["verified"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

async fn all_arrived(c: &common::siem::Shared, n: u64) {
    let c = c.clone();
    eventually(&format!("records 1..={n} at the SIEM"), move || {
        let mut got = seqs(&c);
        got.dedup();
        got == (1..=n).collect::<Vec<_>>()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_audit_record_reaches_splunk_in_order_and_a_busy_siem_blocks_nothing() {
    let (hec, url) = common::siem::collector().await;
    hec.lock().unwrap().busy = 3; // the first three requests: "server is busy"
    let settings = sink(&url, common::siem::TOKEN);
    let (d, base) = with_operator_listener(move |s| s.siem = Some(settings)).await;
    let http: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    // The lane goes on while the SIEM refuses.
    declare(&d, INC, &[]).await.expect("declare");
    d.ctl_err("alice", &["approve", INC, "--sha", SHA1], PRECONDITION)
        .await;
    let (b, m) = (branch(INC), message(INC));
    d.ctl("bob", &fix_args(INC, SHA1, &b, &m))
        .await
        .expect("fix");
    d.ctl_err("bob", &["approve", INC, "--sha", SHA1], DENIED)
        .await;
    d.ctl("alice", &["approve", INC, "--sha", SHA1])
        .await
        .expect("approve");
    let n = trail(&d).await;
    assert!(n >= 5, "{n}");
    all_arrived(&hec, n).await;
    {
        let c = hec.lock().unwrap();
        assert!(c.bad.is_empty(), "HEC contract: {:?}", c.bad);
        assert!(c.requests > 3, "retried after 'server is busy'");
        for e in &c.events {
            assert_eq!(e["source"], "hotfixd");
            assert_eq!(e["sourcetype"], "hotfixd:audit");
            assert!(e["time"].as_f64().unwrap() > 1.7e9, "{e}");
            assert_eq!(e["event"]["hash"].as_str().unwrap().len(), 64, "{e}");
        }
        // A refusal is audited without an event, and arrives too.
        let denied = c
            .events
            .iter()
            .find(|e| e["event"]["outcome"] == "denied")
            .expect("the denied approval at the SIEM");
        assert_eq!(denied["event"]["actor"], "bob");
        assert_eq!(denied["event"]["action"], "approve");
    }
    let mut lag = None;
    for _ in 0..100 {
        lag = metric(http, "hotfixd_siem_lag_records").await;
        if lag == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lag, Some(0.0));

    // A restart resumes after the last record the SIEM took: nothing sent
    // twice, and what comes after arrives.
    let before = seqs(&hec);
    let d = d.restart().await;
    d.ctl("dave", &["audit", "list", "--incident", INC])
        .await
        .expect("an audited read");
    let n = trail(&d).await;
    all_arrived(&hec, n).await;
    let after = seqs(&hec);
    assert_eq!(&after[..before.len()], &before[..]);
    let mut unique = after.clone();
    unique.dedup();
    assert_eq!(unique, after, "a graceful restart sends nothing twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_delivers_nothing_says_so_and_blocks_nothing() {
    let (hec, url) = common::siem::collector().await;
    let settings = sink(&url, "not-the-token");
    let (d, base) = with_operator_listener(move |s| s.siem = Some(settings)).await;
    let http: std::net::SocketAddr = base.trim_start_matches("http://").parse().unwrap();
    declare(&d, INC, &[]).await.expect("the lane goes on");
    let hec2 = hec.clone();
    eventually("a refused request", move || {
        hec2.lock().unwrap().requests > 0
    })
    .await;
    assert!(hec.lock().unwrap().events.is_empty());
    let mut lag = None;
    for _ in 0..100 {
        lag = metric(http, "hotfixd_siem_lag_records").await;
        if lag.is_some_and(|l| l >= 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(lag.is_some_and(|l| l >= 1.0), "the lag shows: {lag:?}");
    let failed = metric(
        http,
        "hotfixd_integration_calls_total{service=\"siem\",operation=\"send\",outcome=\"error\"}",
    )
    .await;
    assert!(failed.is_some_and(|f| f >= 1.0), "{failed:?}");
}

/// Each signed checkpoint travels with the trail (sourcetype
/// `hotfixd:checkpoint`): with the verifier key alone, the SIEM can check
/// that the records it holds up to the checkpoint's size end in the head
/// hotfixd signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_signed_checkpoint_reaches_the_siem_and_seals_the_records_there() {
    let (hec, url) = common::siem::collector().await;
    let key = hotfix_api::audit::SigningKey::generate("hotfixd.test/siem", [5; 32]).unwrap();
    let verifier = key.verifier();
    let key = hotfixd::config::AuditKey(std::sync::Arc::new(key));
    let settings = sink(&url, common::siem::TOKEN);
    let d = Daemon::start_configured(move |s| {
        s.siem = Some(settings);
        s.audit_key = Some(key);
        s.checkpoints = hotfixd::app::CheckpointSettings {
            every: 3,
            interval: Duration::from_millis(50),
        };
    })
    .await;
    declare(&d, INC, &[]).await.expect("declare");
    let (b, m) = (branch(INC), message(INC));
    d.ctl("bob", &fix_args(INC, SHA1, &b, &m))
        .await
        .expect("fix");
    d.ctl("alice", &["approve", INC, "--sha", SHA1])
        .await
        .expect("approve");
    let hec2 = hec.clone();
    eventually("a checkpoint at the SIEM", move || {
        hec2.lock()
            .unwrap()
            .events
            .iter()
            .any(|e| e["sourcetype"] == "hotfixd:checkpoint")
    })
    .await;
    let checkpoint = hec
        .lock()
        .unwrap()
        .events
        .iter()
        .find(|e| e["sourcetype"] == "hotfixd:checkpoint")
        .cloned()
        .unwrap();
    assert_eq!(checkpoint["event"]["action"], "audit-checkpoint");
    let note = checkpoint["event"]["detail"].as_str().unwrap();
    let sealed = verifier.verify(note).expect("signed by the audit key");
    assert!(sealed.size >= 3, "{sealed:?}");
    let (hec2, size) = (hec.clone(), sealed.size);
    eventually("the records up to the checkpoint's size", move || {
        let got = seqs(&hec2);
        (1..=size).all(|n| got.contains(&n))
    })
    .await;
    let c = hec.lock().unwrap();
    let last = c
        .events
        .iter()
        .find(|e| e["event"]["seq"] == sealed.size)
        .expect("the checkpoint's last record at the SIEM");
    assert_eq!(
        last["event"]["hash"].as_str().unwrap(),
        hex::encode(sealed.head),
        "the records the SIEM holds end in the signed head"
    );
    assert!(c.bad.is_empty(), "HEC contract: {:?}", c.bad);
}
