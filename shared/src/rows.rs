//! One row of each lake table as a Rust struct: the writers build batches from these, and the
//! readers read batches into them ([`crate::lake::batch_of`], [`crate::lake::rows_of`]), field by
//! column name. The column types are the schemas' ([`crate::schema`]); a test holds each struct to
//! its table's columns.
//!
//! Times are microseconds since the epoch (`i64`, a UTC timestamp column); dates are either days
//! since the epoch (`i32`) or a [`NaiveDate`] where people read them (a Date32 column either way).
//! Rows a stage writes in bulk borrow their text; rows read back own it.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize, Serializer};

/// A row of `bronze/events`.
#[derive(Debug, Serialize)]
pub struct Bronze<'a> {
    /// The record as received.
    #[serde(serialize_with = "as_bytes")]
    pub payload: &'a [u8],
    /// `kafka` or `file`.
    pub source: &'a str,
    /// Kafka topic.
    pub topic: Option<&'a str>,
    /// Kafka partition.
    pub partition: Option<i32>,
    /// Kafka offset.
    pub offset: Option<i64>,
    /// The landed file's key.
    pub file_key: Option<&'a str>,
    /// Line (record) number in the landed file, from 1.
    pub line: Option<i64>,
    /// The Kafka message's timestamp.
    pub kafka_timestamp: Option<i64>,
    /// When bronze wrote the row.
    pub ingest_time: i64,
}

/// A row of `bronze/failed_files`.
#[derive(Debug, Serialize)]
pub struct FailedFile<'a> {
    /// The landed file's key.
    pub file_key: &'a str,
    /// The id of its content.
    pub file_id: &'a str,
    /// Its size.
    pub size_bytes: i64,
    /// Why it cannot be read.
    pub reason: &'a str,
    /// When bronze gave up on it.
    pub failed_at: i64,
}

/// A row of `silver/events`.
#[derive(Debug, Serialize)]
pub struct Silver<'a> {
    /// The client's id of the event.
    pub event_id: &'a str,
    /// What happened.
    pub event_type: &'a str,
    /// When it happened.
    pub event_time: i64,
    /// coalesce(user_id, anonymous_id).
    pub user_key: &'a str,
    /// The signed-in user.
    pub user_id: Option<&'a str>,
    /// The browser's anonymous id.
    pub anonymous_id: Option<&'a str>,
    /// The client's session id.
    pub client_session_id: Option<&'a str>,
    /// The page's URL.
    pub page_url: Option<&'a str>,
    /// The path of `page_url`.
    pub page_path: Option<&'a str>,
    /// The referring URL.
    pub referrer: Option<&'a str>,
    /// The browser's user agent.
    pub user_agent: Option<&'a str>,
    /// mobile, desktop or tablet.
    pub device_type: Option<&'a str>,
    /// ISO country code.
    pub country: Option<&'a str>,
    /// The `properties` object as JSON text.
    pub properties: Option<&'a str>,
    /// Unknown top-level fields as JSON object text.
    pub extra: Option<&'a str>,
    /// When bronze received the record.
    pub ingest_time: i64,
    /// `kafka` or `file`.
    pub source: &'a str,
    /// The UTC date of `event_time`, in days.
    pub event_date: i32,
}

/// A row of `silver/quarantine`.
#[derive(Debug, Serialize)]
pub struct Quarantine<'a> {
    /// The record as text (base64 when it is not UTF-8).
    pub raw: &'a str,
    /// The reason code.
    pub reason: &'a str,
    /// What exactly was wrong.
    pub detail: &'a str,
    /// `kafka` or `file`.
    pub source: &'a str,
    /// When bronze received the record.
    pub ingest_time: i64,
}

/// A row of `gold/sessions`.
#[derive(Debug, Serialize)]
pub struct Session<'a> {
    /// The user's key and the session's start.
    pub session_id: &'a str,
    /// coalesce(user_id, anonymous_id).
    pub user_key: &'a str,
    /// First event time.
    pub session_start: i64,
    /// Last event time.
    pub session_end: i64,
    /// `session_end - session_start` in seconds.
    pub duration_s: f64,
    /// Events in the session.
    pub events: i64,
    /// Page views in the session.
    pub page_views: i64,
    /// Path of the first page viewed.
    pub entry_page: Option<&'a str>,
    /// Path of the last page viewed.
    pub exit_page: Option<&'a str>,
    /// One page view or fewer.
    pub is_bounce: bool,
    /// Holds a purchase.
    pub converted: bool,
    /// Device of the first event.
    pub device_type: Option<&'a str>,
    /// Country of the first event.
    pub country: Option<&'a str>,
    /// Host of the first event's referrer.
    pub referrer_host: Option<&'a str>,
    /// utm_source of the first page's URL.
    pub utm_source: Option<&'a str>,
    /// Funnel steps reached in order.
    pub funnel_step: i32,
    /// The UTC date of `session_start`, in days.
    pub session_date: i32,
}

/// A row of `gold/daily_metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DailyMetrics {
    /// The event date (UTC).
    pub date: NaiveDate,
    /// Distinct users active on the date.
    pub dau: i64,
    /// Distinct users active in the 7 days ending on the date.
    pub wau: i64,
    /// Distinct users active in the 30 days ending on the date.
    pub mau: i64,
    /// Sessions starting on the date.
    pub sessions: i64,
    /// Events on the date.
    pub events: i64,
    /// Page views on the date.
    pub page_views: i64,
    /// Mean session duration in seconds.
    pub avg_session_duration_s: f64,
    /// Share of sessions with one page view.
    pub bounce_rate: f64,
    /// Share of sessions that converted.
    pub conversion_rate: f64,
    /// Events per session.
    pub events_per_session: f64,
}

/// A row of `gold/funnel_daily`: one step on one day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelDaily {
    /// The session date.
    pub date: NaiveDate,
    /// Position of the step in the funnel, from 1.
    pub step_index: i32,
    /// The step (an event type).
    pub step: String,
    /// Users reaching the step in order that day.
    pub users: i64,
    /// `users` over the first step's users.
    pub conversion_from_start: f64,
    /// `users` over the step before's users.
    pub conversion_from_previous: f64,
}

/// A row of `gold/page_daily`: one page on one day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PageDaily {
    /// The date.
    pub date: NaiveDate,
    /// The page path.
    pub page_path: String,
    /// Page views of the page that day.
    pub page_views: i64,
    /// Distinct users who viewed it that day.
    pub unique_users: i64,
    /// Sessions that started on the page that day.
    pub entries: i64,
    /// Sessions that ended on the page that day.
    pub exits: i64,
}

/// A row of `gold/daily_users`.
#[derive(Debug, Serialize)]
pub struct DailyUser<'a> {
    /// The user's key.
    pub user_key: &'a str,
    /// A date the user was active on, in days.
    pub date: i32,
}

/// A row of `gold/identities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity<'a> {
    /// The anonymous (device or cookie) id.
    pub anonymous_id: &'a str,
    /// The user it is stitched to: the user_id of its latest event carrying both.
    pub user_id: &'a str,
    /// Its first event's time (µs since the epoch).
    pub first_seen: i64,
    /// Its last event's time (µs since the epoch).
    pub last_seen: i64,
    /// Its events in silver.
    pub events: i64,
    /// Distinct user_ids it was seen with (more than one: a shared device).
    pub user_ids: i64,
}

/// A row of `gold/anonymous_ids` (gold's stitching state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnonymousId {
    /// The anonymous (device or cookie) id.
    pub anonymous_id: String,
    /// The user it is linked to, if any.
    pub user_id: Option<String>,
    /// Time of the event that linked it (µs since the epoch).
    pub linked_at: Option<i64>,
    /// Id of the event that linked it.
    pub linked_event_id: Option<String>,
    /// First date of its events without a user_id, in days.
    pub first_date: Option<i32>,
    /// Last date of its events without a user_id, in days.
    pub last_date: Option<i32>,
    /// The silver version gold had reached when it wrote the row (the greatest holds).
    pub silver_version: i64,
}

/// A row of `audit/erasures`: one erasure request, as started and then as completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    /// The request's id (the request object's name, or the one `clickstream forget` was given).
    pub request_id: String,
    /// [`crate::erasure::identity_hash`] of the identifier asked for.
    pub identifier_hash: String,
    /// The hashes of every identifier of the person, space-separated: what silver suppresses.
    pub suppressed_hashes: String,
    /// `started` or `complete`.
    pub status: String,
    /// When the request was first taken up (µs since the epoch).
    pub requested_at: i64,
    /// When every table and export was rewritten without the person.
    pub completed_at: Option<i64>,
    /// When no file holding the person is left: at once with `--now`, else after VACUUM's
    /// retention.
    pub files_removed_by: Option<i64>,
    /// Rows removed per table, as a JSON object.
    pub rows_removed: String,
    /// The version of each table after its rewrite, as a JSON object.
    pub table_versions: String,
}

/// A row of `gold/retention_weekly`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionWeekly {
    /// The Monday of the week the cohort's users were first seen.
    pub cohort_week: NaiveDate,
    /// Weeks after the cohort's week.
    pub week_index: i32,
    /// Users in the cohort.
    pub cohort_users: i64,
    /// Of those, users active in week `week_index`.
    pub active_users: i64,
    /// `active_users / cohort_users`.
    pub share: f64,
}

/// Bytes as Arrow binary (serde's default for a slice is a list of numbers).
fn as_bytes<S: Serializer>(bytes: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::{Table, batch_of, rows_of};
    use serde_arrow::schema::{SchemaLike, TracingOptions};

    /// The field names of `row`, in order, as serde_arrow traces them.
    fn names<T: Serialize>(row: &T) -> Vec<String> {
        let options = TracingOptions::default().allow_null_fields(true);
        let fields = Vec::<arrow::datatypes::FieldRef>::from_samples([row], options).unwrap();
        fields.iter().map(|f| f.name().clone()).collect()
    }

    /// `row` has the columns of `table`, in order, and converts to a batch of its schema.
    fn holds_to<T: Serialize>(table: Table, row: T) {
        let columns: Vec<String> = table
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names(&row), columns, "{table:?}");
        let batch = batch_of(&table.schema(), &[row]).unwrap();
        assert_eq!(batch.num_rows(), 1);
    }

    /// A row read back from its batch is the row written.
    fn round_trips<T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug>(
        table: Table,
        row: T,
    ) {
        let batch = batch_of(&table.schema(), std::slice::from_ref(&row)).unwrap();
        assert_eq!(rows_of::<T>(&[batch]).unwrap(), vec![row]);
    }

    #[test]
    fn each_row_struct_has_its_tables_columns() {
        let day = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        holds_to(
            Table::Bronze,
            Bronze {
                payload: b"{}",
                source: "kafka",
                topic: Some("t"),
                partition: Some(0),
                offset: Some(7),
                file_key: None,
                line: None,
                kafka_timestamp: Some(1),
                ingest_time: 2,
            },
        );
        holds_to(
            Table::FailedFiles,
            FailedFile {
                file_key: "landing/a.gz",
                file_id: "x",
                size_bytes: 3,
                reason: "not gzip",
                failed_at: 4,
            },
        );
        holds_to(
            Table::Silver,
            Silver {
                event_id: "e",
                event_type: "page_view",
                event_time: 1,
                user_key: "u",
                user_id: Some("u"),
                anonymous_id: None,
                client_session_id: None,
                page_url: None,
                page_path: Some("/"),
                referrer: None,
                user_agent: None,
                device_type: None,
                country: None,
                properties: None,
                extra: None,
                ingest_time: 2,
                source: "file",
                event_date: 0,
            },
        );
        holds_to(
            Table::Quarantine,
            Quarantine {
                raw: "{",
                reason: "not_json",
                detail: "eof",
                source: "kafka",
                ingest_time: 1,
            },
        );
        holds_to(
            Table::Sessions,
            Session {
                session_id: "s",
                user_key: "u",
                session_start: 1,
                session_end: 2,
                duration_s: 0.0,
                events: 1,
                page_views: 1,
                entry_page: None,
                exit_page: None,
                is_bounce: true,
                converted: false,
                device_type: None,
                country: None,
                referrer_host: None,
                utm_source: None,
                funnel_step: 0,
                session_date: 0,
            },
        );
        holds_to(
            Table::DailyUsers,
            DailyUser {
                user_key: "u",
                date: 0,
            },
        );
        let metrics = DailyMetrics {
            date: day,
            dau: 1,
            wau: 2,
            mau: 3,
            sessions: 4,
            events: 5,
            page_views: 6,
            avg_session_duration_s: 7.5,
            bounce_rate: 0.5,
            conversion_rate: 0.25,
            events_per_session: 1.25,
        };
        let funnel = FunnelDaily {
            date: day,
            step_index: 1,
            step: "page_view".into(),
            users: 3,
            conversion_from_start: 1.0,
            conversion_from_previous: 1.0,
        };
        let page = PageDaily {
            date: day,
            page_path: "/a b".into(),
            page_views: 2,
            unique_users: 1,
            entries: 1,
            exits: 0,
        };
        let retention = RetentionWeekly {
            cohort_week: day,
            week_index: 1,
            cohort_users: 4,
            active_users: 1,
            share: 0.25,
        };
        holds_to(
            Table::Identities,
            Identity {
                anonymous_id: "a",
                user_id: "u",
                first_seen: 1,
                last_seen: 2,
                events: 3,
                user_ids: 1,
            },
        );
        let anonymous = AnonymousId {
            anonymous_id: "a".into(),
            user_id: Some("u".into()),
            linked_at: Some(1),
            linked_event_id: Some("e".into()),
            first_date: Some(2),
            last_date: None,
            silver_version: 3,
        };
        holds_to(Table::AnonymousIds, anonymous.clone());
        let erasure = Erasure {
            request_id: "r".into(),
            identifier_hash: "h".into(),
            suppressed_hashes: "h g".into(),
            status: "complete".into(),
            requested_at: 1,
            completed_at: Some(2),
            files_removed_by: None,
            rows_removed: "{}".into(),
            table_versions: "{}".into(),
        };
        holds_to(Table::Erasures, erasure.clone());
        round_trips(Table::Erasures, erasure);
        round_trips(Table::AnonymousIds, anonymous);
        holds_to(Table::DailyMetrics, metrics);
        holds_to(Table::FunnelDaily, funnel.clone());
        holds_to(Table::PageDaily, page.clone());
        holds_to(Table::RetentionWeekly, retention.clone());
        round_trips(Table::DailyMetrics, metrics);
        round_trips(Table::FunnelDaily, funnel);
        round_trips(Table::PageDaily, page);
        round_trips(Table::RetentionWeekly, retention);
    }
}
