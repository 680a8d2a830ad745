//! Property tests of the input contract: validation and the landed-file splitter never panic,
//! account for every record, and give the same answer every time.

use chrono::{DateTime, Utc};
use clickstream::bronze::{LandedLimits, split_records};
use clickstream::event::{KNOWN_FIELDS, MAX_FUTURE, MIN_EVENT_TIME_MS, validate};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// JSON leaves and small containers, biased towards the shapes the contract cares about.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z_]{0,12}".prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
        Just(json!("2026-11-28T11:00:00Z")),
        Just(json!("0000-01-01T00:00:00Z")),
        Just(json!("2026-11-27T23:59:60Z")),
        Just(json!("https://shop.example.com/p/1?utm_source=x")),
        (0i64..2_000_000_000_000).prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects with any subset of the contract's fields (and others), each with any value.
fn event_object() -> impl Strategy<Value = Value> {
    let mut fields = KNOWN_FIELDS.to_vec();
    fields.push("extra_field");
    prop::collection::vec((prop::sample::select(fields), json_value()), 0..10).prop_map(|pairs| {
        let mut object = Map::new();
        for (k, v) in pairs {
            object.insert(k.to_string(), v);
        }
        Value::Object(object)
    })
}

/// The non-blank lines of `data` as the `.jsonl` contract defines them.
fn expected_lines(data: &[u8]) -> Vec<Vec<u8>> {
    data.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect()
}

proptest! {
    #[test]
    fn validate_never_panics_on_bytes_and_answers_the_same(raw in prop::collection::vec(any::<u8>(), 0..300)) {
        prop_assert_eq!(validate(&raw, now()), validate(&raw, now()));
    }

    #[test]
    fn a_valid_event_keeps_the_contract(object in event_object()) {
        let raw = serde_json::to_vec(&object).unwrap();
        let first = validate(&raw, now());
        prop_assert_eq!(&first, &validate(&raw, now()));
        if let Ok(e) = first {
            prop_assert!(!e.event_id.is_empty());
            prop_assert!(e.event_time.timestamp_millis() >= MIN_EVENT_TIME_MS);
            prop_assert!(e.event_time <= now() + MAX_FUTURE);
            prop_assert_eq!(e.event_date(), e.event_time.date_naive());
            prop_assert!(!e.user_key().is_empty());
        }
    }

    #[test]
    fn jsonl_files_split_into_every_non_blank_line(
        lines in prop::collection::vec(prop::collection::vec(
            prop_oneof![Just(b'\n'), Just(b'\r'), Just(b' '), Just(b'{'), any::<u8>()], 0..40), 0..20),
        bom in any::<bool>(),
    ) {
        let mut data = if bom { b"\xEF\xBB\xBF".to_vec() } else { Vec::new() };
        let body = lines.join(&b'\n');
        data.extend(&body);
        let records = split_records("landing/x.jsonl", &data, &LandedLimits::default()).unwrap();
        let got: Vec<Vec<u8>> = records.iter().map(<[u8]>::to_vec).collect();
        prop_assert_eq!(got, expected_lines(&body));
    }

    #[test]
    fn json_files_never_panic_and_keep_every_element(
        raw in prop::collection::vec(any::<u8>(), 0..200),
        array in prop::collection::vec(event_object(), 0..6),
    ) {
        // Any bytes: some records, never an error.
        let records = split_records("landing/x.json", &raw, &LandedLimits::default()).unwrap();
        prop_assert!(records.len() <= 200);
        // A JSON array: one record per element, in order, with the element's text as written.
        let text = serde_json::to_vec(&array).unwrap();
        let records = split_records("landing/y.json", &text, &LandedLimits::default()).unwrap();
        let got: Vec<Vec<u8>> = records.iter().map(<[u8]>::to_vec).collect();
        let written: Vec<Vec<u8>> = array.iter().map(|e| serde_json::to_vec(e).unwrap()).collect();
        prop_assert_eq!(got, written);
    }

    #[test]
    fn gzip_of_any_bytes_is_an_error_or_records(raw in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = split_records("landing/x.jsonl.gz", &raw, &LandedLimits::default());
    }
}
