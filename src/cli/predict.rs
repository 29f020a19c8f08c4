//! `adaresnet predict`: being written.

use clap::Args;

use super::GpuArgs;

#[derive(Args, Debug)]
pub struct PredictArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
}

pub fn run(_args: PredictArgs) -> anyhow::Result<()> {
    anyhow::bail!("`adaresnet predict` is not written yet")
}
