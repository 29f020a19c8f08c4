//! `adaresnet bench`: being written.

use clap::Args;

use super::GpuArgs;

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub gpu: GpuArgs,
}

pub fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("`adaresnet bench` is not written yet")
}
