//! Table maintenance: compaction of small files (OPTIMIZE), VACUUM, a checkpoint and the removal
//! of expired log files, for every table, so that opening a table stays fast as commits
//! accumulate.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::lake::{Lake, Table, retry_lost_races};

/// Default VACUUM retention: a week, like Delta's default.
pub const DEFAULT_VACUUM_RETENTION_HOURS: i64 = 168;

/// The youngest a file no commit names (an orphan) may be to be deleted, whatever the retention.
/// A writer writes its files before it commits them, so a young orphan may be a running writer's
/// next commit (a function runs at most 15 minutes, Lambda's limit). Old orphans are what a lost commit race or a crash left: they cost storage,
/// and one an OPTIMIZE wrote before an erasure committed may hold an erased person's rows.
pub const ORPHAN_MIN_AGE_MINUTES: i64 = 60;

/// What maintenance did to one table.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct TableMaintenance {
    /// The table's path under the lake root.
    pub table: String,
    /// Active data files before compaction.
    pub files_before: usize,
    /// Active data files after compaction.
    pub files_after: usize,
    /// Table version after maintenance (the checkpoint is written at it).
    pub version: i64,
    /// Files VACUUM deleted: the log's removed files and old orphans.
    pub vacuumed: usize,
}

/// OPTIMIZE of `table` (a `kind` table), its files written with delta-rs's default Parquet
/// settings and the table's bloom filters ([`Table::writer_properties`]).
fn optimize<'a>(
    table: deltalake::DeltaTable,
    kind: Table,
) -> deltalake::operations::optimize::OptimizeBuilder<'a> {
    use parquet::basic::{Compression, ZstdLevel};
    // Silver compacts through this in passing: its commits leave expired log files to
    // maintenance's explicit cleanup, as the writers' do.
    let builder = table
        .optimize()
        .with_commit_properties(crate::lake::writer_commit());
    if kind.bloom_filtered_column().is_none() {
        return builder;
    }
    let zstd = ZstdLevel::try_new(4).expect("a valid zstd level");
    let delta_default = parquet::file::properties::WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd));
    builder.with_writer_properties(kind.writer_properties(delta_default, None))
}

/// Compacts, vacuums and checkpoints every table of the lake. The checkpoint comes last, so a
/// reader starts after every maintenance commit, and bronze's next append can write its version
/// checksum again (see [`crate::appender`]: the kernel does not carry a checksum across
/// VACUUM's commits, only from a checkpoint). A retention shorter than a week
/// is allowed (the operator chose it); files younger than `retention` are never deleted.
pub async fn maintain(lake: &Lake, retention: chrono::Duration) -> Result<Vec<TableMaintenance>> {
    lake.check_writable().await?;
    let mut out = Vec::new();
    for t in Table::ALL {
        // A writer may commit while the table is compacted (the exporter replaces
        // gold/retention_weekly): the lost race is retried from a fresh read of the table, as the
        // writers' are, instead of failing the whole run.
        let (done, _) = retry_lost_races(t.path(), || maintain_table(lake, t, retention)).await?;
        out.push(done);
    }
    Ok(out)
}

/// Compacts, vacuums and checkpoints one table.
async fn maintain_table(
    lake: &Lake,
    t: Table,
    retention: chrono::Duration,
) -> Result<TableMaintenance> {
    let table = lake.table(t).await?;
    let files_before = table
        .snapshot()
        .map(|s| s.log_data().num_files())
        .unwrap_or(0);
    let (table, _) = optimize(table, t).await.map_err(Error::delta(t.path()))?;
    // Files the log removed, older than `retention`; then files no commit names, older than
    // the retention and [`ORPHAN_MIN_AGE_MINUTES`] (the full mode lists the table's objects).
    let (table, removed) = table
        .vacuum()
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        .await
        .map_err(Error::delta(t.path()))?;
    let orphan_age = retention.max(chrono::Duration::minutes(ORPHAN_MIN_AGE_MINUTES));
    let (table, orphans) = table
        .vacuum()
        .with_mode(deltalake::operations::vacuum::VacuumMode::Full)
        .with_retention_period(orphan_age)
        .with_enforce_retention_duration(false)
        .await
        .map_err(Error::delta(t.path()))?;
    deltalake::checkpoints::create_checkpoint(&table, None)
        .await
        .map_err(Error::delta(t.path()))?;
    // Log files older than the table's `delta.logRetentionDuration` (30 days) and a checkpoint
    // after them: only maintenance removes them (the writers commit with `writer_commit`).
    deltalake::checkpoints::cleanup_metadata(&table, None)
        .await
        .map_err(Error::delta(t.path()))?;
    Ok(TableMaintenance {
        table: t.path().to_string(),
        files_before,
        files_after: table
            .snapshot()
            .map(|s| s.log_data().num_files())
            .unwrap_or(0),
        version: table.version().map_or(-1, |v| v as i64),
        vacuumed: removed.files_deleted.len() + orphans.files_deleted.len(),
    })
}

/// A data file smaller than this is small: one commit's rows of one date, typically.
pub const SMALL_FILE_BYTES: u64 = 1 << 20;
/// A date partition is compacted in passing ([`compact_small_files`]) once it holds this many
/// small files.
pub const COMPACT_AT_SMALL_FILES: usize = 16;

/// Compacts, in passing, the small files of those `dates` (Date32 days) of `table` (a `kind`
/// table partitioned by `date_column`) that hold at least [`COMPACT_AT_SMALL_FILES`] of them,
/// into files of up to [`SMALL_FILE_BYTES`]: one OPTIMIZE commit over the due dates, whose adds
/// carry `dataChange = false` (readers of new rows skip them). A writer that adds a file per
/// commit calls it after its commit, so that a date holds a bounded number of files between the
/// scheduled [`maintain`] runs and a fresh process's read of a date costs a bounded number of
/// requests. Returns the table after and how many files fewer it has; with no date due, the
/// table as it was and 0.
pub async fn compact_small_files(
    table: deltalake::DeltaTable,
    kind: Table,
    date_column: &str,
    dates: &std::collections::BTreeSet<i32>,
) -> Result<(deltalake::DeltaTable, usize)> {
    use deltalake::{FilterOp, FilterValue};

    let mut small = std::collections::BTreeMap::<i32, usize>::new();
    if let Ok(snapshot) = table.snapshot() {
        for file in snapshot.log_data().iter() {
            let date = crate::lake::partition_date(&file.partition_values_map(), date_column);
            match date {
                Some(d) if dates.contains(&d) && (file.size() as u64) < SMALL_FILE_BYTES => {
                    *small.entry(d).or_default() += 1
                }
                _ => {}
            }
        }
    }
    let due: Vec<String> = small
        .into_iter()
        .filter(|&(_, files)| files >= COMPACT_AT_SMALL_FILES)
        .filter_map(|(d, _)| arrow::datatypes::Date32Type::to_naive_date_opt(d))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .collect();
    if due.is_empty() {
        return Ok((table, 0));
    }
    let filters = [(
        date_column,
        FilterOp::In,
        FilterValue::Set(due.iter().map(String::as_str).collect()),
    )];
    let target = std::num::NonZeroU64::new(SMALL_FILE_BYTES).expect("a positive size");
    let (table, metrics) = optimize(table, kind)
        .with_filters(&filters)
        .with_target_size(target)
        .await
        .map_err(Error::delta(kind.path()))?;
    let fewer = metrics
        .num_files_removed
        .saturating_sub(metrics.num_files_added);
    tracing::info!(
        table = kind.path(),
        dates = ?due,
        files_removed = metrics.num_files_removed,
        files_added = metrics.num_files_added,
        "compacted small files"
    );
    Ok((table, fewer as usize))
}

impl crate::telemetry::Measured for TableMaintenance {
    fn record(&self) {
        use crate::telemetry::{count, metric};
        count(metric::RECORDS_OUT, self.vacuumed);
    }
}
