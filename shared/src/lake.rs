//! The lake: one root URI (a local directory or `s3://bucket/prefix`) holding every table.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::Utc;
use deltalake::datafusion::prelude::{Expr, SessionConfig, SessionContext};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{StructType, Transaction};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaResult, DeltaTable, DeltaTableBuilder, DeltaTableError};
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use parquet::bloom_filter::Sbbf;
use parquet::file::properties::{BloomFilterPosition, WriterProperties, WriterPropertiesBuilder};
use url::Url;

use crate::error::{Error, Result};
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

/// How many times opening a table retries its creation when another writer is creating it.
const CREATE_ATTEMPTS: u32 = 5;

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
}

impl Table {
    /// Every table, in pipeline order.
    pub const ALL: [Table; 10] = [
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
    ];
    /// The gold tables, as exported.
    pub const GOLD: [Table; 5] = [
        Table::Sessions,
        Table::DailyMetrics,
        Table::FunnelDaily,
        Table::PageDaily,
        Table::RetentionWeekly,
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

    /// `base` with the bloom filter of [`Table::bloom_filtered_column`], if the table has one, at
    /// the end of each file: a reader's one fetch of a file's end holds the footer and the filter.
    /// `values`, when known, bounds the distinct values of a file (a writer of `values` rows), so
    /// that a small write does not build a filter for a million values and fold it down.
    pub fn writer_properties(
        self,
        base: WriterPropertiesBuilder,
        values: Option<u64>,
    ) -> WriterProperties {
        let Some(column) = self.bloom_filtered_column() else {
            return base.build();
        };
        let column = parquet::schema::types::ColumnPath::from(column);
        let values = values.unwrap_or(BLOOM_FILTER_MAX_VALUES).max(1);
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

/// A lake root with the storage options used for every table in it, and the state a warm process
/// keeps between invocations (shared by clones).
#[derive(Clone)]
pub struct Lake {
    root: Url,
    storage_options: HashMap<String, String>,
    warm: Arc<Warm>,
}

impl std::fmt::Debug for Lake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lake").field("root", &self.root).finish()
    }
}

/// What a warm process (a Lambda container between invocations, the embedded pipeline) keeps:
/// open table handles, brought up to date from the log instead of opened again, and each stage's
/// caches. A cold start begins with none of it and is correct, only slower.
#[derive(Default)]
pub(crate) struct Warm {
    /// The S3 client of an S3 lake, built once (see [`Lake::s3_client`]).
    s3: std::sync::Mutex<Option<Arc<object_store::aws::AmazonS3>>>,
    tables: std::sync::Mutex<HashMap<Table, DeltaTable>>,
    /// The log snapshots of this process's appenders (see [`crate::appender`]).
    pub(crate) appenders: std::sync::Mutex<HashMap<Table, delta_kernel::snapshot::SnapshotRef>>,
    /// Silver's event_id index (see [`crate::silver`]); held for a whole silver invocation.
    pub(crate) silver: tokio::sync::Mutex<Option<crate::silver::DedupIndex>>,
    /// Gold's per-day state (see [`crate::gold`]); held for a whole gold invocation.
    pub(crate) gold: tokio::sync::Mutex<Option<crate::gold::GoldState>>,
}

/// Default of [`LAKE_TIMEOUT_SECONDS`](crate::settings::LAKE_TIMEOUT_SECONDS): a store that accepts connections but never answers
/// fails an operation after about this long, instead of after object_store's 3 minutes of retries.
pub const DEFAULT_LAKE_TIMEOUT_SECONDS: u64 = 30;

/// Storage options of an S3 lake: the `AWS_*` environment variables (lowercased, as delta-rs and
/// object_store name them) and the request and retry timeouts of [`LAKE_TIMEOUT_SECONDS`](crate::settings::LAKE_TIMEOUT_SECONDS).
fn storage_options_from_env() -> Result<HashMap<String, String>> {
    let mut options: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let seconds: u64 = crate::settings::whole_number(
        &crate::settings::Environment,
        crate::settings::LAKE_TIMEOUT_SECONDS,
        DEFAULT_LAKE_TIMEOUT_SECONDS,
        "seconds",
    )?;
    for key in ["timeout", "retry_timeout"] {
        options.insert(key.into(), format!("{seconds}s"));
    }
    options.insert(
        "connect_timeout".into(),
        format!("{}s", seconds.clamp(1, 10)),
    );
    Ok(options)
}

impl Lake {
    /// Opens a lake at a local directory (created if missing) or an `s3://bucket/prefix` URI.
    /// For S3, storage options come from the usual `AWS_*` environment variables, with the
    /// timeouts of [`LAKE_TIMEOUT_SECONDS`](crate::settings::LAKE_TIMEOUT_SECONDS), and the
    /// lake's S3 client ([`Lake::s3_client`]) is built here.
    pub fn open(uri: &str) -> Result<Lake> {
        let location = |reason: String| Error::Location {
            uri: uri.to_string(),
            reason,
        };
        let root = if uri.contains("://") {
            let url = Url::parse(uri).map_err(|e| location(e.to_string()))?;
            if url.scheme() != "file" && !crate::s3::SCHEMES.contains(&url.scheme()) {
                return Err(location(format!("unsupported scheme {:?}", url.scheme())));
            }
            url
        } else {
            if std::path::Path::new(uri).is_file() {
                return Err(location(
                    "is a file; a local lake is a directory (it is created if missing)".into(),
                ));
            }
            std::fs::create_dir_all(uri).map_err(|e| location(e.to_string()))?;
            let dir = std::fs::canonicalize(uri).map_err(|e| location(e.to_string()))?;
            Url::from_directory_path(&dir).map_err(|()| location("not an absolute path".into()))?
        };
        if root.scheme() == "file" {
            return Ok(Lake::with_options(root, HashMap::new()));
        }
        let lake = Lake::with_options(root, storage_options_from_env()?);
        // Built now, in a function's init, rather than in its first invocation.
        lake.s3_client()?;
        Ok(lake)
    }

    /// A lake at `root` with explicit storage options.
    pub fn with_options(mut root: Url, storage_options: HashMap<String, String>) -> Lake {
        crate::s3::register_with_delta();
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        Lake {
            root,
            storage_options,
            warm: Arc::default(),
        }
    }

    /// The warm state of this lake handle (and its clones).
    pub(crate) fn warm(&self) -> &Warm {
        &self.warm
    }

    /// The root URI.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The bucket name S3 events for this lake carry ("local" for a directory).
    pub fn bucket(&self) -> &str {
        match self.root.scheme() {
            "file" => "local",
            _ => self.root.host_str().unwrap_or_default(),
        }
    }

    /// The key prefix of the lake inside its bucket ("" for a directory).
    pub fn key_prefix(&self) -> &str {
        match self.root.scheme() {
            "file" => "",
            _ => self.root.path().trim_start_matches('/'),
        }
    }

    /// The object key (as in S3 events) of a path relative to the lake root.
    pub fn object_key(&self, relative: &str) -> String {
        format!("{}{relative}", self.key_prefix())
    }

    /// The path relative to the lake root of an object key from an S3 event, if inside this lake.
    pub fn relative_key<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(self.key_prefix())
    }

    /// URI of a path relative to the root.
    pub fn url(&self, relative: &str) -> Result<Url> {
        self.root.join(relative).map_err(|e| Error::Location {
            uri: format!("{}{relative}", self.root),
            reason: e.to_string(),
        })
    }

    /// URI of `table`'s root (with the trailing `/` that delta-kernel joins paths onto).
    pub fn table_url(&self, table: Table) -> Result<Url> {
        self.url(&format!("{}/", table.path()))
    }

    /// The S3 client of this S3 lake, built on first use and shared after by its clones, its tables
    /// and its own objects. Building one loads the system's TLS roots (about 150 files), and a
    /// shared client reuses its connections; before, every table opened built its own.
    pub fn s3_client(&self) -> Result<Arc<object_store::aws::AmazonS3>> {
        let mut slot = self.warm.s3.lock().expect("not poisoned");
        if let Some(client) = &*slot {
            return Ok(client.clone());
        }
        let client = Arc::new(crate::s3::client(&self.root, &self.storage_options)?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// A Delta table builder for `url` in this lake: its storage options, and on S3 the lake's
    /// client.
    pub(crate) fn table_builder(&self, url: &Url) -> DeltaResult<DeltaTableBuilder> {
        let builder = DeltaTableBuilder::from_url(url.clone())?
            .with_storage_options(self.storage_options.clone());
        if !crate::s3::SCHEMES.contains(&self.root.scheme()) {
            return Ok(builder);
        }
        let client = self
            .s3_client()
            .map_err(|e| DeltaTableError::Generic(e.to_string()))?;
        Ok(builder.with_storage_backend(client, url.clone()))
    }

    /// Object store rooted at the lake root (for `landing/` and `exports/`).
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        if !crate::s3::SCHEMES.contains(&self.root.scheme()) {
            let (store, prefix) = object_store::parse_url_opts(&self.root, &self.storage_options)?;
            return Ok(Arc::new(PrefixStore::new(store, prefix)));
        }
        let prefix = Path::from_url_path(self.root.path()).map_err(|e| Error::Location {
            uri: self.root.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Arc::new(PrefixStore::new(self.s3_client()?, prefix)))
    }

    /// Fails with a clear error when the lake cannot be written, found by writing and deleting a
    /// small object, before work that would otherwise fail half-way (maintenance).
    pub async fn check_writable(&self) -> Result<()> {
        let store = self.store()?;
        let probe = Path::from("_clickstream/write-probe");
        let not_writable = |e: object_store::Error| Error::Location {
            uri: self.root.to_string(),
            reason: format!("the lake is not writable: {e}"),
        };
        store
            .put(&probe, bytes::Bytes::from_static(b"probe").into())
            .await
            .map_err(not_writable)?;
        store.delete(&probe).await.map_err(not_writable)?;
        Ok(())
    }

    /// `table` at its latest version, creating it empty with its schema if it does not exist yet.
    /// A handle this process already has is brought up to date from the log (one listing and the
    /// new commits), not opened again.
    pub async fn table(&self, table: Table) -> Result<DeltaTable> {
        let warm = self.cached(table);
        if let Some(mut handle) = warm {
            handle
                .update_incremental(None)
                .await
                .map_err(Error::delta(table.path()))?;
            self.keep(table, &handle);
            return Ok(handle);
        }
        let handle = self.open_or_create(table).await?;
        self.keep(table, &handle);
        Ok(handle)
    }

    /// `table` at its latest version, or `None` when it does not exist yet. For a stage reading
    /// another stage's table: it may not create it (on AWS its role may not write there), and a
    /// table not yet written reads as empty.
    pub async fn existing_table(&self, table: Table) -> Result<Option<DeltaTable>> {
        if self.cached(table).is_some() {
            return self.table(table).await.map(Some);
        }
        let url = self.table_url(table)?;
        if url.scheme() == "file" && url.to_file_path().is_ok_and(|dir| !dir.exists()) {
            return Ok(None);
        }
        match self.open_table(&url).await {
            Ok(handle) => {
                self.keep(table, &handle);
                Ok(Some(handle))
            }
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(Error::delta(table.path())(e)),
        }
    }

    /// The rows of `table` as [`Lake::read`] gives them, and none when the table does not exist
    /// yet (see [`Lake::existing_table`]).
    pub async fn read_table(
        &self,
        table: Table,
        columns: &[&str],
        filter: Option<Expr>,
    ) -> Result<Vec<RecordBatch>> {
        match self.existing_table(table).await? {
            Some(handle) => self.read(&handle, columns, filter).await,
            None => Ok(Vec::new()),
        }
    }

    fn cached(&self, table: Table) -> Option<DeltaTable> {
        let tables = self
            .warm
            .tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tables.get(&table).cloned()
    }

    /// Keeps `handle` (for example the table a write returned) as this process's handle of
    /// `table`, unless the one kept is newer.
    pub fn keep(&self, table: Table, handle: &DeltaTable) {
        let mut tables = self
            .warm
            .tables
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let newer = tables
            .get(&table)
            .is_some_and(|kept| kept.version() > handle.version());
        if !newer && handle.version().is_some() {
            tables.insert(table, handle.clone());
        }
    }

    async fn open_or_create(&self, table: Table) -> Result<DeltaTable> {
        let url = self.table_url(table)?;
        if url.scheme() == "file"
            && let Ok(dir) = url.to_file_path()
        {
            std::fs::create_dir_all(dir)?;
        }
        // Another writer may be creating the table at the same moment: then our create fails, and
        // the table is opened again (a few times: its first commit may not be listed at once).
        let mut attempt = 0;
        loop {
            match self.open_table(&url).await {
                Ok(t) => return Ok(t),
                Err(DeltaTableError::NotATable(_)) => {}
                Err(e) => return Err(Error::delta(table.path())(e)),
            }
            match self.create_table(table, &url).await {
                Ok(t) => return Ok(t),
                Err(e) if attempt < CREATE_ATTEMPTS => {
                    tracing::debug!(table = table.path(), error = %e, "creating the table failed: retrying");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(Error::delta(table.path())(e)),
            }
        }
    }

    async fn open_table(&self, url: &Url) -> DeltaResult<DeltaTable> {
        self.table_builder(url)?.load().await
    }

    /// Creates `table` empty, with its schema, partitioning and table properties.
    async fn create_table(&self, table: Table, url: &Url) -> DeltaResult<DeltaTable> {
        let columns: StructType = table
            .schema()
            .as_ref()
            .try_into_kernel()
            .map_err(|e: arrow::error::ArrowError| DeltaTableError::Generic(e.to_string()))?;
        self.table_builder(url)?
            .build()?
            .create()
            .with_table_name(table.name())
            .with_columns(columns.fields().cloned())
            .with_partition_columns(table.partition_columns().iter().copied())
            .with_configuration_property(
                deltalake::TableProperty::SetTransactionRetentionDuration,
                Some(TXN_RETENTION),
            )
            .with_configuration_property(
                deltalake::TableProperty::CheckpointInterval,
                Some(CHECKPOINT_INTERVAL),
            )
            // Expired log files are maintenance's to remove (see `writer_commit`); delta-rs's
            // OPTIMIZE, which silver runs in passing, reads only this property.
            .with_configuration_property(
                deltalake::TableProperty::EnableExpiredLogCleanup,
                Some("false"),
            )
            .with_save_mode(SaveMode::Ignore)
            // Version 0 or nothing: retried at a later version, a create would commit the table's
            // metadata (and a new table id) a second time.
            .with_commit_properties(CommitProperties::default().with_max_retries(0))
            .await
    }

    /// Reads `columns` (all when empty) of the rows of `table` matching `filter`.
    pub async fn read(
        &self,
        table: &DeltaTable,
        columns: &[&str],
        filter: Option<Expr>,
    ) -> Result<Vec<RecordBatch>> {
        // Plain string types straight from parquet, not views that would then be cast.
        let config = SessionConfig::new().set_bool(
            "datafusion.execution.parquet.schema_force_view_types",
            false,
        );
        let ctx = SessionContext::new_with_config(config);
        table
            .update_datafusion_session(&ctx.state())
            .map_err(Error::delta("read"))?;
        let provider = table.table_provider().await?;
        let mut df = ctx.read_table(provider)?;
        if let Some(filter) = filter {
            df = df.filter(filter)?;
        }
        if !columns.is_empty() {
            df = df.select_columns(columns)?;
        }
        df.collect().await?.iter().map(plain_types).collect()
    }
}

/// How often a stage tries a commit that keeps losing races with other writers.
pub const COMMIT_ATTEMPTS: u32 = 8;

/// The backoff between tries of a commit that lost a race: exponential from 50 ms up to 2 s, plus
/// a random jitter of up to as much again (seeded per process), so that writers that collided do
/// not collide again at once (AWS's "Exponential Backoff And Jitter").
fn lost_race_backoff() -> backon::ExponentialBuilder {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(COMMIT_ATTEMPTS as usize - 1)
        .with_jitter()
}

/// Runs `attempt` until it does not lose a commit race ([`Error::is_lost_race`]): each try starts
/// from a fresh read of the tables, where it finds what the winner wrote, after a jittered backoff
/// ([`lost_race_backoff`]). Returns the result and the races lost on the way; after
/// [`COMMIT_ATTEMPTS`] lost races, [`Error::Contended`] on `writing` (a table or stage).
pub async fn retry_lost_races<T, F, Fut>(writing: &str, attempt: F) -> Result<(T, u32)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    use backon::Retryable;
    let retries = std::sync::atomic::AtomicU32::new(0);
    let result = attempt
        .retry(lost_race_backoff())
        .sleep(tokio::time::sleep)
        .when(Error::is_lost_race)
        .notify(|e, wait| {
            let retries = retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            tracing::info!(error = %e, retries, ?wait, "{writing} lost a commit race: re-checking");
        })
        .await;
    match result {
        Err(e) if e.is_lost_race() => Err(Error::Contended {
            table: writing.into(),
            attempts: COMMIT_ATTEMPTS,
        }),
        result => result.map(|value| (value, retries.into_inner())),
    }
}

/// The version recorded for `app_id` in the table's `txn` actions, if any.
pub async fn txn_version(table: &DeltaTable, app_id: &str) -> Result<Option<i64>> {
    let Ok(snapshot) = table.snapshot() else {
        return Ok(None);
    };
    snapshot
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(Error::delta(table.table_url().to_string()))
}

/// The commit properties of every delta-rs commit but maintenance's: no removal of expired log
/// files after a checkpoint (delta-rs's post-commit hook would otherwise delete them, which only
/// maintenance's role may do; maintenance removes them).
pub fn writer_commit() -> CommitProperties {
    CommitProperties::default().with_cleanup_expired_logs(Some(false))
}

/// Commit properties carrying a `txn` action and the stage's counts as commit metadata.
pub fn commit_properties(
    app_id: &str,
    version: i64,
    metadata: serde_json::Value,
) -> CommitProperties {
    let mut props = writer_commit().with_application_transaction(
        Transaction::new_with_last_update(app_id, version, Some(Utc::now().timestamp_millis())),
    );
    if let serde_json::Value::Object(map) = metadata {
        props = props.with_metadata(map);
    }
    props
}

/// A data file a commit added, as its `add` action names it.
#[derive(Debug, Clone, PartialEq)]
pub struct AddedFile {
    /// Path relative to the table root, percent-decoded.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Partition column -> value (None for null).
    pub partition_values: HashMap<String, Option<String>>,
}

/// The files a commit added as new data.
pub async fn added_files(table: &DeltaTable, version: i64) -> Result<Vec<AddedFile>> {
    let entry = table
        .log_store()
        .read_commit_entry(version as _)
        .await
        .map_err(Error::delta(table.table_url().to_string()))?
        .ok_or_else(|| Error::MissingCommit {
            table: table.table_url().to_string(),
            version,
        })?;
    let mut adds = Vec::new();
    for line in entry.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let action: serde_json::Value = serde_json::from_slice(line)?;
        // Compaction (OPTIMIZE) re-adds existing rows with dataChange = false: not new data.
        if let Some(add) = action
            .get("add")
            .filter(|a| a["dataChange"].as_bool() != Some(false))
        {
            let path = add["path"].as_str().unwrap_or_default();
            adds.push(AddedFile {
                path: percent_encoding::percent_decode_str(path)
                    .decode_utf8_lossy()
                    .into_owned(),
                size: add["size"].as_u64().ok_or_else(|| Error::Column {
                    column: "size".into(),
                    reason: format!("the add action of {path} in commit {version} has no size"),
                })?,
                partition_values: serde_json::from_value(add["partitionValues"].clone())
                    .unwrap_or_default(),
            });
        }
    }
    Ok(adds)
}

/// The rows commit `version` of `table` added as new data: `columns` of them, or every column
/// when `columns` is empty (partition columns are not in the files).
pub async fn read_added_rows(
    table: &DeltaTable,
    version: i64,
    columns: &[&str],
) -> Result<Vec<RecordBatch>> {
    let files = added_files(table, version).await?;
    Ok(read_data_files(table, &files, columns)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// How many data files [`fold_files`] reads at once: enough that a cold process's read of a
/// date's small files (one per commit until maintenance compacts them) waits for a few round trips
/// to the store, not dozens; each file is one or two requests and a few MB at most.
const PARALLEL_FILE_READS: usize = 32;

/// The rows of `table` (a `kind` table) whose date column `date_column` holds a date (Date32
/// days) that `wanted` accepts: `columns` of them in that order, or every column of the table's
/// schema when `columns` is empty. Read straight from the data files with the Parquet reader, no
/// query engine: on a table partitioned by `date_column` only the files of wanted dates, each
/// with only the columns asked for; on another table every file, its rows filtered. A fresh
/// process's first read costs what any later one does, with no session or plan to build.
pub async fn read_dates(
    table: &DeltaTable,
    kind: Table,
    date_column: &str,
    wanted: impl Fn(i32) -> bool,
    columns: &[&str],
) -> Result<Vec<RecordBatch>> {
    use arrow::array::{Array, ArrayRef, BooleanArray, Date32Array};
    use arrow::datatypes::{Field, Schema};

    let schema = kind.schema();
    let columns: Vec<&str> = if columns.is_empty() {
        schema.fields().iter().map(|f| f.name().as_str()).collect()
    } else {
        columns.to_vec()
    };
    let partitioned = kind.partition_columns().contains(&date_column);
    // Partition values live in the log, not in the data files.
    let mut file_columns: Vec<String> = columns
        .iter()
        .filter(|c| !kind.partition_columns().contains(c))
        .map(|c| c.to_string())
        .collect();
    if !partitioned && !file_columns.iter().any(|c| c == date_column) {
        file_columns.push(date_column.to_string());
    }

    let files =
        fold_date_files(table, kind, date_column, &wanted, file_columns, push_batch).await?;
    let mut out = Vec::new();
    for (date, batches) in files {
        for mut batch in batches {
            if !partitioned {
                let dates = typed_column::<Date32Array>(&batch, date_column)?;
                let keep: BooleanArray =
                    dates.iter().map(|d| Some(d.is_some_and(&wanted))).collect();
                batch = arrow::compute::filter_record_batch(&batch, &keep)?;
            }
            let mut fields = Vec::with_capacity(columns.len());
            let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
            for &name in &columns {
                let array: ArrayRef = match date {
                    Some(d) if name == date_column => {
                        Arc::new(Date32Array::from(vec![d; batch.num_rows()]))
                    }
                    _ => column(&batch, name)?.clone(),
                };
                let field = schema
                    .field_with_name(name)
                    .ok()
                    .filter(|f| f.data_type() == array.data_type())
                    .cloned()
                    .unwrap_or_else(|| Field::new(name, array.data_type().clone(), true));
                fields.push(field);
                arrays.push(array);
            }
            out.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?);
        }
    }
    Ok(out)
}

/// Each data file of `table` (a `kind` table) that may hold a date `wanted` accepts, read with
/// the columns `file_columns` in plain types ([`plain_types`]) and folded batch by batch into a
/// `T` by `fold`, in the file's own task as its bytes arrive: the files' decoding runs on every
/// core, beside the requests still under way, and a file's rows need not all be in memory at once.
/// On a table partitioned by `date_column`, the files of wanted dates, each with its date; on
/// another table every file, with no date (its rows are not filtered here).
async fn fold_date_files<T, F>(
    table: &DeltaTable,
    kind: Table,
    date_column: &str,
    wanted: impl Fn(i32) -> bool,
    file_columns: Vec<String>,
    fold: F,
) -> Result<Vec<(Option<i32>, T)>>
where
    T: Default + Send + 'static,
    F: Fn(&mut T, RecordBatch) -> Result<()> + Send + Sync + 'static,
{
    let partitioned = kind.partition_columns().contains(&date_column);
    let snapshot = table.snapshot().map_err(Error::delta(kind.path()))?;
    let mut files = Vec::new();
    for file in snapshot.log_data().iter() {
        let date = if partitioned {
            match partition_date(&file.partition_values_map(), date_column) {
                Some(d) if wanted(d) => Some(d),
                _ => continue,
            }
        } else {
            None
        };
        files.push((file.path().into_owned(), file.size() as u64, date));
    }

    fold_files(
        table.object_store(),
        files,
        FileColumns::Only(file_columns),
        FirstFetch::FOOTER,
        fold,
    )
    .await
}

/// The fold of [`fold_files`] that keeps a file's batches as they are.
fn push_batch(batches: &mut Vec<RecordBatch>, batch: RecordBatch) -> Result<()> {
    batches.push(batch);
    Ok(())
}

/// The columns [`fold_files`] reads.
enum FileColumns {
    /// Every column of the file.
    All,
    /// These columns (a name the file lacks is left out).
    Only(Vec<String>),
}

/// `files` (path, size and a tag each) of one table's `store`, each read with `columns` in plain
/// types ([`plain_types`]) and folded batch by batch into a `T` by `fold` in the file's own task,
/// [`PARALLEL_FILE_READS`] at once; in `files`' order, each with its tag. Each file's first request
/// is `first` (the whole file, or its end with the footer); then the columns' ranges not in it.
async fn fold_files<K, T, F>(
    store: Arc<dyn ObjectStore>,
    files: Vec<(String, u64, K)>,
    columns: FileColumns,
    first: FirstFetch,
    fold: F,
) -> Result<Vec<(K, T)>>
where
    K: Send + 'static,
    T: Default + Send + 'static,
    F: Fn(&mut T, RecordBatch) -> Result<()> + Send + Sync + 'static,
{
    let (columns, fold) = (Arc::new(columns), Arc::new(fold));
    each_file(store, files, first, move |_, file| {
        let (columns, fold) = (columns.clone(), fold.clone());
        async move { fold_rows(file, &columns, fold.as_ref()).await }
    })
    .await
}

/// The async Parquet reader of one data file, its metadata loaded.
type FileReader = parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder<DataFileReader>;

/// `files` (path, size and a tag each) of one table's `store`, each opened (its metadata loaded)
/// and handed to `read` with its tag in its own task, [`PARALLEL_FILE_READS`] at once; in `files`'
/// order, each with its tag. Each file's first request is `first`.
async fn each_file<K, T, R, Fut>(
    store: Arc<dyn ObjectStore>,
    files: Vec<(String, u64, K)>,
    first: FirstFetch,
    read: R,
) -> Result<Vec<(K, T)>>
where
    K: Send + 'static,
    T: Send + 'static,
    R: Fn(&K, FileReader) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
{
    use futures::StreamExt;
    use parquet::arrow::arrow_reader::ArrowReaderOptions;

    let read = Arc::new(read);
    let reads = files.into_iter().map(|(path, size, tag)| {
        let (store, read) = (store.clone(), read.clone());
        tokio::spawn(async move {
            let reader = DataFileReader::new(store, &path, size, first);
            // The Parquet types, not the Arrow schema a writer embedded: strings decode straight
            // to the plain `Utf8` the stages read rather than to views cast afterwards.
            let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
            let file = FileReader::new_with_options(reader, options).await?;
            let read = read(&tag, file);
            Ok::<_, Error>((tag, read.await?))
        })
    });
    let mut read = futures::stream::iter(reads).buffered(PARALLEL_FILE_READS);
    let mut out = Vec::new();
    while let Some(joined) = read.next().await {
        match joined {
            Ok(read) => out.push(read?),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(Error::Io(std::io::Error::other(e))),
        }
    }
    Ok(out)
}

/// One opened file's `columns` in plain types ([`plain_types`]), folded batch by batch into a `T`
/// by `fold`.
async fn fold_rows<T, F>(file: FileReader, columns: &FileColumns, fold: &F) -> Result<T>
where
    T: Default,
    F: Fn(&mut T, RecordBatch) -> Result<()>,
{
    use futures::TryStreamExt;
    use parquet::arrow::ProjectionMask;

    let mut file = file;
    if let FileColumns::Only(names) = columns {
        let mask = ProjectionMask::columns(file.parquet_schema(), names.iter().map(String::as_str));
        file = file.with_projection(mask);
    }
    let mut batches = file.build()?;
    let mut folded = T::default();
    while let Some(batch) = batches.try_next().await? {
        fold(&mut folded, plain_types(&batch)?)?;
    }
    Ok(folded)
}

/// What [`filters_or_fold`] found in one data file.
pub enum FiltersOrRows<T> {
    /// The file's bloom filters of the column.
    Filters {
        /// One per row group.
        filters: Vec<Sbbf>,
        /// The file's row count.
        rows: u64,
    },
    /// The column's values, folded: a row group has no filter of the column (a file written
    /// before the table had them), or the caller chose to read the file.
    Rows(T),
}

/// For each of `files` (path, size and a tag each) of `table`: its bloom filters of `column`,
/// read with its footer (one request when the writer put them at the file's end, as
/// [`Table::writer_properties`] does); or that column read and folded by `fold`, as [`read_dates`]
/// reads columns, for a file without filters and for one whose tag and row count `read_rows`
/// accepts. The files are read at once, in `files`' order.
pub async fn filters_or_fold<K, T, F, R>(
    table: &DeltaTable,
    files: Vec<(String, u64, K)>,
    column: &str,
    read_rows: R,
    fold: F,
) -> Result<Vec<(K, FiltersOrRows<T>)>>
where
    K: Send + 'static,
    T: Default + Send + 'static,
    F: Fn(&mut T, RecordBatch) -> Result<()> + Send + Sync + 'static,
    R: Fn(&K, u64) -> bool + Send + Sync + 'static,
{
    let columns = Arc::new(FileColumns::Only(vec![column.to_string()]));
    let fold = Arc::new(fold);
    let first = FirstFetch {
        end_share: Some(BLOOM_FILTER_END_SHARE),
        ..FirstFetch::FOOTER
    };
    each_file(table.object_store(), files, first, move |tag, mut file| {
        let (columns, fold) = (columns.clone(), fold.clone());
        let rows = file.metadata().file_metadata().num_rows().max(0) as u64;
        let wanted = read_rows(tag, rows);
        async move {
            if !wanted && let Some(filters) = bloom_filters(&mut file, &columns).await? {
                return Ok(FiltersOrRows::Filters { filters, rows });
            }
            Ok(FiltersOrRows::Rows(
                fold_rows(file, &columns, fold.as_ref()).await?,
            ))
        }
    })
    .await
}

/// An opened file's bloom filters of the one column in `columns`, one per row group; none when a
/// row group has no filter of it, or the file no such column.
async fn bloom_filters(file: &mut FileReader, columns: &FileColumns) -> Result<Option<Vec<Sbbf>>> {
    let FileColumns::Only(names) = columns else {
        return Ok(None);
    };
    let Some(name) = names.first() else {
        return Ok(None);
    };
    let Some(column) = file
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().string() == *name)
    else {
        return Ok(None);
    };
    let mut filters = Vec::with_capacity(file.metadata().num_row_groups());
    for row_group in 0..file.metadata().num_row_groups() {
        match file
            .get_row_group_column_bloom_filter(row_group, column)
            .await?
        {
            Some(filter) => filters.push(filter),
            None => return Ok(None),
        }
    }
    Ok(Some(filters))
}

/// Bytes of a data file's end fetched with its footer: in one request, the footer and the
/// metadata of the files the stages write.
const FOOTER_PREFETCH: usize = 64 * 1024;

/// The share of a file's bytes its bloom filters take at most, as [`Table::writer_properties`]
/// writes them (about 2.6 bytes per value, up to twice that once rounded to a power of two,
/// against some 24 bytes per silver row): a lookup of a file's filters fetches this much of its
/// end with the footer, so the filters come in the same request.
const BLOOM_FILTER_END_SHARE: u64 = 4;

/// What [`DataFileReader`]'s first request fetches: the whole file when it is no larger than
/// `whole_up_to`, else its end with the footer, [`FOOTER_PREFETCH`] bytes or `1 / end_share` of
/// the file, whichever is more.
#[derive(Debug, Clone, Copy)]
struct FirstFetch {
    whole_up_to: u64,
    end_share: Option<u64>,
}

impl FirstFetch {
    /// The footer and what lies near it; a file no larger than that, whole.
    const FOOTER: FirstFetch = FirstFetch {
        whole_up_to: FOOTER_PREFETCH as u64,
        end_share: None,
    };
    /// The whole file.
    const WHOLE: FirstFetch = FirstFetch {
        whole_up_to: u64::MAX,
        end_share: None,
    };

    /// Bytes of the end of a file of `size` bytes fetched with its footer.
    fn end_bytes(self, size: u64) -> usize {
        let share = self.end_share.map_or(0, |share| size / share.max(1));
        FOOTER_PREFETCH.max(usize::try_from(share).unwrap_or(usize::MAX))
    }
}

/// One data file of a table for the async Parquet reader: ranges of it fetched from the store, the
/// metadata with one request (its size is known from the log), which also fetches the rest of the
/// file's end ([`FirstFetch`]) and keeps it (a bloom filter written at the end is there). A file no
/// larger than `first.whole_up_to` is fetched whole with that request and read from memory, so it
/// costs one request, not two.
struct DataFileReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    first: FirstFetch,
    /// The bytes fetched with the metadata, from this offset: the whole file or its end.
    kept: Option<(u64, bytes::Bytes)>,
}

impl DataFileReader {
    fn new(
        store: Arc<dyn ObjectStore>,
        path: &str,
        size: u64,
        first: FirstFetch,
    ) -> DataFileReader {
        DataFileReader {
            store,
            path: Path::from(path),
            size,
            first,
            kept: None,
        }
    }

    /// `range` of the bytes kept, when they hold it.
    fn cached(&self, range: &std::ops::Range<u64>) -> Option<bytes::Bytes> {
        let (start, kept) = self.kept.as_ref()?;
        (range.start >= *start && range.end <= start + kept.len() as u64)
            .then(|| kept.slice((range.start - start) as usize..(range.end - start) as usize))
    }
}

/// A store failure as the Parquet reader's error.
fn store_error(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl parquet::arrow::async_reader::AsyncFileReader for DataFileReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        Box::pin(async move {
            if let Some(bytes) = self.cached(&range) {
                return Ok(bytes);
            }
            let start = range.start;
            let bytes = self
                .store
                .get_range(&self.path, range.clone())
                .await
                .map_err(store_error)?;
            // The file's end, fetched for the footer: kept for what else lies there.
            if range.end == self.size && self.kept.is_none() {
                self.kept = Some((start, bytes.clone()));
            }
            Ok(bytes)
        })
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<Vec<bytes::Bytes>>> {
        Box::pin(async move {
            if let Some(cached) = ranges.iter().map(|r| self.cached(r)).collect() {
                return Ok(cached);
            }
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(store_error)
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a parquet::arrow::arrow_reader::ArrowReaderOptions>,
    ) -> futures::future::BoxFuture<
        'a,
        parquet::errors::Result<Arc<parquet::file::metadata::ParquetMetaData>>,
    > {
        Box::pin(async move {
            let size = self.size;
            if size <= self.first.whole_up_to && self.kept.is_none() {
                let whole = self.store.get_range(&self.path, 0..size).await;
                self.kept = Some((0, whole.map_err(store_error)?));
            }
            let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .with_prefetch_hint(Some(self.first.end_bytes(size)))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        })
    }
}

/// The date (Date32 days) an added file's partition values give `column`, if any.
pub fn partition_date(parts: &HashMap<String, Option<String>>, column: &str) -> Option<i32> {
    let text = parts.get(column)?.as_deref()?;
    let date = text.parse::<chrono::NaiveDate>().ok()?;
    Some(arrow::datatypes::Date32Type::from_naive_date(date))
}

/// The rows of `files` of `table` (partition columns are not in the files): `columns` of them, or
/// every column when `columns` is empty; one list of batches per file, in `files`' order. Each
/// file is fetched whole in one request (the stages read most of a file's bytes) and decoded in
/// its own task, the files at once.
pub async fn read_data_files(
    table: &DeltaTable,
    files: &[AddedFile],
    columns: &[&str],
) -> Result<Vec<Vec<RecordBatch>>> {
    let columns = if columns.is_empty() {
        FileColumns::All
    } else {
        FileColumns::Only(columns.iter().map(|c| c.to_string()).collect())
    };
    let files = files.iter().map(|f| (f.path.clone(), f.size, ())).collect();
    let read = fold_files(
        table.object_store(),
        files,
        columns,
        FirstFetch::WHOLE,
        push_batch,
    )
    .await?;
    Ok(read.into_iter().map(|((), batches)| batches).collect())
}

/// The batch with its columns in `schema`'s order and that exact schema (Delta reads return
/// partition columns last).
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| Ok(batch.column(batch.schema().index_of(f.name())?).clone()))
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The batch with view, large and dictionary types (which query engines may return) cast to the
/// plain types of the table schemas, so readers see one type per column.
pub fn plain_types(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::datatypes::{DataType, Field, Schema};
    fn plain(t: &DataType) -> DataType {
        match t {
            DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
            DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
            DataType::Dictionary(_, v) => plain(v),
            other => other.clone(),
        }
    }
    let schema = batch.schema();
    if schema
        .fields()
        .iter()
        .all(|f| plain(f.data_type()) == *f.data_type())
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        let t = plain(f.data_type());
        columns.push(arrow::compute::cast(c, &t)?);
        fields.push(Field::new(f.name(), t, f.is_nullable()));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Whether `table` has any data file (a read of an empty table is skipped).
pub fn has_data_files(table: &DeltaTable) -> bool {
    table.snapshot().is_ok_and(|s| s.log_data().num_files() > 0)
}

/// The column `name` of `batch`, or an error naming it.
pub fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow::array::ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| Error::Column {
        column: name.to_string(),
        reason: format!(
            "missing (the batch has {:?})",
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
        ),
    })
}

/// The column `name` of `batch` as an array of type `A`, or an error naming it and its type.
pub fn typed_column<'a, A: arrow::array::Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a A> {
    let array = column(batch, name)?;
    array
        .as_any()
        .downcast_ref::<A>()
        .ok_or_else(|| Error::Column {
            column: name.to_string(),
            reason: format!(
                "has type {}, expected {}",
                array.data_type(),
                std::any::type_name::<A>()
                    .rsplit("::")
                    .next()
                    .unwrap_or_default()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn lost_race() -> Error {
        Error::delta("bronze/events")(DeltaTableError::VersionAlreadyExists(1))
    }

    #[tokio::test]
    async fn lost_races_are_retried_after_a_backoff_until_one_commits() {
        let tries = AtomicU32::new(0);
        let started = std::time::Instant::now();
        let (value, retries) = retry_lost_races("bronze/events", || async {
            match tries.fetch_add(1, Ordering::Relaxed) {
                0..3 => Err(lost_race()),
                _ => Ok("committed"),
            }
        })
        .await
        .unwrap();
        assert_eq!((value, retries, tries.into_inner()), ("committed", 3, 4));
        // Three waits of 50, 100 and 200 ms, each with up to as much again in jitter.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_writer_that_keeps_losing_gives_up_as_contended() {
        let tries = AtomicU32::new(0);
        let result: Result<((), u32)> = retry_lost_races("silver/events", || async {
            tries.fetch_add(1, Ordering::Relaxed);
            Err(lost_race())
        })
        .await;
        assert!(
            matches!(&result, Err(Error::Contended { table, attempts: COMMIT_ATTEMPTS }) if table == "silver/events"),
            "{result:?}"
        );
        assert_eq!(tries.into_inner(), COMMIT_ATTEMPTS);
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let tries = AtomicU32::new(0);
        let result: Result<((), u32)> = retry_lost_races("gold", || async {
            tries.fetch_add(1, Ordering::Relaxed);
            Err(Error::Trigger("not a race".into()))
        })
        .await;
        assert!(matches!(result, Err(Error::Trigger(_))), "{result:?}");
        assert_eq!(tries.into_inner(), 1);
    }

    #[test]
    fn the_backoff_grows_and_is_jittered() {
        let waits: Vec<Duration> = backon::BackoffBuilder::build(lost_race_backoff()).collect();
        assert_eq!(waits.len() as u32, COMMIT_ATTEMPTS - 1);
        assert!(
            waits.iter().all(|w| *w <= Duration::from_secs(4)),
            "{waits:?}"
        );
        let again: Vec<Duration> = backon::BackoffBuilder::build(lost_race_backoff()).collect();
        assert_ne!(waits, again, "no jitter");
    }
}
