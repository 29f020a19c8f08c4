//! Chrome trace-event JSON of a profile (opens in Perfetto and chrome://tracing): one complete
//! event ("ph": "X", microseconds) per dispatch on the "GPU dispatches" track, and one per
//! step on the "steps" track, all on the GPU's clock from the first timed step.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use super::report::Profile;
use super::Timing;

const PID: u32 = 1;
/// Track of the steps' GPU spans (or host times in host-only timing).
pub const STEP_TID: u32 = 1;
/// Track of the dispatches.
pub const DISPATCH_TID: u32 = 2;

fn thread_name(tid: u32, name: &str) -> Value {
    json!({"name": "thread_name", "ph": "M", "pid": PID, "tid": tid, "args": {"name": name}})
}

/// The trace as a JSON value; `title` names the process (model, batch, adapter).
pub fn chrome_trace(profile: &Profile, title: &str) -> Value {
    let mut events = vec![
        json!({"name": "process_name", "ph": "M", "pid": PID, "args": {"name": title}}),
        thread_name(STEP_TID, "steps"),
        thread_name(DISPATCH_TID, "GPU dispatches"),
    ];
    let host = profile.timing == Timing::HostOnly;
    let mut host_clock = 0.0;
    for (k, step) in profile.steps.iter().enumerate() {
        let origin = if host { host_clock } else { step.gpu.origin_ns };
        let span = if host {
            step.wall_ns
        } else {
            step.gpu
                .intervals
                .iter()
                .map(|t| t.start_ns + t.dur_ns)
                .fold(0.0, f64::max)
        };
        host_clock += step.wall_ns;
        events.push(json!({
            "name": format!("step {k}"),
            "cat": if host { "host time" } else { "step" },
            "ph": "X", "pid": PID, "tid": STEP_TID,
            "ts": origin / 1e3, "dur": span / 1e3,
            "args": {"wall_ms": step.wall_ns / 1e6},
        }));
        for (d, t) in profile.dispatches.iter().zip(&step.gpu.intervals) {
            events.push(json!({
                "name": d.entry,
                "cat": d.pass,
                "ph": "X", "pid": PID, "tid": DISPATCH_TID,
                "ts": (origin + t.start_ns) / 1e3,
                "dur": t.dur_ns / 1e3,
                "args": {
                    "layer": d.label,
                    "step": k,
                    "workgroups": d.groups,
                    "flops": d.flops,
                    "bytes": d.bytes,
                },
            }));
        }
    }
    json!({
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"timing": profile.timing.describe()},
    })
}

pub fn write_chrome_trace(profile: &Profile, title: &str, path: &Path) -> Result<()> {
    let text = serde_json::to_string(&chrome_trace(profile, title))?;
    std::fs::write(path, text)
        .with_context(|| format!("cannot write the trace to {}", path.display()))
}
