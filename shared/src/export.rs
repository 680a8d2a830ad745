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
/// `NAME.csv` and `NAME.parquet`, building them in a scratch directory under the system's
/// temporary directory.
pub async fn export(lake: &Lake) -> Result<ExportOutcome> {
    export_via(lake, &std::env::temp_dir()).await
}

/// [`export`], with its scratch directory under `temp`: removed however the export ends, so a
/// failed export does not fill a warm function's `/tmp`.
pub async fn export_via(lake: &Lake, temp: &std::path::Path) -> Result<ExportOutcome> {
    let store = lake.store()?;
    let mut outcome = ExportOutcome::default();
    let scratch = tempfile::Builder::new()
        .prefix("clickstream-export-")
        .tempdir_in(temp)?;
    let scratch = scratch.path();
    let db_path = scratch.join(DUCKDB_FILE);
    let db = duckdb::Connection::open(&db_path)?;
    for t in Table::GOLD {
        let batches = lake.read_table(t, &[], None).await?;
        let schema = t.schema();
        let batches = batches
            .iter()
            .map(|b| conform(b, &schema))
            .collect::<Result<Vec<_>>>()?;
        outcome.rows.insert(
            t.name().to_string(),
            batches.iter().map(RecordBatch::num_rows).sum(),
        );

        let parquet = parquet_bytes(&schema, &batches)?;
        let parquet_file = scratch.join(format!("{}.parquet", t.name()));
        std::fs::write(&parquet_file, &parquet)?;
        load_duckdb_table(&db, t.name(), &schema, &parquet_file)?;
        let parquet_key = format!("{EXPORTS_PREFIX}{}.parquet", t.name());
        put(&*store, &parquet_key, parquet).await?;
        let csv_key = format!("{EXPORTS_PREFIX}{}.csv", t.name());
        put(&*store, &csv_key, csv_bytes(&batches)?).await?;
        outcome.files.extend([parquet_key, csv_key]);
    }
    db.execute_batch("CHECKPOINT")?;
    drop(db);
    let db_key = format!("{EXPORTS_PREFIX}{DUCKDB_FILE}");
    put(&*store, &db_key, std::fs::read(&db_path)?).await?;
    outcome.files.push(db_key);
    Ok(outcome)
}

/// Creates (or replaces) table `name` in a DuckDB database, typed by `schema`, and fills it from
/// the Parquet file of the same rows, matching columns by name. DuckDB reads the file itself, so
/// no batch crosses from this crate's Arrow to DuckDB's (another major version).
pub fn load_duckdb_table(
    db: &duckdb::Connection,
    name: &str,
    schema: &Schema,
    parquet_file: &std::path::Path,
) -> Result<()> {
    let file = parquet_file.to_str().ok_or_else(|| Error::Export {
        path: parquet_file.to_path_buf(),
    })?;
    db.execute_batch(&format!(
        "{}\nINSERT INTO {} BY NAME SELECT * FROM read_parquet({});",
        create_table_sql(name, schema),
        quoted_identifier(name),
        quoted_literal(file),
    ))?;
    Ok(())
}

fn quoted_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quoted_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

async fn put(store: &dyn ObjectStore, key: &str, bytes: Vec<u8>) -> Result<()> {
    store.put(&Path::from(key), PutPayload::from(bytes)).await?;
    Ok(())
}

/// `batches` as one Parquet file of `schema`.
pub fn parquet_bytes(schema: &std::sync::Arc<Schema>, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut buf, schema.clone(), None)?;
    for b in batches {
        writer.write(b)?;
    }
    writer.close()?;
    Ok(buf)
}

/// `batches` as CSV with a header, each text cell made safe to open in a spreadsheet
/// ([`spreadsheet_safe`]).
fn csv_bytes(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    {
        let mut writer = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut buf);
        for b in batches {
            writer.write(&spreadsheet_safe(b)?)?;
        }
    }
    Ok(buf)
}

/// Characters that make a spreadsheet read a cell as a formula when they start it (OWASP's list
/// for CSV injection).
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// The batch with every text cell that starts with a [`FORMULA_STARTS`] character prefixed with
/// `'`, which spreadsheets show as text and do not evaluate. Only the CSV files get this; the
/// DuckDB file and Parquet keep the values as they are.
fn spreadsheet_safe(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::array::{Array, ArrayRef, StringArray};
    let columns = batch
        .columns()
        .iter()
        .map(|column| {
            let Some(text) = column.as_any().downcast_ref::<StringArray>() else {
                return column.clone();
            };
            if !text.iter().flatten().any(starts_a_formula) {
                return column.clone();
            }
            let safe: StringArray = text
                .iter()
                .map(|v| {
                    v.map(|v| {
                        if starts_a_formula(v) {
                            format!("'{v}")
                        } else {
                            v.to_string()
                        }
                    })
                })
                .collect();
            std::sync::Arc::new(safe) as ArrayRef
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

fn starts_a_formula(cell: &str) -> bool {
    cell.starts_with(FORMULA_STARTS)
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
                "{} {ty}{}",
                quoted_identifier(f.name()),
                if f.is_nullable() { "" } else { " NOT NULL" }
            )
        })
        .collect();
    format!(
        "CREATE OR REPLACE TABLE {} ({});",
        quoted_identifier(name),
        columns.join(", ")
    )
}

impl crate::telemetry::Measured for ExportOutcome {
    fn record(&self) {
        use crate::telemetry::{count, metric};
        count(metric::RECORDS_OUT, self.rows.values().sum());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn csv_cells_that_would_start_a_formula_are_text() {
        let schema = Arc::new(Schema::new(vec![
            arrow::datatypes::Field::new("utm_source", DataType::Utf8, true),
            arrow::datatypes::Field::new("sessions", DataType::Int64, false),
        ]));
        let values = [
            Some("=HYPERLINK(\"http://x\")"),
            Some("+1"),
            Some("-2+3"),
            Some("@SUM(A1)"),
            Some("\tx"),
            Some("google"),
            None,
        ];
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(arrow::array::StringArray::from(values.to_vec())),
                Arc::new(arrow::array::Int64Array::from(vec![-1; values.len()])),
            ],
        )
        .unwrap();
        let csv = String::from_utf8(csv_bytes(&[batch]).unwrap()).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines,
            [
                "utm_source,sessions",
                "\"'=HYPERLINK(\"\"http://x\"\")\",-1",
                "'+1,-1",
                "'-2+3,-1",
                "'@SUM(A1),-1",
                "'\tx,-1",
                "google,-1",
                ",-1",
            ]
        );
    }
}
