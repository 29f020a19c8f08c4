//! The memory plan: persistent tensors (parameters, their gradients, optimizer-visible state,
//! inputs, metrics) get their own buffers; activations, activation gradients and scratch share
//! a pool of slots, reused as soon as a tensor's last reader has run.

use anyhow::{bail, Result};

use super::{Graph, Op, TensorId};

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
    // An elementwise kernel whose input dies at it may write an output into that input: the
    // gradient sum (`residual::add_inplace`) and the residual backward's dtfd over dy. The two
    // tensors are then one allocation. Near the input, where the step's memory peaks, the
    // backward would otherwise hold three or four large gradients at once.
    let n = g.tensors.len();
    let mut rep: Vec<usize> = (0..n).collect();
    for (a, y) in inplace_pairs(g) {
        rep[y.0] = rep[a.0];
    }
    // Each allocation's lifetime: the nodes from its first to its last use, inclusive, so
    // a node's outputs never share a slot with its inputs (no kernel reads and writes one
    // buffer, the in-place sum aside).
    let mut span: Vec<Option<(usize, usize)>> = vec![None; n];
    let mut need = vec![0u64; n];
    for (i, node) in g.nodes.iter().enumerate() {
        for t in node.inputs.iter().chain(&node.outputs) {
            if g.tensor(*t).role.persistent() {
                continue;
            }
            let r = rep[t.0];
            let s = span[r].get_or_insert((i, i));
            s.1 = i;
            need[r] = need[r].max(g.tensor(*t).bytes().max(4));
        }
    }
    let allocations: Vec<usize> = (0..n).filter(|&t| span[t].is_some()).collect();
    let a = in_order(&allocations, &span, &need, g.nodes.len());
    let b = by_size(&allocations, &span, &need);
    let (slot_of_rep, slot_bytes) = if a.1.iter().sum::<u64>() <= b.1.iter().sum::<u64>() {
        a
    } else {
        b
    };
    let slot_of: Vec<Option<usize>> = (0..n)
        .map(|t| {
            (!g.tensors[t].role.persistent())
                .then(|| slot_of_rep[rep[t]])
                .flatten()
        })
        .collect();
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

/// The (input, output) pairs `plan` puts in one buffer: the output of an elementwise kernel
/// that can run in place (`residual::add_inplace`, the residual backward's dtfd over dy)
/// with an input of the same size that dies at that node. They share a slot while both are
/// alive at that one node, by design.
pub fn inplace_pairs(g: &Graph) -> Vec<(TensorId, TensorId)> {
    let mut last_use = vec![0usize; g.tensors.len()];
    for (i, node) in g.nodes.iter().enumerate() {
        for t in node.inputs.iter().chain(&node.outputs) {
            last_use[t.0] = i;
        }
    }
    let pooled = |t: TensorId| !g.tensor(t).role.persistent();
    let mut out = Vec::new();
    for (i, node) in g.nodes.iter().enumerate() {
        let capable = matches!(node.op, Op::Add | Op::ResidualBackwardInput(_));
        if !capable {
            continue;
        }
        let (a, y) = (node.inputs[0], node.outputs[0]);
        let read_once = node.inputs.iter().filter(|&&t| t == a).count() == 1;
        let same_size = g.tensor(a).bytes() == g.tensor(y).bytes();
        if pooled(a) && pooled(y) && read_once && same_size && last_use[a.0] == i {
            out.push((a, y));
        }
    }
    out
}

/// Slot assignment of `allocations` (lifetimes `span`, sizes `need`), in node order: each
/// takes the smallest free slot that holds it, else grows the largest free one, else adds
/// one. Returns (slot of each allocation, slot sizes).
fn in_order(
    allocations: &[usize],
    span: &[Option<(usize, usize)>],
    need: &[u64],
    nodes: usize,
) -> (Vec<Option<usize>>, Vec<u64>) {
    let mut slot_of = vec![None; span.len()];
    let mut slot_bytes: Vec<u64> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut starting: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    let mut ending: Vec<Vec<usize>> = vec![Vec::new(); nodes];
    for &t in allocations {
        let (a, b) = span[t].expect("allocations have lifetimes");
        starting[a].push(t);
        ending[b].push(t);
    }
    for i in 0..nodes {
        for &t in &starting[i] {
            let best_fit = free
                .iter()
                .enumerate()
                .filter(|(_, &s)| slot_bytes[s] >= need[t])
                .min_by_key(|(_, &s)| slot_bytes[s]);
            let pick = match best_fit {
                Some((k, _)) => Some(k),
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
            slot_bytes[slot] = slot_bytes[slot].max(need[t]);
            slot_of[t] = Some(slot);
        }
        for &t in &ending[i] {
            free.push(slot_of[t].expect("placed when its lifetime began"));
        }
    }
    (slot_of, slot_bytes)
}

/// Slot assignment greedy by size (as TensorFlow Lite's planner): the largest allocations
/// take slots first, each the smallest slot none of whose tenants' lifetimes meet its own,
/// else a new one. A slot is as large as its first tenant, so big slots serve every size
/// later; node order instead can leave small slots behind that large gradients cannot use.
/// Which of the two wins depends on the network: `plan` keeps the smaller.
fn by_size(
    allocations: &[usize],
    span: &[Option<(usize, usize)>],
    need: &[u64],
) -> (Vec<Option<usize>>, Vec<u64>) {
    let mut order = allocations.to_vec();
    order.sort_by_key(|&t| (std::cmp::Reverse(need[t]), span[t]));
    let mut slot_of = vec![None; span.len()];
    let mut slot_bytes: Vec<u64> = Vec::new();
    let mut tenants: Vec<Vec<(usize, usize)>> = Vec::new();
    for t in order {
        let (a, b) = span[t].expect("allocations have lifetimes");
        let pick = (0..slot_bytes.len())
            .filter(|&s| tenants[s].iter().all(|&(c, d)| b < c || d < a))
            .min_by_key(|&s| slot_bytes[s]);
        let slot = pick.unwrap_or_else(|| {
            slot_bytes.push(need[t]);
            tenants.push(Vec::new());
            slot_bytes.len() - 1
        });
        tenants[slot].push((a, b));
        slot_of[t] = Some(slot);
    }
    (slot_of, slot_bytes)
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

/// The floor of `g` with `optimizer_state` bytes of optimizer state (what the optimizer
/// must keep: a conv weight's window taps only where its update keeps to them).
pub fn memory_floor(g: &Graph, optimizer_state: u64) -> MemoryFloor {
    use super::Role;
    let mut f = MemoryFloor {
        optimizer_state,
        ..Default::default()
    };
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
            }
            Role::ParamGrad => f.param_grads += bytes,
            _ if kept[i] && forward_made.contains(&i) => f.kept_activations += bytes,
            _ => {}
        }
    }
    f
}
