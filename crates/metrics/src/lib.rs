//! Keel's metrics: families of counters, gauges and histograms with labels, kept in a
//! [`Registry`] and rendered in the Prometheus text exposition format (version 0.0.4), which
//! every service serves at `/metrics`.
//!
//! ```
//! use keel_metrics::{DURATION_BUCKETS, Registry};
//!
//! let registry = Registry::default();
//! let calls = registry.counter("keel_function_calls_total", "Function calls.", &["path"]);
//! let durations = registry.histogram(
//!     "keel_function_duration_seconds",
//!     "How long functions ran.",
//!     &["path"],
//!     DURATION_BUCKETS,
//! );
//! calls.inc(&["posts:list"]);
//! durations.observe(&["posts:list"], 0.004);
//! let text = registry.render();
//! assert!(text.contains("keel_function_calls_total{path=\"posts:list\"} 1\n"));
//! assert!(text.contains("keel_function_duration_seconds_bucket{path=\"posts:list\",le=\"0.005\"} 1\n"));
//! ```
//!
//! Written by hand rather than taken from a client library: what Keel needs is a few dozen lines
//! of text per scrape, and this keeps the services' dependency trees as they were. Label values
//! come from bounded sets (function paths of the registry, route templates, status codes), never
//! from what a client sends.
//!
//! # Layout
//! * `lib.rs` — [`Registry`] and the families ([`CounterVec`], [`GaugeVec`], [`HistogramVec`],
//!   gauges computed at each scrape with [`Registry::gauge_fn`]), the series of a family resolved
//!   once for a hot path ([`Counter`], [`Histogram`]), and the text rendering.
//! * `series` — a series' label values as a family's map holds them, looked up with the caller's
//!   `&[&str]` without allocating.
//! * `http` (feature `http`) — [`instrument`]: the axum layer counting requests by route
//!   template, method and status, and the `/metrics` route ([`MetricsAccess`]: open, or only
//!   with the admin key).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::series::{LabelValues, Lookup};

#[cfg(feature = "http")]
mod http;
mod series;
#[cfg(feature = "http")]
pub use http::{METRICS_PATH, MetricsAccess, instrument};

/// Buckets (in seconds) for durations from a millisecond to a minute.
pub const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The media type of the rendered text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metric families of one service. Cheap to clone; clones share the families.
#[derive(Clone, Default)]
pub struct Registry {
    families: Arc<Mutex<Vec<Family>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("families", &self.families.lock().len())
            .finish()
    }
}

#[derive(Clone)]
enum Family {
    Counter(CounterVec),
    Gauge(GaugeVec),
    GaugeFn(GaugeFn),
    Histogram(HistogramVec),
}

/// What every family has: its name, help text and label names.
struct Meta {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

impl Meta {
    fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Meta {
        debug_assert!(valid_name(name), "metric name {name:?}");
        debug_assert!(labels.iter().all(|l| valid_name(l) && *l != "le"));
        Meta { name, help, labels }
    }

    /// `values` as exactly one value per label name (a mistake in Keel's code, never a
    /// client's, is made harmless rather than a panic in a release build), borrowed: what a
    /// family's map is searched with before anything is allocated.
    fn key<'a>(&self, values: &'a [&'a str]) -> Lookup<'a> {
        debug_assert_eq!(values.len(), self.labels.len(), "labels of {}", self.name);
        Lookup::new(values, self.labels.len())
    }

    fn header(&self, out: &mut String, kind: &str) {
        let _ = writeln!(out, "# HELP {} {}", self.name, escape_help(self.help));
        let _ = writeln!(out, "# TYPE {} {kind}", self.name);
    }
}

/// A family of counters (names end in `_total`).
#[derive(Clone)]
pub struct CounterVec {
    meta: Arc<Meta>,
    values: Arc<Mutex<BTreeMap<LabelValues, Counter>>>,
}

/// One counter of a family, its label values resolved once ([`CounterVec::with_labels`]): a
/// hot path that counts into the same series again and again takes no lock and allocates
/// nothing. Clones count into the same series.
#[derive(Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.inc_by(1);
    }

    /// Adds `n`.
    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The counter's value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl CounterVec {
    /// Adds one to the counter with these label values.
    pub fn inc(&self, labels: &[&str]) {
        self.inc_by(labels, 1);
    }

    /// Adds `n` to the counter with these label values.
    pub fn inc_by(&self, labels: &[&str], n: u64) {
        let key = self.meta.key(labels);
        let mut values = self.values.lock();
        match values.get(key.as_key()) {
            Some(counter) => counter.inc_by(n),
            None => {
                let counter = Counter::default();
                counter.inc_by(n);
                values.insert(key.to_owned_key(), counter);
            }
        }
    }

    /// The counter with these label values, made (at 0, and rendered from then on) if it is
    /// not there yet.
    ///
    /// ```
    /// let registry = keel_metrics::Registry::default();
    /// let calls = registry.counter("t_calls_total", "Calls.", &["path"]);
    /// let list = calls.with_labels(&["posts:list"]);
    /// list.inc();
    /// calls.inc(&["posts:list"]);
    /// assert_eq!(list.get(), 2);
    /// assert!(registry.render().contains("t_calls_total{path=\"posts:list\"} 2\n"));
    /// ```
    pub fn with_labels(&self, labels: &[&str]) -> Counter {
        let key = self.meta.key(labels);
        let mut values = self.values.lock();
        if let Some(counter) = values.get(key.as_key()) {
            return counter.clone();
        }
        let counter = Counter::default();
        values.insert(key.to_owned_key(), counter.clone());
        counter
    }

    /// The counter's value (0 before its first increment).
    pub fn get(&self, labels: &[&str]) -> u64 {
        self.values
            .lock()
            .get(self.meta.key(labels).as_key())
            .map_or(0, Counter::get)
    }

    fn render(&self, out: &mut String) {
        self.meta.header(out, "counter");
        for (key, counter) in self.values.lock().iter() {
            sample(
                out,
                self.meta.name,
                self.meta.labels,
                key,
                None,
                counter.get() as f64,
            );
        }
    }
}

/// A family of gauges (values that go up and down).
#[derive(Clone)]
pub struct GaugeVec {
    meta: Arc<Meta>,
    values: Arc<Mutex<BTreeMap<LabelValues, f64>>>,
}

impl GaugeVec {
    /// Sets the gauge with these label values.
    pub fn set(&self, labels: &[&str], value: f64) {
        *self.entry(&mut self.values.lock(), labels) = value;
    }

    /// Adds `delta` (negative to lower it) to the gauge with these label values.
    pub fn add(&self, labels: &[&str], delta: f64) {
        *self.entry(&mut self.values.lock(), labels) += delta;
    }

    fn entry<'m>(
        &self,
        values: &'m mut BTreeMap<LabelValues, f64>,
        labels: &[&str],
    ) -> &'m mut f64 {
        let key = self.meta.key(labels);
        if values.get(key.as_key()).is_none() {
            values.insert(key.to_owned_key(), 0.0);
        }
        values.get_mut(key.as_key()).expect("inserted above")
    }

    /// The gauge's value (0 before it is first set).
    pub fn get(&self, labels: &[&str]) -> f64 {
        self.values
            .lock()
            .get(self.meta.key(labels).as_key())
            .copied()
            .unwrap_or(0.0)
    }

    fn render(&self, out: &mut String) {
        self.meta.header(out, "gauge");
        for (key, value) in self.values.lock().iter() {
            sample(out, self.meta.name, self.meta.labels, key, None, *value);
        }
    }
}

/// A gauge without labels whose value is computed at each scrape.
#[derive(Clone)]
struct GaugeFn {
    meta: Arc<Meta>,
    read: Arc<dyn Fn() -> f64 + Send + Sync>,
}

/// A family of histograms (cumulative buckets, sum and count).
#[derive(Clone)]
pub struct HistogramVec {
    meta: Arc<Meta>,
    buckets: &'static [f64],
    values: Arc<Mutex<BTreeMap<LabelValues, Histogram>>>,
}

/// One histogram of a family, its label values resolved once ([`HistogramVec::with_labels`]):
/// recording into it locks only this series and allocates nothing. Clones record into the same
/// series.
#[derive(Clone)]
pub struct Histogram {
    buckets: &'static [f64],
    series: Arc<Mutex<HistogramSeries>>,
}

struct HistogramSeries {
    /// Observations per bucket (not cumulative; summed when rendered).
    counts: Box<[u64]>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(buckets: &'static [f64]) -> Histogram {
        Histogram {
            buckets,
            series: Arc::new(Mutex::new(HistogramSeries {
                counts: vec![0; buckets.len()].into(),
                sum: 0.0,
                count: 0,
            })),
        }
    }

    /// Records `value`.
    pub fn observe(&self, value: f64) {
        let bucket = self.buckets.iter().position(|bound| value <= *bound);
        let mut series = self.series.lock();
        if let Some(bucket) = bucket {
            series.counts[bucket] += 1;
        }
        series.sum += value;
        series.count += 1;
    }

    /// How many values it has recorded.
    pub fn count(&self) -> u64 {
        self.series.lock().count
    }
}

impl HistogramVec {
    /// Records `value` in the histogram with these label values.
    pub fn observe(&self, labels: &[&str], value: f64) {
        self.with_labels(labels).observe(value);
    }

    /// The histogram with these label values, made (empty, and rendered from then on) if it is
    /// not there yet.
    pub fn with_labels(&self, labels: &[&str]) -> Histogram {
        let key = self.meta.key(labels);
        let mut values = self.values.lock();
        if let Some(histogram) = values.get(key.as_key()) {
            return histogram.clone();
        }
        let histogram = Histogram::new(self.buckets);
        values.insert(key.to_owned_key(), histogram.clone());
        histogram
    }

    /// How many values the histogram with these label values has recorded.
    pub fn count(&self, labels: &[&str]) -> u64 {
        self.values
            .lock()
            .get(self.meta.key(labels).as_key())
            .map_or(0, Histogram::count)
    }

    fn render(&self, out: &mut String) {
        self.meta.header(out, "histogram");
        let (name, labels) = (self.meta.name, self.meta.labels);
        for (key, histogram) in self.values.lock().iter() {
            let series = histogram.series.lock();
            let mut cumulative = 0;
            for (bound, count) in self.buckets.iter().zip(&series.counts) {
                cumulative += count;
                let le = number(*bound);
                sample_named(
                    out,
                    name,
                    "_bucket",
                    labels,
                    key,
                    Some(&le),
                    cumulative as f64,
                );
            }
            let count = series.count as f64;
            sample_named(out, name, "_bucket", labels, key, Some("+Inf"), count);
            sample_named(out, name, "_sum", labels, key, None, series.sum);
            sample_named(out, name, "_count", labels, key, None, count);
        }
    }
}

impl Registry {
    fn meta(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Arc<Meta> {
        Arc::new(Meta::new(name, help, labels))
    }

    /// A new family of counters.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> CounterVec {
        let family = CounterVec {
            meta: self.meta(name, help, labels),
            values: Arc::default(),
        };
        self.families.lock().push(Family::Counter(family.clone()));
        family
    }

    /// A new family of gauges.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> GaugeVec {
        let family = GaugeVec {
            meta: self.meta(name, help, labels),
            values: Arc::default(),
        };
        self.families.lock().push(Family::Gauge(family.clone()));
        family
    }

    /// A gauge without labels that `read` computes at each scrape (how many sessions are open,
    /// how many subscriptions they hold).
    pub fn gauge_fn(
        &self,
        name: &'static str,
        help: &'static str,
        read: impl Fn() -> f64 + Send + Sync + 'static,
    ) {
        let family = GaugeFn {
            meta: self.meta(name, help, &[]),
            read: Arc::new(read),
        };
        self.families.lock().push(Family::GaugeFn(family));
    }

    /// The value of the gauge family `name`, summed over its label values (`None`: no gauge
    /// of that name). How one service shows another's gauge in the same process (the
    /// backend's dashboard shows the web tier's `keel_live_pages`).
    ///
    /// ```
    /// let registry = keel_metrics::Registry::default();
    /// let pages = registry.gauge("keel_live_pages", "Open pages.", &[]);
    /// pages.add(&[], 2.0);
    /// assert_eq!(registry.gauge_value("keel_live_pages"), Some(2.0));
    /// assert_eq!(registry.gauge_value("keel_nothing"), None);
    /// ```
    pub fn gauge_value(&self, name: &str) -> Option<f64> {
        let families = self.families.lock().clone();
        families.iter().find_map(|family| match family {
            Family::Gauge(gauge) if gauge.meta.name == name => {
                Some(gauge.values.lock().values().sum())
            }
            Family::GaugeFn(gauge) if gauge.meta.name == name => Some((gauge.read)()),
            _ => None,
        })
    }

    /// A new family of histograms with these bucket bounds (ascending; `+Inf` is implied).
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> HistogramVec {
        debug_assert!(buckets.windows(2).all(|w| w[0] < w[1]), "ascending buckets");
        let family = HistogramVec {
            meta: self.meta(name, help, labels),
            buckets,
            values: Arc::default(),
        };
        self.families.lock().push(Family::Histogram(family.clone()));
        family
    }

    /// Every family in the Prometheus text exposition format, in the order they were made.
    pub fn render(&self) -> String {
        let families = self.families.lock().clone();
        let mut out = String::new();
        for family in families {
            match family {
                Family::Counter(counter) => counter.render(&mut out),
                Family::Gauge(gauge) => gauge.render(&mut out),
                Family::GaugeFn(gauge) => {
                    gauge.meta.header(&mut out, "gauge");
                    let no_labels = series::Lookup::new(&[], 0).to_owned_key();
                    sample(
                        &mut out,
                        gauge.meta.name,
                        &[],
                        &no_labels,
                        None,
                        (gauge.read)(),
                    );
                }
                Family::Histogram(histogram) => histogram.render(&mut out),
            }
        }
        out
    }
}

fn sample(
    out: &mut String,
    name: &str,
    labels: &[&str],
    values: &LabelValues,
    le: Option<&str>,
    value: f64,
) {
    sample_named(out, name, "", labels, values, le, value);
}

fn sample_named(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[&str],
    values: &LabelValues,
    le: Option<&str>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    let pairs: Vec<(&str, &str)> = labels
        .iter()
        .copied()
        .zip(values.values())
        .chain(le.map(|le| ("le", le)))
        .collect();
    if !pairs.is_empty() {
        out.push('{');
        for (i, (label, value)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(out, "{label}=\"{}\"", escape_label(value));
        }
        out.push('}');
    }
    let _ = writeln!(out, " {}", number(value));
}

/// A sample value as the format writes it (`+Inf`, `-Inf`, `NaN`, else Rust's shortest form).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{value}")
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_each_kind_of_family() {
        let registry = Registry::default();
        let requests = registry.counter("t_requests_total", "Requests.", &["route", "status"]);
        requests.inc(&["/a", "200"]);
        requests.inc_by(&["/a", "200"], 2);
        requests.inc(&["/b\"\\\n", "404"]);
        let open = registry.gauge("t_open", "Open things.", &[]);
        open.add(&[], 3.0);
        open.add(&[], -1.0);
        registry.gauge_fn("t_computed", "Computed\nat scrape.", || 7.5);
        let h = registry.histogram("t_seconds", "Durations.", &[], &[0.1, 1.0]);
        h.observe(&[], 0.05);
        h.observe(&[], 0.5);
        h.observe(&[], 5.0);
        assert_eq!(
            registry.render(),
            "# HELP t_requests_total Requests.\n\
             # TYPE t_requests_total counter\n\
             t_requests_total{route=\"/a\",status=\"200\"} 3\n\
             t_requests_total{route=\"/b\\\"\\\\\\n\",status=\"404\"} 1\n\
             # HELP t_open Open things.\n\
             # TYPE t_open gauge\n\
             t_open 2\n\
             # HELP t_computed Computed\\nat scrape.\n\
             # TYPE t_computed gauge\n\
             t_computed 7.5\n\
             # HELP t_seconds Durations.\n\
             # TYPE t_seconds histogram\n\
             t_seconds_bucket{le=\"0.1\"} 1\n\
             t_seconds_bucket{le=\"1\"} 2\n\
             t_seconds_bucket{le=\"+Inf\"} 3\n\
             t_seconds_sum 5.55\n\
             t_seconds_count 3\n"
        );
    }
}
