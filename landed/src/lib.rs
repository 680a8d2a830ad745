//! A landed file's records, read as a stream: its format from its name, gzip, a UTF-8 BOM, and
//! each record's byte range, cut into chunks bounded by records and by bytes, so memory follows
//! the chunk, not the file. Every limit is checked as the bytes arrive: a decompression bomb
//! stops at the first limit it passes.

use std::collections::VecDeque;
use std::io::Write;
use std::ops::Range;

/// Why a landed file cannot be read: it fails the same way however often it is read, so bronze
/// records it in `bronze/failed_files` instead of retrying it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("landed file {key}: {reason}")]
pub struct Unreadable {
    /// The file's key in the lake.
    pub key: String,
    /// Why it cannot be read.
    pub reason: String,
}

/// Result of reading a landed file.
pub type Result<T, E = Unreadable> = std::result::Result<T, E>;

/// Limits on a landed file; a file past one is recorded in `bronze/failed_files`, whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandedLimits {
    /// Most bytes a file may hold once decompressed.
    pub max_file_bytes: u64,
    /// Most bytes of one record (a line of a `.jsonl` file, an element of a `.json` array).
    pub max_record_bytes: usize,
    /// Most bytes of a `.json` file once decompressed: a JSON document is parsed whole, so it is
    /// held in memory whole (JSON lines are not).
    pub max_document_bytes: usize,
}

/// Default of [`LandedLimits::max_file_bytes`]: 4 GiB decompressed.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 4 << 30;
/// Default of [`LandedLimits::max_record_bytes`]: 1 MiB (silver quarantines records over
/// 256 KiB as `too_large`; bronze keeps them so that it can).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 1 << 20;
/// Default of [`LandedLimits::max_document_bytes`]: 128 MiB.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 128 << 20;

impl Default for LandedLimits {
    fn default() -> Self {
        LandedLimits {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            max_document_bytes: DEFAULT_MAX_DOCUMENT_BYTES,
        }
    }
}

/// Most records per chunk, the unit of one bronze commit. Chunking decides each chunk's index
/// (its `txn` version), so it is fixed, not a setting: a retry must cut the file the same way.
pub const CHUNK_RECORDS: usize = 100_000;
/// A chunk is sealed at the first record that brings it to this many bytes.
pub const CHUNK_BYTES: usize = 32 << 20;
/// Stored bytes handed to the decoder at a time: gzip expands a piece at most ~1,000-fold, so
/// no more than ~8 MiB arrive between two looks at the chunk.
const PIECE_BYTES: usize = 8 << 10;

/// Consecutive records of a landed file: one buffer and each record's byte range in it.
#[derive(Debug, Clone, Default)]
pub struct RecordChunk {
    buffer: bytes::Bytes,
    ranges: Vec<Range<usize>>,
    /// How many records of the file come before this chunk.
    pub first_record: u64,
}

impl RecordChunk {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// True when the chunk holds no records.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The records, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.ranges.iter().map(|r| &self.buffer[r.clone()])
    }
}

/// All the records of a landed file read at once (tests and tools; bronze reads a stream).
#[derive(Debug, Clone, Default)]
pub struct LandedRecords {
    /// The file's chunks, in order.
    pub chunks: Vec<RecordChunk>,
    /// How the file deviated from its format (records are still all there), if it did.
    pub warning: Option<String>,
}

impl LandedRecords {
    /// Number of records.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(RecordChunk::len).sum()
    }

    /// True when the file holds no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records, in file order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().flat_map(RecordChunk::iter)
    }

    /// How the file deviated from its format, if it did.
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }
}

/// Splits a whole landed file held in memory into records (see [`LandedReader`]).
pub fn split_records(key: &str, stored: &[u8], limits: &LandedLimits) -> Result<LandedRecords> {
    let mut reader = LandedReader::new(key, limits, Pass::Split)?;
    let mut chunks = Vec::new();
    let mut rest = stored;
    while !rest.is_empty() {
        rest = &rest[reader.push(rest)?..];
        chunks.extend(std::iter::from_fn(|| reader.next_chunk()));
    }
    let (last, warning) = reader.finish()?;
    chunks.extend(last);
    Ok(LandedRecords { chunks, warning })
}

/// What a pass over a landed file keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Only checks the limits and the compression: keeps no record, so that a file past a limit
    /// is known before any of it is written.
    Check,
    /// Cuts the file into chunks of records.
    Split,
}

/// Reads a landed file pushed to it as stored (gzipped or not): `.jsonl` one record per non-blank
/// line, `.json` one per array element (or the single object), a leading UTF-8 byte order mark
/// dropped. A `.json` file that is JSON lines (its first line a JSON object) is read as such; one
/// that does not parse at all becomes one record, so it is quarantined rather than lost, and
/// either way [`LandedReader::finish`] returns a warning.
pub struct LandedReader {
    key: String,
    decoder: Decoder,
}

enum Decoder {
    Plain(Splitter),
    Gzip(Box<flate2::write::MultiGzDecoder<Splitter>>),
}

impl LandedReader {
    /// A reader for the file at `key`, whose name gives its format; an error when it has none.
    pub fn new(key: &str, limits: &LandedLimits, pass: Pass) -> Result<LandedReader> {
        let (format, gzipped) = file_format(key)?;
        let splitter = Splitter::new(format, limits.clone(), pass);
        Ok(LandedReader {
            key: key.to_string(),
            decoder: if gzipped {
                Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(splitter)))
            } else {
                Decoder::Plain(splitter)
            },
        })
    }

    /// Reads one piece (at most 8 KiB) of stored bytes from the front of `stored`: returns how
    /// many it took. Take the chunks it sealed with [`LandedReader::next_chunk`] before pushing
    /// again, so that what is held stays one open chunk plus what one piece decompresses to.
    pub fn push(&mut self, stored: &[u8]) -> Result<usize> {
        let piece = &stored[..stored.len().min(PIECE_BYTES)];
        let written = match &mut self.decoder {
            Decoder::Plain(splitter) => splitter.write_all(piece),
            Decoder::Gzip(decoder) => decoder.write_all(piece),
        };
        written.map_err(|e| self.unreadable(&e))?;
        Ok(piece.len())
    }

    /// The next sealed chunk, if one is ready.
    pub fn next_chunk(&mut self) -> Option<RecordChunk> {
        self.splitter().ready.pop_front()
    }

    /// Ends the file: its last chunks (every chunk of a `.json` file, which is split only once
    /// whole), and a warning when the file deviated from its format.
    pub fn finish(mut self) -> Result<(Vec<RecordChunk>, Option<String>)> {
        if let Decoder::Gzip(decoder) = &mut self.decoder {
            decoder.try_finish().map_err(|e| self.unreadable(&e))?;
        }
        let key = self.key.clone();
        let splitter = self.splitter();
        splitter
            .finish()
            .map_err(|reason| Unreadable { key, reason })?;
        let warning = splitter.warning.take();
        Ok((splitter.ready.drain(..).collect(), warning))
    }

    fn splitter(&mut self) -> &mut Splitter {
        match &mut self.decoder {
            Decoder::Plain(splitter) => splitter,
            Decoder::Gzip(decoder) => decoder.get_mut(),
        }
    }

    /// The error for a failed write: the limit the splitter refused, or else gzip's complaint.
    fn unreadable(&mut self, e: &std::io::Error) -> Unreadable {
        let reason = match self.splitter().refused.take() {
            Some(limit) => limit,
            None if matches!(self.decoder, Decoder::Gzip(_)) => format!("gzip: {e}"),
            None => e.to_string(),
        };
        Unreadable {
            key: self.key.clone(),
            reason,
        }
    }
}

/// Cuts decompressed bytes into records and sealed chunks, checking the limits as they arrive.
struct Splitter {
    format: FileFormat,
    limits: LandedLimits,
    pass: Pass,
    /// Decompressed bytes so far.
    seen: u64,
    /// Records sealed into chunks so far.
    sealed: u64,
    /// Lines ended so far (JSON lines), blank or not.
    lines: u64,
    /// The chunk being filled (JSON lines), or the whole document (JSON).
    buffer: Vec<u8>,
    /// Records of the chunk being filled.
    ranges: Vec<Range<usize>>,
    /// Where the unfinished line starts in `buffer`, and its length so far.
    line_start: usize,
    line_len: usize,
    /// Whether the unfinished line is the file's first (which may start with a BOM).
    first_line: bool,
    ready: VecDeque<RecordChunk>,
    /// The limit a write passed, when one did.
    refused: Option<String>,
    warning: Option<String>,
}

impl Splitter {
    fn new(format: FileFormat, limits: LandedLimits, pass: Pass) -> Splitter {
        Splitter {
            format,
            limits,
            pass,
            seen: 0,
            sealed: 0,
            lines: 0,
            buffer: Vec::new(),
            ranges: Vec::new(),
            line_start: 0,
            line_len: 0,
            first_line: true,
            ready: VecDeque::new(),
            refused: None,
            warning: None,
        }
    }

    fn take_lines(&mut self, mut data: &[u8]) -> std::result::Result<(), String> {
        while !data.is_empty() {
            let (piece, complete, rest) = match memchr::memchr(b'\n', data) {
                Some(p) => (&data[..p], true, &data[p + 1..]),
                None => (data, false, &data[data.len()..]),
            };
            self.line_len += piece.len();
            if self.line_len > self.limits.max_record_bytes {
                return Err(format!(
                    "line {} is over the record limit of {} bytes (BRONZE_MAX_RECORD_BYTES)",
                    self.lines + 1,
                    self.limits.max_record_bytes
                ));
            }
            if self.pass == Pass::Split {
                self.buffer.extend_from_slice(piece);
            }
            if complete {
                self.end_line();
            }
            data = rest;
        }
        Ok(())
    }

    /// Ends the unfinished line: a record unless blank; seals the chunk when it is full.
    fn end_line(&mut self) {
        let mut line = self.line_start..self.buffer.len();
        if std::mem::take(&mut self.first_line) && self.buffer[line.clone()].starts_with(UTF8_BOM) {
            line.start += UTF8_BOM.len();
        }
        if self.buffer[line.clone()].ends_with(b"\r") {
            line.end -= 1;
        }
        if self.buffer[line.clone()]
            .iter()
            .all(u8::is_ascii_whitespace)
        {
            self.buffer.truncate(self.line_start);
        } else {
            self.ranges.push(line);
            if self.ranges.len() >= CHUNK_RECORDS || self.buffer.len() >= CHUNK_BYTES {
                self.seal();
            }
        }
        self.line_start = self.buffer.len();
        self.line_len = 0;
        self.lines += 1;
    }

    /// Moves the records taken so far into a ready chunk.
    /// The next chunk's buffer and ranges start at the size of the one sealed, so that a big file's
    /// chunks are not grown by doubling (each growth copies the chunk into fresh pages).
    fn seal(&mut self) {
        let (next_bytes, next_records) = (self.buffer.len(), self.ranges.len());
        let ranges = std::mem::replace(&mut self.ranges, Vec::with_capacity(next_records));
        let buffer = std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(next_bytes + next_bytes / 16),
        );
        let chunk = RecordChunk {
            buffer: bytes::Bytes::from(buffer),
            first_record: self.sealed,
            ranges,
        };
        self.sealed += chunk.len() as u64;
        self.line_start = 0;
        self.ready.push_back(chunk);
    }

    fn finish(&mut self) -> std::result::Result<(), String> {
        match self.format {
            FileFormat::JsonLines => {
                if self.line_len > 0 {
                    self.end_line();
                }
                if !self.ranges.is_empty() {
                    self.seal();
                }
            }
            FileFormat::Json if self.pass == Pass::Split => self.split_document()?,
            FileFormat::Json => {}
        }
        Ok(())
    }

    /// Splits a whole `.json` file into chunks that share its buffer.
    fn split_document(&mut self) -> std::result::Result<(), String> {
        let mut document = bytes::Bytes::from(std::mem::take(&mut self.buffer));
        if document.starts_with(UTF8_BOM) {
            document = document.slice(UTF8_BOM.len()..);
        }
        let (ranges, warning) = document_records(&document);
        self.warning = warning;
        if let Some(big) = ranges
            .iter()
            .position(|r| r.len() > self.limits.max_record_bytes)
        {
            return Err(format!(
                "element {} is over the record limit of {} bytes (BRONZE_MAX_RECORD_BYTES)",
                big + 1,
                self.limits.max_record_bytes
            ));
        }
        let mut start = 0;
        while start < ranges.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < ranges.len() && end - start < CHUNK_RECORDS && bytes < CHUNK_BYTES {
                bytes += ranges[end].len();
                end += 1;
            }
            self.ready.push_back(RecordChunk {
                buffer: document.clone(),
                ranges: ranges[start..end].to_vec(),
                first_record: start as u64,
            });
            start = end;
        }
        Ok(())
    }
}

impl Write for Splitter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.seen += data.len() as u64;
        let taken = if self.seen > self.limits.max_file_bytes {
            Err(format!(
                "over the file limit of {} bytes decompressed (BRONZE_MAX_FILE_BYTES)",
                self.limits.max_file_bytes
            ))
        } else {
            match self.format {
                FileFormat::JsonLines => self.take_lines(data),
                FileFormat::Json if self.seen > self.limits.max_document_bytes as u64 => {
                    Err(format!(
                        "a .json file is read whole, and this one is over the limit of {} bytes \
                         decompressed (BRONZE_MAX_DOCUMENT_BYTES; land big files as .jsonl)",
                        self.limits.max_document_bytes
                    ))
                }
                FileFormat::Json => {
                    if self.pass == Pass::Split {
                        self.buffer.extend_from_slice(data);
                    }
                    Ok(())
                }
            }
        };
        taken.map(|()| data.len()).map_err(|limit| {
            self.refused = Some(limit.clone());
            std::io::Error::other(limit)
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The records of a whole `.json` file, and a warning when it is not one JSON document.
fn document_records(data: &[u8]) -> (Vec<Range<usize>>, Option<String>) {
    match serde_json::from_slice::<serde::de::IgnoredAny>(data) {
        // An array is one record per element, each kept as written (re-serialising would change
        // numbers); anything else is one record.
        Ok(_) => (
            array_element_ranges(data).unwrap_or_else(|| std::iter::once(0..data.len()).collect()),
            None,
        ),
        Err(whole) => {
            // JSON lines named `.json`: the first line is a whole record on its own (its other
            // lines, valid or not, are records like any file's lines).
            let lines = line_ranges(data);
            let first_is_object = lines.first().is_some_and(|r| {
                matches!(
                    serde_json::from_slice::<serde_json::Value>(&data[r.clone()]),
                    Ok(serde_json::Value::Object(_))
                )
            });
            if lines.len() > 1 && first_is_object {
                let warning = format!(
                    "not one JSON document but {} lines: read as JSON lines (name it .jsonl)",
                    lines.len()
                );
                (lines, Some(warning))
            } else {
                let warning = format!(
                    "not valid JSON ({whole}): kept as one record, which silver quarantines as \
                     not_json"
                );
                (std::iter::once(0..data.len()).collect(), Some(warning))
            }
        }
    }
}

/// The ranges of the non-blank lines of `data` (without a trailing `\r`).
fn line_ranges(data: &[u8]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |p| start + p);
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

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// The byte ranges of the elements of `data` when it is a JSON array (which must parse as a whole),
/// found with serde_json's parser one element at a time; `None` when it is not an array.
fn array_element_ranges(data: &[u8]) -> Option<Vec<Range<usize>>> {
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
        Err(Unreadable {
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
        let records = split_records(key, bytes, &LandedLimits::default())?;
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
            b"{\"a\":1}\n{\"b\":2}\n",
            &LandedLimits::default(),
        )
        .unwrap();
        assert_eq!(records.len(), 2);
        assert!(records.warning().unwrap().contains("JSON lines"));
        let with_a_bad_line = split("landing/d.json", b"{\"a\":1}\n{oops\n").unwrap();
        assert_eq!(
            with_a_bad_line,
            vec![b"{\"a\":1}".to_vec(), b"{oops".to_vec()]
        );
        let broken =
            split_records("landing/b.json", b"[{\"a\":1},\n", &LandedLimits::default()).unwrap();
        assert_eq!(broken.len(), 1);
        assert!(broken.warning().unwrap().contains("not valid JSON"));
        let fine = split_records("landing/c.json", b"[1]", &LandedLimits::default()).unwrap();
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
            Err(Unreadable { .. })
        ));
    }

    /// `members` gzip members of `member_bytes` zeros each: a small file that expands a lot.
    fn zeros_gz(member_bytes: usize, members: usize) -> Vec<u8> {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0; member_bytes]).unwrap();
        gz.finish().unwrap().repeat(members)
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_record_limit() {
        // 256 MiB of zeros in about 256 KB: one line, stopped as soon as it passes 1 MiB.
        let bomb = zeros_gz(1 << 20, 256);
        assert!(bomb.len() < 1 << 20);
        for pass in [Pass::Check, Pass::Split] {
            let mut reader =
                LandedReader::new("landing/b.jsonl.gz", &LandedLimits::default(), pass).unwrap();
            let mut rest = &bomb[..];
            let err = loop {
                match reader.push(rest) {
                    Ok(taken) => rest = &rest[taken..],
                    Err(e) => break e,
                }
                assert!(!rest.is_empty(), "the whole bomb was taken");
            };
            assert!(
                err.to_string()
                    .contains("line 1 is over the record limit of 1048576 bytes"),
                "{err}"
            );
            // It stopped within a few pieces of the limit, not at the end of the file.
            assert!(
                bomb.len() - rest.len() < 64 << 10,
                "{} taken",
                bomb.len() - rest.len()
            );
        }
    }

    #[test]
    fn a_file_past_the_decompressed_limit_is_refused() {
        let limits = LandedLimits {
            max_file_bytes: 10_000,
            ..LandedLimits::default()
        };
        let lines = "{\"a\":1}\n".repeat(2_000);
        let err = split_records("landing/a.jsonl", lines.as_bytes(), &limits).unwrap_err();
        assert!(
            err.to_string()
                .contains("over the file limit of 10000 bytes"),
            "{err}"
        );
        // Blank lines count too: they cost the reader as much.
        let blanks = "\n".repeat(20_000);
        assert!(split_records("landing/a.jsonl", blanks.as_bytes(), &limits).is_err());
        let json = format!("[{}]", "1,".repeat(6_000) + "1");
        let err = split_records("landing/a.json", json.as_bytes(), &limits).unwrap_err();
        assert!(err.to_string().contains("over the file limit"), "{err}");
    }

    #[test]
    fn the_record_limit_counts_a_line_s_bytes() {
        let limits = LandedLimits {
            max_record_bytes: 10,
            ..LandedLimits::default()
        };
        let ok = split_records("landing/a.jsonl", b"0123456789\n\n9876543210", &limits).unwrap();
        assert_eq!(ok.len(), 2);
        let err = split_records("landing/a.jsonl", b"1\n\n0123456789a\n", &limits).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 3 is over the record limit of 10 bytes"),
            "{err}"
        );
        let err = split_records("landing/a.json", b"[1, \"0123456789\"]", &limits).unwrap_err();
        assert!(
            err.to_string()
                .contains("element 2 is over the record limit"),
            "{err}"
        );
        let limits = LandedLimits {
            max_document_bytes: 10,
            ..LandedLimits::default()
        };
        let err = split_records("landing/a.json", b"[1, 2, 3, 4, 5]", &limits).unwrap_err();
        assert!(
            err.to_string().contains("land big files as .jsonl"),
            "{err}"
        );
    }

    #[test]
    fn chunks_are_bounded_by_records_and_by_bytes() {
        let many = "{}\n".repeat(CHUNK_RECORDS * 2 + 5);
        let records =
            split_records("landing/a.jsonl", many.as_bytes(), &LandedLimits::default()).unwrap();
        let sizes: Vec<(u64, usize)> = records
            .chunks
            .iter()
            .map(|c| (c.first_record, c.len()))
            .collect();
        let (full, rest) = (CHUNK_RECORDS as u64, 5);
        assert_eq!(
            sizes,
            [(0, CHUNK_RECORDS), (full, CHUNK_RECORDS), (2 * full, rest)]
        );

        // Records of 100 KiB: a chunk is sealed at the first record that brings it to CHUNK_BYTES.
        let record = format!("\"{}\"\n", "x".repeat(100 << 10));
        let count = CHUNK_BYTES / record.len() + 10;
        let fat = record.repeat(count);
        for key in ["landing/a.jsonl", "landing/a.json"] {
            let data = if key.ends_with(".json") {
                format!("[{}]", fat.trim_end().replace('\n', ","))
            } else {
                fat.clone()
            };
            let records = split_records(key, data.as_bytes(), &LandedLimits::default()).unwrap();
            assert_eq!(records.len(), count, "{key}");
            assert_eq!(records.chunks.len(), 2, "{key}");
            let first: usize = records.chunks[0].iter().map(<[u8]>::len).sum();
            assert!(first >= CHUNK_BYTES - record.len() && first < CHUNK_BYTES + record.len());
        }
    }

    #[test]
    fn how_the_bytes_arrive_does_not_change_the_records() {
        use std::io::Write;
        let text = "\u{feff}{\"a\":1}\r\n\n  \n{\"b\":2}\nlast".as_bytes();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text).unwrap();
        let gz = gz.finish().unwrap();
        let whole = split("landing/a.jsonl", text).unwrap();
        assert_eq!(whole, [&b"{\"a\":1}"[..], b"{\"b\":2}", b"last"]);
        for (key, stored) in [("landing/a.jsonl", text), ("landing/a.jsonl.gz", &gz[..])] {
            let mut reader = LandedReader::new(key, &LandedLimits::default(), Pass::Split).unwrap();
            for byte in stored.chunks(1) {
                assert_eq!(reader.push(byte).unwrap(), 1);
            }
            let (chunks, _) = reader.finish().unwrap();
            let got: Vec<Vec<u8>> = chunks
                .iter()
                .flat_map(|c| c.iter().map(<[u8]>::to_vec))
                .collect();
            assert_eq!(got, whole, "{key}");
        }
        // A gzip stream cut short is an error, not a short file.
        let cut = &gz[..gz.len() - 4];
        let err = split_records("landing/a.jsonl.gz", cut, &LandedLimits::default()).unwrap_err();
        assert!(err.to_string().contains("gzip"), "{err}");
    }
}
