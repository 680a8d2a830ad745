//! infra/ applied and destroyed for real: `infra/deploy` (terraform init from the machine's
//! provider mirror, validate, apply) against moto's server on loopback, with the functions' zips
//! laid out as `scripts/package` lays them out (the debug binaries, which the emulator stores but
//! does not run), in both Kafka modes. The applied state is then checked: every resource created,
//! and the deploy hardening as deployed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use clickstream_testkit::repo_root;

/// Whether the tools are here; without them the test fails under CLICKSTREAM_REQUIRE_SERVICES
/// (scripts/test installs them) and is skipped otherwise.
fn tools() -> Option<PathBuf> {
    let moto = std::env::var_os("MOTO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/moto/bin/python"));
    let terraform = Command::new("terraform").arg("version").output().is_ok();
    if moto.exists() && terraform {
        return Some(moto);
    }
    let missing = "moto (scripts/tools.sh ensure_moto) and terraform";
    assert!(
        std::env::var_os("CLICKSTREAM_REQUIRE_SERVICES").is_none(),
        "the deploy test needs {missing}"
    );
    eprintln!("skipped: the deploy test needs {missing}");
    None
}

/// moto's server with Kafka event source mappings, on a port of its own; stopped on drop.
struct Emulator {
    child: Child,
    endpoint: String,
}

impl Emulator {
    fn start(python: &Path, log: &Path) -> Emulator {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(python)
            .arg(repo_root().join("infra/emulator/aws_api.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not start: see {}",
                log.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Emulator {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a script of the repository with the emulator's dummy credentials; its output on failure.
fn run(script: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String, String> {
    let out = Command::new(repo_root().join(script))
        .args(args)
        .envs(env.iter().copied())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// The managed resource instances in a state, as (type.name[key], attributes).
fn instances(state: &Value) -> Vec<(String, &Value)> {
    state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["mode"] == "managed")
        .flat_map(|r| {
            r["instances"].as_array().unwrap().iter().map(move |i| {
                let key = i["index_key"]
                    .as_str()
                    .map(|k| format!("[{k}]"))
                    .unwrap_or_default();
                (
                    format!(
                        "{}.{}{key}",
                        r["type"].as_str().unwrap(),
                        r["name"].as_str().unwrap()
                    ),
                    &i["attributes"],
                )
            })
        })
        .collect()
}

fn attributes<'a>(state: &'a [(String, &'a Value)], address: &str) -> &'a Value {
    state
        .iter()
        .find(|(a, _)| a == address)
        .unwrap_or_else(|| panic!("{address} was not created"))
        .1
}

/// The IAM actions a role's inline policy allows.
fn allowed_actions(policy: &Value) -> Vec<String> {
    let doc: Value = serde_json::from_str(policy.as_str().unwrap()).unwrap();
    doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|a| a.as_str().unwrap().to_string()).collect(),
            _ => vec![],
        })
        .collect()
}

/// Applies, checks and destroys one deployment; returns the seconds apply took.
fn deploy(
    emulator: &Emulator,
    dir: &Path,
    zips: &Path,
    vars: &[String],
    check: impl Fn(&[(String, &Value)]),
) -> u64 {
    let deploy_dir = dir.to_str().unwrap();
    let mut args = vec![
        "-auto-approve".to_string(),
        format!(
            "-var-file={}",
            repo_root().join("infra/examples/emulator.tfvars").display()
        ),
        format!("-var=emulator_endpoint={}", emulator.endpoint),
        format!("-var=lambda_zip_dir={}", zips.display()),
    ];
    args.extend(vars.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = [("DEPLOY_DIR", deploy_dir)];
    let started = Instant::now();
    let applied = run("infra/deploy", &[&["apply"], &args[..]].concat(), &env);
    let seconds = started.elapsed().as_secs();
    if let Err(out) = applied {
        panic!("terraform apply failed:\n{out}");
    }
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.join("terraform.tfstate")).unwrap()).unwrap();
    let created = instances(&state);
    check(&created);
    eprintln!("applied {} resources in {seconds} s", created.len());
    if let Err(out) = run("infra/deploy", &[&["destroy"], &args[..]].concat(), &env) {
        panic!("terraform destroy failed:\n{out}");
    }
    let state: Value =
        serde_json::from_slice(&std::fs::read(dir.join("terraform.tfstate")).unwrap()).unwrap();
    assert!(
        instances(&state).is_empty(),
        "destroy left resources behind"
    );
    seconds
}

/// What both Kafka modes deploy the same way.
fn check_common(state: &[(String, &Value)]) {
    let functions = clickstream_testkit::FUNCTIONS;
    // Every resource of the plan is in the state: one of each per-function resource per
    // function, and the rest.
    for ty in [
        "aws_lambda_function.function",
        "aws_iam_role.function",
        "aws_iam_role_policy.function",
        "aws_cloudwatch_log_group.function",
        "aws_lambda_function_event_invoke_config.function",
    ] {
        for f in functions {
            attributes(state, &format!("{ty}[{f}]"));
        }
    }
    for single in [
        "aws_s3_bucket.lake",
        "aws_s3_bucket_notification.lake",
        "aws_s3_bucket_lifecycle_configuration.lake",
        "aws_s3_bucket_policy.lake",
        "aws_s3_bucket_public_access_block.lake",
        "aws_s3_bucket_server_side_encryption_configuration.lake",
        "aws_lambda_event_source_mapping.kafka",
        "aws_iam_role_policy.kafka_source",
        "aws_iam_role.scheduler",
        "aws_iam_role_policy.scheduler",
        "aws_sqs_queue.dlq",
    ] {
        attributes(state, single);
    }
    for f in functions {
        let lambda = attributes(state, &format!("aws_lambda_function.function[{f}]"));
        // moto keeps no logging config: infra/tests/terraform.rs checks the JSON log format.
        assert_eq!(lambda["runtime"], "provided.al2023");
        attributes(
            state,
            &format!("aws_cloudwatch_metric_alarm.alarm[{f}-throttles]"),
        );
        attributes(
            state,
            &format!("aws_cloudwatch_metric_alarm.alarm[{f}-errors]"),
        );
        // Only maintenance and forget may delete.
        let policy = &attributes(state, &format!("aws_iam_role_policy.function[{f}]"))["policy"];
        let deletes = allowed_actions(policy).contains(&"s3:DeleteObject".to_string());
        let deleter = f == "maintenance" || f == "forget";
        assert_eq!(deletes, deleter, "{f}: s3:DeleteObject");
    }
    // The alarms on the functions' own metrics, as the emulator took them.
    let freshness = attributes(state, "aws_cloudwatch_metric_alarm.math[gold-freshness]");
    assert_eq!(freshness["threshold"], 900.0, "15 minutes by default");
    assert_eq!(freshness["treat_missing_data"], "breaching");
    let queries = freshness["metric_query"].as_array().unwrap();
    assert_eq!(queries.len(), 3, "{queries:?}");
    let rate = attributes(
        state,
        "aws_cloudwatch_metric_alarm.math[silver-quarantine-rate]",
    );
    assert_eq!(rate["threshold"], 1.0);
    for f in ["silver-transformer", "gold-transformer"] {
        let races = attributes(
            state,
            &format!("aws_cloudwatch_metric_alarm.alarm[{f}-lost-races]"),
        );
        assert_eq!(races["namespace"], clickstream::telemetry::NAMESPACE);
        assert_eq!(
            races["metric_name"],
            clickstream::telemetry::metric::LOST_RACES
        );
    }
    let bronze = attributes(state, "aws_lambda_function.function[bronze-writer]");
    assert!(
        bronze["reserved_concurrent_executions"].as_i64().unwrap() > 0,
        "bronze-writer's concurrency is bounded"
    );
    for f in ["exporter", "maintenance"] {
        let schedule = attributes(state, &format!("aws_scheduler_schedule.function[{f}]"));
        let input: Value =
            serde_json::from_str(schedule["target"][0]["input"].as_str().unwrap()).unwrap();
        let sample: Value = serde_json::from_slice(
            &std::fs::read(repo_root().join(format!("events/schedule-{f}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(
            input, sample,
            "events/schedule-{f}.json is what the schedule sends"
        );
    }
    let scheduler = &attributes(state, "aws_iam_role_policy.scheduler")["policy"];
    assert!(allowed_actions(scheduler).contains(&"sqs:SendMessage".to_string()));
    let versioning = attributes(state, "aws_s3_bucket_versioning.lake");
    assert_eq!(
        versioning["versioning_configuration"][0]["status"],
        "Enabled"
    );
    let rules = attributes(state, "aws_s3_bucket_lifecycle_configuration.lake")["rule"]
        .as_array()
        .unwrap()
        .clone();
    let noncurrent = rules
        .iter()
        .find_map(|r| r["noncurrent_version_expiration"][0]["noncurrent_days"].as_i64())
        .expect("noncurrent versions expire");
    assert_eq!(
        noncurrent, 7,
        "noncurrent versions expire after VACUUM's retention (168 h)"
    );
    assert!(
        rules.iter().any(
            |r| r["abort_incomplete_multipart_upload"][0]["days_after_initiation"].as_i64()
                == Some(1)
        ),
        "incomplete multipart uploads are aborted"
    );
}

#[test]
fn infra_applies_and_destroys_on_the_emulator_in_both_kafka_modes() {
    let Some(moto) = tools() else { return };
    let work = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(&moto, &work.path().join("moto.log"));
    let zips = work.path().join("zips");
    if let Err(out) = run(
        "scripts/package",
        &["--debug"],
        &[("LAMBDA_DIR", zips.to_str().unwrap())],
    ) {
        panic!("scripts/package --debug failed (build the binaries first):\n{out}");
    }

    // Self-managed Kafka without authentication is refused unless allowed in so many words.
    let refused = run(
        "infra/deploy",
        &[
            "apply",
            "-auto-approve",
            &format!(
                "-var-file={}",
                repo_root().join("infra/examples/emulator.tfvars").display()
            ),
            &format!("-var=emulator_endpoint={}", emulator.endpoint),
            &format!("-var=lambda_zip_dir={}", zips.display()),
            "-var=kafka_allow_unauthenticated_plaintext=false",
        ],
        &[("DEPLOY_DIR", work.path().join("refused").to_str().unwrap())],
    );
    let out = refused.expect_err("an unauthenticated self-managed Kafka source was deployed");
    assert!(out.contains("kafka_auth_secret_arn"), "{out}");

    let self_managed = deploy(
        &emulator,
        &work.path().join("self-managed"),
        &zips,
        &[],
        |state| {
            check_common(state);
            let mapping = attributes(state, "aws_lambda_event_source_mapping.kafka");
            assert_eq!(
                mapping["self_managed_event_source"][0]["endpoints"]["KAFKA_BOOTSTRAP_SERVERS"],
                "127.0.0.1:9092"
            );
            assert_eq!(mapping["batch_size"], 10000);
        },
    );

    // MSK: a cluster on the emulator, and a role scoped to its topic and consumer group.
    let cluster = Command::new(repo_root().join(".tools/awscli/bin/aws"))
        .args([
            "--endpoint-url",
            &emulator.endpoint,
            "--region",
            "us-east-1",
            "--output",
            "text",
            "--query",
            "ClusterArn",
            "kafka",
            "create-cluster-v2",
            "--cluster-name",
            "clickstream",
            "--provisioned",
            "BrokerNodeGroupInfo={InstanceType=kafka.m5.large,ClientSubnets=[subnet-1,subnet-2]},\
             KafkaVersion=3.6.0,NumberOfBrokerNodes=2",
        ])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("the AWS CLI (scripts/tools.sh ensure_awscli)");
    assert!(
        cluster.status.success(),
        "{}",
        String::from_utf8_lossy(&cluster.stderr)
    );
    let cluster_arn = String::from_utf8(cluster.stdout)
        .unwrap()
        .trim()
        .to_string();
    let vars = [
        "-var=kafka_mode=msk".to_string(),
        format!("-var=msk_cluster_arn={cluster_arn}"),
    ];
    let msk = deploy(&emulator, &work.path().join("msk"), &zips, &vars, |state| {
        check_common(state);
        let mapping = attributes(state, "aws_lambda_event_source_mapping.kafka");
        assert_eq!(mapping["event_source_arn"], cluster_arn.as_str());
        let policy: Value = serde_json::from_str(
            attributes(state, "aws_iam_role_policy.kafka_source")["policy"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let text = policy.to_string();
        // arn:aws:kafka:REGION:ACCOUNT:cluster/NAME/UUID -> topic/NAME/UUID/TOPIC, group/...
        let path = cluster_arn.split_once(":cluster/").unwrap().1;
        assert!(
            text.contains(&format!(":topic/{path}/clickstream-events\"")),
            "{text}"
        );
        assert!(
            text.contains(&format!(":group/{path}/clickstream-bronze-writer\"")),
            "{text}"
        );
        assert!(
            !text.contains("/*"),
            "MSK permissions are scoped to the topic and group: {text}"
        );
    });
    eprintln!("apply took {self_managed} s (self-managed) and {msk} s (MSK)");
}
