//! A schedule as the user wrote it (a `[[cron]]` table or `tickq cron add`), its tasks, and
//! the exec payloads and signatures they carry.

use super::file::{CronFile, CronTaskFile, FileConfig, toml_to_json};
use super::{DEFAULT_QUEUE, kind_name, usage};
use crate::kinds::exec::{Binding, ExecPayload, Secret};
use anyhow::Context as _;
use std::path::Path;
use tickq::{Catchup, Overlap, ScheduleSpec, Task};

/// One schedule as the user wrote it: a `[[cron]]` table (with defaults filled in) or the
/// arguments of `tickq cron add`. Checked with the library's [`ScheduleSpec::validate`];
/// [`CronSpec::to_schedule`] is the one mapping to the library's form.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CronSpec {
    pub name: String,
    pub schedule: String,
    pub timezone: String,
    pub queue: String,
    pub overlap: Overlap,
    pub catchup: Catchup,
    pub tasks: Vec<CronTask>,
}

/// One job of a cron tick, shown the way it is written in the file.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(untagged)]
pub enum CronTask {
    Exec {
        kind: &'static str,
        #[serde(flatten)]
        exec: ExecPayload,
    },
    Other {
        kind: String,
        #[serde(skip_serializing_if = "serde_json::Value::is_null")]
        payload: serde_json::Value,
    },
    /// A workflow (`[[cron.step]]`), submitted once per tick by the `flow` job kind.
    Flow {
        kind: &'static str,
        #[serde(flatten)]
        flow: crate::kinds::flow::FlowPayload,
    },
}

/// The schedule a `[[cron]]` table describes; `dir` is the config file's directory, which a
/// relative `flow = "FILE"` is relative to.
pub(super) fn cron_spec(c: CronFile, dir: Option<&Path>) -> Result<CronSpec, String> {
    if let Some(file) = &c.flow {
        if !c.tasks.is_empty() || !c.step.is_empty() || !c.batch.is_empty() {
            return Err(
                "give one of tasks, [[cron.step]] or flow = \"FILE\" (a workflow file)".into(),
            );
        }
        crate::kinds::flow::check_cron_name(&c.name)?;
        let path = match dir {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.clone(),
        };
        let flow = super::flow::cron_flow_file(&path, c.queue.as_deref())?;
        return finish_spec(
            c.name,
            c.schedule,
            c.timezone,
            flow.queue.clone(),
            c.overlap,
            c.catchup,
            vec![CronTask::Flow {
                kind: crate::kinds::flow::KIND,
                flow,
            }],
        );
    }
    let queue = c.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
    if c.step.is_empty() && !c.batch.is_empty() {
        return Err("[[cron.batch]] needs the workflow's [[cron.step]] tables".into());
    }
    let tasks = if c.step.is_empty() {
        c.tasks
            .into_iter()
            .enumerate()
            .map(|(i, t)| cron_task(t).map_err(|e| format!("task {}: {e}", i + 1)))
            .collect::<Result<_, _>>()?
    } else {
        if !c.tasks.is_empty() {
            return Err("give either tasks or [[cron.step]] (a workflow), not both".into());
        }
        crate::kinds::flow::check_cron_name(&c.name)?;
        // Exec steps are signed later with the others (`sign_exec`).
        let flow =
            super::flow::flow_payload(&c.name, &queue, c.step, c.batch, "the workflow", None)
                .map_err(|e| e.to_string())?;
        vec![CronTask::Flow {
            kind: crate::kinds::flow::KIND,
            flow,
        }]
    };
    finish_spec(
        c.name, c.schedule, c.timezone, queue, c.overlap, c.catchup, tasks,
    )
}

fn finish_spec(
    name: String,
    schedule: String,
    timezone: Option<String>,
    queue: String,
    overlap: Option<Overlap>,
    catchup: Option<Catchup>,
    tasks: Vec<CronTask>,
) -> Result<CronSpec, String> {
    let spec = CronSpec {
        name,
        schedule: schedule.trim().to_owned(),
        timezone: timezone.unwrap_or_else(|| "UTC".to_owned()),
        queue,
        overlap: overlap.unwrap_or_default(),
        catchup: catchup.unwrap_or_default(),
        tasks,
    };
    spec.check()?;
    Ok(spec)
}

impl CronSpec {
    /// The scheduler's own rules: name, queue, tasks, cron syntax and time zone.
    pub(super) fn check(&self) -> Result<(), String> {
        self.to_schedule()
            .validate()
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Whether any task is an exec task (and so is signed when a secret is configured).
    pub(super) fn has_exec(&self) -> bool {
        self.tasks.iter().any(|task| match task {
            CronTask::Exec { .. } => true,
            CronTask::Flow { flow, .. } => flow
                .steps
                .iter()
                .any(|s| s.kind == crate::kinds::exec::KIND),
            CronTask::Other { .. } => false,
        })
    }

    /// Sign every exec task with `secret` for this schedule's jobs in its queue, or a workflow
    /// step's own queue (replacing any signature it had).
    pub fn sign_exec(&mut self, secret: &Secret) {
        let binding = Binding::schedule(&self.queue, &self.name);
        for task in &mut self.tasks {
            match task {
                CronTask::Exec { exec, .. } => exec.sign(secret, &binding),
                CronTask::Flow { flow, .. } => {
                    for step in &mut flow.steps {
                        if step.kind != crate::kinds::exec::KIND {
                            continue;
                        }
                        // Checked when the spec was built, so it decodes.
                        if let Ok(mut exec) =
                            serde_json::from_value::<ExecPayload>(step.payload.clone())
                        {
                            // A step in another queue is bound to that queue (its job's).
                            match &step.queue {
                                Some(q) => exec.sign(secret, &Binding::schedule(q, &self.name)),
                                None => exec.sign(secret, &binding),
                            }
                            step.payload =
                                serde_json::to_value(&exec).expect("an exec payload serialises");
                        }
                    }
                }
                CronTask::Other { .. } => {}
            }
        }
    }

    /// The library's form of this schedule.
    pub fn to_schedule(&self) -> ScheduleSpec {
        let mut spec = ScheduleSpec::new(&self.name, &self.queue, &self.schedule)
            .timezone(&self.timezone)
            .overlap(self.overlap)
            .catchup(self.catchup);
        for task in &self.tasks {
            spec = spec.task(match task {
                CronTask::Exec { exec, .. } => Task::new(
                    crate::kinds::exec::KIND,
                    serde_json::to_value(exec).expect("an exec payload serialises"),
                ),
                CronTask::Other { kind, payload } => Task::new(kind, payload.clone()),
                CronTask::Flow { flow, .. } => Task::new(
                    crate::kinds::flow::KIND,
                    serde_json::to_value(flow).expect("a workflow payload serialises"),
                ),
            });
        }
        spec
    }
}

pub(super) fn cron_task(t: CronTaskFile) -> Result<CronTask, String> {
    kind_name(&t.kind)?;
    if t.kind == crate::kinds::exec::KIND {
        if t.payload.is_some() {
            return Err("an exec task takes cmd (and env, cwd, stdin), not payload".into());
        }
        return exec_task(ExecPayload {
            cmd: t.cmd.ok_or("an exec task needs cmd = [PROGRAM, ARGS...]")?,
            env: t.env.unwrap_or_default(),
            cwd: t.cwd,
            stdin: t.stdin,
            sig: None,
        });
    }
    if t.cmd.is_some() || t.env.is_some() || t.cwd.is_some() || t.stdin.is_some() {
        return Err(format!(
            "cmd, env, cwd and stdin are for exec tasks; a {:?} task takes payload",
            t.kind
        ));
    }
    kind_task(t.kind, t.payload.map(toml_to_json).unwrap_or_default())
}

/// The exec signing secret: `TICKQ_EXEC_SECRET` (`env`) if set, else `[exec] secret` of the
/// file.
pub(super) fn exec_secret(
    env: Option<&std::ffi::OsStr>,
    file: Option<&FileConfig>,
    path: Option<&Path>,
) -> anyhow::Result<Option<Secret>> {
    const ENV: &str = crate::kinds::exec::SECRET_ENV;
    if let Some(text) = env {
        let text = text
            .to_str()
            .ok_or_else(|| usage(format!("{ENV}: not valid UTF-8")))?;
        return Secret::new(text)
            .map(Some)
            .map_err(|e| usage(format!("{ENV}: {e}")));
    }
    let Some(text) = file.and_then(|f| f.exec.secret.as_deref()) else {
        return Ok(None);
    };
    Secret::new(text).map(Some).map_err(|e| {
        let file = path.map_or_else(String::new, |p| format!("config file {}: ", p.display()));
        usage(format!("{file}[exec] secret: {e}"))
    })
}

/// The exec secret as configured. A bad one (too short, not UTF-8) is an error only for the
/// verbs that sign or verify with it: `tickq stats` must work whatever `TICKQ_EXEC_SECRET`
/// holds.
pub(super) struct LazySecret(Result<Option<Secret>, String>);

impl LazySecret {
    pub(super) fn new(secret: anyhow::Result<Option<Secret>>) -> LazySecret {
        LazySecret(secret.map_err(|e| e.to_string()))
    }

    /// The secret, or the usage error that says what is wrong with it.
    pub(super) fn get(&self) -> anyhow::Result<Option<&Secret>> {
        match &self.0 {
            Ok(secret) => Ok(secret.as_ref()),
            Err(e) => Err(usage(e.clone())),
        }
    }
}

/// An exec payload signed with `secret` for job `id` in `queue`, as JSON.
pub(super) fn signed_value(
    mut exec: ExecPayload,
    secret: &Secret,
    queue: &str,
    id: &str,
) -> anyhow::Result<serde_json::Value> {
    exec.sign(secret, &Binding::job(queue, id));
    serde_json::to_value(&exec).context("encoding the exec payload")
}

pub(super) fn exec_task(exec: ExecPayload) -> Result<CronTask, String> {
    exec.validate()?;
    Ok(CronTask::Exec {
        kind: crate::kinds::exec::KIND,
        exec,
    })
}

/// A task of `kind` with a JSON payload; an exec payload is checked like any exec task's.
pub(super) fn kind_task(kind: String, payload: serde_json::Value) -> Result<CronTask, String> {
    kind_name(&kind)?;
    if kind == crate::kinds::exec::KIND {
        let exec = serde_json::from_value(payload).map_err(|e| {
            format!(
                "an exec job's payload must be {{\"cmd\": [PROGRAM, ARGS...], \"env\": {{...}}, \
                 \"cwd\": \"...\", \"stdin\": \"...\"}}: {e}"
            )
        })?;
        return exec_task(exec);
    }
    Ok(CronTask::Other { kind, payload })
}
