//! Helpers shared by the integration tests.

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tickq::{Client, JobState, ShutdownHandle, Worker};
use tokio::task::JoinHandle;

/// Poll `check` until it returns true; panic with `what` after `limit`.
pub(crate) async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Count of jobs in `state` in `queue`.
pub(crate) async fn count(client: &Client, queue: &str, state: JobState) -> u64 {
    client.inspector().counts(queue).await.unwrap().states[&state]
}

/// A worker running in this process, stopped on drop of the returned handle.
pub(crate) struct Running {
    pub handle: ShutdownHandle,
    pub task: JoinHandle<(tickq::Result<()>, tickq::WorkerStats)>,
}

impl Running {
    pub(crate) async fn stop(self) -> tickq::WorkerStats {
        self.handle.shutdown();
        let (result, stats) = self.task.await.unwrap();
        result.unwrap();
        stats
    }
}

pub(crate) fn spawn(worker: Worker) -> Running {
    let handle = worker.shutdown_handle();
    let task = tokio::spawn(async move {
        let result = worker.run().await;
        (result, worker.stats())
    });
    Running { handle, task }
}

/// Environment variable that turns this test binary into a worker process (see
/// `child_worker_process` in faults.rs).
pub(crate) const CHILD_ENV: &str = "TICKQ_TEST_CHILD_WORKER";

/// Start this test binary again as a worker process on `url`, with extra environment: `test` is
/// the full name of the ignored test that runs it (`faults::child_worker_process`).
pub(crate) fn spawn_child_worker(test: &str, url: &str, env: &[(&str, &str)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

pub(crate) fn signal(child: &Child, sig: i32) {
    let rc = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(rc, 0, "kill({}, {sig})", child.id());
}
