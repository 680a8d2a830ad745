//! gold/identities from silver: an anonymous visitor who logs in is stitched to the user, a
//! login arriving late (after later anonymous events) still decides by its event time, and a
//! shared device goes to its latest user.

use arrow::array::{AsArray, RecordBatch};
use chrono::{Duration, Utc};
use serde_json::json;

use crate::pipeline::{batch, lake, read_all, run};

fn event(id: &str, anonymous_id: &str, user_id: Option<&str>, minutes: i64) -> Vec<u8> {
    let at = Utc::now() - Duration::hours(3) + Duration::minutes(minutes);
    let mut event = json!({
        "event_id": id, "event_type": "page_view", "event_time": at.to_rfc3339(),
        "anonymous_id": anonymous_id, "page_url": "https://s.example/p",
    });
    if let Some(user_id) = user_id {
        event["user_id"] = json!(user_id);
    }
    serde_json::to_vec(&event).unwrap()
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
