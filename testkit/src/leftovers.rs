//! What is left of an identifier in a lake: every byte of every file under a directory, read
//! as stored, and again decoded where the stored bytes are compressed (Parquet pages, gzip), so
//! that a value a compressor reshaped is still found.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use arrow::array::Array;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// One identifier found in one file, and how it was read there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// The file.
    pub file: PathBuf,
    /// The identifier found.
    pub identifier: String,
    /// `bytes` (as stored), `parquet` (a decoded value) or `gzip` (decompressed).
    pub read_as: &'static str,
}

/// Every file under `dir` (recursively), scanned for each of `identifiers`: its stored bytes,
/// and, for a Parquet file, every value of every column as text; for a gzip file, its content.
/// Also the number of files scanned (none when `dir` does not exist).
pub fn find(dir: &Path, identifiers: &[&str]) -> std::io::Result<(Vec<Leftover>, usize)> {
    let mut found = Vec::new();
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if !path.exists() {
            continue;
        }
        if path.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
            continue;
        }
        files += 1;
        found.extend(scan(&path, &std::fs::read(&path)?, identifiers)?);
    }
    Ok((found, files))
}

/// The `identifiers` in one file's `bytes` (stored at `file`): as stored, and decoded when it
/// is Parquet or gzip.
pub fn scan(file: &Path, bytes: &[u8], identifiers: &[&str]) -> std::io::Result<Vec<Leftover>> {
    let mut found = Vec::new();
    let mut note = |text: &[u8], read_as: &'static str| {
        for id in identifiers {
            if memmem(text, id.as_bytes()) {
                found.push(Leftover {
                    file: file.to_path_buf(),
                    identifier: id.to_string(),
                    read_as,
                });
            }
        }
    };
    note(bytes, "bytes");
    if bytes.starts_with(b"PAR1") {
        note(&parquet_text(bytes), "parquet");
    } else if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut text = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut text)?;
        note(&text, "gzip");
    }
    Ok(found)
}

fn memmem(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every value of every column of a Parquet file, as text, one per line (nested values as
/// arrow displays them); a file that cannot be decoded gives a note saying so, which holds no
/// identifier (the stored bytes are scanned as well).
fn parquet_text(bytes: &[u8]) -> Vec<u8> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut text = Vec::new();
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .and_then(|b| b.build());
    let Ok(reader) = reader else {
        return b"(not decodable)".to_vec();
    };
    let options = FormatOptions::default();
    for batch in reader.flatten() {
        for column in batch.columns() {
            // Bytes as they are (arrow would display them in hex).
            if let Some(binary) = column.as_any().downcast_ref::<arrow::array::BinaryArray>() {
                for value in binary.iter().flatten() {
                    text.extend_from_slice(value);
                    text.push(b'\n');
                }
                continue;
            }
            let Ok(formatter) = ArrayFormatter::try_new(column.as_ref(), &options) else {
                continue;
            };
            for i in 0..column.len() {
                text.extend_from_slice(formatter.value(i).to_string().as_bytes());
                text.push(b'\n');
            }
        }
    }
    text
}
