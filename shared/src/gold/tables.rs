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
    /// and what they replace), with the watermark and `meta`: the tables of [`WRITTEN`] at once,
    /// but gold/anonymous_ids, which goes last, once the others are in. Each table's commit
    /// depends only on silver and that table, so a run stopped between them leaves tables a
    /// later run skips (see [`WRITTEN`]). Returns each table's version after (the warm state's
    /// keys, see [`GoldState`]).
    pub(super) async fn commit(
        self,
        lake: &Lake,
        silver_version: i64,
        meta: serde_json::Value,
        contents: impl Fn(Table) -> (Vec<RecordBatch>, Replacing),
    ) -> Result<Committed> {
        let commit_one = |open: OpenGoldTable| {
            let pending = (open.silver_version < silver_version).then(|| {
                let (batches, replacing) = contents(open.kind);
                let commit = commit_properties(GOLD_APP_ID, silver_version, meta.clone());
                (batches, replacing, commit)
            });
            let lake = lake.clone();
            // Each on its own task: the tables' writes run on every core.
            tokio::spawn(async move {
                let t = open.kind;
                let written = match pending {
                    None => open.table,
                    Some((batches, replacing, commit)) => {
                        let written = replace(open.table, t, batches, replacing, commit).await?;
                        lake.keep(t, &written);
                        written
                    }
                };
                Ok::<_, Error>((t, written.version().map(|v| v as i64)))
            })
        };
        let joined = |r: std::result::Result<Result<_>, tokio::task::JoinError>| match r {
            Ok(committed) => committed,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(Error::Io(std::io::Error::other(e))),
        };
        let (last, first): (Vec<OpenGoldTable>, Vec<OpenGoldTable>) = self
            .0
            .into_iter()
            .partition(|open| open.kind == Table::AnonymousIds);
        let tasks: Vec<_> = first.into_iter().map(commit_one).collect();
        let mut versions = Vec::with_capacity(WRITTEN.len());
        let mut failed = None;
        for task in tasks {
            // Every task is awaited, so none is still writing when the run returns.
            match joined(task.await) {
                Ok(v) => versions.push(v),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        for open in last {
            versions.push(joined(commit_one(open).await)?);
        }
        Ok(Committed(versions))
    }
}

/// The version of each gold table after a run's commits.
pub(super) struct Committed(Vec<(Table, Option<i64>)>);

impl Committed {
    /// The version of `kind` after the run.
    pub(super) fn version(&self, kind: Table) -> Option<i64> {
        self.0
            .iter()
            .find(|(t, _)| *t == kind)
            .and_then(|(_, v)| *v)
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

/// Writes `batches` to `table`, replacing what `replacing` says, with `commit`'s properties (the
/// gold watermark, for a catch-up's writes).
pub(super) async fn replace(
    table: DeltaTable,
    kind: Table,
    batches: Vec<RecordBatch>,
    replacing: Replacing,
    commit: deltalake::kernel::transaction::CommitProperties,
) -> Result<DeltaTable> {
    let mut write = table
        .write(batches)
        .with_writer_properties(kind.stage_writer_properties(None)?)
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
