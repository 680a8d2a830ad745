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
    /// The table's version as the run found it.
    pub(super) version: Option<i64>,
}

impl OpenGold {
    pub(super) async fn open(lake: &Lake) -> Result<OpenGold> {
        let mut tables = Vec::with_capacity(WRITTEN.len());
        for kind in WRITTEN {
            let table = lake.table(kind).await?;
            let silver_version = txn_version(&table, GOLD_APP_ID).await?.unwrap_or(-1);
            let version = table.version().map(|v| v as i64);
            tables.push(OpenGoldTable {
                kind,
                table,
                silver_version,
                version,
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

    /// Each table's version as the run found it.
    pub(super) fn versions(&self) -> GoldVersions {
        GoldVersions(self.0.iter().map(|t| (t.kind, t.version)).collect())
    }

    /// The table `kind`, as the run found it.
    pub(super) fn table(&self, kind: Table) -> &DeltaTable {
        let found = self.0.iter().find(|t| t.kind == kind);
        &found.expect("gold opens every table it writes").table
    }

    /// Commits to each table what `contents` gives for it (rows, and what they replace), with
    /// the watermark `silver_version` and `meta`: the tables of [`WRITTEN`] at once, but
    /// gold/anonymous_ids, which goes last, once the others are in. Every table is written, also
    /// one a stopped or beaten run already brought to `silver_version`: that run may have read
    /// the tables while an erasure was between its commits, and this run's fresh reads replace
    /// what it wrote. Returns each table's version after, and whether each commit went directly
    /// on top of the version the run found (see [`Committed`]).
    pub(super) async fn commit(
        self,
        lake: &Lake,
        silver_version: i64,
        meta: serde_json::Value,
        contents: impl Fn(Table) -> (Vec<RecordBatch>, Replacing),
    ) -> Result<Committed> {
        let commit_one = |open: OpenGoldTable| {
            let (batches, replacing) = contents(open.kind);
            let commit = commit_properties(GOLD_APP_ID, silver_version, meta.clone());
            let lake = lake.clone();
            // Each on its own task: the tables' writes run on every core.
            tokio::spawn(async move {
                let t = open.kind;
                let written = replace(open.table, t, batches, replacing, commit).await?;
                lake.keep(t, &written);
                let after = written.version().map(|v| v as i64);
                let on_top = after == Some(open.version.map_or(0, |v| v + 1));
                Ok::<_, Error>(((t, after), on_top))
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
        let mut on_top = true;
        let mut failed = None;
        for task in tasks {
            // Every task is awaited, so none is still writing when the run returns.
            match joined(task.await) {
                Ok((v, directly)) => {
                    versions.push(v);
                    on_top &= directly;
                }
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        for open in last {
            let (v, directly) = joined(commit_one(open).await)?;
            versions.push(v);
            on_top &= directly;
        }
        Ok(Committed {
            versions: GoldVersions(versions),
            on_top,
        })
    }
}

/// The version of each gold table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GoldVersions(Vec<(Table, Option<i64>)>);

/// What a run's commits left.
pub(super) struct Committed {
    /// Each table's version after the run.
    pub(super) versions: GoldVersions,
    /// Whether every commit went directly on top of the version the run found: when another
    /// writer's commit came between (an erasure's, which does not move the watermark), the
    /// tables hold changes the run's state does not.
    pub(super) on_top: bool,
}

/// The rows a write to a gold table replaces.
pub(super) enum Replacing {
    /// None: the rows are appended.
    Nothing,
    /// Those whose date `column` lies in `from..=to`.
    Dates {
        column: &'static str,
        from: i32,
        to: i32,
    },
    /// Those matching the predicate (delta-rs's `replaceWhere`, which reads the table to find
    /// them).
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
    let properties = kind.stage_writer_properties(None)?;
    let replaced = match replacing {
        Replacing::Nothing => Replaced::Nothing,
        Replacing::All => Replaced::Every,
        Replacing::Dates { column, from, to } => Replaced::Dates { column, from, to },
        Replacing::Matching(p) => {
            return table
                .write(batches)
                .with_writer_properties(properties)
                .with_partition_columns(kind.partition_columns().iter().copied())
                .with_commit_properties(commit)
                .with_save_mode(SaveMode::Overwrite)
                .with_replace_where(p)
                .await
                .map_err(Error::delta(kind.path()));
        }
    };
    write_replacing(&table, kind, batches, replaced, properties, commit).await
}
