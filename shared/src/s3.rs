//! The lake's S3 client: object_store's own, for the lake's objects (`landing/`, `exports/`) and
//! for delta-rs's tables alike (see [`crate::Lake::s3_client`]).
//!
//! delta-rs's `s3` feature would bring its own (`deltalake-aws`), which resolves credentials with
//! the AWS SDK (aws-config and the STS, SSO and SSO-OIDC clients) and, in the end, commits through
//! delta-rs's default log store with `If-None-Match: *` as this one does. object_store reads the
//! credentials a Lambda function is given (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`) and the container and web-identity ones, which is all the functions need,
//! so every function binary is spared the SDK.

use std::collections::HashMap;
use std::sync::{Arc, Once};
use std::time::Duration;

use deltalake::DeltaResult;
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use url::Url;

/// The URL schemes of an S3 lake.
pub const SCHEMES: [&str; 2] = ["s3", "s3a"];

/// An S3 client for the bucket of `url`, configured by `options`: object_store's S3 keys
/// (`aws_endpoint_url`, `aws_region`, `aws_access_key_id`, ...; others are ignored) and
/// `retry_timeout` (`"30s"`), which bounds how long a failing request is retried.
pub fn client(url: &Url, options: &HashMap<String, String>) -> object_store::Result<AmazonS3> {
    let mut builder = AmazonS3Builder::new().with_url(url.as_str());
    for (key, value) in options {
        if let Ok(key) = key.to_ascii_lowercase().parse() {
            builder = builder.with_config(key, value);
        }
    }
    if let Some(seconds) = options
        .get("retry_timeout")
        .and_then(|v| v.strip_suffix('s')?.parse::<u64>().ok())
    {
        builder = builder.with_retry(object_store::RetryConfig {
            retry_timeout: Duration::from_secs(seconds),
            ..Default::default()
        });
    }
    builder.build()
}

/// Makes delta-rs commit to `s3://` and `s3a://` tables through its default log store. The tables
/// are given the lake's client ([`crate::Lake::s3_client`]) when they are opened. Idempotent;
/// every [`crate::Lake`] calls it.
pub fn register_with_delta() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        for scheme in SCHEMES {
            let url = Url::parse(&format!("{scheme}://")).expect("a scheme is a URL");
            logstore_factories().insert(url, Arc::new(S3Tables));
        }
    });
}

/// delta-rs's log store factory for S3 tables.
struct S3Tables;

impl LogStoreFactory for S3Tables {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_configure_the_client_and_unknown_ones_are_ignored() {
        let options = HashMap::from([
            (
                "aws_endpoint_url".to_string(),
                "http://127.0.0.1:1".to_string(),
            ),
            ("AWS_REGION".to_string(), "eu-west-1".to_string()),
            ("retry_timeout".to_string(), "7s".to_string()),
            ("not_an_s3_option".to_string(), "x".to_string()),
        ]);
        let store = client(&Url::parse("s3://lake/prefix/").unwrap(), &options).unwrap();
        let shown = format!("{store:?}");
        assert!(shown.contains("bucket: \"lake\""), "{shown}");
        assert!(shown.contains("eu-west-1"), "{shown}");
        assert!(shown.contains("http://127.0.0.1:1"), "{shown}");
        assert!(shown.contains("retry_timeout: 7s"), "{shown}");
    }

    #[test]
    fn an_s3_lake_builds_one_client_for_its_clones_tables_and_objects() {
        let options = HashMap::from([
            (
                "aws_endpoint_url".to_string(),
                "http://127.0.0.1:1".to_string(),
            ),
            ("aws_region".to_string(), "us-east-1".to_string()),
        ]);
        let root = Url::parse("s3://lake/prefix").unwrap();
        let lake = crate::Lake::with_options(root.clone(), options.clone());
        let client = lake.s3_client().unwrap();
        assert!(Arc::ptr_eq(&client, &lake.clone().s3_client().unwrap()));
        lake.store().unwrap();
        assert!(Arc::ptr_eq(&client, &lake.s3_client().unwrap()));
        let other = crate::Lake::with_options(root, options);
        assert!(!Arc::ptr_eq(&client, &other.s3_client().unwrap()));
    }

    #[test]
    fn delta_rs_opens_s3_tables_after_registration() {
        register_with_delta();
        let url = Url::parse("s3://lake/prefix/bronze/").unwrap();
        let options = HashMap::from([
            (
                "aws_endpoint_url".to_string(),
                "http://127.0.0.1:1".to_string(),
            ),
            ("aws_region".to_string(), "us-east-1".to_string()),
        ]);
        let table = deltalake::DeltaTableBuilder::from_url(url.clone())
            .unwrap()
            .with_storage_options(options.clone())
            .with_storage_backend(Arc::new(client(&url, &options).unwrap()), url)
            .build();
        let store = table.expect("an s3 table").log_store();
        assert_eq!(store.name(), "DefaultLogStore");
    }
}
