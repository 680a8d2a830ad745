//! Many writers at once: concurrent `clickstream ingest` processes of overlapping files on one
//! lake neither lose nor double a record, their counts add up, and gold ends exact.

use std::collections::HashSet;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use clickstream::gold::parse_funnel;
use clickstream::lake::{Lake, Table};
use clickstream_testkit::differences_from_scratch;

const WRITERS: usize = 8;

/// Runs `clickstream` with each argument list at once (with `envs`); waits for all, up to
/// `deadline`.
pub fn run_at_once(
    arg_lists: &[Vec<String>],
    envs: &[(String, String)],
    deadline: Duration,
) -> Vec<Output> {
    let started = Instant::now();
    let mut children: Vec<_> = arg_lists
        .iter()
        .map(|args| {
            Command::new(env!("CARGO_BIN_EXE_clickstream"))
                .args(args)
                .envs(envs.iter().cloned())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    loop {
        let mut running = 0;
        for child in &mut children {
            if child.try_wait().unwrap().is_none() {
                running += 1;
            }
        }
        if running == 0 {
            break;
        }
        if started.elapsed() > deadline {
            for child in &mut children {
                let _ = child.kill();
            }
            panic!("{running} writers still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

/// `silver N + quarantined N + duplicates N` of an ingest summary.
fn accounted(stdout: &str) -> usize {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Reconciliation:"))
        .unwrap_or_else(|| panic!("no reconciliation line in {stdout}"));
    let numbers: Vec<usize> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    // input, silver, quarantined, duplicates
    numbers[1] + numbers[2] + numbers[3]
}

async fn rows(lake: &Lake, table: Table) -> Vec<RecordBatch> {
    let t = lake.table(table).await.unwrap();
    lake.read(&t, &[], None).await.unwrap()
}

async fn event_ids(lake: &Lake) -> Vec<String> {
    let mut ids = Vec::new();
    for b in rows(lake, Table::Silver).await {
        let column = b.column_by_name("event_id").unwrap().as_string::<i32>();
        ids.extend(column.iter().flatten().map(str::to_string));
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn eight_ingests_of_overlapping_files_at_once() {
    let _turn = crate::machine_wide().await;
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let lake_uri = lake_dir.to_str().unwrap();
    ingests_at_once(dir.path(), lake_uri, &[], Lake::open(lake_uri).unwrap()).await;
}

/// Eight `clickstream ingest` processes at once, with `envs`, of overlapping parts of one corpus
/// into the lake at `lake_uri` (`lake` for reading it back): every line once in bronze, each
/// bronze row accounted once across the writers, no event_id twice in silver, the same silver
/// events as one ingest of the corpus alone, and gold equal to a full recomputation.
pub async fn ingests_at_once(
    work: &std::path::Path,
    lake_uri: &str,
    envs: &[(String, String)],
    lake: Lake,
) {
    let dir = tempfile::tempdir_in(work).unwrap();
    let corpus = dir.path().join("corpus.jsonl");
    let generated = Command::new(env!("CARGO_BIN_EXE_clickstream"))
        .args(["generate", "--events", "4000", "--days", "3", "--output"])
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(generated.status.success());
    // Lines as bytes: the corpus holds records that are not UTF-8 on purpose.
    let bytes = std::fs::read(&corpus).unwrap();
    let lines: Vec<&[u8]> = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    // Eight files, each 30% of the corpus, starting 10% apart: every line is in one to three.
    let step = lines.len() / 10;
    let lake_arg = lake_uri.to_string();
    let mut arg_lists = Vec::new();
    let mut landed_lines = 0;
    for i in 0..WRITERS {
        let end = if i == WRITERS - 1 {
            lines.len()
        } else {
            i * step + 3 * step
        };
        let part = &lines[i * step..end];
        landed_lines += part.len();
        let file = dir.path().join(format!("part-{i}.jsonl"));
        std::fs::write(&file, part.join(&b'\n')).unwrap();
        arg_lists.push(vec![
            "ingest".to_string(),
            "--lake".to_string(),
            lake_arg.clone(),
            file.to_str().unwrap().to_string(),
        ]);
    }

    let outputs = run_at_once(&arg_lists, envs, Duration::from_secs(600));
    let mut processed = 0;
    for (i, out) in outputs.iter().enumerate() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "writer {i} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        processed += accounted(&stdout);
    }

    let bronze_rows: usize = rows(&lake, Table::Bronze)
        .await
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(
        bronze_rows, landed_lines,
        "every landed line once in bronze"
    );
    assert_eq!(
        processed, bronze_rows,
        "the writers' silver runs together accounted for each bronze row exactly once"
    );
    let ids = event_ids(&lake).await;
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "an event_id twice in silver");

    // The same corpus ingested once, alone, gives the same silver events and the same gold.
    let alone = dir.path().join("alone");
    let out = Command::new(env!("CARGO_BIN_EXE_clickstream"))
        .args(["ingest", "--lake", alone.to_str().unwrap()])
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(out.status.success());
    let alone = Lake::open(alone.to_str().unwrap()).unwrap();
    let alone_ids: HashSet<String> = event_ids(&alone).await.into_iter().collect();
    assert_eq!(
        distinct,
        alone_ids.iter().collect(),
        "silver holds other events than one ingest of the corpus"
    );
    let differences = differences_from_scratch(&lake, &parse_funnel(None))
        .await
        .unwrap();
    assert!(differences.is_empty(), "gold is wrong: {differences:?}");
}
