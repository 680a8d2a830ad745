//! Landed-file splitting and decompression on any bytes: never a panic; the check pass and the
//! split pass agree on whether a JSON-lines file is readable (so bronze never finds a limit after
//! it has written part of a file); every record and chunk keeps within its limits; and how the
//! stored bytes arrive does not change the records.
//!
//! The first input byte picks the format, whether the rest is gzipped here first (so that valid
//! gzip streams reach the decoder, not only noise), and small limits; the second where the stored
//! bytes are cut in two.

#![no_main]

use std::io::Write;

use clickstream_landed::{CHUNK_RECORDS, LandedLimits, LandedReader, Pass, RecordChunk};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let [options, cut, data @ ..] = input else {
        return;
    };
    let json = options & 1 == 1;
    let gzip_here = options & 2 == 2;
    let gzipped = gzip_here || options & 4 == 4;
    let key = match (json, gzipped) {
        (false, false) => "landing/f.jsonl",
        (false, true) => "landing/f.jsonl.gz",
        (true, false) => "landing/f.json",
        (true, true) => "landing/f.json.gz",
    };
    let limits = LandedLimits {
        max_file_bytes: 1 << (10 + (options >> 4) % 8),
        max_record_bytes: 1 << (4 + (options >> 3) % 8),
        max_document_bytes: 1 << 14,
    };
    let stored = if gzip_here {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    } else {
        data.to_vec()
    };
    let cut = (*cut as usize * stored.len() / 255).min(stored.len());

    let checked = read(key, &limits, Pass::Check, &[&stored]);
    let whole = read(key, &limits, Pass::Split, &[&stored]);
    let in_two = read(key, &limits, Pass::Split, &[&stored[..cut], &stored[cut..]]);
    if !json {
        assert_eq!(checked.is_ok(), whole.is_ok(), "check and split disagree on {key}");
    } else if whole.is_ok() {
        assert!(checked.is_ok(), "split read a {key} the check refused");
    }
    assert_eq!(whole.as_ref().ok(), in_two.as_ref().ok(), "the cut changed the records");
    assert_eq!(whole.is_ok(), in_two.is_ok());
    if let Ok(records) = whole {
        for record in &records {
            assert!(record.len() <= limits.max_record_bytes);
            assert!(!record.iter().all(u8::is_ascii_whitespace) || json);
        }
    }
});

/// The records of a file whose stored bytes arrive in `parts`, checking each chunk's bounds.
fn read(
    key: &str,
    limits: &LandedLimits,
    pass: Pass,
    parts: &[&[u8]],
) -> Result<Vec<Vec<u8>>, String> {
    let mut reader = LandedReader::new(key, limits, pass).map_err(|e| e.reason)?;
    let mut chunks: Vec<RecordChunk> = Vec::new();
    for part in parts {
        let mut rest = *part;
        while !rest.is_empty() {
            rest = &rest[reader.push(rest).map_err(|e| e.reason)?..];
            chunks.extend(std::iter::from_fn(|| reader.next_chunk()));
        }
    }
    let (last, _warning) = reader.finish().map_err(|e| e.reason)?;
    chunks.extend(last);
    if pass == Pass::Check {
        assert!(chunks.is_empty(), "the check pass kept records");
    }
    let mut next = 0;
    for chunk in &chunks {
        assert!(!chunk.is_empty() && chunk.len() <= CHUNK_RECORDS);
        assert_eq!(chunk.first_record, next, "chunks out of order");
        next += chunk.len() as u64;
    }
    Ok(chunks.iter().flat_map(|c| c.iter().map(<[u8]>::to_vec)).collect())
}
