//! What a warm gold process keeps between runs: per event date, silver's rows and figures and the
//! distinct users, and per session date gold's own session rows, for the dates recent runs
//! touched (see [`GoldState`]).

use super::*;

/// Event dates whose silver rows and figures a warm process keeps; past it, the oldest go.
const MAX_WARM_DATES: usize = 12;
/// Days of distinct users a warm process keeps beyond the event dates it holds.
const MAX_WARM_USER_DATES: usize = 100;

/// What a warm gold process keeps between runs, valid for one silver table at one version and
/// the gold tables as its last run left them.
pub(crate) struct GoldState {
    /// The silver table's URL and Delta table id.
    pub(super) table: String,
    /// The silver version the state reflects (gold's watermark after the last run).
    pub(super) version: i64,
    /// Silver rows and event figures per event date, for dates recent runs touched.
    pub(super) days: BTreeMap<i32, Day>,
    /// Distinct users per event date (as gold/daily_users holds them: silver user_keys).
    pub(super) users: BTreeMap<i32, HashSet<u128>>,
    /// gold/sessions' rows per session date as the last run committed them, for dates recent
    /// runs rewrote: a run replaces a date's changed sessions without reading the others back.
    pub(super) sessions: BTreeMap<i32, RecordBatch>,
    /// Who each user_key is (loaded from gold/anonymous_ids by a run's start).
    pub(super) people: Option<People>,
    /// Each gold table's version after the last run, when its commits were the only ones since
    /// it read the tables. Any other commit (an erasure's, which removes rows without moving the
    /// watermark, or maintenance's) means the tables may hold what the state does not, and the
    /// state is read again.
    pub(super) gold: Option<GoldVersions>,
}

impl GoldState {
    /// An empty state for silver version `done` of the silver table `table`.
    pub(super) fn empty(table: String, done: i64) -> GoldState {
        GoldState {
            table,
            version: done,
            days: BTreeMap::new(),
            users: BTreeMap::new(),
            sessions: BTreeMap::new(),
            people: None,
            gold: None,
        }
    }
}

/// The warm state at silver version `done` and the gold tables at `gold`, or a fresh one (loaded
/// from the tables as needed); whether it was kept.
pub(super) fn warm_state<'a>(
    warm: &'a mut Option<GoldState>,
    silver: &DeltaTable,
    done: i64,
    gold: &GoldVersions,
) -> (&'a mut GoldState, bool) {
    let id = silver.snapshot().map(|s| s.metadata().id().to_string());
    let table_id = format!("{}#{}", silver.table_url(), id.unwrap_or_default());
    let kept = warm
        .as_ref()
        .is_some_and(|w| w.table == table_id && w.version == done && w.gold.as_ref() == Some(gold));
    if !kept {
        *warm = Some(GoldState::empty(table_id, done));
    }
    (warm.as_mut().expect("state was just set"), kept)
}

/// A string of a [`Day`]'s pool.
type Symbol = string_interner::symbol::SymbolU32;

/// One event date's silver rows, held compactly for sessionizing (each distinct string but the
/// event ids once, in the day's pool), with the rows of each user, and its event figures.
#[derive(Default)]
pub(super) struct Day {
    /// The rows' strings but their event ids, each held once.
    strings: string_interner::StringInterner<string_interner::DefaultBackend>,
    /// The rows, in the batches they were added in.
    chunks: Vec<Chunk>,
    /// Per user: (chunk, row) of each of their events.
    by_user: HashMap<u128, Vec<(u32, u32)>>,
    pub(super) figures: EventDay,
}

/// Rows added to a [`Day`] at once.
struct Chunk {
    event_ids: StringArray,
    rows: Box<[Row]>,
}

/// A silver row's [`SESSION_INPUT`] columns but its event id, strings as symbols of the day's pool.
#[derive(Clone, Copy)]
struct Row {
    time: i64,
    event_type: Symbol,
    user_key: Symbol,
    page_url: Option<Symbol>,
    page_path: Option<Symbol>,
    referrer: Option<Symbol>,
    device_type: Option<Symbol>,
    country: Option<Symbol>,
}

impl Day {
    /// Adds silver rows of this date (without touching the figures); only their
    /// [`SESSION_INPUT`] columns are kept.
    pub(super) fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let columns = EventColumns::of(batch)?;
        let chunk = self.chunks.len() as u32;
        let mut event_ids =
            StringBuilder::with_capacity(batch.num_rows(), columns.event_id_bytes());
        let mut rows = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let e = columns.row(i);
            let mut intern = |s: &str| self.strings.get_or_intern(s);
            rows.push(Row {
                time: e.time,
                event_type: intern(e.event_type),
                user_key: intern(e.user_key),
                page_url: e.page_url.map(&mut intern),
                page_path: e.page_path.map(&mut intern),
                referrer: e.referrer.map(&mut intern),
                device_type: e.device_type.map(&mut intern),
                country: e.country.map(&mut intern),
            });
            event_ids.append_value(e.event_id);
            self.by_user
                .entry(e.user)
                .or_default()
                .push((chunk, i as u32));
        }
        self.chunks.push(Chunk {
            event_ids: event_ids.finish(),
            rows: rows.into_boxed_slice(),
        });
        Ok(())
    }

    /// How many rows the silver user_keys `users` have on this date.
    pub(super) fn rows_held_by(&self, users: &HashSet<u128>) -> usize {
        users
            .iter()
            .filter_map(|user| self.by_user.get(user))
            .map(Vec::len)
            .sum()
    }

    /// The events of the silver user_keys `users` on this date, borrowed from its rows.
    pub(super) fn events_of<'a>(
        &'a self,
        users: &HashSet<u128>,
        people: &'a People,
        out: &mut Vec<Event<'a>>,
    ) {
        let text = |s: Symbol| self.strings.resolve(s).expect("a symbol of the day's pool");
        for user in users {
            let Some(rows) = self.by_user.get(user) else {
                continue;
            };
            // A user's rows share their user_key, so its person is looked up once.
            let Some(&(first_chunk, first_row)) = rows.first() else {
                continue;
            };
            let key = text(self.chunks[first_chunk as usize].rows[first_row as usize].user_key);
            let (person, person_key) = (people.person(*user), people.person_key(key, *user));
            for &(chunk, row) in rows {
                let chunk = &self.chunks[chunk as usize];
                let r = &chunk.rows[row as usize];
                out.push(Event {
                    event_id: chunk.event_ids.value(row as usize),
                    event_type: text(r.event_type),
                    time: r.time,
                    user_key: person_key,
                    user: person,
                    page_url: r.page_url.map(text),
                    page_path: r.page_path.map(text),
                    referrer: r.referrer.map(text),
                    device_type: r.device_type.map(text),
                    country: r.country.map(text),
                });
            }
        }
    }

    /// Rows held.
    #[cfg(test)]
    fn rows(&self) -> usize {
        self.chunks.iter().map(|c| c.rows.len()).sum()
    }
}

/// Enters `dates` into `loaded` (empty until read); true when `table` has files to read them from.
fn start_loading<V: Default>(
    loaded: &mut BTreeMap<i32, V>,
    dates: &[i32],
    table: &DeltaTable,
) -> bool {
    for d in dates {
        loaded.entry(*d).or_default();
    }
    !dates.is_empty() && has_data_files(table)
}

/// Reads the silver rows of `dates` (as of the `silver` handle's version) into the state, with
/// their event figures.
pub(super) async fn load_days(
    silver: &DeltaTable,
    state: &mut GoldState,
    dates: &[i32],
) -> Result<()> {
    if !start_loading(&mut state.days, dates, silver) {
        return Ok(());
    }
    let mut columns = SESSION_INPUT.to_vec();
    columns.push("event_date");
    let wanted: HashSet<i32> = dates.iter().copied().collect();
    let rows = read_dates(
        silver,
        Table::Silver,
        "event_date",
        |d| wanted.contains(&d),
        &columns,
    )
    .await?;
    for batch in rows {
        let event_dates = typed_column::<Date32Array>(&batch, "event_date")?;
        let mut present: Vec<i32> = event_dates.values().to_vec();
        present.sort_unstable();
        present.dedup();
        for d in present {
            let Some(day) = state.days.get_mut(&d) else {
                continue;
            };
            let rows = if event_dates.values().iter().all(|x| *x == d) {
                batch.clone()
            } else {
                let mask: BooleanArray =
                    event_dates.values().iter().map(|x| Some(*x == d)).collect();
                arrow::compute::filter_record_batch(&batch, &mask)?
            };
            for_each_activity(
                std::slice::from_ref(&rows),
                &[Some(d)],
                |_, user, ty, path| {
                    day.figures.add(ty, path, user);
                },
            )?;
            day.add(&rows)?;
        }
    }
    Ok(())
}

/// Loads the distinct users of `dates` from gold/daily_users into the state (empty for dates
/// without users).
pub(super) async fn load_daily_users(
    daily_users: &DeltaTable,
    state: &mut GoldState,
    dates: &[i32],
) -> Result<()> {
    if !start_loading(&mut state.users, dates, daily_users) {
        return Ok(());
    }
    let wanted: HashSet<i32> = dates.iter().copied().collect();
    let rows = read_dates(
        daily_users,
        Table::DailyUsers,
        "date",
        |d| wanted.contains(&d),
        &["date", "user_key"],
    )
    .await?;
    for b in rows {
        let date = typed_column::<Date32Array>(&b, "date")?;
        let user = typed_column::<StringArray>(&b, "user_key")?;
        for i in 0..b.num_rows() {
            if let Some(set) = state.users.get_mut(&date.value(i)) {
                set.insert(user_hash(user.value(i)));
            }
        }
    }
    Ok(())
}

/// Loads gold/sessions' rows of `dates` into the state (an empty batch for dates without
/// sessions).
pub(super) async fn load_sessions(
    sessions: &DeltaTable,
    state: &mut GoldState,
    dates: &[i32],
) -> Result<()> {
    let schema = Table::Sessions.schema();
    let mut per_date: BTreeMap<i32, Vec<RecordBatch>> =
        dates.iter().map(|d| (*d, Vec::new())).collect();
    if !dates.is_empty() && has_data_files(sessions) {
        let wanted: HashSet<i32> = dates.iter().copied().collect();
        let rows = read_dates(
            sessions,
            Table::Sessions,
            "session_date",
            |d| wanted.contains(&d),
            &[],
        )
        .await?;
        for b in rows {
            let b = crate::lake::conform(&b, &schema)?;
            // read_dates fills the partition column with the file's one date.
            let date = typed_column::<Date32Array>(&b, "session_date")?;
            if let Some(d) = date.iter().flatten().next()
                && let Some(batches) = per_date.get_mut(&d)
            {
                batches.push(b);
            }
        }
    }
    for (d, batches) in per_date {
        let rows = arrow::compute::concat_batches(&schema, &batches)?;
        state.sessions.insert(d, rows);
    }
    Ok(())
}

impl GoldState {
    /// Moves the state to silver version `last` and the gold versions a run `committed`.
    pub(super) fn took(&mut self, committed: &Committed, last: i64) {
        self.version = last;
        self.gold = committed.on_top.then(|| committed.versions.clone());
    }

    /// Adds a run's new rows to the dates the state holds (dates it lacks are read whole from
    /// silver, as of the run's last version, so they hold the new rows already); the dates it
    /// held before.
    pub(super) fn take_rows(&mut self, new: &NewRows) -> Result<HashSet<i32>> {
        let held: HashSet<i32> = self.days.keys().copied().collect();
        for (b, d) in new.dated() {
            if let Some(day) = self.days.get_mut(&d) {
                day.add(b)?;
            }
        }
        Ok(held)
    }

    /// Counts a run's new rows into the event figures of the dates in `held` (the dates read
    /// whole from silver already counted them).
    pub(super) fn count_rows(&mut self, new: &NewRows, held: &HashSet<i32>) -> Result<()> {
        for (b, d) in new.dated() {
            if let Some(day) = self.days.get_mut(&d).filter(|_| held.contains(&d)) {
                for_each_activity(std::slice::from_ref(b), &[Some(d)], |_, user, ty, path| {
                    day.figures.add(ty, path, user);
                })?;
            }
        }
        Ok(())
    }

    /// Keeps at most [`MAX_WARM_DATES`] dates of event figures and of sessions and
    /// [`MAX_WARM_USER_DATES`] of users, dropping the oldest (except `keep`).
    pub(super) fn evict(&mut self, keep: &BTreeSet<i32>) {
        keep_newest(&mut self.days, MAX_WARM_DATES, keep);
        keep_newest(&mut self.sessions, MAX_WARM_DATES, keep);
        keep_newest(&mut self.users, MAX_WARM_USER_DATES, keep);
    }
}

/// Drops the oldest dates of `dates` (but those in `keep`) until at most `most` are left.
fn keep_newest<V>(dates: &mut BTreeMap<i32, V>, most: usize, keep: &BTreeSet<i32>) {
    while dates.len() > most {
        let Some(oldest) = dates.keys().copied().find(|d| !keep.contains(d)) else {
            break;
        };
        dates.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Silver rows of (event_id, user_key, event_time).
    fn silver_rows(rows: &[(&'static str, &'static str, i64)]) -> RecordBatch {
        let rows: Vec<rows::Silver> = rows
            .iter()
            .map(|&(event_id, user_key, event_time)| rows::Silver {
                event_id,
                event_type: "page_view",
                event_time,
                user_key,
                user_id: None,
                anonymous_id: Some(user_key),
                client_session_id: None,
                page_url: Some("https://shop.example/a"),
                page_path: Some("/a"),
                referrer: None,
                user_agent: None,
                device_type: Some("mobile"),
                country: Some("NL"),
                properties: None,
                extra: None,
                ingest_time: event_time,
                source: "file",
                event_date: 0,
            })
            .collect();
        batch_of(&Table::Silver.schema(), &rows).unwrap()
    }

    #[test]
    fn a_day_gives_the_events_of_the_users_asked_for_from_every_batch_it_holds() {
        let mut day = Day::default();
        day.add(&silver_rows(&[
            ("e1", "a", 1),
            ("e2", "b", 2),
            ("e3", "a", 3),
        ]))
        .unwrap();
        day.add(&silver_rows(&[("e4", "c", 4), ("e5", "a", 5)]))
            .unwrap();
        assert_eq!(day.rows(), 5);
        let people = People::default();
        let asked = HashSet::from_iter([user_hash("a"), user_hash("c")]);
        let mut events = Vec::new();
        day.events_of(&asked, &people, &mut events);
        // Every column sessions read comes back as it was.
        for e in &events {
            assert_eq!(e.event_type, "page_view");
            assert_eq!(e.user, user_hash(e.user_key));
            assert_eq!(e.page_url, Some("https://shop.example/a"));
            assert_eq!(e.page_path, Some("/a"));
            assert_eq!(e.referrer, None);
            assert_eq!(e.device_type, Some("mobile"));
            assert_eq!(e.country, Some("NL"));
        }
        let mut got: Vec<(&str, &str, i64)> = events
            .iter()
            .map(|e| (e.event_id, e.user_key, e.time))
            .collect();
        got.sort_unstable();
        assert_eq!(
            got,
            [
                ("e1", "a", 1),
                ("e3", "a", 3),
                ("e4", "c", 4),
                ("e5", "a", 5)
            ]
        );
        let mut none = Vec::new();
        day.events_of(&HashSet::from_iter([user_hash("z")]), &people, &mut none);
        assert!(none.is_empty());
    }
}
