//! The exported report (`icsctl audit replay … --export FILE`): a JSON file holding the
//! domain's own report, from which its canonical bytes — and so its fingerprint — are rebuilt
//! exactly.
//!
//! ```json
//! {
//!   "format": "ics-report-export/1",
//!   "kind": "position/v1",
//!   "fingerprint": "<SHA-256 of the canonical bytes, lowercase hex>",
//!   "report": { "Position": { "basis": { … }, "members": [ … ], … } }
//! }
//! ```
//!
//! `report` is `domain::position::AnyReport` as serde writes it: integers for pence, codes
//! and names as text, nothing rounded, every field of the canonical encoding present. Reading
//! it back gives the same report, whose canonical bytes are the ones the replay computed (a
//! test checks every report of the demo year). `kind` and `fingerprint` are there for people
//! and scripts; reading trusts neither: the kind is the report's own and the fingerprint is
//! recomputed, and a file whose stated fingerprint differs from its content's was changed
//! after it was exported.

use std::path::Path;

use anyhow::Context;
use domain::position::{AnyReport, canonical};
use serde::{Deserialize, Serialize};

/// The `format` of an export written by this version.
pub const FORMAT: &str = "ics-report-export/1";

#[derive(Serialize, Deserialize)]
struct File {
    format: String,
    kind: String,
    fingerprint: String,
    report: AnyReport,
}

/// A report read from an export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exported {
    pub report: AnyReport,
    /// SHA-256 of the report's canonical bytes, computed from the file's content.
    pub fingerprint: [u8; 32],
    /// The fingerprint the file states (its `fingerprint` field), if it is 64 hex digits.
    pub stated: Option<[u8; 32]>,
}

impl Exported {
    /// Whether the content is the report the file says it is (it was not edited).
    pub fn is_as_exported(&self) -> bool {
        self.stated == Some(self.fingerprint)
    }
}

/// The export of `report`, as text.
pub fn to_text(report: &AnyReport) -> anyhow::Result<String> {
    let fingerprint = report
        .fingerprint()
        .context("the report has no canonical bytes")?;
    let file = File {
        format: FORMAT.to_string(),
        kind: report.kind().canonical_kind().to_string(),
        fingerprint: canonical::hex(&fingerprint),
        report: report.clone(),
    };
    Ok(serde_json::to_string_pretty(&file)? + "\n")
}

/// Reads an export from text.
pub fn from_text(text: &str) -> anyhow::Result<Exported> {
    let file: File = serde_json::from_str(text).context(
        "not an exported report (icsctl audit replay --export writes them), or it was damaged",
    )?;
    anyhow::ensure!(
        file.format == FORMAT,
        "format '{}' is not {FORMAT}, the one this icsctl reads",
        file.format
    );
    let fingerprint = file
        .report
        .fingerprint()
        .context("the report has no canonical bytes")?;
    let stated = hex::decode(file.fingerprint.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok());
    Ok(Exported {
        report: file.report,
        fingerprint,
        stated,
    })
}

pub fn write(path: &Path, report: &AnyReport) -> anyhow::Result<()> {
    std::fs::write(path, to_text(report)?).with_context(|| format!("writing {}", path.display()))
}

pub fn read(path: &Path) -> anyhow::Result<Exported> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    from_text(&text).with_context(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::{demo, every_kind};
    use domain::position::AsOf;

    /// Every report of the demo year, at every month and at several points of the log, reads
    /// back from its export into the same report with the same canonical bytes.
    #[test]
    fn every_demo_report_reads_back_byte_for_byte() {
        let (log, projection) = demo();
        let last = log.last().map(|(r, _)| r.sequence).expect("a log");
        let year = domain::FinancialYear::new(2018).expect("year");
        let mut checked = 0;
        for sequence in [1, 40, last / 2, last] {
            let snapshot = projection.at(AsOf::Sequence(sequence)).expect("snapshot");
            for month in domain::Month::all() {
                for kind in every_kind() {
                    let Ok(report) = snapshot.report(kind, year, month) else {
                        // Not established yet at sequence 1.
                        continue;
                    };
                    let text = to_text(&report).expect("exports");
                    let read = from_text(&text).expect("reads");
                    assert_eq!(read.report, report, "{kind} {month} at {sequence}");
                    assert_eq!(
                        read.report.canonical_bytes().expect("bytes"),
                        report.canonical_bytes().expect("bytes")
                    );
                    assert_eq!(read.fingerprint, report.fingerprint().expect("fingerprint"));
                    assert!(read.is_as_exported());
                    checked += 1;
                }
            }
        }
        assert!(checked > 300, "{checked} reports");
    }

    #[test]
    fn an_edited_export_is_told_from_one_as_exported() {
        let (_, projection) = demo();
        let report = projection
            .at(AsOf::Latest)
            .and_then(|s| {
                s.report(
                    domain::position::ReportKind::Position,
                    domain::FinancialYear::new(2018).expect("year"),
                    domain::Month::new(12).expect("month"),
                )
            })
            .expect("report");
        let text = to_text(&report).expect("exports");
        let mut value: serde_json::Value = serde_json::from_str(&text).expect("json");
        let actual = &mut value["report"]["Position"]["control_total"]["actual_ytd"];
        *actual = serde_json::json!(actual.as_i64().expect("pence") - 100);
        let edited = from_text(&value.to_string()).expect("reads");
        assert!(!edited.is_as_exported());
        assert_eq!(
            edited.stated,
            Some(report.fingerprint().expect("fingerprint"))
        );
        assert_ne!(
            edited.fingerprint,
            report.fingerprint().expect("fingerprint")
        );

        for (bad, why) in [
            ("{}", "not an exported report"),
            ("[1, 2]", "not an exported report"),
            ("", "not an exported report"),
        ] {
            let error = from_text(bad).expect_err(bad);
            assert!(format!("{error:#}").contains(why), "{error:#}");
        }
        value["format"] = serde_json::json!("ics-report-export/9");
        let error = from_text(&value.to_string()).expect_err("format");
        assert!(error.to_string().contains("ics-report-export/9"), "{error}");
        let mut floats: serde_json::Value = serde_json::from_str(&text).expect("json");
        floats["report"]["Position"]["control_total"]["actual_ytd"] = serde_json::json!(1.5);
        assert!(
            from_text(&floats.to_string()).is_err(),
            "pence are integers"
        );
    }
}
