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
    // The page may run only its own inline scripts and style, named by hash; the browser below
    // runs it under that policy.
    let response = reqwest::get(&server.url).await.unwrap();
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap();
    assert_eq!(
        policy.matches("'sha256-").count(),
        4,
        "three scripts and a style: {policy}"
    );
    assert!(
        !policy.contains("unsafe") && policy.contains("default-src 'none'"),
        "{policy}"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");

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

/// An S3 endpoint that accepts connections and never answers, counting them; stopped when
/// dropped.
struct MuteStore {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MuteStore {
    fn start() -> MuteStore {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (accepted, stop) = (accepted.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((socket, _)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            held.push(socket);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        MuteStore {
            port,
            accepted,
            stop,
            thread: Some(thread),
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for MuteStore {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits until `connection` is closed by the server (a read gives end of file or an error),
/// within `limit`.
async fn closed_within(mut connection: tokio::net::TcpStream, limit: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buffer = [0u8; 1024];
    let read = async {
        loop {
            match connection.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read).await.is_ok()
}

/// `serve` facing clients it cannot trust, on a lake that never answers: requests are routed,
/// and their method and Host checked, before the lake is touched; a lake that does not answer
/// gives a generic 503 whose details go only to the log; connections are bounded, and idle or
/// slow ones are closed after the header timeout while the server keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_holds_up_against_idle_and_slow_connections_and_a_mute_lake() {
    use tokio::io::AsyncWriteExt;
    let store = MuteStore::start();
    let port = crate::stack::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_clickstream"))
        .args([
            "serve",
            "--lake",
            "s3://mute-bucket/lake",
            "--port",
            &port.to_string(),
        ])
        .args(["--max-connections", "8", "--header-timeout", "1"])
        .env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", store.port),
        )
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("LAKE_TIMEOUT_SECONDS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let address = format!("127.0.0.1:{port}");
    let url = format!("http://{address}");
    let started = Instant::now();
    while tokio::net::TcpStream::connect(&address).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "serve did not listen"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();

    // Routed before the lake: no connection reaches the store.
    let not_found = client.get(format!("{url}/nothing")).send().await.unwrap();
    assert_eq!(not_found.status(), 404);
    let post = client.post(format!("{url}/")).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    let rebound = client
        .get(format!("{url}/"))
        .header("host", format!("attacker.example:{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 421);
    for response in [&not_found, &post, &rebound] {
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let policy = response.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
    }
    assert_eq!(
        store.accepted(),
        0,
        "a request touched the lake before routing"
    );

    // The mute lake: a generic 503 once the lake's timeout passes, for the page and the version;
    // the endpoint and bucket are not in the body.
    for path in ["/version", "/"] {
        let response = client.get(format!("{url}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 503, "{path}");
        let body = response.text().await.unwrap();
        assert!(body.contains("cannot read the lake"), "{body}");
        assert!(
            !body.contains("127.0.0.1") && !body.contains("mute-bucket"),
            "{body}"
        );
    }
    assert!(store.accepted() > 0);

    // Eight idle connections and slow ones trickling their headers hold every slot: a request
    // made meanwhile is answered once the header timeout has closed them, and they are closed.
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(tokio::net::TcpStream::connect(&address).await.unwrap());
    }
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut connection = tokio::net::TcpStream::connect(&address).await.unwrap();
        connection.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        slow.push(tokio::spawn(async move {
            for byte in b"Host: localhost\r\nX-Slow: 1\r\n".iter().cycle().take(200) {
                if connection.write_all(&[*byte]).await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }));
    }
    let asked = Instant::now();
    let answered = client.get(format!("{url}/nothing")).send().await.unwrap();
    assert_eq!(answered.status(), 404);
    assert!(
        asked.elapsed() >= Duration::from_millis(900),
        "answered after {:?}, before the idle connections' header timeout",
        asked.elapsed()
    );
    for connection in idle {
        assert!(
            closed_within(connection, Duration::from_secs(30)).await,
            "an idle connection stayed open"
        );
    }
    for trickle in slow {
        let cut_off = tokio::time::timeout(Duration::from_secs(30), trickle).await;
        assert!(
            matches!(cut_off, Ok(Ok(true))),
            "a slow connection was not cut off"
        );
    }

    // The details of the lake's failure are in the server's log.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains(&format!("127.0.0.1:{}", store.port)), "{log}");
}
