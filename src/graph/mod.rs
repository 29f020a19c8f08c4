//! The graph IR: tensors with shapes and roles, nodes from one `Op` enum.
//!
//! Model builders write the forward graph; `autodiff` derives the backward nodes from it;
//! `plan` assigns GPU memory by liveness; `gpu_exec` and `cpu_exec` run the same nodes with
//! the WGSL kernels or with the f64 reference twins.

pub mod autodiff;
pub mod cpu_exec;
pub mod gpu_exec;
pub mod init;
pub mod lower;
pub mod op;
pub mod plan;
pub mod shapes;

pub use op::Op;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TensorId(pub usize);

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The image batch.
    Input,
    /// Integer class labels (u32 on the GPU).
    Label,
    /// A learned parameter (`trainable`) or a fixed one (the `w` of `standard`/`fixed:K`).
    Param,
    /// State that persists across steps but is not learned: BN running statistics.
    State,
    /// A forward intermediate.
    Activation,
    /// The gradient of an activation (lives only during backward).
    Grad,
    /// The gradient of a parameter (kept for the optimizer).
    ParamGrad,
    /// Per-step outputs read back by the host: loss and correct count.
    Metric,
    /// Scratch space of one node (reduction partials).
    Scratch,
}

impl Role {
    /// Persistent tensors get their own buffer for the whole run; the rest share memory.
    pub fn persistent(self) -> bool {
        matches!(
            self,
            Role::Input | Role::Label | Role::Param | Role::State | Role::ParamGrad | Role::Metric
        )
    }
}

/// How a parameter or state tensor starts.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub enum Init {
    Zeros,
    Ones,
    Const(f32),
    /// N(0, sigma).
    Normal(f32),
    /// Keras's default kernel initialiser: U(-l, l), l = sqrt(6 / (fan_in + fan_out)).
    GlorotUniform {
        fan_in: usize,
        fan_out: usize,
    },
    /// He/Kaiming normal, N(0, sqrt(2 / fan_in)), for the CIFAR-style presets.
    HeNormal {
        fan_in: usize,
    },
}

#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub role: Role,
    pub init: Option<Init>,
    /// For parameters: whether the optimizer updates it (and backward computes its gradient).
    pub trainable: bool,
}

impl Tensor {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn bytes(&self) -> u64 {
        4 * self.len() as u64
    }
}

#[derive(Clone, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
    /// The layer it belongs to, e.g. `stage2.block1.conv2`.
    pub name: String,
}

/// A forward graph, or a forward graph with its backward nodes appended.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub tensors: Vec<Tensor>,
    pub nodes: Vec<Node>,
    /// Number of forward nodes; nodes past it are backward (appended by `autodiff`).
    pub forward_len: usize,
    pub differentiated: bool,
    pub input: Option<TensorId>,
    pub labels: Option<TensorId>,
    pub logits: Option<TensorId>,
    pub metrics: Option<TensorId>,
    /// Each trainable parameter and its gradient (filled by `autodiff`).
    pub grads: Vec<(TensorId, TensorId)>,
    /// The blocks' residual weights `w`, in block order, with the block names.
    pub residual_weights: Vec<(String, TensorId)>,
}

impl Graph {
    pub fn tensor(&self, id: TensorId) -> &Tensor {
        &self.tensors[id.0]
    }

    pub fn add_tensor(&mut self, name: impl Into<String>, shape: &[usize], role: Role) -> TensorId {
        self.tensors.push(Tensor {
            name: name.into(),
            shape: shape.to_vec(),
            role,
            init: None,
            trainable: false,
        });
        TensorId(self.tensors.len() - 1)
    }

    pub fn add_param(
        &mut self,
        name: impl Into<String>,
        shape: &[usize],
        init: Init,
        trainable: bool,
    ) -> TensorId {
        let id = self.add_tensor(name, shape, Role::Param);
        self.tensors[id.0].init = Some(init);
        self.tensors[id.0].trainable = trainable;
        id
    }

    pub fn add_state(&mut self, name: impl Into<String>, shape: &[usize], init: Init) -> TensorId {
        let id = self.add_tensor(name, shape, Role::State);
        self.tensors[id.0].init = Some(init);
        id
    }

    /// Appends a node whose outputs are new tensors of the given shapes, named `name.suffix`.
    pub fn add_node(
        &mut self,
        op: Op,
        name: &str,
        inputs: &[TensorId],
        outputs: &[(&str, Vec<usize>, Role)],
    ) -> Vec<TensorId> {
        let outs: Vec<TensorId> = outputs
            .iter()
            .map(|(suffix, shape, role)| self.add_tensor(format!("{name}.{suffix}"), shape, *role))
            .collect();
        self.nodes.push(Node {
            op,
            inputs: inputs.to_vec(),
            outputs: outs.clone(),
            name: name.into(),
        });
        if !self.differentiated {
            self.forward_len = self.nodes.len();
        }
        outs
    }

    pub fn params(&self) -> impl Iterator<Item = TensorId> + '_ {
        self.tensors
            .iter()
            .enumerate()
            .filter(|(_, t)| t.role == Role::Param)
            .map(|(i, _)| TensorId(i))
    }

    pub fn states(&self) -> impl Iterator<Item = TensorId> + '_ {
        self.tensors
            .iter()
            .enumerate()
            .filter(|(_, t)| t.role == Role::State)
            .map(|(i, _)| TensorId(i))
    }

    pub fn param_count(&self) -> usize {
        self.params()
            .filter(|&p| self.tensor(p).trainable)
            .map(|p| self.tensor(p).len())
            .sum()
    }

    pub fn forward_nodes(&self) -> &[Node] {
        &self.nodes[..self.forward_len]
    }

    /// Nodes appended by `autodiff` (none before it runs).
    pub fn backward_nodes(&self) -> &[Node] {
        &self.nodes[self.forward_len..]
    }
}
