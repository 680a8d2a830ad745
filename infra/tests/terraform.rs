//! The Terraform in infra/ agrees with the code: one Lambda per function crate, the env vars the
//! code reads, notification filters on the lake layout, least-privilege IAM, private buckets.

use std::collections::BTreeSet;
use std::path::PathBuf;

use clickstream::bronze::LANDING_PREFIX;
use clickstream::lake::Table;
use clickstream::settings;
use infra_checks::hcl::{Block, Expression};
use infra_checks::{
    attr, blocks, labels, nested, object_get, object_keys, of_type, string, strings, text,
};

use clickstream_testkit::repo_root;

fn tf() -> Vec<Block> {
    blocks(&repo_root().join("infra"))
}

/// The function binaries: the crates under functions/ with a `main.rs` (functions/lambda is the
/// library they share).
fn function_crates() -> BTreeSet<String> {
    std::fs::read_dir(repo_root().join("functions"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("src/main.rs").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn local<'a>(blocks: &'a [Block], name: &str) -> &'a Expression {
    blocks
        .iter()
        .filter(|b| b.identifier() == "locals")
        .find_map(|b| attr(b.body(), name))
        .unwrap_or_else(|| panic!("local.{name} not found"))
}

fn rust_sources() -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut dirs = vec![
        repo_root().join("shared/src"),
        repo_root().join("functions"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
            let p = entry.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                files.push((p, text));
            }
        }
    }
    files
}

/// The variables the functions read: [`clickstream::settings::ALL`].
fn env_constants() -> BTreeSet<String> {
    settings::ALL.iter().map(|v| v.to_string()).collect()
}

#[test]
fn every_function_crate_has_a_lambda() {
    let blocks = tf();
    let crates = function_crates();
    let keys: BTreeSet<String> = object_keys(local(&blocks, "functions"))
        .into_iter()
        .collect();
    assert_eq!(
        keys, crates,
        "local.functions must list exactly the crates under functions/"
    );
    let lambdas = of_type(&blocks, "resource", "aws_lambda_function");
    assert_eq!(lambdas.len(), 1);
    let body = lambdas[0].body();
    assert_eq!(text(attr(body, "for_each").unwrap()), "local.functions");
    assert_eq!(
        string(attr(body, "handler").unwrap()).as_deref(),
        Some("bootstrap")
    );
    assert_eq!(
        string(attr(body, "runtime").unwrap()).as_deref(),
        Some("provided.al2023")
    );
    let logging = nested(body, "logging_config");
    assert_eq!(
        attr(logging[0].body(), "log_format")
            .and_then(string)
            .as_deref(),
        Some("JSON"),
        "the functions' logs are JSON in CloudWatch"
    );
    let filename = text(attr(body, "filename").unwrap());
    assert!(
        filename.contains("${var.lambda_zip_dir}/${each.key}/bootstrap.zip"),
        "{filename}"
    );
    assert!(text(attr(body, "function_name").unwrap()).contains("${each.key}"));
    // The packaging script writes where Terraform reads.
    let package = std::fs::read_to_string(repo_root().join("scripts/package")).unwrap();
    assert!(
        package.contains("target/lambda"),
        "scripts/package must build into target/lambda"
    );
    for name in &crates {
        let main =
            std::fs::read_to_string(repo_root().join(format!("functions/{name}/src/main.rs")))
                .unwrap();
        assert!(
            main.contains("clickstream_lambda::serve")
                || main.contains("clickstream_lambda::lake_function!"),
            "{name} serves its handler with clickstream_lambda"
        );
    }
    let shared = std::fs::read_to_string(repo_root().join("functions/lambda/src/lib.rs")).unwrap();
    assert!(
        shared.contains("lambda_runtime::run"),
        "clickstream_lambda::serve runs the lambda_runtime"
    );
}

#[test]
fn env_vars_match_what_the_code_reads() {
    let blocks = tf();
    let code = env_constants();
    assert!(
        code.contains("LAKE_URI") && code.contains("FUNNEL_STEPS"),
        "{code:?}"
    );
    // Every read goes through a named constant of clickstream::settings, so the list above is
    // complete.
    for (path, text) in rust_sources() {
        assert!(
            !text.contains("env::var(\""),
            "{} reads an env var by literal name",
            path.display()
        );
    }
    let common = local(&blocks, "common_environment");
    let mut set: BTreeSet<String> = BTreeSet::new();
    let common_text = text(common);
    for var in [
        "LAKE_URI",
        "RUST_LOG",
        "LAKE_TIMEOUT_SECONDS",
        "AWS_ENDPOINT_URL",
        "AWS_ALLOW_HTTP",
    ] {
        if common_text.contains(var) {
            set.insert(var.to_string());
        }
    }
    let functions = local(&blocks, "functions");
    for name in function_crates() {
        let f = object_get(functions, &name).unwrap();
        let env = object_get(f, "environment").unwrap();
        let main =
            std::fs::read_to_string(repo_root().join(format!("functions/{name}/src/main.rs")))
                .unwrap();
        let keys = object_keys(env);
        for k in &keys {
            assert!(
                code.contains(k),
                "{name}: Terraform sets {k}, which no code reads"
            );
        }
        for (settings_type, var) in [
            ("GoldSettings", settings::FUNNEL_STEPS),
            ("MaintenanceSettings", settings::VACUUM_RETENTION_HOURS),
        ] {
            if main.contains(settings_type) {
                assert!(keys.contains(&var.to_string()), "{name} reads {var}");
            }
        }
        set.extend(keys);
    }
    for var in &code {
        assert!(
            set.contains(var),
            "the code reads {var}, Terraform never sets it"
        );
    }
    for var in &set {
        let known = code.contains(var) || var == "RUST_LOG" || var.starts_with("AWS_");
        assert!(known, "Terraform sets unknown variable {var}");
    }
    assert!(set.contains("LAKE_URI") && set.contains("RUST_LOG"));
}

/// The README's table of environment variables lists every variable the functions read.
#[test]
fn the_readme_lists_every_variable() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    for var in settings::ALL {
        assert!(
            readme
                .lines()
                .any(|l| l.starts_with(&format!("| `{var}` |"))),
            "README.md's table of environment variables lacks {var}"
        );
    }
}

#[test]
fn notification_filters_follow_the_lake_layout() {
    let blocks = tf();
    let n = local(&blocks, "notifications");
    let prefix = |f: &str| text(object_get(object_get(n, f).unwrap(), "prefix").unwrap());
    let suffix = |f: &str| text(object_get(object_get(n, f).unwrap(), "suffix").unwrap());
    assert_eq!(
        prefix("bronze-writer"),
        format!("\"${{local.lake_root}}{LANDING_PREFIX}\"")
    );
    let bronze_log = Table::Bronze
        .commit_key(0)
        .rsplit_once('/')
        .unwrap()
        .0
        .to_string()
        + "/";
    let silver_log = Table::Silver
        .commit_key(0)
        .rsplit_once('/')
        .unwrap()
        .0
        .to_string()
        + "/";
    assert_eq!(
        prefix("silver-transformer"),
        format!("\"${{local.lake_root}}{bronze_log}\"")
    );
    assert_eq!(
        prefix("gold-transformer"),
        format!("\"${{local.lake_root}}{silver_log}\"")
    );
    assert_eq!(suffix("silver-transformer"), "\".json\"");
    assert_eq!(suffix("gold-transformer"), "\".json\"");
    // What the handlers accept is exactly what the filters let through.
    assert_eq!(
        Table::commit_at(&Table::Bronze.commit_key(7)),
        Some((Table::Bronze, 7))
    );
    assert_eq!(
        Table::commit_at("bronze/events/_delta_log/00000000000000000007.checkpoint.parquet"),
        None
    );
    let prefixes = [LANDING_PREFIX.to_string(), bronze_log, silver_log];
    for (i, a) in prefixes.iter().enumerate() {
        for b in prefixes.iter().skip(i + 1) {
            assert!(
                !a.starts_with(b.as_str()) && !b.starts_with(a.as_str()),
                "{a} and {b} overlap"
            );
        }
    }
    let notification = of_type(&blocks, "resource", "aws_s3_bucket_notification");
    assert_eq!(notification.len(), 1);
}

#[test]
fn iam_allows_no_wildcards_except_where_aws_requires_them() {
    let blocks = tf();
    let docs = of_type(&blocks, "data", "aws_iam_policy_document");
    assert!(docs.len() >= 4);
    let mut checked = 0;
    for doc in docs {
        let mut statements: Vec<&Block> = nested(doc.body(), "statement");
        for d in nested(doc.body(), "dynamic") {
            statements.extend(nested(d.body(), "content"));
        }
        for st in statements {
            let effect = attr(st.body(), "effect")
                .and_then(string)
                .unwrap_or_else(|| "Allow".into());
            if effect == "Deny" {
                continue;
            }
            checked += 1;
            let sid = attr(st.body(), "sid").and_then(string).unwrap_or_default();
            let actions = attr(st.body(), "actions").map(strings).unwrap_or_default();
            for a in &actions {
                assert!(
                    !a.contains('*'),
                    "{}: statement {sid:?} allows wildcard action {a}",
                    labels(doc)[1]
                );
            }
            let resources = attr(st.body(), "resources").map(text).unwrap_or_default();
            if resources.contains("[\"*\"]") {
                assert_eq!(
                    sid, "VpcNetworkInterfaces",
                    "only EC2 network interface actions may use resource *"
                );
                assert!(actions.iter().all(|a| a.starts_with("ec2:")));
            }
        }
    }
    assert!(checked >= 8);
}

#[test]
fn buckets_block_public_access_and_are_encrypted() {
    let blocks = tf();
    let buckets = of_type(&blocks, "resource", "aws_s3_bucket");
    assert!(!buckets.is_empty());
    for bucket in buckets {
        let name = labels(bucket)[1];
        let reference = format!("aws_s3_bucket.{name}.id");
        let pab = of_type(&blocks, "resource", "aws_s3_bucket_public_access_block")
            .into_iter()
            .find(|b| text(attr(b.body(), "bucket").unwrap()) == reference)
            .unwrap_or_else(|| panic!("bucket {name} has no public access block"));
        for flag in [
            "block_public_acls",
            "block_public_policy",
            "ignore_public_acls",
            "restrict_public_buckets",
        ] {
            assert_eq!(
                attr(pab.body(), flag),
                Some(&Expression::Bool(true)),
                "{name}: {flag}"
            );
        }
        let sse = of_type(
            &blocks,
            "resource",
            "aws_s3_bucket_server_side_encryption_configuration",
        )
        .into_iter()
        .find(|b| text(attr(b.body(), "bucket").unwrap()) == reference)
        .unwrap_or_else(|| panic!("bucket {name} is not encrypted"));
        let rule = nested(sse.body(), "rule");
        let default = nested(rule[0].body(), "apply_server_side_encryption_by_default");
        assert!(attr(default[0].body(), "sse_algorithm").is_some());
        let policy = of_type(&blocks, "resource", "aws_s3_bucket_policy")
            .into_iter()
            .find(|b| text(attr(b.body(), "bucket").unwrap()) == reference)
            .unwrap_or_else(|| panic!("bucket {name} has no policy"));
        let doc_name = text(attr(policy.body(), "policy").unwrap());
        let doc = of_type(&blocks, "data", "aws_iam_policy_document")
            .into_iter()
            .find(|d| doc_name.contains(labels(d)[1]))
            .unwrap();
        let tls = text(
            attr(
                nested(nested(doc.body(), "statement")[0].body(), "condition")[0].body(),
                "variable",
            )
            .unwrap(),
        );
        assert_eq!(tls, "\"aws:SecureTransport\"");
    }
}

/// The log metric filter behind the recreated-topic alarm matches the error bronze-writer logs.
#[test]
fn the_kafka_source_reset_filter_matches_the_error() {
    let blocks = tf();
    let filter = of_type(&blocks, "resource", "aws_cloudwatch_log_metric_filter")
        .into_iter()
        .find(|b| labels(b)[1] == "kafka_source_reset")
        .expect("a log metric filter for Kafka source resets");
    let pattern = text(attr(filter.body(), "pattern").unwrap());
    assert!(
        pattern.contains(clickstream::error::KAFKA_SOURCE_RESET),
        "{pattern} does not match {:?}",
        clickstream::error::KAFKA_SOURCE_RESET
    );
    let error = clickstream::Error::KafkaSourceReset {
        topic: "t".into(),
        partition: 0,
        offset: 0,
        watermark: 9,
        evidence: "a test".into(),
    };
    assert!(
        error
            .to_string()
            .starts_with(clickstream::error::KAFKA_SOURCE_RESET)
    );
}

/// Every object expression inside `expr` (through maps, lists, function calls and `for`s).
fn objects_in(expr: &Expression) -> Vec<&Expression> {
    let mut found = Vec::new();
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match e {
            Expression::Object(o) => {
                found.push(e);
                stack.extend(o.values());
            }
            Expression::Array(items) => stack.extend(items),
            Expression::FuncCall(call) => stack.extend(&call.args),
            Expression::ForExpr(f) => stack.push(&f.value_expr),
            Expression::Parenthesis(inner) => stack.push(inner),
            _ => {}
        }
    }
    found
}

/// The alarms on the functions' own metrics read metrics the code emits: the namespace and the
/// Stage dimension are telemetry's, and every metric name is one of `telemetry::metric::ALL`.
#[test]
fn alarms_read_metrics_the_functions_emit() {
    use clickstream::telemetry::{NAMESPACE, STAGE, metric};
    let blocks = tf();
    assert_eq!(
        string(local(&blocks, "emf_namespace")).as_deref(),
        Some(NAMESPACE)
    );
    assert_eq!(string(local(&blocks, "emf_stage")).as_deref(), Some(STAGE));

    let mut read = BTreeSet::new();
    for alarm in objects_in(local(&blocks, "alarms")) {
        let namespace = object_get(alarm, "namespace").map(text);
        if namespace.as_deref() == Some("local.emf_namespace") {
            let name = string(object_get(alarm, "metric").expect("an alarm's metric"));
            read.insert(name.expect("a metric name as a literal"));
        }
    }
    let math = local(&blocks, "math_alarms");
    for alarm in object_keys(math) {
        let queries = object_get(object_get(math, &alarm).unwrap(), "queries")
            .unwrap_or_else(|| panic!("{alarm} has no queries"));
        for id in object_keys(queries) {
            let query = object_get(queries, &id).unwrap();
            read.insert(string(object_get(query, "metric").unwrap()).unwrap());
            let function = string(object_get(query, "function").unwrap()).unwrap();
            assert!(
                function_crates().contains(&function),
                "{alarm}.{id} reads {function}'s metric: no such function"
            );
        }
    }
    let resource = of_type(&blocks, "resource", "aws_cloudwatch_metric_alarm")
        .into_iter()
        .find(|b| labels(b)[1] == "math")
        .expect("the metric math alarms");
    let query = nested(resource.body(), "dynamic")
        .into_iter()
        .find(|b| labels(b) == ["metric_query"])
        .expect("the math alarms' metric queries");
    let content = &nested(query.body(), "content")[0];
    let metric_block = &nested(content.body(), "metric")[0];
    assert_eq!(
        text(attr(metric_block.body(), "namespace").unwrap()),
        "local.emf_namespace"
    );

    for name in [
        metric::FRESHNESS,
        metric::QUARANTINED,
        metric::RECORDS_IN,
        metric::LOST_RACES,
    ] {
        assert!(read.contains(name), "no alarm reads {name}: {read:?}");
    }
    for name in &read {
        assert!(
            metric::ALL.contains(&name.as_str()),
            "an alarm reads {name}, which no function emits (telemetry::metric::ALL)"
        );
    }
}
