//! Erasing a person from gold: their sessions, their rows of gold/daily_users and
//! gold/anonymous_ids go, and the daily figures of the dates they were active on are computed
//! again from silver (from which the erasure removed their events first).

use super::*;

/// What an erasure removed from gold.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct GoldErasure {
    /// Rows removed per gold table (by path).
    pub removed: BTreeMap<String, usize>,
    /// Each table's version after its rewrite (by path).
    pub versions: BTreeMap<String, i64>,
    /// The first and last date whose figures were computed again.
    pub dates: Option<(NaiveDate, NaiveDate)>,
}

impl GoldErasure {
    /// True when gold held nothing of the person.
    pub fn is_empty(&self) -> bool {
        self.removed.values().all(|n| *n == 0)
    }
}

/// The order an erasure commits in: the daily figures first, then the rows that tell which
/// dates the person was on (sessions, daily_users), then the stitching state, so that a run that
/// stopped midway finds those dates again and finishes the job.
const ERASURE_ORDER: [Table; 6] = [
    Table::DailyMetrics,
    Table::FunnelDaily,
    Table::PageDaily,
    Table::Sessions,
    Table::DailyUsers,
    Table::AnonymousIds,
];

/// Removes the person whose silver user_keys (their user_id and anonymous ids) are
/// `identifiers` from every table gold writes, and computes again the figures of the dates they
/// were active on, as a from-scratch computation over silver without them would give. Gold
/// first takes in every silver commit, so that the erasure works on silver as it is now.
///
/// Each commit carries gold's watermark unchanged, so a catch-up that read a table before the
/// erasure's commit to it loses its own commit to that table, and the other way round, as two
/// catch-ups do. A commit that loses such a race is tried again from fresh reads, over the
/// person's dates found so far too (the tables committed before hold nothing of them any more,
/// and the catch-up that won may have counted them there). Idempotent: with nothing of the
/// person left, it writes nothing.
pub async fn erase(
    lake: &Lake,
    identifiers: &std::collections::HashSet<String>,
    funnel: &[String],
) -> Result<GoldErasure> {
    loop {
        if !catch_up(lake, funnel).await?.remaining {
            break;
        }
    }
    let found = std::sync::Mutex::new(BTreeSet::new());
    let (erased, _) = retry_lost_races("gold", || async {
        // This process's warm state may hold the person's rows: it is read again after.
        let mut warm = lake.stage_state::<Option<GoldState>>().lock_owned().await;
        *warm = None;
        try_erase(lake, identifiers, funnel, &found).await
    })
    .await?;
    Ok(erased)
}

/// The dates of `table` (a `kind` table, dated by `date_column`) on which one of `keys` has a
/// row in `key_column`.
async fn dates_of(
    table: &DeltaTable,
    kind: Table,
    (key_column, date_column): (&str, &str),
    keys: &std::collections::HashSet<String>,
) -> Result<BTreeSet<i32>> {
    let mut dates = BTreeSet::new();
    let columns = [key_column, date_column];
    for b in read_dates(table, kind, date_column, |_| true, &columns).await? {
        let key = typed_column::<StringArray>(&b, key_column)?;
        let date = typed_column::<Date32Array>(&b, date_column)?;
        for i in 0..b.num_rows() {
            if keys.contains(key.value(i)) {
                dates.insert(date.value(i));
            }
        }
    }
    Ok(dates)
}

/// `batches` without the rows whose `column` is one of `keys`; how many went.
fn without_keys(
    batches: &[RecordBatch],
    kind: Table,
    column: &str,
    keys: &std::collections::HashSet<String>,
) -> Result<(RecordBatch, usize)> {
    let mut kept = Vec::with_capacity(batches.len());
    let mut removed = 0;
    for b in batches {
        let values = typed_column::<StringArray>(b, column)?;
        let keep: BooleanArray = values
            .iter()
            .map(|v| Some(!v.is_some_and(|v| keys.contains(v))))
            .collect();
        removed += keep.false_count();
        let filtered = arrow::compute::filter_record_batch(b, &keep)?;
        kept.push(crate::lake::conform(&filtered, &kind.schema())?);
    }
    Ok((
        arrow::compute::concat_batches(&kind.schema(), &kept)?,
        removed,
    ))
}

/// One attempt of [`erase`]; `found` holds the person's dates earlier attempts found, and takes
/// this one's.
async fn try_erase(
    lake: &Lake,
    identifiers: &std::collections::HashSet<String>,
    funnel: &[String],
    found: &std::sync::Mutex<BTreeSet<i32>>,
) -> Result<GoldErasure> {
    let gold = OpenGold::open(lake).await?;
    let done = gold.watermark();
    // A catch-up that committed some tables but not yet the others: the figures below would
    // be over an older silver than those tables'. It finishes first.
    if WRITTEN.iter().any(|t| gold.silver_version(*t) != done) {
        return Err(Error::MovedWhileRead {
            table: "gold".into(),
        });
    }
    let keys: HashSet<u128> = identifiers.iter().map(|k| user_hash(k)).collect();
    let mut people = People::load(gold.table(Table::AnonymousIds)).await?;
    let person_rows = person_rows(gold.table(Table::AnonymousIds), identifiers).await?;
    let mut dates = people.forget(&keys);
    let daily_users = gold.table(Table::DailyUsers);
    let sessions = gold.table(Table::Sessions);
    dates.extend(
        dates_of(
            daily_users,
            Table::DailyUsers,
            ("user_key", "date"),
            identifiers,
        )
        .await?,
    );
    dates.extend(
        dates_of(
            sessions,
            Table::Sessions,
            ("user_key", "session_date"),
            identifiers,
        )
        .await?,
    );
    {
        let mut found = found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        found.extend(&dates);
        dates.extend(found.iter());
    }
    let mut erased = GoldErasure::default();
    // The watermark stays where it is: see [`erase`].
    let commit = || commit_properties(GOLD_APP_ID, done, json!({ "erasure": true }));
    let anonymous_ids = batch_of(&Table::AnonymousIds.schema(), &people.live_rows(done))?;
    erased
        .removed
        .insert(Table::AnonymousIds.path().into(), person_rows);
    let (Some(&lo), Some(&hi)) = (dates.first(), dates.last()) else {
        let written = replace(
            gold.table(Table::AnonymousIds).clone(),
            Table::AnonymousIds,
            vec![anonymous_ids],
            Replacing::All,
            commit(),
        )
        .await?;
        lake.keep(Table::AnonymousIds, &written);
        let version = written.version().map_or(-1, |v| v as i64);
        erased
            .versions
            .insert(Table::AnonymousIds.path().into(), version);
        return Ok(erased);
    };
    erased.dates = Some((from_days(lo), from_days(hi)));

    let mut silver = lake.table(Table::Silver).await?;
    if silver.version().map(|v| v as i64) != Some(done) {
        silver
            .load_version(done as _)
            .await
            .map_err(Error::delta(Table::Silver.path()))?;
    }
    let in_range = |d: i32| (lo..=hi).contains(&d);
    let old_sessions = read_dates(sessions, Table::Sessions, "session_date", in_range, &[]).await?;
    let (kept_sessions, sessions_removed) =
        without_keys(&old_sessions, Table::Sessions, "user_key", identifiers)?;
    let person_dates = |d: i32| dates.contains(&d);
    let old_users = read_dates(daily_users, Table::DailyUsers, "date", person_dates, &[]).await?;
    let (kept_users, users_removed) =
        without_keys(&old_users, Table::DailyUsers, "user_key", identifiers)?;
    erased
        .removed
        .insert(Table::Sessions.path().into(), sessions_removed);
    erased
        .removed
        .insert(Table::DailyUsers.path().into(), users_removed);

    // The figures of the person's dates, from silver without them and the rows kept.
    let mut state = GoldState::empty(String::new(), done);
    state.people = Some(people);
    for d in &dates {
        state.users.insert(*d, HashSet::default());
    }
    let date = typed_column::<Date32Array>(&kept_users, "date")?;
    let user = typed_column::<StringArray>(&kept_users, "user_key")?;
    for i in 0..kept_users.num_rows() {
        if let Some(set) = state.users.get_mut(&date.value(i)) {
            set.insert(user_hash(user.value(i)));
        }
    }
    let dated: Vec<i32> = dates.iter().copied().collect();
    load_days(&silver, &mut state, &dated).await?;
    let kept = std::slice::from_ref(&kept_sessions);
    let by_date = session_days(facts_of(kept)?);
    let (metrics, metrics_hi) =
        metrics_rows_from(&gold, &mut state, &dates, &by_date, lo, hi).await?;
    let pages = page_rows_from(gold.table(Table::PageDaily), &state, &dates, lo, hi).await?;

    let contents = |t: Table| -> Result<(RecordBatch, Replacing)> {
        let range = |column| Replacing::Dates {
            column,
            from: lo,
            to: hi,
        };
        Ok(match t {
            Table::DailyMetrics => (
                metrics_batch(&metrics)?,
                Replacing::Dates {
                    column: "date",
                    from: lo,
                    to: metrics_hi,
                },
            ),
            Table::FunnelDaily => (funnel_batch(by_date.iter(), funnel)?, range("date")),
            Table::PageDaily => (page_batch(pages.clone(), &by_date)?, range("date")),
            Table::Sessions => (kept_sessions.clone(), range("session_date")),
            Table::DailyUsers => {
                let dates: Vec<Expr> = dates.iter().map(|d| date_lit(*d)).collect();
                (
                    kept_users.clone(),
                    Replacing::Matching(col("date").in_list(dates, false)),
                )
            }
            _ => (anonymous_ids.clone(), Replacing::All),
        })
    };
    for t in ERASURE_ORDER {
        let (batch, replacing) = contents(t)?;
        let table = gold.table(t).clone();
        let written = replace(table, t, vec![batch], replacing, commit()).await?;
        lake.keep(t, &written);
        erased
            .versions
            .insert(t.path().into(), written.version().map_or(-1, |v| v as i64));
    }
    Ok(erased)
}

/// How many rows of gold/anonymous_ids (live or replaced) name one of `identifiers`.
async fn person_rows(
    table: &DeltaTable,
    identifiers: &std::collections::HashSet<String>,
) -> Result<usize> {
    if !has_data_files(table) {
        return Ok(0);
    }
    let rows = rows_of::<rows::AnonymousId>(&read_whole(table, Table::AnonymousIds, &[]).await?)?;
    Ok(rows
        .iter()
        .filter(|r| {
            identifiers.contains(&r.anonymous_id)
                || r.user_id.as_ref().is_some_and(|u| identifiers.contains(u))
        })
        .count())
}
