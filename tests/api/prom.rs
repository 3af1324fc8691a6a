//! A Prometheus text exposition format (0.0.4) parser, strict enough to fail on what
//! Prometheus would reject: every sample belongs to a `# TYPE`d family, names and labels are
//! valid, values are numbers, and counters end in `_total`.

use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name → type (`counter`, `gauge`, `histogram`, ...).
    pub types: HashMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Exposition {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Exposition::default();
        for (n, line) in text.lines().enumerate() {
            let err = |m: &str| format!("line {}: {m}: {line}", n + 1);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').ok_or_else(|| err("bad TYPE"))?;
                if !valid_name(name) {
                    return Err(err("bad metric name"));
                }
                if ty == "counter" && !name.ends_with("_total") {
                    return Err(err("counter without _total"));
                }
                out.types.insert(name.to_owned(), ty.to_owned());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let sample = parse_sample(line).ok_or_else(|| err("bad sample"))?;
            let family = family_of(&sample.name, &out.types).ok_or_else(|| err("untyped"))?;
            if out.types[family] == "histogram" && sample.name.ends_with("_bucket") {
                sample
                    .labels
                    .get("le")
                    .ok_or_else(|| err("bucket without le"))?;
            }
            out.samples.push(sample);
        }
        Ok(out)
    }

    /// Samples of `name` whose labels include all of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The one sample of `name` with exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }

    /// The label names the samples of `name` carry (all of them must agree).
    pub fn label_names(&self, name: &str) -> Vec<String> {
        let mut sets: Vec<Vec<String>> = self
            .samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.labels.keys().cloned().collect())
            .collect();
        sets.dedup();
        assert!(
            sets.len() <= 1,
            "{name} has inconsistent label sets: {sets:?}"
        );
        sets.pop().unwrap_or_default()
    }
}

fn family_of<'a>(name: &str, types: &'a HashMap<String, String>) -> Option<&'a str> {
    if let Some((k, _)) = types.get_key_value(name) {
        return Some(k);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        let (k, ty) = types.get_key_value(base)?;
        (ty == "histogram" || ty == "summary").then_some(k.as_str())
    })
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find('{') {
        Some(i) => (&line[..i], &line[i..]),
        None => line.split_at(line.find(' ')?),
    };
    if !valid_name(name) {
        return None;
    }
    let mut labels = BTreeMap::new();
    let rest = if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        let end;
        loop {
            // key
            let (start, c) = chars.next()?;
            if c == '}' {
                end = Some(start);
                break;
            }
            let eq = body[start..].find('=')? + start;
            let key = &body[start..eq];
            if !valid_name(key) || key.contains(':') {
                return None;
            }
            while chars.next()?.0 < eq {}
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                let (_, c) = chars.next()?;
                match c {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.insert(key.to_owned(), value);
            match chars.next()? {
                (_, ',') => continue,
                (i, '}') => {
                    end = Some(i);
                    break;
                }
                _ => return None,
            }
        }
        &body[end? + 1..]
    } else {
        rest
    };
    let mut parts = rest.split_whitespace();
    let value = match parts.next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

#[test]
fn the_parser_reads_labels_histograms_and_rejects_untyped_samples() {
    let text = "# HELP a_total x\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"z\"} 3\n\
                # TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.5\nh_count 2\n";
    let e = Exposition::parse(text).unwrap();
    assert_eq!(e.value("a_total", &[("x", "1"), ("y", "q\"z")]), Some(3.0));
    assert_eq!(e.value("h_count", &[]), Some(2.0));
    assert!(Exposition::parse("b 1\n").is_err());
    assert!(Exposition::parse("# TYPE c counter\nc 1\n").is_err());
}
