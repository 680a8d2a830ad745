//! gold-transformer: silver commit notifications -> the gold tables.

use aws_lambda_events::event::s3::S3Event;
use clickstream::gold::GoldOutcome;
use clickstream::{Lake, Result};
use clickstream::{functions, settings};

async fn handler(lake: &Lake, funnel: &[String], event: S3Event) -> Result<Vec<GoldOutcome>> {
    functions::gold_transformer(lake, &event, funnel).await
}

#[global_allocator]
static ALLOCATOR: clickstream_lambda::Allocator = clickstream_lambda::Allocator;

#[tokio::main]
async fn main() -> Result<(), clickstream_lambda::RuntimeError> {
    clickstream_lambda::init();
    let settings = settings::GoldSettings::from_env()?;
    let lake = settings.lake.open()?;
    clickstream_lambda::prepare_at_init(&lake, functions::prepare_gold_transformer).await;
    clickstream_lambda::serve(|event| handler(&lake, &settings.funnel, event)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream_testkit::samples::{self, Stage};

    #[tokio::test]
    async fn silver_commit_sample_updates_gold() {
        let (_dir, lake) = samples::fed_lake(Stage::Silver).await;

        let funnel = clickstream::gold::parse_funnel(None);
        let event: S3Event = samples::load("s3-silver-commit.json").unwrap();
        let out = handler(&lake, &funnel, event.clone()).await.unwrap();
        assert!(!out[0].already_processed);
        // anon-1 has one session (3 events, 70 s apart at most), user-7 one: two sessions.
        assert_eq!(out[0].sessions, 2);
        let again = handler(&lake, &funnel, event).await.unwrap();
        assert!(again[0].already_processed);
    }
}
