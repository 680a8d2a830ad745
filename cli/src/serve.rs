//! `clickstream serve`: the dashboard over HTTP, read-only, refreshed in the browser when gold
//! changes. `GET /` is the page (rendered again only when gold has moved on), `GET /version` the
//! silver version gold reflects, which a small script on the page polls.
//!
//! Made to face a network it does not trust: a request is routed (and its method and `Host`
//! checked) before the lake is touched; the gold version is looked up at most about once a second
//! whatever the request rate; connections are bounded in number, must send their headers within
//! a timeout and carry one request each; an error reaches the client as a generic 503 (its
//! details go to the log); every response forbids framing and sniffing, and the page runs only
//! its own scripts (a Content-Security-Policy with their hashes).

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use base64::Engine as _;
use clickstream::Lake;
use clickstream::gold::processed_silver_version;
use clickstream_report::dashboard;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::Digest as _;
use tokio::sync::{Mutex, Semaphore};

/// How often the page asks whether gold changed, in milliseconds.
const POLL_MS: u64 = 2_000;
/// How long a looked-up gold version is served before it is looked up again.
const VERSION_TTL: Duration = Duration::from_secs(1);
/// How long a connection may live after its headers arrived: the answer (bounded by the lake's
/// own timeout) and its sending to a slow reader.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// The wait after a failed `accept` (too many open files, say) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// What a client is told when the lake cannot be read; the details go to the server's log.
const UNAVAILABLE: &str =
    "the dashboard cannot read the lake right now; the server's log says why\n";

/// How `serve` treats its clients.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Most connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// How long a connection may take to send its request's headers.
    pub header_timeout: Duration,
    /// Host names the server answers to besides `localhost` and IP addresses (a name that
    /// resolves here is how DNS rebinding reaches a local server, so others are refused).
    pub allowed_hosts: Vec<String>,
}

/// The page's script: reload once `/version` differs from the version the page was made from.
fn refresher(version: i64) -> String {
    format!(
        "<script>setInterval(async()=>{{try{{const r=await fetch('/version');const v=await \
         r.json();if(v.gold!=={version})location.reload()}}catch(e){{}}}},{POLL_MS});</script>"
    )
}

/// The rendered page, the gold version it shows, and its Content-Security-Policy.
#[derive(Default)]
struct Page {
    version: Option<i64>,
    html: Bytes,
    policy: String,
}

/// What the server shares between connections.
struct Dashboard {
    lake: Lake,
    options: ServeOptions,
    /// The last looked-up gold version and when; one lookup at a time.
    version: Mutex<Option<(Instant, i64)>>,
    page: Mutex<Page>,
}

/// Serves the dashboard of `lake` on `address` until the process is stopped.
pub async fn serve(lake: Lake, address: SocketAddr, options: ServeOptions) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address}"))?;
    eprintln!(
        "dashboard of {} at http://{}/ (refreshes when gold changes; Ctrl-C stops)",
        lake.root(),
        listener.local_addr()?
    );
    let connections = Arc::new(Semaphore::new(options.max_connections));
    let dashboard = Arc::new(Dashboard {
        lake,
        options,
        version: Mutex::new(None),
        page: Mutex::new(Page::default()),
    });
    loop {
        let permit = connections.clone().acquire_owned().await?;
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let dashboard = dashboard.clone();
        tokio::spawn(async move {
            let header_timeout = dashboard.options.header_timeout;
            let service = hyper::service::service_fn(move |request| {
                let dashboard = dashboard.clone();
                async move { Ok::<_, Infallible>(dashboard.answer(request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(header_timeout + ANSWER_TIMEOUT, connection).await {
                Ok(Err(e)) => tracing::debug!("connection: {e}"),
                Err(_) => tracing::debug!("connection: closed after {ANSWER_TIMEOUT:?}"),
                Ok(Ok(())) => {}
            }
            drop(permit);
        });
    }
}

impl Dashboard {
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if !self.host_allowed(&request) {
            return reply(
                StatusCode::MISDIRECTED_REQUEST,
                "text/plain",
                "unknown host\n",
            );
        }
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            let mut response = reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
            let allow = HeaderValue::from_static("GET, HEAD");
            response.headers_mut().insert(header::ALLOW, allow);
            return response;
        }
        let answered = match request.uri().path() {
            "/" => self.page().await,
            "/version" => self.version().await.map(|version| {
                let body = format!("{{\"gold\":{version}}}");
                reply(StatusCode::OK, "application/json", body)
            }),
            _ => return reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
        };
        answered.unwrap_or_else(|e| {
            tracing::error!("{}: {}", request.uri().path(), crate::error_report(&e));
            reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", UNAVAILABLE)
        })
    }

    /// True when the request names this server: by IP address, as `localhost`, or by a name
    /// given with `--allow-host`.
    fn host_allowed(&self, request: &Request<Incoming>) -> bool {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<hyper::http::uri::Authority>().ok());
        let Some(host) = host else {
            return false;
        };
        let name = host.host().trim_start_matches('[').trim_end_matches(']');
        name.parse::<IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || self
                .options
                .allowed_hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(name))
    }

    /// The gold version, looked up at most once per [`VERSION_TTL`].
    async fn version(&self) -> Result<i64> {
        let mut cached = self.version.lock().await;
        if let Some((at, version)) = *cached
            && at.elapsed() < VERSION_TTL
        {
            return Ok(version);
        }
        let version = processed_silver_version(&self.lake).await?.unwrap_or(-1);
        *cached = Some((Instant::now(), version));
        Ok(version)
    }

    /// The page of the current gold version, rendered again only when gold moved on.
    async fn page(&self) -> Result<Response<Full<Bytes>>> {
        let version = self.version().await?;
        let mut page = self.page.lock().await;
        if page.version != Some(version) {
            let data = dashboard::load(&self.lake, Default::default()).await?;
            let html = dashboard::render_html(&data)
                .replace("<body>", &format!("<body data-gold-version=\"{version}\">"))
                .replace("</body>", &format!("{}</body>", refresher(version)));
            *page = Page {
                version: Some(version),
                policy: page_policy(&html),
                html: Bytes::from(html),
            };
        }
        let mut response = reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            page.html.clone(),
        );
        let policy = HeaderValue::from_str(&page.policy)?;
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy);
        Ok(response)
    }
}

/// A response with the headers every answer carries.
fn reply(status: StatusCode, kind: &'static str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, kind)
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        )
        .body(Full::new(body.into()))
        .expect("a static response shape")
}

/// The page's Content-Security-Policy: nothing but its own inline scripts and style (by hash),
/// `fetch` to this server, `data:` images, and no framing.
fn page_policy(html: &str) -> String {
    let hashes = |tag: &str| {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut hashes = String::new();
        let mut rest = html;
        while let Some(start) = rest.find(&open) {
            let body = &rest[start + open.len()..];
            let end = body.find(&close).unwrap_or(body.len());
            let digest = sha2::Sha256::digest(&body.as_bytes()[..end]);
            let digest = base64::engine::general_purpose::STANDARD.encode(digest);
            hashes.push_str(&format!(" 'sha256-{digest}'"));
            rest = &body[end..];
        }
        hashes
    };
    format!(
        "default-src 'none'; script-src{}; style-src{}; img-src data:; connect-src 'self'; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hashes("script"),
        hashes("style")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_page_s_inline_scripts_and_style() {
        let html = "<style>b{}</style><script type=\"application/json\">{}</script>\
                    <script>run()</script><script>more()</script>";
        let policy = page_policy(html);
        let hash = |s: &str| {
            let digest = sha2::Sha256::digest(s.as_bytes());
            format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            )
        };
        assert!(policy.contains(&format!("script-src {} {};", hash("run()"), hash("more()"))));
        assert!(policy.contains(&format!("style-src {};", hash("b{}"))));
        assert!(!policy.contains("unsafe"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"));
    }
}
