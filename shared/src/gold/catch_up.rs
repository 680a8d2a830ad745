//! Gold's incremental catch-up: the silver rows above gold's watermark, the sessions and daily
//! figures they change, and one commit per gold table that replaces exactly those.

use super::*;

/// New silver rows above `done` (see [`added_since`]) with the event date of each batch
/// (partition values are not in the files), and the last version taken.
async fn added_silver_rows(
    silver: &DeltaTable,
    done: i64,
    latest: i64,
) -> Result<(Vec<RecordBatch>, Vec<Option<i32>>, i64)> {
    let columns: Vec<&str> = SESSION_INPUT.iter().chain(&PEOPLE_INPUT).copied().collect();
    let (commits, last) = added_since(silver, (done, latest), &columns, MAX_ROWS_PER_RUN).await?;
    let mut batches = Vec::new();
    let mut dates = Vec::new();
    for (file, file_batches) in commits.into_iter().flat_map(|c| c.files) {
        let date =
            partition_date(&file.partition_values, "event_date").ok_or_else(|| Error::Column {
                column: "event_date".into(),
                reason: format!(
                    "silver file {} has no event_date partition value",
                    file.path
                ),
            })?;
        for b in file_batches {
            dates.push(Some(date));
            batches.push(b);
        }
    }
    Ok((batches, dates, last))
}

/// What one run writes to each gold table, replacing the dates `dates` (daily_metrics up to
/// `metrics_to`, as far as a 30-day window reaches a recomputed date; daily_users only appends;
/// anonymous_ids appends, or rewrites its live rows when `compacted`).
struct RunBatches {
    /// The touched dates' session rows, a batch per date.
    sessions: Vec<RecordBatch>,
    daily_users: RecordBatch,
    funnel: RecordBatch,
    pages: RecordBatch,
    metrics: RecordBatch,
    anonymous_ids: RecordBatch,
    compacted: bool,
    dates: (i32, i32),
    metrics_to: i32,
}

impl RunBatches {
    /// Commits each table still below silver version `last` (see [`OpenGold::commit`]), with
    /// the watermark, and counts what was written in `outcome`.
    async fn commit(
        self,
        lake: &Lake,
        gold: OpenGold,
        last: i64,
        outcome: &mut GoldOutcome,
    ) -> Result<Committed> {
        let (lo, hi) = self.dates;
        outcome.dates = Some((from_days(lo), from_days(hi)));
        outcome.sessions = self.sessions.iter().map(RecordBatch::num_rows).sum();
        outcome.daily_metrics = self.metrics.num_rows();
        outcome.funnel_daily = self.funnel.num_rows();
        outcome.page_daily = self.pages.num_rows();
        let meta = json!({ "silver_version": last, "from": from_days(lo), "to": from_days(hi) });
        let dates = |column| Replacing::Dates {
            column,
            from: lo,
            to: hi,
        };
        gold.commit(lake, last, meta, |t| match t {
            Table::Sessions => (self.sessions.clone(), dates("session_date")),
            Table::DailyMetrics => {
                let replaced = Replacing::Dates {
                    column: "date",
                    from: lo,
                    to: self.metrics_to,
                };
                (vec![self.metrics.clone()], replaced)
            }
            Table::FunnelDaily => (vec![self.funnel.clone()], dates("date")),
            Table::PageDaily => (vec![self.pages.clone()], dates("date")),
            Table::AnonymousIds if self.compacted => {
                (vec![self.anonymous_ids.clone()], Replacing::All)
            }
            Table::AnonymousIds => (vec![self.anonymous_ids.clone()], Replacing::Nothing),
            _ => (vec![self.daily_users.clone()], Replacing::Nothing),
        })
        .await
    }
}

/// The silver rows a run adds, each batch with its event date.
pub(super) struct NewRows {
    pub(super) batches: Vec<RecordBatch>,
    pub(super) dates: Vec<Option<i32>>,
}

impl NewRows {
    /// Each batch with its date.
    pub(super) fn dated(&self) -> impl Iterator<Item = (&RecordBatch, i32)> {
        self.batches
            .iter()
            .zip(&self.dates)
            .map(|(b, d)| (b, d.unwrap_or_default()))
    }

    /// The persons the rows touch, as [`user_hash`]es.
    pub(super) fn touched_users(&self, people: &People) -> Result<HashSet<u128>> {
        let mut users = HashSet::default();
        for b in &self.batches {
            let keys = typed_column::<StringArray>(b, "user_key")?;
            users.extend(keys.iter().flatten().map(|k| people.person(user_hash(k))));
        }
        Ok(users)
    }

    /// The newest event_time among the rows.
    pub(super) fn newest_event_time(&self) -> Result<Option<DateTime<Utc>>> {
        let mut newest = None;
        for b in &self.batches {
            let at = typed_column::<TimestampMicrosecondArray>(b, "event_time")?;
            newest = newest.max(arrow::compute::max(at));
        }
        Ok(newest.and_then(DateTime::from_timestamp_micros))
    }

    /// The event times of each person the rows touch, sorted.
    pub(super) fn times_by_user(&self, people: &People) -> Result<HashMap<u128, Vec<i64>>> {
        let mut times: HashMap<u128, Vec<i64>> = HashMap::default();
        for b in &self.batches {
            let users = typed_column::<StringArray>(b, "user_key")?;
            let at = typed_column::<TimestampMicrosecondArray>(b, "event_time")?;
            for (user, time) in users.iter().zip(at.iter()) {
                if let (Some(user), Some(time)) = (user, time) {
                    let person = people.person(user_hash(user));
                    times.entry(person).or_default().push(time);
                }
            }
        }
        for t in times.values_mut() {
            t.sort_unstable();
        }
        Ok(times)
    }
}

/// The sessions recomputed by a run: those of the changed runs of events, and the session
/// dates `lo..=hi` they span.
struct Resessionized {
    pub(super) sessions: Vec<Session>,
    pub(super) changed_runs: Vec<Run>,
    pub(super) lo: i32,
    pub(super) hi: i32,
}

/// Silver as of the last version this run processes, the rows its commits above `done` added,
/// and that version; `None` when gold is up to date. Counts them in `outcome`.
async fn new_silver_rows(
    lake: &Lake,
    done: i64,
    outcome: &mut GoldOutcome,
) -> Result<Option<(DeltaTable, NewRows, i64)>> {
    let Some(mut silver) = lake.existing_table(Table::Silver).await? else {
        outcome.already_processed = true;
        return Ok(None);
    };
    let latest = silver.version().map_or(-1, |v| v as i64);
    if latest <= done {
        outcome.already_processed = true;
        outcome.up_to_version = Some(done);
        return Ok(None);
    }
    let (batches, dates, last) = added_silver_rows(&silver, done, latest).await?;
    let new = NewRows { batches, dates };
    outcome.silver_versions = Some((done + 1, last));
    outcome.up_to_version = Some(last);
    outcome.remaining = last < latest;
    outcome.new_events = new.batches.iter().map(RecordBatch::num_rows).sum();
    outcome.newest_event_time = new.newest_event_time()?;
    outcome.silver_behind = latest - last;
    if last < latest {
        // Everything after reads silver as of `last`, the version the watermark will say.
        silver
            .load_version(last as _)
            .await
            .map_err(Error::delta(Table::Silver.path()))?;
    }
    Ok(Some((silver, new, last)))
}

pub(super) async fn try_catch_up(
    lake: &Lake,
    warm: &mut Option<GoldState>,
    funnel: &[String],
) -> Result<GoldOutcome> {
    let mut outcome = GoldOutcome::default();
    let gold = OpenGold::open(lake).await?;
    let done = gold.watermark();
    let Some((silver, new, last)) = new_silver_rows(lake, done, &mut outcome).await? else {
        return Ok(outcome);
    };
    let (state, kept) = warm_state(warm, &silver, done, &gold.versions());
    outcome.warm = kept;
    if state.people.is_none() {
        // The stitching state must be as of the watermark: a newer one (another writer committed
        // while this run opened the tables) already holds the changes of person this run must
        // re-key. The run then lost a race, and retries from fresh reads.
        if gold.silver_version(Table::AnonymousIds) != done {
            return Err(Error::MovedWhileRead {
                table: Table::AnonymousIds.path().into(),
            });
        }
        state.people = Some(People::load(gold.table(Table::AnonymousIds)).await?);
    }

    // 0. Who the new rows' anonymous ids now are; those whose person changed re-key their
    // events without a user_id, on the dates they have them.
    let observed = people_mut(state).observe(new.dated(), last)?;
    outcome.rekeyed = observed.rekeys.len();
    let new_dates: BTreeSet<i32> = new.dates.iter().flatten().copied().collect();
    let mut touched = new_dates.clone();
    for rekey in &observed.rekeys {
        touched.extend(rekey.dates.0..=rekey.dates.1);
    }
    let (Some(&first), Some(&last_date)) = (touched.first(), touched.last()) else {
        // Commits without rows (all duplicates or invalid): only the watermark moves.
        let meta = json!({ "silver_version": last });
        let committed = gold
            .commit(lake, last, meta, |t| {
                (vec![RecordBatch::new_empty(t.schema())], Replacing::Nothing)
            })
            .await?;
        state.took(&committed, last);
        return Ok(outcome);
    };
    // A session holding a re-keyed event may start the day before it.
    let first = match observed.rekeys.iter().map(|r| r.dates.0).min() {
        Some(rekeyed) => first.min(rekeyed - 1),
        None => first,
    };
    let (anonymous_ids, compacted) = people_mut(state).rows_to_write(observed.rows, last);

    // 1. Sessions of the persons the new rows touch, over every run of events they belong to,
    // and of the persons re-keyed events left or joined, over the dates of those events.
    let people = people_of(state);
    let rekeyed: HashSet<u128> = observed
        .rekeys
        .iter()
        .flat_map(|r| r.persons.iter().copied())
        .collect();
    let mut touched_hashes = new.touched_users(people)?;
    touched_hashes.extend(&rekeyed);
    outcome.users = touched_hashes.len();
    let warm_dates = state.take_rows(&new)?;
    let recomputed = resessionize(
        &silver,
        state,
        &new,
        (&touched_hashes, &rekeyed),
        (first, last_date),
        funnel,
    )
    .await?;
    let (lo, hi) = (recomputed.lo, recomputed.hi);

    // 2. The other sessions of those dates stay as gold has them.
    let missing: Vec<i32> = (lo..=hi)
        .filter(|d| !state.sessions.contains_key(d))
        .collect();
    load_sessions(gold.table(Table::Sessions), state, &missing).await?;
    let kept = kept_sessions(state, &recomputed, &rekeyed)?;
    // The rewritten dates' sessions are now the kept ones and the recomputed: the old copy goes
    // before the new one is built and written (a failed run drops the whole state anyway).
    state.sessions.retain(|d, _| !(lo..=hi).contains(d));
    let mut written: BTreeMap<i32, Vec<RecordBatch>> =
        kept.into_iter().map(|(d, b)| (d, vec![b])).collect();
    let mut new_by_date: BTreeMap<i32, Vec<&Session>> = BTreeMap::new();
    for s in &recomputed.sessions {
        new_by_date.entry(s.date).or_default().push(s);
    }
    for (d, sessions) in &new_by_date {
        written
            .entry(*d)
            .or_default()
            .push(sessions_batch(sessions)?);
    }
    let schema = Table::Sessions.schema();
    let written: BTreeMap<i32, RecordBatch> = written
        .into_iter()
        .map(|(d, b)| Ok((d, arrow::compute::concat_batches(&schema, &b)?)))
        .collect::<Result<_>>()?;
    let by_date = session_days(facts_of(written.values())?);

    // 3. Distinct users of the dates WAU/MAU need; users new to a date go to gold/daily_users.
    let users_needed = (lo - 29..=last_date.max(hi) + 29)
        .filter(|d| !state.users.contains_key(d))
        .collect::<Vec<_>>();
    load_daily_users(gold.table(Table::DailyUsers), state, &users_needed).await?;
    let new_user_rows = new_users(state, &new)?;
    state.count_rows(&new, &warm_dates)?;

    // 4. daily_metrics from `lo` to where a 30-day window still reaches a recomputed date.
    let (metrics, metrics_hi) = metrics_rows_from(&gold, state, &touched, &by_date, lo, hi).await?;

    // 5. page_daily of lo..=hi: touched dates from the event figures, the others as gold has them.
    let pages = page_rows_from(gold.table(Table::PageDaily), state, &touched, lo, hi).await?;
    let anonymous_ids = batch_of(&Table::AnonymousIds.schema(), &anonymous_ids)?;

    // 6. One commit per table, each carrying the watermark.
    let run = RunBatches {
        // A batch per date, not one copy of them all.
        sessions: if written.is_empty() {
            vec![RecordBatch::new_empty(schema)]
        } else {
            written.values().cloned().collect()
        },
        daily_users: daily_users_batch(&new_user_rows)?,
        funnel: funnel_batch(by_date.iter(), funnel)?,
        pages: page_batch(pages, &by_date)?,
        metrics: metrics_batch(&metrics)?,
        anonymous_ids,
        compacted,
        dates: (lo, hi),
        metrics_to: metrics_hi,
    };
    let committed = run.commit(lake, gold, last, &mut outcome).await?;
    state.took(&committed, last);
    state.sessions.extend(written);
    state.evict(&new_dates);
    Ok(outcome)
}

/// The stitching state of a run (loaded at its start).
fn people_of(state: &GoldState) -> &People {
    state
        .people
        .as_ref()
        .expect("a run loads the stitching state first")
}

fn people_mut(state: &mut GoldState) -> &mut People {
    state
        .people
        .as_mut()
        .expect("a run loads the stitching state first")
}

/// Step 1: a run of a person's events changes when it holds a new event, or when the person is
/// `rekeyed` (re-keyed events left or joined them) and the run reaches the recomputed dates;
/// only the sessions of changed runs are recomputed, and the dates rewritten are the touched
/// dates `touched` widened to every date those sessions start on. `users` are the persons
/// whose runs may change.
async fn resessionize(
    silver: &DeltaTable,
    state: &mut GoldState,
    new: &NewRows,
    (users, rekeyed): (&HashSet<u128>, &HashSet<u128>),
    touched: (i32, i32),
    funnel: &[String],
) -> Result<Resessionized> {
    let people = people_of(state);
    let new_times = new.times_by_user(people)?;
    let keys: HashSet<u128> = users.iter().flat_map(|u| people.keys_of(*u)).collect();
    let (mut lo, mut hi) = touched;
    loop {
        let changed = |run: &Run| {
            let reaches = run.last >= lo as i64 * DAY_US && run.first < (hi + 1) as i64 * DAY_US;
            (rekeyed.contains(&run.user) && reaches)
                || new_times.get(&run.user).is_some_and(|times| {
                    let i = times.partition_point(|t| *t < run.first);
                    times.get(i).is_some_and(|t| *t <= run.last)
                })
        };
        let missing: Vec<i32> = (lo - 1..=hi + 1)
            .filter(|d| !state.days.contains_key(d))
            .collect();
        load_days(silver, state, &missing).await?;
        let people = people_of(state);
        let days: Vec<_> = (lo - 1..=hi + 1)
            .filter_map(|d| state.days.get(&d))
            .collect();
        let held = days.iter().map(|day| day.rows_held_by(&keys)).sum();
        let mut events = Vec::with_capacity(held);
        for day in days {
            day.events_of(&keys, people, &mut events);
        }
        let (sessions, changed_runs) = sessionize_runs(&mut events, funnel, changed);
        let (new_lo, new_hi) = widened(&changed_runs, lo, hi);
        if (new_lo, new_hi) == (lo, hi) {
            return Ok(Resessionized {
                sessions,
                changed_runs,
                lo,
                hi,
            });
        }
        (lo, hi) = (new_lo, new_hi);
    }
}

/// Step 2: gold's sessions of each recomputed date (from the warm state, which holds them) but
/// those inside a changed run (which that run's new sessions replace) and those of `rekeyed`
/// persons (all of whose runs on those dates are recomputed).
fn kept_sessions(
    state: &GoldState,
    recomputed: &Resessionized,
    rekeyed: &HashSet<u128>,
) -> Result<BTreeMap<i32, RecordBatch>> {
    let mut changed_spans: HashMap<u128, Vec<(i64, i64)>> = HashMap::default();
    for r in &recomputed.changed_runs {
        changed_spans
            .entry(r.user)
            .or_default()
            .push((r.first, r.last));
    }
    let mut kept = BTreeMap::new();
    for d in recomputed.lo..=recomputed.hi {
        let Some(b) = state.sessions.get(&d) else {
            continue;
        };
        let users = typed_column::<StringArray>(b, "user_key")?;
        let starts = typed_column::<TimestampMicrosecondArray>(b, "session_start")?;
        let ends = typed_column::<TimestampMicrosecondArray>(b, "session_end")?;
        let keep: BooleanArray = (0..b.num_rows())
            .map(|i| {
                let user = user_hash(users.value(i));
                if rekeyed.contains(&user) {
                    return Some(false);
                }
                let spans = changed_spans.get(&user);
                let replaced = spans.is_some_and(|spans| {
                    spans
                        .iter()
                        .any(|(first, last)| starts.value(i) <= *last && ends.value(i) >= *first)
                });
                Some(!replaced)
            })
            .collect();
        kept.insert(d, arrow::compute::filter_record_batch(b, &keep)?);
    }
    Ok(kept)
}

/// Step 3: the users of the new rows that are new to their date (now also in the state), which
/// go to gold/daily_users.
fn new_users<'a>(state: &mut GoldState, new: &'a NewRows) -> Result<BTreeMap<i32, Vec<&'a str>>> {
    let mut rows: BTreeMap<i32, Vec<&str>> = BTreeMap::new();
    for (b, d) in new.dated() {
        let set = state.users.entry(d).or_default();
        for u in typed_column::<StringArray>(b, "user_key")?.iter().flatten() {
            if set.insert(user_hash(u)) {
                rows.entry(d).or_default().push(u);
            }
        }
    }
    Ok(rows)
}

/// Step 4: daily_metrics rows from `lo` to where a 30-day window still reaches a recomputed date
/// (returned with the rows): touched dates from the event figures, the dates up to `hi` with
/// their sessions recomputed, later ones as gold has them but with WAU/MAU again.
pub(super) async fn metrics_rows_from(
    gold: &OpenGold,
    state: &mut GoldState,
    touched: &BTreeSet<i32>,
    by_date: &BTreeMap<i32, SessionDay<'_>>,
    lo: i32,
    hi: i32,
) -> Result<(Vec<DailyMetrics>, i32)> {
    let old_metrics = metrics_rows(
        &read_dates(
            gold.table(Table::DailyMetrics),
            Table::DailyMetrics,
            "date",
            |d| (lo..=hi + 29).contains(&d),
            &[],
        )
        .await?,
    )?;
    let old_by_date: BTreeMap<i32, DailyMetrics> =
        old_metrics.iter().map(|r| (to_days(r.date), *r)).collect();
    let metrics_hi = old_by_date
        .keys()
        .next_back()
        .copied()
        .unwrap_or(hi)
        .max(hi);
    let dates: BTreeSet<i32> = old_by_date
        .keys()
        .copied()
        .chain(by_date.keys().copied())
        .chain(touched.iter().copied())
        .filter(|d| (lo..=metrics_hi).contains(d))
        .collect();
    let mut metrics: Vec<DailyMetrics> = Vec::with_capacity(dates.len());
    for d in dates {
        let old = old_by_date.get(&d);
        let row = if let Some(e) = state.days.get(&d).filter(|_| touched.contains(&d)) {
            let e = &e.figures;
            let dau = state
                .users
                .get(&d)
                .map_or(0, |u| persons_of(people_of(state), u));
            metrics_row(d, (dau, e.events, e.page_views), by_date.get(&d))
        } else if d <= hi {
            let figures = old.map_or((0, 0, 0), |o| (o.dau, o.events, o.page_views));
            metrics_row(d, figures, by_date.get(&d))
        } else if let Some(o) = old {
            *o
        } else {
            continue;
        };
        if row.events == 0 && row.sessions == 0 {
            continue;
        }
        metrics.push(row);
    }
    let missing_users: Vec<i32> = (lo - 29..=metrics_hi)
        .filter(|d| !state.users.contains_key(d))
        .collect();
    load_daily_users(gold.table(Table::DailyUsers), state, &missing_users).await?;
    fill_active_users(&mut metrics, &state.users, people_of(state));
    Ok((metrics, metrics_hi))
}

/// Step 5: page_daily rows of `lo..=hi`: touched dates from the event figures, the others as
/// gold has them.
pub(super) async fn page_rows_from(
    page_daily: &DeltaTable,
    state: &GoldState,
    touched: &BTreeSet<i32>,
    lo: i32,
    hi: i32,
) -> Result<BTreeMap<(i32, String), PageRow>> {
    let mut pages: BTreeMap<(i32, String), PageRow> = BTreeMap::new();
    let rows = read_dates(
        page_daily,
        Table::PageDaily,
        "date",
        |d| (lo..=hi).contains(&d),
        &[],
    )
    .await?;
    for row in rows_of::<rows::PageDaily>(&rows)? {
        let date = to_days(row.date);
        if !touched.contains(&date) && row.page_views > 0 {
            let figures = PageRow {
                page_views: row.page_views,
                unique_users: row.unique_users,
                ..Default::default()
            };
            pages.insert((date, row.page_path), figures);
        }
    }
    pages.extend(page_views_of(
        touched
            .iter()
            .filter_map(|d| Some((*d, &state.days.get(d)?.figures))),
        people_of(state),
    ));
    Ok(pages)
}

/// The range `lo..=hi` of session dates widened to hold every session of the changed `runs`
/// (found in the window of dates `lo - 1 ..= hi + 1`); a run that may go on past the window's
/// edge widens it too.
fn widened(changed_runs: &[Run], lo: i32, hi: i32) -> (i32, i32) {
    let (mut new_lo, mut new_hi) = (lo, hi);
    let window_start = (lo - 1) as i64 * DAY_US;
    let window_end = (hi + 2) as i64 * DAY_US;
    for r in changed_runs {
        if r.first - window_start < SESSION_GAP_US {
            new_lo = new_lo.min(lo - 1);
        }
        if window_end - r.last <= SESSION_GAP_US {
            new_hi = new_hi.max(hi + 1);
        }
        new_lo = new_lo.min(r.first_date);
        new_hi = new_hi.max(r.last_session_date);
    }
    (new_lo, new_hi)
}
