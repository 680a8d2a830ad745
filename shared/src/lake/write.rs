//! Writing rows to a table in one commit that also removes what they replace, without delta-rs's
//! write operation.
//!
//! delta-rs's `write` plans every write through DataFusion (a session, a physical plan, a scan
//! that checks the new rows against a `replaceWhere` predicate). The stages know exactly what they
//! write and what it replaces: whole date partitions, every row, or nothing. [`write_replacing`]
//! writes the Parquet files with delta-rs's [`RecordBatchWriter`] and commits the `add`s with the
//! `remove`s of the files replaced through [`CommitBuilder`], recording the same operation
//! (`WRITE`, its mode and predicate) as delta-rs would, so the conflict checks against other
//! writers are the same.

use arrow::array::{Array, BooleanArray, Date32Array, RecordBatch};
use deltalake::DeltaTable;
use deltalake::datafusion::prelude::{col, lit};
use deltalake::delta_datafusion::expr::fmt_expr_to_sql;
use deltalake::kernel::Action;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use parquet::file::properties::WriterProperties;

use super::rewrite::{FILES_AT_ONCE, remove_of, with_partition_columns};
use super::{AddedFile, Table, active_files, conform, partition_date, read_data_files};
use crate::error::{Error, Result};

/// What a write replaces in its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    /// Nothing: the rows are appended.
    Nothing,
    /// Every row of the table.
    Every,
    /// The rows whose date `column` lies in `from..=to` (days since the epoch). On a table
    /// partitioned by `column` these are whole partitions, removed without being read; on
    /// another table, the files holding such rows are read and their other rows written again.
    Dates {
        /// A `DATE` column of the table.
        column: &'static str,
        /// First date replaced.
        from: i32,
        /// Last date replaced.
        to: i32,
    },
}

/// Writes `batches` (rows of `kind`) to `table` and commits them, in one commit with
/// `commit`'s properties, with the removal of the rows `replaced` names; returns the table at
/// the new version. With [`Replaced::Dates`], every row written must lie in the dates
/// replaced. A commit that loses a race with another writer fails as a lost race
/// ([`Error::is_lost_race`]).
pub async fn write_replacing(
    table: &DeltaTable,
    kind: Table,
    batches: Vec<RecordBatch>,
    replaced: Replaced,
    properties: WriterProperties,
    commit: CommitProperties,
) -> Result<DeltaTable> {
    let schema = kind.schema();
    let mut actions = Vec::new();
    let mut rows = batches;
    if let Replaced::Dates { column, from, to } = replaced {
        for batch in &rows {
            let outside = dates_outside(batch, column, from, to)?;
            if outside.true_count() > 0 {
                return Err(Error::Column {
                    column: column.into(),
                    reason: format!(
                        "{}: a row to write lies outside the dates it replaces",
                        kind.path()
                    ),
                });
            }
        }
    }
    let files = match replaced {
        Replaced::Nothing => Vec::new(),
        _ => active_files(table, kind)?,
    };
    let removed: Vec<AddedFile> = match replaced {
        Replaced::Nothing => Vec::new(),
        Replaced::Every => files,
        Replaced::Dates { column, from, to } if kind.partition_columns().contains(&column) => {
            let replaced = |f: &AddedFile| {
                partition_date(&f.partition_values, column)
                    .is_some_and(|d| (from..=to).contains(&d))
            };
            files.into_iter().filter(replaced).collect()
        }
        Replaced::Dates { column, from, to } => {
            let mut removed = Vec::new();
            for chunk in files.chunks(FILES_AT_ONCE) {
                let read = read_data_files(table, chunk, &[]).await?;
                for (file, batches) in chunk.iter().zip(read) {
                    let mut kept = Vec::with_capacity(batches.len());
                    let mut replaces = false;
                    for batch in batches {
                        let batch = with_partition_columns(batch, file, kind)?;
                        let outside = dates_outside(&batch, column, from, to)?;
                        replaces |= outside.true_count() < batch.num_rows();
                        kept.push(arrow::compute::filter_record_batch(&batch, &outside)?);
                    }
                    if replaces {
                        rows.extend(kept.into_iter().filter(|b| b.num_rows() > 0));
                        removed.push(file.clone());
                    }
                }
            }
            removed
        }
    };
    let mut writer = RecordBatchWriter::for_table(table)
        .map_err(Error::delta(kind.path()))?
        .with_writer_properties(properties);
    for batch in rows.iter().filter(|b| b.num_rows() > 0) {
        writer
            .write(conform(batch, &schema)?)
            .await
            .map_err(Error::delta(kind.path()))?;
    }
    let added = writer.flush().await.map_err(Error::delta(kind.path()))?;
    actions.extend(removed.iter().map(|f| Action::Remove(remove_of(f))));
    actions.extend(added.into_iter().map(Action::Add));
    let (mode, predicate) = match replaced {
        Replaced::Nothing => (SaveMode::Append, None),
        Replaced::Every => (SaveMode::Overwrite, None),
        Replaced::Dates { column, from, to } => {
            let between = col(column).between(lit(date(from)), lit(date(to)));
            let sql = fmt_expr_to_sql(&between).map_err(Error::delta(kind.path()))?;
            (SaveMode::Overwrite, Some(sql))
        }
    };
    let partitions = kind.partition_columns();
    let operation = DeltaOperation::Write {
        mode,
        partition_by: (!partitions.is_empty())
            .then(|| partitions.iter().map(|c| c.to_string()).collect()),
        predicate,
    };
    let snapshot = table.snapshot().map_err(Error::delta(kind.path()))?;
    let committed = CommitBuilder::from(commit)
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .await
        .map_err(Error::delta(kind.path()))?;
    let mut written = table.clone();
    written.state = Some(committed.snapshot);
    Ok(written)
}

/// Which rows of `batch` have their date `column` outside `from..=to` (a null date is outside).
fn dates_outside(batch: &RecordBatch, column: &str, from: i32, to: i32) -> Result<BooleanArray> {
    let dates = super::typed_column::<Date32Array>(batch, column)?;
    Ok((0..dates.len())
        .map(|i| Some(dates.is_null(i) || !(from..=to).contains(&dates.value(i))))
        .collect())
}

/// Days since the epoch as a date.
fn date(days: i32) -> deltalake::datafusion::scalar::ScalarValue {
    deltalake::datafusion::scalar::ScalarValue::Date32(Some(days))
}
