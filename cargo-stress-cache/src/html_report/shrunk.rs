//! The "shrunk" section: for each minimal run `shrink` saved beside a record of the run
//! ([`crate::inputs::SHRUNK_SUFFIX`]), the original's timeline and the shrunk plan's side by side, with
//! both plans in one line each.

use std::path::Path;

use serde::Serialize;
use stress_cache_metadata::ScenarioRecord;

use super::charts;
use super::view::Svg;
use crate::inputs::{Inputs, SHRUNK_SUFFIX};

/// An original run and its shrunk plan.
#[derive(Debug, Serialize)]
pub struct ShrunkView {
    /// Scenario name.
    pub scenario: String,
    /// Mutant, if any.
    pub mutant: Option<String>,
    /// The record shrunk (file name).
    pub record: String,
    /// What the shrunk run still violates.
    pub violated: String,
    /// Each side: label, plan summary, process rows, timeline.
    pub sides: Vec<ShrunkSide>,
}

/// One side of a [`ShrunkView`].
#[derive(Debug, Serialize)]
pub struct ShrunkSide {
    /// `original` or `shrunk`.
    pub label: &'static str,
    /// The plan in one line.
    pub plan: String,
    /// Its timeline.
    pub svg: Svg,
}

/// The section's entries, one per shrunk record; the original is the record it was saved beside.
pub fn views(inputs: Option<&Inputs>) -> Vec<ShrunkView> {
    let Some(inputs) = inputs else { return Vec::new() };
    inputs
        .shrunk
        .iter()
        .map(|(path, shrunk)| {
            let original = original_of(path, inputs);
            let mut sides = Vec::new();
            if let Some(o) = original {
                sides.push(side("original", o));
            }
            sides.push(side("shrunk", shrunk));
            ShrunkView {
                scenario: shrunk.scenario.clone(),
                mutant: shrunk.mutant.clone(),
                record: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                violated: shrunk.violated().join(", "),
                sides,
            }
        })
        .collect()
}

fn original_of<'a>(shrunk: &Path, inputs: &'a Inputs) -> Option<&'a ScenarioRecord> {
    let name = shrunk.file_name()?.to_str()?;
    let original = shrunk.with_file_name(format!("{}.json", name.strip_suffix(SHRUNK_SUFFIX)?));
    inputs.records.iter().find(|(p, _)| *p == original).map(|(_, r)| r)
}

fn side(label: &'static str, record: &ScenarioRecord) -> ShrunkSide {
    let plan = record.plan.as_ref().map(|p| p.summary()).unwrap_or_else(|| "(no plan recorded)".into());
    ShrunkSide { label, plan, svg: charts::timeline(record).into() }
}
