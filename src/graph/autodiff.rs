//! Reverse-mode differentiation: appends to a forward graph the backward nodes that compute
//! the gradient of the mean loss with respect to every trainable parameter.
//!
//! Each forward op has one rule below. A tensor read by two nodes (a block input feeds both
//! branches) receives two gradients, summed by an `Add` node; kernels never accumulate.

use std::collections::HashMap;

use super::op::{ConvAttrs, ResidualAttrs};
use super::shapes;
use super::{Graph, Op, Role, TensorId};
use crate::ops::reduce;

struct Grads {
    /// The current gradient of each tensor that has one so far.
    of: HashMap<TensorId, TensorId>,
}

/// Appends backward nodes to `g` (which must end in a `SoftmaxXent`) and fills `g.grads`.
pub fn differentiate(g: &mut Graph) {
    assert!(
        !g.differentiated,
        "differentiate runs once, on a forward graph"
    );
    g.differentiated = true;
    let needs = needs_grad(g);
    let mut grads = Grads { of: HashMap::new() };
    let forward: Vec<_> = g.nodes[..g.forward_len].to_vec();
    for node in forward.iter().rev() {
        let dy = match node.op {
            Op::SoftmaxXent => None,
            _ => match grads.of.get(&node.outputs[0]) {
                Some(&d) => Some(d),
                None => continue, // nothing downstream depends on this node's output
            },
        };
        let name = node.name.as_str();
        let inp = &node.inputs;
        let out = &node.outputs;
        let need = |t: TensorId| needs[t.0];
        match node.op {
            Op::SoftmaxXent => {
                let d = emit(
                    g,
                    Op::SoftmaxXentBackward,
                    name,
                    &[inp[0], inp[1]],
                    &[("dlogits", inp[0])],
                );
                add_grad(g, &mut grads, inp[0], d[0]);
            }
            Op::Linear => {
                let dy = dy.unwrap();
                if need(inp[0]) {
                    let d = emit(
                        g,
                        Op::LinearBackwardInput,
                        name,
                        &[dy, inp[1]],
                        &[("dx", inp[0])],
                    );
                    add_grad(g, &mut grads, inp[0], d[0]);
                }
                param_grad(g, Op::LinearBackwardWeight, name, &[dy, inp[0]], inp[1]);
                param_grad(g, Op::LinearBackwardBias, name, &[dy], inp[2]);
            }
            Op::Conv2d(a) => {
                let dy = dy.unwrap();
                if need(inp[0]) {
                    let packed = shapes::conv(g, a, inp[0], inp[1]).backward_input_scratch_len();
                    let outs = [
                        ("dx", g.tensor(inp[0]).shape.clone(), Role::Grad),
                        ("packed", vec![packed.max(1)], Role::Scratch),
                    ];
                    let d = g.add_node(Op::Conv2dBackwardInput(a), name, &[dy, inp[1]], &outs);
                    add_grad(g, &mut grads, inp[0], d[0]);
                }
                conv_weight_grad(g, a, name, dy, inp[0], inp[1]);
                if a.bias {
                    param_grad(g, Op::Conv2dBackwardBias, name, &[dy], inp[2]);
                }
            }
            Op::BatchNorm(a) => {
                let dy = dy.unwrap();
                let mut ins = vec![dy, inp[0], inp[1], out[1], out[2]];
                if a.relu {
                    ins.push(out[0]);
                }
                let shape = |t: TensorId| g.tensor(t).shape.clone();
                let c = g.tensor(inp[1]).len();
                let outs = [
                    ("dx", shape(inp[0]), Role::Grad),
                    ("dgamma", shape(inp[1]), Role::Grad),
                    ("dbeta", shape(inp[2]), Role::Grad),
                    (
                        "coeffs",
                        vec![crate::ops::batchnorm::coeffs_len(c)],
                        Role::Scratch,
                    ),
                ];
                let d = g.add_node(Op::BatchNormBackward(a), name, &ins, &outs);
                add_grad(g, &mut grads, inp[0], d[0]);
                set_param_grad(g, inp[1], d[1]);
                set_param_grad(g, inp[2], d[2]);
            }
            Op::Relu => {
                let d = emit(
                    g,
                    Op::ReluBackward,
                    name,
                    &[out[0], dy.unwrap()],
                    &[("dx", inp[0])],
                );
                add_grad(g, &mut grads, inp[0], d[0]);
            }
            Op::Residual(a) => {
                // The output is only needed (as the ReLU mask) when fused; not naming it
                // otherwise lets the memory plan free it right after the forward pass.
                let mut ins = vec![dy.unwrap(), inp[2]];
                if a.fuse_relu {
                    ins.push(out[0]);
                }
                let outs = [("dtfd", inp[0]), ("dipd", inp[1])];
                let d = emit(g, Op::ResidualBackwardInput(a), name, &ins, &outs);
                if g.tensor(inp[2]).trainable {
                    residual_weight_grad(g, a, name, d[0], inp[1], inp[2]);
                }
                add_grad(g, &mut grads, inp[0], d[0]);
                add_grad(g, &mut grads, inp[1], d[1]);
            }
            Op::MaxPool(a) => {
                let d = emit(
                    g,
                    Op::MaxPoolBackward(a),
                    name,
                    &[out[1], dy.unwrap()],
                    &[("dx", inp[0])],
                );
                add_grad(g, &mut grads, inp[0], d[0]);
            }
            Op::GlobalAvgPool => {
                let d = emit(
                    g,
                    Op::GlobalAvgPoolBackward,
                    name,
                    &[dy.unwrap()],
                    &[("dx", inp[0])],
                );
                add_grad(g, &mut grads, inp[0], d[0]);
            }
            ref other => panic!("autodiff has no rule for {other:?} in a forward graph"),
        }
    }
}

/// Which tensors depend on a trainable parameter (and so need a gradient).
fn needs_grad(g: &Graph) -> Vec<bool> {
    let mut needs: Vec<bool> = g
        .tensors
        .iter()
        .map(|t| t.role == Role::Param && t.trainable)
        .collect();
    for node in g.forward_nodes() {
        if node.inputs.iter().any(|i| needs[i.0]) {
            for o in &node.outputs {
                needs[o.0] = true;
            }
        }
    }
    needs
}

/// Emits one backward node whose outputs have the shapes of the tensors they are gradients of.
fn emit(
    g: &mut Graph,
    op: Op,
    name: &str,
    inputs: &[TensorId],
    outputs: &[(&str, TensorId)],
) -> Vec<TensorId> {
    let outs: Vec<(&str, Vec<usize>, Role)> = outputs
        .iter()
        .map(|(suffix, of)| (*suffix, g.tensor(*of).shape.clone(), Role::Grad))
        .collect();
    g.add_node(op, name, inputs, &outs)
}

fn add_grad(g: &mut Graph, grads: &mut Grads, of: TensorId, d: TensorId) {
    if g.tensor(of).role != Role::Activation {
        return; // the input image needs no gradient
    }
    let total = match grads.of.get(&of) {
        None => d,
        Some(&prev) => {
            let name = format!("{}.grad_sum", g.tensor(of).name);
            g.add_node(
                Op::Add,
                &name,
                &[prev, d],
                &[("sum", g.tensor(of).shape.clone(), Role::Grad)],
            )[0]
        }
    };
    grads.of.insert(of, total);
}

/// A parameter gradient: computed straight into a ParamGrad tensor the optimizer reads.
fn param_grad(g: &mut Graph, op: Op, name: &str, inputs: &[TensorId], param: TensorId) {
    if !g.tensor(param).trainable {
        return;
    }
    let d = emit(g, op, name, inputs, &[("grad", param)]);
    set_param_grad(g, param, d[0]);
}

fn set_param_grad(g: &mut Graph, param: TensorId, d: TensorId) {
    if !g.tensor(param).trainable {
        return;
    }
    assert!(
        g.grads.iter().all(|(p, _)| *p != param),
        "parameter {} is read by two nodes",
        g.tensor(param).name
    );
    g.tensors[d.0].role = Role::ParamGrad;
    g.tensors[d.0].name = format!("{}.grad", g.tensor(param).name);
    g.grads.push((param, d));
}

/// The conv weight gradient, with the split-K reduction's scratch as a second output.
fn conv_weight_grad(
    g: &mut Graph,
    a: ConvAttrs,
    name: &str,
    dy: TensorId,
    x: TensorId,
    weight: TensorId,
) {
    if !g.tensor(weight).trainable {
        return;
    }
    let partials = shapes::conv(g, a, x, weight).dw_partials_len().max(1);
    let outs = [
        ("dw", g.tensor(weight).shape.clone(), Role::Grad),
        ("partials", vec![partials], Role::Scratch),
    ];
    let d = g.add_node(Op::Conv2dBackwardWeight(a), name, &[dy, x], &outs);
    set_param_grad(g, weight, d[0]);
}

/// dw = sum(dtfd * ipd), with the reduction's scratch as a second output.
fn residual_weight_grad(
    g: &mut Graph,
    a: ResidualAttrs,
    name: &str,
    dtfd: TensorId,
    ipd: TensorId,
    w: TensorId,
) {
    let n = g.tensor(ipd).len();
    let partials = if a.per_channel {
        1
    } else {
        reduce::dot_partials_len(n)
    };
    let outs = [
        ("dw", g.tensor(w).shape.clone(), Role::Grad),
        ("partials", vec![partials], Role::Scratch),
    ];
    let d = g.add_node(Op::ResidualBackwardWeight(a), name, &[dtfd, ipd], &outs);
    set_param_grad(g, w, d[0]);
}
