//! What the tests and benchmarks check the pipeline against: the sample Lambda events of
//! `events/` ([`samples`]) and gold as a full recomputation gives it
//! ([`differences_from_scratch`]). Not linked into any function.

#![deny(missing_docs)]

use std::path::{Path, PathBuf};

use arrow::record_batch::RecordBatch;
use clickstream::Result;
use clickstream::gold::compute_from_scratch;
use clickstream::lake::{Lake, Table};

/// The deployed functions, by crate name (as Terraform's `for_each` keys them).
pub const FUNCTIONS: [&str; 6] = [
    "bronze-writer",
    "silver-transformer",
    "gold-transformer",
    "exporter",
    "maintenance",
    "forget",
];

/// The repository's root (the workspace holding this crate), for tests that run its scripts.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the testkit crate sits in the repository")
        .to_path_buf()
}

pub mod leftovers;

/// The gold tables that differ from [`compute_from_scratch`] over all of silver, each with how;
/// empty when gold is exactly what a full recomputation gives. Rows are compared in a canonical
/// order, so the order files were written in does not matter.
pub async fn differences_from_scratch(lake: &Lake, funnel: &[String]) -> Result<Vec<String>> {
    let read = async |t: Table| -> Result<Vec<RecordBatch>> {
        let table = lake.table(t).await?;
        lake.read(&table, &[], None).await
    };
    let expected = compute_from_scratch(&read(Table::Silver).await?, funnel)?;
    let mut differences = Vec::new();
    for (table, want) in [
        (Table::Sessions, expected.sessions),
        (Table::DailyMetrics, expected.daily_metrics),
        (Table::FunnelDaily, expected.funnel_daily),
        (Table::PageDaily, expected.page_daily),
    ] {
        let got = canonical(table, &read(table).await?)?;
        let want = canonical(table, &[want])?;
        if got.num_rows() != want.num_rows() {
            differences.push(format!(
                "{}: {} rows, a full recomputation gives {}",
                table.path(),
                got.num_rows(),
                want.num_rows()
            ));
        } else if got != want {
            differences.push(format!(
                "{}: values differ from a full recomputation",
                table.path()
            ));
        }
    }
    Ok(differences)
}

/// All rows of `batches` in `table`'s schema, sorted by every column.
fn canonical(table: Table, batches: &[RecordBatch]) -> Result<RecordBatch> {
    use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
    let schema = table.schema();
    let conformed = batches
        .iter()
        .map(|b| clickstream::lake::conform(b, &schema))
        .collect::<Result<Vec<_>>>()?;
    let all = concat_batches(&schema, &conformed)?;
    let sort: Vec<SortColumn> = all
        .columns()
        .iter()
        .map(|c| SortColumn {
            values: c.clone(),
            options: None,
        })
        .collect();
    let order = lexsort_to_indices(&sort, None)?;
    Ok(take_record_batch(&all, &order)?)
}

/// The sample Lambda events of `events/`, for the function tests and for trying the handlers.
pub mod samples {
    use std::path::PathBuf;

    use clickstream::Result;
    use clickstream::functions::{self, BronzeTrigger};
    use clickstream::lake::Lake;
    use serde::de::DeserializeOwned;

    /// The `events/` directory of this repository.
    pub fn dir() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../events"))
    }

    /// Reads and parses `events/NAME`.
    pub fn load<T: DeserializeOwned>(name: &str) -> Result<T> {
        let path = dir().join(name);
        let bytes = std::fs::read(&path)
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// How far [`feed`] takes the samples.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Stage {
        /// Through bronze.
        Bronze,
        /// Through silver.
        Silver,
        /// Through gold.
        Gold,
    }

    /// A new lake in a temporary directory (removed when the returned guard drops), fed the
    /// samples up to `through` ([`feed`]).
    pub async fn fed_lake(through: Stage) -> (tempfile::TempDir, Lake) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().to_str().expect("a UTF-8 temporary path");
        let lake = Lake::open(path).expect("a lake in a new directory");
        feed(&lake, through)
            .await
            .expect("the samples go through the handlers");
        (dir, lake)
    }

    /// Runs the samples through the handlers up to `through`: `kafka.json` into bronze, then the
    /// bronze commit sample into silver, then the silver commit sample into gold.
    pub async fn feed(lake: &Lake, through: Stage) -> Result<()> {
        let kafka = BronzeTrigger::from_json(load("kafka.json")?)?;
        functions::bronze_writer(lake, &kafka, &clickstream::bronze::BronzeOptions::default())
            .await?;
        if through >= Stage::Silver {
            functions::silver_transformer(lake, &load("s3-bronze-commit.json")?).await?;
        }
        if through >= Stage::Gold {
            let funnel = clickstream::gold::parse_funnel(None);
            functions::gold_transformer(lake, &load("s3-silver-commit.json")?, &funnel).await?;
        }
        Ok(())
    }
}
