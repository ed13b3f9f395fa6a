//! `GET /api/events/stream` over a real broker: replay then live with each seq once and in
//! order, resuming after `Last-Event-ID` when the reader was killed mid-stream, org limits,
//! keep-alive comments, a refused first page answered with an error status, and a slow reader
//! cut off with the seq to resume from while another reader gets every event.

use extbus_schema::Role;
use extbus_tests::http::{basic, request};
use extbus_tests::sse::{Sse, SseStream};
use extbus_tests::{BusClient, TestBroker};
use serde_json::json;
use std::time::Duration;

const ACME: &str = "filter=extbus/events/acme/%23";

async fn emit(b: &TestBroker, org: &str, n: usize) -> Vec<u64> {
    let auth = basic("platform", "platform");
    let mut seqs = Vec::new();
    for i in 0..n {
        let body = json!({"type": "vm.create", "org": org, "subject": format!("urn:x:{i}"), "data": {"i": i}});
        let r = request(
            b.http,
            "POST",
            "/api/events",
            &[("authorization", &auth)],
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(r.status, 201, "{:?}", r.json());
        seqs.push(r.json()["seq"].as_u64().unwrap());
    }
    seqs
}

/// Emits `n` drafts over MQTT (fast, batched by the coordinator), each with `pad` bytes.
async fn emit_mqtt(p: &BusClient, n: usize, pad: usize) {
    let pad = "x".repeat(pad);
    for i in 0..n {
        let d = json!({"type": "vm.create", "org": "acme", "data": {"i": i, "pad": pad}});
        p.publish("extbus/in/platform/events", d.to_string()).await;
    }
}

async fn open(b: &TestBroker, who: &str, query: &str, extra: &[(&str, &str)]) -> SseStream {
    let auth = basic(who, who);
    let mut h = vec![("authorization", auth.as_str())];
    h.extend_from_slice(extra);
    SseStream::open(b.http, &format!("/api/events/stream?{query}"), &h, None)
        .await
        .expect("stream opens")
}

async fn seqs(s: &mut SseStream, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    while out.len() < n {
        let e = s
            .next_event()
            .await
            .unwrap_or_else(|| panic!("stream ended after {out:?}"));
        out.push(e.seq().expect("an event with an id"));
    }
    out
}

#[tokio::test]
async fn replays_then_follows_live_each_seq_once_in_order() {
    let b = TestBroker::start().await;
    let before = emit(&b, "acme", 3).await;
    let mut s = open(&b, "observer", &format!("from_seq=0&{ACME}"), &[]).await;
    assert_eq!(s.status, 200);
    assert!(s
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    let e = s.next_event().await.unwrap();
    assert_eq!(e.kind(), Some("vm.create"));
    assert_eq!(e.json()["specversion"], "1.0");
    assert_eq!(e.json()["seq"], before[0]);
    let mut got = vec![e.seq().unwrap()];
    got.extend(seqs(&mut s, 2).await);
    assert_eq!(got, before);
    let after = emit(&b, "acme", 3).await;
    assert_eq!(seqs(&mut s, 3).await, after);
    let m = request(b.http, "GET", "/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&m.body).to_string();
    assert!(text.contains("extbus_http_event_streams 1"), "{text}");
    // An open stream does not hold the shutdown for the grace period.
    let stop = tokio::time::timeout(Duration::from_secs(5), b.stop()).await;
    assert!(stop.is_ok(), "the broker did not stop with a stream open");
}

#[tokio::test]
async fn a_killed_reader_resumes_after_last_event_id_without_gaps_or_repeats() {
    let b = TestBroker::start().await;
    let first = emit(&b, "acme", 5).await;
    let mut s = open(&b, "observer", &format!("from_seq=0&{ACME}"), &[]).await;
    let mut got = seqs(&mut s, 5).await;
    assert_eq!(got, first);
    // Killed mid-stream; events keep coming while it is away.
    drop(s);
    let away = emit(&b, "acme", 4).await;
    let last = got.last().unwrap().to_string();
    // Last-Event-ID wins over from_seq.
    let mut s = open(
        &b,
        "observer",
        &format!("from_seq=0&{ACME}"),
        &[("last-event-id", &last)],
    )
    .await;
    got.extend(seqs(&mut s, 4).await);
    let live = emit(&b, "acme", 2).await;
    got.extend(seqs(&mut s, 2).await);
    let want: Vec<u64> = first.iter().chain(&away).chain(&live).copied().collect();
    assert_eq!(got, want);
    // Nothing more: no repeat of a seq already sent.
    let extra = s.next_within(Duration::from_millis(300)).await;
    assert!(!matches!(extra, Some(Sse::Event { .. })), "{extra:?}");
    b.stop().await;
}

#[tokio::test]
async fn only_events_of_the_readers_orgs_arrive_and_keepalives_flow() {
    let b = TestBroker::start_with(|c| c.http.sse_keepalive_ms = 100).await;
    b.add_principal("obs-acme", &[Role::Observer], &["acme"]);
    emit(&b, "globex", 2).await;
    let ours = emit(&b, "acme", 1).await;
    let mut s = open(&b, "obs-acme", "from_seq=0", &[]).await;
    assert_eq!(seqs(&mut s, 1).await, ours);
    emit(&b, "globex", 2).await;
    let live = emit(&b, "acme", 1).await;
    assert_eq!(seqs(&mut s, 1).await, live);
    let mut comments = 0;
    let until = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Some(e) = s.next_within(until - tokio::time::Instant::now()).await {
        assert_eq!(e, Sse::Comment, "only keep-alives while nothing happens");
        comments += 1;
    }
    assert!(
        comments >= 2,
        "{comments} keep-alive comments in 500 ms at 100 ms"
    );
    // A bad filter or Last-Event-ID is refused with a status, before any event.
    let s = open(&b, "obs-acme", "filter=a/%23/b", &[]).await;
    assert_eq!(s.status, 400);
    let s = open(&b, "obs-acme", "", &[("last-event-id", "x")]).await;
    assert_eq!(s.status, 400);
    let s = SseStream::open(b.http, "/api/events/stream", &[], None)
        .await
        .unwrap();
    assert_eq!(s.status, 401);
    b.stop().await;
}

#[tokio::test]
async fn a_slow_reader_is_cut_with_where_to_resume_and_others_get_everything() {
    // More than the kernel's largest send buffer (4 MiB) and hyper's write buffer can hold.
    const N: usize = 480;
    const STEP: usize = 24;
    let b = TestBroker::start_with(|c| c.http.sse_buffer = 64).await;
    let p = b.client("platform").await;
    let auth = basic("observer", "observer");
    let h = [("authorization", auth.as_str())];
    // Live only; a small receive window, and it reads nothing for now.
    let mut slow = SseStream::open(
        b.http,
        &format!("/api/events/stream?{ACME}"),
        &h,
        Some(4096),
    )
    .await
    .unwrap();
    let mut fast = open(&b, "observer", ACME, &[]).await;
    assert_eq!(slow.status, 200);
    // In steps the fast reader keeps up with: it is never more than a step behind.
    let mut all = Vec::new();
    for _ in 0..N / STEP {
        emit_mqtt(&p, STEP, 16_000).await;
        all.extend(seqs(&mut fast, STEP).await);
    }
    assert!(
        all.windows(2).all(|w| w[1] == w[0] + 1),
        "the fast reader saw every seq in order"
    );

    let mut got = Vec::new();
    let cut = loop {
        let e = slow.next_event().await.expect("a cut event before the end");
        if e.kind() == Some("cut") {
            break e;
        }
        got.push(e.seq().unwrap());
    };
    assert!(got.len() < N, "the slow reader was not cut");
    let resume = cut.json()["resume_from"].as_u64().unwrap();
    assert_eq!(resume, got.last().map_or(all[0], |s| s + 1));
    assert!(slow.next_within(Duration::from_secs(5)).await.is_none());
    assert!(slow.ended(), "the cut stream is closed");
    let m = request(b.http, "GET", "/metrics", &[], b"").await;
    assert!(String::from_utf8_lossy(&m.body).contains("extbus_http_event_streams_cut_total 1"));

    // Resuming where it was told to gives the rest, once each.
    let mut again = open(&b, "observer", &format!("from_seq={resume}&{ACME}"), &[]).await;
    let rest = seqs(&mut again, all.iter().filter(|s| **s >= resume).count()).await;
    got.extend(rest);
    assert_eq!(got, all);
    b.stop().await;
}
