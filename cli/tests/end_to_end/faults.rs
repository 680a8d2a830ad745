//! Faults on the local stack, mid-stream: the broker and the S3 store restart, every function
//! process is SIGKILLed in the middle of an invocation (its supervisor starts a new one, as Lambda
//! does; the bridge's invocation times out and is retried, or the restarted bridge delivers the
//! records again), the maintenance function runs while silver and gold write, and the bridge is
//! SIGKILLed and restarted. Afterwards every record is in
//! bronze once, silver and quarantine hold exactly what validation says, no event is twice in
//! silver, and gold equals a from-scratch computation.

use std::time::Duration;

use object_store::{ObjectStoreExt, PutPayload};

use crate::stack::{Stack, assert_every_record_once, wait_for};

/// How long to wait for a function to be caught mid-invocation: a killed invocation of another
/// function may first have to time out (INVOKE_TIMEOUT_SECONDS below) before traffic resumes.
const CATCH: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_and_kills_mid_stream_lose_and_double_nothing() {
    let _turn = crate::machine_wide().await;
    let Some(stack) = Stack::up_with(
        "the fault-injection test",
        &[
            // The broker keeps its topic in the S3 store, so that it survives a restart.
            ("KAFKA_STORAGE", "s3"),
            ("INVOKE_TIMEOUT_SECONDS", "15"),
            // Small batches: many bronze commits, so each function has invocations to interrupt.
            ("TF_VAR_kafka_batch_size", "250"),
        ],
    ) else {
        return;
    };
    let lake = stack.lake();
    let schedule = stack.scheduled_input("maintenance");

    let mut all = stack.produce("21", 3000);
    stack.kill_mid_invocation("silver-transformer", CATCH).await;
    stack.kill_mid_invocation("gold-transformer", CATCH).await;

    // The broker restarts while the bridge consumes; more records arrive after it is back.
    stack.restart("kafka", false);
    all.extend(stack.produce("22", 4000));
    stack.kill_mid_invocation("bronze-writer", CATCH).await;

    // The S3 store restarts under every function; a file lands once it is back.
    stack.restart("s3", false);
    let dropped = stack.dir.path().join("dropped.jsonl");
    stack.clickstream(&[
        "generate",
        "--events",
        "300",
        "--seed",
        "23",
        "--days",
        "2",
        "--output",
        dropped.to_str().unwrap(),
    ]);
    all.extend(crate::stack::read_lines(&dropped));
    let store = lake.store().unwrap();
    wait_for(
        "the S3 store to take a landed file",
        Duration::from_secs(60),
        async || {
            store
                .put(
                    &"landing/dropped.jsonl".into(),
                    PutPayload::from(std::fs::read(&dropped).unwrap()),
                )
                .await
                .is_ok()
        },
    )
    .await;
    stack.kill_mid_invocation("exporter", CATCH).await;

    // Maintenance (OPTIMIZE, VACUUM, checkpoint) while silver and gold write: once killed
    // mid-invocation, once to the end.
    all.extend(stack.produce("24", 2000));
    loop {
        tokio::select! {
            _ = stack.kill_mid_invocation("maintenance", CATCH) => break,
            // Finished before it was caught (the interrupted one never answers): once more.
            done = stack.invoke("maintenance", &schedule) => {
                assert!(done.is_ok(), "maintenance failed: {done:?}");
            }
        }
    }
    all.extend(stack.produce("25", 1000));
    let maintained = stack.invoke("maintenance", &schedule).await;
    assert!(maintained.is_ok(), "maintenance failed: {maintained:?}");

    // The bridge dies and starts again.
    stack.restart("bridge", true);

    assert_every_record_once(&lake, &all, Duration::from_secs(600)).await;
}
