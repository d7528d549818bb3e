//! What a regulator compares across systems: operational metrics as growth against the same
//! period of a baseline year, beside the same growth for every other system together ("the
//! rest of the country"), A&E four-hour performance, and rankings.
//!
//! Pure arithmetic over a [`MetricBook`] that a consumer fills from `MetricReported` events of
//! many systems. Integers only: growth is in basis points of the baseline, rounded half away
//! from zero, computed in `i128` so no count can overflow it. A later report for the same
//! system, member, period and metric replaces the earlier one (a correction).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{MemberCode, SystemId};
use crate::money::BasisPoints;
use crate::period::{FinancialYear, Period, Quarter};
use crate::system::Metric;

/// Every metric reported, by system, period, metric and member.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricBook {
    values: BTreeMap<(SystemId, Period, Metric, MemberCode), i64>,
}

/// A quarter of one financial year.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QuarterOf {
    pub year: FinancialYear,
    pub quarter: Quarter,
}

/// A count now against the same quarter of the baseline year.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Growth {
    pub current: i64,
    pub baseline: i64,
    /// (current − baseline) / baseline, in basis points (260 = 2.60%), half away from zero.
    pub growth_bp: i64,
}

/// One system's growth beside the rest of the country's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    pub system: Growth,
    /// Every other system that reported both quarters, summed; `None` if there is none.
    pub rest: Option<Growth>,
    /// The systems summed into `rest`, in id order.
    pub rest_systems: Vec<SystemId>,
}

/// Where one system ranks on one measure (1 = best).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranked {
    pub rank: u32,
    pub system: SystemId,
    /// The measure: growth in bp for counts (lower is better), performance in bp for A&E
    /// (higher is better).
    pub value_bp: i64,
}

impl MetricBook {
    /// Records a report; a later report of the same fact replaces it.
    pub fn record(
        &mut self,
        system: &SystemId,
        member: &MemberCode,
        period: Period,
        metric: Metric,
        value: i64,
    ) {
        self.values
            .insert((system.clone(), period, metric, *member), value);
    }

    /// Adds every report of `other` (a book of other systems, or later reports of the same
    /// ones): where both hold the same fact, `other`'s replaces this one's.
    pub fn merge(&mut self, other: &MetricBook) {
        self.values
            .extend(other.values.iter().map(|(k, v)| (k.clone(), *v)));
    }

    /// Systems with any report, in id order.
    pub fn systems(&self) -> Vec<SystemId> {
        let mut systems: Vec<SystemId> = self.values.keys().map(|k| k.0.clone()).collect();
        systems.dedup();
        systems
    }

    fn quarter_values(
        &self,
        system: &SystemId,
        at: QuarterOf,
        metric: Metric,
    ) -> impl Iterator<Item = i64> + '_ {
        let system = system.clone();
        at.quarter.months().flat_map(move |month| {
            let period = Period::new(at.year, month);
            let system = system.clone();
            self.values
                .iter()
                .filter(move |((s, p, m, _), _)| *s == system && *p == period && *m == metric)
                .map(|(_, value)| *value)
        })
    }

    /// The quarter's total of a count metric over the system's members and months; `None`
    /// if nothing was reported for it.
    pub fn quarter_total(&self, system: &SystemId, at: QuarterOf, metric: Metric) -> Option<i128> {
        let mut values = self.quarter_values(system, at, metric).peekable();
        values.peek()?;
        Some(values.map(i128::from).sum())
    }

    /// The quarter's A&E four-hour performance: the mean of the member-months reported, in
    /// basis points, half away from zero; `None` if none were.
    pub fn quarter_ae(&self, system: &SystemId, at: QuarterOf) -> Option<BasisPoints> {
        let (sum, count) = self
            .quarter_values(system, at, Metric::AeFourHour)
            .fold((0i128, 0i128), |(sum, count), v| {
                (sum + i128::from(v), count + 1)
            });
        let mean = divide_rounded(sum, count)?;
        u32::try_from(mean).ok().map(BasisPoints::new)
    }

    /// `system`'s growth of a count metric in `at` against the same quarter of `baseline`,
    /// beside every other system's together. `None` if the system lacks either quarter or
    /// its baseline is zero.
    pub fn compare(
        &self,
        system: &SystemId,
        metric: Metric,
        at: QuarterOf,
        baseline: FinancialYear,
    ) -> Option<Comparison> {
        let then = QuarterOf {
            year: baseline,
            quarter: at.quarter,
        };
        let pair = |s: &SystemId| {
            Some((
                self.quarter_total(s, at, metric)?,
                self.quarter_total(s, then, metric)?,
            ))
        };
        let (current, base) = pair(system)?;
        let own = growth(current, base)?;
        let mut rest_systems = Vec::new();
        let (mut rest_current, mut rest_base) = (0i128, 0i128);
        for other in self.systems().into_iter().filter(|s| s != system) {
            if let Some((current, base)) = pair(&other) {
                rest_current += current;
                rest_base += base;
                rest_systems.push(other);
            }
        }
        let rest = if rest_systems.is_empty() {
            None
        } else {
            growth(rest_current, rest_base)
        };
        Some(Comparison {
            system: own,
            rest,
            rest_systems,
        })
    }

    /// Every system with both quarters, ranked by growth of a count metric, lowest first;
    /// ties share a rank and are listed in id order.
    pub fn rank_growth(
        &self,
        metric: Metric,
        at: QuarterOf,
        baseline: FinancialYear,
    ) -> Vec<Ranked> {
        let measured = self
            .systems()
            .into_iter()
            .filter_map(|s| {
                let growth = self.compare(&s, metric, at, baseline)?.system.growth_bp;
                Some((s, growth))
            })
            .collect();
        rank(measured, false)
    }

    /// Every system reporting A&E in the quarter, ranked by performance, highest first.
    pub fn rank_ae(&self, at: QuarterOf) -> Vec<Ranked> {
        let measured = self
            .systems()
            .into_iter()
            .filter_map(|s| {
                let ae = self.quarter_ae(&s, at)?;
                Some((s, i64::from(ae.get())))
            })
            .collect();
        rank(measured, true)
    }
}

/// Growth in basis points of `baseline`; `None` for a zero baseline or a result that does
/// not fit in i64.
pub fn growth(current: i128, baseline: i128) -> Option<Growth> {
    let growth_bp = divide_rounded((current - baseline) * 10_000, baseline)?;
    Some(Growth {
        current: i64::try_from(current).ok()?,
        baseline: i64::try_from(baseline).ok()?,
        growth_bp: i64::try_from(growth_bp).ok()?,
    })
}

/// `numerator / denominator` rounded half away from zero; `None` for a zero denominator.
fn divide_rounded(numerator: i128, denominator: i128) -> Option<i128> {
    if denominator == 0 {
        return None;
    }
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    let away = remainder.abs() * 2 >= denominator.abs();
    let negative = (numerator < 0) != (denominator < 0);
    Some(match (away, negative) {
        (false, _) => quotient,
        (true, false) => quotient + 1,
        (true, true) => quotient - 1,
    })
}

/// Ranks systems by a measured value, best first (the highest when `higher_is_better`, else
/// the lowest); ties share a rank (1, 1, 3) and are listed in id order. For measures the book
/// does not hold (a financial variance in pence, say).
pub fn rank(mut measured: Vec<(SystemId, i64)>, higher_is_better: bool) -> Vec<Ranked> {
    measured.sort_by(|(a_id, a), (b_id, b)| {
        let order = if higher_is_better { b.cmp(a) } else { a.cmp(b) };
        order.then_with(|| a_id.cmp(b_id))
    });
    let mut ranked: Vec<Ranked> = Vec::with_capacity(measured.len());
    for (index, (system, value_bp)) in measured.into_iter().enumerate() {
        let rank = match ranked.last() {
            Some(previous) if previous.value_bp == value_bp => previous.rank,
            _ => u32::try_from(index + 1).unwrap_or(u32::MAX),
        };
        ranked.push(Ranked {
            rank,
            system,
            value_bp,
        });
    }
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::period::Month;

    fn system(id: &str) -> SystemId {
        SystemId::new(id).expect("id")
    }

    fn member(code: &str) -> MemberCode {
        MemberCode::parse(code).expect("code")
    }

    fn year(y: u32) -> FinancialYear {
        FinancialYear::new(y).expect("year")
    }

    fn q2(y: u32) -> QuarterOf {
        QuarterOf {
            year: year(y),
            quarter: Quarter::new(2).expect("quarter"),
        }
    }

    /// Reports `total` emergency admissions for Q2 (July–September) of `y`, split over two
    /// members and three months.
    fn admissions(book: &mut MetricBook, s: &str, y: u32, total: i64) {
        q2_count(book, s, Metric::EmergencyAdmissions, y, total);
    }

    /// Reports `total` emergency bed days for Q2 of `y`, split as [`admissions`] splits.
    fn bed_days(book: &mut MetricBook, s: &str, y: u32, total: i64) {
        q2_count(book, s, Metric::EmergencyBedDays, y, total);
    }

    /// Reports a count `metric` totalling `total` for Q2 of `y`, split over two members and
    /// three months.
    fn q2_count(book: &mut MetricBook, s: &str, metric: Metric, y: u32, total: i64) {
        let months = [4, 5, 6];
        for (i, month) in months.iter().enumerate() {
            let period = Period::new(year(y), Month::new(*month).expect("month"));
            let share = total / 3 + if i == 0 { total % 3 } else { 0 };
            let first = share / 2;
            book.record(&system(s), &member("AAA"), period, metric, first);
            book.record(&system(s), &member("BBB"), period, metric, share - first);
        }
    }

    /// The seeds' comparison: emergency admissions grew 2.6% in one group of systems against
    /// 4.9% in the rest of England in July–September 2017 (against July–September 2016).
    #[test]
    fn growth_beside_the_rest_of_the_country() {
        let mut book = MetricBook::default();
        admissions(&mut book, "group", 2016, 100_000);
        admissions(&mut book, "group", 2017, 102_600);
        admissions(&mut book, "north", 2016, 600_000);
        admissions(&mut book, "north", 2017, 630_000);
        admissions(&mut book, "south", 2016, 400_000);
        admissions(&mut book, "south", 2017, 419_000);
        let comparison = book
            .compare(
                &system("group"),
                Metric::EmergencyAdmissions,
                q2(2017),
                year(2016),
            )
            .expect("both quarters reported");
        assert_eq!(
            comparison.system,
            Growth {
                current: 102_600,
                baseline: 100_000,
                growth_bp: 260
            }
        );
        assert_eq!(
            comparison.rest,
            Some(Growth {
                current: 1_049_000,
                baseline: 1_000_000,
                growth_bp: 490
            })
        );
        assert_eq!(comparison.rest_systems, [system("north"), system("south")]);
        let ranking = book.rank_growth(Metric::EmergencyAdmissions, q2(2017), year(2016));
        let order: Vec<(u32, &str, i64)> = ranking
            .iter()
            .map(|r| (r.rank, r.system.as_str(), r.value_bp))
            .collect();
        assert_eq!(
            order,
            [(1, "group", 260), (2, "south", 475), (3, "north", 500)]
        );
    }

    /// Bed days grow against their own baseline, beside the bed days of the rest of the
    /// country; admissions reported alongside, and a system without a baseline quarter of bed
    /// days, change nothing.
    #[test]
    fn emergency_bed_days_grow_beside_the_rest_of_the_country_and_rank_lowest_first() {
        let mut book = MetricBook::default();
        for (s, then, now) in [
            ("kav", 240_000, 246_000),
            ("north", 500_000, 519_000),
            ("south", 260_000, 262_900),
        ] {
            bed_days(&mut book, s, 2016, then);
            bed_days(&mut book, s, 2017, now);
        }
        // West reports bed days only for 2017: it has no growth and is not in the rest.
        bed_days(&mut book, "west", 2017, 300_000);
        // Admissions, growing in another order, for every system.
        for (s, then, now) in [
            ("kav", 100_000, 110_000),
            ("north", 100_000, 100_000),
            ("south", 100_000, 105_000),
            ("west", 200_000, 199_000),
        ] {
            admissions(&mut book, s, 2016, then);
            admissions(&mut book, s, 2017, now);
        }
        let bed_days_of =
            |s: &str| book.compare(&system(s), Metric::EmergencyBedDays, q2(2017), year(2016));

        // 6,000 / 240,000 = 2.50%; the rest: 21,900 / 760,000 = 2.8816% → 2.88%.
        let kav = bed_days_of("kav").expect("both quarters reported");
        assert_eq!(
            kav.system,
            Growth {
                current: 246_000,
                baseline: 240_000,
                growth_bp: 250
            }
        );
        assert_eq!(
            kav.rest,
            Some(Growth {
                current: 781_900,
                baseline: 760_000,
                growth_bp: 288
            })
        );
        assert_eq!(kav.rest_systems, [system("north"), system("south")]);

        // 19,000 / 500,000 = 3.80%; the rest: 8,900 / 500,000 = 1.78%.
        let north = bed_days_of("north").expect("both quarters reported");
        assert_eq!(north.system.growth_bp, 380);
        assert_eq!(
            north.rest,
            Some(Growth {
                current: 508_900,
                baseline: 500_000,
                growth_bp: 178
            })
        );
        assert_eq!(north.rest_systems, [system("kav"), system("south")]);

        // 2,900 / 260,000 = 1.1154% → 1.12%.
        assert_eq!(bed_days_of("south").map(|c| c.system.growth_bp), Some(112));
        assert_eq!(bed_days_of("west"), None, "no baseline quarter");

        let bed_days_ranking = book.rank_growth(Metric::EmergencyBedDays, q2(2017), year(2016));
        let admissions_ranking =
            book.rank_growth(Metric::EmergencyAdmissions, q2(2017), year(2016));
        fn order(ranking: &[Ranked]) -> Vec<(u32, &str, i64)> {
            ranking
                .iter()
                .map(|r| (r.rank, r.system.as_str(), r.value_bp))
                .collect()
        }
        assert_eq!(
            order(&bed_days_ranking),
            [(1, "south", 112), (2, "kav", 250), (3, "north", 380)]
        );
        assert_eq!(
            order(&admissions_ranking),
            [
                (1, "west", -50),
                (2, "north", 0),
                (3, "south", 500),
                (4, "kav", 1_000)
            ]
        );
    }

    #[test]
    fn a_correction_replaces_the_report_and_missing_quarters_give_no_figure() {
        let mut book = MetricBook::default();
        admissions(&mut book, "group", 2016, 1_000);
        assert_eq!(
            book.compare(
                &system("group"),
                Metric::EmergencyAdmissions,
                q2(2017),
                year(2016)
            ),
            None,
            "no current quarter"
        );
        admissions(&mut book, "group", 2017, 5_000);
        admissions(&mut book, "group", 2017, 1_100); // resubmitted
        let comparison = book
            .compare(
                &system("group"),
                Metric::EmergencyAdmissions,
                q2(2017),
                year(2016),
            )
            .expect("reported");
        assert_eq!(comparison.system.growth_bp, 1_000);
        assert_eq!(comparison.rest, None, "no other system");
        assert!(comparison.rest_systems.is_empty());
    }

    #[test]
    fn ae_performance_is_the_mean_and_ranks_highest_first() {
        let mut book = MetricBook::default();
        for (s, values) in [
            ("kav", [9_100, 9_040, 9_040]),
            ("wes", [8_850, 8_850, 8_851]),
        ] {
            for (month, value) in [4, 5, 6].iter().zip(values) {
                let period = Period::new(year(2018), Month::new(*month).expect("month"));
                book.record(
                    &system(s),
                    &member("KHFT"),
                    period,
                    Metric::AeFourHour,
                    value,
                );
            }
        }
        assert_eq!(
            book.quarter_ae(&system("kav"), q2(2018)),
            Some(BasisPoints::new(9_060))
        );
        // 26,551 / 3 = 8,850.33 → 8,850
        assert_eq!(
            book.quarter_ae(&system("wes"), q2(2018)),
            Some(BasisPoints::new(8_850))
        );
        let ranking = book.rank_ae(q2(2018));
        let ranked: Vec<(u32, &str)> = ranking
            .iter()
            .map(|r| (r.rank, r.system.as_str()))
            .collect();
        assert_eq!(ranked, [(1, "kav"), (2, "wes")]);
    }

    #[test]
    fn rounding_is_half_away_from_zero_and_never_overflows() {
        assert_eq!(divide_rounded(5, 2), Some(3));
        assert_eq!(divide_rounded(-5, 2), Some(-3));
        assert_eq!(divide_rounded(4, 3), Some(1));
        assert_eq!(divide_rounded(-4, 3), Some(-1));
        assert_eq!(divide_rounded(1, 0), None);
        assert_eq!(growth(10, 0), None);
        assert_eq!(growth(0, 10).map(|g| g.growth_bp), Some(-10_000));
        let huge = i128::from(i64::MAX) * 4;
        assert_eq!(growth(huge, 1), None, "beyond i64: no figure, no panic");
    }

    #[test]
    fn books_merge_and_a_later_book_replaces() {
        let mut kav = MetricBook::default();
        admissions(&mut kav, "kav", 2016, 900);
        admissions(&mut kav, "kav", 2017, 990);
        let mut wes = MetricBook::default();
        admissions(&mut wes, "wes", 2016, 100);
        admissions(&mut wes, "wes", 2017, 105);
        let mut all = MetricBook::default();
        all.merge(&kav);
        all.merge(&wes);
        assert_eq!(all.systems(), [system("kav"), system("wes")]);
        let kav_vs_rest = all
            .compare(
                &system("kav"),
                Metric::EmergencyAdmissions,
                q2(2017),
                year(2016),
            )
            .expect("reported");
        assert_eq!(kav_vs_rest.system.growth_bp, 1_000);
        assert_eq!(kav_vs_rest.rest.map(|g| g.growth_bp), Some(500));
        let mut resubmitted = MetricBook::default();
        admissions(&mut resubmitted, "wes", 2017, 110);
        all.merge(&resubmitted);
        let wes_vs_rest = all
            .compare(
                &system("wes"),
                Metric::EmergencyAdmissions,
                q2(2017),
                year(2016),
            )
            .expect("reported");
        assert_eq!(
            wes_vs_rest.system.growth_bp, 1_000,
            "the later report counts"
        );
    }

    #[test]
    fn ties_share_a_rank() {
        let ranked = rank(
            vec![(system("b"), 10), (system("a"), 10), (system("c"), 20)],
            false,
        );
        let got: Vec<(u32, &str)> = ranked.iter().map(|r| (r.rank, r.system.as_str())).collect();
        assert_eq!(got, [(1, "a"), (1, "b"), (3, "c")]);
    }
}
