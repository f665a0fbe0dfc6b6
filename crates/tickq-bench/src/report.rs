//! Output: a header, a progress line per run (stderr), the summary table (median, min, max
//! over the runs), and with `--json` one JSON line per run and per summarised measurement on
//! stdout.

use crate::target::ServerInfo;
use crate::workloads::{Measured, Metric, Params, Workload};
use serde_json::{Value, json};
use std::io::Write;

/// One run of one workload.
pub struct RunRecord {
    workload: Workload,
    run: u32,
    result: Result<Measured, String>,
}

impl RunRecord {
    pub fn new(
        workload: Workload,
        run: u32,
        outcome: anyhow::Result<Measured>,
        peak_rss: Option<u64>,
    ) -> RunRecord {
        let result = outcome
            .map(|mut m| {
                if let Some(bytes) = peak_rss {
                    m.metric("bench peak RSS", "MiB", bytes as f64 / (1024.0 * 1024.0));
                }
                m
            })
            .map_err(|e| format!("{e:#}"));
        RunRecord {
            workload,
            run,
            result,
        }
    }

    fn json(&self) -> Value {
        let mut line = json!({
            "type": "run",
            "peer": "tickq",
            "workload": self.workload.name(),
            "run": self.run,
            "ok": self.result.is_ok(),
        });
        let obj = line.as_object_mut().expect("an object");
        match &self.result {
            Ok(m) => {
                let metrics: Vec<Value> = m
                    .metrics
                    .iter()
                    .map(|x| json!({"name": x.name.trim(), "unit": x.unit, "value": x.value}))
                    .collect();
                obj.insert("metrics".into(), metrics.into());
                obj.extend(m.facts.clone());
            }
            Err(e) => {
                obj.insert("error".into(), e.clone().into());
            }
        }
        line
    }
}

pub struct Report {
    json: bool,
    server: ServerInfo,
    n: u64,
    runs: u32,
    runtime: &'static str,
    /// Print each run's per-job Redis command breakdown.
    pub commandstats: bool,
    records: Vec<RunRecord>,
}

impl Report {
    pub fn new(
        json: bool,
        server: ServerInfo,
        params: &Params,
        runs: u32,
        runtime: &'static str,
    ) -> Report {
        Report {
            json,
            server,
            n: params.n,
            runs,
            runtime,
            commandstats: false,
            records: Vec::new(),
        }
    }

    /// The human output: stdout, or stderr when stdout carries JSON.
    fn human(&self) -> Box<dyn Write> {
        if self.json {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        }
    }

    pub fn header(&self) {
        let s = &self.server;
        let origin = if s.private {
            "private server started by tickq-bench"
        } else {
            "given with --redis"
        };
        let mut out = self.human();
        let _ = writeln!(
            out,
            "tickq-bench {}: N = {}, {} run(s) per workload, tokio runtime {}",
            env!("CARGO_PKG_VERSION"),
            self.n,
            self.runs,
            self.runtime
        );
        let _ = writeln!(
            out,
            "{} {} at {} ({origin}); appendonly = {}, save = {:?}",
            s.name, s.version, s.url, s.appendonly, s.save
        );
        let _ = writeln!(out, "Machine: {}\n", crate::sys::machine());
        if self.json {
            emit(&json!({
                "type": "header",
                "peer": "tickq",
                "tickq_bench": env!("CARGO_PKG_VERSION"),
                "n": self.n,
                "runs": self.runs,
                "runtime": self.runtime,
                "server": s.name,
                "redis_version": s.version,
                "redis_url": s.url,
                "redis_private": s.private,
                "appendonly": s.appendonly,
                "save": s.save,
                "machine": crate::sys::machine(),
            }));
        }
    }

    pub fn record(&mut self, record: RunRecord) {
        let status = match &record.result {
            Ok(m) => m
                .metrics
                .first()
                .map(|x| format!("{} {} {}", x.name, fmt_num(x.value), x.unit))
                .unwrap_or_default(),
            Err(e) => format!("FAILED: {e}"),
        };
        eprintln!(
            "[run {}/{}] {:<13} {status}",
            record.run,
            self.runs,
            record.workload.name()
        );
        if self.commandstats {
            print_commands(&record);
        }
        if self.json {
            emit(&record.json());
        }
        self.records.push(record);
    }

    /// Print the summary; answers how many runs failed.
    pub fn finish(&self) -> usize {
        let mut out = self.human();
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:<13} {:<24} {:>11} {:>11} {:>11}  {:<9} runs ok",
            "workload", "measurement", "median", "min", "max", "unit"
        );
        let mut seen: Vec<Workload> = Vec::new();
        for r in &self.records {
            if !seen.contains(&r.workload) {
                seen.push(r.workload);
            }
        }
        for workload in seen {
            let runs: Vec<&RunRecord> = self
                .records
                .iter()
                .filter(|r| r.workload == workload)
                .collect();
            let ok: Vec<&Measured> = runs.iter().filter_map(|r| r.result.as_ref().ok()).collect();
            let mut label = workload.name();
            if ok.is_empty() {
                let _ = writeln!(out, "{label:<13} FAILED in all {} run(s)", runs.len());
            }
            for metric in metric_names(&ok) {
                // A metric missing from a successful run (an idle command not sent that time)
                // counts as zero.
                let mut values: Vec<f64> = ok
                    .iter()
                    .map(|m| find(m, &metric.name).map_or(0.0, |x| x.value))
                    .collect();
                values.sort_by(f64::total_cmp);
                let (median, min, max) = (median(&values), values[0], values[values.len() - 1]);
                let _ = writeln!(
                    out,
                    "{label:<13} {:<24} {:>11} {:>11} {:>11}  {:<9} {}/{}",
                    metric.name,
                    fmt_num(median),
                    fmt_num(min),
                    fmt_num(max),
                    metric.unit,
                    ok.len(),
                    runs.len()
                );
                label = "";
                if self.json {
                    emit(&json!({
                        "type": "summary",
                        "peer": "tickq",
                        "workload": workload.name(),
                        "metric": metric.name.trim(),
                        "unit": metric.unit,
                        "median": median,
                        "min": min,
                        "max": max,
                        "runs_ok": ok.len(),
                        "runs": runs.len(),
                    }));
                }
            }
        }
        let failed: Vec<&RunRecord> = self.records.iter().filter(|r| r.result.is_err()).collect();
        for r in &failed {
            if let Err(e) = &r.result {
                let _ = writeln!(out, "FAILED {} run {}: {e}", r.workload.name(), r.run);
            }
        }
        failed.len()
    }
}

/// The `redis_commands` facts of a run (one, or one per layout: `redis_commands <label>`),
/// costliest command first.
fn print_commands(record: &RunRecord) {
    let Ok(measured) = record.result.as_ref() else {
        return;
    };
    let num = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    for (fact, value) in &measured.facts {
        let Some(label) = fact.strip_prefix("redis_commands") else {
            continue;
        };
        let Value::Object(commands) = value else {
            continue;
        };
        let mut rows: Vec<(&String, &Value)> = commands.iter().collect();
        rows.sort_by(|a, b| num(b.1, "usec_per_job").total_cmp(&num(a.1, "usec_per_job")));
        eprintln!(
            "    {:<20} {:>12} {:>12}{label}",
            "command", "calls/job", "µs/job"
        );
        for (cmd, v) in rows {
            eprintln!(
                "    {cmd:<20} {:>12.3} {:>12.3}",
                num(v, "calls_per_job"),
                num(v, "usec_per_job")
            );
        }
    }
}

/// Metric names in first-seen order over the runs.
fn metric_names(runs: &[&Measured]) -> Vec<Metric> {
    let mut names: Vec<Metric> = Vec::new();
    for m in runs {
        for x in &m.metrics {
            if !names.iter().any(|n| n.name == x.name) {
                names.push(x.clone());
            }
        }
    }
    names
}

fn find<'a>(m: &'a Measured, name: &str) -> Option<&'a Metric> {
    m.metrics.iter().find(|x| x.name == name)
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn emit(line: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Thousands separators for big numbers, a few significant digits for small ones.
fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 1000.0 {
        let digits = format!("{:.0}", a);
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if v < 0.0 {
            format!("-{grouped}")
        } else {
            grouped
        }
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(fmt_num(1234567.4), "1,234,567");
        assert_eq!(fmt_num(-2500.0), "-2,500");
        assert_eq!(fmt_num(512.4), "512");
        assert_eq!(fmt_num(12.345), "12.3");
        assert_eq!(fmt_num(0.0456), "0.05");
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
    }
}
