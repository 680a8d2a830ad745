//! Arrow schemas of every lake table: the data contracts of DESIGN.md.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// `bronze/events`: raw payload plus where it came from.
pub static BRONZE: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("payload", DataType::Binary, false),
        utf8("source", false),
        utf8("topic", true),
        Field::new("partition", DataType::Int32, true),
        Field::new("offset", DataType::Int64, true),
        utf8("file_key", true),
        Field::new("line", DataType::Int64, true),
        Field::new("kafka_timestamp", ts(), true),
        Field::new("ingest_time", ts(), false),
    ]))
});

/// `bronze/failed_files`: landed files that cannot be read (not gzip though named so, an
/// unsupported type), one row per content; the file itself stays under `landing/`.
pub static FAILED_FILES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("file_key", false),
        utf8("file_id", false),
        Field::new("size_bytes", DataType::Int64, false),
        utf8("reason", false),
        Field::new("failed_at", ts(), false),
    ]))
});

/// `gold/identities`: each anonymous_id seen with a user_id, the user it is stitched to (the
/// user_id of its latest event carrying both), when it was first and last seen, its events, and
/// how many user_ids it was seen with (more than one: a shared device).
pub static IDENTITIES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("anonymous_id", false),
        utf8("user_id", false),
        Field::new("first_seen", ts(), false),
        Field::new("last_seen", ts(), false),
        Field::new("events", DataType::Int64, false),
        Field::new("user_ids", DataType::Int64, false),
    ]))
});

/// `gold/anonymous_ids`: gold's stitching state, one row per anonymous id and change (the row
/// with the greatest `silver_version` holds): the user it is linked to, the (event_time,
/// event_id) of the event that linked it, and the first and last date of its events without a
/// user_id (the dates a change of its user re-computes).
pub static ANONYMOUS_IDS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("anonymous_id", false),
        utf8("user_id", true),
        Field::new("linked_at", ts(), true),
        utf8("linked_event_id", true),
        Field::new("first_date", DataType::Date32, true),
        Field::new("last_date", DataType::Date32, true),
        Field::new("silver_version", DataType::Int64, false),
    ]))
});

/// `audit/erasures`: one row per erasure request (`clickstream forget`), never the identifier
/// itself: its hash, the hashes of every identifier of the person (which silver suppresses from
/// then on), when it was asked for and done, and what it removed from each table.
pub static ERASURES: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("request_id", false),
        utf8("identifier_hash", false),
        utf8("suppressed_hashes", false),
        utf8("status", false),
        Field::new("requested_at", ts(), false),
        Field::new("completed_at", ts(), true),
        Field::new("files_removed_by", ts(), true),
        utf8("rows_removed", false),
        utf8("table_versions", false),
    ]))
});

/// `gold/retention_weekly`: users by the week they were first seen (`cohort_week`, a Monday) and
/// how many of them were active `week_index` weeks later.
pub static RETENTION_WEEKLY: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("cohort_week", DataType::Date32, false),
        Field::new("week_index", DataType::Int32, false),
        Field::new("cohort_users", DataType::Int64, false),
        Field::new("active_users", DataType::Int64, false),
        Field::new("share", DataType::Float64, false),
    ]))
});

/// `silver/events`: typed, valid events with a unique event_id, partitioned by `event_date`.
pub static SILVER: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("event_id", false),
        utf8("event_type", false),
        Field::new("event_time", ts(), false),
        utf8("user_key", false),
        utf8("user_id", true),
        utf8("anonymous_id", true),
        utf8("client_session_id", true),
        utf8("page_url", true),
        utf8("page_path", true),
        utf8("referrer", true),
        utf8("user_agent", true),
        utf8("device_type", true),
        utf8("country", true),
        utf8("properties", true),
        utf8("extra", true),
        Field::new("ingest_time", ts(), false),
        utf8("source", false),
        Field::new("event_date", DataType::Date32, false),
    ]))
});

/// `silver/quarantine`: rejected records with the reason.
pub static QUARANTINE: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("raw", false),
        utf8("reason", false),
        utf8("detail", false),
        utf8("source", false),
        Field::new("ingest_time", ts(), false),
    ]))
});

/// `gold/sessions`, partitioned by `session_date`.
pub static SESSIONS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("session_id", false),
        utf8("user_key", false),
        Field::new("session_start", ts(), false),
        Field::new("session_end", ts(), false),
        Field::new("duration_s", DataType::Float64, false),
        Field::new("events", DataType::Int64, false),
        Field::new("page_views", DataType::Int64, false),
        utf8("entry_page", true),
        utf8("exit_page", true),
        Field::new("is_bounce", DataType::Boolean, false),
        Field::new("converted", DataType::Boolean, false),
        utf8("device_type", true),
        utf8("country", true),
        utf8("referrer_host", true),
        utf8("utm_source", true),
        Field::new("funnel_step", DataType::Int32, false),
        Field::new("session_date", DataType::Date32, false),
    ]))
});

/// `gold/daily_metrics`.
pub static DAILY_METRICS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, false),
        Field::new("dau", DataType::Int64, false),
        Field::new("wau", DataType::Int64, false),
        Field::new("mau", DataType::Int64, false),
        Field::new("sessions", DataType::Int64, false),
        Field::new("events", DataType::Int64, false),
        Field::new("page_views", DataType::Int64, false),
        Field::new("avg_session_duration_s", DataType::Float64, false),
        Field::new("bounce_rate", DataType::Float64, false),
        Field::new("conversion_rate", DataType::Float64, false),
        Field::new("events_per_session", DataType::Float64, false),
    ]))
});

/// `gold/funnel_daily`.
pub static FUNNEL_DAILY: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, false),
        Field::new("step_index", DataType::Int32, false),
        utf8("step", false),
        Field::new("users", DataType::Int64, false),
        Field::new("conversion_from_start", DataType::Float64, false),
        Field::new("conversion_from_previous", DataType::Float64, false),
    ]))
});

/// `gold/page_daily`.
pub static PAGE_DAILY: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("date", DataType::Date32, false),
        utf8("page_path", false),
        Field::new("page_views", DataType::Int64, false),
        Field::new("unique_users", DataType::Int64, false),
        Field::new("entries", DataType::Int64, false),
        Field::new("exits", DataType::Int64, false),
    ]))
});

/// `gold/daily_users`: the distinct users (user_key) of each event date, partitioned by `date`;
/// the compact state DAU, WAU and MAU are computed from.
pub static DAILY_USERS: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        utf8("user_key", false),
        Field::new("date", DataType::Date32, false),
    ]))
});
