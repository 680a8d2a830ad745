//! bronze-writer: Kafka batches and landed files -> `bronze/events`.

use clickstream::bronze::{BronzeOptions, BronzeOutcome};
use clickstream::functions::{self, BronzeTrigger};
use clickstream::{Lake, Result, settings};
use serde_json::Value;

async fn handler(
    lake: &Lake,
    options: &BronzeOptions,
    payload: Value,
) -> Result<Vec<BronzeOutcome>> {
    let trigger = BronzeTrigger::from_json(payload)?;
    functions::bronze_writer(lake, &trigger, options).await
}

#[global_allocator]
static ALLOCATOR: clickstream_lambda::Allocator = clickstream_lambda::Allocator;

#[tokio::main]
async fn main() -> Result<(), clickstream_lambda::RuntimeError> {
    clickstream_lambda::init();
    let settings = settings::BronzeSettings::from_env()?;
    let lake = settings.lake.open()?;
    clickstream_lambda::prepare_at_init(&lake, functions::prepare_bronze_writer).await;
    clickstream_lambda::serve(|payload| handler(&lake, &settings.options, payload)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream_testkit::samples;

    #[tokio::test]
    async fn kafka_sample_is_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let first = handler(
            &lake,
            &BronzeOptions::default(),
            samples::load("kafka.json").unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(first[0].received, 6);
        assert_eq!(first[0].written, 6);
        assert_eq!(first[0].version, Some(1));
        let again = handler(
            &lake,
            &BronzeOptions::default(),
            samples::load("kafka.json").unwrap(),
        )
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
        let out = handler(
            &lake,
            &BronzeOptions::default(),
            samples::load("s3-landing.json").unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(out[0].written, 3);
        let again = handler(
            &lake,
            &BronzeOptions::default(),
            samples::load("s3-landing.json").unwrap(),
        )
        .await
        .unwrap();
        assert_eq!(again[0].written, 0);
        assert_eq!(again[0].already_written, 3);
    }

    #[tokio::test]
    async fn unknown_payload_is_a_clear_permanent_error() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let err = handler(
            &lake,
            &BronzeOptions::default(),
            serde_json::json!({"hello": 1}),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("expected a Kafka event"), "{err}");
        assert!(!err.is_retryable());
    }
}
