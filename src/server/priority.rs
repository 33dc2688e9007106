//! Work that must never slow chat down runs on threads below chat's priority: when it shares
//! a core with the sessions (always, on a one-core server), the kernel's scheduler then gives
//! the sessions the core whenever they have work, and the rest in between.

/// How far below chat a thread runs, as a nice value.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Below {
    /// Password hashing: a storm of logins takes about a tenth of a busy core, and only
    /// slows the logins down.
    Hashing = 10,
    /// The history writer: it works while chat is idle, and chat's bursts wait in memory
    /// for it (the store bounds how many: `storage/queued.rs`).
    Storage = 19,
}

/// Lowers the calling thread's priority below chat's (its nice value; threads it starts
/// later inherit it). Unix nice values are per thread on Linux; elsewhere this does nothing.
pub(crate) fn lower_this_thread(below: Below) {
    #[cfg(target_os = "linux")]
    // SAFETY: gettid and setpriority on the calling thread have no memory effects.
    unsafe {
        let thread = libc::gettid() as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, thread, below as libc::c_int);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = below;
}
