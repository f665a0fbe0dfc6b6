//! Its own test binary: it changes the process environment, which would race with tests
//! starting servers in other threads.

use tickq_testkit::{REDIS_SERVER_ENV, TestRedis};

fn start_message() -> String {
    let panic = std::panic::catch_unwind(TestRedis::start).expect_err("start should panic");
    panic
        .downcast_ref::<String>()
        .cloned()
        .expect("a formatted panic message")
}

#[test]
fn missing_redis_server_panics_with_install_hint() {
    // SAFETY: the only test in this binary, so no other thread reads the environment.
    unsafe {
        std::env::set_var(REDIS_SERVER_ENV, "/nonexistent/redis-server");
    }
    let message = start_message();
    assert!(message.contains("/nonexistent/redis-server"), "{message}");
    assert!(message.contains(REDIS_SERVER_ENV), "{message}");

    // SAFETY: as above.
    unsafe {
        std::env::set_var(REDIS_SERVER_ENV, "");
        std::env::set_var("PATH", "/nonexistent");
    }
    let message = start_message();
    assert_eq!(
        message,
        "redis-server not found on PATH; install it with `apt-get install redis-server` \
         (or set TICKQ_REDIS_SERVER to its path)"
    );
}
