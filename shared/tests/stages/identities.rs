//! Identity stitching on a real lake: gold/identities from silver (an anonymous visitor who logs
//! in is stitched to the user, a login arriving late still decides by its event time, a shared
//! device goes to its latest user), and gold re-keying a device's earlier events when its person
//! changes, equal to a from-scratch computation with the final mapping.

use arrow::array::{AsArray, RecordBatch};
use chrono::{Duration, Utc};
use serde_json::json;

use clickstream::lake::Table;

use crate::pipeline::{
    assert_gold_equals_from_scratch, batch, days_ago_at, lake, lose_newest_commit, read_all, run,
};

fn event(id: &str, anonymous_id: &str, user_id: Option<&str>, minutes: i64) -> Vec<u8> {
    let when = Utc::now() - Duration::hours(3) + Duration::minutes(minutes);
    visit(id, anonymous_id, user_id, when, "page_view")
}

/// (anonymous_id, user_id, events, user_ids) of each gold/identities row, sorted.
fn identities(batches: &[RecordBatch]) -> Vec<(String, String, i64, i64)> {
    let mut rows = Vec::new();
    for b in batches {
        let text = |c: &str| b.column_by_name(c).unwrap().as_string::<i32>().clone();
        let number = |c: &str| {
            let column = b.column_by_name(c).unwrap();
            column.as_primitive::<arrow::datatypes::Int64Type>().clone()
        };
        let (anonymous, user) = (text("anonymous_id"), text("user_id"));
        let (events, user_ids) = (number("events"), number("user_ids"));
        for i in 0..b.num_rows() {
            let row = (
                anonymous.value(i),
                user.value(i),
                events.value(i),
                user_ids.value(i),
            );
            rows.push((row.0.to_string(), row.1.to_string(), row.2, row.3));
        }
    }
    rows.sort();
    rows
}

#[tokio::test]
async fn a_login_stitches_the_anonymous_id_and_the_latest_login_decides() {
    let (_dir, lake) = lake();
    let refresh = async || {
        clickstream::gold::identities::refresh(&lake).await.unwrap();
        identities(&read_all(&lake, clickstream::lake::Table::Identities).await)
    };
    // a browses anonymously, then logs in as u1; b never logs in.
    let first = vec![
        event("e1", "a", None, 0),
        event("e2", "a", Some("u1"), 5),
        event("e3", "b", None, 6),
    ];
    run(&lake, &batch(0, 0, first)).await;
    assert_eq!(refresh().await, [("a".into(), "u1".into(), 2, 1)]);

    // Later anonymous events of a, then a login as u2 on the same device that arrives late (its
    // event time before those events, after u1's login): the latest login by event time decides.
    let later = vec![
        event("e4", "a", None, 30),
        event("e5", "a", Some("u2"), 10),
        event("e6", "b", Some("u3"), 40),
    ];
    run(&lake, &batch(0, 3, later)).await;
    assert_eq!(
        refresh().await,
        [
            ("a".into(), "u2".into(), 4, 2),
            ("b".into(), "u3".into(), 2, 1)
        ]
    );
    // Running it again changes nothing.
    assert_eq!(refresh().await.len(), 2);
}

fn at(days_ago: i64, minutes: i64) -> chrono::DateTime<Utc> {
    days_ago_at(days_ago, 10) + Duration::minutes(minutes)
}

fn visit(
    id: &str,
    anonymous_id: &str,
    user_id: Option<&str>,
    when: chrono::DateTime<Utc>,
    kind: &str,
) -> Vec<u8> {
    let mut event = json!({
        "event_id": id, "event_type": kind, "event_time": when.to_rfc3339(),
        "anonymous_id": anonymous_id, "page_url": "https://s.example/p",
    });
    if let Some(user_id) = user_id {
        event["user_id"] = json!(user_id);
    }
    serde_json::to_vec(&event).unwrap()
}

/// The user_keys of gold/sessions, sorted, with each session's event count.
async fn session_keys(lake: &clickstream::lake::Lake) -> Vec<(String, i64)> {
    let mut keys = Vec::new();
    for b in read_all(lake, clickstream::lake::Table::Sessions).await {
        let users = b
            .column_by_name("user_key")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let events = b.column_by_name("events").unwrap();
        let events = events.as_primitive::<arrow::datatypes::Int64Type>();
        for i in 0..b.num_rows() {
            keys.push((users.value(i).to_string(), events.value(i)));
        }
    }
    keys.sort();
    keys
}

#[tokio::test]
async fn a_late_login_re_keys_the_devices_earlier_events_exactly() {
    let (dir, lake) = lake();
    let uri = dir.path().to_str().unwrap().to_string();
    // Three days ago: device a browses anonymously at 10:00 and 10:05; u1 on device b at 10:10
    // (within 30 minutes: once a is u1's, the three are one session); device c never logs in.
    let first = vec![
        visit("e1", "a", None, at(3, 0), "page_view"),
        visit("e2", "a", None, at(3, 5), "view_product"),
        visit("e3", "b", Some("u1"), at(3, 10), "add_to_cart"),
        visit("e4", "c", None, at(3, 20), "page_view"),
    ];
    run(&lake, &batch(0, 0, first)).await;
    assert_gold_equals_from_scratch(&lake).await;
    assert_eq!(
        session_keys(&lake).await,
        [("a".into(), 2), ("c".into(), 1), ("u1".into(), 1)]
    );

    // A day ago, a logs in as u1; the login reaches the pipeline in a fresh process (cold state).
    let lake = clickstream::lake::Lake::open(&uri).unwrap();
    run(
        &lake,
        &batch(0, 4, vec![visit("e5", "a", Some("u1"), at(1, 0), "login")]),
    )
    .await;
    assert_gold_equals_from_scratch(&lake).await;
    assert_eq!(
        session_keys(&lake).await,
        [("c".into(), 1), ("u1".into(), 1), ("u1".into(), 3)],
        "a's anonymous visit three days ago is u1's, merged with u1's own session"
    );

    // The device is shared: u2 logs in on it later (a's events go to u2), then a login of u1
    // arrives late with an older time (nothing changes), each in the warm process.
    run(
        &lake,
        &batch(0, 5, vec![visit("e6", "a", Some("u2"), at(1, 60), "login")]),
    )
    .await;
    assert_gold_equals_from_scratch(&lake).await;
    run(
        &lake,
        &batch(0, 6, vec![visit("e7", "a", Some("u1"), at(1, 30), "login")]),
    )
    .await;
    assert_gold_equals_from_scratch(&lake).await;
    assert_eq!(
        session_keys(&lake).await,
        [
            ("c".into(), 1),
            ("u1".into(), 1),
            ("u1".into(), 2),
            ("u2".into(), 1),
            ("u2".into(), 2)
        ],
        "three days ago a's visit is u2's (the latest login); a day ago u1's two logins are one session"
    );
}

#[tokio::test]
async fn gold_stays_exact_under_random_logins_shared_devices_and_late_delivery() {
    let (dir, mut lake) = lake();
    let uri = dir.path().to_str().unwrap().to_string();
    // A small deterministic generator: ten devices, five users, four days, clustered times so
    // that anonymous and logged-in stretches fall within 30 minutes of each other.
    let mut seed: u64 = 0x5eed;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let kinds = [
        "page_view",
        "view_product",
        "add_to_cart",
        "begin_checkout",
        "purchase",
    ];
    let mut events: Vec<Vec<u8>> = (0..240)
        .map(|i| {
            let device = next(10);
            // Mostly the device's own user; now and then another (a shared device).
            let user = match next(10) {
                0..=6 => None,
                7 | 8 => Some(format!("u{}", device % 5)),
                _ => Some(format!("u{}", next(5))),
            };
            // Half in the morning, half around midnight (sessions that cross it).
            let around = if next(2) == 0 { 0 } else { 13 * 60 + 20 };
            let when = at(next(4) as i64, around + next(120) as i64);
            let kind = kinds[next(kinds.len() as u64) as usize];
            visit(
                &format!("r{i}"),
                &format!("d{device}"),
                user.as_deref(),
                when,
                kind,
            )
        })
        .collect();
    // Delivered in a shuffled order (logins before or after the events they re-key).
    for i in (1..events.len()).rev() {
        events.swap(i, next(i as u64 + 1) as usize);
    }
    for (n, chunk) in events.chunks(16).enumerate() {
        if n % 4 == 3 {
            // A fresh process: the stitching state comes from gold/anonymous_ids.
            lake = clickstream::lake::Lake::open(&uri).unwrap();
        }
        run(&lake, &batch(0, (n * 16) as i64, chunk.to_vec())).await;
        assert_gold_equals_from_scratch(&lake).await;
    }
}

#[tokio::test]
async fn a_run_that_stopped_before_the_stitching_state_still_re_keys_what_it_wrote() {
    let (dir, lake) = lake();
    // Device x browses anonymously; gold writes x's session, but the run's last commit, the
    // stitching state's, is lost (its writer died), so the rest of gold is ahead of it.
    let anonymous = vec![
        visit("e1", "x", None, at(2, 0), "page_view"),
        visit("e2", "x", None, at(2, 5), "view_product"),
    ];
    run(&lake, &batch(0, 0, anonymous)).await;
    assert_eq!(session_keys(&lake).await, [("x".into(), 2)]);
    lose_newest_commit(dir.path(), Table::AnonymousIds, "\"appId\":\"silver\"");

    // x logs in ten minutes later; a fresh process catches up from the stitching state's
    // watermark, where x is new: x's session that gold already holds must still go.
    let lake = clickstream::lake::Lake::open(dir.path().to_str().unwrap()).unwrap();
    let login = vec![visit("e3", "x", Some("u9"), at(2, 10), "add_to_cart")];
    run(&lake, &batch(0, 2, login)).await;
    assert_gold_equals_from_scratch(&lake).await;
    assert_eq!(session_keys(&lake).await, [("u9".into(), 3)]);
}
