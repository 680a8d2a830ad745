//! Session and funnel rules of DESIGN.md, on hand-made silver rows.

use chrono::{DateTime, Duration, Utc};
use clickstream::event::{ValidEvent, validate};
use clickstream::gold::{Session, compute_from_scratch, sessionize};
use clickstream::lake::to_days;
use clickstream::silver::{SilverEvent, silver_batch};
use serde_json::json;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-10T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

struct E {
    id: String,
    user: &'static str,
    anon: &'static str,
    at: DateTime<Utc>,
    kind: &'static str,
}

fn e(id: &str, user: &'static str, at: DateTime<Utc>, kind: &'static str) -> E {
    E {
        id: id.into(),
        user,
        anon: "anon",
        at,
        kind,
    }
}

fn valid(x: &E) -> ValidEvent<'static> {
    let mut v = json!({
        "event_id": x.id,
        "event_type": x.kind,
        "event_time": x.at.to_rfc3339(),
        "anonymous_id": x.anon,
        "page_url": format!("https://s.example/{}", x.kind),
    });
    if !x.user.is_empty() {
        v["user_id"] = json!(x.user);
    }
    validate(&serde_json::to_vec(&v).unwrap(), Utc::now())
        .unwrap()
        .into_owned()
}

fn sessions(events: &[E]) -> Vec<Session> {
    let valid: Vec<_> = events.iter().map(valid).collect();
    let rows: Vec<_> = valid
        .into_iter()
        .map(|event| SilverEvent {
            event,
            source: "test",
            ingest_time: Utc::now(),
        })
        .collect();
    let batch = silver_batch(&rows).unwrap();
    let funnel: Vec<String> = clickstream::gold::DEFAULT_FUNNEL
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut s = sessionize(&[batch], &funnel).unwrap();
    s.sort_by_key(|s| (s.user_key.clone(), s.start));
    s
}

#[test]
fn gap_of_exactly_30_minutes_keeps_the_session() {
    let s = sessions(&[
        e("a", "u", t0(), "page_view"),
        e("b", "u", t0() + Duration::minutes(30), "click"),
    ]);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].events, 2);
    assert_eq!(s[0].end - s[0].start, 30 * 60 * 1_000_000);
}

#[test]
fn gap_of_30_minutes_and_one_second_splits() {
    let s = sessions(&[
        e("a", "u", t0(), "page_view"),
        e(
            "b",
            "u",
            t0() + Duration::minutes(30) + Duration::seconds(1),
            "click",
        ),
    ]);
    assert_eq!(s.len(), 2);
    assert_ne!(s[0].session_id, s[1].session_id);
}

#[test]
fn session_crossing_midnight_belongs_to_its_start_date() {
    let start = DateTime::parse_from_rfc3339("2026-03-10T23:50:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let s = sessions(&[
        e("a", "u", start, "page_view"),
        e("b", "u", start + Duration::minutes(20), "page_view"),
    ]);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].date, to_days(start.date_naive()));
}

#[test]
fn sessions_are_capped_at_24_hours() {
    // An event every 20 minutes for 30 hours: no gap, so only the cap splits it.
    let events: Vec<E> = (0..=90)
        .map(|i| {
            e(
                &format!("e{i:03}"),
                "u",
                t0() + Duration::minutes(20 * i),
                "click",
            )
        })
        .collect();
    let s = sessions(&events);
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].end - s[0].start, 24 * 3600 * 1_000_000);
    assert_eq!(s[0].events, 73);
    assert_eq!(s[1].events, 18);
}

#[test]
fn equal_timestamps_order_by_event_id() {
    let s = sessions(&[
        e("b", "u", t0(), "purchase"),
        e("a", "u", t0(), "view_product"),
        e("c", "u", t0(), "add_to_cart"),
    ]);
    assert_eq!(s.len(), 1);
    // Ordered by event_id: view_product, purchase, add_to_cart -> steps 1 and 2 reached.
    assert_eq!(s[0].funnel_reached, 2);
    assert!(s[0].converted);
}

#[test]
fn user_id_wins_over_anonymous_id() {
    let mut a = e("a", "", t0(), "page_view");
    a.anon = "device-1";
    let mut b = e("b", "user-1", t0() + Duration::minutes(1), "page_view");
    b.anon = "device-1";
    let s = sessions(&[a, b]);
    let users: Vec<&str> = s.iter().map(|s| s.user_key.as_str()).collect();
    assert_eq!(users, vec!["device-1", "user-1"]);
}

#[test]
fn funnel_steps_out_of_order_do_not_count() {
    let s = sessions(&[
        e("1", "u", t0(), "add_to_cart"),
        e("2", "u", t0() + Duration::seconds(10), "purchase"),
        e("3", "u", t0() + Duration::seconds(20), "view_product"),
        e("4", "u", t0() + Duration::seconds(30), "begin_checkout"),
    ]);
    assert_eq!(s[0].funnel_reached, 1);
    let in_order = sessions(&[
        e("1", "u", t0(), "view_product"),
        e("2", "u", t0() + Duration::seconds(10), "page_view"),
        e("3", "u", t0() + Duration::seconds(20), "add_to_cart"),
        e("4", "u", t0() + Duration::seconds(30), "begin_checkout"),
        e("5", "u", t0() + Duration::seconds(40), "purchase"),
    ]);
    assert_eq!(in_order[0].funnel_reached, 4);
}

#[test]
fn bounce_is_one_page_view_and_nothing_else() {
    let s = sessions(&[
        e("a", "u1", t0(), "page_view"),
        e("b", "u2", t0(), "page_view"),
        e("c", "u2", t0() + Duration::seconds(5), "click"),
        e("d", "u3", t0(), "click"),
        e("e", "u4", t0(), "page_view"),
        e("f", "u4", t0() + Duration::seconds(5), "page_view"),
    ]);
    let bounces: Vec<bool> = s.iter().map(|s| s.is_bounce).collect();
    assert_eq!(bounces, vec![true, false, false, false]);
}

#[test]
fn daily_metrics_follow_the_definitions() {
    let day = |d: i64| t0() + Duration::days(d);
    let events = [
        e("1", "u1", day(0), "page_view"),
        e("2", "u1", day(0) + Duration::minutes(10), "purchase"),
        e("3", "u2", day(0), "page_view"),
        e("4", "u2", day(3), "page_view"),
        e("5", "u3", day(8), "page_view"),
    ];
    let valid: Vec<_> = events
        .iter()
        .map(valid)
        .map(|event| SilverEvent {
            event,
            source: "t",
            ingest_time: Utc::now(),
        })
        .collect();
    let batch = silver_batch(&valid).unwrap();
    let funnel: Vec<String> = vec!["page_view".into(), "purchase".into()];
    let gold = compute_from_scratch(&[batch], &funnel).unwrap();
    let m = &gold.daily_metrics;
    let col = |n: &str| {
        m.column_by_name(n)
            .unwrap()
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap()
            .values()
            .to_vec()
    };
    assert_eq!(m.num_rows(), 3, "one row per date with events");
    assert_eq!(col("dau"), vec![2, 1, 1]);
    assert_eq!(
        col("wau"),
        vec![2, 2, 2],
        "day 8: u2 (day 3) and u3 within 7 days"
    );
    assert_eq!(col("mau"), vec![2, 2, 3]);
    assert_eq!(col("sessions"), vec![2, 1, 1]);
    let conv = m
        .column_by_name("conversion_rate")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap();
    assert_eq!(conv.value(0), 0.5);
    let f = &gold.funnel_daily;
    let users = f
        .column_by_name("users")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap();
    assert_eq!(users.values()[..2], [2, 1]);
}
