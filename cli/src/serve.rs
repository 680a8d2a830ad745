//! `clickstream serve`: the dashboard over HTTP, read-only, refreshed in the browser when gold
//! changes. `GET /` is the page (rendered again only when gold has moved on), `GET /version` the
//! silver version gold reflects, which a small script on the page polls.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use clickstream::Lake;
use clickstream::gold::processed_silver_version;
use clickstream_report::dashboard;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::Mutex;

/// How often the page asks whether gold changed, in milliseconds.
const POLL_MS: u64 = 2_000;

/// The page's script: reload once `/version` differs from the version the page was made from.
fn refresher(version: i64) -> String {
    format!(
        "<script>setInterval(async()=>{{try{{const r=await fetch('/version');const v=await \
         r.json();if(v.gold!=={version})location.reload()}}catch(e){{}}}},{POLL_MS});</script>"
    )
}

/// The rendered page and the gold version it shows.
#[derive(Default)]
struct Cached {
    version: Option<i64>,
    html: String,
}

/// Serves the dashboard of `lake` on `address` until the process is stopped.
pub async fn serve(lake: Lake, address: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("listening on {address}"))?;
    eprintln!(
        "dashboard of {} at http://{}/ (refreshes when gold changes; Ctrl-C stops)",
        lake.root(),
        listener.local_addr()?
    );
    let cache = Arc::new(Mutex::new(Cached::default()));
    loop {
        let (stream, _) = listener.accept().await?;
        let (lake, cache) = (lake.clone(), cache.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let (lake, cache) = (lake.clone(), cache.clone());
                async move { Ok::<_, Infallible>(answer(&lake, &cache, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = connection.await {
                tracing::debug!("connection: {e}");
            }
        });
    }
}

async fn answer(
    lake: &Lake,
    cache: &Mutex<Cached>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &str, body: String| {
        Response::builder()
            .status(status)
            .header("content-type", kind)
            .header("cache-control", "no-store")
            .body(Full::new(Bytes::from(body)))
            .expect("a static response shape")
    };
    let version = match processed_silver_version(lake).await {
        Ok(v) => v.unwrap_or(-1),
        Err(e) => {
            let message = crate::error_report(&anyhow::Error::from(e));
            return reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", message);
        }
    };
    match request.uri().path() {
        "/version" => reply(
            StatusCode::OK,
            "application/json",
            format!("{{\"gold\":{version}}}"),
        ),
        "/" => {
            let mut cached = cache.lock().await;
            if cached.version != Some(version) {
                let data = match dashboard::load(lake, Default::default()).await {
                    Ok(data) => data,
                    Err(e) => {
                        let message = crate::error_report(&anyhow::Error::from(e));
                        return reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", message);
                    }
                };
                let page = dashboard::render_html(&data);
                cached.html = page
                    .replace("<body>", &format!("<body data-gold-version=\"{version}\">"))
                    .replace("</body>", &format!("{}</body>", refresher(version)));
                cached.version = Some(version);
            }
            reply(
                StatusCode::OK,
                "text/html; charset=utf-8",
                cached.html.clone(),
            )
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}
