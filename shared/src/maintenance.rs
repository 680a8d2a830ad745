//! Table maintenance: compaction of small files (OPTIMIZE), VACUUM, a checkpoint and the removal
//! of expired log files, for every table, so that opening a table stays fast as commits
//! accumulate.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::lake::{Lake, Table};

/// Default VACUUM retention: a week, like Delta's default.
pub const DEFAULT_VACUUM_RETENTION_HOURS: i64 = 168;

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
    /// Files VACUUM deleted.
    pub vacuumed: usize,
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
        let table = lake.table(t).await?;
        let files_before = table
            .snapshot()
            .map(|s| s.log_data().num_files())
            .unwrap_or(0);
        let (table, _) = table.optimize().await.map_err(Error::delta(t.path()))?;
        let (table, vacuum) = table
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .await
            .map_err(Error::delta(t.path()))?;
        deltalake::checkpoints::create_checkpoint(&table, None)
            .await
            .map_err(Error::delta(t.path()))?;
        // Log files older than the table's `delta.logRetentionDuration` (30 days) and a checkpoint
        // after them: delta-rs's writers do this after their checkpoints, bronze's appends do not.
        deltalake::checkpoints::cleanup_metadata(&table, None)
            .await
            .map_err(Error::delta(t.path()))?;
        out.push(TableMaintenance {
            table: t.path().to_string(),
            files_before,
            files_after: table
                .snapshot()
                .map(|s| s.log_data().num_files())
                .unwrap_or(0),
            version: table.version().map_or(-1, |v| v as i64),
            vacuumed: vacuum.files_deleted.len(),
        });
    }
    Ok(out)
}
