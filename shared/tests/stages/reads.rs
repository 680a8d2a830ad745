//! `lake::read_dates`, the stages' engine-free read of a table's dates: the same rows as a
//! DataFusion scan of the table filtered to those dates, on partitioned and unpartitioned tables.

use arrow::array::RecordBatch;
use arrow::datatypes::Date32Type;
use chrono::{Duration, Utc};
use clickstream::lake::{Table, read_dates, typed_column};

use crate::pipeline::{batch, event, lake, read_all, run};

/// Every row of `batches` as text (`columns` of it, in that order), sorted.
fn rows(batches: &[RecordBatch], columns: &[&str]) -> Vec<String> {
    let mut rows = Vec::new();
    for b in batches {
        let shown: Vec<_> = columns
            .iter()
            .map(|c| {
                let column = b
                    .column_by_name(c)
                    .unwrap_or_else(|| panic!("no column {c}"));
                arrow::util::display::ArrayFormatter::try_new(column.as_ref(), &Default::default())
                    .unwrap()
            })
            .collect();
        for i in 0..b.num_rows() {
            rows.push(
                shown
                    .iter()
                    .map(|f| f.value(i).to_string())
                    .collect::<Vec<_>>()
                    .join("|"),
            );
        }
    }
    rows.sort();
    rows
}

/// The names of `batch`'s columns, in order.
fn column_names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

#[tokio::test]
async fn read_dates_gives_the_rows_of_the_wanted_dates_as_a_query_engine_does() {
    let (_dir, lake) = lake();
    // Events on four days, over two batches, so tables have several files per date.
    let now = Utc::now();
    for (partition, first) in [(0, 0), (1, 0)] {
        let values = (0..40)
            .map(|i| {
                let at = now - Duration::days((i / 4) % 4) - Duration::minutes(i);
                let kind = ["page_view", "add_to_cart", "checkout", "purchase"][i as usize % 4];
                event(
                    &format!("r{partition}-{i}"),
                    &format!("u{}", i % 7),
                    at,
                    kind,
                )
            })
            .collect();
        run(&lake, &batch(partition, first, values)).await;
    }
    // And one large file on a wanted date, with ids that do not compress: read by ranges, where
    // the small files are fetched whole.
    let values = (0..6_000u64)
        .map(|i| {
            let id = format!("big-{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let at = now - Duration::days(1) - Duration::seconds(i as i64);
            event(&id, &format!("u{}", i % 50), at, "page_view")
        })
        .collect();
    run(&lake, &batch(2, 0, values)).await;
    let today = Date32Type::from_naive_date(now.date_naive());
    let wanted = |d: i32| d == today - 1 || d == today - 3;
    let silver = lake.table(Table::Silver).await.unwrap();
    let sizes: Vec<i64> = silver
        .snapshot()
        .unwrap()
        .log_data()
        .iter()
        .map(|f| f.size())
        .collect();
    // The reader's footer prefetch (64 KB): files up to it are fetched whole.
    let prefetch = 64 * 1024;
    assert!(
        sizes.iter().any(|&s| s <= prefetch) && sizes.iter().any(|&s| s > prefetch),
        "silver has files on both sides of the footer prefetch: {sizes:?}"
    );
    for (table, date_column) in [
        (Table::Silver, "event_date"),
        (Table::Sessions, "session_date"),
        (Table::DailyUsers, "date"),
        (Table::DailyMetrics, "date"),
        (Table::PageDaily, "date"),
    ] {
        let handle = lake.table(table).await.unwrap();
        let all_columns: Vec<String> = table
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let all_columns: Vec<&str> = all_columns.iter().map(String::as_str).collect();
        // The oracle: every row through DataFusion, filtered here.
        let mut kept = Vec::new();
        for b in &read_all(&lake, table).await {
            let dates = typed_column::<arrow::array::Date32Array>(b, date_column).unwrap();
            let keep: arrow::array::BooleanArray =
                dates.iter().map(|d| Some(d.is_some_and(wanted))).collect();
            kept.push(arrow::compute::filter_record_batch(b, &keep).unwrap());
        }
        let expected = rows(&kept, &all_columns);
        assert!(
            !expected.is_empty(),
            "{table:?} has rows on the wanted dates"
        );

        let read = read_dates(&handle, table, date_column, wanted, &[])
            .await
            .unwrap();
        for b in &read {
            assert_eq!(
                column_names(b),
                all_columns,
                "{table:?}: every column, in the table's order"
            );
        }
        assert_eq!(rows(&read, &all_columns), expected, "{table:?}");

        // Some columns, in the order asked for, the date column first.
        let some = [date_column, all_columns[0]];
        let read = read_dates(&handle, table, date_column, wanted, &some)
            .await
            .unwrap();
        for b in &read {
            assert_eq!(
                column_names(b),
                some,
                "{table:?}: the columns asked for, in that order"
            );
        }
        assert_eq!(rows(&read, &some), rows(&kept, &some), "{table:?}");
    }
}

#[tokio::test]
async fn a_run_takes_commits_up_to_its_rows_and_a_larger_commit_alone() {
    use clickstream::bronze::BronzeOptions;
    use clickstream::functions::bronze_writer;
    use clickstream::lake::added_since;
    let (_dir, lake) = lake();
    let now = Utc::now();
    // Three bronze commits of 4 records each.
    let mut versions = Vec::new();
    for c in 0..3 {
        let values = (0..4)
            .map(|i| event(&format!("c{c}-{i}"), "u", now, "click"))
            .collect();
        let written = bronze_writer(&lake, &batch(0, c * 4, values), &BronzeOptions::default())
            .await
            .unwrap();
        versions.extend(written.iter().filter_map(|b| b.version));
    }
    assert_eq!(versions.len(), 3);
    let bronze = lake.unloaded_table(Table::Bronze).unwrap();
    let span = (versions[0] - 1, versions[2]);
    let taken = |max_rows| {
        let bronze = bronze.clone();
        async move {
            let (commits, last) = added_since(&bronze, span, &["payload"], max_rows)
                .await
                .unwrap();
            let rows: usize = commits
                .iter()
                .flat_map(|c| c.batches())
                .map(RecordBatch::num_rows)
                .sum();
            (commits.len(), rows, last)
        }
    };
    // 8 rows hold two commits; 6 only one, not a second that would take the run past them.
    assert_eq!(taken(8).await, (2, 8, versions[1]));
    assert_eq!(taken(6).await, (1, 4, versions[0]));
    // A commit larger than the bound is a run of its own.
    assert_eq!(taken(3).await, (1, 4, versions[0]));
    assert_eq!(taken(100).await, (3, 12, versions[2]));
}
