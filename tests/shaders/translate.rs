//! Translating one validated entry point to the native language of each wgpu backend we ship
//! (Vulkan, Metal, DX12, GL), the way wgpu would: naga validating WGSL says nothing about
//! whether its backends can express the module. Each translation is then read back for the
//! entry point it should hold, so an empty or wrong output fails too.

use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};
use naga::{AddressSpace, Module, ResourceBinding, ShaderStage, StorageAccess};

/// What one translation needs to know about the entry point it writes.
pub struct Target<'a> {
    pub module: &'a Module,
    pub info: &'a ModuleInfo,
    pub name: &'a str,
    pub workgroup: [u32; 3],
    /// The file uses subgroup operations (its name ends in `_subgroup`).
    pub subgroup: bool,
}

type Backend = fn(&Target) -> Result<(), String>;

pub const BACKENDS: [(&str, Backend); 4] = [
    ("SPIR-V", spirv),
    ("MSL", metal),
    ("HLSL", hlsl_sm),
    ("GLSL", glsl_core),
];

/// The module's info, from the same validator `kernels::validate` runs (it returns only the
/// module, and every backend needs the info too).
pub fn info(module: &Module) -> ModuleInfo {
    Validator::new(
        ValidationFlags::all(),
        Capabilities::default() | Capabilities::SUBGROUP,
    )
    .validate(module)
    .expect("kernels::validate accepted this module")
}

/// Every bound global in (group, binding) order with a flat slot number and whether it is
/// written: what a pipeline layout hands each backend. Real maps rather than naga's fake
/// bindings, so a resource the writer cannot place is an error, not invented output.
fn bindings(module: &Module) -> Vec<(ResourceBinding, u8, bool)> {
    let mut out: Vec<_> = module
        .global_variables
        .iter()
        .filter_map(|(_, var)| {
            let writable = matches!(var.space, AddressSpace::Storage { access }
                if access.contains(StorageAccess::STORE));
            var.binding.map(|b| (b, writable))
        })
        .collect();
    out.sort_by_key(|(b, _)| (b.group, b.binding));
    (0u8..)
        .zip(out)
        .map(|(slot, (b, w))| (b, slot, w))
        .collect()
}

fn must_contain(text: &str, needles: &[String]) -> Result<(), String> {
    match needles.iter().find(|n| !text.contains(n.as_str())) {
        Some(n) => Err(format!("output lacks `{n}`")),
        None => Ok(()),
    }
}

/// The one translated entry point's name in the output language (naga renames keywords).
fn only_name<E: std::fmt::Display>(names: Vec<Result<String, E>>) -> Result<String, String> {
    match <[_; 1]>::try_from(names) {
        Ok([name]) => name.map_err(|e| e.to_string()),
        Err(names) => Err(format!("{} entry points written, wanted 1", names.len())),
    }
}

/// SPIR-V 1.0 is what a Vulkan 1.0 driver takes; subgroup operations arrived in 1.3.
fn spirv(t: &Target) -> Result<(), String> {
    let version = if t.subgroup { (1, 3) } else { (1, 0) };
    let binding_map = bindings(t.module)
        .into_iter()
        .map(|(b, _, _)| {
            let info = spv::BindingInfo {
                descriptor_set: b.group,
                binding: b.binding,
                binding_array_size: None,
            };
            (b, info)
        })
        .collect();
    let options = spv::Options {
        lang_version: version,
        fake_missing_bindings: false,
        binding_map,
        ..Default::default()
    };
    let pipeline = spv::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: t.name.to_string(),
    };
    let words =
        spv::write_vec(t.module, t.info, &options, Some(&pipeline)).map_err(|e| e.to_string())?;
    check_spirv(&words, t, version)
}

/// wgpu picks the MSL version by OS: plain kernels at 1.2 (macOS 10.12) so nothing newer creeps
/// in; `simd_*` (subgroups) at 2.1, the first with SIMD-group functions on macOS.
fn metal(t: &Target) -> Result<(), String> {
    let binds = bindings(t.module);
    let resources = binds
        .iter()
        .map(|&(b, slot, mutable)| {
            let target = msl::BindTarget {
                buffer: Some(slot),
                mutable,
                ..Default::default()
            };
            (b, target)
        })
        .collect();
    // Metal has no array lengths: runtime-sized arrays read theirs from one more buffer.
    let sizes_buffer = Some(binds.len() as u8);
    let resources = msl::EntryPointResources {
        resources,
        sizes_buffer,
        ..Default::default()
    };
    let options = msl::Options {
        lang_version: if t.subgroup { (2, 1) } else { (1, 2) },
        fake_missing_bindings: false,
        per_entry_point_map: [(t.name.to_string(), resources)].into(),
        ..Default::default()
    };
    let pipeline = msl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, t.name.to_string())),
        ..Default::default()
    };
    let (text, translation) =
        msl::write_string(t.module, t.info, &options, &pipeline).map_err(|e| e.to_string())?;
    let mangled = only_name(translation.entry_point_names)?;
    let mut needles = vec![format!("kernel void {mangled}(")];
    if t.subgroup {
        needles.push("metal::simd_".into());
    }
    must_contain(&text, &needles)
}

/// Shader model 5.1 is the most FXC (wgpu's fallback DX12 compiler) takes; wave intrinsics
/// need 6.0, which wgpu also requires before it offers subgroups.
fn hlsl_sm(t: &Target) -> Result<(), String> {
    let binding_map = bindings(t.module)
        .into_iter()
        .map(|(b, _, _)| {
            let target = hlsl::BindTarget {
                space: b.group as u8,
                register: b.binding,
                binding_array_size: None,
                dynamic_storage_buffer_offsets_index: None,
                restrict_indexing: false,
            };
            (b, target)
        })
        .collect();
    let options = hlsl::Options {
        shader_model: if t.subgroup {
            hlsl::ShaderModel::V6_0
        } else {
            hlsl::ShaderModel::V5_1
        },
        fake_missing_bindings: false,
        binding_map,
        ..Default::default()
    };
    let pipeline = hlsl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, t.name.to_string())),
    };
    let mut text = String::new();
    let reflection = hlsl::Writer::new(&mut text, &options, &pipeline)
        .write(t.module, t.info, None)
        .map_err(|e| e.to_string())?;
    let mangled = only_name(reflection.entry_point_names)?;
    let [x, y, z] = t.workgroup;
    let mut needles = vec![format!("[numthreads({x}, {y}, {z})]\nvoid {mangled}(")];
    if t.subgroup {
        needles.push("Wave".into());
    }
    must_contain(&text, &needles)
}

/// GLSL 4.50 core, with the `GL_KHR_shader_subgroup_*` extensions naga declares itself.
fn glsl_core(t: &Target) -> Result<(), String> {
    let options = glsl::Options {
        version: glsl::Version::Desktop(450),
        binding_map: bindings(t.module)
            .into_iter()
            .map(|(b, slot, _)| (b, slot))
            .collect(),
        ..Default::default()
    };
    let pipeline = glsl::PipelineOptions {
        shader_stage: ShaderStage::Compute,
        entry_point: t.name.to_string(),
        multiview: None,
    };
    let mut text = String::new();
    let policies = naga::proc::BoundsCheckPolicies::default();
    glsl::Writer::new(&mut text, t.module, t.info, &options, &pipeline, policies)
        .and_then(|mut w| w.write())
        .map_err(|e| e.to_string())?;
    // GLSL names every entry point `main`: the workgroup size is what tells this one apart.
    let [x, y, z] = t.workgroup;
    let mut needles = vec![
        "#version 450 core\n".into(),
        format!("layout(local_size_x = {x}, local_size_y = {y}, local_size_z = {z}) in;"),
        "void main()".into(),
    ];
    if t.subgroup {
        needles.push("#extension GL_KHR_shader_subgroup_basic : require".into());
    }
    must_contain(&text, &needles)
}

/// Reads the binary back: the header's version, one GLCompute `OpEntryPoint` with this name,
/// its `LocalSize`, and the subgroup capability where the file uses subgroups.
fn check_spirv(words: &[u32], t: &Target, version: (u8, u8)) -> Result<(), String> {
    const MAGIC: u32 = 0x0723_0203;
    const OP_ENTRY_POINT: u32 = 15;
    const OP_EXECUTION_MODE: u32 = 16;
    const OP_CAPABILITY: u32 = 17;
    const GL_COMPUTE: u32 = 5;
    const LOCAL_SIZE: u32 = 17;
    const GROUP_NON_UNIFORM: u32 = 61;
    if words.len() < 5 || words[0] != MAGIC {
        return Err("not a SPIR-V module (no magic number)".into());
    }
    let want = (u32::from(version.0) << 16) | (u32::from(version.1) << 8);
    if words[1] != want {
        return Err(format!("version word {:#x}, wanted {want:#x}", words[1]));
    }
    let (mut entry_ids, mut local_sizes, mut non_uniform) = (Vec::new(), Vec::new(), false);
    let mut rest = &words[5..];
    while let Some(&head) = rest.first() {
        let len = (head >> 16) as usize;
        if len == 0 || len > rest.len() {
            return Err("truncated instruction".into());
        }
        let (inst, tail) = rest.split_at(len);
        match (head & 0xffff, &inst[1..]) {
            (OP_ENTRY_POINT, [GL_COMPUTE, id, name @ ..]) if spirv_str(name) == t.name => {
                entry_ids.push(*id)
            }
            (OP_EXECUTION_MODE, [id, LOCAL_SIZE, x, y, z]) => local_sizes.push((*id, [*x, *y, *z])),
            (OP_CAPABILITY, [GROUP_NON_UNIFORM]) => non_uniform = true,
            _ => {}
        }
        rest = tail;
    }
    let [id] = entry_ids[..] else {
        return Err(format!(
            "{} GLCompute entry points named {}",
            entry_ids.len(),
            t.name
        ));
    };
    if !local_sizes.contains(&(id, t.workgroup)) {
        return Err(format!(
            "no LocalSize {:?} for the entry point",
            t.workgroup
        ));
    }
    if t.subgroup && !non_uniform {
        return Err("subgroup kernel without the GroupNonUniform capability".into());
    }
    Ok(())
}

/// A SPIR-V literal string: UTF-8 packed little-endian into words, NUL-terminated.
fn spirv_str(words: &[u32]) -> String {
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}
