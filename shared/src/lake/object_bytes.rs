//! The bytes of a fetched object as a stream, in large pieces from a directory lake.

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use object_store::{GetResult, GetResultPayload};

use crate::error::{Error, Result};

/// Bytes read from a local file at a time.
const LOCAL_PIECE_BYTES: u64 = 4 << 20;

/// `object`'s bytes as a stream. A local file is read [`LOCAL_PIECE_BYTES`] at a time: object_store's
/// own stream reads 8 KiB per blocking task, about 50,000 tasks (and thread wake-ups) for a
/// 400 MB landed file. A remote object streams as the store sends it.
pub fn object_bytes(object: GetResult) -> BoxStream<'static, Result<Bytes>> {
    let range = object.range.clone();
    match object.payload {
        GetResultPayload::File(file, _) => {
            futures::stream::try_unfold((file, range.start), move |(file, at)| async move {
                if at >= range.end {
                    return Ok(None);
                }
                let piece = (range.end - at).min(LOCAL_PIECE_BYTES);
                let (file, bytes) = tokio::task::spawn_blocking(move || {
                    read_at(file, at, piece).map(|(f, b)| (f, Bytes::from(b)))
                })
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e)))??;
                Ok(Some((bytes, (file, at + piece))))
            })
            .boxed()
        }
        GetResultPayload::Stream(stream) => stream.map_err(Error::from).boxed(),
    }
}

/// `len` bytes of `file` from `at`.
fn read_at(
    mut file: std::fs::File,
    at: u64,
    len: u64,
) -> std::io::Result<(std::fs::File, Vec<u8>)> {
    use std::io::{Read, Seek, SeekFrom};
    file.seek(SeekFrom::Start(at))?;
    let mut buffer = vec![0; len as usize];
    file.read_exact(&mut buffer)?;
    Ok((file, buffer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::{ObjectStore, ObjectStoreExt, local::LocalFileSystem, path::Path};

    /// A local object's stream holds its bytes, whole or in a range, across pieces.
    #[tokio::test]
    async fn local_pieces_hold_the_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let body: Vec<u8> = (0..(LOCAL_PIECE_BYTES as usize * 2 + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let path = Path::from("landing/big.jsonl");
        store.put(&path, body.clone().into()).await.unwrap();
        let whole: Vec<Bytes> = object_bytes(store.get(&path).await.unwrap())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(whole.len(), 3);
        assert_eq!(whole.concat(), body);
        let options = object_store::GetOptions {
            range: Some((5..LOCAL_PIECE_BYTES + 9).into()),
            ..Default::default()
        };
        let ranged: Vec<Bytes> = object_bytes(store.get_opts(&path, options).await.unwrap())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(ranged.concat(), body[5..LOCAL_PIECE_BYTES as usize + 9]);
    }
}
