//! Disproportionality of one adverse-event kind in one group (a lot, a
//! solution, a site, a practitioner, a guidance method) against the rest of
//! the clinic: pure arithmetic over counts, no store, no clock.
//!
//! Two measures, both in every answer:
//! - the **proportional reporting ratio** with its 95% interval and the
//!   Yates-corrected χ² of the 2×2 table (Evans et al. 2001: a signal needs
//!   PRR ≥ 2, χ² ≥ 4 and N ≥ 3);
//! - the **information component** of the BCPNN (Bate et al. 1998; the
//!   credibility bound by Norén et al.'s closed-form approximation), a
//!   Bayesian shrinkage measure: with few events it stays near 0, so a
//!   sparse count does not shout. Its lower 95% bound must be above 0. The
//!   expected count is the group's injections at the rest of the clinic's
//!   rate, not at a rate that includes the group.
//!
//! The denominator is injections (the clinic knows them, unlike a
//! spontaneous-reporting database), and the comparison is always the rest
//! of the clinic, never a baseline that includes the group itself.
//!
//! A signal is raised when the criteria hold for the group over the
//! rolling window (its injections given in the last
//! [`Criteria::window_days`] days by the stream's clock, and the adverse
//! events after them) against the rest of the clinic over all time (a
//! disjoint comparator: the longer history estimates the background), and
//! cleared when they no longer do: a cluster of last spring does not stay
//! raised for good. The all-time figures are shown beside the window's.

use serde::{Deserialize, Serialize};

/// `events` per 1,000 of `n` (0 when `n` is 0).
pub fn per_1000(events: u64, n: u64) -> f64 {
    if n == 0 {
        0.0
    } else {
        events as f64 * 1000.0 / n as f64
    }
}

/// The 95% Wilson score interval of `events` in `n`, per 1,000.
pub fn wilson_per_1000(events: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 0.0);
    }
    let (n, z) = (n as f64, 1.959_963_984_540_054_f64);
    let p = (events as f64 / n).min(1.0);
    let denominator = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denominator;
    let half = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / denominator;
    (
        (centre - half).max(0.0) * 1000.0,
        (centre + half).min(1.0) * 1000.0,
    )
}

/// The 2×2 table of one kind in one group.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Table {
    /// Adverse events of the kind after the group's injections.
    pub group_events: u64,
    /// The group's injections.
    pub group_injections: u64,
    /// Adverse events of the kind after the rest of the clinic's injections.
    pub rest_events: u64,
    /// The rest of the clinic's injections.
    pub rest_injections: u64,
}

/// What the table says.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Measures {
    /// The group's rate per 1,000 injections.
    pub group_rate_per_1000: f64,
    /// The rest of the clinic's rate per 1,000 injections.
    pub rest_rate_per_1000: f64,
    /// Proportional reporting ratio (group rate / rest rate); `None` when
    /// either side has no injections or neither has events; infinite (JSON
    /// `null`) when only the group has events.
    pub prr: Option<f64>,
    /// Its 95% interval (log-normal).
    pub prr_low: Option<f64>,
    /// See [`Measures::prr_low`].
    pub prr_high: Option<f64>,
    /// Yates-corrected χ² of the 2×2 table.
    pub chi_square: f64,
    /// Information component: log2 of observed over expected (at the rest's
    /// rate), both shrunk by 0.5.
    pub ic: f64,
    /// Lower end of its 95% credibility interval.
    pub ic025: f64,
}

/// The raising rule, in one place.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Criteria {
    /// PRR at least this (Evans: 2).
    pub prr_min: f64,
    /// χ² at least this (Evans: 4).
    pub chi_square_min: f64,
    /// At least this many events in the group (Evans: 3).
    pub events_min: u64,
    /// IC025 above this (0: the lower bound excludes "as expected").
    pub ic025_above: f64,
    /// The rolling window, in days of the stream's clock (90).
    #[serde(default = "default_window_days")]
    pub window_days: i64,
}

fn default_window_days() -> i64 {
    90
}

impl Criteria {
    /// The first day (since 1970-01-01, UTC) in the window that ends on `today`.
    pub fn window_from(&self, today: i64) -> i64 {
        today - self.window_days.max(1) + 1
    }
}

impl Default for Criteria {
    fn default() -> Self {
        Self {
            prr_min: 2.0,
            chi_square_min: 4.0,
            events_min: 3,
            ic025_above: 0.0,
            window_days: default_window_days(),
        }
    }
}

impl Table {
    /// The measures of this table.
    pub fn measures(&self) -> Measures {
        let (a, n1) = (self.group_events as f64, self.group_injections as f64);
        let (c, n2) = (self.rest_events as f64, self.rest_injections as f64);
        let per_1000 = |events: f64, n: f64| if n > 0.0 { 1000.0 * events / n } else { 0.0 };
        let (prr, prr_low, prr_high) = if a > 0.0 && c > 0.0 && n1 > 0.0 && n2 > 0.0 {
            let prr = (a / n1) / (c / n2);
            let se = (1.0 / a - 1.0 / n1 + 1.0 / c - 1.0 / n2).max(0.0).sqrt();
            (
                Some(prr),
                Some((prr.ln() - 1.96 * se).exp()),
                Some((prr.ln() + 1.96 * se).exp()),
            )
        } else if a > 0.0 && c == 0.0 && n2 > 0.0 {
            // Events only in the group: the ratio is unbounded.
            (Some(f64::INFINITY), None, None)
        } else {
            (None, None, None)
        };
        // 2×2: [a, b; c, d] with b, d the injections without the event.
        let (b, d) = ((n1 - a).max(0.0), (n2 - c).max(0.0));
        let n = a + b + c + d;
        let chi_square =
            if n > 0.0 && (a + b) > 0.0 && (c + d) > 0.0 && (a + c) > 0.0 && (b + d) > 0.0 {
                let yates = ((a * d - b * c).abs() - n / 2.0).max(0.0);
                n * yates * yates / ((a + b) * (c + d) * (a + c) * (b + d))
            } else {
                0.0
            };
        // Expected events in the group if it were like the rest of the clinic.
        let expected = if n2 > 0.0 { n1 * c / n2 } else { 0.0 };
        let ic = ((a + 0.5) / (expected + 0.5)).log2();
        let ic025 = ic - 3.3 * (a + 0.5).powf(-0.5) - 2.0 * (a + 0.5).powf(-1.5);
        Measures {
            group_rate_per_1000: per_1000(a, n1),
            rest_rate_per_1000: per_1000(c, n2),
            prr,
            prr_low,
            prr_high,
            chi_square,
            ic,
            ic025,
        }
    }

    /// Whether the table meets `criteria`: both the Evans criteria and the
    /// IC's lower bound.
    pub fn signals(&self, criteria: &Criteria) -> bool {
        let m = self.measures();
        self.group_events >= criteria.events_min
            && m.prr.is_some_and(|prr| prr >= criteria.prr_min)
            && m.chi_square >= criteria.chi_square_min
            && m.ic025 > criteria.ic025_above
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(a: u64, n1: u64, c: u64, n2: u64) -> Table {
        Table {
            group_events: a,
            group_injections: n1,
            rest_events: c,
            rest_injections: n2,
        }
    }

    #[test]
    fn the_measures_match_a_worked_example() {
        // 6 of 200 against 10 of 1,800: PRR 5.4, Yates χ² ≈ 10.65.
        let m = table(6, 200, 10, 1800).measures();
        assert!((m.prr.unwrap() - 5.4).abs() < 1e-9);
        assert!((m.chi_square - 10.648).abs() < 0.01, "{}", m.chi_square);
        assert!(
            m.prr_low.unwrap() > 1.9 && m.prr_high.unwrap() < 15.0,
            "{m:?}"
        );
        assert!((m.group_rate_per_1000 - 30.0).abs() < 1e-9);
        // Expected at the rest's rate: 200 × 10 / 1,800.
        let expected = 200.0 * 10.0 / 1800.0;
        assert!((m.ic - (6.5f64 / (expected + 0.5)).log2()).abs() < 1e-9);
        assert!((m.ic025 - 0.597).abs() < 0.001, "{}", m.ic025);
        assert!(table(6, 200, 10, 1800).signals(&Criteria::default()));
    }

    #[test]
    fn a_group_that_is_half_the_clinic_can_still_signal_against_the_rest() {
        // Half the injections, nine of the ten infections: against a
        // baseline that included the group it could never reach factor 2.
        assert!(table(9, 1000, 1, 1000).signals(&Criteria::default()));
    }

    #[test]
    fn sparse_counts_do_not_shout() {
        // 3 events where 0.5 were expected: Evans's criteria pass, the IC's
        // lower bound does not.
        let t = table(3, 100, 5, 1000);
        let m = t.measures();
        assert!(m.prr.unwrap() >= 2.0 && m.chi_square >= 4.0, "{m:?}");
        assert!(m.ic025 < 0.0, "{m:?}");
        assert!(!t.signals(&Criteria::default()));
        // Two events never signal, however rare the kind elsewhere.
        assert!(!table(2, 10, 0, 5000).signals(&Criteria::default()));
    }

    #[test]
    fn as_expected_is_no_signal_and_empty_tables_do_not_divide_by_zero() {
        assert!(!table(30, 1000, 30, 1000).signals(&Criteria::default()));
        let m = table(0, 0, 0, 0).measures();
        assert_eq!((m.prr, m.chi_square), (None, 0.0));
        assert!(m.ic.is_finite() && m.ic025.is_finite());
    }
}
