//! Exporter: the gold tables as a DuckDB database file, CSV and Parquet under `exports/` (the
//! dashboard beside them is `clickstream_report`'s).

use std::collections::BTreeMap;

use arrow::datatypes::{DataType, Schema};
use arrow::record_batch::RecordBatch;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::lake::{Lake, Table, conform};

pub use crate::lake::EXPORTS_PREFIX;
/// Name of the DuckDB database file.
pub const DUCKDB_FILE: &str = "clickstream.duckdb";

/// What one export did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ExportOutcome {
    /// Rows exported per gold table.
    pub rows: BTreeMap<String, usize>,
    /// Keys written, relative to the lake root.
    pub files: Vec<String>,
}

/// Exports every gold table to `exports/`: `clickstream.duckdb` (one table per gold table),
/// `NAME.csv` and `NAME.parquet`.
pub async fn export(lake: &Lake) -> Result<ExportOutcome> {
    let store = lake.store()?;
    let mut outcome = ExportOutcome::default();
    let scratch = tempfile_dir()?;
    let db_path = scratch.join(DUCKDB_FILE);
    let db = duckdb::Connection::open(&db_path)?;
    for t in Table::GOLD {
        let table = lake.table(t).await?;
        let batches = lake.read(&table, &[], None).await?;
        let schema = t.schema();
        let batches = batches
            .iter()
            .map(|b| conform(b, &schema))
            .collect::<Result<Vec<_>>>()?;
        outcome.rows.insert(
            t.name().to_string(),
            batches.iter().map(RecordBatch::num_rows).sum(),
        );

        let parquet_key = format!("{EXPORTS_PREFIX}{}.parquet", t.name());
        put(&*store, &parquet_key, parquet_bytes(&schema, &batches)?).await?;
        let csv_key = format!("{EXPORTS_PREFIX}{}.csv", t.name());
        put(&*store, &csv_key, csv_bytes(&batches)?).await?;
        outcome.files.extend([parquet_key, csv_key]);

        write_duckdb_table(&db, t.name(), &schema, &batches)?;
    }
    db.execute_batch("CHECKPOINT")?;
    drop(db);
    let db_key = format!("{EXPORTS_PREFIX}{DUCKDB_FILE}");
    put(&*store, &db_key, std::fs::read(&db_path)?).await?;
    std::fs::remove_dir_all(&scratch)?;
    outcome.files.push(db_key);
    Ok(outcome)
}

/// Creates (or replaces) table `name` in a DuckDB database and appends `batches` to it.
pub fn write_duckdb_table(
    db: &duckdb::Connection,
    name: &str,
    schema: &Schema,
    batches: &[RecordBatch],
) -> Result<()> {
    db.execute_batch(&create_table_sql(name, schema))?;
    let mut appender = db.appender(name)?;
    for b in batches.iter().filter(|b| b.num_rows() > 0) {
        appender.append_record_batch(to_duckdb_arrow(b)?)?;
    }
    appender.flush()?;
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "clickstream-export-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

async fn put(store: &dyn ObjectStore, key: &str, bytes: Vec<u8>) -> Result<()> {
    store.put(&Path::from(key), PutPayload::from(bytes)).await?;
    Ok(())
}

fn parquet_bytes(schema: &std::sync::Arc<Schema>, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buf, schema.clone(), None)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.close()?;
    Ok(buf)
}

fn csv_bytes(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buf);
        for b in batches {
            writer.write(b)?;
        }
    }
    Ok(buf)
}

/// `CREATE TABLE` for a gold schema in DuckDB types.
fn create_table_sql(name: &str, schema: &Schema) -> String {
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let ty = match f.data_type() {
                DataType::Int64 => "BIGINT",
                DataType::Int32 => "INTEGER",
                DataType::Float64 => "DOUBLE",
                DataType::Boolean => "BOOLEAN",
                DataType::Date32 => "DATE",
                DataType::Timestamp(_, Some(_)) => "TIMESTAMPTZ",
                _ => "VARCHAR",
            };
            format!(
                "\"{}\" {ty}{}",
                f.name(),
                if f.is_nullable() { "" } else { " NOT NULL" }
            )
        })
        .collect();
    format!(
        "CREATE OR REPLACE TABLE \"{name}\" ({});",
        columns.join(", ")
    )
}

/// Moves a batch from this crate's Arrow to DuckDB's Arrow (a different major version) through the
/// Arrow C data interface, without copying buffers.
fn to_duckdb_arrow(batch: &RecordBatch) -> Result<duckdb::arrow::record_batch::RecordBatch> {
    use arrow::array::Array as _;
    use duckdb::arrow::array::{Array as _, StructArray as DuckStructArray};
    let data = arrow::array::StructArray::from(batch.clone()).into_data();
    let (array, schema) = arrow::ffi::to_ffi(&data)?;
    // SAFETY: both types are the `#[repr(C)]` structs of the Arrow C data interface
    // (ArrowArray / ArrowSchema), identical in every arrow-rs version; ownership moves with them.
    let (array, schema): (
        duckdb::arrow::ffi::FFI_ArrowArray,
        duckdb::arrow::ffi::FFI_ArrowSchema,
    ) = unsafe {
        (
            std::mem::transmute::<arrow::ffi::FFI_ArrowArray, duckdb::arrow::ffi::FFI_ArrowArray>(
                array,
            ),
            std::mem::transmute::<arrow::ffi::FFI_ArrowSchema, duckdb::arrow::ffi::FFI_ArrowSchema>(
                schema,
            ),
        )
    };
    // SAFETY: `array` and `schema` were produced together by `to_ffi` above.
    let data = unsafe { duckdb::arrow::ffi::from_ffi(array, &schema) }
        .map_err(|e| Error::Export(format!("arrow ffi: {e}")))?;
    let array = DuckStructArray::from(data);
    debug_assert_eq!(array.len(), batch.num_rows());
    Ok(duckdb::arrow::record_batch::RecordBatch::from(array))
}
