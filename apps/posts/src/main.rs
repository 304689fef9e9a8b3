//! `keel` — the reference app. Run with `cargo run` from the workspace root.

fn main() -> std::process::ExitCode {
    keel::App::new(
        keel_posts::functions::schema(),
        keel_posts::functions::functions(),
    )
    .http(keel_posts::functions::http_routes())
    .crons(keel_posts::functions::crons())
    .web(keel_posts::web::app)
    .run()
}
