//! The engine on a device with each optional feature masked (ADARESNET_DISABLE_FEATURES) and
//! with exactly WebGPU's default limits (ADARESNET_LIMITS=webgpu-default): the op sweep at
//! the paper's shapes, the whole-model check of resnet8 and a short training run, each in a
//! child process of the binary so the variables reach only it. Bad values are refused.

mod common;

fn adaresnet(env: &[(&str, &str)], args: &[&str]) -> (bool, String) {
    let (code, text) = common::adaresnet_bin(env, args);
    (code == Some(0), text)
}

fn check_all(env: &[(&str, &str)]) {
    let dir = common::scratch("masked");
    let out = dir.to_str().unwrap();
    let runs: [&[&str]; 5] = [
        &["devices"],
        &[
            "profile",
            "--model",
            "resnet8",
            "--batch",
            "4",
            "--input",
            "1x16x16",
            "--steps",
            "1",
            "--warmup",
            "0",
            "--overhead-steps",
            "0",
        ],
        &["check-grads", "--batch", "2", "--input", "1x28x28"],
        &[
            "check-grads",
            "--model",
            "resnet8",
            "--batch",
            "4",
            "--input",
            "3x8x8",
        ],
        &[
            "train",
            "--model",
            "resnet8",
            "--train-limit",
            "128",
            "--test-limit",
            "64",
            "--epochs",
            "1",
            "--batch",
            "32",
            "--out",
            out,
        ],
    ];
    for args in runs {
        let (ok, text) = adaresnet(env, args);
        assert!(ok, "{env:?} {args:?} failed:\n{text}");
        assert!(!text.contains("panicked"), "{env:?} {args:?}:\n{text}");
        if args[0] == "check-grads" {
            assert!(text.contains(" 0 failed"), "{env:?} {args:?}:\n{text}");
        }
    }
}

#[test]
fn runs_without_subgroups() {
    check_all(&[("ADARESNET_DISABLE_FEATURES", "subgroups")]);
}

#[test]
fn runs_without_timestamps() {
    check_all(&[("ADARESNET_DISABLE_FEATURES", "timestamp-query")]);
}

#[test]
fn runs_with_webgpu_default_limits() {
    check_all(&[("ADARESNET_LIMITS", "webgpu-default")]);
}

#[test]
fn bad_values_are_refused_in_one_line() {
    for (k, v) in [
        ("ADARESNET_DISABLE_FEATURES", "subgroups,warp-speed"),
        ("ADARESNET_LIMITS", "huge"),
        ("ADARESNET_KERNELS", "fastest"),
    ] {
        let (ok, text) = adaresnet(
            &[(k, v)],
            &["check-grads", "--batch", "1", "--input", "1x8x8"],
        );
        assert!(!ok, "{k}={v} was accepted:\n{text}");
        let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(errors.len(), 1, "{k}={v}:\n{text}");
        assert!(
            errors[0].contains(k) && !text.contains("panicked"),
            "{text}"
        );
    }
}
