//! The memory plan: persistent tensors (parameters, their gradients, optimizer-visible state,
//! inputs, metrics) get their own buffers; activations, activation gradients and scratch share
//! a pool of slots, reused as soon as a tensor's last reader has run.

use anyhow::{bail, Result};

use super::{Graph, TensorId};

#[derive(Clone, Debug)]
pub struct Plan {
    /// For each tensor: the pool slot it lives in, or `None` for persistent tensors.
    pub slot_of: Vec<Option<usize>>,
    /// Size of each slot in bytes (the largest tensor it ever holds).
    pub slot_bytes: Vec<u64>,
    pub persistent_bytes: u64,
    /// Every tensor in its own buffer: what the plan saves memory against.
    pub naive_bytes: u64,
}

impl Plan {
    /// Bytes of all buffers the plan allocates (excluding optimizer state and staging).
    pub fn planned_bytes(&self) -> u64 {
        self.persistent_bytes + self.slot_bytes.iter().sum::<u64>()
    }
}

/// Plans `g`'s nodes in order. Fails up front, naming the tensor, if one tensor is larger than
/// a single storage binding may be (`max_binding_bytes`).
pub fn plan(g: &Graph, max_binding_bytes: u64) -> Result<Plan> {
    for t in &g.tensors {
        if t.bytes() > max_binding_bytes {
            bail!(
                "tensor {} ({:?}) needs {} MiB but this adapter binds at most {} MiB per buffer: lower --batch or the input size",
                t.name,
                t.shape,
                t.bytes() >> 20,
                max_binding_bytes >> 20
            );
        }
    }
    let n = g.tensors.len();
    let mut last_use = vec![None::<usize>; n];
    for (i, node) in g.nodes.iter().enumerate() {
        for t in node.inputs.iter().chain(&node.outputs) {
            last_use[t.0] = Some(i);
        }
    }
    let mut slot_of = vec![None; n];
    let mut slot_bytes: Vec<u64> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    for (i, node) in g.nodes.iter().enumerate() {
        // Outputs are placed before this node's inputs are freed, so no kernel ever reads and
        // writes the same buffer.
        for &out in &node.outputs {
            let t = g.tensor(out);
            if t.role.persistent() || slot_of[out.0].is_some() {
                continue;
            }
            let need = t.bytes().max(4);
            let best_fit = free
                .iter()
                .enumerate()
                .filter(|(_, &s)| slot_bytes[s] >= need)
                .min_by_key(|(_, &s)| slot_bytes[s]);
            let pick = match best_fit {
                Some((k, _)) => Some(k),
                // No free slot is big enough: grow the largest free one rather than add a slot.
                None => free
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, &s)| slot_bytes[s])
                    .map(|(k, _)| k),
            };
            let slot = match pick {
                Some(k) => free.swap_remove(k),
                None => {
                    slot_bytes.push(0);
                    slot_bytes.len() - 1
                }
            };
            slot_bytes[slot] = slot_bytes[slot].max(need);
            slot_of[out.0] = Some(slot);
        }
        for t in node.inputs.iter().chain(&node.outputs) {
            if last_use[t.0] == Some(i) {
                if let Some(slot) = slot_of[t.0] {
                    if !free.contains(&slot) {
                        free.push(slot);
                    }
                }
            }
        }
    }
    let persistent_bytes = g
        .tensors
        .iter()
        .filter(|t| t.role.persistent())
        .map(|t| t.bytes().max(4))
        .sum();
    let naive_bytes = g.tensors.iter().map(|t| t.bytes().max(4)).sum();
    Ok(Plan {
        slot_of,
        slot_bytes,
        persistent_bytes,
        naive_bytes,
    })
}

/// Whether two tensors may share memory under `plan` (used by the plan's tests).
pub fn lifetimes_overlap(g: &Graph, a: TensorId, b: TensorId) -> bool {
    let span = |t: TensorId| {
        let uses: Vec<usize> = g
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.inputs.contains(&t) || n.outputs.contains(&t))
            .map(|(i, _)| i)
            .collect();
        (
            uses.iter().min().copied().unwrap_or(0),
            uses.iter().max().copied().unwrap_or(0),
        )
    };
    let ((a0, a1), (b0, b1)) = (span(a), span(b));
    a0 <= b1 && b0 <= a1
}

/// The least memory a training step can run in, whatever the plan: every parameter and
/// persistent state, every parameter gradient, the optimizer's state, and every forward
/// result the backward reads (they must all exist at the turn from forward to backward).
/// Transient activation gradients and kernel scratch come on top in any real plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemoryFloor {
    pub params_and_state: u64,
    pub param_grads: u64,
    pub optimizer_state: u64,
    pub kept_activations: u64,
}

impl MemoryFloor {
    pub fn total(&self) -> u64 {
        self.params_and_state + self.param_grads + self.optimizer_state + self.kept_activations
    }
}

/// The floor of `g` with `state_per_param` optimizer tensors per trainable parameter.
pub fn memory_floor(g: &Graph, state_per_param: usize) -> MemoryFloor {
    use super::Role;
    let mut f = MemoryFloor::default();
    let mut kept = vec![false; g.tensors.len()];
    for node in g.backward_nodes() {
        for t in &node.inputs {
            kept[t.0] = true;
        }
    }
    let forward_made: std::collections::HashSet<usize> = g
        .forward_nodes()
        .iter()
        .flat_map(|n| n.outputs.iter().map(|t| t.0))
        .collect();
    for (i, t) in g.tensors.iter().enumerate() {
        let bytes = t.bytes();
        match t.role {
            Role::Param | Role::State | Role::Input | Role::Label | Role::Metric => {
                f.params_and_state += bytes;
                if t.role == Role::Param && t.trainable {
                    f.optimizer_state += state_per_param as u64 * bytes;
                }
            }
            Role::ParamGrad => f.param_grads += bytes,
            _ if kept[i] && forward_made.contains(&i) => f.kept_activations += bytes,
            _ => {}
        }
    }
    f
}
