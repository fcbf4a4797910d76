//! The Program: SSA tensor ops over a batch of lanes (one lane = one sample).
//!
//! Values are f32 lanes on every backend (booleans are 0.0/1.0). Each op is
//! either shared by all worlds (`world == None`) or belongs to one world,
//! which is how "compute once what no edit reaches" is made visible: the
//! `share` pass moves identical per-world ops into the shared set.
//!
//! A `Program` is plain data; backends take a [`VerifiedProgram`], which only
//! [`crate::verify::verify`] constructs.

use std::fmt;

pub use whatif_lang::{Dist, UnitAgg};

/// Index of an op (and of the value it defines) in [`Program::ops`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

impl ValueId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for ValueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// Elementwise unary operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    /// Boolean not: 1 when the operand is 0, else 0.
    Not,
    Exp,
    Log,
    Sqrt,
    Abs,
    Sigmoid,
    Logit,
    Tanh,
    Floor,
    Ceil,
    /// Round half away from zero.
    Round,
}

/// Elementwise binary operations. Comparisons and logic yield 0.0/1.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Min,
    Max,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    /// Both operands non-zero.
    And,
    /// Either operand non-zero.
    Or,
}

impl UnaryOp {
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Not => "not",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Logit => "logit",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Floor => "floor",
            UnaryOp::Ceil => "ceil",
            UnaryOp::Round => "round",
        }
    }

    /// The f64 reference semantics (also used by constant folding).
    pub fn eval(self, x: f64) -> f64 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Not => f64::from(x == 0.0),
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            UnaryOp::Logit => (x / (1.0 - x)).ln(),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Floor => x.floor(),
            UnaryOp::Ceil => x.ceil(),
            UnaryOp::Round => x.round(),
        }
    }
}

impl BinaryOp {
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Min => "min",
            BinaryOp::Max => "max",
            BinaryOp::Lt => "lt",
            BinaryOp::Le => "le",
            BinaryOp::Gt => "gt",
            BinaryOp::Ge => "ge",
            BinaryOp::Eq => "eq",
            BinaryOp::Ne => "ne",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
        }
    }

    /// Commutative ops are canonicalised (smaller operand first) by CSE.
    pub fn is_commutative(self) -> bool {
        matches!(
            self,
            BinaryOp::Add
                | BinaryOp::Mul
                | BinaryOp::Min
                | BinaryOp::Max
                | BinaryOp::Eq
                | BinaryOp::Ne
                | BinaryOp::And
                | BinaryOp::Or
        )
    }

    /// The f64 reference semantics (also used by constant folding).
    ///
    /// `min`/`max` propagate NaN (unlike `f64::min`), so a NaN is never
    /// silently replaced by the other operand.
    pub fn eval(self, a: f64, b: f64) -> f64 {
        let flag = |c: bool| f64::from(c);
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            BinaryOp::Min => {
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    a.min(b)
                }
            }
            BinaryOp::Max => {
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    a.max(b)
                }
            }
            BinaryOp::Lt => flag(a < b),
            BinaryOp::Le => flag(a <= b),
            BinaryOp::Gt => flag(a > b),
            BinaryOp::Ge => flag(a >= b),
            BinaryOp::Eq => flag(a == b),
            BinaryOp::Ne => flag(a != b),
            BinaryOp::And => flag(a != 0.0 && b != 0.0),
            BinaryOp::Or => flag(a != 0.0 || b != 0.0),
        }
    }
}

/// One SSA op; it defines the value with its own index.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A constant (stored in f64; backends round to f32 once).
    Const(f64),
    /// A runtime parameter: index into [`Program::params`].
    Param(u32),
    /// An exogenous noise draw of one site. `site` is the 32-bit site hash
    /// that fills the Philox counter; `args` are the distribution parameters.
    /// `period` goes into the Philox key; a `unit` draw is unit-level and
    /// puts the unit index into the counter (see [`crate::rng`]).
    Draw {
        dist: Dist,
        site: u32,
        args: Vec<ValueId>,
        period: u32,
        unit: bool,
    },
    /// Unit covariate `c` of the current unit (unit-level).
    Covariate(u32),
    /// Per-lane input `c`: lane `i` reads `Program::inputs` column `c` at
    /// row `i` (sample-level). A backtest's replay feeds observed values,
    /// abducted noise and lagged counterfactuals this way.
    Input(u32),
    /// An aggregate over all units of the sample of a unit-level value
    /// (sample-level). `Mean` divides the f32 sum by the unit count; `Count`
    /// counts non-zero lanes; `Max` propagates NaN.
    UnitAgg(UnitAgg, ValueId),
    Unary(UnaryOp, ValueId),
    Binary(BinaryOp, ValueId, ValueId),
    /// `cond != 0 ? then : otherwise`.
    Select(ValueId, ValueId, ValueId),
}

impl Op {
    /// Operands in order.
    pub fn operands(&self) -> Vec<ValueId> {
        match self {
            Op::Const(_) | Op::Param(_) | Op::Covariate(_) | Op::Input(_) => vec![],
            Op::Draw { args, .. } => args.clone(),
            Op::UnitAgg(_, a) => vec![*a],
            Op::Unary(_, a) => vec![*a],
            Op::Binary(_, a, b) => vec![*a, *b],
            Op::Select(c, a, b) => vec![*c, *a, *b],
        }
    }

    /// Rewrite every operand through `f`.
    pub fn map_operands(&mut self, mut f: impl FnMut(ValueId) -> ValueId) {
        match self {
            Op::Const(_) | Op::Param(_) | Op::Covariate(_) | Op::Input(_) => {}
            Op::Draw { args, .. } => {
                for a in args {
                    *a = f(*a);
                }
            }
            Op::Unary(_, a) | Op::UnitAgg(_, a) => *a = f(*a),
            Op::Binary(_, a, b) => {
                *a = f(*a);
                *b = f(*b);
            }
            Op::Select(c, a, b) => {
                *c = f(*c);
                *a = f(*a);
                *b = f(*b);
            }
        }
    }
}

/// A runtime parameter slot: a scenario parameter's value in one or more
/// worlds (a world that overrides the parameter gets its own slot).
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSlot {
    pub name: String,
    pub value: f64,
    /// `Some(w)` for a slot that only world `w` reads (a parameter override).
    pub world: Option<u32>,
}

/// Why a value is an output: what the statistics stage reduces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OutputRole {
    /// Argument `arg` of metric `metric` (index into the model's metrics).
    MetricArg { metric: u32, arg: u32 },
    /// The guarded node of guardrail `guardrail`.
    Guardrail { guardrail: u32 },
    /// A sample-level node a metric reads, at period `period` of a
    /// multi-period model: the fan charts' data (never reduced).
    Path { node: u32, period: u32 },
    /// Node `node`'s value (a backtest replay's counterfactual; never
    /// reduced by `run`).
    Node { node: u32 },
}

/// A value the executor must deliver per lane, for one world.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub world: u32,
    pub role: OutputRole,
    pub value: ValueId,
}

/// A node value watched for non-finite lanes (numeric faults).
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub node: String,
    /// Worlds in which the node takes this value (several when shared).
    pub worlds: Vec<u32>,
    pub value: ValueId,
}

/// A tensor program for a set of worlds.
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub ops: Vec<Op>,
    /// `op_world[i]`: `None` when op `i` is shared by all worlds.
    pub op_world: Vec<Option<u32>>,
    pub params: Vec<ParamSlot>,
    /// World names; index 0 is `baseline`.
    pub worlds: Vec<String>,
    pub outputs: Vec<Output>,
    pub probes: Vec<Probe>,
    pub seed: u64,
    /// Metric names, indexed by [`OutputRole::MetricArg::metric`].
    pub metric_names: Vec<String>,
    /// Guarded node names, indexed by [`OutputRole::Guardrail::guardrail`].
    pub guardrail_names: Vec<String>,
    /// The units every sample carries (`None`: no unit-level ops).
    pub units: Option<UnitTable>,
    /// Number of periods the model was unrolled over (1 without periods).
    pub periods: u32,
    /// Per-lane input columns read by [`Op::Input`] (`None`: no inputs).
    /// A program with inputs runs on exactly [`LaneInputs::lanes`] lanes.
    pub inputs: Option<LaneInputs>,
}

/// Per-lane data a program reads: `columns[c][i]` is input `c` of lane `i`
/// (f64; backends round once).
#[derive(Debug, Clone, PartialEq)]
pub struct LaneInputs {
    /// One name per column, for dumps and diagnostics.
    pub names: Vec<String>,
    pub columns: Vec<Vec<f64>>,
}

impl LaneInputs {
    /// The number of lanes (every column has this length).
    pub fn lanes(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }
}

/// The unit dimension of a program: how many units, and their covariates.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitTable {
    pub count: u32,
    /// Covariate names, indexed by [`Op::Covariate`].
    pub names: Vec<String>,
    /// `columns[c][u]`: covariate `c` of unit `u` (f64; backends round once).
    pub columns: Vec<Vec<f64>>,
}

impl UnitTable {
    /// Units without covariates.
    pub fn plain(count: u32) -> Self {
        UnitTable {
            count,
            names: vec![],
            columns: vec![],
        }
    }
}

impl Program {
    /// Append an op owned by `world`, returning its value.
    pub fn push(&mut self, op: Op, world: Option<u32>) -> ValueId {
        let id = ValueId(self.ops.len() as u32);
        self.ops.push(op);
        self.op_world.push(world);
        id
    }

    /// Number of ops of each kind of ownership: (shared, per world).
    pub fn op_counts(&self) -> (usize, usize) {
        let shared = self.op_world.iter().filter(|w| w.is_none()).count();
        (shared, self.ops.len() - shared)
    }

    /// Unit count (1 without units).
    pub fn unit_count(&self) -> u32 {
        self.units.as_ref().map_or(1, |u| u.count)
    }

    /// Count of `Draw` ops.
    pub fn n_draws(&self) -> usize {
        self.ops
            .iter()
            .filter(|o| matches!(o, Op::Draw { .. }))
            .count()
    }
}

/// A program that passed [`crate::verify::verify`]. Backends accept only this.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedProgram(pub(crate) Program);

impl VerifiedProgram {
    pub fn program(&self) -> &Program {
        &self.0
    }
    pub fn into_inner(self) -> Program {
        self.0
    }
}

impl std::ops::Deref for VerifiedProgram {
    type Target = Program;
    fn deref(&self) -> &Program {
        &self.0
    }
}
