//! `clickstream serve`: the dashboard over HTTP shows gold, and after more events reach gold the
//! page it serves shows the new version within seconds: fetched directly, and in a browser that
//! keeps the page open (where Node.js, the driver and Chromium are installed), which reloads it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clickstream::lake::Lake;
use clickstream_report::dashboard::{load, render_html};
use serde_json::Value;

/// A `clickstream serve` process, stopped when dropped.
pub struct Server {
    child: Child,
    /// The page's address.
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Serves `lake` on a free port, with `env` (the local stack's S3 settings, say), once the
    /// page answers; returns the server and the first page.
    pub async fn start(lake: &str, env: &[(String, String)]) -> (Server, String) {
        let port = crate::stack::free_port();
        let server = Server {
            child: Command::new(env!("CARGO_BIN_EXE_clickstream"))
                .args(["serve", "--lake", lake, "--port", &port.to_string()])
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
            url: format!("http://127.0.0.1:{port}/"),
        };
        let started = Instant::now();
        loop {
            if let Some(page) = get(&server.url).await {
                return (server, page);
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "serve did not answer"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page once it shows a gold version other than `before`, within `limit`.
    pub async fn changed_from(&self, before: &str, limit: Duration) -> String {
        let changed = Instant::now();
        loop {
            let page = get(&self.url).await.unwrap_or_default();
            if gold_version(&page) != before {
                return page;
            }
            assert!(
                changed.elapsed() < limit,
                "the page still shows gold {before}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// The gold version a served page shows.
pub fn gold_version(page: &str) -> String {
    attribute(page, "<body", "data-gold-version")
}

/// The DAU the page's headline shows.
pub fn headline_dau(html: &str) -> String {
    attribute(html, "data-headline=\"dau\"", "data-value")
}

/// Runs `clickstream` with `args`, which must succeed.
fn clickstream(args: &[&str]) {
    let (ok, _, stderr) = crate::demo::clickstream(args);
    assert!(ok, "clickstream {args:?}: {stderr}");
}

/// The value of `name="..."` in the first tag holding `marker`.
fn attribute(html: &str, marker: &str, name: &str) -> String {
    let tag = html.split(marker).nth(1).unwrap_or_default();
    let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
    let start = tag.find(&format!("{name}=\"")).map(|i| i + name.len() + 2);
    start
        .and_then(|s| Some(tag[s..s + tag[s..].find('"')?].to_string()))
        .unwrap_or_default()
}

async fn get(url: &str) -> Option<String> {
    reqwest::get(url).await.ok()?.text().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_dashboard_follows_gold() {
    let dir = tempfile::tempdir().unwrap();
    let lake_dir = dir.path().join("lake");
    let lake_uri = lake_dir.to_str().unwrap();
    let first = dir.path().join("first.jsonl");
    let more = dir.path().join("more.jsonl");
    for (file, seed) in [(&first, "1"), (&more, "2")] {
        let file = file.to_str().unwrap();
        clickstream(&[
            "generate", "--events", "1500", "--days", "3", "--seed", seed, "--output", file,
        ]);
    }
    clickstream(&["ingest", "--lake", lake_uri, first.to_str().unwrap()]);

    let (server, page) = Server::start(lake_uri, &[]).await;
    let lake = Lake::open(lake_uri).unwrap();
    let expected = render_html(&load(&lake, Default::default()).await.unwrap());
    let dau = headline_dau;
    assert_eq!(dau(&page), dau(&expected));
    let before = gold_version(&page);
    assert!(
        page.contains("fetch('/version')"),
        "the page polls for new gold"
    );

    // A browser keeps the page open (where Node.js, the driver and Chromium are installed).
    let browser = crate::browser::driver().map(|(scripts, chromium)| {
        let mut follower = Command::new("node")
            .arg(scripts.join("follow.mjs"))
            .env("CHROMIUM", chromium)
            .env("PAGE_URL", &server.url)
            .env("TIMEOUT_MS", "20000")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
        let loaded: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(loaded["version"].as_str(), Some(before.as_str()));
        (follower, lines)
    });

    // More events reach gold: the served page shows the new version within seconds.
    clickstream(&["ingest", "--lake", lake_uri, more.to_str().unwrap()]);
    let expected = render_html(&load(&lake, Default::default()).await.unwrap());
    let page = server.changed_from(&before, Duration::from_secs(10)).await;
    assert_eq!(dau(&page), dau(&expected));
    assert_ne!(
        get(&format!("{}version", server.url)).await.unwrap(),
        format!("{{\"gold\":{before}}}")
    );

    // The open page reloaded itself onto the new gold, and its script drew the tiles.
    let Some((mut follower, mut lines)) = browser else {
        return;
    };
    let reloaded = lines.next().and_then(|l| l.ok());
    let status = follower.wait().unwrap();
    let mut stderr = String::new();
    let _ = follower.stderr.take().unwrap().read_to_string(&mut stderr);
    let reloaded: Value =
        serde_json::from_str(&reloaded.unwrap_or_default()).unwrap_or_else(|_| {
            panic!("the open page did not reload onto new gold ({status}): {stderr}")
        });
    assert_eq!(
        reloaded["version"].as_str(),
        Some(gold_version(&page).as_str())
    );
    assert_eq!(reloaded["dau"].as_str(), Some(dau(&expected).as_str()));
    assert_eq!(reloaded["tiles"], 6, "the page's script drew its tiles");
    assert_eq!(reloaded["errors"], Value::Array(vec![]), "console errors");
}
