//! gold-transformer: silver commit notifications -> the gold tables.

use aws_lambda_events::event::s3::S3Event;
use clickstream::Lake;
use clickstream::functions;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

async fn handler(
    lake: &Lake,
    funnel: &[String],
    event: LambdaEvent<S3Event>,
) -> Result<Value, Error> {
    Ok(functions::response(
        &functions::gold_transformer(lake, &event.payload, funnel).await?,
    ))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    clickstream::tune_allocator();
    clickstream::telemetry::init("info");
    let lake = functions::lake_from_env()?;
    let funnel = functions::funnel_from_env();
    lambda_runtime::run(service_fn(|event| handler(&lake, &funnel, event))).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clickstream::samples::{self, Stage};

    #[tokio::test]
    async fn silver_commit_sample_updates_gold() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        samples::feed(&lake, Stage::Silver).await.unwrap();

        let funnel = functions::parse_funnel(None);
        let event: S3Event = samples::load("s3-silver-commit.json").unwrap();
        let out = handler(
            &lake,
            &funnel,
            LambdaEvent::new(event.clone(), Default::default()),
        )
        .await
        .unwrap();
        assert_eq!(out[0]["already_processed"], false);
        // anon-1 has one session (3 events, 70 s apart at most), user-7 one: two sessions.
        assert_eq!(out[0]["sessions"], 2);
        let again = handler(&lake, &funnel, LambdaEvent::new(event, Default::default()))
            .await
            .unwrap();
        assert_eq!(again[0]["already_processed"], true);
    }
}
