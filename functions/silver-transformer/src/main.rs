//! silver-transformer: bronze commit notifications -> `silver/events` and `silver/quarantine`.

use aws_lambda_events::event::s3::S3Event;
use clickstream::functions;
use clickstream::silver::SilverOutcome;
use clickstream::{Lake, Result};

async fn handler(lake: &Lake, event: S3Event) -> Result<Vec<SilverOutcome>> {
    functions::silver_transformer(lake, &event).await
}

clickstream_lambda::lake_function!(handler, functions::prepare_silver_transformer);

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream_testkit::samples::{self, Stage};

    #[tokio::test]
    async fn bronze_commit_sample_is_processed_once() {
        let (_dir, lake) = samples::fed_lake(Stage::Bronze).await;

        let event: S3Event = samples::load("s3-bronze-commit.json").unwrap();
        let out = handler(&lake, event.clone()).await.unwrap();
        assert_eq!(out[0].input, 6);
        assert_eq!(out[0].valid, 4);
        assert_eq!(out[0].duplicates, 1);
        assert_eq!(out[0].quarantined, 1);
        assert_eq!(out[0].quarantined_by_reason["not_json"], 1);
        let again = handler(&lake, event).await.unwrap();
        assert!(again[0].already_processed);
        assert_eq!(again[0].valid, 0);
    }
}
