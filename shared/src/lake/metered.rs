//! An object store that counts what passes through it: requests by kind and bytes each way, as
//! the metrics [`metric::STORE_REQUESTS`], [`metric::BYTES_READ`] and [`metric::BYTES_WRITTEN`].
//! An S3 lake's client is wrapped in it, so every stage's store traffic is measured (what S3
//! bills), whichever library makes the request. Ranged reads and renames go through the trait's
//! own `get_ranges` and `rename_opts`, which call the counted `get_opts`, `copy_opts` and
//! `delete_stream`.

use std::fmt;

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};

use crate::telemetry::{REQUEST, metric};

/// `inner`, counting its requests and bytes.
#[derive(Debug)]
pub struct Metered<T> {
    inner: T,
}

impl<T> Metered<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Metered<T> {
        Metered { inner }
    }
}

impl<T: fmt::Display> fmt::Display for Metered<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metered({})", self.inner)
    }
}

/// Counts one request of `kind` (S3's names: GET, HEAD, PUT, LIST, DELETE, COPY).
fn request(kind: &'static str) {
    metrics::counter!(metric::STORE_REQUESTS, REQUEST => kind).increment(1);
}

fn read(bytes: u64) {
    metrics::counter!(metric::BYTES_READ).increment(bytes);
}

fn written(bytes: usize) {
    metrics::counter!(metric::BYTES_WRITTEN).increment(bytes as u64);
}

#[async_trait::async_trait]
impl<T: ObjectStore> ObjectStore for Metered<T> {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        request("PUT");
        written(payload.content_length());
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        // CreateMultipartUpload; each part and the completion are PUTs (S3 bills them as such).
        request("PUT");
        let upload = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(MeteredUpload { inner: upload }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let head = options.head;
        request(if head { "HEAD" } else { "GET" });
        let result = self.inner.get_opts(location, options).await?;
        if !head {
            read(result.range.end - result.range.start);
        }
        Ok(result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner
            .delete_stream(locations)
            .inspect(|deleted| {
                if deleted.is_ok() {
                    request("DELETE");
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        request("LIST");
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        request("LIST");
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        request("LIST");
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        request("COPY");
        self.inner.copy_opts(from, to, options).await
    }
}

/// A multipart upload whose parts are counted.
#[derive(Debug)]
struct MeteredUpload {
    inner: Box<dyn MultipartUpload>,
}

#[async_trait::async_trait]
impl MultipartUpload for MeteredUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        request("PUT");
        written(data.content_length());
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        request("PUT");
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        request("DELETE");
        self.inner.abort().await
    }
}
