//! Adjustments: corrections are never written into the period they name. A correction is
//! posted in an open period and changes that period's figures; this report lists it against
//! the period it names, so the closed period's reader sees what was corrected later without
//! its figures moving.

use serde::{Deserialize, Serialize};

use crate::StreamId;
use crate::ids::{MemberCode, Text};
use crate::money::Pence;
use crate::period::{FinancialYear, Month, Period};

use super::fold::{Correction, CorrectionKind};
use super::snapshot::{Basis, Snapshot};
use super::{Report, ReportError};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedCorrection {
    pub sequence: u64,
    pub recorded_at_us: i64,
    pub stream: StreamId,
    pub kind: CorrectionKind,
    /// The period whose figures it changed.
    pub posted_in: Period,
    /// The period it names.
    pub corrects: Period,
    pub amount: Pence,
    pub payer: Option<MemberCode>,
    pub payee: Option<MemberCode>,
    pub reason: Option<Text>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdjustmentsReport {
    pub basis: Basis,
    /// Corrections naming a period of the year up to the month, wherever they were posted,
    /// in log order. Their money is in the periods they were posted in, not here.
    pub naming_this_year: Vec<ListedCorrection>,
    /// Corrections posted in a period of the year up to the month (their money is in these
    /// figures), in log order.
    pub posted_this_year: Vec<ListedCorrection>,
}

impl Report for AdjustmentsReport {
    const KIND: &'static str = "adjustments/v1";
}

impl Snapshot<'_> {
    /// The corrections naming, and posted in, `year` up to `month`.
    pub fn adjustments(
        &self,
        year: FinancialYear,
        month: Month,
    ) -> Result<AdjustmentsReport, ReportError> {
        let basis = self.basis(year, month)?;
        let (from, to) = Snapshot::ytd(year, month);
        let corrections = &self.projection.corrections;
        let visible =
            &corrections[..corrections.partition_point(|c| c.sequence <= self.sequence())];
        let in_range = |p: Period| p >= from && p <= to;
        let list = |keep: &dyn Fn(&Correction) -> bool| -> Vec<ListedCorrection> {
            visible
                .iter()
                .filter(|c| keep(c))
                .map(|c| self.listed(c))
                .collect()
        };
        Ok(AdjustmentsReport {
            basis,
            naming_this_year: list(&|c| in_range(c.corrects)),
            posted_this_year: list(&|c| in_range(c.posted_in)),
        })
    }

    fn listed(&self, correction: &Correction) -> ListedCorrection {
        let timeline = &self.projection.timeline;
        let recorded_at_us = timeline
            .binary_search_by_key(&correction.sequence, |r| r.sequence)
            .ok()
            .and_then(|i| timeline.get(i))
            .map_or(0, |r| r.recorded_at_us);
        ListedCorrection {
            sequence: correction.sequence,
            recorded_at_us,
            stream: correction.stream.clone(),
            kind: correction.kind,
            posted_in: correction.posted_in,
            corrects: correction.corrects,
            amount: correction.amount,
            payer: correction.payer,
            payee: correction.payee,
            reason: correction.reason.clone(),
        }
    }
}
