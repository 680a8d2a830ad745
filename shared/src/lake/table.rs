//! The tables of the lake: their layout under the root, schemas, partitioning and the
//! properties their files are written with.

use arrow::datatypes::SchemaRef;
use parquet::file::properties::{BloomFilterPosition, WriterProperties, WriterPropertiesBuilder};

use crate::schema;

/// How long Delta `txn` identifiers are kept (table property `delta.setTransactionRetentionDuration`):
/// a redelivery older than this is no longer recognised, which bounds the idempotency state.
pub const TXN_RETENTION: &str = "interval 7 days";

/// Every this many commits the committing writer also writes a checkpoint (table property
/// `delta.checkpointInterval`), so opening a table replays at most this many commit files; the
/// Delta default of 100 makes every stage's table open slow down as a table grows.
pub const CHECKPOINT_INTERVAL: &str = "10";

/// False positive probability of the bloom filters in data files ([`Table::writer_properties`]):
/// about 2.6 bytes per distinct value. A lookup probes each file of a date for each id, so a run
/// of 100 events against 40 files probes 4,000 times: at 1e-4 it reads a file needlessly about
/// once in three runs (at 1e-2 it read most of them).
const BLOOM_FILTER_FPP: f64 = 1e-4;
/// Distinct values a bloom filter is sized for when the writer is not told: a filter starts at
/// this size and is folded down to what its file's values need.
const BLOOM_FILTER_MAX_VALUES: u64 = 1 << 20;
/// Rows in a row group of the data files the stages write. A Parquet writer holds the row group
/// it is building (its encoded pages and dictionaries) until the group is complete, and only then
/// hands it on to the upload; a bound on rows bounds that memory, whatever the size of the write
/// (delta-rs's default, a million rows, held a whole run's file). Readers read whole files, so
/// the count of groups costs them little.
pub const ROW_GROUP_ROWS: usize = 16 * 1024;

/// Prefix under the lake root where exports (DuckDB file, CSV, Parquet, dashboard) are written.
pub const EXPORTS_PREFIX: &str = "exports/";

/// The tables of the lake layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// bronze/events: every record as received.
    Bronze,
    /// bronze/failed_files: landed files that could not be read.
    FailedFiles,
    /// silver/events: valid events, deduplicated.
    Silver,
    /// silver/quarantine: invalid records with a reason.
    Quarantine,
    /// gold/sessions.
    Sessions,
    /// gold/daily_metrics.
    DailyMetrics,
    /// gold/funnel_daily.
    FunnelDaily,
    /// gold/page_daily.
    PageDaily,
    /// gold/daily_users: gold's own state.
    DailyUsers,
    /// gold/retention_weekly.
    RetentionWeekly,
    /// gold/identities: anonymous ids and the users they are stitched to.
    Identities,
    /// gold/anonymous_ids: gold's own stitching state.
    AnonymousIds,
    /// audit/erasures: one row per erasure request, and what silver suppresses.
    Erasures,
}

impl Table {
    /// Every table, in pipeline order.
    pub const ALL: [Table; 13] = [
        Table::Bronze,
        Table::FailedFiles,
        Table::Silver,
        Table::Quarantine,
        Table::Sessions,
        Table::DailyMetrics,
        Table::FunnelDaily,
        Table::PageDaily,
        Table::DailyUsers,
        Table::RetentionWeekly,
        Table::Identities,
        Table::AnonymousIds,
        Table::Erasures,
    ];
    /// The gold tables, as exported.
    pub const GOLD: [Table; 6] = [
        Table::Sessions,
        Table::DailyMetrics,
        Table::FunnelDaily,
        Table::PageDaily,
        Table::RetentionWeekly,
        Table::Identities,
    ];

    /// Location relative to the lake root.
    pub fn path(self) -> &'static str {
        match self {
            Table::Bronze => "bronze/events",
            Table::FailedFiles => "bronze/failed_files",
            Table::Silver => "silver/events",
            Table::Quarantine => "silver/quarantine",
            Table::Sessions => "gold/sessions",
            Table::DailyMetrics => "gold/daily_metrics",
            Table::FunnelDaily => "gold/funnel_daily",
            Table::PageDaily => "gold/page_daily",
            Table::DailyUsers => "gold/daily_users",
            Table::RetentionWeekly => "gold/retention_weekly",
            Table::Identities => "gold/identities",
            Table::AnonymousIds => "gold/anonymous_ids",
            Table::Erasures => "audit/erasures",
        }
    }

    /// Short name (the exported table name for gold tables).
    pub fn name(self) -> &'static str {
        self.path().rsplit('/').next().unwrap_or_default()
    }

    /// Arrow schema of the table, partition columns last.
    pub fn schema(self) -> SchemaRef {
        match self {
            Table::Bronze => schema::BRONZE.clone(),
            Table::FailedFiles => schema::FAILED_FILES.clone(),
            Table::Silver => schema::SILVER.clone(),
            Table::Quarantine => schema::QUARANTINE.clone(),
            Table::Sessions => schema::SESSIONS.clone(),
            Table::DailyMetrics => schema::DAILY_METRICS.clone(),
            Table::FunnelDaily => schema::FUNNEL_DAILY.clone(),
            Table::PageDaily => schema::PAGE_DAILY.clone(),
            Table::DailyUsers => schema::DAILY_USERS.clone(),
            Table::RetentionWeekly => schema::RETENTION_WEEKLY.clone(),
            Table::Identities => schema::IDENTITIES.clone(),
            Table::AnonymousIds => schema::ANONYMOUS_IDS.clone(),
            Table::Erasures => schema::ERASURES.clone(),
        }
    }

    /// The columns whose min/max statistics the Delta log keeps for data skipping (table
    /// property `delta.dataSkippingStatsColumns`): those that are not text. A text column may
    /// hold a person's identifier (user_key, user_id, anonymous_id, a raw record), and its
    /// statistics would copy it into the log and its checkpoints, where an erasure could not
    /// reach it; no reader skips files by text. `None` when no column qualifies (then the log
    /// keeps no column statistics at all).
    pub fn stats_columns(self) -> Option<String> {
        let schema = self.schema();
        let columns: Vec<&str> = schema
            .fields()
            .iter()
            .filter(|f| {
                let text = matches!(
                    f.data_type(),
                    arrow::datatypes::DataType::Utf8
                        | arrow::datatypes::DataType::LargeUtf8
                        | arrow::datatypes::DataType::Utf8View
                        | arrow::datatypes::DataType::Binary
                        | arrow::datatypes::DataType::LargeBinary
                );
                !text && !self.partition_columns().contains(&f.name().as_str())
            })
            .map(|f| f.name().as_str())
            .collect();
        (!columns.is_empty()).then(|| columns.join(","))
    }

    /// The table properties that keep identifiers out of the Delta log (see
    /// [`Table::stats_columns`]).
    pub fn stats_properties(self) -> Vec<(deltalake::TableProperty, String)> {
        use deltalake::TableProperty::{DataSkippingNumIndexedCols, DataSkippingStatsColumns};
        match self.stats_columns() {
            Some(columns) => vec![(DataSkippingStatsColumns, columns)],
            None => vec![(DataSkippingNumIndexedCols, "0".into())],
        }
    }

    /// The column whose values each data file of the table carries a Parquet bloom filter of:
    /// silver's event ids, which silver's dedup probes in a file's filter before it reads them.
    pub fn bloom_filtered_column(self) -> Option<&'static str> {
        match self {
            Table::Silver => Some("event_id"),
            _ => None,
        }
    }

    /// The Parquet settings a stage writes the table's files with: delta-rs's own (DataFusion's
    /// defaults) but Snappy instead of zstd level 3, with the table's
    /// ([`Table::writer_properties`]; `values` as there). zstd was most of what a warm gold run
    /// spent writing its session partitions back. Maintenance's compaction writes the files it
    /// merges with zstd level 4 (delta-rs's default there).
    pub fn stage_writer_properties(
        self,
        values: Option<u64>,
    ) -> crate::error::Result<WriterProperties> {
        let delta_default = deltalake::datafusion::common::config::ParquetOptions::default()
            .into_writer_properties_builder()?
            .set_compression(parquet::basic::Compression::SNAPPY);
        Ok(self.writer_properties(delta_default, values))
    }

    /// The column whose values are all distinct (an id per row): its Parquet files store it
    /// without a dictionary, which would only grow until the writer gave up on it.
    pub fn distinct_column(self) -> Option<&'static str> {
        match self {
            Table::Silver => Some("event_id"),
            Table::Sessions => Some("session_id"),
            _ => None,
        }
    }

    /// `base` without a dictionary for [`Table::distinct_column`] and with the bloom filter of
    /// [`Table::bloom_filtered_column`], if the table has them, at the end of each file: a
    /// reader's one fetch of a file's end holds the footer and the filter. `values`, when known,
    /// bounds the distinct values of a file (a writer of `values` rows), so that a small write
    /// does not build a filter for a million values and fold it down.
    pub fn writer_properties(
        self,
        mut base: WriterPropertiesBuilder,
        values: Option<u64>,
    ) -> WriterProperties {
        base = base.set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
        if let Some(column) = self.distinct_column() {
            let column = parquet::schema::types::ColumnPath::from(column);
            base = base.set_column_dictionary_enabled(column, false);
        }
        let Some(column) = self.bloom_filtered_column() else {
            return base.build();
        };
        let column = parquet::schema::types::ColumnPath::from(column);
        // A filter per row group, for the distinct values of that group.
        let values = values
            .unwrap_or(BLOOM_FILTER_MAX_VALUES)
            .min(ROW_GROUP_ROWS as u64)
            .max(1);
        base.set_bloom_filter_position(BloomFilterPosition::End)
            .set_column_bloom_filter_enabled(column.clone(), true)
            .set_column_bloom_filter_fpp(column.clone(), BLOOM_FILTER_FPP)
            .set_column_bloom_filter_max_ndv(column, values)
            .build()
    }

    /// Partition columns of the table.
    pub fn partition_columns(self) -> &'static [&'static str] {
        match self {
            Table::Silver => &["event_date"],
            Table::Sessions => &["session_date"],
            Table::DailyUsers => &["date"],
            _ => &[],
        }
    }

    /// The table whose commit log lives at `key` (relative to the lake root), with the commit version.
    pub fn commit_at(key: &str) -> Option<(Table, i64)> {
        let (table_path, file) = key.split_once("/_delta_log/")?;
        let table = Table::ALL.into_iter().find(|t| t.path() == table_path)?;
        let version = file.strip_suffix(".json")?;
        (version.len() == 20 && version.bytes().all(|b| b.is_ascii_digit()))
            .then(|| version.parse().ok())
            .flatten()
            .map(|v| (table, v))
    }

    /// Key of the commit file of `version`, relative to the lake root.
    pub fn commit_key(self, version: i64) -> String {
        format!("{}/_delta_log/{version:020}.json", self.path())
    }
}
