//! Invariant names, as records carry them: an open newtype with associated constants, as
//! `nextest-metadata` names its statuses. Open, because a newer suite may report an invariant an older
//! CLI has never heard of — it must still aggregate it, not reject the record. The constants are the
//! names this workspace's suite checks; both sides use them instead of string literals.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The stable snake_case name of an invariant (`no_partial_content`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct InvariantName(Cow<'static, str>);

macro_rules! known_names {
    ($($(#[$doc:meta])* $konst:ident = $name:literal,)*) => {
        impl InvariantName {
            $( $(#[$doc])* pub const $konst: InvariantName = InvariantName::new_static($name); )*

            /// Every name this workspace's suite checks, in its report order.
            pub const KNOWN: &'static [InvariantName] = &[$(InvariantName::$konst),*];
        }
    };
}

known_names! {
    /// At most one complete copy of each model per cache, and a final for every model a process got.
    ONE_FINAL_ARTIFACT_PER_MODEL = "one_final_artifact_per_model",
    /// Every file under a final name is a complete model.
    FINAL_ARTIFACTS_MATCH_CHECKSUM = "final_artifacts_match_checksum",
    /// No strict prefix or corrupted copy anywhere once every process exited.
    NO_PARTIAL_CONTENT = "no_partial_content",
    /// No file matching the partial/temp patterns is left.
    NO_TEMP_FILES_LEFT = "no_temp_files_left",
    /// No `exists`-kind lock is still held once every process exited.
    NO_LOCK_HELD = "no_lock_held",
    /// A reader opening finals while writers ran only ever saw complete content.
    READERS_SAW_ONLY_COMPLETE_CONTENT = "readers_saw_only_complete_content",
    /// Every compiled entry is complete or absent.
    COMPILED_ENTRIES_COMPLETE_OR_ABSENT = "compiled_entries_complete_or_absent",
    /// Every successful process loaded the model it asked for.
    SUCCESSES_LOADED_EXPECTED_MODEL = "successes_loaded_expected_model",
    /// Every process ended with a class allowed for the injected fault.
    FAILURES_HAVE_EXPECTED_CLASS = "failures_have_expected_class",
    /// No process panicked or died by a signal, except by an injected crash.
    NO_PANIC_OR_UNEXPECTED_SIGNAL = "no_panic_or_unexpected_signal",
    /// Complete bodies served per model stayed within the scenario's bound.
    DOWNLOAD_AMPLIFICATION_BOUNDED = "download_amplification_bounded",
    /// A clean run after the scenario succeeds without manual cleanup.
    NO_POISONING = "no_poisoning",
    /// Every process finished before the watchdog deadline.
    FINISHED_BEFORE_WATCHDOG = "finished_before_watchdog",
    /// A final appears only by an atomic rename of a complete file.
    FINAL_PUBLISHED_ATOMICALLY = "final_published_atomically",
    /// No process removed a temp file another live process was writing.
    LIVE_TEMP_FILES_LEFT_ALONE = "live_temp_files_left_alone",
    /// Lock files are never unlinked or replaced while in use.
    LOCK_FILES_STABLE = "lock_files_stable",
    /// Every writer of cache data holds an exclusive lock while it writes and publishes.
    WRITER_HOLDS_EXCLUSIVE_LOCK = "writer_holds_exclusive_lock",
    /// Published bytes and the directory entry were fsynced.
    PUBLISHED_DURABLY = "published_durably",
    /// A path the target printed was a complete final at that moment.
    PRINTED_PATH_IS_A_COMPLETE_FINAL = "printed_path_is_a_complete_final",
}

impl InvariantName {
    /// A name known at compile time.
    pub const fn new_static(name: &'static str) -> Self {
        InvariantName(Cow::Borrowed(name))
    }

    /// Any name, e.g. one read from a record of a newer suite.
    pub fn new(name: impl Into<String>) -> Self {
        InvariantName(Cow::Owned(name.into()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of a compile-time constant, as `&'static str` (`None` for a name read at run time).
    pub const fn as_static(&self) -> Option<&'static str> {
        match &self.0 {
            Cow::Borrowed(name) => Some(name),
            Cow::Owned(_) => None,
        }
    }
}

impl fmt::Display for InvariantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::ops::Deref for InvariantName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for InvariantName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for InvariantName {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<InvariantName> for str {
    fn eq(&self, other: &InvariantName) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<InvariantName> for &str {
    fn eq(&self, other: &InvariantName) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<InvariantName> for String {
    fn eq(&self, other: &InvariantName) -> bool {
        self.as_str() == other.as_str()
    }
}

impl From<&str> for InvariantName {
    fn from(name: &str) -> Self {
        InvariantName::new(name)
    }
}

impl From<String> for InvariantName {
    fn from(name: String) -> Self {
        InvariantName::new(name)
    }
}

impl From<InvariantName> for String {
    fn from(name: InvariantName) -> Self {
        name.0.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_from_a_record_equal_the_constants_and_unknown_ones_survive() {
        let known: InvariantName = serde_json::from_str("\"no_partial_content\"").expect("json");
        assert_eq!(known, InvariantName::NO_PARTIAL_CONTENT);
        let newer: InvariantName = serde_json::from_str("\"a_future_invariant\"").expect("json");
        assert_eq!(newer.as_str(), "a_future_invariant");
        assert_eq!(serde_json::to_string(&InvariantName::NO_LOCK_HELD).expect("json"), "\"no_lock_held\"");
    }

    #[test]
    fn every_known_name_is_distinct_and_static() {
        let names: std::collections::BTreeSet<&str> =
            InvariantName::KNOWN.iter().map(|n| n.as_str()).collect();
        assert_eq!(names.len(), InvariantName::KNOWN.len());
        assert!(InvariantName::KNOWN.iter().all(|n| n.as_static().is_some()));
    }
}
