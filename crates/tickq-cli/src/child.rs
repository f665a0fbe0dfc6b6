//! Child processes that must not outlive the server.

/// Ask the kernel to send `signal` to the child when the server dies without cleaning up
/// (kill -9), since nothing else would ever stop it.
///
/// The signal is tied to the *thread* that spawned the child: spawn from the main thread or a
/// tokio worker thread, which live as long as the server.
pub fn die_with_parent(cmd: &mut tokio::process::Command, signal: libc::c_int) {
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: prctl and getppid are async-signal-safe, and the closure touches no memory
        // shared with the parent.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, signal) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent may have died before prctl: then nobody would send the signal.
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (cmd, signal);
}
