//! silver-transformer: bronze commit notifications -> `silver/events` and `silver/quarantine`.

use aws_lambda_events::event::s3::S3Event;
use clickstream::functions;
use clickstream::silver::SilverOutcome;
use clickstream::{Lake, Result, settings};

async fn handler(lake: &Lake, event: S3Event) -> Result<Vec<SilverOutcome>> {
    functions::silver_transformer(lake, &event).await
}

#[global_allocator]
static ALLOCATOR: clickstream_lambda::MiMalloc = clickstream_lambda::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), clickstream_lambda::RuntimeError> {
    clickstream_lambda::init();
    let lake = settings::LakeSettings::from_env()?.open()?;
    clickstream_lambda::serve(|event| handler(&lake, event)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream_testkit::samples::{self, Stage};

    #[tokio::test]
    async fn bronze_commit_sample_is_processed_once() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        samples::feed(&lake, Stage::Bronze).await.unwrap();

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
