//! `lake::write_replacing`, the stages' write without delta-rs's write operation: whole date
//! partitions replaced without touching the others, dates replaced inside an unpartitioned table
//! rewriting only the files that hold them, rows outside the dates refused, and a write that
//! read a version another writer's replacement has moved past losing the race.

use std::collections::BTreeSet;

use arrow::array::AsArray;
use arrow::datatypes::Date32Type;
use clickstream::lake::{
    Lake, Replaced, Table, active_files, batch_of, typed_column, write_replacing, writer_commit,
};
use clickstream::rows::{DailyUser, PageDaily};

use crate::pipeline::{lake, read_all};

/// Writes `rows` (rows of `kind`) to the lake's `kind` replacing `replaced`.
async fn write_rows<T: serde::Serialize>(
    lake: &Lake,
    kind: Table,
    rows: &[T],
    replaced: Replaced,
) -> clickstream::error::Result<()> {
    let batch = batch_of(&kind.schema(), rows)?;
    let table = lake.table(kind).await?;
    let properties = kind.stage_writer_properties(None)?;
    let written = write_replacing(
        &table,
        kind,
        vec![batch],
        replaced,
        properties,
        writer_commit(),
    )
    .await?;
    lake.keep(kind, &written);
    Ok(())
}

/// Writes `rows` of gold/daily_users (user, day) replacing `replaced`.
async fn write_users(
    lake: &Lake,
    rows: &[(&str, i32)],
    replaced: Replaced,
) -> clickstream::error::Result<()> {
    let rows: Vec<DailyUser> = rows
        .iter()
        .map(|&(user_key, date)| DailyUser { user_key, date })
        .collect();
    write_rows(lake, Table::DailyUsers, &rows, replaced).await
}

/// gold/daily_users' rows as (user, day), sorted.
async fn users(lake: &Lake) -> BTreeSet<(String, i32)> {
    let mut rows = BTreeSet::new();
    for b in read_all(lake, Table::DailyUsers).await {
        let users = b.column_by_name("user_key").unwrap().as_string::<i32>();
        let dates = typed_column::<arrow::array::Date32Array>(&b, "date").unwrap();
        for i in 0..b.num_rows() {
            rows.insert((users.value(i).to_string(), dates.value(i)));
        }
    }
    rows
}

/// The paths of `kind`'s active data files.
async fn files(lake: &Lake, kind: Table) -> BTreeSet<String> {
    let table = lake.table(kind).await.unwrap();
    let files = active_files(&table, kind).unwrap();
    files.into_iter().map(|f| f.path).collect()
}

fn dates(from: i32, to: i32) -> Replaced {
    Replaced::Dates {
        column: "date",
        from,
        to,
    }
}

#[tokio::test]
async fn replacing_dates_of_a_partitioned_table_removes_their_partitions_and_keeps_the_others() {
    let (_dir, lake) = lake();
    // Two writes, so each date has two files.
    for user in ["a", "b"] {
        let rows: Vec<(&str, i32)> = (10..=13).map(|d| (user, d)).collect();
        write_users(&lake, &rows, Replaced::Nothing).await.unwrap();
    }
    let before = files(&lake, Table::DailyUsers).await;
    assert_eq!(before.len(), 8);

    write_users(&lake, &[("c", 11), ("d", 12)], dates(11, 12))
        .await
        .unwrap();

    let expected: BTreeSet<(String, i32)> = [("a", 10), ("b", 10), ("c", 11), ("d", 12)]
        .into_iter()
        .chain([("a", 13), ("b", 13)])
        .map(|(u, d)| (u.to_string(), d))
        .collect();
    assert_eq!(users(&lake).await, expected);
    let after = files(&lake, Table::DailyUsers).await;
    let kept: BTreeSet<_> = before.intersection(&after).cloned().collect();
    assert_eq!(
        kept.len(),
        4,
        "the files of dates 10 and 13 stay: {after:?}"
    );
    assert!(
        kept.iter()
            .all(|f| f.contains("date=1970-01-11") || f.contains("date=1970-01-14")),
        "{kept:?}"
    );

    // A row outside the dates it replaces is refused, and nothing is committed.
    let version = lake.table(Table::DailyUsers).await.unwrap().version();
    let outside = write_users(&lake, &[("e", 14)], dates(11, 12)).await;
    let error = outside.expect_err("a row outside the dates replaced");
    assert!(!error.is_retryable(), "{error}");
    assert_eq!(
        lake.table(Table::DailyUsers).await.unwrap().version(),
        version
    );
    assert_eq!(users(&lake).await, expected);

    // Every row replaced.
    write_users(&lake, &[("f", 20)], Replaced::Every)
        .await
        .unwrap();
    assert_eq!(users(&lake).await, BTreeSet::from([("f".to_string(), 20)]));
}

/// A row of gold/page_daily on `day` (days since the epoch).
fn page(day: i32, page_path: &str, page_views: i64) -> PageDaily {
    PageDaily {
        date: Date32Type::to_naive_date_opt(day).unwrap(),
        page_path: page_path.into(),
        page_views,
        ..PageDaily::default()
    }
}

/// Writes `rows` to gold/page_daily replacing `replaced`.
async fn write_pages(lake: &Lake, rows: &[PageDaily], replaced: Replaced) {
    write_rows(lake, Table::PageDaily, rows, replaced)
        .await
        .unwrap();
}

/// gold/page_daily's rows as (day, page, views), sorted.
async fn pages(lake: &Lake) -> BTreeSet<(i32, String, i64)> {
    let mut rows = BTreeSet::new();
    for b in read_all(lake, Table::PageDaily).await {
        let dates = typed_column::<arrow::array::Date32Array>(&b, "date").unwrap();
        let paths = b.column_by_name("page_path").unwrap().as_string::<i32>();
        let views = typed_column::<arrow::array::Int64Array>(&b, "page_views").unwrap();
        for i in 0..b.num_rows() {
            rows.insert((dates.value(i), paths.value(i).to_string(), views.value(i)));
        }
    }
    rows
}

#[tokio::test]
async fn replacing_dates_of_an_unpartitioned_table_rewrites_only_the_files_holding_them() {
    let (_dir, lake) = lake();
    let early = [page(1, "/a", 1), page(2, "/a", 2), page(2, "/b", 3)];
    write_pages(&lake, &early, Replaced::Nothing).await;
    let first = files(&lake, Table::PageDaily).await;
    write_pages(
        &lake,
        &[page(5, "/a", 5), page(6, "/c", 6)],
        Replaced::Nothing,
    )
    .await;
    let late: BTreeSet<_> = files(&lake, Table::PageDaily)
        .await
        .difference(&first)
        .cloned()
        .collect();

    write_pages(&lake, &[page(2, "/a", 20)], dates(2, 3)).await;

    let expected: BTreeSet<(i32, String, i64)> = [(1, "/a", 1), (2, "/a", 20)]
        .into_iter()
        .chain([(5, "/a", 5), (6, "/c", 6)])
        .map(|(d, p, v)| (d, p.to_string(), v))
        .collect();
    assert_eq!(pages(&lake).await, expected);
    let after = files(&lake, Table::PageDaily).await;
    assert!(after.is_superset(&late), "the file of dates 5-6 stays");
    assert!(
        after.is_disjoint(&first),
        "the file holding date 2 is rewritten"
    );
}

#[tokio::test]
async fn a_replacement_from_a_version_another_replacement_moved_past_loses_the_race() {
    let (_dir, lake) = lake();
    write_users(&lake, &[("a", 10), ("b", 11)], Replaced::Nothing)
        .await
        .unwrap();
    let kind = Table::DailyUsers;
    let stale = lake.table(kind).await.unwrap();
    write_users(&lake, &[("c", 10)], dates(10, 10))
        .await
        .unwrap();

    let rows = [DailyUser {
        user_key: "d",
        date: 10,
    }];
    let batch = batch_of(&kind.schema(), &rows).unwrap();
    let properties = kind.stage_writer_properties(None).unwrap();
    let lost = write_replacing(
        &stale,
        kind,
        vec![batch],
        dates(10, 10),
        properties,
        writer_commit(),
    )
    .await
    .expect_err("the stale write removes a file the other writer removed");
    assert!(lost.is_lost_race(), "{lost}");
    let expected = BTreeSet::from([("b".to_string(), 11), ("c".to_string(), 10)]);
    assert_eq!(users(&lake).await, expected);
}
