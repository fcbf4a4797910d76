//! The validated causal model: what the front end hands to the IR.
//!
//! Every type here is plain data, but a [`CausalModel`] can only be built by
//! the resolver in this crate (its constructor is crate-private), so a value
//! of that type is proof that the scenario passed validation: names resolve,
//! the graph of every world is acyclic, types check, distribution parameters
//! that are constants are valid, and noise-site hashes do not collide.
//!
//! Ids (`NodeId`, `ParamId`, …) index the vectors of the model that owns them.
//! Spans are byte offsets into the scenario file's source text.

use std::fmt;

/// A half-open byte range `[start, end)` in the scenario source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
    pub fn len(&self) -> usize {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
        impl $name {
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(
    /// Index into [`CausalModel::nodes`].
    NodeId
);
id_type!(
    /// Index into [`CausalModel::params`].
    ParamId
);
id_type!(
    /// Index into [`CausalModel::edits`].
    EditId
);
id_type!(
    /// Index into [`CausalModel::worlds`]; world 0 is always `baseline`.
    WorldId
);
id_type!(
    /// Index into [`CausalModel::metrics`].
    MetricId
);
id_type!(
    /// Index into [`CausalModel::sites`].
    SiteId
);

/// Value type of an expression. Booleans come from comparisons and
/// `and`/`or`/`not`; in arithmetic they count as 0/1. Numbers never become
/// booleans implicitly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Type {
    Num,
    Bool,
}

/// Binary operators, arithmetic, comparison and logical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    And,
    Or,
}

impl BinOp {
    /// The operator as written in scenario source.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Pow => "^",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }

    /// The operator on f64 scalars, the language's reference semantics:
    /// comparisons and logic give 1 or 0, and a non-zero operand is true.
    pub fn apply(self, l: f64, r: f64) -> f64 {
        let b = |c: bool| f64::from(c);
        match self {
            BinOp::Add => l + r,
            BinOp::Sub => l - r,
            BinOp::Mul => l * r,
            BinOp::Div => l / r,
            BinOp::Pow => l.powf(r),
            BinOp::Lt => b(l < r),
            BinOp::Le => b(l <= r),
            BinOp::Gt => b(l > r),
            BinOp::Ge => b(l >= r),
            BinOp::Eq => b(l == r),
            BinOp::Ne => b(l != r),
            BinOp::And => b(l != 0.0 && r != 0.0),
            BinOp::Or => b(l != 0.0 || r != 0.0),
        }
    }
}

/// Deterministic built-in functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    Exp,
    Log,
    Sqrt,
    Abs,
    Min,
    Max,
    /// `clamp(x, lo, hi)`
    Clamp,
    /// `pow(x, y)`, the same as `x ^ y`.
    Pow,
    Sigmoid,
    Logit,
    Tanh,
    Floor,
    Ceil,
    Round,
}

impl Func {
    pub const ALL: [Func; 14] = [
        Func::Exp,
        Func::Log,
        Func::Sqrt,
        Func::Abs,
        Func::Min,
        Func::Max,
        Func::Clamp,
        Func::Pow,
        Func::Sigmoid,
        Func::Logit,
        Func::Tanh,
        Func::Floor,
        Func::Ceil,
        Func::Round,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Func::Exp => "exp",
            Func::Log => "log",
            Func::Sqrt => "sqrt",
            Func::Abs => "abs",
            Func::Min => "min",
            Func::Max => "max",
            Func::Clamp => "clamp",
            Func::Pow => "pow",
            Func::Sigmoid => "sigmoid",
            Func::Logit => "logit",
            Func::Tanh => "tanh",
            Func::Floor => "floor",
            Func::Ceil => "ceil",
            Func::Round => "round",
        }
    }
    pub fn arity(self) -> usize {
        match self {
            Func::Min | Func::Max | Func::Pow => 2,
            Func::Clamp => 3,
            _ => 1,
        }
    }
    pub fn from_name(s: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == s)
    }
}

/// Distributions a noise site can draw from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dist {
    /// `normal(mu, sd)`, sd > 0
    Normal,
    /// `lognormal(mu, sigma)`: exp of a normal, sigma > 0
    LogNormal,
    /// `uniform(a, b)`, a < b
    Uniform,
    /// `bernoulli(p)`, p in [0, 1]; yields the number 0 or 1
    Bernoulli,
    /// `exponential(rate)`, rate > 0
    Exponential,
    /// `laplace(mu, b)`, b > 0
    Laplace,
    /// `logistic(mu, s)`, s > 0
    Logistic,
    /// `student_t(df)`, df > 0
    StudentT,
    /// `gamma(shape, scale)`, both > 0
    Gamma,
    /// `beta(a, b)`, both > 0
    Beta,
}

impl Dist {
    pub const ALL: [Dist; 10] = [
        Dist::Normal,
        Dist::LogNormal,
        Dist::Uniform,
        Dist::Bernoulli,
        Dist::Exponential,
        Dist::Laplace,
        Dist::Logistic,
        Dist::StudentT,
        Dist::Gamma,
        Dist::Beta,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Dist::Normal => "normal",
            Dist::LogNormal => "lognormal",
            Dist::Uniform => "uniform",
            Dist::Bernoulli => "bernoulli",
            Dist::Exponential => "exponential",
            Dist::Laplace => "laplace",
            Dist::Logistic => "logistic",
            Dist::StudentT => "student_t",
            Dist::Gamma => "gamma",
            Dist::Beta => "beta",
        }
    }
    pub fn arity(self) -> usize {
        match self {
            Dist::Bernoulli | Dist::Exponential | Dist::StudentT => 1,
            _ => 2,
        }
    }
    pub fn from_name(s: &str) -> Option<Dist> {
        Dist::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// A typed expression with its source span.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
    pub ty: Type,
}

impl Expr {
    /// Calls `f` on this expression and every sub-expression, pre-order.
    pub fn walk(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match &self.kind {
            ExprKind::Neg(x) | ExprKind::Not(x) => x.walk(f),
            ExprKind::Binary { lhs, rhs, .. } => {
                lhs.walk(f);
                rhs.walk(f);
            }
            ExprKind::If {
                cond,
                then,
                otherwise,
            } => {
                cond.walk(f);
                then.walk(f);
                otherwise.walk(f);
            }
            ExprKind::Call { args, .. } | ExprKind::Draw { args, .. } => {
                args.iter().for_each(|a| a.walk(f));
            }
            ExprKind::UnitAgg { arg, .. } | ExprKind::Path { arg, .. } => arg.walk(f),
            ExprKind::Num(_)
            | ExprKind::Param(_)
            | ExprKind::Node(_)
            | ExprKind::Natural(_)
            | ExprKind::Covariate(_)
            | ExprKind::Lag { .. } => {}
        }
    }
}

/// Expression forms after name resolution.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Num(f64),
    Param(ParamId),
    Node(NodeId),
    /// Inside an edit of node `n`: `n`'s own natural value in that world
    /// (its baseline mechanism evaluated on that world's parents).
    Natural(NodeId),
    Neg(Box<Expr>),
    Not(Box<Expr>),
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `if(cond, then, else)`; `cond` is boolean.
    If {
        cond: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    Call {
        func: Func,
        args: Vec<Expr>,
    },
    /// A distribution call: one exogenous noise site.
    Draw {
        dist: Dist,
        args: Vec<Expr>,
        site: SiteId,
    },
    /// Unit covariate `c` (index into [`Units::covariates`]).
    Covariate(u32),
    /// `lag(node, k)`: the node's value `k ≥ 1` periods earlier (its `init`
    /// before period 0).
    Lag {
        node: NodeId,
        k: u32,
    },
    /// `sum_units(arg)` and friends: `arg` evaluated per unit, aggregated.
    UnitAgg {
        agg: UnitAgg,
        arg: Box<Expr>,
    },
    /// `at(arg, t)`, `final(arg)`, `path_max(arg)`, `path_sum(arg)` (metric
    /// arguments only).
    Path {
        path: PathFn,
        arg: Box<Expr>,
    },
}

/// A named numeric parameter from `[params]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    pub value: f64,
    pub span: Span,
}

impl Param {
    /// A `?name` parameter, estimated by `whatif fit` (its `value` is NaN
    /// until a fit lock supplies one).
    pub fn is_fitted(&self) -> bool {
        self.name.starts_with('?')
    }
}

/// A node (endogenous variable) with its baseline mechanism.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    /// Span of the node's name (the TOML key).
    pub span: Span,
    pub expr: Expr,
    pub latent: bool,
    pub doc: Option<String>,
    /// Nodes read by the baseline mechanism, sorted by id, without duplicates.
    /// Same-period reads only: `lag(x)` is in [`Node::lag_parents`].
    pub parents: Vec<NodeId>,
    /// Nodes read through `lag(..)` by the baseline mechanism, sorted, unique.
    pub lag_parents: Vec<NodeId>,
    /// Sample level (one value per Monte Carlo path) or unit level (one per
    /// unit on the path); see [`Level`].
    pub level: Level,
    /// `init`: the node's value at every period before 0, read by `lag`.
    /// `None` means 0.
    pub init: Option<Expr>,
}

/// The level a node lives at in a structured model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Level {
    /// One value per Monte Carlo sample (the shared macro path).
    #[default]
    Sample,
    /// One value per unit of `[units]` on each sample.
    Unit,
}

/// An aggregate over the units of one sample: `sum_units(..)` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitAgg {
    Sum,
    Mean,
    /// `count_units(cond)`: the number of units where `cond` holds.
    Count,
    Max,
}

impl UnitAgg {
    pub const ALL: [UnitAgg; 4] = [UnitAgg::Sum, UnitAgg::Mean, UnitAgg::Count, UnitAgg::Max];
    pub fn name(self) -> &'static str {
        match self {
            UnitAgg::Sum => "sum_units",
            UnitAgg::Mean => "mean_units",
            UnitAgg::Count => "count_units",
            UnitAgg::Max => "max_units",
        }
    }
    pub fn from_name(s: &str) -> Option<UnitAgg> {
        UnitAgg::ALL.into_iter().find(|a| a.name() == s)
    }
}

/// A function of a node's path over periods, allowed in metric arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathFn {
    /// `at(x, t)`: the value at period `t` (0-based).
    At(u32),
    /// `final(x)`: the value at the last period.
    Final,
    /// `path_max(x)`: the largest value over all periods.
    Max,
    /// `path_sum(x)`: the sum over all periods.
    Sum,
}

impl PathFn {
    pub const NAMES: [&'static str; 4] = ["at", "final", "path_max", "path_sum"];
    pub fn name(self) -> &'static str {
        match self {
            PathFn::At(_) => "at",
            PathFn::Final => "final",
            PathFn::Max => "path_max",
            PathFn::Sum => "path_sum",
        }
    }
}

/// `[units]`: how many units each sample carries, with their covariates.
#[derive(Debug, Clone, PartialEq)]
pub struct Units {
    pub count: u32,
    /// `path = "portfolio.csv"` as written (relative to the scenario).
    pub path: Option<String>,
    /// Covariate names (CSV header order), usable in expressions.
    pub covariates: Vec<String>,
    /// `values[c][u]`: covariate `c` of unit `u`.
    pub values: Vec<Vec<f64>>,
    /// Span of the `[units]` table key.
    pub span: Span,
}

/// Who owns a noise site: the stable identity its hash is computed from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SiteKey {
    pub node: String,
    /// `Some(edit)` only for calls in an edit that reads the node's own value
    /// (new randomness); `None` for the mechanism and for pure replacements.
    pub edit: Option<String>,
    /// Ordinal of the call in its expression, source order, depth first.
    pub ordinal: u32,
}

impl fmt::Display for SiteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.edit {
            Some(e) => write!(f, "{}@{}#{}", self.node, e, self.ordinal),
            None => write!(f, "{}#{}", self.node, self.ordinal),
        }
    }
}

/// One exogenous noise site. Two distribution calls share a `SiteId` exactly
/// when they share a [`SiteKey`] (an edit that replaces a mechanism reuses the
/// baseline's sites), so they see the same underlying uniforms.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseSite {
    pub key: SiteKey,
    /// The stable 32-bit id that fills one word of the Philox counter:
    /// [`site_hash`] of the key.
    pub hash: u32,
    /// Span of the first call that created the site.
    pub span: Span,
}

/// FNV-1a over the key's canonical text (`node#ordinal` or
/// `node@edit#ordinal`), then the murmur3 32-bit finaliser for avalanche.
/// Fixed forever: changing it changes every result ever published.
pub fn site_hash(key: &SiteKey) -> u32 {
    let text = key.to_string();
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// `[interventions.*]` are policies; `[stresses.*]` are exogenous shocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EditKind {
    Intervention,
    Stress,
}

/// One named edit: mechanism replacements and parameter overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    pub name: String,
    pub kind: EditKind,
    /// Span of the edit's name (its table header key).
    pub span: Span,
    pub nodes: Vec<NodeEdit>,
    pub params: Vec<ParamOverride>,
}

/// Replace `node`'s mechanism by `expr` in every world containing the edit.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeEdit {
    pub node: NodeId,
    pub expr: Expr,
    /// `expr` reads the node's own natural value ([`ExprKind::Natural`]).
    pub reads_self: bool,
    /// Span of the key (`credit_limit = ...`).
    pub span: Span,
    /// Nodes read by `expr` (not counting `Natural`), sorted, unique.
    pub parents: Vec<NodeId>,
    /// First period the edit applies from (`{ expr, from }`); 0 by default.
    pub from: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParamOverride {
    pub param: ParamId,
    pub value: f64,
    pub span: Span,
}

/// A world: the baseline with a set of commuting edits applied.
#[derive(Debug, Clone, PartialEq)]
pub struct World {
    /// Canonical name: edit names joined by `+` in the order written in
    /// `[run] worlds` (or file order for defaults); `baseline` for none.
    pub name: String,
    /// Edits in this world, each touching different nodes and params.
    pub edits: Vec<EditId>,
    /// A topological order of all nodes under this world's mechanisms.
    pub topo_order: Vec<NodeId>,
    /// Where the world was named (`[run] worlds` entry or a check), if any.
    pub span: Option<Span>,
}

/// Aggregates available in `[metrics]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricKind {
    Mean,
    Var,
    Sd,
    /// `quantile(x, q)`: X₍⌈nq⌉₎.
    Quantile(f64),
    /// `value_at_risk(x, q)`: X₍⌈nq⌉₎ for a loss, upper tail.
    ValueAtRisk(f64),
    /// `expected_shortfall(x, q)`: Acerbi–Tasche tail mean above level q.
    ExpectedShortfall(f64),
    /// `prob(cond)`: share of samples where the boolean is true.
    Prob,
    /// `corr(x, y)`: Pearson correlation.
    Corr,
}

impl MetricKind {
    pub fn name(&self) -> &'static str {
        match self {
            MetricKind::Mean => "mean",
            MetricKind::Var => "var",
            MetricKind::Sd => "sd",
            MetricKind::Quantile(_) => "quantile",
            MetricKind::ValueAtRisk(_) => "value_at_risk",
            MetricKind::ExpectedShortfall(_) => "expected_shortfall",
            MetricKind::Prob => "prob",
            MetricKind::Corr => "corr",
        }
    }
    /// Number of expression arguments (`corr` takes two; the level `q` of a
    /// tail metric is not an expression argument).
    pub fn n_exprs(&self) -> usize {
        match self {
            MetricKind::Corr => 2,
            _ => 1,
        }
    }
}

/// A metric from `[metrics]`, evaluated in every world.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: String,
    pub span: Span,
    /// The metric's source text (the TOML string's value).
    pub source: String,
    pub kind: MetricKind,
    /// Expression arguments over nodes and params (`n_exprs()` of them).
    pub args: Vec<Expr>,
}

/// Expressions in `[[checks]] expect`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckExpr {
    pub kind: CheckExprKind,
    pub span: Span,
    pub ty: Type,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckExprKind {
    Num(f64),
    Param(ParamId),
    /// `metric[world]`; a bare `metric` means `metric[baseline]`.
    Metric {
        metric: MetricId,
        world: WorldId,
    },
    /// `effect(metric, world)`: metric[world] − metric[baseline].
    Effect {
        metric: MetricId,
        world: WorldId,
    },
    /// `ratio(metric, world, other)`: metric[world] / metric[other].
    Ratio {
        metric: MetricId,
        world: WorldId,
        other: WorldId,
    },
    Neg(Box<CheckExpr>),
    Not(Box<CheckExpr>),
    Binary {
        op: BinOp,
        lhs: Box<CheckExpr>,
        rhs: Box<CheckExpr>,
    },
    Call {
        func: Func,
        args: Vec<CheckExpr>,
    },
}

/// A pass/fail check over metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    /// The `expect` string as written.
    pub expect_source: String,
    pub expect: CheckExpr,
    /// Span of the `expect` value.
    pub span: Span,
}

/// Bounds a policy world must respect on a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Guardrail {
    pub node: NodeId,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Tolerated share of violating samples; 0 means any violation fails.
    pub max_share: f64,
    /// Worlds the bound applies to (default: every world with an intervention).
    pub worlds: Vec<WorldId>,
    pub span: Span,
}

/// A validated structural causal model with its edits, worlds, metrics,
/// checks and guardrails. Only the resolver can construct one
/// (`#[non_exhaustive]` keeps outside crates from building it).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct CausalModel {
    pub name: String,
    pub description: Option<String>,
    pub n_samples: u64,
    pub seed: u64,
    pub params: Vec<Param>,
    /// Nodes in file order.
    pub nodes: Vec<Node>,
    /// Baseline topological order (ties broken by file order).
    pub topo_order: Vec<NodeId>,
    pub sites: Vec<NoiseSite>,
    pub edits: Vec<Edit>,
    /// `worlds[0]` is `baseline`, then the worlds to evaluate, in order.
    pub worlds: Vec<World>,
    pub metrics: Vec<Metric>,
    pub checks: Vec<Check>,
    pub guardrails: Vec<Guardrail>,
    /// `[data]`: observed rows for `whatif fit` and `whatif backtest`.
    pub data: Option<DataSpec>,
    /// `[sweeps]`: parameter grids `whatif run` evaluates (file order; the
    /// first sweep varies slowest).
    pub sweeps: Vec<crate::sweep::Sweep>,
    /// `[units]`: the portfolio each sample carries, if any.
    pub units: Option<Units>,
    /// `[periods] count`: 1 for a model without periods.
    pub periods: u32,
    /// Whether `[periods]` was declared (a one-period model still allows `lag`).
    pub has_periods: bool,
}

/// The validated `[data]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct DataSpec {
    /// The path as written (relative to the scenario file's directory).
    pub path: String,
    pub path_span: Span,
    /// Period column (rows are reported per period), with its span.
    pub period: Option<(String, Span)>,
    /// Unit id column (copied to per-row outputs), with its span.
    pub unit: Option<(String, Span)>,
    /// The column of every observed (non-latent) node, in node order.
    pub columns: Vec<DataColumn>,
    /// Span of the `[data]` key.
    pub span: Span,
}

/// Which column holds an observed node.
#[derive(Debug, Clone, PartialEq)]
pub struct DataColumn {
    pub node: NodeId,
    pub column: String,
    /// Span of the explicit mapping's value; `None` when the column is the
    /// node's own name by default.
    pub span: Option<Span>,
}

impl CausalModel {
    /// Whether the model has units or periods (the structured-model path).
    pub fn is_structured(&self) -> bool {
        self.units.is_some() || self.has_periods
    }
    /// Number of units per sample (1 without `[units]`).
    pub fn unit_count(&self) -> u32 {
        self.units.as_ref().map_or(1, |u| u.count)
    }
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .map(|i| NodeId(i as u32))
    }
    pub fn param_id(&self, name: &str) -> Option<ParamId> {
        self.params
            .iter()
            .position(|p| p.name == name)
            .map(|i| ParamId(i as u32))
    }
    pub fn world_id(&self, name: &str) -> Option<WorldId> {
        self.worlds
            .iter()
            .position(|w| w.name == name)
            .map(|i| WorldId(i as u32))
    }
    pub fn metric_id(&self, name: &str) -> Option<MetricId> {
        self.metrics
            .iter()
            .position(|m| m.name == name)
            .map(|i| MetricId(i as u32))
    }
    /// The mechanism of `node` in `world`: the edit's expression when one of
    /// the world's edits replaces it, else the baseline mechanism.
    pub fn mechanism(&self, world: WorldId, node: NodeId) -> Mechanism<'_> {
        for &e in &self.worlds[world.index()].edits {
            let edit = &self.edits[e.index()];
            if let Some(ne) = edit.nodes.iter().find(|ne| ne.node == node) {
                return Mechanism::Edited {
                    edit: e,
                    node_edit: ne,
                };
            }
        }
        Mechanism::Natural(&self.nodes[node.index()].expr)
    }
    /// The mechanism of `node` in `world` at `period`: an edit applies from
    /// its `from` period on; before that the node follows its baseline.
    pub fn mechanism_at(&self, world: WorldId, node: NodeId, period: u32) -> Mechanism<'_> {
        match self.mechanism(world, node) {
            Mechanism::Edited { node_edit, .. } if period < node_edit.from => {
                Mechanism::Natural(&self.nodes[node.index()].expr)
            }
            m => m,
        }
    }
    /// The value of `param` in `world`, with the world's overrides applied.
    pub fn param_value(&self, world: WorldId, param: ParamId) -> f64 {
        for &e in &self.worlds[world.index()].edits {
            if let Some(o) = self.edits[e.index()]
                .params
                .iter()
                .find(|o| o.param == param)
            {
                return o.value;
            }
        }
        self.params[param.index()].value
    }
}

/// Which mechanism a node follows in a world.
#[derive(Debug, Clone, Copy)]
pub enum Mechanism<'a> {
    Natural(&'a Expr),
    Edited {
        edit: EditId,
        node_edit: &'a NodeEdit,
    },
}
