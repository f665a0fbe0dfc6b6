//! `tickq flow`: workflow files run on real `tickq server` processes, exec steps reading their
//! parents' results, failure, retry and cancel from the shell.

use crate::util::{Server, run, wait_for};
use std::time::Duration;
use tickq_testkit::TestRedis;

const LIMIT: Duration = Duration::from_secs(20);

fn config() -> String {
    // A short lease: a cancel reaches a running step at its next renewal (a third of it).
    "[worker]\nqueues = { default = 1 }\nlease = \"3s\"\n\n[exec]\nallow = [\"sh\"]\n".to_owned()
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Wait until the workflow's state is `state`; its document then.
fn wait_flow(url: &str, id: &str, state: &str) -> serde_json::Value {
    wait_for(LIMIT, &format!("workflow {id} {state}"), || {
        let doc = run(Some(url), &["flow", "show", id, "--json"]).json();
        (doc["state"] == state).then_some(doc)
    })
}

/// The ids of the workflows that schedules launched: a tick's `flow` job completes with the
/// id of the workflow it submitted.
fn launched_flows(url: &str) -> Vec<String> {
    let args = [
        "jobs",
        "default",
        "--state",
        "completed",
        "--limit",
        "500",
        "--json",
    ];
    run(Some(url), &args).json()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["kind"] == "flow")
        .map(|j| j["result"].as_str().unwrap().to_owned())
        .collect()
}

fn step<'a>(doc: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
}

#[test]
fn a_fan_in_of_exec_steps_reads_its_parents_results() {
    let redis = TestRedis::start();
    let url = redis.url();
    let _server = Server::start(Some(&config()), &["--redis", &url], &[]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.txt");
    let file = write(
        &dir,
        "nightly.toml",
        &format!(
            r#"
name = "nightly-report"
queue = "default"
id = "nightly-1"
[[step]]
id = "part1"
cmd = ["sh", "-c", "echo one"]
[[step]]
id = "part2"
cmd = ["sh", "-c", "echo two"]
[[step]]
id = "report"
cmd = ["sh", "-c", "echo \"$TICKQ_FLOW_ID $TICKQ_STEP $TICKQ_PARENTS_FILE\" > {out}; cat \"$TICKQ_PARENTS_FILE\" >> {out}"]
after = ["part1", "part2"]
"#,
            out = out.display()
        ),
    );

    let id = run(Some(&url), &["flow", "run", &file]).ok().stdout;
    assert_eq!(id.trim(), "nightly-1");
    let doc = wait_flow(&url, "nightly-1", "succeeded");
    assert_eq!(doc["name"], "nightly-report");
    assert_eq!(doc["counts"]["completed"], 3);
    assert_eq!(step(&doc, "part1")["result"], "one");
    assert_eq!(step(&doc, "report")["job_id"], "flow:nightly-1:report");
    assert_eq!(
        step(&doc, "report")["after"],
        serde_json::json!(["part1", "part2"])
    );

    let text = std::fs::read_to_string(&out).unwrap();
    let (first, parents) = text.split_once('\n').unwrap();
    let vars: Vec<&str> = first.split(' ').collect();
    assert_eq!(vars[..2], ["nightly-1", "report"]);
    let results: serde_json::Value = serde_json::from_str(parents).unwrap();
    assert_eq!(results, serde_json::json!({"part1": "one", "part2": "two"}));
    assert!(
        !std::path::Path::new(vars[2]).exists(),
        "the parents file is removed when the step ends"
    );

    // The same file again creates nothing.
    let again = run(Some(&url), &["flow", "run", &file]).ok().stdout;
    assert!(again.contains("exists already"), "{again}");
    let list = run(Some(&url), &["flow", "ls", "--json"]).json();
    assert_eq!(list["flows"][0]["id"], "nightly-1", "{list}");
    assert_eq!(list["flows"][0]["state"], "succeeded");
    let table = run(Some(&url), &["flow", "ls", "default"]).ok().stdout;
    assert!(
        table.contains("nightly-1") && table.contains("succeeded"),
        "{table}"
    );
    run(Some(&url), &["flow", "ls", "--limit", "0"]).fails(2, "--limit 0");
    let human = run(Some(&url), &["flow", "show", "nightly-1"]).ok().stdout;
    assert!(
        human.contains("succeeded") && human.contains("report"),
        "{human}"
    );
}

/// A workflow file whose steps name their queues, on two `tickq server` processes that work
/// different queues: each step runs where its queue is worked, the report after both parts,
/// reading both results; `flow show` shows every step with its queue.
#[test]
fn steps_in_other_queues_run_on_the_servers_that_work_them() {
    let redis = TestRedis::start();
    let url = redis.url();
    let exec = "[exec]\nallow = [\"sh\"]\n";
    let _a = Server::start(
        Some(&format!("[worker]\nqueues = {{ parts = 1 }}\n\n{exec}")),
        &["--redis", &url],
        &[],
    );
    let _b = Server::start(
        Some(&format!(
            "[worker]\nqueues = {{ reports = 1, other = 1 }}\n\n{exec}"
        )),
        &["--redis", &url],
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "spread.toml",
        r#"
name = "spread"
queue = "default"
id = "spread-1"
[[step]]
id = "part1"
queue = "parts"
cmd = ["sh", "-c", "echo one"]
[[step]]
id = "part2"
queue = "other"
cmd = ["sh", "-c", "echo two"]
[[step]]
id = "report"
queue = "reports"
cmd = ["sh", "-c", "cat \"$TICKQ_PARENTS_FILE\""]
after = ["part1", "part2"]
"#,
    );
    let id = run(Some(&url), &["flow", "run", &file]).ok().stdout;
    assert_eq!(id.trim(), "spread-1");
    let doc = wait_flow(&url, "spread-1", "succeeded");
    assert_eq!(doc["queue"], "default");
    assert_eq!(step(&doc, "part1")["queue"], "parts");
    assert_eq!(step(&doc, "report")["queue"], "reports");
    let parents: serde_json::Value =
        serde_json::from_str(step(&doc, "report")["result"].as_str().unwrap()).unwrap();
    assert_eq!(parents, serde_json::json!({"part1": "one", "part2": "two"}));
    let human = run(Some(&url), &["flow", "show", "spread-1"]).ok().stdout;
    assert!(
        human.contains("reports") && human.contains("QUEUE"),
        "{human}"
    );
    // Listed under its home queue.
    let table = run(Some(&url), &["flow", "ls", "default"]).ok().stdout;
    assert!(table.contains("spread-1"), "{table}");
}

#[test]
fn a_failed_parent_cancels_and_a_retry_resumes() {
    let redis = TestRedis::start();
    let url = redis.url();
    let _server = Server::start(Some(&config()), &["--redis", &url], &[]);
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("mark");
    let file = write(
        &dir,
        "flaky.toml",
        &format!(
            r#"
name = "flaky"
[[step]]
id = "flaky"
cmd = ["sh", "-c", "test -f {mark}"]
max_attempts = 1
[[step]]
id = "child"
cmd = ["sh", "-c", "echo ran"]
after = ["flaky"]
[[step]]
id = "anyway"
cmd = ["sh", "-c", "echo anyway"]
after = ["flaky"]
on_parent_failure = "run"
[[step]]
id = "ok"
cmd = ["sh", "-c", "echo ok"]
[[step]]
id = "report"
cmd = ["sh", "-c", "echo report"]
[[step]]
id = "alert"
cmd = ["sh", "-c", "echo alert"]
[[step]]
id = "cleanup"
cmd = ["sh", "-c", "echo cleanup"]
[[batch]]
steps = ["flaky", "ok"]
on_success = "report"
on_failure = "alert"
on_complete = "cleanup"
"#,
            mark = mark.display()
        ),
    );
    let id = run(Some(&url), &["flow", "run", &file])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let doc = wait_flow(&url, &id, "failed");
    assert_eq!(step(&doc, "flaky")["state"], "dead");
    assert_eq!(step(&doc, "child")["state"], "cancelled");
    assert_eq!(step(&doc, "child")["error"], "parent step flaky dead");
    assert_eq!(step(&doc, "anyway")["state"], "completed");
    assert!(doc["counts"].get("waiting").is_none());
    // The batch's callbacks: on_success cancelled, on_failure and on_complete ran.
    assert_eq!(step(&doc, "report")["state"], "cancelled");
    assert_eq!(step(&doc, "report")["on_parent_failure"], "cancel");
    assert_eq!(step(&doc, "alert")["result"], "alert");
    assert_eq!(step(&doc, "alert")["on_parent_failure"], "only_if_failed");
    assert_eq!(step(&doc, "cleanup")["result"], "cleanup");

    std::fs::write(&mark, "").unwrap();
    let out = run(Some(&url), &["flow", "retry", &id, "--json"]).json();
    assert_eq!(out["retried"], 3, "flaky, child and report");
    let doc = wait_flow(&url, &id, "succeeded");
    assert_eq!(step(&doc, "child")["result"], "ran");
    assert_eq!(step(&doc, "report")["result"], "report");
    assert_eq!(
        step(&doc, "alert")["state"],
        "completed",
        "ran once, not again"
    );
}

#[test]
fn cancel_stops_a_running_workflow() {
    let redis = TestRedis::start();
    let url = redis.url();
    let _server = Server::start(Some(&config()), &["--redis", &url], &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "slow.toml",
        r#"
name = "slow"
id = "slow"
[[step]]
id = "slow"
cmd = ["sh", "-c", "sleep 30"]
[[step]]
id = "next"
cmd = ["sh", "-c", "echo no"]
after = ["slow"]
on_parent_failure = "run"
"#,
    );
    run(Some(&url), &["flow", "run", &file]).ok();
    wait_flow(&url, "slow", "running");
    let out = run(Some(&url), &["flow", "cancel", "slow", "--json"]).json();
    assert_eq!(out["cancelling"], 1);
    let doc = wait_flow(&url, "slow", "cancelled");
    assert_eq!(step(&doc, "slow")["state"], "cancelled");
    assert_eq!(step(&doc, "next")["state"], "cancelled");
}

#[test]
fn bad_workflow_files_and_ids_are_refused() {
    let redis = TestRedis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    run(Some(&url), &["flow", "run", "/no/such/file.toml"]).fails(2, "cannot read it");
    let cycle = write(
        &dir,
        "cycle.toml",
        "name = \"c\"\n[[step]]\nid = \"a\"\nkind = \"k\"\nafter = [\"b\"]\n\
         [[step]]\nid = \"b\"\nkind = \"k\"\nafter = [\"a\"]\n",
    );
    run(Some(&url), &["flow", "run", &cycle]).fails(2, "cycle through the steps a, b");
    run(Some(&url), &["flow", "show", "a b"]).fails(2, "invalid workflow id");
    run(Some(&url), &["flow", "show", "nope"]).fails(1, "no workflow nope");
    // Nothing was written by the refused file.
    let queues = run(Some(&url), &["queue", "ls"]).ok().stdout;
    assert!(queues.contains("no queues yet"), "{queues}");
}

/// The nightly scenario: 3 servers for 30 s, a `[[cron]]` every 2 s firing a workflow file
/// (`flow = FILE`) of four parts and a report (the parts' batch `on_success`). Each tick's
/// parts run once each and on at least two nodes, the report once and after its four parts.
#[test]
fn a_cron_workflow_on_three_servers_runs_each_tick_once() {
    const RUN_FOR: Duration = Duration::from_secs(30);
    let redis = TestRedis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("steps.txt");
    // Each step appends "<flow id> <step> <node> start|end"; the parts take a moment, so that
    // a node (2 slots) cannot take all four of a tick before the other nodes claim some.
    let part = |n: u32| {
        format!(
            "[[step]]\nid = \"part{n}\"\ncmd = [\"sh\", \"-c\", \"echo \\\"$TICKQ_FLOW_ID \
             $TICKQ_STEP $TICKQ_NODE start\\\" >> '{o}'; sleep 0.3; echo \\\"$TICKQ_FLOW_ID \
             $TICKQ_STEP $TICKQ_NODE end\\\" >> '{o}'\"]\n",
            o = out.display()
        )
    };
    let workflow = format!(
        "name = \"nightly-report\"\n{}{}{}{}\
         [[step]]\nid = \"report\"\n\
         cmd = [\"sh\", \"-c\", \"echo \\\"$TICKQ_FLOW_ID $TICKQ_STEP $TICKQ_NODE start\\\" >> \
         '{o}'\"]\n\
         [[batch]]\nsteps = [\"part1\", \"part2\", \"part3\", \"part4\"]\non_success = \"report\"\n",
        part(1),
        part(2),
        part(3),
        part(4),
        o = out.display()
    );
    let file = write(&dir, "nightly.toml", &workflow);
    let config = format!(
        "[worker]\nqueues = {{ default = 1 }}\nconcurrency = 2\nlease = \"2s\"\n\n[exec]\n\
         allow = [\"sh\"]\n\n[[cron]]\nname = \"nightly\"\nschedule = \"@every 2s\"\n\
         flow = \"{file}\"\n"
    );
    let servers: Vec<Server> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|node| Server::start(Some(&config), &["--redis", &url, "--node", node], &[]))
        .collect();
    std::thread::sleep(RUN_FOR); // the scenario's length, not a wait for an outcome
    // No new ticks from here on.
    run(Some(&url), &["cron", "pause", "nightly"]).ok();
    // Let the workflows in flight finish: every fired tick's report has run.
    let flows = wait_for(LIMIT, "every launched workflow to end", || {
        let flows = launched_flows(&url);
        flows
            .iter()
            .all(|id| {
                run(Some(&url), &["flow", "show", id, "--json"]).json()["state"] == "succeeded"
            })
            .then_some(flows)
    });
    assert!(flows.len() >= 10, "ticks in {RUN_FOR:?}: {flows:?}");
    let text = std::fs::read_to_string(&out).unwrap();
    let mut nodes = std::collections::BTreeSet::new();
    for flow in &flows {
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .filter(|l| l[0] == flow)
            .collect();
        let pos = |step: &str, what: &str| {
            let found: Vec<usize> = lines
                .iter()
                .enumerate()
                .filter(|(_, l)| l[1] == step && l[3] == what)
                .map(|(i, _)| i)
                .collect();
            assert_eq!(found.len(), 1, "{flow} {step} {what} once: {lines:?}");
            found[0]
        };
        let report = pos("report", "start");
        for n in 1..=4 {
            let step = format!("part{n}");
            pos(&step, "start");
            assert!(
                pos(&step, "end") < report,
                "{flow}: report before {step} ended"
            );
        }
        let tick_nodes: std::collections::BTreeSet<&str> = lines
            .iter()
            .filter(|l| l[1].starts_with("part"))
            .map(|l| l[2])
            .collect();
        assert!(
            tick_nodes.len() >= 2,
            "{flow}: its four parts ran on {tick_nodes:?} only: {lines:?}"
        );
        nodes.extend(tick_nodes.iter().map(|n| n.to_string()));
    }
    eprintln!("{} ticks; parts ran on {nodes:?}", flows.len());
    drop(servers);
}

/// kill -9 of a node in the middle of a 3-level DAG of exec steps on 3 servers: every step
/// runs, each after all its parents ended, and no step runs twice except a re-run of one that
/// was running on the killed node (counted and printed).
#[test]
fn kill_9_of_a_node_mid_dag_loses_no_step_and_runs_none_early() {
    let redis = TestRedis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("steps.txt");
    let step = |id: &str, after: &[&str]| {
        let after: Vec<String> = after.iter().map(|a| format!("{a:?}")).collect();
        format!(
            "[[step]]\nid = \"{id}\"\nafter = [{}]\ncmd = [\"sh\", \"-c\", \"echo \\\"$TICKQ_STEP \
             $TICKQ_NODE start\\\" >> '{o}'; sleep 0.4; echo \\\"$TICKQ_STEP $TICKQ_NODE end\\\" \
             >> '{o}'\"]\n",
            after.join(", "),
            o = out.display()
        )
    };
    let mut text = "name = \"dag\"\nid = \"dag\"\n".to_owned();
    let level1: Vec<String> = (1..=6).map(|i| format!("a{i}")).collect();
    for a in &level1 {
        text.push_str(&step(a, &[]));
    }
    let mut level2 = Vec::new();
    for i in 1..=3 {
        let b = format!("b{i}");
        text.push_str(&step(&b, &[&level1[2 * i - 2], &level1[2 * i - 1]]));
        level2.push(b);
    }
    let level2_refs: Vec<&str> = level2.iter().map(String::as_str).collect();
    text.push_str(&step("c", &level2_refs));
    let file = write(&dir, "dag.toml", &text);
    let config = "[worker]\nqueues = { default = 1 }\nconcurrency = 2\nlease = \"1s\"\n\n\
                  [exec]\nallow = [\"sh\"]\n";
    let mut servers: Vec<Server> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|node| Server::start(Some(config), &["--redis", &url, "--node", node], &[]))
        .collect();
    run(Some(&url), &["flow", "run", &file]).ok();

    // Kill node-b as soon as it is running a step.
    wait_for(LIMIT, "node-b to start a step", || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains(" node-b start"))
            .then_some(())
    });
    servers[1].signal(libc::SIGKILL);
    servers[1].wait(LIMIT);
    let doc = wait_flow(&url, "dag", "succeeded");
    assert_eq!(doc["counts"]["completed"], 10);

    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    let starts = |s: &str| -> Vec<(usize, &str)> {
        lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l[0] == s && l[2] == "start")
            .map(|(i, l)| (i, l[1]))
            .collect()
    };
    let last_end = |s: &str| {
        lines
            .iter()
            .rposition(|l| l[0] == s && l[2] == "end")
            .unwrap_or_else(|| panic!("{s} never ended: {text}"))
    };
    let mut reruns = 0;
    let all: Vec<&str> = level1
        .iter()
        .chain(&level2)
        .map(String::as_str)
        .chain(["c"])
        .collect();
    for s in &all {
        let st = starts(s);
        assert!(!st.is_empty(), "{s} never started: {text}");
        // Every start but the last must be a run on the killed node that never ended.
        for (_, node) in &st[..st.len() - 1] {
            assert_eq!(
                *node, "node-b",
                "{s} ran twice, not because of the kill: {text}"
            );
            reruns += 1;
        }
    }
    let parents: Vec<(&str, Vec<&str>)> = (1..=3)
        .map(|i| {
            (
                level2_refs[i - 1],
                vec![level1[2 * i - 2].as_str(), level1[2 * i - 1].as_str()],
            )
        })
        .chain([("c", level2_refs.clone())])
        .collect();
    for (child, ps) in parents {
        let first_start = starts(child)[0].0;
        for p in ps {
            assert!(
                last_end(p) < first_start,
                "{child} started before {p} ended: {text}"
            );
        }
    }
    assert!(
        reruns <= 2,
        "at most node-b's two running steps re-run: {reruns}\n{text}"
    );
    println!("re-runs after the kill: {reruns}");
}

/// With an exec secret, `flow run` signs each exec step for its own step job, and a schedule's
/// workflow steps verify against the schedule: both run; an unsigned workflow's exec steps do
/// not.
/// Step b is in another queue: it is signed for its own queue, from a file and from a schedule.
#[test]
fn signed_workflows_run_and_unsigned_ones_do_not() {
    const SECRET: &str = "s3cret-s3cret-s3cret";
    let redis = TestRedis::start();
    let url = redis.url();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ran.txt");
    let steps = format!(
        "[[step]]\nid = \"a\"\ncmd = [\"sh\", \"-c\", \"echo a >> '{o}'\"]\n\
         [[step]]\nid = \"b\"\nafter = [\"a\"]\nqueue = \"other\"\n\
         cmd = [\"sh\", \"-c\", \"echo b >> '{o}'\"]\n",
        o = out.display()
    );
    let cron = steps.replace("[[step]]", "[[cron.step]]");
    let config = format!(
        "[worker]\nqueues = {{ default = 1, other = 1 }}\n\n[exec]\nallow = [\"sh\"]\n\
         secret = \"{SECRET}\"\n\n[[cron]]\nname = \"signed\"\nschedule = \"@every 1s\"\n{cron}"
    );
    let _server = Server::start(Some(&config), &["--redis", &url], &[]);
    let file = write(&dir, "signed.toml", &format!("name = \"s\"\n{steps}"));
    let env = [("TICKQ_EXEC_SECRET", SECRET)];
    let mut cmd = crate::util::tickq();
    cmd.args(["--redis", &url, "flow", "run", &file]).envs(env);
    let id = crate::util::run_cmd(&mut cmd).ok().stdout.trim().to_owned();
    wait_flow(&url, &id, "succeeded");

    // Without the secret the steps are not signed: the first dies, the second is cancelled.
    let id = run(Some(&url), &["flow", "run", &file])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let doc = wait_flow(&url, &id, "failed");
    assert!(
        step(&doc, "a")["error"]
            .as_str()
            .unwrap()
            .contains("not signed"),
        "{doc}"
    );
    assert_eq!(step(&doc, "b")["state"], "cancelled");

    // The schedule's workflows run, signed by the server that stored the schedule.
    let launched = wait_for(LIMIT, "a tick's workflow", || {
        launched_flows(&url).into_iter().next()
    });
    assert!(launched.starts_with("cron-signed-"), "{launched}");
    wait_flow(&url, &launched, "succeeded");
}
