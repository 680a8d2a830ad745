//! gold/sessions as data files of one (session date, hour of session start) each: a run replaces
//! only the files of the hours its changed sessions start in, not whole dates.
//!
//! New events mostly change the sessions of the last hour, and a late event one session of an
//! earlier hour; rewriting a date's partition whole for either cost a warm run most of its time.
//! A file that holds several hours (written before this layout, by an erasure, or compacted by
//! maintenance) is rewritten as one file per hour the first time a run changes one of its rows.

use super::*;

/// Microseconds in an hour.
const HOUR_US: i64 = 3600 * 1_000_000;

/// The hour of its date (0..24) a session starting at `start` (µs since the epoch) belongs to.
fn start_hour(start: i64) -> u8 {
    (start.rem_euclid(DAY_US) / HOUR_US) as u8
}

/// One data file of gold/sessions with its rows, as a warm process keeps it.
pub(super) struct SessionFile {
    pub(super) file: AddedFile,
    pub(super) rows: RecordBatch,
}

/// Reads gold/sessions' data files of `dates` into the state, with their rows.
pub(super) async fn load_sessions(
    sessions: &DeltaTable,
    state: &mut GoldState,
    dates: &[i32],
) -> Result<()> {
    for d in dates {
        state.sessions.insert(*d, Vec::new());
    }
    if dates.is_empty() || !has_data_files(sessions) {
        return Ok(());
    }
    let files: Vec<AddedFile> = active_files(sessions, Table::Sessions)?
        .into_iter()
        .filter(|f| {
            partition_date(&f.partition_values, "session_date").is_some_and(|d| dates.contains(&d))
        })
        .collect();
    let read = read_data_files(sessions, &files, &[]).await?;
    let schema = Table::Sessions.schema();
    for (file, batches) in files.into_iter().zip(read) {
        let mut parts = Vec::with_capacity(batches.len());
        for b in batches {
            parts.push(crate::lake::conform(
                &with_partition_columns(b, &file, Table::Sessions)?,
                &schema,
            )?);
        }
        let rows = arrow::compute::concat_batches(&schema, &parts)?;
        let date = partition_date(&file.partition_values, "session_date");
        if let Some(held) = date.and_then(|d| state.sessions.get_mut(&d)) {
            held.push(SessionFile { file, rows });
        }
    }
    Ok(())
}

/// What a run writes to gold/sessions for the dates `lo..=hi` it recomputed.
pub(super) struct SessionsWrite {
    /// The data files it replaces.
    pub(super) removed: Vec<AddedFile>,
    /// The rows of each (date, hour) it rewrites: the replaced files' rows it keeps, and the
    /// recomputed sessions. Each goes to a data file of its own.
    pub(super) written: Vec<RecordBatch>,
    /// The rows of those dates in files it leaves as they are.
    pub(super) untouched: Vec<RecordBatch>,
}

impl SessionsWrite {
    /// Every session of the recomputed dates after the run.
    pub(super) fn sessions(&self) -> impl Iterator<Item = &RecordBatch> {
        self.untouched.iter().chain(&self.written)
    }

    /// Rows written.
    pub(super) fn rows(&self) -> usize {
        self.written.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Step 2: what replaces gold's sessions of the recomputed dates (held in the warm state): the
/// sessions inside a changed run (which that run's new sessions replace) and those of `rekeyed`
/// persons (all of whose runs on those dates are recomputed) go, and every file holding one of
/// them, or an hour a new session starts in, is rewritten with the rows of its hours.
pub(super) fn sessions_write(
    state: &GoldState,
    recomputed: &Resessionized,
    rekeyed: &HashSet<u128>,
) -> Result<SessionsWrite> {
    let mut changed_spans: HashMap<u128, Vec<(i64, i64)>> = HashMap::default();
    for r in &recomputed.changed_runs {
        changed_spans
            .entry(r.user)
            .or_default()
            .push((r.first, r.last));
    }
    let mut new_by_hour: BTreeMap<(i32, u8), Vec<&Session>> = BTreeMap::new();
    for s in &recomputed.sessions {
        new_by_hour
            .entry((s.date, start_hour(s.start)))
            .or_default()
            .push(s);
    }
    let mut plan = SessionsWrite {
        removed: Vec::new(),
        written: Vec::new(),
        untouched: Vec::new(),
    };
    let schema = Table::Sessions.schema();
    for d in recomputed.lo..=recomputed.hi {
        let files = state.sessions.get(&d).map_or(&[][..], Vec::as_slice);
        // Per file: which rows stay, and the hours its rows start in.
        let mut kept = Vec::with_capacity(files.len());
        let mut hours = Vec::with_capacity(files.len());
        let mut changed = vec![false; files.len()];
        for (i, f) in files.iter().enumerate() {
            let users = typed_column::<StringArray>(&f.rows, "user_key")?;
            let starts = typed_column::<TimestampMicrosecondArray>(&f.rows, "session_start")?;
            let ends = typed_column::<TimestampMicrosecondArray>(&f.rows, "session_end")?;
            let keep: BooleanArray = (0..f.rows.num_rows())
                .map(|r| {
                    let user = user_hash(users.value(r));
                    let replaced = rekeyed.contains(&user)
                        || changed_spans.get(&user).is_some_and(|spans| {
                            spans.iter().any(|(first, last)| {
                                starts.value(r) <= *last && ends.value(r) >= *first
                            })
                        });
                    Some(!replaced)
                })
                .collect();
            changed[i] = keep.false_count() > 0;
            kept.push(keep);
            hours.push(
                starts
                    .values()
                    .iter()
                    .map(|s| start_hour(*s))
                    .collect::<Vec<u8>>(),
            );
        }
        // The hours rewritten: those of new sessions and of every row of a replaced file; a
        // file holding a rewritten hour is replaced too (each hour stays in one file).
        let mut rewritten: BTreeSet<u8> = new_by_hour
            .range((d, 0)..=(d, u8::MAX))
            .map(|((_, h), _)| *h)
            .collect();
        let mut replaced = changed;
        loop {
            let mut grew = false;
            for (i, file_hours) in hours.iter().enumerate() {
                if !replaced[i] && file_hours.iter().any(|h| rewritten.contains(h)) {
                    replaced[i] = true;
                }
                if replaced[i] {
                    for h in file_hours {
                        grew |= rewritten.insert(*h);
                    }
                }
            }
            if !grew {
                break;
            }
        }
        for (i, f) in files.iter().enumerate() {
            if replaced[i] {
                plan.removed.push(f.file.clone());
            } else {
                plan.untouched.push(f.rows.clone());
            }
        }
        for h in rewritten {
            let mut parts = Vec::new();
            for (i, f) in files.iter().enumerate().filter(|(i, _)| replaced[*i]) {
                let in_hour: BooleanArray = hours[i]
                    .iter()
                    .zip(kept[i].values().iter())
                    .map(|(fh, keep)| Some(keep && *fh == h))
                    .collect();
                if in_hour.true_count() > 0 {
                    parts.push(arrow::compute::filter_record_batch(&f.rows, &in_hour)?);
                }
            }
            if let Some(sessions) = new_by_hour.get(&(d, h)) {
                parts.push(sessions_batch(sessions)?);
            }
            if !parts.is_empty() {
                plan.written
                    .push(arrow::compute::concat_batches(&schema, &parts)?);
            }
        }
    }
    Ok(plan)
}

impl GoldState {
    /// Takes a run's write to gold/sessions into the warm rows: the replaced files go, the
    /// `files` written (in the order of the write's batches) come in.
    pub(super) fn took_sessions(&mut self, write: SessionsWrite, files: &[AddedFile]) {
        let removed: HashSet<&str> = write.removed.iter().map(|f| f.path.as_str()).collect();
        for held in self.sessions.values_mut() {
            held.retain(|f| !removed.contains(f.file.path.as_str()));
        }
        for (file, rows) in files.iter().zip(write.written) {
            if let Some(d) = partition_date(&file.partition_values, "session_date") {
                self.sessions.entry(d).or_default().push(SessionFile {
                    file: file.clone(),
                    rows,
                });
            }
        }
    }
}
