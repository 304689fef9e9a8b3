//! A strict parser of the Prometheus text exposition format (0.0.4), for tests that scrape a
//! service's `/metrics`: every line must be a `# HELP`, a `# TYPE` or a sample of a declared
//! family; names, labels, escapes and values must be well formed; a series appears once; a
//! histogram's buckets are cumulative, end with `+Inf`, and agree with its `_count`.
//!
//! ```
//! let text = "# HELP up Whether it is up.\n# TYPE up gauge\nup{job=\"keel\"} 1\n";
//! let metrics = keel_testing::prometheus::parse(text).unwrap();
//! assert_eq!(metrics.value("up", &[("job", "keel")]), Some(1.0));
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};

/// One sample line.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The sample's name (with `_bucket`, `_sum`, `_count` for histograms).
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its value.
    pub value: f64,
}

/// A parsed scrape.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Family name → its `# TYPE`.
    pub types: HashMap<String, String>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// The value of the series `name` with exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == wanted)
            .map(|s| s.value)
    }

    /// The sum of every series of `name` whose labels include these.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .sum()
    }
}

/// Parses `text`, or says which line is wrong and why.
pub fn parse(text: &str) -> Result<Metrics, String> {
    let mut metrics = Metrics::default();
    let mut helped = HashSet::new();
    let mut series = HashSet::new();
    for (number, line) in text.lines().enumerate() {
        let fail = |why: &str| format!("line {}: {why}: {line:?}", number + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, _) = rest
                .split_once(' ')
                .ok_or_else(|| fail("HELP without text"))?;
            check_name(name).map_err(|e| fail(&e))?;
            if !helped.insert(name.to_owned()) {
                return Err(fail("second HELP"));
            }
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| fail("TYPE without type"))?;
            check_name(name).map_err(|e| fail(&e))?;
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                return Err(fail("unknown type"));
            }
            if metrics
                .types
                .insert(name.to_owned(), kind.to_owned())
                .is_some()
            {
                return Err(fail("second TYPE"));
            }
        } else if line.starts_with('#') || line.is_empty() {
            return Err(fail("neither HELP, TYPE nor a sample"));
        } else {
            let sample = parse_sample(line).map_err(|e| fail(&e))?;
            let family = family_of(&sample.name, &metrics.types)
                .ok_or_else(|| fail("a sample of no declared family"))?;
            if metrics.types[family] == "counter" && sample.value < 0.0 {
                return Err(fail("a negative counter"));
            }
            let key = (sample.name.clone(), format!("{:?}", sample.labels));
            if !series.insert(key) {
                return Err(fail("a series twice"));
            }
            metrics.samples.push(sample);
        }
    }
    check_histograms(&metrics)?;
    Ok(metrics)
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if ok {
        Ok(())
    } else {
        Err(format!("bad metric name {name:?}"))
    }
}

/// The declared family a sample name belongs to.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
    })
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let bytes = inner.as_bytes();
        let mut i = 0;
        loop {
            if bytes.get(i) == Some(&b'}') {
                rest = &inner[i + 1..];
                break;
            }
            let eq = inner[i..].find('=').ok_or("a label without =")? + i;
            let label = &inner[i..eq];
            check_name(label)?;
            if bytes.get(eq + 1) != Some(&b'"') {
                return Err("a label value without quotes".to_owned());
            }
            let mut value = String::new();
            i = eq + 2;
            loop {
                match bytes.get(i) {
                    None => return Err("an unterminated label value".to_owned()),
                    Some(b'"') => break,
                    Some(b'\\') => {
                        match bytes.get(i + 1) {
                            Some(b'\\') => value.push('\\'),
                            Some(b'"') => value.push('"'),
                            Some(b'n') => value.push('\n'),
                            _ => return Err("a bad escape in a label value".to_owned()),
                        }
                        i += 2;
                    }
                    Some(b'\n') => return Err("a raw newline in a label value".to_owned()),
                    Some(_) => {
                        let c = inner[i..].chars().next().expect("a character");
                        value.push(c);
                        i += c.len_utf8();
                    }
                }
            }
            if labels.insert(label.to_owned(), value).is_some() {
                return Err(format!("label {label} twice"));
            }
            i += 1;
            match bytes.get(i) {
                Some(b',') => i += 1,
                Some(b'}') => {}
                _ => return Err("labels not separated by ,".to_owned()),
            }
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        text => text
            .parse::<f64>()
            .map_err(|_| format!("a bad value {text:?}"))?,
    };
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Every histogram's buckets are cumulative, end at `+Inf`, and equal its count there.
fn check_histograms(metrics: &Metrics) -> Result<(), String> {
    for (family, kind) in &metrics.types {
        if kind != "histogram" {
            continue;
        }
        let bucket = format!("{family}_bucket");
        let count = format!("{family}_count");
        let mut groups: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        for sample in metrics.samples.iter().filter(|s| s.name == bucket) {
            let mut labels = sample.labels.clone();
            let le = labels.remove("le").ok_or(format!("{bucket} without le"))?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().map_err(|_| format!("{bucket} with le={le:?}"))?
            };
            groups
                .entry(format!("{labels:?}"))
                .or_default()
                .push((le, sample.value));
        }
        for (labels, buckets) in groups {
            if buckets
                .windows(2)
                .any(|w| w[0].0 >= w[1].0 || w[0].1 > w[1].1)
            {
                return Err(format!(
                    "{bucket}{labels}: buckets not ascending and cumulative"
                ));
            }
            let (last_le, last) = *buckets.last().expect("a bucket");
            if last_le != f64::INFINITY {
                return Err(format!("{bucket}{labels}: no +Inf bucket"));
            }
            let total = metrics
                .samples
                .iter()
                .find(|s| s.name == count && format!("{:?}", s.labels) == labels)
                .ok_or(format!("{count}{labels} missing"))?;
            if total.value != last {
                return Err(format!("{count}{labels} is not the +Inf bucket"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_well_formed_text_and_refuses_the_rest() {
        let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 3\n\
                    # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n";
        let metrics = parse(good).expect("parses");
        assert_eq!(
            metrics.value("a_total", &[("x", "1"), ("y", "q\"\\\n")]),
            Some(3.0)
        );
        assert_eq!(metrics.value("h_count", &[]), Some(2.0));
        for bad in [
            "a 1\n",
            "# TYPE a counter\na -1\n",
            "# TYPE a gauge\na{x=1} 1\n",
            "# TYPE a gauge\na{x=\"1\"}1\n",
            "# TYPE a gauge\na{x=\"\\q\"} 1\n",
            "# TYPE a gauge\na one\n",
            "# TYPE a gauge\na 1\na 2\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n",
            "# comment\n",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
