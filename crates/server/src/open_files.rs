//! The process's limit on open descriptors, raised at start to what the system allows: each
//! plain client connection takes two (the runtime's, and the driver's handle to write replies
//! itself), each peer connection two, and the log, snapshots and listeners a few more.

/// Descriptors kept beside the clients': listeners, peers, log segments, snapshots, HTTP.
const RESERVE: u64 = 256;

/// Linux's default ceiling on one process's descriptors (`/proc/sys/fs/nr_open`).
const LINUX_DEFAULT_NR_OPEN: u64 = 1 << 20;

/// Raises the soft limit on open descriptors to the hard limit, and warns when even that
/// leaves fewer than `max_clients` connections room. Failures only warn: the node runs with
/// the limit it has, and a connection that finds no descriptor is refused, not the node.
pub fn raise_for(max_clients: usize) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct it is given, which lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        let error = std::io::Error::last_os_error();
        tracing::warn!(%error, "could not read the limit on open files");
        return;
    }
    // An unlimited hard limit still stops at the kernel's per-process ceiling (nr_open).
    let target = if limit.rlim_max == libc::RLIM_INFINITY {
        LINUX_DEFAULT_NR_OPEN.max(limit.rlim_cur)
    } else {
        limit.rlim_max
    };
    if limit.rlim_cur < target {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        } else {
            let error = std::io::Error::last_os_error();
            tracing::warn!(%error, "could not raise the limit on open files");
        }
    }
    let needed = (max_clients as u64)
        .saturating_mul(2)
        .saturating_add(RESERVE);
    if limit.rlim_cur < needed {
        tracing::warn!(
            open_files = limit.rlim_cur,
            needed,
            max_clients,
            "the limit on open files leaves room for fewer clients than --max-clients \
             (two descriptors each); raise it (ulimit -n, LimitNOFILE=)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open_files_limit() -> libc::rlimit {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as in raise_for.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        limit
    }

    /// After raising, the soft limit is the hard one (what any process may do for itself),
    /// or the kernel's default ceiling under an unlimited hard limit; never lower than before.
    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        let before = open_files_limit();
        raise_for(10);
        let after = open_files_limit();
        assert!(after.rlim_cur >= before.rlim_cur);
        if before.rlim_max != libc::RLIM_INFINITY {
            assert_eq!(after.rlim_cur, before.rlim_max);
        }
    }
}
