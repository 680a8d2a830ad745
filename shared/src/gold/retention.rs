//! Weekly retention cohorts: users by the week they were first seen, and the share of each cohort
//! active in each following week (`gold/retention_weekly`). Computed from `gold/daily_users` on the
//! exporter's schedule rather than per batch: a cohort table spans the whole history.

use std::collections::BTreeMap;

use chrono::Datelike;

use super::*;

/// Monday of the ISO week holding `day` (days since the epoch).
fn week_of(day: i32) -> i32 {
    let weekday = from_days(day).weekday().num_days_from_monday() as i32;
    day - weekday
}

/// The retention rows of the distinct users per date in `daily_users` (gold/daily_users rows),
/// each user_key counted as the person `people` says it is, in (cohort_week, week_index) order,
/// up to the latest week in the data.
pub fn weekly_cohorts(
    daily_users: &[RecordBatch],
    people: &People,
) -> Result<Vec<rows::RetentionWeekly>> {
    let mut weeks_of_user: HashMap<&str, HashSet<i32>> = HashMap::default();
    for batch in daily_users {
        let users = typed_column::<StringArray>(batch, "user_key")?;
        let dates = typed_column::<Date32Array>(batch, "date")?;
        for i in 0..batch.num_rows() {
            let user = users.value(i);
            weeks_of_user
                .entry(people.person_key(user, user_hash(user)))
                .or_default()
                .insert(week_of(dates.value(i)));
        }
    }
    let last_week = weeks_of_user.values().flatten().max().copied();
    let mut cohort_users: BTreeMap<i32, i64> = BTreeMap::new();
    let mut active: HashMap<(i32, i32), i64> = HashMap::default();
    for weeks in weeks_of_user.values() {
        let cohort = *weeks.iter().min().expect("a user has at least one date");
        *cohort_users.entry(cohort).or_default() += 1;
        for w in weeks {
            *active.entry((cohort, (w - cohort) / 7)).or_default() += 1;
        }
    }
    let mut cells = Vec::new();
    for (&cohort, &users) in &cohort_users {
        let weeks = last_week.map_or(0, |last| (last - cohort) / 7);
        for week_index in 0..=weeks {
            let active_users = active.get(&(cohort, week_index)).copied().unwrap_or(0);
            cells.push(rows::RetentionWeekly {
                cohort_week: from_days(cohort),
                week_index,
                cohort_users: users,
                active_users,
                share: active_users as f64 / users.max(1) as f64,
            });
        }
    }
    Ok(cells)
}

/// Recomputes gold/retention_weekly from gold/daily_users and gold's stitching state (a whole
/// overwrite: running it again gives the same table); returns the number of cells.
pub async fn refresh(lake: &Lake) -> Result<usize> {
    let people = match lake.existing_table(Table::AnonymousIds).await? {
        Some(table) => People::load(&table).await?,
        None => People::default(),
    };
    let rows = match lake.existing_table(Table::DailyUsers).await? {
        Some(daily_users) => {
            let columns = &["user_key", "date"];
            read_dates(&daily_users, Table::DailyUsers, "date", |_| true, columns).await?
        }
        None => Vec::new(),
    };
    let cells = weekly_cohorts(&rows, &people)?;
    overwrite_whole(lake, Table::RetentionWeekly, &cells).await?;
    Ok(cells.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::to_days;

    fn daily_users(rows: &[(&str, NaiveDate)]) -> RecordBatch {
        let rows: Vec<rows::DailyUser> = rows
            .iter()
            .map(|&(user_key, date)| rows::DailyUser {
                user_key,
                date: to_days(date),
            })
            .collect();
        batch_of(&Table::DailyUsers.schema(), &rows).unwrap()
    }

    #[test]
    fn cohorts_by_first_week_and_the_share_active_after() {
        let d = |m: u32, day: u32| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
        // Mon 2026-11-02, Mon 11-09, Mon 11-16. a: weeks 0 and 2; b: weeks 0 and 1; c: week 1.
        let batch = daily_users(&[
            ("a", d(11, 2)),
            ("a", d(11, 3)),
            ("b", d(11, 8)),
            ("b", d(11, 9)),
            ("a", d(11, 20)),
            ("c", d(11, 15)),
        ]);
        let cells = weekly_cohorts(&[batch], &People::default()).unwrap();
        let cell = |cohort: NaiveDate, week: i32| {
            cells
                .iter()
                .find(|c| c.cohort_week == cohort && c.week_index == week)
                .map(|c| (c.cohort_users, c.active_users))
        };
        assert_eq!(cell(d(11, 2), 0), Some((2, 2)));
        assert_eq!(cell(d(11, 2), 1), Some((2, 1)), "b in its second week");
        assert_eq!(cell(d(11, 2), 2), Some((2, 1)), "a back in week 2");
        assert_eq!(
            cell(d(11, 9), 0),
            Some((1, 1)),
            "c first seen on Sunday 11-15"
        );
        assert_eq!(cell(d(11, 9), 1), Some((1, 0)));
        assert_eq!(cell(d(11, 9), 2), None, "no week after the data");
        assert_eq!(cells.len(), 5);
    }
}
