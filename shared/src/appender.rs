//! Appending to a Delta table from its log's protocol, metadata and `txn`s alone, without its file
//! list.
//!
//! Bronze only adds files, and all it must know before adding is which records are in already: the
//! `txn` versions of its Kafka partitions and landed files. delta-rs commits from a snapshot that
//! holds every file of the table with its statistics, which a fresh process reads from the
//! checkpoint and the commits after it before its first append. An [`Appender`] holds
//! delta-kernel's snapshot instead (protocol, metadata and the list of log files), writes the data
//! file (Snappy-compressed Parquet with the kernel's statistics), commits through the kernel's
//! transaction with the `txn` actions, and then writes the commit's version checksum
//! (`_delta_log/N.crc`, Delta protocol "Version Checksum File"). The checksum carries the table's protocol, metadata and every `txn`,
//! so the next process that opens the table reads that one small file instead of replaying the
//! checkpoint and the commits after it.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use delta_kernel::FileMeta;
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::engine::arrow_conversion::{TryFromArrow, TryIntoKernel};
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::engine_data::EngineData;
use delta_kernel::snapshot::{Snapshot, SnapshotRef};
use delta_kernel::transaction::BoundWriteContext;
use delta_kernel::transaction::CommitResult;
use delta_kernel_default_engine::executor::tokio::{
    TokioBackgroundExecutor, TokioMultiThreadExecutor,
};
use delta_kernel_default_engine::parquet::DataFileMetadata;
use delta_kernel_default_engine::stats::collect_stats;
use delta_kernel_default_engine::{DefaultEngine, DefaultEngineBuilder, build_add_file_metadata};
use deltalake::DeltaTableError;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tokio::runtime::RuntimeFlavor;

use crate::error::{Error, Result};
use crate::lake::{Lake, Table};

/// The kernel engine an appender reads and writes with: the lake's object store, with the kernel's
/// blocking calls served by this process's tokio runtime when it is multi-threaded (a function's),
/// or else by a runtime of the engine's own on a background thread (as delta-rs does).
enum Engine {
    Runtime(DefaultEngine<TokioMultiThreadExecutor>),
    Background(DefaultEngine<TokioBackgroundExecutor>),
}

impl Engine {
    fn new(store: Arc<dyn object_store::ObjectStore>) -> Engine {
        let handle = tokio::runtime::Handle::current();
        let builder = DefaultEngineBuilder::new(store);
        match handle.runtime_flavor() {
            RuntimeFlavor::MultiThread => Engine::Runtime(
                builder
                    .with_task_executor(Arc::new(TokioMultiThreadExecutor::new(handle)))
                    .build(),
            ),
            _ => Engine::Background(builder.build()),
        }
    }

    fn kernel(&self) -> &dyn delta_kernel::Engine {
        match self {
            Engine::Runtime(e) => e,
            Engine::Background(e) => e,
        }
    }
}

/// Commits that fail with an I/O error the kernel calls retryable are tried this often.
const RETRYABLE_COMMIT_ATTEMPTS: u32 = 3;

/// Appends to one table of a lake knowing only its log (see the module docs). Cheap to clone; the
/// lake keeps one per table between invocations and brings it up to date from the new log files.
#[derive(Clone)]
pub struct Appender {
    table: Table,
    engine: Arc<Engine>,
    /// The object store the engine reads and writes (rooted at the bucket, or `/` for a directory).
    store: Arc<dyn ObjectStore>,
    snapshot: SnapshotRef,
}

impl std::fmt::Debug for Appender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender")
            .field("table", &self.table)
            .field("version", &self.snapshot.version())
            .finish()
    }
}

impl Lake {
    /// An appender of `table` at its latest version, creating the table if it does not exist. The
    /// one this process kept is brought up to date (a listing of the log and the new files in it)
    /// rather than opened again.
    pub async fn appender(&self, table: Table) -> Result<Appender> {
        let (engine, store) = self.kernel_engine(table)?;
        let kept = self
            .warm()
            .appenders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&table)
            .cloned();
        let snapshot = match kept {
            Some(snapshot) => {
                let builder = Snapshot::builder_from(snapshot);
                blocking(table, &engine, move |e| builder.build(e)).await?
            }
            None => {
                let url = self.table_url(table)?;
                let open = |url: url::Url| {
                    move |e: &dyn delta_kernel::Engine| Snapshot::builder_for(url).build(e)
                };
                match blocking(table, &engine, open(url.clone())).await {
                    Ok(snapshot) => snapshot,
                    // Most likely no table yet: delta-rs creates it (with its schema and table
                    // properties), or reports what else is wrong.
                    Err(_) => {
                        self.table(table).await?;
                        blocking(table, &engine, open(url)).await?
                    }
                }
            }
        };
        let appender = Appender {
            table,
            engine,
            store,
            snapshot,
        };
        self.keep_appender(&appender);
        Ok(appender)
    }

    /// The latest version of `table`, from this process's view of its log (the one its appender
    /// keeps): when warm a listing of the log, when cold the checkpoint hint, a listing and the
    /// version checksum. Never the file list, which [`Lake::table`] loads.
    pub async fn latest_version(&self, table: Table) -> Result<i64> {
        Ok(self.appender(table).await?.version())
    }

    /// A handle of `table` for reading its commits and files by name (as
    /// [`crate::lake::read_added_rows`] does), without loading its state.
    pub fn unloaded_table(&self, table: Table) -> Result<deltalake::DeltaTable> {
        self.table_builder(&self.table_url(table)?)
            .and_then(|b| b.build())
            .map_err(Error::delta(table.path()))
    }

    /// Keeps `appender`'s snapshot as this process's view of its table's log, unless the one kept
    /// is newer.
    fn keep_appender(&self, appender: &Appender) {
        let mut kept = self
            .warm()
            .appenders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let newer = kept
            .get(&appender.table)
            .is_some_and(|s| s.version() > appender.snapshot.version());
        if !newer {
            kept.insert(appender.table, appender.snapshot.clone());
        }
    }

    /// A kernel engine over the object store delta-rs would give `table` (the lake's S3 client on
    /// S3), and that store. Built per call: it holds the current runtime's handle, and costs
    /// nothing to build.
    fn kernel_engine(&self, table: Table) -> Result<(Arc<Engine>, Arc<dyn ObjectStore>)> {
        let store = self
            .unloaded_table(table)?
            .log_store()
            .root_object_store(None);
        Ok((Arc::new(Engine::new(store.clone())), store))
    }
}

impl Appender {
    /// The table version this appender has read up to.
    pub fn version(&self) -> i64 {
        self.snapshot.version() as i64
    }

    /// The version recorded for `app_id` in the table's `txn` actions, if any (see
    /// [`Appender::txn_versions`]).
    pub async fn txn_version(&self, app_id: &str) -> Result<Option<i64>> {
        Ok(self
            .txn_versions(&[app_id.to_string()])
            .await?
            .remove(app_id))
    }

    /// The versions recorded for `app_ids` in the table's `txn` actions (ids without one are
    /// absent). Served from the version checksum when there is one at this version; otherwise
    /// the log is replayed for them.
    pub async fn txn_versions(&self, app_ids: &[String]) -> Result<HashMap<String, i64>> {
        let snapshot = self.snapshot.clone();
        let app_ids = app_ids.to_vec();
        blocking(self.table, &self.engine, move |engine| {
            let mut versions = HashMap::new();
            for app_id in app_ids {
                if let Some(v) = snapshot.get_app_id_version(&app_id, engine)? {
                    versions.insert(app_id, v);
                }
            }
            Ok(versions)
        })
        .await
    }

    /// Writes `batch` as one data file and commits it with `txns` (app id, version) and `info` in
    /// the commit's `commitInfo`, then writes the version checksum and, every
    /// `delta.checkpointInterval` versions, a checkpoint. Returns the version committed.
    ///
    /// When another writer committed first, fails with a lost race
    /// ([`Error::is_lost_race`]): the caller re-reads the `txn`s from a fresh appender and tries
    /// again with what is still missing.
    pub async fn append(
        &mut self,
        lake: &Lake,
        batch: RecordBatch,
        txns: &[(String, i64)],
        info: serde_json::Value,
    ) -> Result<i64> {
        let table = self.table;
        let mut txn = self
            .snapshot
            .clone()
            .transaction(Box::new(FileSystemCommitter::new()), self.engine.kernel())
            .map_err(kernel_error(table))?
            .with_operation("WRITE".into())
            .with_engine_info(concat!("clickstream/", env!("CARGO_PKG_VERSION")));
        if let Some((data, schema)) = commit_info(&info)? {
            txn = txn.with_commit_info(data, schema);
        }
        for (app_id, version) in txns {
            txn = txn.with_transaction_id(app_id.clone(), *version);
        }
        let context = txn
            .write_state()
            .and_then(|state| state.unpartitioned_write_context())
            .map_err(kernel_error(table))?;
        txn.add_files(self.write_data_file(batch, &context).await?);
        let committed = blocking(table, &self.engine, move |engine| {
            let mut attempt = 1;
            loop {
                match txn.commit(engine)? {
                    CommitResult::CommittedTransaction(committed) => return Ok(Ok(committed)),
                    CommitResult::ConflictedTransaction(conflict) => {
                        return Ok(Err(conflict.conflict_version()));
                    }
                    CommitResult::RetryableTransaction(retry)
                        if attempt < RETRYABLE_COMMIT_ATTEMPTS =>
                    {
                        tracing::info!(error = %retry.error, attempt, "retrying a commit");
                        attempt += 1;
                        txn = retry.transaction;
                    }
                    CommitResult::RetryableTransaction(retry) => return Err(retry.error),
                }
            }
        })
        .await?;
        let committed = committed.map_err(|version| {
            Error::delta(table.path())(DeltaTableError::VersionAlreadyExists(version))
        })?;
        let version = committed.commit_version();
        self.snapshot = match committed.post_commit_snapshot() {
            Some(snapshot) => snapshot.clone(),
            None => {
                let builder = Snapshot::builder_from(self.snapshot.clone()).at_version(version);
                blocking(table, &self.engine, move |e| builder.build(e)).await?
            }
        };
        self.after_commit(committed.post_commit_stats().commits_since_checkpoint)
            .await;
        lake.keep_appender(self);
        Ok(version as i64)
    }

    /// Writes `batch` as one Snappy-compressed parquet file of the table (the compression
    /// delta-rs's writers use; the kernel's own writer does not compress), returning its `add`
    /// action with the statistics the kernel collects.
    async fn write_data_file(
        &self,
        batch: RecordBatch,
        context: &BoundWriteContext,
    ) -> Result<Box<dyn EngineData>> {
        let logical_schema =
            delta_kernel::schema::StructType::try_from_arrow(batch.schema().as_ref())
                .map_err(|e| kernel_error(self.table)(e.into()))?;
        let physical = self
            .engine
            .kernel()
            .evaluation_handler()
            .new_expression_evaluator(
                Arc::new(logical_schema),
                context.logical_to_physical(),
                context.physical_schema().clone().into(),
            )
            .and_then(|to_physical| to_physical.evaluate(&ArrowEngineData::new(batch)))
            .and_then(ArrowEngineData::try_from_engine_data)
            .map_err(kernel_error(self.table))?;
        let batch = physical.record_batch();
        let stats = collect_stats(batch, context.stats_columns(), context.physical_schema())
            .map_err(kernel_error(self.table))?;
        let mut bytes = Vec::new();
        let options = ArrowWriterOptions::new()
            .with_properties(self.table.writer_properties(
                WriterProperties::builder().set_compression(Compression::SNAPPY),
                None,
            ))
            .with_skip_arrow_metadata(true);
        let mut writer = ArrowWriter::try_new_with_options(&mut bytes, batch.schema(), options)?;
        writer.write(batch)?;
        writer.close()?;
        let size = bytes.len() as u64;
        let name = format!("part-00000-{}-c000.snappy.parquet", uuid::Uuid::new_v4());
        let location = context
            .write_dir()
            .join(&name)
            .map_err(|e| Error::Location {
                uri: context.write_dir().to_string(),
                reason: e.to_string(),
            })?;
        let path = object_store::path::Path::from_url_path(location.path()).map_err(|e| {
            Error::Location {
                uri: location.to_string(),
                reason: e.to_string(),
            }
        })?;
        self.store.put(&path, bytes.into()).await?;
        let written = FileMeta::new(location, chrono::Utc::now().timestamp_millis(), size);
        build_add_file_metadata(DataFileMetadata::new(written, stats), context)
            .map_err(kernel_error(self.table))
    }

    /// The version checksum of the new version and, when due, a checkpoint. Both only speed up
    /// later reads of the log, and the commit stands without them: a failure is logged, not
    /// returned (returning it would make the caller retry a write that is done).
    async fn after_commit(&mut self, commits_since_checkpoint: u64) {
        let table = self.table;
        let snapshot = self.snapshot.clone();
        let checksum = blocking(table, &self.engine, move |e| snapshot.write_checksum(e)).await;
        match checksum {
            Ok((_, snapshot)) => self.snapshot = snapshot,
            Err(e) => {
                tracing::warn!(table = table.path(), error = %e, "version checksum not written")
            }
        }
        let interval = self
            .snapshot
            .table_properties()
            .checkpoint_interval
            .map_or(100, |n| n.get());
        if commits_since_checkpoint < interval {
            return;
        }
        let snapshot = self.snapshot.clone();
        let checkpoint = blocking(table, &self.engine, move |e| snapshot.checkpoint(e, None)).await;
        match checkpoint {
            Ok((_, snapshot)) => self.snapshot = snapshot,
            Err(e) => tracing::warn!(table = table.path(), error = %e, "checkpoint not written"),
        }
    }
}

/// `info` (a JSON object) as the one-row data and schema of the kernel's engine commit info.
fn commit_info(
    info: &serde_json::Value,
) -> Result<Option<(Box<ArrowEngineData>, delta_kernel::schema::SchemaRef)>> {
    if info.as_object().is_none_or(|o| o.is_empty()) {
        return Ok(None);
    }
    let schema =
        arrow_json::reader::infer_json_schema_from_iterator(std::iter::once(Ok(info.clone())))?;
    let mut decoder = arrow_json::ReaderBuilder::new(Arc::new(schema.clone())).build_decoder()?;
    decoder.serialize(std::slice::from_ref(info))?;
    let Some(batch) = decoder.flush()? else {
        return Ok(None);
    };
    let kernel_schema: delta_kernel::schema::StructType =
        (&schema).try_into_kernel().map_err(|e| Error::Column {
            column: "commitInfo".into(),
            reason: e.to_string(),
        })?;
    Ok(Some((
        Box::new(ArrowEngineData::new(batch)),
        Arc::new(kernel_schema),
    )))
}

/// Runs a blocking kernel call (log reads and commits block on the engine's executor) off the
/// async workers.
async fn blocking<T: Send + 'static>(
    table: Table,
    engine: &Arc<Engine>,
    call: impl FnOnce(&dyn delta_kernel::Engine) -> delta_kernel::DeltaResult<T> + Send + 'static,
) -> Result<T> {
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || call(engine.kernel()))
        .await
        .map_err(|e| {
            std::io::Error::other(format!("a kernel call on {} stopped: {e}", table.path()))
        })?
        .map_err(kernel_error(table))
}

/// A kernel error as a Delta error on `table`.
fn kernel_error(table: Table) -> impl FnOnce(delta_kernel::Error) -> Error {
    move |e| Error::delta(table.path())(DeltaTableError::from(e))
}
