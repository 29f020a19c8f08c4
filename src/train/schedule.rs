//! Learning-rate schedules: the rate of each step, from the base `--lr`, the step number and
//! the run's total steps. A pure function of those three, so a resumed run continues exactly.

/// `--lr-schedule`: `constant` (the paper's Keras setting) or `cosine` (half a cosine from
/// the base rate down to zero over the whole run, no restarts).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// The same rate every step (the paper's Keras setting)
    #[default]
    Constant,
    /// Half a cosine from --lr down to zero over the whole run
    Cosine,
}

impl LrSchedule {
    /// The flag's value, as `--lr-schedule` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Constant => "constant",
            Self::Cosine => "cosine",
        }
    }

    /// The rate of step `step` (1-based) of `total`: cosine starts at `base` on step 1 and
    /// would reach 0 one step after the last, so every step still moves the parameters.
    pub fn lr_at(self, base: f64, step: u64, total: u64) -> f64 {
        match self {
            Self::Constant => base,
            Self::Cosine => {
                let done = (step.saturating_sub(1)) as f64 / total.max(1) as f64;
                base * 0.5 * (1.0 + (std::f64::consts::PI * done.min(1.0)).cos())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_keeps_the_base_rate() {
        for step in [1, 7, 100] {
            assert_eq!(LrSchedule::Constant.lr_at(0.01, step, 100), 0.01);
        }
    }

    #[test]
    fn cosine_runs_from_the_base_rate_down_towards_zero() {
        let at = |s| LrSchedule::Cosine.lr_at(0.1, s, 100);
        // Exact at the ends and the middle of the half period (f64: 1e-15 covers cos(pi/2)).
        assert_eq!(at(1), 0.1);
        assert!((at(51) - 0.05).abs() < 1e-15);
        let last = at(100);
        assert!(last > 0.0 && last < 0.1 * 1e-3, "last step's rate {last}");
        for s in 1..100 {
            assert!(at(s + 1) < at(s), "not decreasing at step {s}");
        }
    }
}
