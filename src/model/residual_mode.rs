//! How each block weighs its shortcut: the paper's learnable `w` and its baselines.

use std::fmt;
use std::str::FromStr;

use anyhow::{anyhow, bail};

use crate::graph::Init;

/// How a learnable `w` starts (`--w-init`).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum WInit {
    Zeros,
    Ones,
    Normal(f32),
    Const(f32),
}

impl WInit {
    pub fn init(self) -> Init {
        match self {
            WInit::Zeros => Init::Zeros,
            WInit::Ones => Init::Ones,
            WInit::Normal(s) => Init::Normal(s),
            WInit::Const(k) => Init::Const(k),
        }
    }
}

impl FromStr for WInit {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "zeros" | "zero" => WInit::Zeros,
            "ones" | "one" => WInit::Ones,
            _ if s.starts_with("normal:") => {
                let sigma: f32 = s[7..].parse().map_err(|_| {
                    anyhow!("--w-init '{s}': SIGMA in normal:SIGMA must be a number")
                })?;
                if !(sigma.is_finite() && sigma >= 0.0) {
                    bail!("--w-init '{s}': SIGMA must be a finite number >= 0, e.g. normal:0.05");
                }
                WInit::Normal(sigma)
            }
            _ => {
                let k: f32 = s.parse().map_err(|_| {
                    anyhow!("--w-init '{s}': use zeros, ones, normal:SIGMA or a number")
                })?;
                if !k.is_finite() {
                    bail!("--w-init '{s}': the initial w must be a finite number");
                }
                WInit::Const(k)
            }
        })
    }
}

impl fmt::Display for WInit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WInit::Zeros => write!(f, "zeros"),
            WInit::Ones => write!(f, "ones"),
            WInit::Normal(s) => write!(f, "normal:{s}"),
            WInit::Const(k) => write!(f, "{k}"),
        }
    }
}

/// `--residual`: the comparison the paper makes, plus a per-channel extension.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ResidualMode {
    /// One learnable scalar per block, all starting from `init`.
    Ada(WInit),
    /// The authors' "two separate weights": 0 in identity blocks, N(0, 0.05) in downsampling ones.
    Ada2,
    /// Plain ResNet: w = 1, not trained.
    Standard,
    /// w = K, not trained (the paper's baseline uses 2).
    Fixed(f32),
    /// One learnable w per output channel.
    AdaChannel(WInit),
}

impl ResidualMode {
    /// (per_channel, trainable, init) of the `w` of a block.
    pub fn weight(self, downsampling: bool) -> (bool, bool, Init) {
        match self {
            ResidualMode::Ada(i) => (false, true, i.init()),
            ResidualMode::Ada2 if downsampling => (false, true, Init::Normal(0.05)),
            ResidualMode::Ada2 => (false, true, Init::Zeros),
            ResidualMode::Standard => (false, false, Init::Ones),
            ResidualMode::Fixed(k) => (false, false, Init::Const(k)),
            ResidualMode::AdaChannel(i) => (true, true, i.init()),
        }
    }

    /// Parses `--residual` with `--w-init` applying to `ada` and `ada-channel`.
    pub fn parse(s: &str, w_init: WInit) -> anyhow::Result<Self> {
        Ok(match s {
            "ada" => ResidualMode::Ada(w_init),
            "ada2" => ResidualMode::Ada2,
            "standard" => ResidualMode::Standard,
            "ada-channel" => ResidualMode::AdaChannel(w_init),
            _ if s.starts_with("fixed:") => {
                let k: f32 = s[6..]
                    .parse()
                    .map_err(|_| anyhow!("--residual '{s}': K in fixed:K must be a number"))?;
                if !k.is_finite() {
                    bail!("--residual '{s}': K in fixed:K must be a finite number");
                }
                ResidualMode::Fixed(k)
            }
            _ => bail!("--residual '{s}': use ada, ada2, standard, fixed:K or ada-channel"),
        })
    }

    /// A short name for file names and report tables.
    pub fn label(&self) -> String {
        match self {
            ResidualMode::Ada(i) => format!("ada({i})"),
            ResidualMode::Ada2 => "ada2".into(),
            ResidualMode::Standard => "standard".into(),
            ResidualMode::Fixed(k) => format!("fixed:{k}"),
            ResidualMode::AdaChannel(i) => format!("ada-channel({i})"),
        }
    }
}
