//! The one place that embeds the WGSL sources and creates compute pipelines.
//!
//! Every entry point gets one pipeline, created on first use and reused for every shape:
//! shapes travel in each dispatch's uniform parameters, never in shader text.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{anyhow, Result};

/// Every shader file, one per op family, embedded in the binary.
pub const SHADERS: &[(&str, &str)] = &[
    ("conv2d", include_str!("../../shaders/conv2d.wgsl")),
    (
        "conv2d_subgroup",
        include_str!("../../shaders/conv2d_subgroup.wgsl"),
    ),
    ("gemm", include_str!("../../shaders/gemm.wgsl")),
    (
        "gemm_subgroup",
        include_str!("../../shaders/gemm_subgroup.wgsl"),
    ),
    ("batchnorm", include_str!("../../shaders/batchnorm.wgsl")),
    ("relu", include_str!("../../shaders/relu.wgsl")),
    ("residual", include_str!("../../shaders/residual.wgsl")),
    ("pool", include_str!("../../shaders/pool.wgsl")),
    ("linear", include_str!("../../shaders/linear.wgsl")),
    ("loss", include_str!("../../shaders/loss.wgsl")),
    ("optim", include_str!("../../shaders/optim.wgsl")),
    ("reduce", include_str!("../../shaders/reduce.wgsl")),
];

/// The optional device features a shader file needs (its module is only created with them).
pub fn required_features(file: &str) -> wgpu::Features {
    if file.ends_with("_subgroup") {
        wgpu::Features::SUBGROUP
    } else {
        wgpu::Features::empty()
    }
}

/// Parses and validates one WGSL source with naga, as wgpu will (with the subgroup operations
/// allowed: only files that `required_features` marks use them).
pub fn validate(name: &str, source: &str) -> Result<naga::Module> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| anyhow!("{name}.wgsl does not parse:\n{}", e.emit_to_string(source)))?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default() | naga::valid::Capabilities::SUBGROUP,
    )
    .validate(&module)
    .map_err(|e| {
        anyhow!(
            "{name}.wgsl does not validate:\n{}",
            e.emit_to_string(source)
        )
    })?;
    Ok(module)
}

/// Which shader file holds each entry point, and each entry point's workgroup size.
pub fn entry_points() -> Result<Vec<(&'static str, String, [u32; 3])>> {
    let mut out = Vec::new();
    for (file, source) in SHADERS {
        for ep in validate(file, source)?.entry_points {
            out.push((*file, ep.name, ep.workgroup_size));
        }
    }
    Ok(out)
}

pub struct Kernels {
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    entry_file: HashMap<String, &'static str>,
    pipelines: Mutex<HashMap<&'static str, wgpu::ComputePipeline>>,
}

impl Kernels {
    pub fn new(device: &wgpu::Device) -> Result<Self> {
        let mut modules = HashMap::new();
        for (file, source) in SHADERS {
            if !device.features().contains(required_features(file)) {
                continue;
            }
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(file),
                source: wgpu::ShaderSource::Wgsl((*source).into()),
            });
            modules.insert(*file, module);
        }
        let entry_file = entry_points()?
            .into_iter()
            .filter(|(file, _, _)| modules.contains_key(file))
            .map(|(file, entry, _)| (entry, file))
            .collect();
        Ok(Self {
            modules,
            entry_file,
            pipelines: Mutex::new(HashMap::new()),
        })
    }

    /// The pipeline of one entry point, with the layout naga derives from the bindings it uses.
    pub fn pipeline(&self, device: &wgpu::Device, entry: &'static str) -> wgpu::ComputePipeline {
        let mut cache = self.pipelines.lock().expect("pipeline cache lock poisoned");
        cache
            .entry(entry)
            .or_insert_with(|| {
                let file = self.entry_file.get(entry).unwrap_or_else(|| {
                    panic!("no shader this device can run defines entry point `{entry}`")
                });
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: None,
                    module: &self.modules[file],
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
            })
            .clone()
    }
}
