//! The input event contract: parsing and validation of one raw record.
//!
//! A record either becomes a [`ValidEvent`] or a [`Rejection`] carrying a reason code; nothing
//! else can happen to it, which is what makes the stage counts reconcile.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;
use serde_json::value::RawValue;

mod rejection;
use rejection::reject;
pub use rejection::{RejectReason, Rejection};

/// Largest accepted record, in bytes.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;
/// How far ahead of ingest time an event_time may be.
pub const MAX_FUTURE: TimeDelta = TimeDelta::hours(1);
/// The earliest accepted event_time, 2000-01-01T00:00:00Z in epoch milliseconds: earlier times are
/// mistakes (a zero or a seconds-for-milliseconds value), and years before 1 or past 9999 make
/// silver unreadable to other Delta readers.
pub const MIN_EVENT_TIME_MS: i64 = 946_684_800_000;

/// Longest accepted identifier or dimension (user_id, anonymous_id, session_id, device_type,
/// country), in characters: they become group keys and CSV cells downstream.
pub const MAX_DIMENSION_CHARS: usize = 256;
/// Longest accepted page_url, referrer or user_agent, in characters.
pub const MAX_URL_CHARS: usize = 2_048;

/// Fields of the contract; everything else is kept in `extra`.
pub const KNOWN_FIELDS: [&str; 12] = [
    "event_id",
    "event_type",
    "event_time",
    "anonymous_id",
    "user_id",
    "session_id",
    "page_url",
    "referrer",
    "user_agent",
    "device_type",
    "country",
    "properties",
];

/// A record that passed validation, typed as in `silver/events`. Its text is borrowed from the
/// record wherever the record holds it as is (a string without escapes), so that a silver run
/// does not copy every field of its records once more.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEvent<'a> {
    /// The client's id of the event (duplicates share it).
    pub event_id: Cow<'a, str>,
    /// What happened (page_view, purchase, ...).
    pub event_type: Cow<'a, str>,
    /// When it happened (UTC).
    pub event_time: DateTime<Utc>,
    /// The signed-in user, if any.
    pub user_id: Option<Cow<'a, str>>,
    /// The browser's anonymous id, if any.
    pub anonymous_id: Option<Cow<'a, str>>,
    /// The client's session id, if sent.
    pub client_session_id: Option<Cow<'a, str>>,
    /// The page's full URL.
    pub page_url: Option<Cow<'a, str>>,
    /// The path of `page_url`.
    pub page_path: Option<Cow<'a, str>>,
    /// The referring URL.
    pub referrer: Option<Cow<'a, str>>,
    /// The browser's user agent.
    pub user_agent: Option<Cow<'a, str>>,
    /// mobile, desktop or tablet.
    pub device_type: Option<Cow<'a, str>>,
    /// ISO country code.
    pub country: Option<Cow<'a, str>>,
    /// The `properties` object as JSON text.
    pub properties: Option<Cow<'a, str>>,
    /// Unknown top-level fields as a JSON object text.
    pub extra: Option<Cow<'a, str>>,
}

impl ValidEvent<'_> {
    /// The event with its text owned, apart from the record it was validated from.
    pub fn into_owned(self) -> ValidEvent<'static> {
        let own = |text: Option<Cow<'_, str>>| text.map(|t| Cow::Owned(t.into_owned()));
        ValidEvent {
            event_id: Cow::Owned(self.event_id.into_owned()),
            event_type: Cow::Owned(self.event_type.into_owned()),
            event_time: self.event_time,
            user_id: own(self.user_id),
            anonymous_id: own(self.anonymous_id),
            client_session_id: own(self.client_session_id),
            page_url: own(self.page_url),
            page_path: own(self.page_path),
            referrer: own(self.referrer),
            user_agent: own(self.user_agent),
            device_type: own(self.device_type),
            country: own(self.country),
            properties: own(self.properties),
            extra: own(self.extra),
        }
    }

    /// coalesce(user_id, anonymous_id).
    pub fn user_key(&self) -> &str {
        self.user_id
            .as_deref()
            .or(self.anonymous_id.as_deref())
            .unwrap_or_default()
    }

    /// UTC date of event_time.
    pub fn event_date(&self) -> NaiveDate {
        self.event_time.date_naive()
    }
}

/// Validates one raw record received at `ingest_time`.
pub fn validate(raw: &[u8], ingest_time: DateTime<Utc>) -> Result<ValidEvent<'_>, Rejection> {
    let mut record = Record::parse(raw)?;
    let (event_id, event_type) = identity(&mut record)?;
    let event_time = event_time(&mut record, ingest_time)?;
    let user_id = record.string("user_id")?.filter(|s| !s.is_empty());
    let anonymous_id = record.string("anonymous_id")?.filter(|s| !s.is_empty());
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(reject(
            RejectReason::MissingField,
            "anonymous_id is required when user_id is absent",
        ));
    }
    let (page_url, page_path) = page(&mut record, &event_type)?;
    let properties = properties(&mut record)?;
    let event = ValidEvent {
        event_id,
        event_type,
        event_time,
        user_id,
        anonymous_id,
        client_session_id: record.string("session_id")?,
        page_url,
        page_path,
        referrer: record.string("referrer")?,
        user_agent: record.string("user_agent")?,
        device_type: record.string("device_type")?,
        country: record.string("country")?,
        properties,
        extra: None,
    };
    let extra = if record.unknown.is_empty() {
        None
    } else {
        Some(Cow::Owned(serde_json::to_string(&record.unknown).map_err(
            |e| reject(RejectReason::InvalidField, format!("unknown fields: {e}")),
        )?))
    };
    Ok(ValidEvent { extra, ..event })
}

/// One record's top-level fields as written, borrowed from the record: the contract's by their
/// place in [`KNOWN_FIELDS`], each parsed only when validation reaches it, and the others, kept
/// verbatim for `extra` (a `Value` would turn integers past 64 bits into floats). A field written
/// twice counts as its last value.
struct Record<'a> {
    contract: [Option<&'a RawValue>; KNOWN_FIELDS.len()],
    unknown: BTreeMap<String, &'a RawValue>,
}

impl<'a> Record<'a> {
    /// Splits `raw` into its fields; a rejection when it is too large, not UTF-8, not JSON or not
    /// an object.
    fn parse(raw: &'a [u8]) -> Result<Self, Rejection> {
        if raw.len() > MAX_RECORD_BYTES {
            return Err(reject(
                RejectReason::TooLarge,
                format!("record is {} bytes, limit is {MAX_RECORD_BYTES}", raw.len()),
            ));
        }
        let text = std::str::from_utf8(raw)
            .map_err(|e| reject(RejectReason::NotUtf8, format!("invalid UTF-8: {e}")))?;
        // A byte order mark (as Windows tools write at the start of a file) is not part of the JSON.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        serde_json::from_str(text).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => reject(
                RejectReason::NotObject,
                format!("expected a JSON object, got {}", json_text_kind(text)),
            ),
            _ => reject(RejectReason::NotJson, format!("invalid JSON: {e}")),
        })
    }

    /// The contract field `field` as written; `None` when absent or null.
    fn take(&mut self, field: &str) -> Option<&'a RawValue> {
        let place = KNOWN_FIELDS.iter().position(|f| *f == field);
        let value = self.contract[place.expect("a contract field")].take();
        value.filter(|v| v.get() != "null")
    }

    /// The string field `field`, at most its limit long; `None` when absent or null.
    fn string(&mut self, field: &str) -> Result<Text<'a>, Rejection> {
        let Some(raw) = self.take(field) else {
            return Ok(None);
        };
        let text = raw.get();
        // The record parsed, so a literal without escapes is its own text between the quotes.
        let plain = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .filter(|t| !t.contains('\\'));
        let s = match plain {
            Some(s) => Cow::Borrowed(s),
            None => serde_json::from_str::<String>(text)
                .map(Cow::Owned)
                .map_err(|_| {
                    reject(
                        RejectReason::InvalidField,
                        format!("{field} must be a string, got {}", json_text_kind(text)),
                    )
                })?,
        };
        let limit = match field {
            "page_url" | "referrer" | "user_agent" => MAX_URL_CHARS,
            _ => MAX_DIMENSION_CHARS,
        };
        // Bytes bound characters from above: most values skip the count.
        if s.len() > limit && s.chars().count() > limit {
            return Err(reject(
                RejectReason::InvalidField,
                format!("{field} is longer than {limit} characters"),
            ));
        }
        Ok(Some(s))
    }

    /// The string field `field`; a rejection when it is absent or null.
    fn required_string(&mut self, field: &str) -> Result<Cow<'a, str>, Rejection> {
        self.string(field)?
            .ok_or_else(|| reject(RejectReason::MissingField, format!("{field} is required")))
    }
}

impl<'de> serde::Deserialize<'de> for Record<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = Record<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Record<'de>, A::Error> {
                let mut record = Record {
                    contract: [None; KNOWN_FIELDS.len()],
                    unknown: BTreeMap::new(),
                };
                while let Some(FieldName(name)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    match KNOWN_FIELDS.iter().position(|f| *f == name) {
                        Some(place) => record.contract[place] = Some(value),
                        None => {
                            record.unknown.insert(name.into_owned(), value);
                        }
                    }
                }
                Ok(record)
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

/// A field name, borrowed from the record unless it holds escapes.
struct FieldName<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> serde::de::Visitor<'de> for Name {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<FieldName<'de>, E> {
                Ok(FieldName(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<FieldName<'de>, E> {
                Ok(FieldName(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// event_id (1-128 characters) and event_type (`[a-z0-9_]{1,64}`).
fn identity<'a>(record: &mut Record<'a>) -> Result<(Cow<'a, str>, Cow<'a, str>), Rejection> {
    let event_id = record.required_string("event_id")?;
    if event_id.is_empty() || event_id.chars().count() > 128 {
        return Err(reject(
            RejectReason::InvalidField,
            "event_id must be 1-128 characters",
        ));
    }
    let event_type = record.required_string("event_type")?;
    if !is_event_type(&event_type) {
        return Err(reject(
            RejectReason::InvalidField,
            format!("event_type {event_type:?} must match [a-z0-9_]{{1,64}}"),
        ));
    }
    Ok((event_id, event_type))
}

/// event_time: required, at most [`MAX_FUTURE`] after `ingest_time`, not before 2000.
fn event_time(record: &mut Record, ingest_time: DateTime<Utc>) -> Result<DateTime<Utc>, Rejection> {
    let Some(raw) = record.take("event_time") else {
        return Err(reject(RejectReason::MissingField, "event_time is required"));
    };
    let value: Value = serde_json::from_str(raw.get())
        .map_err(|e| reject(RejectReason::BadEventTime, format!("event_time: {e}")))?;
    let event_time = parse_event_time(&value)?;
    if event_time > ingest_time + MAX_FUTURE {
        return Err(reject(
            RejectReason::FutureEventTime,
            format!("event_time {event_time} is more than 1 hour after ingest time {ingest_time}"),
        ));
    }
    if event_time.timestamp_millis() < MIN_EVENT_TIME_MS {
        return Err(reject(
            RejectReason::PastEventTime,
            format!(
                "event_time {event_time} is before 2000-01-01T00:00:00Z, the earliest accepted"
            ),
        ));
    }
    Ok(event_time)
}

/// An optional text field of a [`ValidEvent`].
type Text<'a> = Option<Cow<'a, str>>;

/// page_url (an absolute URL; required for page_view) and its path.
fn page<'a>(record: &mut Record<'a>, event_type: &str) -> Result<(Text<'a>, Text<'a>), Rejection> {
    let page_url = record.string("page_url")?;
    let page_path = match &page_url {
        Some(u) => Some(borrowed_path(u).ok_or_else(|| {
            reject(
                RejectReason::InvalidField,
                format!("page_url {u:?} is not an absolute URL"),
            )
        })?),
        None if event_type == "page_view" => {
            return Err(reject(
                RejectReason::MissingField,
                "page_url is required for page_view",
            ));
        }
        None => None,
    };
    Ok((page_url, page_path))
}

/// `properties` as written, when it is an object (or absent or null).
fn properties<'a>(record: &mut Record<'a>) -> Result<Text<'a>, Rejection> {
    match record.take("properties") {
        None => Ok(None),
        Some(raw) if raw.get().starts_with('{') => Ok(Some(Cow::Borrowed(raw.get()))),
        Some(raw) => Err(reject(
            RejectReason::InvalidField,
            format!(
                "properties must be an object, got {}",
                json_text_kind(raw.get())
            ),
        )),
    }
}

/// Parses the accepted forms of event_time: an RFC 3339 string or integer epoch milliseconds. A
/// leap second (`23:59:60`) becomes the first instant of the next second, so that the time and its
/// date agree.
pub fn parse_event_time(v: &Value) -> Result<DateTime<Utc>, Rejection> {
    let parsed = match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| reject(RejectReason::BadEventTime, format!("event_time {s:?}: {e}"))),
        Value::Number(n) => n
            .as_i64()
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(|| {
                reject(
                    RejectReason::BadEventTime,
                    format!("event_time {n} is not an integer of epoch milliseconds"),
                )
            }),
        other => Err(reject(
            RejectReason::BadEventTime,
            format!(
                "event_time must be a string or integer, got {}",
                json_kind(other)
            ),
        )),
    }?;
    DateTime::from_timestamp_micros(parsed.timestamp_micros()).ok_or_else(|| {
        reject(
            RejectReason::BadEventTime,
            format!("event_time {parsed} is out of range"),
        )
    })
}

/// [`page_path`] of `url`, borrowed from it when the URL holds the path as parsed (most do; the
/// parser normalises some, e.g. by percent-encoding).
fn borrowed_path<'a>(url: &Cow<'a, str>) -> Option<Cow<'a, str>> {
    let path = page_path(url)?;
    Some(match url {
        Cow::Borrowed(text) => match text.find(path.as_str()) {
            Some(at) => Cow::Borrowed(&text[at..at + path.len()]),
            None => Cow::Owned(path),
        },
        Cow::Owned(_) => Cow::Owned(path),
    })
}

/// The path of an absolute URL, without query or fragment.
pub fn page_path(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    (!parsed.cannot_be_a_base()).then(|| parsed.path().to_string())
}

fn is_event_type(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// [`json_kind`] of a JSON text (for messages about a value that was not parsed).
fn json_text_kind(text: &str) -> &'static str {
    serde_json::from_str::<Value>(text).map_or("another value", |v| json_kind(&v))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn base() -> Value {
        json!({
            "event_id": "e-1",
            "event_type": "page_view",
            "event_time": "2026-11-28T11:00:00Z",
            "anonymous_id": "anon-1",
            "page_url": "https://shop.example.com/products/42?utm_source=news#top",
        })
    }

    fn with(field: &str, value: Value) -> Vec<u8> {
        let mut v = base();
        v[field] = value;
        serde_json::to_vec(&v).unwrap()
    }

    #[test]
    fn text_is_borrowed_from_the_record_unless_it_had_to_be_decoded() {
        let borrowed = |text: &Option<Cow<'_, str>>| matches!(text, Some(Cow::Borrowed(_)));
        let raw = with("country", json!("a\"b"));
        let e = validate(&raw, now()).unwrap();
        assert!(matches!(e.event_id, Cow::Borrowed("e-1")));
        assert!(borrowed(&e.anonymous_id) && borrowed(&e.page_url));
        assert_eq!(e.page_path.as_deref(), Some("/products/42"));
        assert!(borrowed(&e.page_path), "the URL holds its path as parsed");
        assert!(matches!(e.country.as_deref(), Some("a\"b")));
        assert!(!borrowed(&e.country), "an escaped string is decoded");

        let raw = with("page_url", json!("https://shop.example.com/a b"));
        let e = validate(&raw, now()).unwrap();
        assert_eq!(e.page_path.as_deref(), Some("/a%20b"));
        assert!(!borrowed(&e.page_path), "the parser encoded the path");
        assert_eq!(e.clone().into_owned(), e);
    }

    fn without(field: &str) -> Vec<u8> {
        let mut v = base();
        v.as_object_mut().unwrap().remove(field);
        serde_json::to_vec(&v).unwrap()
    }

    fn reason(raw: &[u8]) -> RejectReason {
        validate(raw, now())
            .expect_err("record should be rejected")
            .reason
    }

    fn time_of(raw: &[u8]) -> DateTime<Utc> {
        validate(raw, now())
            .expect("record should be valid")
            .event_time
    }

    #[test]
    fn valid_event_is_typed() {
        let raw = serde_json::to_vec(&base()).unwrap();
        let e = validate(&raw, now()).unwrap();
        assert_eq!(e.event_id, "e-1");
        assert_eq!(e.user_key(), "anon-1");
        assert_eq!(e.page_path.as_deref(), Some("/products/42"));
        assert_eq!(
            e.event_date(),
            NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
        );
        assert_eq!(e.extra, None);
    }

    #[test]
    fn reject_too_large() {
        let mut v = base();
        v["properties"] = json!({ "blob": "x".repeat(MAX_RECORD_BYTES) });
        assert_eq!(
            reason(&serde_json::to_vec(&v).unwrap()),
            RejectReason::TooLarge
        );
    }

    #[test]
    fn reject_not_utf8() {
        assert_eq!(
            reason(b"{\"event_id\": \"\xff\xfe\"}"),
            RejectReason::NotUtf8
        );
    }

    #[test]
    fn reject_not_json() {
        assert_eq!(reason(b"{\"event_id\": "), RejectReason::NotJson);
    }

    #[test]
    fn reject_not_object() {
        assert_eq!(reason(b"[1, 2, 3]"), RejectReason::NotObject);
    }

    #[test]
    fn reject_missing_field() {
        assert_eq!(reason(&without("event_id")), RejectReason::MissingField);
        assert_eq!(reason(&without("event_type")), RejectReason::MissingField);
        assert_eq!(reason(&without("event_time")), RejectReason::MissingField);
        assert_eq!(reason(&without("anonymous_id")), RejectReason::MissingField);
        assert_eq!(reason(&without("page_url")), RejectReason::MissingField);
        assert_eq!(
            reason(&with("event_id", Value::Null)),
            RejectReason::MissingField
        );
    }

    #[test]
    fn reject_invalid_field() {
        assert_eq!(
            reason(&with("event_id", json!(42))),
            RejectReason::InvalidField
        );
        assert_eq!(
            reason(&with("event_id", json!("x".repeat(129)))),
            RejectReason::InvalidField
        );
        assert_eq!(
            reason(&with("event_type", json!("Page View"))),
            RejectReason::InvalidField
        );
        assert_eq!(
            reason(&with("user_id", json!(7))),
            RejectReason::InvalidField
        );
        assert_eq!(
            reason(&with("page_url", json!("/relative"))),
            RejectReason::InvalidField
        );
        assert_eq!(
            reason(&with("properties", json!([1]))),
            RejectReason::InvalidField
        );
    }

    #[test]
    fn reject_overlong_dimensions_and_urls() {
        for (field, limit) in [
            ("user_id", MAX_DIMENSION_CHARS),
            ("anonymous_id", MAX_DIMENSION_CHARS),
            ("session_id", MAX_DIMENSION_CHARS),
            ("device_type", MAX_DIMENSION_CHARS),
            ("country", MAX_DIMENSION_CHARS),
            ("user_agent", MAX_URL_CHARS),
            ("referrer", MAX_URL_CHARS),
        ] {
            // Characters, not bytes: `é` is two bytes.
            let at_limit = with(field, json!("é".repeat(limit)));
            assert!(validate(&at_limit, now()).is_ok(), "{field} at {limit}");
            let over = with(field, json!("x".repeat(limit + 1)));
            let rejection = validate(&over, now()).unwrap_err();
            assert_eq!(rejection.reason, RejectReason::InvalidField, "{field}");
            assert!(rejection.detail.contains(field), "{}", rejection.detail);
        }
        let long_url = format!("https://s.example/{}", "p".repeat(MAX_URL_CHARS));
        assert_eq!(
            reason(&with("page_url", json!(long_url))),
            RejectReason::InvalidField
        );
    }

    #[test]
    fn reject_bad_event_time() {
        assert_eq!(
            reason(&with("event_time", json!("yesterday"))),
            RejectReason::BadEventTime
        );
        assert_eq!(
            reason(&with("event_time", json!(1.5))),
            RejectReason::BadEventTime
        );
        assert_eq!(
            reason(&with("event_time", json!(true))),
            RejectReason::BadEventTime
        );
    }

    #[test]
    fn reject_future_event_time() {
        assert_eq!(
            reason(&with("event_time", json!("2026-11-28T13:00:01Z"))),
            RejectReason::FutureEventTime
        );
        assert_eq!(
            time_of(&with("event_time", json!("2026-11-28T13:00:00Z"))),
            now() + MAX_FUTURE
        );
    }

    #[test]
    fn reject_event_time_before_2000() {
        for t in [
            json!("0000-01-01T00:00:00Z"),
            json!(-8_000_000_000_000_000_i64),
        ] {
            assert_eq!(reason(&with("event_time", t)), RejectReason::PastEventTime);
        }
        assert_eq!(
            reason(&with("event_time", json!("1999-12-31T23:59:59.999Z"))),
            RejectReason::PastEventTime
        );
        assert_eq!(
            time_of(&with("event_time", json!(MIN_EVENT_TIME_MS))).to_rfc3339(),
            "2000-01-01T00:00:00+00:00"
        );
    }

    #[test]
    fn leap_second_is_the_next_day_in_time_and_date() {
        let raw = with("event_time", json!("2026-11-27T23:59:60Z"));
        let e = validate(&raw, now()).unwrap();
        assert_eq!(e.event_time.to_rfc3339(), "2026-11-28T00:00:00+00:00");
        assert_eq!(
            e.event_date(),
            NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
        );
    }

    #[test]
    fn byte_order_mark_is_not_part_of_the_record() {
        let mut raw = "\u{feff}".as_bytes().to_vec();
        raw.extend(serde_json::to_vec(&base()).unwrap());
        assert_eq!(validate(&raw, now()).unwrap().event_id, "e-1");
    }

    #[test]
    fn accepts_rfc3339_utc() {
        let t = time_of(&with("event_time", json!("2026-11-28T10:15:30Z")));
        assert_eq!(t.to_rfc3339(), "2026-11-28T10:15:30+00:00");
    }

    #[test]
    fn accepts_rfc3339_with_offset() {
        let t = time_of(&with("event_time", json!("2026-11-28T12:15:30+02:00")));
        assert_eq!(t.to_rfc3339(), "2026-11-28T10:15:30+00:00");
    }

    #[test]
    fn accepts_rfc3339_fractional_seconds() {
        let t = time_of(&with("event_time", json!("2026-11-28T10:15:30.123456Z")));
        assert_eq!(t.timestamp_micros() % 1_000_000, 123_456);
    }

    #[test]
    fn accepts_epoch_milliseconds() {
        let t = time_of(&with("event_time", json!(1_795_860_930_123_i64)));
        assert_eq!(t.timestamp_millis(), 1_795_860_930_123);
    }

    #[test]
    fn user_id_alone_identifies_the_user() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("anonymous_id");
        v["user_id"] = json!("u-9");
        let raw = serde_json::to_vec(&v).unwrap();
        let e = validate(&raw, now()).unwrap();
        assert_eq!(e.user_key(), "u-9");
    }

    #[test]
    fn properties_and_unknown_fields_keep_their_numbers() {
        let raw = br#"{"event_id":"e","event_type":"click","event_time":"2026-11-28T11:00:00Z",
            "anonymous_id":"a","properties":{"big":123456789012345678901234567890,"f":0.1},
            "other":18446744073709551616}"#;
        let e = validate(raw, now()).unwrap();
        assert_eq!(
            e.properties.as_deref(),
            Some(r#"{"big":123456789012345678901234567890,"f":0.1}"#)
        );
        assert_eq!(
            e.extra.as_deref(),
            Some(r#"{"other":18446744073709551616}"#)
        );
    }

    #[test]
    fn unknown_fields_are_kept() {
        let raw = with("campaign", json!({"id": 3}));
        let e = validate(&raw, now()).unwrap();
        let extra: Value = serde_json::from_str(e.extra.as_deref().unwrap()).unwrap();
        assert_eq!(extra, json!({"campaign": {"id": 3}}));
    }

    #[test]
    fn escapes_in_values_and_field_names_are_decoded_and_the_last_of_a_repeated_field_counts() {
        let record = br#"{"event_id":"a\"b\u00e9","event_type":"click","event_time":"2026-01-01T00:00:00Z",
            "anonymous_id":"x","countr\u0079":"FR","country":"DE","device_type":"mobile","devic\u0065":1}"#;
        let e = validate(record, now()).unwrap();
        assert_eq!(e.event_id, "a\"b\u{e9}");
        assert_eq!(e.country.as_deref(), Some("DE"));
        assert_eq!(e.device_type.as_deref(), Some("mobile"));
        let extra: Value = serde_json::from_str(e.extra.as_deref().unwrap()).unwrap();
        assert_eq!(extra, json!({"device": 1}));
    }
}
