//! A landed file's records: its format from its name, gzip, a UTF-8 BOM, and each record's byte
//! range in one buffer (JSON lines, or the elements of a JSON array), so that splitting copies
//! nothing.

use std::io::Read;

use crate::error::{Error, Result};

/// The records of a landed file: one buffer and the byte range of each record in it, so that
/// splitting copies nothing.
#[derive(Debug, Clone, Default)]
pub struct LandedRecords {
    pub(super) buffer: bytes::Bytes,
    pub(super) ranges: Vec<std::ops::Range<usize>>,
    /// How the file deviated from its format, when it did.
    pub(super) warning: Option<String>,
}

impl LandedRecords {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when the file holds no records.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The records, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.ranges.iter().map(|r| &self.buffer[r.clone()])
    }

    /// How the file deviated from its format (records are still all there), if it did.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }
}

/// The ranges of the non-blank lines of `data` (without a trailing `\r`).
fn line_ranges(data: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    for end in memchr_lines(data) {
        let mut line = start..end;
        if data[line.clone()].ends_with(b"\r") {
            line.end -= 1;
        }
        if !data[line.clone()].iter().all(u8::is_ascii_whitespace) {
            ranges.push(line);
        }
        start = end + 1;
    }
    ranges
}

/// Splits a landed file into records: one per non-blank line for `.jsonl`, one per array
/// element (or the single object) for `.json`; `.gz` is decompressed first and a leading UTF-8
/// byte order mark dropped. A `.json` file that is JSON lines (its first line a JSON object) is
/// read as such; one that does not parse at all becomes one record, so it is quarantined rather than lost,
/// and the result carries a warning either way.
pub fn split_records(key: &str, bytes: bytes::Bytes) -> Result<LandedRecords> {
    let (format, gzipped) = file_format(key)?;
    let mut data = if gzipped {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .map_err(|e| Error::LandedFile {
                key: key.to_string(),
                reason: format!("gzip: {e}"),
            })?;
        bytes::Bytes::from(out)
    } else {
        bytes
    };
    if data.starts_with(UTF8_BOM) {
        data = data.slice(UTF8_BOM.len()..);
    }
    Ok(match format {
        FileFormat::JsonLines => LandedRecords {
            ranges: line_ranges(&data),
            buffer: data,
            warning: None,
        },
        FileFormat::Json => match serde_json::from_slice::<serde::de::IgnoredAny>(&data) {
            Ok(_) => LandedRecords {
                // An array is one record per element, each kept as written (re-serialising
                // would change numbers); anything else is one record.
                ranges: array_element_ranges(&data)
                    .unwrap_or_else(|| std::iter::once(0..data.len()).collect()),
                buffer: data,
                warning: None,
            },
            Err(whole) => {
                // JSON lines named `.json`: the first line is a whole record on its own (its
                // other lines, valid or not, are records like any file's lines).
                let lines = line_ranges(&data);
                let first_is_object = lines.first().is_some_and(|r| {
                    matches!(
                        serde_json::from_slice::<serde_json::Value>(&data[r.clone()]),
                        Ok(serde_json::Value::Object(_))
                    )
                });
                if lines.len() > 1 && first_is_object {
                    LandedRecords {
                        warning: Some(format!(
                            "not one JSON document but {} lines: read as JSON lines (name it \
                             .jsonl)",
                            lines.len()
                        )),
                        ranges: lines,
                        buffer: data,
                    }
                } else {
                    LandedRecords {
                        warning: Some(format!(
                            "not valid JSON ({whole}): kept as one record, which silver \
                             quarantines as not_json"
                        )),
                        ranges: std::iter::once(0..data.len()).collect(),
                        buffer: data,
                    }
                }
            }
        },
    })
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The byte ranges of the elements of `data` when it is a JSON array (which must parse as a whole),
/// found with serde_json's parser one element at a time; `None` when it is not an array.
fn array_element_ranges(data: &[u8]) -> Option<Vec<std::ops::Range<usize>>> {
    let skip_whitespace = |mut p: usize| {
        while data.get(p).is_some_and(u8::is_ascii_whitespace) {
            p += 1;
        }
        p
    };
    let mut pos = skip_whitespace(0);
    if data.get(pos) != Some(&b'[') {
        return None;
    }
    pos = skip_whitespace(pos + 1);
    let mut ranges = Vec::new();
    if data.get(pos) == Some(&b']') {
        return Some(ranges);
    }
    loop {
        let mut values =
            serde_json::Deserializer::from_slice(&data[pos..]).into_iter::<serde::de::IgnoredAny>();
        values.next()?.ok()?;
        let end = pos + values.byte_offset();
        ranges.push(pos..end);
        pos = skip_whitespace(end);
        match data.get(pos) {
            Some(b',') => pos = skip_whitespace(pos + 1),
            Some(b']') => return Some(ranges),
            _ => return None,
        }
    }
}

/// The end offsets of the lines of `data` (the last line may lack its newline).
fn memchr_lines(data: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start >= data.len() {
            return None;
        }
        let end = data[start..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(data.len(), |p| start + p);
        start = end + 1;
        Some(end)
    })
}

/// Landed file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// One record per line (`.jsonl`, `.ndjson`).
    JsonLines,
    /// A JSON array of records, or one record (`.json`).
    Json,
}

/// The format of a landed file from its name, and whether it is gzipped.
pub fn file_format(key: &str) -> Result<(FileFormat, bool)> {
    let (name, gzipped) = key.strip_suffix(".gz").map_or((key, false), |n| (n, true));
    if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        Ok((FileFormat::JsonLines, gzipped))
    } else if name.ends_with(".json") {
        Ok((FileFormat::Json, gzipped))
    } else {
        Err(Error::LandedFile {
            key: key.to_string(),
            reason: "unsupported file type (expected .jsonl, .jsonl.gz, .json or .json.gz)".into(),
        })
    }
}

/// A gzip writer for `.jsonl.gz` output.
pub fn gzip_writer<W: std::io::Write>(w: W) -> impl std::io::Write {
    flate2::write::GzEncoder::new(w, flate2::Compression::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(key: &str, bytes: &[u8]) -> Result<Vec<Vec<u8>>> {
        let records = split_records(key, bytes::Bytes::copy_from_slice(bytes))?;
        Ok(records.iter().map(<[u8]>::to_vec).collect())
    }

    #[test]
    fn jsonl_splits_lines_and_skips_blanks() {
        let recs = split("landing/a.jsonl", b"{\"a\":1}\r\n\n{\"b\":2}\nnot json\n").unwrap();
        assert_eq!(
            recs,
            vec![
                b"{\"a\":1}".to_vec(),
                b"{\"b\":2}".to_vec(),
                b"not json".to_vec()
            ]
        );
        assert_eq!(split("landing/b.jsonl", b"x\ny").unwrap().len(), 2);
    }

    #[test]
    fn json_array_is_one_record_per_element() {
        let recs = split("landing/a.json", b" [{\"a\":1}, 2 ,\n[ ] ]").unwrap();
        assert_eq!(
            recs,
            vec![b"{\"a\":1}".to_vec(), b"2".to_vec(), b"[ ]".to_vec()]
        );
        // Elements keep their text: numbers are not re-serialised.
        let big = br#"{"n":123456789012345678901234567890,"f":1.5835566912804616e+70}"#;
        let text = [&b"["[..], big, b"]"].concat();
        assert_eq!(split("landing/c.json", &text).unwrap(), vec![big.to_vec()]);
        assert_eq!(split("landing/d.json", b"[]").unwrap().len(), 0);
        assert_eq!(
            split("landing/b.json", b"{oops").unwrap(),
            vec![b"{oops".to_vec()]
        );
    }

    #[test]
    fn byte_order_mark_is_dropped() {
        let bom = b"\xEF\xBB\xBF";
        let jsonl = [&bom[..], b"{\"a\":1}\n{\"b\":2}"].concat();
        assert_eq!(split("landing/a.jsonl", &jsonl).unwrap()[0], b"{\"a\":1}");
        let json = [&bom[..], b"[{\"a\":1}]"].concat();
        assert_eq!(
            split("landing/a.json", &json).unwrap(),
            vec![b"{\"a\":1}".to_vec()]
        );
    }

    #[test]
    fn json_lines_named_json_are_read_as_lines_with_a_warning() {
        let records = split_records(
            "landing/a.json",
            bytes::Bytes::from_static(b"{\"a\":1}\n{\"b\":2}\n"),
        )
        .unwrap();
        assert_eq!(records.len(), 2);
        assert!(records.warning().unwrap().contains("JSON lines"));
        let with_a_bad_line = split("landing/d.json", b"{\"a\":1}\n{oops\n").unwrap();
        assert_eq!(
            with_a_bad_line,
            vec![b"{\"a\":1}".to_vec(), b"{oops".to_vec()]
        );
        let broken = split_records(
            "landing/b.json",
            bytes::Bytes::from_static(b"[{\"a\":1},\n"),
        )
        .unwrap();
        assert_eq!(broken.len(), 1);
        assert!(broken.warning().unwrap().contains("not valid JSON"));
        let fine = split_records("landing/c.json", bytes::Bytes::from_static(b"[1]")).unwrap();
        assert_eq!(fine.warning(), None);
    }

    #[test]
    fn gzip_is_decompressed() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"a\":1}\n{\"a\":2}\n").unwrap();
        let recs = split("landing/x.jsonl.gz", &gz.finish().unwrap()).unwrap();
        assert_eq!(recs.len(), 2);
        assert!(split("landing/x.jsonl.gz", b"not gzip").is_err());
    }

    #[test]
    fn unknown_extension_is_an_error() {
        assert!(matches!(
            split("landing/a.csv", b"x"),
            Err(Error::LandedFile { .. })
        ));
    }
}
