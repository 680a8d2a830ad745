//! The gold tables as a run opens and writes them: each with the silver version it reflects (its
//! `txn` watermark), and one write per table that replaces what the run recomputed.

use super::*;

/// The gold tables as a run found them.
pub(super) struct OpenGold(Vec<OpenGoldTable>);

/// One gold table as a run found it.
pub(super) struct OpenGoldTable {
    pub(super) kind: Table,
    pub(super) table: DeltaTable,
    /// The silver version the table reflects (its `txn` watermark; -1 before gold's first run).
    pub(super) silver_version: i64,
}

impl OpenGold {
    pub(super) async fn open(lake: &Lake) -> Result<OpenGold> {
        let mut tables = Vec::with_capacity(WRITTEN.len());
        for kind in WRITTEN {
            let table = lake.table(kind).await?;
            let silver_version = txn_version(&table, GOLD_APP_ID).await?.unwrap_or(-1);
            tables.push(OpenGoldTable {
                kind,
                table,
                silver_version,
            });
        }
        Ok(OpenGold(tables))
    }

    /// The silver version every gold table reflects.
    pub(super) fn watermark(&self) -> i64 {
        self.0.iter().map(|t| t.silver_version).min().unwrap_or(-1)
    }

    /// The silver version the table `kind` reflects, as the run found it.
    pub(super) fn silver_version(&self, kind: Table) -> i64 {
        let found = self.0.iter().find(|t| t.kind == kind);
        found.map_or(-1, |t| t.silver_version)
    }

    /// The table `kind`, as the run found it.
    pub(super) fn table(&self, kind: Table) -> &DeltaTable {
        let found = self.0.iter().find(|t| t.kind == kind);
        &found.expect("gold opens every table it writes").table
    }

    /// Commits to each table still below `silver_version` what `contents` gives for it (rows,
    /// and what they replace), with the watermark and `meta`, in [`WRITTEN`]'s order. Returns
    /// the version of gold/anonymous_ids after (the warm state's key, see [`GoldState`]).
    pub(super) async fn commit(
        self,
        lake: &Lake,
        silver_version: i64,
        meta: serde_json::Value,
        contents: impl Fn(Table) -> (RecordBatch, Replacing),
    ) -> Result<Option<i64>> {
        let mut people_version = None;
        for open in self.0 {
            let (t, meta) = (open.kind, meta.clone());
            let written = if open.silver_version >= silver_version {
                open.table
            } else {
                let (batch, replacing) = contents(t);
                let commit = commit_properties(GOLD_APP_ID, silver_version, meta);
                let written = replace(open.table, t, batch, replacing, commit).await?;
                lake.keep(t, &written);
                written
            };
            if t == Table::AnonymousIds {
                people_version = written.version().map(|v| v as i64);
            }
        }
        Ok(people_version)
    }
}

/// The rows a write to a gold table replaces.
pub(super) enum Replacing {
    /// None: the rows are appended.
    Nothing,
    /// Those matching the predicate.
    Matching(Expr),
    /// Every row of the table.
    All,
}

/// Writes `batch` to `table`, replacing what `replacing` says, with `commit`'s properties (the
/// gold watermark, for a catch-up's writes).
pub(super) async fn replace(
    table: DeltaTable,
    kind: Table,
    batch: RecordBatch,
    replacing: Replacing,
    commit: deltalake::kernel::transaction::CommitProperties,
) -> Result<DeltaTable> {
    let mut write = table
        .write(vec![batch])
        .with_partition_columns(kind.partition_columns().iter().copied())
        .with_commit_properties(commit);
    write = match replacing {
        Replacing::Matching(p) => write
            .with_save_mode(SaveMode::Overwrite)
            .with_replace_where(p),
        Replacing::All => write.with_save_mode(SaveMode::Overwrite),
        Replacing::Nothing => write.with_save_mode(SaveMode::Append),
    };
    write.await.map_err(Error::delta(kind.path()))
}
