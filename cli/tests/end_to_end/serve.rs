//! `clickstream serve`: the dashboard over HTTP shows gold, and after more events reach gold the
//! page it serves shows the new version within seconds (fetched directly and, where Chromium is
//! installed, as a browser renders it).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clickstream::lake::Lake;
use clickstream_report::dashboard::{load, render_html};

/// The `serve` process, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
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

    let port = crate::stack::free_port();
    let _server = Server(
        Command::new(env!("CARGO_BIN_EXE_clickstream"))
            .args(["serve", "--lake", lake_uri, "--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}/");
    let started = Instant::now();
    let page = loop {
        if let Some(page) = get(&url).await {
            break page;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not answer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lake = Lake::open(lake_uri).unwrap();
    let expected = render_html(&load(&lake, Default::default()).await.unwrap());
    let dau = |html: &str| attribute(html, "data-headline=\"dau\"", "data-value");
    assert_eq!(dau(&page), dau(&expected));
    let before = attribute(&page, "<body", "data-gold-version");
    assert!(
        page.contains("fetch('/version')"),
        "the page polls for new gold"
    );

    // More events reach gold: the served page shows the new version within seconds.
    clickstream(&["ingest", "--lake", lake_uri, more.to_str().unwrap()]);
    let expected = render_html(&load(&lake, Default::default()).await.unwrap());
    let changed = Instant::now();
    let page = loop {
        let page = get(&url).await.unwrap_or_default();
        if attribute(&page, "<body", "data-gold-version") != before {
            break page;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(10),
            "the page still shows gold {before}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(dau(&page), dau(&expected));
    assert_ne!(
        get(&format!("{url}version")).await.unwrap(),
        format!("{{\"gold\":{before}}}")
    );

    // As a browser renders it (its script runs; no console errors from it).
    let Some(chromium) = crate::browser::chromium() else {
        return;
    };
    let out = crate::browser::headless(&chromium, &dir.path().join("profile"))
        .args(["--dump-dom", &url])
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        dau(&dom),
        dau(&expected),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("class=\"tile\" data-metric=\"dau\""),
        "the page's script drew its tiles"
    );
}
