//! Wrong bytes the target had no way to tell from the model: a body the server itself corrupted, or an
//! error page sent with 200, cached by processes given no checksum. These are findings about what the
//! target cannot do by design, not violations; every check that judges content asks here first, so a
//! finding is never also counted as a failure.

use std::path::Path;

use stress_cache_metadata::Finding;

use super::check::snapshot_sets;
use super::observations::Observations;
use crate::snapshot::Content;

/// Whether the processes on cache `dir` were given the model's checksum (any of them).
fn checksum_given(obs: &Observations<'_>, dir: &Path) -> bool {
    obs.expectations.processes.iter().any(|p| p.cache_dir == dir && p.checksum_given)
}

/// Whether `content` in cache `dir` is wrong bytes the server served that the target had no way to tell
/// from the model (see [`Content::undetectable_without`]).
pub(super) fn undetectable(obs: &Observations<'_>, dir: &Path, content: &Content) -> bool {
    content.undetectable_without(checksum_given(obs, dir), obs.target.spec.features.loads_model)
}

/// Whether `sha` (of `len` bytes, when known) is a wrong body the server served for `model` that the
/// target could not tell from it.
pub(super) fn undetectable_sha(
    obs: &Observations<'_>,
    dir: &Path,
    model: &str,
    sha: &str,
    len: Option<u64>,
) -> bool {
    match crate::snapshot::known_by_hash(sha, len, &obs.target.models) {
        Some(content @ Content::ServedErrorPage) => undetectable(obs, dir, &content),
        Some(content @ Content::ServedCorrupt(_)) if content.model() == Some(model) => {
            undetectable(obs, dir, &content)
        }
        _ => false,
    }
}

/// A final that must not be there: not a complete model, and not a wrong body the target could not
/// tell (that is a finding, see [`findings`]).
pub(super) fn bad_final(obs: &Observations<'_>, dir: &Path, content: &Content) -> bool {
    !matches!(content, Content::Complete(_)) && !undetectable(obs, dir, content)
}

/// Findings that are not failures: what the target cannot do by design, and what it costs.
///
/// `cached_undetectable_corruption`: a final holding exactly a wrong body the server served (a corrupted
/// copy, or an HTML page sent with 200), in a cache whose processes were given no checksum, of a target
/// that (for the page) does not validate by loading. The target had no way to tell; the file is served to
/// every later process until it is evicted.
pub fn findings(obs: &Observations<'_>) -> Vec<Finding> {
    let mut evidence: Vec<String> = Vec::new();
    for (label, caches, _) in snapshot_sets(obs) {
        for cache in caches {
            for f in cache.finals().into_iter().filter(|f| undetectable(obs, &cache.dir, &f.content)) {
                let what = match f.content {
                    Content::ServedErrorPage => {
                        "an HTML page the server sent with 200 is cached as the model; the processes had no \
                         checksum and the target does not load what it caches"
                    }
                    _ => {
                        "the corrupted body the server served is cached as the model; the processes had no checksum"
                    }
                };
                let line = format!(
                    "{}: {what}, so every later process gets it until it is evicted (give the target a checksum)",
                    f.evidence()
                );
                if !evidence.iter().any(|e| e.ends_with(&line)) {
                    evidence.push(format!("[{label}] {line}"));
                }
            }
        }
    }
    if evidence.is_empty() {
        Vec::new()
    } else {
        vec![Finding { name: "cached_undetectable_corruption".into(), evidence }]
    }
}
