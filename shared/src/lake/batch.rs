//! Arrow helpers: batches from and to row structs, batches conformed to a table's schema, plain string types, columns by name.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::{Error, Result};

/// A batch of `schema` from row structs ([`crate::rows`]), each field filling the column of its
/// name.
pub fn batch_of<T: serde::Serialize>(schema: &SchemaRef, rows: &[T]) -> Result<RecordBatch> {
    let batch = serde_arrow::to_record_batch(schema.fields(), &rows)?;
    // serde_arrow builds its own schema from the fields; the batch carries the table's.
    Ok(batch.with_schema(schema.clone())?)
}

/// The rows of `batches` as row structs ([`crate::rows`]), each field read from the column of its
/// name (columns no field names are skipped).
pub fn rows_of<T: serde::de::DeserializeOwned>(batches: &[RecordBatch]) -> Result<Vec<T>> {
    let mut rows = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for batch in batches {
        rows.extend(serde_arrow::from_record_batch::<Vec<T>>(batch)?);
    }
    Ok(rows)
}

/// The batch with its columns in `schema`'s order and that exact schema (Delta reads return
/// partition columns last).
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| Ok(batch.column(batch.schema().index_of(f.name())?).clone()))
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The batch with view, large and dictionary types (which query engines may return) cast to the
/// plain types of the table schemas, so readers see one type per column.
pub fn plain_types(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::datatypes::{DataType, Field, Schema};
    fn plain(t: &DataType) -> DataType {
        match t {
            DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
            DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
            DataType::Dictionary(_, v) => plain(v),
            other => other.clone(),
        }
    }
    let schema = batch.schema();
    if schema
        .fields()
        .iter()
        .all(|f| plain(f.data_type()) == *f.data_type())
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        let t = plain(f.data_type());
        columns.push(arrow::compute::cast(c, &t)?);
        fields.push(Field::new(f.name(), t, f.is_nullable()));
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The column `name` of `batch`, or an error naming it.
pub fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow::array::ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| missing_column(batch, name))
}

/// The error for a column `name` that `batch` lacks, naming the columns it has.
fn missing_column(batch: &RecordBatch, name: &str) -> Error {
    Error::Column {
        column: name.to_string(),
        reason: format!(
            "missing (the batch has {:?})",
            batch
                .schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
        ),
    }
}

/// The column `name` of `batch` as an array of type `A`, or an error naming it and its type.
pub fn typed_column<'a, A: arrow::array::Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a A> {
    let array = column(batch, name)?;
    array
        .as_any()
        .downcast_ref::<A>()
        .ok_or_else(|| Error::Column {
            column: name.to_string(),
            reason: format!(
                "has type {}, expected {}",
                array.data_type(),
                std::any::type_name::<A>()
                    .rsplit("::")
                    .next()
                    .unwrap_or_default()
            ),
        })
}

/// The Date32 value (days since 1970-01-01) of a date.
pub fn to_days(d: chrono::NaiveDate) -> i32 {
    arrow::datatypes::Date32Type::from_naive_date(d)
}

/// The date of a Date32 value (1970-01-01 for one out of chrono's range).
pub fn from_days(days: i32) -> chrono::NaiveDate {
    arrow::datatypes::Date32Type::to_naive_date_opt(days).unwrap_or_default()
}
