//! The security table: one row per attack on the reference app, each run against the `keel`
//! binary in both deployments (one process, and `keel idp` + `keel backend` + `keel web` as
//! three processes). A row asserts the refusal and then that the deployment still serves a new
//! user end to end (`Deployment::assert_still_serves`). `docs/SECURITY.md` names the threat
//! behind each row.
//!
//! A row is written once with [`attack!`]:
//!
//! ```ignore
//! attack!(name, |keel| {
//!     // attack `keel` (a `&mut Deployment`) and assert the refusal
//! });
//! ```

#[path = "../support/mod.rs"]
mod support;

/// One row of the table: `$name::one_process` and `$name::separate_processes` run the attack
/// body against a fresh deployment, then check it still serves. `flags = [..]` adds flags to
/// every process of the deployment (e.g. `--trusted-proxy`).
macro_rules! attack {
    ($(#[$meta:meta])* $name:ident, |$keel:ident| $body:block) => {
        attack!($(#[$meta])* $name, flags = [], |$keel| $body);
    };
    ($(#[$meta:meta])* $name:ident, flags = [$($flag:expr),* $(,)?], |$keel:ident| $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn attack($keel: &mut crate::support::Deployment) $body

            #[tokio::test]
            async fn one_process() {
                let mut keel = crate::support::Deployment::start_with(
                    crate::support::Mode::OneProcess,
                    &[$($flag),*],
                );
                attack(&mut keel).await;
                keel.assert_still_serves().await;
            }

            #[tokio::test]
            async fn separate_processes() {
                let mut keel = crate::support::Deployment::start_with(
                    crate::support::Mode::Separate,
                    &[$($flag),*],
                );
                attack(&mut keel).await;
                keel.assert_still_serves().await;
            }
        }
    };
}

mod backend;
mod idp;
mod process;
mod storage;
mod web;
