//! `keel` — the reference app. Run with `cargo run` from the workspace root.

fn main() -> std::process::ExitCode {
    keel::App::new(
        keel_posts::functions::schema(),
        keel_posts::functions::functions(),
    )
    .web(keel_posts::web::app)
    .run()
}
