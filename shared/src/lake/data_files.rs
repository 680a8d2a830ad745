//! Reading a table's Parquet data files directly (the files of some dates or commits, their
//! bloom filters first), with fetches sized for object stores.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use deltalake::DeltaTable;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use parquet::bloom_filter::Sbbf;

use super::batch::{column, plain_types, typed_column};
use super::commit::{AddedFile, added_files};
use super::table::Table;
use crate::error::{Error, Result};

/// Whether `table` has any data file (a read of an empty table is skipped).
pub fn has_data_files(table: &DeltaTable) -> bool {
    table.snapshot().is_ok_and(|s| s.log_data().num_files() > 0)
}

/// The rows commit `version` of `table` added as new data: `columns` of them, or every column
/// when `columns` is empty (partition columns are not in the files).
pub async fn read_added_rows(
    table: &DeltaTable,
    version: i64,
    columns: &[&str],
) -> Result<Vec<RecordBatch>> {
    let files = added_files(table, version).await?;
    Ok(read_data_files(table, &files, columns)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// Most commits one run of a stage (silver over bronze, gold over silver) takes.
pub const MAX_COMMITS_PER_RUN: usize = 200;

/// The data one commit added: each file with the rows it holds.
pub struct AddedData {
    /// The commit's version.
    pub version: i64,
    /// Its added files, each with `columns` of its rows.
    pub files: Vec<(AddedFile, Vec<RecordBatch>)>,
}

impl AddedData {
    /// The rows of every file.
    pub fn batches(&self) -> impl Iterator<Item = &RecordBatch> {
        self.files.iter().flat_map(|(_, batches)| batches)
    }
}

/// The commits of `table` above `done` (up to `latest`) that one run takes, at most
/// [`MAX_COMMITS_PER_RUN`] of them and `max_rows` rows by the commits' statistics (a commit is
/// never split: the first is taken whatever its size), each with `columns` of the rows it added
/// (every column when empty; partition columns are not in the files); and the last version taken
/// (`done` when none). A commit whose files lack statistics counts its rows once read.
pub async fn added_since(
    table: &DeltaTable,
    (done, latest): (i64, i64),
    columns: &[&str],
    max_rows: usize,
) -> Result<(Vec<AddedData>, i64)> {
    let mut commits = Vec::new();
    let mut rows = 0;
    let mut last = done;
    for version in done + 1..=latest {
        if commits.len() >= MAX_COMMITS_PER_RUN || rows >= max_rows {
            break;
        }
        let files = added_files(table, version).await?;
        let stated: Option<u64> = files.iter().map(|f| f.records).sum();
        if !commits.is_empty() && stated.is_some_and(|n| rows + n as usize > max_rows) {
            break;
        }
        let read = read_data_files(table, &files, columns).await?;
        let commit = AddedData {
            version,
            files: files.into_iter().zip(read).collect(),
        };
        rows += commit.batches().map(RecordBatch::num_rows).sum::<usize>();
        commits.push(commit);
        last = version;
    }
    Ok((commits, last))
}

/// How many data files [`fold_files`] reads at once: enough that a cold process's read of a
/// date's small files (one per commit until maintenance compacts them) waits for a few round trips
/// to the store, not dozens; each file is one or two requests and a few MB at most.
const PARALLEL_FILE_READS: usize = 32;

/// The rows of `table` (a `kind` table) whose date column `date_column` holds a date (Date32
/// days) that `wanted` accepts: `columns` of them in that order, or every column of the table's
/// schema when `columns` is empty. Read straight from the data files with the Parquet reader, no
/// query engine: on a table partitioned by `date_column` only the files of wanted dates, each
/// with only the columns asked for; on another table every file, its rows filtered. A fresh
/// process's first read costs what any later one does, with no session or plan to build.
pub async fn read_dates(
    table: &DeltaTable,
    kind: Table,
    date_column: &str,
    wanted: impl Fn(i32) -> bool,
    columns: &[&str],
) -> Result<Vec<RecordBatch>> {
    use arrow::array::{Array, ArrayRef, BooleanArray, Date32Array};
    use arrow::datatypes::{Field, Schema};

    let schema = kind.schema();
    let columns: Vec<&str> = if columns.is_empty() {
        schema.fields().iter().map(|f| f.name().as_str()).collect()
    } else {
        columns.to_vec()
    };
    let partitioned = kind.partition_columns().contains(&date_column);
    // Partition values live in the log, not in the data files.
    let mut file_columns: Vec<String> = columns
        .iter()
        .filter(|c| !kind.partition_columns().contains(c))
        .map(|c| c.to_string())
        .collect();
    if !partitioned && !file_columns.iter().any(|c| c == date_column) {
        file_columns.push(date_column.to_string());
    }

    let files =
        fold_date_files(table, kind, date_column, &wanted, file_columns, push_batch).await?;
    let mut out = Vec::new();
    for (date, batches) in files {
        for mut batch in batches {
            if !partitioned {
                let dates = typed_column::<Date32Array>(&batch, date_column)?;
                let keep: BooleanArray =
                    dates.iter().map(|d| Some(d.is_some_and(&wanted))).collect();
                batch = arrow::compute::filter_record_batch(&batch, &keep)?;
            }
            let mut fields = Vec::with_capacity(columns.len());
            let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
            for &name in &columns {
                let array: ArrayRef = match date {
                    Some(d) if name == date_column => {
                        Arc::new(Date32Array::from(vec![d; batch.num_rows()]))
                    }
                    _ => column(&batch, name)?.clone(),
                };
                let field = schema
                    .field_with_name(name)
                    .ok()
                    .filter(|f| f.data_type() == array.data_type())
                    .cloned()
                    .unwrap_or_else(|| Field::new(name, array.data_type().clone(), true));
                fields.push(field);
                arrays.push(array);
            }
            out.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?);
        }
    }
    Ok(out)
}

/// Every row of `table` (a `kind` table without partitions), with `columns` of the table (every
/// column when empty) in plain types: for the state tables a process reads whole on a cold start.
pub async fn read_whole(
    table: &DeltaTable,
    kind: Table,
    columns: &[&str],
) -> Result<Vec<RecordBatch>> {
    let schema = kind.schema();
    let columns = if columns.is_empty() {
        schema.fields().iter().map(|f| f.name().clone()).collect()
    } else {
        columns.iter().map(|c| c.to_string()).collect()
    };
    let files = fold_date_files(table, kind, "", |_| true, columns, push_batch).await?;
    Ok(files.into_iter().flat_map(|(_, batches)| batches).collect())
}

/// Each data file of `table` (a `kind` table) that may hold a date `wanted` accepts, read with
/// the columns `file_columns` in plain types ([`plain_types`]) and folded batch by batch into a
/// `T` by `fold`, in the file's own task as its bytes arrive: the files' decoding runs on every
/// core, beside the requests still under way, and a file's rows need not all be in memory at once.
/// On a table partitioned by `date_column`, the files of wanted dates, each with its date; on
/// another table every file, with no date (its rows are not filtered here).
async fn fold_date_files<T, F>(
    table: &DeltaTable,
    kind: Table,
    date_column: &str,
    wanted: impl Fn(i32) -> bool,
    file_columns: Vec<String>,
    fold: F,
) -> Result<Vec<(Option<i32>, T)>>
where
    T: Default + Send + 'static,
    F: Fn(&mut T, RecordBatch) -> Result<()> + Send + Sync + 'static,
{
    let partitioned = kind.partition_columns().contains(&date_column);
    let snapshot = table.snapshot().map_err(Error::delta(kind.path()))?;
    let mut files = Vec::new();
    for file in snapshot.log_data().iter() {
        let date = if partitioned {
            match partition_date(&file.partition_values_map(), date_column) {
                Some(d) if wanted(d) => Some(d),
                _ => continue,
            }
        } else {
            None
        };
        files.push((file.path().into_owned(), file.size() as u64, date));
    }

    fold_files(
        table.object_store(),
        files,
        FileColumns::Only(file_columns),
        FirstFetch::FOOTER,
        fold,
    )
    .await
}

/// The fold of [`fold_files`] that keeps a file's batches as they are.
fn push_batch(batches: &mut Vec<RecordBatch>, batch: RecordBatch) -> Result<()> {
    batches.push(batch);
    Ok(())
}

/// The columns [`fold_files`] reads.
enum FileColumns {
    /// Every column of the file.
    All,
    /// These columns (a name the file lacks is left out).
    Only(Vec<String>),
}

/// `files` (path, size and a tag each) of one table's `store`, each read with `columns` in plain
/// types ([`plain_types`]) and folded batch by batch into a `T` by `fold` in the file's own task,
/// [`PARALLEL_FILE_READS`] at once; in `files`' order, each with its tag. Each file's first request
/// is `first` (the whole file, or its end with the footer); then the columns' ranges not in it.
async fn fold_files<K, T, F>(
    store: Arc<dyn ObjectStore>,
    files: Vec<(String, u64, K)>,
    columns: FileColumns,
    first: FirstFetch,
    fold: F,
) -> Result<Vec<(K, T)>>
where
    K: Send + 'static,
    T: Default + Send + 'static,
    F: Fn(&mut T, RecordBatch) -> Result<()> + Send + Sync + 'static,
{
    let (columns, fold) = (Arc::new(columns), Arc::new(fold));
    each_file(store, files, first, move |_, file| {
        let (columns, fold) = (columns.clone(), fold.clone());
        async move { fold_rows(file, &columns, fold.as_ref()).await }
    })
    .await
}

/// The async Parquet reader of one data file, its metadata loaded.
type FileReader = parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder<DataFileReader>;

/// `files` (path, size and a tag each) of one table's `store`, each opened (its metadata loaded)
/// and handed to `read` with its tag in its own task, [`PARALLEL_FILE_READS`] at once; in `files`'
/// order, each with its tag. Each file's first request is `first`.
async fn each_file<K, T, R, Fut>(
    store: Arc<dyn ObjectStore>,
    files: Vec<(String, u64, K)>,
    first: FirstFetch,
    read: R,
) -> Result<Vec<(K, T)>>
where
    K: Send + 'static,
    T: Send + 'static,
    R: Fn(&K, FileReader) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T>> + Send + 'static,
{
    use futures::StreamExt;
    use parquet::arrow::arrow_reader::ArrowReaderOptions;

    let read = Arc::new(read);
    let reads = files.into_iter().map(|(path, size, tag)| {
        let (store, read) = (store.clone(), read.clone());
        tokio::spawn(async move {
            let reader = DataFileReader::new(store, &path, size, first);
            // The Parquet types, not the Arrow schema a writer embedded: strings decode straight
            // to the plain `Utf8` the stages read rather than to views cast afterwards.
            let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
            let file = FileReader::new_with_options(reader, options).await?;
            let read = read(&tag, file);
            Ok::<_, Error>((tag, read.await?))
        })
    });
    let mut read = futures::stream::iter(reads).buffered(PARALLEL_FILE_READS);
    let mut out = Vec::new();
    while let Some(joined) = read.next().await {
        match joined {
            Ok(read) => out.push(read?),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(Error::Io(std::io::Error::other(e))),
        }
    }
    Ok(out)
}

/// One opened file's `columns` in plain types ([`plain_types`]), folded batch by batch into a `T`
/// by `fold`.
async fn fold_rows<T, F>(file: FileReader, columns: &FileColumns, fold: &F) -> Result<T>
where
    T: Default,
    F: Fn(&mut T, RecordBatch) -> Result<()>,
{
    use futures::TryStreamExt;
    use parquet::arrow::ProjectionMask;

    let mut file = file;
    if let FileColumns::Only(names) = columns {
        let mask = ProjectionMask::columns(file.parquet_schema(), names.iter().map(String::as_str));
        file = file.with_projection(mask);
    }
    let mut batches = file.build()?;
    let mut folded = T::default();
    while let Some(batch) = batches.try_next().await? {
        fold(&mut folded, plain_types(&batch)?)?;
    }
    Ok(folded)
}

/// What [`filters_or_fold`] found in one data file.
pub enum FiltersOrRows<T> {
    /// The file's bloom filters of the column.
    Filters {
        /// One per row group.
        filters: Vec<Sbbf>,
        /// The file's row count.
        rows: u64,
    },
    /// The column's values, folded: a row group has no filter of the column (a file written
    /// before the table had them), or the caller chose to read the file.
    Rows(T),
}

/// For each of `files` (path, size and a tag each) of `table`: its bloom filters of `column`,
/// read with its footer (one request when the writer put them at the file's end, as
/// [`Table::writer_properties`] does); or that column read and folded by `fold`, as [`read_dates`]
/// reads columns, for a file without filters and for one whose tag and row count `read_rows`
/// accepts. The files are read at once, in `files`' order.
pub async fn filters_or_fold<K, T, F, R>(
    table: &DeltaTable,
    files: Vec<(String, u64, K)>,
    column: &str,
    read_rows: R,
    fold: F,
) -> Result<Vec<(K, FiltersOrRows<T>)>>
where
    K: Send + 'static,
    T: Default + Send + 'static,
    F: Fn(&mut T, RecordBatch) -> Result<()> + Send + Sync + 'static,
    R: Fn(&K, u64) -> bool + Send + Sync + 'static,
{
    let columns = Arc::new(FileColumns::Only(vec![column.to_string()]));
    let fold = Arc::new(fold);
    let first = FirstFetch {
        end_share: Some(BLOOM_FILTER_END_SHARE),
        ..FirstFetch::FOOTER
    };
    each_file(table.object_store(), files, first, move |tag, mut file| {
        let (columns, fold) = (columns.clone(), fold.clone());
        let rows = file.metadata().file_metadata().num_rows().max(0) as u64;
        let wanted = read_rows(tag, rows);
        async move {
            if !wanted && let Some(filters) = bloom_filters(&mut file, &columns).await? {
                return Ok(FiltersOrRows::Filters { filters, rows });
            }
            Ok(FiltersOrRows::Rows(
                fold_rows(file, &columns, fold.as_ref()).await?,
            ))
        }
    })
    .await
}

/// An opened file's bloom filters of the one column in `columns`, one per row group; none when a
/// row group has no filter of it, or the file no such column.
async fn bloom_filters(file: &mut FileReader, columns: &FileColumns) -> Result<Option<Vec<Sbbf>>> {
    let FileColumns::Only(names) = columns else {
        return Ok(None);
    };
    let Some(name) = names.first() else {
        return Ok(None);
    };
    let Some(column) = file
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.path().string() == *name)
    else {
        return Ok(None);
    };
    let mut filters = Vec::with_capacity(file.metadata().num_row_groups());
    for row_group in 0..file.metadata().num_row_groups() {
        match file
            .get_row_group_column_bloom_filter(row_group, column)
            .await?
        {
            Some(filter) => filters.push(filter),
            None => return Ok(None),
        }
    }
    Ok(Some(filters))
}

/// Bytes of a data file's end fetched with its footer: in one request, the footer and the
/// metadata of the files the stages write.
const FOOTER_PREFETCH: usize = 64 * 1024;

/// The share of a file's bytes its bloom filters take at most, as [`Table::writer_properties`]
/// writes them (about 2.6 bytes per value, up to twice that once rounded to a power of two,
/// against some 24 bytes per silver row): a lookup of a file's filters fetches this much of its
/// end with the footer, so the filters come in the same request.
const BLOOM_FILTER_END_SHARE: u64 = 4;

/// What [`DataFileReader`]'s first request fetches: the whole file when it is no larger than
/// `whole_up_to`, else its end with the footer, [`FOOTER_PREFETCH`] bytes or `1 / end_share` of
/// the file, whichever is more.
#[derive(Debug, Clone, Copy)]
struct FirstFetch {
    whole_up_to: u64,
    end_share: Option<u64>,
}

impl FirstFetch {
    /// The footer and what lies near it; a file no larger than that, whole.
    const FOOTER: FirstFetch = FirstFetch {
        whole_up_to: FOOTER_PREFETCH as u64,
        end_share: None,
    };
    /// The whole file.
    const WHOLE: FirstFetch = FirstFetch {
        whole_up_to: u64::MAX,
        end_share: None,
    };

    /// Bytes of the end of a file of `size` bytes fetched with its footer.
    fn end_bytes(self, size: u64) -> usize {
        let share = self.end_share.map_or(0, |share| size / share.max(1));
        FOOTER_PREFETCH.max(usize::try_from(share).unwrap_or(usize::MAX))
    }
}

/// One data file of a table for the async Parquet reader: ranges of it fetched from the store, the
/// metadata with one request (its size is known from the log), which also fetches the rest of the
/// file's end ([`FirstFetch`]) and keeps it (a bloom filter written at the end is there). A file no
/// larger than `first.whole_up_to` is fetched whole with that request and read from memory, so it
/// costs one request, not two.
struct DataFileReader {
    store: Arc<dyn ObjectStore>,
    path: Path,
    size: u64,
    first: FirstFetch,
    /// The bytes fetched with the metadata, from this offset: the whole file or its end.
    kept: Option<(u64, bytes::Bytes)>,
}

impl DataFileReader {
    fn new(
        store: Arc<dyn ObjectStore>,
        path: &str,
        size: u64,
        first: FirstFetch,
    ) -> DataFileReader {
        DataFileReader {
            store,
            path: Path::from(path),
            size,
            first,
            kept: None,
        }
    }

    /// `range` of the bytes kept, when they hold it.
    fn cached(&self, range: &std::ops::Range<u64>) -> Option<bytes::Bytes> {
        let (start, kept) = self.kept.as_ref()?;
        (range.start >= *start && range.end <= start + kept.len() as u64)
            .then(|| kept.slice((range.start - start) as usize..(range.end - start) as usize))
    }
}

/// A store failure as the Parquet reader's error.
fn store_error(e: object_store::Error) -> parquet::errors::ParquetError {
    parquet::errors::ParquetError::External(Box::new(e))
}

impl parquet::arrow::async_reader::AsyncFileReader for DataFileReader {
    fn get_bytes(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        Box::pin(async move {
            if let Some(bytes) = self.cached(&range) {
                return Ok(bytes);
            }
            let start = range.start;
            let bytes = self
                .store
                .get_range(&self.path, range.clone())
                .await
                .map_err(store_error)?;
            // The file's end, fetched for the footer: kept for what else lies there.
            if range.end == self.size && self.kept.is_none() {
                self.kept = Some((start, bytes.clone()));
            }
            Ok(bytes)
        })
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<std::ops::Range<u64>>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<Vec<bytes::Bytes>>> {
        Box::pin(async move {
            if let Some(cached) = ranges.iter().map(|r| self.cached(r)).collect() {
                return Ok(cached);
            }
            self.store
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(store_error)
        })
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a parquet::arrow::arrow_reader::ArrowReaderOptions>,
    ) -> futures::future::BoxFuture<
        'a,
        parquet::errors::Result<Arc<parquet::file::metadata::ParquetMetaData>>,
    > {
        Box::pin(async move {
            let size = self.size;
            if size <= self.first.whole_up_to && self.kept.is_none() {
                let whole = self.store.get_range(&self.path, 0..size).await;
                self.kept = Some((0, whole.map_err(store_error)?));
            }
            let metadata = parquet::file::metadata::ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .with_prefetch_hint(Some(self.first.end_bytes(size)))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        })
    }
}

/// The date (Date32 days) an added file's partition values give `column`, if any.
pub fn partition_date(parts: &HashMap<String, Option<String>>, column: &str) -> Option<i32> {
    let text = parts.get(column)?.as_deref()?;
    let date = text.parse::<chrono::NaiveDate>().ok()?;
    Some(arrow::datatypes::Date32Type::from_naive_date(date))
}

/// The rows of `files` of `table` (partition columns are not in the files): `columns` of them, or
/// every column when `columns` is empty; one list of batches per file, in `files`' order. Each
/// file is fetched whole in one request (the stages read most of a file's bytes) and decoded in
/// its own task, the files at once.
pub async fn read_data_files(
    table: &DeltaTable,
    files: &[AddedFile],
    columns: &[&str],
) -> Result<Vec<Vec<RecordBatch>>> {
    let columns = if columns.is_empty() {
        FileColumns::All
    } else {
        FileColumns::Only(columns.iter().map(|c| c.to_string()).collect())
    };
    let files = files.iter().map(|f| (f.path.clone(), f.size, ())).collect();
    let read = fold_files(
        table.object_store(),
        files,
        columns,
        FirstFetch::WHOLE,
        push_batch,
    )
    .await?;
    Ok(read.into_iter().map(|((), batches)| batches).collect())
}
