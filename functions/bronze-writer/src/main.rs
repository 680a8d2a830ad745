//! bronze-writer: Kafka batches and landed files -> `bronze/events`.

use clickstream::bronze::BronzeOutcome;
use clickstream::functions::{self, BronzeTrigger};
use clickstream::{Lake, Result};
use serde_json::Value;

async fn handler(lake: &Lake, payload: Value) -> Result<Vec<BronzeOutcome>> {
    let trigger = BronzeTrigger::from_json(payload)?;
    functions::bronze_writer(lake, &trigger).await
}

clickstream_lambda::lake_function!(handler, functions::prepare_bronze_writer);

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream_testkit::samples;

    #[tokio::test]
    async fn kafka_sample_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let first = handler(&lake, samples::load("kafka.json").unwrap())
            .await
            .unwrap();
        assert_eq!(first[0].received, 6);
        assert_eq!(first[0].written, 6);
        assert_eq!(first[0].version, Some(1));
        let again = handler(&lake, samples::load("kafka.json").unwrap())
            .await
            .unwrap();
        assert_eq!(again[0].written, 0);
        assert_eq!(again[0].already_written, 6);
        assert_eq!(again[0].version, None);
    }

    #[tokio::test]
    async fn landing_sample_reads_the_url_encoded_key() {
        let dir = tempfile::tempdir().unwrap();
        let landed = dir.path().join("landing/2026-11-28/web events (1).jsonl");
        std::fs::create_dir_all(landed.parent().unwrap()).unwrap();
        std::fs::copy(samples::dir().join("landed-sample.jsonl"), &landed).unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let out = handler(&lake, samples::load("s3-landing.json").unwrap())
            .await
            .unwrap();
        assert_eq!(out[0].written, 3);
        let again = handler(&lake, samples::load("s3-landing.json").unwrap())
            .await
            .unwrap();
        assert_eq!(again[0].written, 0);
        assert_eq!(again[0].already_written, 3);
    }

    #[tokio::test]
    async fn unknown_payload_is_a_clear_permanent_error() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let err = handler(&lake, serde_json::json!({"hello": 1}))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("expected a Kafka event"), "{err}");
        assert!(!err.is_retryable());
    }
}
