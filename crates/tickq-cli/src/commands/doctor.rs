//! `doctor`: the library's deployment checks, printed; exit 1 when any is an error.

use crate::config::Redis;
use crate::output;
use tickq::doctor::{Report, Severity};

pub async fn doctor(
    redis: &Redis,
    exec_allow: Option<&[String]>,
    json: bool,
) -> anyhow::Result<()> {
    let client = crate::connect::connect(redis).await?;
    let mut doctor = client.doctor();
    if let Some(programs) = exec_allow {
        doctor = doctor.exec_allow(programs);
    }
    let report = doctor.run().await?;
    if json {
        output::json(&report)?;
    } else {
        output::text(&render(&report))?;
    }
    verdict(&report)
}

/// One line per finding, its fix indented below it.
pub fn render(report: &Report) -> String {
    let mut text = String::new();
    for finding in &report.findings {
        let check = serde_json::to_value(finding.check)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        text.push_str(&format!(
            "{:<8} {check:<14} {}\n",
            label(finding.severity),
            finding.message
        ));
        if let Some(fix) = &finding.fix {
            text.push_str(&format!("{:<8} {:<14} fix: {fix}\n", "", ""));
        }
    }
    text.pop();
    text
}

fn label(severity: Severity) -> &'static str {
    match severity {
        Severity::Ok => "ok",
        Severity::Warning => "warning",
        _ => "error",
    }
}

/// Exit 1 naming every error.
fn verdict(report: &Report) -> anyhow::Result<()> {
    let errors: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| {
            let fix = f
                .fix
                .as_deref()
                .map(|f| format!(". Fix: {f}"))
                .unwrap_or_default();
            format!("{}{fix}", f.message)
        })
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "the deployment is not sound ({} problem{}): {}",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        errors.join(". ")
    )
}
