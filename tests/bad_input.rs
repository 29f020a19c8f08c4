//! Every flag or file a user can get wrong: one line naming the cause (and the fix), exit
//! code 1, no panic, and nothing half-written that a later run would trust. Each case runs
//! the binary in a child process.

mod common;

/// Exit code 1, exactly one `error:` line, which mentions `needle`, and no panic.
fn refused(args: &[&str], needle: &str) {
    refused_with(&[], args, needle)
}

fn refused_with(env: &[(&str, &str)], args: &[&str], needle: &str) {
    common::refused_with(env, args, needle);
}

fn out_dir(name: &str) -> common::Scratch {
    common::scratch(name)
}

#[test]
fn bad_flag_values_are_refused() {
    let o = out_dir("flags");
    for (flags, needle) in [
        (vec!["--residual", "ada", "--w-init", "normal:nan"], "SIGMA"),
        (vec!["--residual", "ada", "--w-init", "normal:inf"], "SIGMA"),
        (
            vec!["--residual", "ada", "--w-init", "normal:-0.5"],
            "SIGMA",
        ),
        (
            vec!["--residual", "ada-channel", "--w-init", "inf"],
            "finite",
        ),
        (vec!["--residual", "fixed:nan"], "fixed:K"),
        (vec!["--residual", "sometimes"], "--residual"),
        (vec!["--lr", "nan"], "--lr"),
        (vec!["--lr", "0"], "--lr"),
        (
            vec!["--optimizer", "sgd", "--momentum", "1.5"],
            "--momentum",
        ),
        (vec!["--weight-decay", "inf"], "--weight-decay"),
        (vec!["--bn-momentum", "nan"], "--bn-momentum"),
        (vec!["--epochs", "0"], "--epochs"),
        (vec!["--batch", "abc"], "--batch"),
        (vec!["--optimizer", "lion"], "optimizer"),
        (vec!["--model", "resnet7"], "resnet7"),
    ] {
        let mut args = vec!["train", "--out", o.as_str()];
        args.extend(flags);
        refused(&args, needle);
    }
}

#[test]
fn batches_too_large_are_refused_before_any_work() {
    // Past 32-bit indices in shape inference, and past this adapter's binding size in the
    // plan: resnet8's stem output on 3x32x32 is 16x32x32 f32s (64 KiB) per image, so one image
    // more than the binding holds (2049 on lavapipe's 128 MiB, 16385 on SwiftShader's 1 GiB).
    let gpu = adaresnet::gpu::Gpu::from_env().expect(
        "no GPU adapter: install Mesa's software Vulkan driver (apt-get install mesa-vulkan-drivers)",
    );
    let past_binding = (gpu.max_binding_bytes() / (16 * 32 * 32 * 4) + 1).to_string();
    drop(gpu);
    for batch in ["400000", past_binding.as_str()] {
        refused(
            &[
                "check-grads",
                "--model",
                "resnet8",
                "--batch",
                batch,
                "--input",
                "3x32x32",
            ],
            "--batch",
        );
        refused(
            &[
                "bench",
                "--models",
                "resnet8",
                "--batches",
                batch,
                "--dataset",
                "cifar10",
            ],
            "--batch",
        );
        refused(
            &[
                "profile",
                "--model",
                "resnet8",
                "--batch",
                batch,
                "--dataset",
                "cifar10",
            ],
            "--batch",
        );
    }
}

/// A plan larger than the memory the run may use is refused before any buffer exists (on a
/// CPU adapter, which never refuses an allocation, the OS would otherwise kill the run once
/// the pages are touched). The cap here is `ADARESNET_MAX_MEMORY_MIB`; resnet8 at batch 64
/// plans about 50 MiB.
#[test]
fn plans_over_the_memory_budget_are_refused_before_allocating() {
    let cap = [("ADARESNET_MAX_MEMORY_MIB", "2")];
    let o = out_dir("budget");
    for args in [
        vec!["check-grads", "--model", "resnet8", "--batch", "64"],
        vec![
            "bench",
            "--models",
            "resnet8",
            "--batches",
            "64",
            "--steps",
            "1",
        ],
        vec!["profile", "--model", "resnet8", "--batch", "64"],
        vec![
            "train",
            "--batch",
            "64",
            "--epochs",
            "1",
            "--out",
            o.as_str(),
        ],
    ] {
        refused_with(&cap, &args, "lower --batch");
    }
    assert!(
        !o.join("config.json").exists(),
        "a refused run leaves no config.json for --resume to trust"
    );
    for bad in ["nan", "0", "-5", "4GiB"] {
        refused_with(
            &[("ADARESNET_MAX_MEMORY_MIB", bad)],
            &["check-grads", "--model", "resnet8", "--batch", "2"],
            "ADARESNET_MAX_MEMORY_MIB",
        );
    }
}

#[test]
fn missing_data_is_refused() {
    let o = out_dir("data");
    refused(
        &[
            "train",
            "--dataset",
            "cifar10",
            "--data",
            "/nonexistent/cifar",
            "--out",
            o.as_str(),
        ],
        "/nonexistent/cifar",
    );
    refused(&["eval", "--run", "/nonexistent/run"], "/nonexistent/run");
}

/// An error wgpu reports outside any call that returns one (here a buffer past the adapter's
/// size limit) is recorded, not a panic in wgpu's default handler, and `check` reports it
/// in one line with its likely fix.
#[test]
fn gpu_errors_become_one_line_errors() {
    let gpu = adaresnet::gpu::Gpu::from_env().expect(
        "no GPU adapter: install Mesa's software Vulkan driver (apt-get install mesa-vulkan-drivers)",
    );
    gpu.check().unwrap();
    let _too_big = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("too big"),
        size: gpu.device.limits().max_buffer_size + 4,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let e = gpu.check().unwrap_err().to_string();
    assert!(!e.contains('\n') && e.contains("too big"), "{e}");
}

/// Without a cap, an adapter that shares system memory (lavapipe here) may plan up to what
/// the OS reports free, and one with its own memory gets no figure before allocating.
#[test]
fn shared_memory_adapters_plan_within_free_system_memory() {
    let gpu = common::gpu();
    let budget = adaresnet::gpu::memory::budget(&gpu.info).unwrap();
    match gpu.info.device_type {
        wgpu::DeviceType::Cpu | wgpu::DeviceType::IntegratedGpu => {
            let (bytes, source) = budget.expect("a shared-memory adapter has a budget");
            assert!(source.contains("free system memory"), "{source}");
            let mut sys = sysinfo::System::new();
            sys.refresh_memory();
            assert!(bytes > 0 && bytes <= sys.total_memory(), "{bytes} bytes");
        }
        _ => assert!(budget.is_none(), "{budget:?}"),
    }
}
