//! Files served by the crate itself: the browser runtime (plain ES module, no build step), the
//! default stylesheet, the devtools panel's stylesheet, favicons (SVG, 16/32 px PNG, ICO, apple-touch-icon) and the web
//! manifest, all compiled in with `include_bytes!`.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// Where the browser runtime is served.
pub const RUNTIME_PATH: &str = "/_keel/runtime.js";
/// Where the default stylesheet is served.
pub const STYLESHEET_PATH: &str = "/_keel/app.css";
/// Where the devtools panel's stylesheet is served.
pub const DEVTOOLS_STYLESHEET_PATH: &str = "/_keel/devtools.css";

/// One compiled-in file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    cache: &'static str,
}

/// Short caching for files that change with the code; a day for icons.
const REVALIDATE: &str = "no-cache";
const ONE_DAY: &str = "public, max-age=86400";

const ASSETS: &[Asset] = &[
    Asset {
        path: RUNTIME_PATH,
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/runtime.js"),
        cache: REVALIDATE,
    },
    Asset {
        path: STYLESHEET_PATH,
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/app.css"),
        cache: REVALIDATE,
    },
    Asset {
        path: DEVTOOLS_STYLESHEET_PATH,
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/devtools.css"),
        cache: REVALIDATE,
    },
    Asset {
        path: "/favicon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("../assets/favicon.svg"),
        cache: ONE_DAY,
    },
    Asset {
        path: "/favicon.ico",
        content_type: "image/x-icon",
        bytes: include_bytes!("../assets/favicon.ico"),
        cache: ONE_DAY,
    },
    Asset {
        path: "/favicon-16x16.png",
        content_type: "image/png",
        bytes: include_bytes!("../assets/favicon-16x16.png"),
        cache: ONE_DAY,
    },
    Asset {
        path: "/favicon-32x32.png",
        content_type: "image/png",
        bytes: include_bytes!("../assets/favicon-32x32.png"),
        cache: ONE_DAY,
    },
    Asset {
        path: "/apple-touch-icon.png",
        content_type: "image/png",
        bytes: include_bytes!("../assets/apple-touch-icon.png"),
        cache: ONE_DAY,
    },
    Asset {
        path: "/icon-192.png",
        content_type: "image/png",
        bytes: include_bytes!("../assets/icon-192.png"),
        cache: ONE_DAY,
    },
    Asset {
        path: "/site.webmanifest",
        content_type: "application/manifest+json",
        bytes: include_bytes!("../assets/site.webmanifest"),
        cache: ONE_DAY,
    },
];

/// Routes serving every asset.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    ASSETS.iter().fold(Router::new(), |router, asset| {
        router.route(
            asset.path,
            get(move || async move {
                (
                    [
                        (header::CONTENT_TYPE, asset.content_type),
                        (header::CACHE_CONTROL, asset.cache),
                        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                    ],
                    asset.bytes,
                )
                    .into_response()
            }),
        )
    })
}
