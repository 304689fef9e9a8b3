//! Attacks on the processes themselves: a second `keel` started (by mistake or on purpose) on
//! the data or the ports of a running deployment.

use std::path::Path;
use std::time::Duration;

use crate::support::{ANY_PORTS, Mode, run_to_exit};

/// How long a refused start may take (a lock or a bind fails at once; this is start-up time).
const REFUSAL: Duration = Duration::from_secs(30);

/// A second `keel <args>` on `data_dir`: it must fail, print no service line, and say `why`.
fn assert_refused(args: &[&str], data_dir: &Path, why: &[&str]) {
    let exited = run_to_exit(args, data_dir, REFUSAL);
    assert!(
        !exited.status.success(),
        "keel {args:?} started: {}",
        exited.stdout
    );
    assert!(
        !exited.stdout.lines().any(|l| l.contains("http://")),
        "keel {args:?} printed service lines before failing: {}",
        exited.stdout
    );
    for part in why {
        assert!(
            exited.stderr.contains(part),
            "{part:?} missing from:\n{}",
            exited.stderr
        );
    }
}

/// Listen on any free port, for the services a row does not target.
const ANY: &str = "127.0.0.1:0";

attack!(
    /// A second process on a data directory in use would write the same SQLite file and idp
    /// state and read its own diverging copy: it is refused, naming the process that holds it.
    a_second_process_on_the_data_dir_is_refused,
    |keel| {
        let dir = keel.dir.path().to_owned();
        let all = ANY_PORTS;
        match keel.mode {
            Mode::OneProcess => {
                let holder = format!("pid {}", keel.processes[0].child.id());
                assert_refused(&all, &dir, &["in use by another keel process", &holder, &keel.idp]);
                assert_refused(
                    &["backend", "--backend-addr", ANY],
                    &dir,
                    &["the SQLite database", &holder, &keel.backend, "--data-dir / KEEL_DATA_DIR"],
                );
                assert_refused(&["idp", "--idp-addr", ANY], &dir, &[&holder, &keel.idp]);
            }
            Mode::Separate => {
                let idp_holder = format!("pid {}", keel.processes[0].child.id());
                let backend_holder = format!("pid {}", keel.processes[1].child.id());
                assert_refused(
                    &["idp", "--idp-addr", ANY],
                    &dir.join("idp"),
                    &["identity provider's state", &idp_holder, &keel.idp],
                );
                assert_refused(
                    &["backend", "--backend-addr", ANY],
                    &dir.join("backend"),
                    &["the SQLite database", &backend_holder, &keel.backend],
                );
                // All services at once on the backend's directory: its database is taken.
                assert_refused(&all, &dir.join("backend"), &[&backend_holder]);
            }
        }
    }
);

attack!(
    /// A second process on the ports of a running one fails before it opens anything, names
    /// the flag and its variable, hints that another keel may be running, and prints no
    /// service line (a script reading them would otherwise talk to the first one).
    a_second_process_on_the_ports_in_use_is_refused,
    |keel| {
        let fresh = tempfile::tempdir().unwrap();
        let fresh = fresh.path().to_owned();
        let port_of = |url: &str| url.trim_start_matches("http://").to_owned();
        let (web, backend, idp) = (port_of(&keel.web), port_of(&keel.backend), port_of(&keel.idp));
        let site = port_of(&keel.site);
        let taken = ["already in use", "another keel"];
        match keel.mode {
            Mode::OneProcess => {
                // The idp and the backend bind first and fine; the web tier's port is taken.
                let args = ["--web-addr", &web, "--backend-addr", ANY, "--idp-addr", ANY];
                assert_refused(&args, &fresh, &[&taken[..], &["--web-addr / KEEL_WEB_ADDR"]].concat());
                let args = ["--web-addr", ANY, "--backend-addr", &backend, "--idp-addr", ANY];
                assert_refused(&args, &fresh, &["--backend-addr / KEEL_BACKEND_ADDR"]);
                let args = ["--web-addr", ANY, "--backend-addr", ANY, "--idp-addr", ANY, "--site-addr", &site];
                assert_refused(&args, &fresh, &[&taken[..], &["--site-addr / KEEL_SITE_ADDR"]].concat());
            }
            Mode::Separate => {
                assert_refused(
                    &["idp", "--idp-addr", &idp],
                    &fresh,
                    &[&taken[..], &["--idp-addr / KEEL_IDP_ADDR"]].concat(),
                );
                assert_refused(
                    &["backend", "--backend-addr", &backend],
                    &fresh,
                    &["--backend-addr / KEEL_BACKEND_ADDR"],
                );
                assert_refused(
                    &["backend", "--backend-addr", ANY, "--site-addr", &site],
                    &fresh,
                    &["--site-addr / KEEL_SITE_ADDR"],
                );
                assert_refused(
                    &["web", "--web-addr", &web, "--idp-secret-key", &keel.secret_key],
                    &fresh,
                    &["--web-addr / KEEL_WEB_ADDR"],
                );
            }
        }
    }
);
