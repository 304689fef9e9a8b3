//! [`App`]: what an app gives Keel (schema, functions, web routes) and the one call that runs it.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use keel_backend::FunctionRegistry;
use keel_db::Schema;
use keel_start::{Start, StartConfig};

use crate::config::Config;
use crate::services::Services;

/// Builds the app's web tier from the settings Keel prepared (backend, authenticator, devtools).
pub(crate) type WebRoutes = Arc<dyn Fn(StartConfig) -> Start + Send + Sync>;

/// An app on Keel: its schema, its functions and (optionally) its web routes.
///
/// [`App::run`] is the whole `main` of an app's binary: it parses the command line, sets up
/// logging to stderr (`RUST_LOG`, default `info`) and runs the services the command asks for.
#[derive(Clone)]
pub struct App {
    pub(crate) schema: Schema,
    pub(crate) functions: FunctionRegistry,
    pub(crate) web: Option<WebRoutes>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("schema", &self.schema)
            .field("web", &self.web.is_some())
            .finish_non_exhaustive()
    }
}

impl App {
    /// An app with `schema` and `functions` and no web tier yet (see [`App::web`]).
    pub fn new(schema: Schema, functions: FunctionRegistry) -> App {
        App {
            schema,
            functions,
            web: None,
        }
    }

    /// The app's crons (Convex's `crons.ts`): functions the backend runs on a schedule,
    /// through its scheduler (see [`keel_backend::Crons`]). Replaces any declared before.
    ///
    /// ```
    /// use std::time::Duration;
    /// use keel::backend::{Crons, FunctionRegistry, MutationCtx};
    ///
    /// let mut functions = FunctionRegistry::new();
    /// functions.internal_mutation("stats:record", async |_ctx: MutationCtx, _: serde_json::Value| Ok(()));
    /// let mut crons = Crons::new();
    /// crons.hourly("record stats", 0, "stats:record", serde_json::json!({}));
    /// let app = keel::App::new(keel::db::Schema::new(), functions).crons(crons);
    /// # let _ = app;
    /// ```
    pub fn crons(mut self, crons: keel_backend::Crons) -> App {
        self.functions.crons(crons);
        self
    }

    /// The app's HTTP actions (Convex's `http.ts`), served on the site origin (`--site-addr`,
    /// printed at start as `site: http://…`).
    ///
    /// ```
    /// # let app = keel::App::new(keel::db::Schema::new(), Default::default());
    /// use keel::backend::http::{Method, StatusCode};
    /// use keel::backend::{HttpResponse, HttpRoutes};
    /// let mut routes = HttpRoutes::new();
    /// routes.route(Method::GET, "/ping", |_ctx, _request| async {
    ///     Ok(HttpResponse::text(StatusCode::OK, "pong"))
    /// });
    /// let app = app.http(routes);
    /// # let _ = app;
    /// ```
    pub fn http(mut self, routes: keel_backend::HttpRoutes) -> App {
        self.functions.http_routes(routes);
        self
    }

    /// The app's web tier: given the settings Keel prepared (backend URL, authenticator,
    /// devtools …), the route tree and server functions to serve.
    ///
    /// ```
    /// # let app = keel::App::new(keel::db::Schema::new(), Default::default());
    /// use keel::start::{Route, Start};
    /// let app = app.web(|config| {
    ///     Start::new(config, Route::root().child(Route::new("").component(|_, _| {
    ///         maud::html! { h1 { "Hello" } }
    ///     })))
    /// });
    /// # let _ = app;
    /// ```
    pub fn web(mut self, routes: impl Fn(StartConfig) -> Start + Send + Sync + 'static) -> App {
        self.web = Some(Arc::new(routes));
        self
    }

    /// Runs the app as its command line asks (`keel`, `keel web`, `keel backend`, `keel idp`, `keel new`
    /// and their flags): the whole `main` of an app's binary. Errors are printed to stderr and
    /// make the exit code non-zero.
    pub fn run(self) -> ExitCode {
        let config = Config::parse();
        let runtime = match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime,
            Err(error) => {
                let _ = init_logging(None);
                return fail(&Error(anyhow::Error::new(error)));
            }
        };
        let export = {
            // The exporter sends its requests on this runtime.
            let _runtime = runtime.enter();
            init_logging(config.process.otlp_endpoint.as_ref())
        };
        let export = match export {
            Ok(export) => export,
            Err(error) => return fail(&Error(anyhow::Error::new(error))),
        };
        let served = runtime.block_on(self.serve(config));
        if let Some(export) = export {
            export.shutdown();
        }
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => fail(&error),
        }
    }

    /// Serves the services `config` asks for until SIGTERM or SIGINT, then shuts them down
    /// gracefully (see [`App::serve_until`]); [`App::run`] parses the command line and calls
    /// this.
    pub async fn serve(self, config: Config) -> Result<(), Error> {
        self.serve_until(config, crate::shutdown::signal()).await
    }

    /// Serves the services `config` asks for until `stop` resolves (with what to call it in
    /// the logs, such as `"SIGTERM"`), then shuts them down gracefully: each stops accepting,
    /// the requests in flight finish within `--shutdown-timeout`, live streams and sync
    /// sessions close, background work stops and the committer lease is handed over. `Ok`
    /// after such a stop, also when `stop` fires during start-up; an error if a service could
    /// not start or failed while serving. For `keel new` ([`Config::new_project`]) it writes the
    /// project and returns, serving nothing. The service lines (`web: http://…`) are printed on
    /// stdout once every service is open.
    ///
    /// ```no_run
    /// # async fn demo(app: keel::App) -> Result<(), keel::Error> {
    /// let config = keel::Config::try_parse_from(["keel", "--data-dir", "/tmp/demo"]).unwrap();
    /// let stop = async {
    ///     tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    ///     "a minute passed"
    /// };
    /// app.serve_until(config, stop).await
    /// # }
    /// ```
    pub async fn serve_until(
        self,
        config: Config,
        stop: impl Future<Output = &'static str>,
    ) -> Result<(), Error> {
        if let Some(project) = &config.new_project {
            return new_project(project);
        }
        if let Some(command) = &config.admin {
            return command
                .run(&config.backend)
                .await
                .map_err(|e| Error(anyhow::Error::new(e)));
        }
        let mut stop = std::pin::pin!(stop);
        let services = tokio::select! {
            services = Services::open(&self, &config) => services.map_err(Error)?,
            name = &mut stop => {
                tracing::info!(signal = name, "stopped during start-up");
                return Ok(());
            }
        };
        services.announce();
        crate::shutdown::serve(services, stop, config.process.shutdown_timeout)
            .await
            .map_err(Error)
    }
}

/// Why the app could not start or stopped: the message names the setting to check.
pub struct Error(pub(crate) anyhow::Error);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every cause on one line: "cannot open the database: … : …".
        write!(f, "{:#}", self.0)
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::error::Error for Error {}

/// `keel new`: writes the project and lists what it wrote on stdout (the binary's interface),
/// with the two commands to run next.
#[allow(clippy::print_stdout)]
fn new_project(project: &crate::NewProject) -> Result<(), Error> {
    let files = project.create().map_err(|e| Error(anyhow::Error::new(e)))?;
    let dir = project.dir.display();
    for file in files {
        println!("wrote {dir}/{file}");
    }
    println!("next: cd {dir} && cargo run   (and cargo test)");
    Ok(())
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`), coloured only on a terminal
/// (and not when `NO_COLOR` is set): a log file or a collector gets plain text. With an OTLP
/// endpoint, spans also go there — the services' `info` spans and the backend's function
/// spans (`query`, `mutation`, `action`, `http_action`), whatever `RUST_LOG` says.
fn init_logging(
    otlp_endpoint: Option<&url::Url>,
) -> Result<Option<crate::otlp::SpanExport>, crate::otlp::OtlpError> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        );
    let registry = tracing_subscriber::registry().with(logs);
    let Some(endpoint) = otlp_endpoint else {
        let _ = registry.try_init();
        return Ok(None);
    };
    let (spans, export) = crate::otlp::layer(endpoint, "keel")?;
    let spans = spans.with_filter(tracing_subscriber::EnvFilter::new(
        "info,keel_backend_core=debug",
    ));
    let _ = registry.with(spans).try_init();
    Ok(Some(export))
}

/// Reports a fatal error on stderr (the binary's interface, like its address lines on stdout):
/// one line, every cause after a colon, no backtrace.
#[allow(clippy::print_stderr)]
fn fail(error: &Error) -> ExitCode {
    eprintln!("Error: {error}");
    ExitCode::FAILURE
}
