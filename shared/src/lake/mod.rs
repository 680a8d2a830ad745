//! The lake: one root URI (a local directory or `s3://bucket/prefix`) holding every table.
//!
//! [`Lake`] is the handle (this file): where the tables are, their Delta handles kept warm, the
//! object store. [`table`] lists the tables and their layout, [`commit`] the commit helpers every
//! writer shares, [`data_files`] reads a table's Parquet files directly, [`batch`] holds Arrow
//! helpers, [`rewrite`] rewrites the files holding given rows (an erasure's), [`write`] writes rows
//! with what they replace in one commit. The lake knows no stage: stages keep their own warm state in it
//! ([`Lake::stage_state`]).

mod batch;
mod commit;
mod data_files;
mod metered;
mod object_bytes;
mod rewrite;
mod table;
mod write;

pub use batch::*;
pub use commit::*;
pub use data_files::*;
pub use metered::Metered;
pub use object_bytes::object_bytes;
pub use rewrite::*;
pub use table::*;
pub use write::*;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::record_batch::RecordBatch;
use deltalake::datafusion::prelude::{Expr, SessionConfig, SessionContext};
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaResult, DeltaTable, DeltaTableBuilder, DeltaTableError};
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use url::Url;

use crate::error::{Error, Result};

/// How many times opening a table retries its creation when another writer is creating it.
const CREATE_ATTEMPTS: u32 = 5;

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
    s3: std::sync::Mutex<Option<Arc<S3Client>>>,
    tables: std::sync::Mutex<HashMap<Table, DeltaTable>>,
    /// The log snapshots of this process's appenders (see [`crate::appender`]).
    pub(crate) appenders: std::sync::Mutex<HashMap<Table, delta_kernel::snapshot::SnapshotRef>>,
    /// Each stage's own warm state, one value per type (see [`Lake::stage_state`]).
    stages: std::sync::Mutex<HashMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>>,
}

/// An S3 lake's client: S3, its traffic counted.
pub type S3Client = Metered<object_store::aws::AmazonS3>;

/// Default timeout of one request to the lake's store, retries included (the functions' setting
/// `LAKE_TIMEOUT_SECONDS`): a store that accepts connections but never answers fails an operation
/// after about this long, instead of after object_store's 3 minutes of retries.
pub const DEFAULT_LAKE_TIMEOUT_SECONDS: u64 = 30;

/// Storage options of an S3 lake: the `AWS_*` environment variables (lowercased, as delta-rs and
/// object_store name them), with `timeout` for a request and its retries (and at most 10 s to
/// connect).
fn storage_options_from_env(timeout: Duration) -> HashMap<String, String> {
    let mut options: HashMap<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let seconds = timeout.as_secs();
    for key in ["timeout", "retry_timeout"] {
        options.insert(key.into(), format!("{seconds}s"));
    }
    options.insert(
        "connect_timeout".into(),
        format!("{}s", seconds.clamp(1, 10)),
    );
    options
}

impl Lake {
    /// Opens a lake at a local directory (created if missing) or an `s3://bucket/prefix` URI, with
    /// the default store timeout ([`DEFAULT_LAKE_TIMEOUT_SECONDS`]); see
    /// [`Lake::open_with_timeout`].
    pub fn open(uri: &str) -> Result<Lake> {
        Lake::open_with_timeout(uri, Duration::from_secs(DEFAULT_LAKE_TIMEOUT_SECONDS))
    }

    /// Opens a lake at a local directory (created if missing) or an `s3://bucket/prefix` URI.
    /// For S3, storage options come from the usual `AWS_*` environment variables, a request and
    /// its retries may take `timeout`, and the lake's S3 client ([`Lake::s3_client`]) is built
    /// here.
    pub fn open_with_timeout(uri: &str, timeout: Duration) -> Result<Lake> {
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
        let lake = Lake::with_options(root, storage_options_from_env(timeout));
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

    /// The state a stage keeps warm in this lake handle (and its clones) between invocations:
    /// one value of type `S` (the stage's own type, created empty on first use), behind a lock a
    /// stage holds for a whole run. The lake holds it without knowing what it is.
    pub(crate) fn stage_state<S: Default + Send + 'static>(&self) -> Arc<tokio::sync::Mutex<S>> {
        let mut stages = self
            .warm
            .stages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let state = stages
            .entry(std::any::TypeId::of::<S>())
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(S::default())))
            .clone();
        state
            .downcast()
            .expect("a stage state is stored under its own type")
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
    /// shared client reuses its connections; before, every table opened built its own. It counts
    /// its requests and bytes as metrics ([`metered`]).
    pub fn s3_client(&self) -> Result<Arc<S3Client>> {
        let mut slot = self.warm.s3.lock().expect("not poisoned");
        if let Some(client) = &*slot {
            return Ok(client.clone());
        }
        let client = Arc::new(Metered::new(crate::s3::client(
            &self.root,
            &self.storage_options,
        )?));
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
        let not_writable = |source| Error::NotWritable {
            uri: self.root.to_string(),
            source,
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
            .with_configuration(
                table
                    .stats_properties()
                    .into_iter()
                    .map(|(k, v)| (k.as_ref().to_string(), Some(v))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct OneStage(Vec<&'static str>);

    #[derive(Default)]
    struct OtherStage(u32);

    #[tokio::test]
    async fn each_stage_keeps_its_own_state_in_the_lake_and_its_clones() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        lake.stage_state::<OneStage>().lock().await.0.push("warm");
        lake.stage_state::<OtherStage>().lock().await.0 = 7;
        let clone = lake.clone();
        assert_eq!(clone.stage_state::<OneStage>().lock().await.0, ["warm"]);
        assert_eq!(clone.stage_state::<OtherStage>().lock().await.0, 7);
        let other_lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        assert!(
            other_lake
                .stage_state::<OneStage>()
                .lock()
                .await
                .0
                .is_empty()
        );
    }
}
