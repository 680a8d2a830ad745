//! Rewriting the data files of a table that hold given rows, without saying in the log which
//! rows: what an erasure does to every table (see [`crate::erasure`]).
//!
//! A DELETE or a `replaceWhere` write records its predicate in the commit's `commitInfo`, which
//! would copy the identifier it names into the log. A rewrite here reads each file, lets the
//! caller drop or change rows, writes what is left to a new file and commits the old files'
//! removal and the new files' addition in one commit, whose `commitInfo` names the request only.
//! The new files' adds carry `dataChange = false`: the rows in them are not new, so the stages
//! that read new rows (silver from bronze, gold from silver) skip them, as they skip compaction.

use std::collections::HashMap;

use arrow::array::{Array, Date32Array, RecordBatch};
use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Remove};
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

use super::{AddedFile, Lake, Table, conform, partition_date, read_data_files, writer_commit};
use crate::error::{Error, Result};

/// What a rewrite does to one batch of a data file.
pub enum Edit {
    /// Nothing: the batch stays as it is.
    Keep,
    /// The batch is replaced by `batch`, which has `removed` rows fewer and `changed` rows
    /// altered.
    Replace {
        /// What is left of the batch.
        batch: RecordBatch,
        /// Rows dropped.
        removed: usize,
        /// Rows kept but altered.
        changed: usize,
    },
}

/// What a rewrite of one table did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// Rows dropped.
    pub removed: usize,
    /// Rows kept but altered.
    pub changed: usize,
    /// Data files replaced.
    pub files: usize,
    /// The table's version after the rewrite (as found when nothing was rewritten).
    pub version: i64,
}

/// Files read at once: a rewrite (or a replacement of dates in an unpartitioned table) holds at
/// most these files' rows in memory.
pub(super) const FILES_AT_ONCE: usize = 8;

/// The active data files of `table`, with their partition values.
pub fn active_files(table: &DeltaTable, kind: Table) -> Result<Vec<AddedFile>> {
    let snapshot = table.snapshot().map_err(Error::delta(kind.path()))?;
    Ok(snapshot
        .log_data()
        .iter()
        .map(|file| AddedFile {
            path: file.path().into_owned(),
            size: file.size() as u64,
            partition_values: file.partition_values_map(),
            records: None,
        })
        .collect())
}

/// Makes sure `table` keeps no statistics of text columns in its log from now on (see
/// [`Table::stats_columns`]): tables created before that property get it set.
pub async fn keep_identifiers_out_of_log(table: DeltaTable, kind: Table) -> Result<DeltaTable> {
    let wanted: HashMap<String, String> = kind
        .stats_properties()
        .into_iter()
        .map(|(k, v)| (k.as_ref().to_string(), v))
        .collect();
    let snapshot = table.snapshot().map_err(Error::delta(kind.path()))?;
    let configuration = snapshot.metadata().configuration();
    if wanted.iter().all(|(k, v)| configuration.get(k) == Some(v)) {
        return Ok(table);
    }
    table
        .set_tbl_properties()
        .with_properties(wanted)
        .with_commit_properties(writer_commit())
        .await
        .map_err(Error::delta(kind.path()))
}

/// Rewrites every data file of the lake's table `kind` in which `edit` drops or changes rows,
/// in one commit carrying `request_id` (see the module's documentation); nothing is committed
/// when no file changes. A commit that loses a race (another writer removed one of the same
/// files) fails as a lost race ([`Error::is_lost_race`]): the caller runs the rewrite again.
pub async fn rewrite_rows(
    lake: &Lake,
    kind: Table,
    request_id: &str,
    edit: impl Fn(&RecordBatch) -> Result<Edit>,
) -> Result<Rewritten> {
    let Some(table) = lake.existing_table(kind).await? else {
        return Ok(Rewritten {
            version: -1,
            ..Rewritten::default()
        });
    };
    let table = keep_identifiers_out_of_log(table, kind).await?;
    let mut done = Rewritten {
        version: table.version().map_or(-1, |v| v as i64),
        ..Rewritten::default()
    };
    let schema = kind.schema();
    let mut actions = Vec::new();
    let mut writer = RecordBatchWriter::for_table(&table)
        .map_err(Error::delta(kind.path()))?
        .with_writer_properties(
            kind.writer_properties(parquet::file::properties::WriterProperties::builder(), None),
        );
    let files = active_files(&table, kind)?;
    for chunk in files.chunks(FILES_AT_ONCE) {
        let read = read_data_files(&table, chunk, &[]).await?;
        for (file, batches) in chunk.iter().zip(read) {
            let mut kept = Vec::with_capacity(batches.len());
            let (mut removed, mut changed) = (0, 0);
            for batch in batches {
                let batch = with_partition_columns(batch, file, kind)?;
                match edit(&batch)? {
                    Edit::Keep => kept.push(batch),
                    Edit::Replace {
                        batch,
                        removed: r,
                        changed: c,
                    } => {
                        kept.push(batch);
                        removed += r;
                        changed += c;
                    }
                }
            }
            if removed + changed == 0 {
                continue;
            }
            for batch in kept.into_iter().filter(|b| b.num_rows() > 0) {
                writer
                    .write(conform(&batch, &schema)?)
                    .await
                    .map_err(Error::delta(kind.path()))?;
            }
            actions.push(Action::Remove(remove_of(file)));
            done.removed += removed;
            done.changed += changed;
            done.files += 1;
        }
        let added = writer.flush().await.map_err(Error::delta(kind.path()))?;
        actions.extend(added.into_iter().map(|mut add| {
            add.data_change = false;
            Action::Add(add)
        }));
    }
    if done.files == 0 {
        return Ok(done);
    }
    let meta = HashMap::from([(
        "clickstream".to_string(),
        serde_json::json!({ "erasure": request_id, "rows_removed": done.removed }),
    )]);
    let snapshot = table.snapshot().map_err(Error::delta(kind.path()))?;
    let committed = CommitBuilder::from(writer_commit())
        .with_actions(actions)
        .with_app_metadata(meta)
        .with_max_retries(0)
        .build(
            Some(snapshot),
            table.log_store(),
            DeltaOperation::Delete { predicate: None },
        )
        .await
        .map_err(Error::delta(kind.path()))?;
    done.version = committed.version() as i64;
    Ok(done)
}

/// `batch` (read from `file`, whose partition values are in the log, not in the file) with
/// the table's partition columns (dates) filled from the file's partition values.
pub(super) fn with_partition_columns(
    batch: RecordBatch,
    file: &AddedFile,
    kind: Table,
) -> Result<RecordBatch> {
    let mut columns = batch.columns().to_vec();
    let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
    for column in kind.partition_columns() {
        let date = partition_date(&file.partition_values, column);
        let values = Date32Array::from(vec![date; batch.num_rows()]);
        let schema = kind.schema();
        fields.push(std::sync::Arc::new(schema.field_with_name(column)?.clone()));
        columns.push(std::sync::Arc::new(values) as std::sync::Arc<dyn Array>);
    }
    let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(fields));
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The `remove` action of a data file the rewrite replaces.
pub(super) fn remove_of(file: &AddedFile) -> Remove {
    Remove {
        path: file.path.clone(),
        data_change: true,
        deletion_timestamp: Some(chrono::Utc::now().timestamp_millis()),
        extended_file_metadata: Some(true),
        partition_values: Some(file.partition_values.clone()),
        size: Some(file.size as i64),
        tags: None,
        deletion_vector: None,
        base_row_id: None,
        default_row_commit_version: None,
    }
}
