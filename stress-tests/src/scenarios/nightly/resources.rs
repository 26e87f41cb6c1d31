//! RSS, open FDs and threads of a long-lived process (the harness; the model server runs inside it on
//! its own runtime), from `/proc/<pid>/status` and `/proc/<pid>/fd`, and the verdict on their growth over
//! a soak against seed 004's bounds: FDs are exact (any growth is a leak), RSS within
//! [`RSS_GROWTH_BOUND_KB`].

use stress_cache_metadata::{RSS_GROWTH_BOUND_KB, ResourceSample};

/// Reads the sample of `pid` (`None`: this process). Unreadable values read as 0.
pub fn sample(pid: Option<u32>) -> ResourceSample {
    let base = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_string(),
    };
    let status = std::fs::read_to_string(format!("{base}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    // Counting through read_dir opens one descriptor of its own: not counted (it is closed again).
    let fds = std::fs::read_dir(format!("{base}/fd")).map(|d| d.count().saturating_sub(1)).unwrap_or(0);
    ResourceSample { rss_kb: field("VmRSS:"), fds, threads: field("Threads:") as usize }
}

/// Evidence of growth beyond seed 004's bounds between `before` and `after` of the process `what`.
pub fn growth_evidence(what: &str, before: &ResourceSample, after: &ResourceSample) -> Vec<String> {
    let mut evidence = Vec::new();
    if after.fds > before.fds {
        evidence.push(format!(
            "{what}: open file descriptors grew from {} to {} over the soak (a descriptor leak)",
            before.fds, after.fds
        ));
    }
    let rss = after.rss_kb as i64 - before.rss_kb as i64;
    if rss >= RSS_GROWTH_BOUND_KB {
        evidence.push(format!(
            "{what}: RSS grew by {rss} kB ({} → {} kB), at or beyond seed 004's bound of {RSS_GROWTH_BOUND_KB} kB",
            before.rss_kb, after.rss_kb
        ));
    }
    evidence
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample sees a descriptor this process opens, and the verdict flags FD growth and RSS growth of
    /// 1 MB, not RSS growth below it.
    #[test]
    fn an_opened_descriptor_and_a_megabyte_of_rss_are_growth() {
        let before = sample(None);
        assert!(before.rss_kb > 0 && before.threads > 0, "{before:?}");
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let after = sample(None);
        assert_eq!(after.fds, before.fds + 1, "{before:?} → {after:?}");
        drop(file);
        // This process's own RSS moves between two samples (page faults of the test harness, other
        // threads): the FD growth is judged alone here, RSS growth on fixed samples below.
        let after = ResourceSample { rss_kb: before.rss_kb, ..after };
        let e = growth_evidence("harness", &before, &after);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("descriptors grew"), "{e:?}");
        let base = ResourceSample { rss_kb: 10_000, fds: 5, threads: 3 };
        let small = ResourceSample { rss_kb: 10_000 + 1023, ..base };
        assert!(growth_evidence("harness", &base, &small).is_empty());
        let big = ResourceSample { rss_kb: 10_000 + 1024, ..base };
        assert!(growth_evidence("harness", &base, &big)[0].contains("RSS grew by 1024 kB"));
    }
}
