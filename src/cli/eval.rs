//! `adaresnet eval`: being written.

use clap::Args;

use super::GpuArgs;

#[derive(Args, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
}

pub fn run(_args: EvalArgs) -> anyhow::Result<()> {
    anyhow::bail!("`adaresnet eval` is not written yet")
}
