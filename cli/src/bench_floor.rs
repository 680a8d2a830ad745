//! The floor of `bench pipeline`: the least work any pipeline does with the corpus. Read it,
//! parse every record into typed columns and write them as Parquet once; no Delta, no
//! validation beyond the types, no dedup, no sessions. Each run's ratio reads against it.

use std::borrow::Cow;
use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;

/// Rows per Parquet row group and per batch, as silver's writer holds them.
const ROWS_PER_BATCH: usize = 100_000;

/// The string columns of a record, in the order of the schema.
const STRING_COLUMNS: [&str; 10] = [
    "event_id",
    "event_type",
    "anonymous_id",
    "user_id",
    "session_id",
    "page_url",
    "referrer",
    "user_agent",
    "device_type",
    "country",
];

/// event_time as written: an RFC 3339 text or epoch milliseconds.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum EventTime<'a> {
    Text(#[serde(borrow)] Cow<'a, str>),
    Millis(i64),
}

/// The typed fields of one record, borrowed from it where the text has no escapes.
#[derive(serde::Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    event_time: Option<EventTime<'a>>,
    #[serde(borrow)]
    anonymous_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    session_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    page_url: Option<Cow<'a, str>>,
    #[serde(borrow)]
    referrer: Option<Cow<'a, str>>,
    #[serde(borrow)]
    user_agent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    device_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    country: Option<Cow<'a, str>>,
}

impl Record<'_> {
    fn strings(&self) -> [Option<&str>; STRING_COLUMNS.len()] {
        [
            &self.event_id,
            &self.event_type,
            &self.anonymous_id,
            &self.user_id,
            &self.session_id,
            &self.page_url,
            &self.referrer,
            &self.user_agent,
            &self.device_type,
            &self.country,
        ]
        .map(|s| s.as_deref())
    }

    fn event_time_micros(&self) -> Option<i64> {
        match self.event_time.as_ref()? {
            EventTime::Text(t) => chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.timestamp_micros()),
            EventTime::Millis(ms) => ms.checked_mul(1000),
        }
    }
}

/// What the floor run did.
pub struct Floor {
    /// Records parsed into a row.
    pub rows: usize,
    /// Lines that were not a JSON object of these types.
    pub unparsed: usize,
    /// Bytes of Parquet written.
    pub parquet_bytes: u64,
}

/// Reads `corpus` (NDJSON) line by line, parses each record into typed columns and writes them
/// to `out` as one Parquet file (snappy, delta-rs's default for the tables' appends).
pub fn floor(corpus: &Path, out: &Path) -> Result<Floor> {
    let schema = Arc::new(Schema::new(
        STRING_COLUMNS
            .iter()
            .map(|name| Field::new(*name, DataType::Utf8, true))
            .chain([Field::new(
                "event_time",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            )])
            .collect::<Vec<_>>(),
    ));
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROWS_PER_BATCH))
        .build();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(out)?,
        schema.clone(),
        Some(properties),
    )?;
    let mut strings: Vec<StringBuilder> = STRING_COLUMNS
        .iter()
        .map(|_| StringBuilder::new())
        .collect();
    let mut times = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let (mut rows, mut unparsed, mut in_batch) = (0, 0, 0);
    let flush = |strings: &mut Vec<StringBuilder>,
                 times: &mut TimestampMicrosecondBuilder,
                 writer: &mut ArrowWriter<std::fs::File>|
     -> Result<()> {
        let columns: Vec<ArrayRef> = strings
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef)
            .chain([Arc::new(times.finish()) as ArrayRef])
            .collect();
        writer.write(&RecordBatch::try_new(schema.clone(), columns)?)?;
        Ok(())
    };
    let reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(corpus)?);
    for line in reader.split(b'\n') {
        let line = line?;
        let Ok(record) = serde_json::from_slice::<Record>(&line) else {
            unparsed += 1;
            continue;
        };
        for (builder, value) in strings.iter_mut().zip(record.strings()) {
            builder.append_option(value);
        }
        times.append_option(record.event_time_micros());
        rows += 1;
        in_batch += 1;
        if in_batch == ROWS_PER_BATCH {
            flush(&mut strings, &mut times, &mut writer)?;
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        flush(&mut strings, &mut times, &mut writer)?;
    }
    writer.close()?;
    Ok(Floor {
        rows,
        unparsed,
        parquet_bytes: std::fs::metadata(out)?.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, TimestampMicrosecondArray};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    /// Each record becomes a typed row (both forms of event_time), and a line that is not a
    /// record is counted, not written.
    #[test]
    fn parses_records_into_typed_parquet() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("corpus.jsonl");
        std::fs::write(
            &corpus,
            concat!(
                r#"{"event_id":"a\"1","event_type":"page_view","event_time":"2026-01-02T03:04:05Z","country":"DE"}"#,
                "\nnot json\n",
                r#"{"event_id":"b","event_time":1767323045000,"extra":{"n":1}}"#,
                "\n"
            ),
        )
        .unwrap();
        let out = dir.path().join("floor.parquet");
        let floor = floor(&corpus, &out).unwrap();
        assert_eq!((floor.rows, floor.unparsed), (2, 1));
        let batches: Vec<RecordBatch> =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&out).unwrap())
                .unwrap()
                .build()
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let ids: Vec<_> = batch
            .column_by_name("event_id")
            .unwrap()
            .as_string::<i32>()
            .iter()
            .collect();
        assert_eq!(ids, [Some("a\"1"), Some("b")]);
        let times = batch
            .column_by_name("event_time")
            .unwrap()
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(times.value(0), 1_767_323_045_000_000);
        assert_eq!(times.value(1), 1_767_323_045_000_000);
        let countries = batch.column_by_name("country").unwrap().as_string::<i32>();
        assert_eq!((countries.value(0), countries.is_null(1)), ("DE", true));
    }
}
