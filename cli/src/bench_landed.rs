//! `clickstream bench landed-files`: what bronze alone costs on hostile and huge landed files, in
//! wall time and peak RSS, each file in a fresh child process on a fresh lake: a decompression
//! bomb (a small `.jsonl.gz` expanding to gigabytes of zeros) and a plain file of generated
//! events gigabytes long. The bound to hold: bronze-writer's 1,024 MB function.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clickstream::functions::{self, BronzeTrigger};
use clickstream_generator::{Generator, GeneratorConfig};

use crate::summary::peak_rss_mib;

/// Writes the files, then runs bronze on each in a child process and prints one line per file.
pub async fn landed_files(bomb_gib: u64, plain_gib: f64) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("clickstream-bench-landed-")
        .tempdir()?;
    let bomb = dir.path().join("bomb.jsonl.gz");
    write_bomb(&bomb, bomb_gib)?;
    let plain = dir.path().join("events.jsonl");
    let started = Instant::now();
    let events = write_events(&plain, (plain_gib * (1u64 << 30) as f64) as u64)?;
    eprintln!(
        "wrote {events} events ({:.2} GiB) in {:.1}s",
        std::fs::metadata(&plain)?.len() as f64 / (1u64 << 30) as f64,
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<44} {:>12} {:>9} {:>10}  outcome",
        "landed file", "stored", "wall", "peak RSS"
    );
    let runs = [
        (format!("gzip bomb, {bomb_gib} GiB of zeros"), &bomb),
        (format!("plain JSON lines, {plain_gib} GiB"), &plain),
    ];
    for (label, file) in runs {
        let output = tokio::process::Command::new(std::env::current_exe()?)
            .args(["bench", "landed-file-run", "--file"])
            .arg(file)
            .output()
            .await
            .with_context(|| format!("running bronze on {label} in a child process"))?;
        if !output.status.success() {
            bail!("{label}: {}", String::from_utf8_lossy(&output.stderr));
        }
        let report: serde_json::Value = serde_json::from_slice(&output.stdout)
            .with_context(|| format!("reading the report of {label}"))?;
        println!(
            "{:<44} {:>8.1} MiB {:>8.2}s {:>6.0} MiB  {}",
            label,
            std::fs::metadata(file)?.len() as f64 / (1u64 << 20) as f64,
            report["wall_s"].as_f64().unwrap_or(f64::NAN),
            report["peak_rss_mib"].as_f64().unwrap_or(f64::NAN),
            report["outcome"].as_str().unwrap_or_default(),
        );
    }
    Ok(())
}

/// `bench landed-file-run`: bronze-writer (with the `BRONZE_*` settings of the environment) on
/// one landed file in a new lake, in this process; prints wall time, peak RSS and what bronze
/// did as JSON.
pub async fn landed_file_run(file: &Path) -> Result<()> {
    let lake_dir = tempfile::Builder::new()
        .prefix("clickstream-bench-landed-lake-")
        .tempdir()?;
    let lake = clickstream::Lake::open(&lake_dir.path().display().to_string())?;
    let options = clickstream::settings::bronze_options(&clickstream::settings::Environment)?;
    let started = Instant::now();
    let event = clickstream::bronze::land_file(&lake, file).await?;
    let outcomes = functions::bronze_writer(&lake, &BronzeTrigger::Landed(event), &options).await?;
    let wall = started.elapsed();
    let written: usize = outcomes.iter().map(|o| o.written).sum();
    let outcome = match outcomes.iter().find_map(|o| o.unreadable.as_deref()) {
        Some(why) => format!("recorded in bronze/failed_files: {why}"),
        None => format!("{written} records in {} commits", outcomes.len()),
    };
    println!(
        "{}",
        serde_json::json!({
            "wall_s": wall.as_secs_f64(),
            "peak_rss_mib": peak_rss_mib(),
            "outcome": outcome,
        })
    );
    Ok(())
}

/// A `.jsonl.gz` of `gib` GiB of zeros, as gzip members of 1 MiB each (about 1 MB a GiB).
fn write_bomb(path: &Path, gib: u64) -> Result<()> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&vec![0; 1 << 20])?;
    let member = encoder.finish()?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for _ in 0..gib * 1024 {
        out.write_all(&member)?;
    }
    out.flush()?;
    Ok(())
}

/// Generated events as JSON lines until the file holds `bytes`; returns how many.
fn write_events(path: &Path, bytes: u64) -> Result<usize> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let (mut written, mut events) = (0u64, 0);
    // More events than fit (JSON lines of generated events are over 200 bytes each): the file is
    // cut at `bytes`.
    let mut config = GeneratorConfig::new((bytes / 200) as usize + 1);
    config.days = 30;
    for line in Generator::new(config) {
        if written >= bytes {
            break;
        }
        out.write_all(&line)?;
        out.write_all(b"\n")?;
        written += line.len() as u64 + 1;
        events += 1;
    }
    out.flush()?;
    Ok(events)
}
