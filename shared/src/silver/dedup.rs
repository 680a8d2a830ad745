//! Silver's dedup index: which event_ids silver holds on which dates, kept warm between runs
//! and brought to the table's snapshot each run (see [`DedupIndex`]).

use std::collections::{HashMap, HashSet};

use arrow::array::StringArray;
use arrow::record_batch::RecordBatch;
use deltalake::DeltaTable;
use parquet::bloom_filter::Sbbf;

use crate::error::{Error, Result};
use crate::lake::{
    AddedFile, FiltersOrRows, Table, filters_or_fold, partition_date, read_data_files, typed_column,
};

/// One valid event of a run, as the dedup looks it up.
pub(super) struct Probe<'a> {
    /// Its event_date (Date32 days).
    pub(super) date: i32,
    pub(super) id: &'a str,
    pub(super) hash: u128,
}

/// Which of silver's event_ids are on which event_date, for the dates recent runs touched: per
/// date, the ids read so far as 128-bit hashes (xxh3; a false match among a billion ids has a
/// probability near 1e-20), and each file of the date in the table's snapshot with its Parquet
/// bloom filters of event_id until its ids are read.
///
/// A run brings the dates its events need (their own and the adjacent ones) to the snapshot it
/// read ([`DedupIndex::sync`]) and looks up the files the index lacks: a file's filters come with
/// its footer, one request, so a fresh process's first run costs about what its batch does, not
/// what three dates of ids do. Only files whose filters may hold one of the run's ids are read
/// ([`DedupIndex::to_read`]). The snapshot is the truth, so other writers' files join the index
/// when a run needs their date, whatever happened between runs; a file compacted away leaves it
/// (its ids stay: silver never deletes rows, they are in the compacted file).
pub(crate) struct DedupIndex {
    /// The silver table's URL and Delta table id.
    table: String,
    dates: HashMap<i32, DateIds>,
}

/// What the index knows of one date.
#[derive(Default)]
struct DateIds {
    /// The ids of every file read, and those this process wrote.
    read: IdSet,
    /// The date's files in the snapshot, by path.
    files: HashMap<String, FileState>,
}

/// A file of a date in the index.
enum FileState {
    /// Its ids are in the date's set.
    Read,
    /// Only its bloom filters of event_id are held.
    Filtered {
        filters: Vec<Sbbf>,
        rows: u64,
        size: u64,
    },
}

/// A silver data file to look up or read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct SilverFile {
    /// Its `event_date` partition (Date32 days).
    date: i32,
    /// Its path in the table.
    path: String,
    /// Its size in bytes.
    size: u64,
}

/// A set of event id hashes. The ids are xxh3 hashes already, so the set hashes them with
/// foldhash's fast fixed hasher rather than SipHash, which took most of a cold index build.
type IdSet = HashSet<u128, foldhash::fast::FixedState>;

/// Dates the index keeps; past it, the dates furthest from the newest are dropped.
const MAX_INDEXED_DATES: usize = 40;
/// A file is read rather than probed when a run has more than one id to probe in it per this many
/// of its rows: probing costs about what reading does then, and the file's ids stay known.
const ROWS_PER_PROBE: u64 = 8;

impl DedupIndex {
    /// The index `cache` holds for `silver`; a new one when it holds none or another table's.
    pub(super) fn of<'a>(
        cache: &'a mut Option<DedupIndex>,
        silver: &DeltaTable,
    ) -> &'a mut DedupIndex {
        // The table's id as well as its URL: a table deleted and created again is another table.
        let id = silver.snapshot().map(|s| s.metadata().id().to_string());
        let table = format!("{}#{}", silver.table_url(), id.unwrap_or_default());
        if cache.as_ref().is_none_or(|c| c.table != table) {
            *cache = Some(DedupIndex {
                table,
                dates: HashMap::new(),
            });
        }
        cache.as_mut().expect("cache was just filled")
    }

    /// Brings `dates` to `silver`'s snapshot: their files no longer in it leave the index; those
    /// the index lacks are returned, to look up.
    pub(super) fn sync(
        &mut self,
        silver: &DeltaTable,
        dates: &HashSet<i32>,
    ) -> Result<Vec<SilverFile>> {
        let snapshot = silver
            .snapshot()
            .map_err(Error::delta(Table::Silver.path()))?;
        let mut current: HashMap<i32, HashSet<String>> =
            dates.iter().map(|&d| (d, HashSet::new())).collect();
        let mut unknown = Vec::new();
        for file in snapshot.log_data().iter() {
            let Some(date) = partition_date(&file.partition_values_map(), "event_date") else {
                continue;
            };
            let Some(paths) = current.get_mut(&date) else {
                continue;
            };
            let path = file.path().into_owned();
            let known = self
                .dates
                .get(&date)
                .is_some_and(|d| d.files.contains_key(&path));
            if !known {
                unknown.push(SilverFile {
                    date,
                    path: path.clone(),
                    size: file.size() as u64,
                });
            }
            paths.insert(path);
        }
        for (date, paths) in current {
            let files = &mut self.dates.entry(date).or_default().files;
            files.retain(|path, _| paths.contains(path));
        }
        Ok(unknown)
    }

    /// Holds what was looked up or read of some files.
    pub(super) fn hold(&mut self, files: Vec<(SilverFile, Looked)>) {
        for (SilverFile { date, path, size }, looked) in files {
            let date_ids = self.dates.entry(date).or_default();
            let state = match looked {
                Looked::Filters { filters, rows } => FileState::Filtered {
                    filters,
                    rows,
                    size,
                },
                Looked::Hashes(hashes) => {
                    date_ids.read.extend(hashes);
                    FileState::Read
                }
            };
            date_ids.files.insert(path, state);
        }
    }

    /// The files whose ids a run with `probes` needs read: those whose filters may hold one of
    /// its ids on their date or an adjacent one (an id the index holds needs no file), and those
    /// the run has so many ids for that probing would cost about what reading does.
    pub(super) fn to_read(&self, probes: &[Probe<'_>]) -> Vec<SilverFile> {
        let near = probes_near(probes);
        let mut to_read = HashSet::new();
        for (&date, date_ids) in &self.dates {
            for (path, file) in &date_ids.files {
                if let FileState::Filtered { rows, size, .. } = file
                    && reads_rather_than_probes(&near, date, *rows)
                {
                    to_read.insert(SilverFile {
                        date,
                        path: path.clone(),
                        size: *size,
                    });
                }
            }
        }
        for p in probes {
            if self.holds_near(p.date, p.hash) {
                continue;
            }
            for d in p.date - 1..=p.date + 1 {
                let Some(date_ids) = self.dates.get(&d) else {
                    continue;
                };
                for (path, file) in &date_ids.files {
                    if let FileState::Filtered { filters, size, .. } = file
                        && filters.iter().any(|f| f.check(p.id))
                    {
                        to_read.insert(SilverFile {
                            date: d,
                            path: path.clone(),
                            size: *size,
                        });
                    }
                }
            }
        }
        to_read.into_iter().collect()
    }

    /// Whether `id` is among the ids held for `date` or an adjacent date.
    pub(super) fn holds_near(&self, date: i32, id: u128) -> bool {
        (date - 1..=date + 1).any(|d| self.dates.get(&d).is_some_and(|ids| ids.read.contains(&id)))
    }

    /// Holds the files of the commit `written` made from the snapshot at `read_version`, with the
    /// `kept` (date, id hash) it wrote. When another writer committed in between, the files are
    /// not told apart from that writer's: the next run looks them up instead.
    pub(super) fn written(
        &mut self,
        read_version: i64,
        written: &DeltaTable,
        kept: &[(i32, u128)],
    ) -> Result<()> {
        if written.version().map_or(-1, |v| v as i64) != read_version + 1 {
            return Ok(());
        }
        let mut by_date: HashMap<i32, Vec<u128>> = HashMap::new();
        for &(date, id) in kept {
            by_date.entry(date).or_default().push(id);
        }
        let snapshot = written
            .snapshot()
            .map_err(Error::delta(Table::Silver.path()))?;
        for file in snapshot.log_data().iter() {
            let Some(date) = partition_date(&file.partition_values_map(), "event_date") else {
                continue;
            };
            let (Some(ids), Some(date_ids)) = (by_date.get(&date), self.dates.get_mut(&date))
            else {
                continue;
            };
            let path = file.path();
            if !date_ids.files.contains_key(path.as_ref()) {
                date_ids.read.extend(ids.iter().copied());
                date_ids.files.insert(path.into_owned(), FileState::Read);
            }
        }
        Ok(())
    }

    /// Drops the dates furthest from the newest, beyond [`MAX_INDEXED_DATES`], except `keep`.
    pub(super) fn evict(&mut self, keep: &HashSet<i32>) {
        if self.dates.len() <= MAX_INDEXED_DATES {
            return;
        }
        let mut dates: Vec<i32> = self
            .dates
            .keys()
            .copied()
            .filter(|d| !keep.contains(d))
            .collect();
        dates.sort_unstable();
        let excess = self.dates.len() - MAX_INDEXED_DATES;
        for d in dates.into_iter().take(excess) {
            self.dates.remove(&d);
        }
    }
}

/// How many of a run's `probes` each date's files are probed for: those on the date or an
/// adjacent one.
fn probes_near(probes: &[Probe<'_>]) -> HashMap<i32, u64> {
    let mut near: HashMap<i32, u64> = HashMap::new();
    for p in probes {
        for d in p.date - 1..=p.date + 1 {
            *near.entry(d).or_default() += 1;
        }
    }
    near
}

/// Whether a file of `date` with `rows` rows is read rather than probed, for a run probing it
/// `near[date]` times: more than one probe per [`ROWS_PER_PROBE`] rows.
fn reads_rather_than_probes(near: &HashMap<i32, u64>, date: i32, rows: u64) -> bool {
    let probing = near.get(&date).copied().unwrap_or(0);
    probing > 0 && probing.saturating_mul(ROWS_PER_PROBE) > rows
}

/// What was looked up or read of one silver file.
pub(super) enum Looked {
    /// Its bloom filters of event_id (one per row group) and its row count.
    Filters { filters: Vec<Sbbf>, rows: u64 },
    /// The hashes of its event_ids.
    Hashes(Vec<u128>),
}

/// Each of `files`' bloom filters of event_id, read with its footer; the ids of a file without
/// them (written before silver wrote filters), or with so few rows for the run's `probes` that
/// probing would cost what reading does ([`reads_rather_than_probes`]), hashed in the file's own
/// task.
pub(super) async fn look_up_files(
    silver: &DeltaTable,
    files: Vec<SilverFile>,
    probes: &[Probe<'_>],
) -> Result<Vec<(SilverFile, Looked)>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let files = files
        .into_iter()
        .map(|file| (file.path.clone(), file.size, file))
        .collect();
    let near = probes_near(probes);
    let read_rows = move |file: &SilverFile, rows| reads_rather_than_probes(&near, file.date, rows);
    let looked = filters_or_fold(silver, files, "event_id", read_rows, push_hashes).await?;
    Ok(looked
        .into_iter()
        .map(|(file, found)| {
            let looked = match found {
                FiltersOrRows::Filters { filters, rows } => Looked::Filters { filters, rows },
                FiltersOrRows::Rows(hashes) => Looked::Hashes(hashes),
            };
            (file, looked)
        })
        .collect())
}

/// The hashes of the event_ids in `files`, each fetched whole and decoded in its own task.
pub(super) async fn read_ids(
    silver: &DeltaTable,
    files: Vec<SilverFile>,
) -> Result<Vec<(SilverFile, Looked)>> {
    if files.is_empty() {
        return Ok(Vec::new());
    }
    let added: Vec<AddedFile> = files
        .iter()
        .map(|file| AddedFile {
            path: file.path.clone(),
            size: file.size,
            partition_values: HashMap::new(),
            records: None,
        })
        .collect();
    let read = read_data_files(silver, &added, &["event_id"]).await?;
    let mut out = Vec::with_capacity(files.len());
    for (file, batches) in files.into_iter().zip(read) {
        let mut hashes = Vec::new();
        for batch in batches {
            push_hashes(&mut hashes, batch)?;
        }
        out.push((file, Looked::Hashes(hashes)));
    }
    Ok(out)
}

pub(super) fn hash_id(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

/// Adds the hashes of a batch's `event_id`s to `hashes`.
fn push_hashes(hashes: &mut Vec<u128>, batch: RecordBatch) -> Result<()> {
    let ids = typed_column::<StringArray>(&batch, "event_id")?;
    hashes.extend(ids.iter().flatten().map(hash_id));
    Ok(())
}
