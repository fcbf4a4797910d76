//! Maximum likelihood by burn's autodiff: the [`MleSolver`] of
//! `whatif_data::mle` (issue #5).
//!
//! **Objective and gradient.** Each batch of rows is uploaded as f32
//! tensors (one per column, and `y`); the fitted params are one tensor
//! with `require_grad` on an autodiff device (`Device::autodiff`). The
//! argument expressions ([`MleExpr`]) become burn tensor ops, the batch's
//! negative log-likelihood one scalar, `backward()` its gradient. Batch
//! sums come back to the host as scalars and are accumulated in f64, so
//! one pass over the data gives the full-batch objective and gradient with
//! memory bounded by a batch. burn has no lgamma: the gamma, beta and t
//! densities use [`ln_gamma`], a shifted Stirling series of tensor ops.
//!
//! **Optimiser.** Levenberg–Marquardt-damped Newton: the Hessian is the
//! forward difference of autodiff gradients (p extra passes per iteration,
//! p the number of params, a handful), the step solves
//! (H + λ·diag H) δ = −g by Cholesky, and a step is taken only when the
//! objective there is finite and not higher (up to f32 rounding); else λ
//! grows tenfold. A step whose objective is not finite (an sd ≤ 0, a
//! probability outside [0, 1], a gamma shape ≤ 0) is simply rejected.
//! Converged when every component of the step is under 10⁻⁴ of that
//! param's standard error.
//! Starting point: the lowest finite objective among
//! [`MleProblem::starts`].
//!
//! **Standard errors.** √diag(H⁻¹), H the Hessian of the negative
//! log-likelihood at the optimum (observed information), by central
//! differences of autodiff gradients.
//!
//! **Device.** The wgpu adapter's device, or burn's `flex` CPU backend
//! ([`BurnMle::flex`]); the lock's `method` says which
//! (`mle_autodiff (wgpu)` / `mle_autodiff (flex)`). Precision: the device
//! works in f32 and the host sums in f64; the tests check the optimum
//! against the f64 reference objective of `whatif_data::mle`.

use std::panic::AssertUnwindSafe;

use burn::tensor::{Device, Tensor, TensorData};
use whatif_data::DataError;
use whatif_data::fit::invert_spd;
use whatif_data::mle::{
    MleBinary, MleDist, MleExpr, MleFit, MleProblem, MleSolver, MleUnary, RowBatch, RowSource,
};

use crate::adapter::AdapterInfo;

type T = Tensor<1>;

/// Optimiser iterations before giving up.
pub const MAX_ITERATIONS: u32 = 100;
/// Converged when every step component is below this share of its SE.
const STEP_TOL_SE: f64 = 1e-4;
/// Relative slack of the objective's comparison (f32 rounding of batch
/// sums): a step may raise the objective by this × (|f| + n).
const F32_SLACK: f64 = 1e-6;

/// The burn autodiff solver on one device.
#[derive(Debug, Clone)]
pub struct BurnMle {
    device: Device,
    /// `wgpu` or `flex`.
    kind: &'static str,
    /// For messages: the adapter, or the CPU backend.
    what: String,
}

impl BurnMle {
    /// burn's `flex` backend on the CPU (always available).
    pub fn flex() -> BurnMle {
        BurnMle {
            device: Device::flex(),
            kind: "flex",
            what: "burn flex (CPU)".into(),
        }
    }

    /// The wgpu device of an adapter.
    pub fn on_adapter(info: &AdapterInfo) -> BurnMle {
        BurnMle {
            device: Device::new(info.wgpu_device()),
            kind: "wgpu",
            what: format!("wgpu on {}", info.describe()),
        }
    }

    /// The hardware GPU when there is one (as `--backend auto` picks it),
    /// else `flex` on the CPU: a software rasteriser such as lavapipe is
    /// slower than `flex` for this.
    pub fn auto() -> BurnMle {
        match crate::adapter::auto_pick() {
            Some(a) => BurnMle::on_adapter(&a),
            None => BurnMle::flex(),
        }
    }

    /// `wgpu` or `flex`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

impl MleSolver for BurnMle {
    fn name(&self) -> String {
        format!("maximum likelihood by burn autodiff ({})", self.what)
    }

    fn solve(&self, problem: &MleProblem, rows: &mut dyn RowSource) -> Result<MleFit, DataError> {
        // burn panics on a device that fails mid-run: report it instead.
        std::panic::catch_unwind(AssertUnwindSafe(|| Solver { s: self, problem }.run(rows)))
            .unwrap_or_else(|e| {
                Err(cannot(
                    problem,
                    format!(
                        "the burn device ({}) failed: {}",
                        self.what,
                        crate::device::panic_text(&e)
                    ),
                ))
            })
    }
}

fn cannot(problem: &MleProblem, reason: String) -> DataError {
    DataError::CannotFit {
        node: problem.node.clone(),
        reason,
    }
}

/// A value during a batch: a host constant or one f32 per row.
/// (A handful live at a time; boxing the tensor would buy nothing.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum V {
    S(f64),
    T(T),
}

struct Solver<'a> {
    s: &'a BurnMle,
    problem: &'a MleProblem,
}

/// The objective (and gradient) over all rows.
struct Eval {
    f: f64,
    g: Vec<f64>,
    n: u64,
}

impl Solver<'_> {
    fn tensor(&self, xs: &[f64], dev: &Device) -> T {
        let v: Vec<f32> = xs.iter().map(|&x| x as f32).collect();
        let n = v.len();
        T::from_data(TensorData::new(v, [n]), dev)
    }

    fn full(&self, n: usize, x: f64, dev: &Device) -> T {
        T::full([n], x as f32, dev)
    }

    fn t(&self, v: V, n: usize, dev: &Device) -> T {
        match v {
            V::S(x) => self.full(n, x, dev),
            V::T(t) => t,
        }
    }

    fn unary(&self, op: MleUnary, x: V) -> V {
        let t = match x {
            V::S(x) => {
                let b = RowBatch::default();
                let e = MleExpr::Unary(op, Box::new(MleExpr::Num(x)));
                return V::S(e.eval(&[], &b, 0));
            }
            V::T(t) => t,
        };
        V::T(match op {
            MleUnary::Neg => t.neg(),
            MleUnary::Exp => t.exp(),
            MleUnary::Log => t.log(),
            MleUnary::Sqrt => t.sqrt(),
            MleUnary::Abs => t.abs(),
            MleUnary::Sigmoid => t.neg().exp().add_scalar(1.0).recip(),
            MleUnary::Tanh => t.tanh(),
        })
    }

    fn binary(&self, op: MleBinary, l: V, r: V, n: usize, dev: &Device) -> V {
        use MleBinary::*;
        match (op, l, r) {
            (_, V::S(a), V::S(b)) => {
                let e = MleExpr::Binary(op, Box::new(MleExpr::Num(a)), Box::new(MleExpr::Num(b)));
                V::S(e.eval(&[], &RowBatch::default(), 0))
            }
            (Add, V::T(a), V::S(b)) | (Add, V::S(b), V::T(a)) => V::T(a.add_scalar(b as f32)),
            (Mul, V::T(a), V::S(b)) | (Mul, V::S(b), V::T(a)) => V::T(a.mul_scalar(b as f32)),
            (Sub, V::T(a), V::S(b)) => V::T(a.sub_scalar(b as f32)),
            (Sub, V::S(a), V::T(b)) => V::T(b.neg().add_scalar(a as f32)),
            (Div, V::T(a), V::S(b)) => V::T(a.div_scalar(b as f32)),
            (Pow, V::T(a), V::S(b)) => V::T(a.powf_scalar(b as f32)),
            (op, l, r) => {
                let (a, b) = (self.t(l, n, dev), self.t(r, n, dev));
                V::T(match op {
                    Add => a.add(b),
                    Sub => a.sub(b),
                    Mul => a.mul(b),
                    Div => a.div(b),
                    Pow => a.powf(b),
                    Min => a.min_pair(b),
                    Max => a.max_pair(b),
                })
            }
        }
    }

    fn expr(&self, e: &MleExpr, env: &Env<'_>) -> V {
        match e {
            MleExpr::Num(x) => V::S(*x),
            MleExpr::Param(k) => V::T(env.params[*k].clone()),
            MleExpr::Col(k) => V::T(env.cols[*k].clone()),
            MleExpr::Unary(op, x) => self.unary(*op, self.expr(x, env)),
            MleExpr::Binary(op, l, r) => {
                let (l, r) = (self.expr(l, env), self.expr(r, env));
                self.binary(*op, l, r, env.n, env.dev)
            }
            MleExpr::Select {
                cond,
                then,
                otherwise,
            } => {
                let mask = env.cols[*cond].clone().not_equal_elem(0.0);
                let a = self.t(self.expr(then, env), env.n, env.dev);
                let b = self.t(self.expr(otherwise, env), env.n, env.dev);
                V::T(b.mask_where(mask, a))
            }
        }
    }

    /// The batch's negative log-likelihood as a one-element tensor, or
    /// `None` when a probability is outside [0, 1] (the objective is +∞).
    fn batch_nll(&self, env: &Env<'_>, y: T) -> Option<T> {
        const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;
        let p = self.problem;
        let (n, dev) = (env.n, env.dev);
        let y = V::T(y);
        let u = match &p.loc {
            Some(l) => {
                let l = self.expr(l, env);
                self.binary(MleBinary::Sub, y, l, n, dev)
            }
            None => y,
        };
        let a: Vec<V> = p.args.iter().map(|e| self.expr(e, env)).collect();
        let b = |op, l, r| self.binary(op, l, r, n, dev);
        let ln = |x| self.unary(MleUnary::Log, x);
        let terms = match p.dist {
            MleDist::Normal | MleDist::LogNormal => {
                let (x, extra) = if p.dist == MleDist::LogNormal {
                    let lu = ln(u);
                    (lu.clone(), Some(lu))
                } else {
                    (u, None)
                };
                let z = b(
                    MleBinary::Div,
                    b(MleBinary::Sub, x, a[0].clone()),
                    a[1].clone(),
                );
                let zz = b(MleBinary::Mul, z.clone(), z);
                let t = b(
                    MleBinary::Add,
                    ln(a[1].clone()),
                    b(
                        MleBinary::Add,
                        V::S(HALF_LN_2PI),
                        b(MleBinary::Mul, V::S(0.5), zz),
                    ),
                );
                match extra {
                    Some(lu) => b(MleBinary::Add, t, lu),
                    None => t,
                }
            }
            MleDist::Exponential => b(
                MleBinary::Sub,
                b(MleBinary::Mul, a[0].clone(), u),
                ln(a[0].clone()),
            ),
            MleDist::Laplace => {
                let d = self.unary(MleUnary::Abs, b(MleBinary::Sub, u, a[0].clone()));
                b(
                    MleBinary::Add,
                    ln(b(MleBinary::Mul, V::S(2.0), a[1].clone())),
                    b(MleBinary::Div, d, a[1].clone()),
                )
            }
            MleDist::Logistic => {
                let z = b(
                    MleBinary::Div,
                    b(MleBinary::Sub, u, a[0].clone()),
                    a[1].clone(),
                );
                // log s + z + 2·softplus(−z), softplus(x) = max(x, 0) + log1p(e^{−|x|}).
                let zt = self.t(z, n, dev);
                let m = zt.clone().neg();
                let sp = m.clone().clamp_min(0.0).add(m.abs().neg().exp().log1p());
                b(
                    MleBinary::Add,
                    ln(a[1].clone()),
                    V::T(zt.add(sp.mul_scalar(2.0))),
                )
            }
            MleDist::Bernoulli => {
                let pr = self.t(a[0].clone(), n, dev);
                let ends = Tensor::cat(vec![pr.clone().min(), pr.clone().max()], 0);
                let ends: Vec<f32> = ends.into_data().try_to_vec().ok()?;
                if !(ends[0] >= 0.0 && ends[1] <= 1.0) {
                    return None;
                }
                // y·log p + (1 − y)·log(1 − p), p kept off 0 and 1 (f32).
                let pc = pr.clamp(1e-7, 1.0 - 1e-7);
                let V::T(y) = u else {
                    unreachable!("invariant: y is a tensor")
                };
                let one_minus_y = y.clone().neg().add_scalar(1.0);
                let lp = y.mul(pc.clone().log());
                let lq = one_minus_y.mul(pc.neg().add_scalar(1.0).log());
                V::T(lp.add(lq).neg())
            }
            MleDist::Gamma => {
                // lnΓ(k) + k ln θ − (k − 1) ln y + y / θ
                let (k, th) = (a[0].clone(), a[1].clone());
                positive(&[&k, &th])?;
                let lg = V::T(ln_gamma(self.t(k.clone(), n, dev)));
                let t = b(
                    MleBinary::Sub,
                    b(MleBinary::Mul, k.clone(), ln(th.clone())),
                    b(
                        MleBinary::Mul,
                        b(MleBinary::Sub, k, V::S(1.0)),
                        ln(u.clone()),
                    ),
                );
                b(
                    MleBinary::Add,
                    b(MleBinary::Add, lg, t),
                    b(MleBinary::Div, u, th),
                )
            }
            MleDist::Beta => {
                // lnΓ(a) + lnΓ(b) − lnΓ(a + b) − (a − 1) ln y − (b − 1) ln(1 − y)
                let (p1, q1) = (a[0].clone(), a[1].clone());
                positive(&[&p1, &q1])?;
                let (pt, qt) = (self.t(p1, n, dev), self.t(q1, n, dev));
                let ln_b = ln_gamma(pt.clone())
                    .add(ln_gamma(qt.clone()))
                    .sub(ln_gamma(pt.clone().add(qt.clone())));
                let V::T(y) = u else {
                    unreachable!("invariant: a beta is not shifted, y is a tensor")
                };
                let ly = y.clone().log().mul(pt.sub_scalar(1.0));
                let l1y = y.neg().log1p().mul(qt.sub_scalar(1.0));
                V::T(ln_b.sub(ly).sub(l1y))
            }
            MleDist::StudentT => {
                // lnΓ(ν/2) − lnΓ((ν+1)/2) + ½ ln ν + ½ ln π + (ν+1)/2 · ln(1 + t²/ν)
                const HALF_LN_PI: f64 = 0.572_364_942_924_700_1;
                positive(&[&a[0]])?;
                let nu = self.t(a[0].clone(), n, dev);
                let t = self.t(u, n, dev);
                let half = nu.clone().mul_scalar(0.5);
                let c = ln_gamma(half.clone())
                    .sub(ln_gamma(half.clone().add_scalar(0.5)))
                    .add(nu.clone().log().mul_scalar(0.5))
                    .add_scalar(HALF_LN_PI);
                let tail = t.clone().mul(t).div(nu).log1p().mul(half.add_scalar(0.5));
                V::T(c.add(tail))
            }
        };
        Some(self.t(terms, n, dev).sum())
    }

    /// One pass: Σ −log f and, with `grad`, its gradient.
    fn eval(&self, theta: &[f64], grad: bool, rows: &mut dyn RowSource) -> Result<Eval, DataError> {
        let dev = if grad {
            self.s.device.clone().autodiff()
        } else {
            self.s.device.clone()
        };
        let p = theta.len();
        let mut out = Eval {
            f: 0.0,
            g: vec![0.0; p],
            n: 0,
        };
        rows.for_each_batch(&mut |batch| {
            let n = batch.len();
            out.n += n as u64;
            if !out.f.is_finite() {
                return Ok(());
            }
            let th = self.tensor(theta, &dev);
            let th = if grad { th.require_grad() } else { th };
            let params: Vec<T> = (0..p)
                .map(|k| th.clone().slice(k..k + 1).expand([n]))
                .collect();
            let cols: Vec<T> = batch.columns.iter().map(|c| self.tensor(c, &dev)).collect();
            let env = Env {
                params: &params,
                cols: &cols,
                n,
                dev: &dev,
            };
            let Some(loss) = self.batch_nll(&env, self.tensor(&batch.y, &dev)) else {
                out.f = f64::INFINITY;
                return Ok(());
            };
            let f = read(loss.clone())?[0] as f64;
            if !f.is_finite() {
                out.f = f64::INFINITY;
                return Ok(());
            }
            out.f += f;
            if grad {
                let grads = loss.backward();
                let g = th
                    .grad(&grads)
                    .expect("invariant: the params tensor requires grad");
                for (acc, x) in out.g.iter_mut().zip(read(g)?) {
                    *acc += x as f64;
                }
            }
            Ok(())
        })?;
        if out.g.iter().any(|g| !g.is_finite()) {
            out.f = f64::INFINITY;
        }
        Ok(out)
    }

    /// The Hessian by differences of gradients (`central` or forward from
    /// `g0`), symmetrised; `None` when a perturbed point is not finite.
    fn hessian(
        &self,
        theta: &[f64],
        g0: &[f64],
        central: bool,
        rows: &mut dyn RowSource,
    ) -> Result<Option<Vec<f64>>, DataError> {
        let p = theta.len();
        let mut h = vec![0.0; p * p];
        for j in 0..p {
            let step = 1e-3 * theta[j].abs().max(0.1);
            let mut tp = theta.to_vec();
            tp[j] += step;
            let up = self.eval(&tp, true, rows)?;
            let col: Vec<f64> = if central {
                let mut tm = theta.to_vec();
                tm[j] -= step;
                let dn = self.eval(&tm, true, rows)?;
                if !up.f.is_finite() || !dn.f.is_finite() {
                    return Ok(None);
                }
                (0..p).map(|i| (up.g[i] - dn.g[i]) / (2.0 * step)).collect()
            } else if up.f.is_finite() {
                (0..p).map(|i| (up.g[i] - g0[i]) / step).collect()
            } else {
                // Too close to the domain's edge upwards: step down.
                tp[j] = theta[j] - step;
                let dn = self.eval(&tp, true, rows)?;
                if !dn.f.is_finite() {
                    return Ok(None);
                }
                (0..p).map(|i| (g0[i] - dn.g[i]) / step).collect()
            };
            for i in 0..p {
                h[i * p + j] = col[i];
            }
        }
        for i in 0..p {
            for j in 0..i {
                let m = 0.5 * (h[i * p + j] + h[j * p + i]);
                h[i * p + j] = m;
                h[j * p + i] = m;
            }
        }
        Ok(Some(h))
    }

    fn run(&self, rows: &mut dyn RowSource) -> Result<MleFit, DataError> {
        let prob = self.problem;
        let p = prob.params.len();
        let starts = prob.starts();
        let mut best: Option<(f64, Vec<f64>)> = None;
        for s in &starts {
            let e = self.eval(s, false, rows)?;
            if e.f.is_finite() && best.as_ref().is_none_or(|(f, _)| e.f < *f) {
                best = Some((e.f, s.clone()));
            }
        }
        let Some((_, mut theta)) = best else {
            return Err(cannot(
                prob,
                format!(
                    "no starting point gives a finite likelihood (tried {} points near 0 with scales at 1, the data's sd or its moments); check the mechanism's domain",
                    starts.len()
                ),
            ));
        };
        let mut cur = self.eval(&theta, true, rows)?;
        let n = cur.n as f64;
        let mut lambda = 1e-3;
        for iter in 1..=MAX_ITERATIONS {
            let Some(h) = self.hessian(&theta, &cur.g, false, rows)? else {
                return Err(cannot(
                    prob,
                    "the likelihood is not finite next to the current estimate (a scale at its bound)".into(),
                ));
            };
            let mut taken = None;
            while lambda <= 1e12 {
                let mut a = h.clone();
                for j in 0..p {
                    a[j * p + j] += lambda * h[j * p + j].abs().max(1e-12);
                }
                let Some(inv) = invert_spd(&a, p) else {
                    lambda = (lambda * 10.0).max(1e-6);
                    continue;
                };
                let delta: Vec<f64> = (0..p)
                    .map(|i| -(0..p).map(|k| inv[i * p + k] * cur.g[k]).sum::<f64>())
                    .collect();
                let trial: Vec<f64> = theta.iter().zip(&delta).map(|(t, d)| t + d).collect();
                let e = self.eval(&trial, false, rows)?;
                if e.f.is_finite() && e.f <= cur.f + F32_SLACK * (cur.f.abs() + n) {
                    taken = Some((trial, delta));
                    break;
                }
                lambda = (lambda * 10.0).max(1e-6);
            }
            let se = |h: &[f64]| {
                invert_spd(h, p)
                    .map(|inv| (0..p).map(|j| inv[j * p + j].sqrt()).collect::<Vec<f64>>())
            };
            let Some((trial, delta)) = taken else {
                // No step lowers the objective: at the optimum up to f32
                // rounding when the gradient is negligible there.
                if let Some(s) = se(&h)
                    && (0..p).all(|j| (cur.g[j] * s[j]).abs() < 1e-2)
                {
                    return self.finish(theta, cur.f, iter, rows);
                }
                return Err(cannot(
                    prob,
                    format!(
                        "maximum likelihood stalled after {iter} iterations (no step lowers the objective; the params may not be identified)"
                    ),
                ));
            };
            theta = trial;
            cur = self.eval(&theta, true, rows)?;
            lambda = (lambda / 10.0).max(1e-9);
            if let Some(s) = se(&h)
                && (0..p).all(|j| delta[j].abs() <= STEP_TOL_SE * s[j])
            {
                return self.finish(theta, cur.f, iter, rows);
            }
        }
        Err(cannot(
            prob,
            format!("maximum likelihood did not converge in {MAX_ITERATIONS} iterations"),
        ))
    }

    /// Standard errors at the optimum.
    fn finish(
        &self,
        theta: Vec<f64>,
        f: f64,
        iterations: u32,
        rows: &mut dyn RowSource,
    ) -> Result<MleFit, DataError> {
        let p = theta.len();
        let inv = self
            .hessian(&theta, &[], true, rows)?
            .and_then(|h| invert_spd(&h, p))
            .ok_or_else(|| {
                cannot(
                    self.problem,
                    "the Hessian at the optimum is not positive definite (a parameter is not identified by the data)".into(),
                )
            })?;
        Ok(MleFit {
            std_errors: (0..p).map(|j| inv[j * p + j].sqrt()).collect(),
            estimates: theta,
            iterations,
            neg_log_lik: f,
            method: format!("mle_autodiff ({})", self.s.kind),
        })
    }
}

/// `Some(())` when every value is positive (a shape, a scale, a df): the
/// objective is +∞ where one is not (lnΓ of a negative number can be
/// finite, so the log of a negative argument does not always say so).
fn positive(xs: &[&V]) -> Option<()> {
    for x in xs {
        let m = match x {
            V::S(v) => *v,
            V::T(t) => read(t.clone().min()).ok()?[0] as f64,
        };
        // False for NaN too.
        (m > 0.0).then_some(())?;
    }
    Some(())
}

/// ln Γ(x), elementwise for x > 0, from tensor ops autodiff
/// differentiates (burn has no lgamma): the recurrence
/// lnΓ(x) = lnΓ(x + 6) − ln(x(x+1)(x+2)) − ln((x+3)(x+4)(x+5)), then
/// Stirling's series at z = x + 6 ≥ 6,
/// (z − ½) ln z − z + ½ ln 2π + 1/(12z) − 1/(360z³) + 1/(1260z⁵) − 1/(1680z⁷),
/// whose truncation error is under 1/(1188z⁹) < 1e-10 (relative, lnΓ(z) ≥ 4.7).
/// The products go in threes: f32 overflows only past x ≈ 10¹².
/// Its derivative, by autodiff, is the digamma function to the same
/// order. The device's f32 rounding (about 1e-7 relative of the terms)
/// dominates.
pub fn ln_gamma(x: Tensor<1>) -> Tensor<1> {
    const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;
    let z = x.clone().add_scalar(6.0);
    let r = z.clone().recip();
    let r2 = r.clone().mul(r.clone());
    // 1/(12z) − 1/(360z³) + 1/(1260z⁵) − 1/(1680z⁷), Horner in 1/z².
    let series = r2
        .clone()
        .mul_scalar(-1.0 / 1680.0)
        .add_scalar(1.0 / 1260.0)
        .mul(r2.clone())
        .add_scalar(-1.0 / 360.0)
        .mul(r2)
        .add_scalar(1.0 / 12.0)
        .mul(r);
    let stirling = z
        .clone()
        .sub_scalar(0.5)
        .mul(z.clone().log())
        .sub(z)
        .add_scalar(HALF_LN_2PI)
        .add(series);
    let p1 = x
        .clone()
        .mul(x.clone().add_scalar(1.0))
        .mul(x.clone().add_scalar(2.0));
    let p2 = x
        .clone()
        .add_scalar(3.0)
        .mul(x.clone().add_scalar(4.0))
        .mul(x.add_scalar(5.0));
    stirling.sub(p1.log()).sub(p2.log())
}

/// What the expressions of one batch read.
struct Env<'a> {
    params: &'a [T],
    cols: &'a [T],
    n: usize,
    dev: &'a Device,
}

fn read(t: T) -> Result<Vec<f32>, DataError> {
    t.into_data()
        .try_to_vec::<f32>()
        .map_err(|e| DataError::Usage(format!("burn read-back failed: {e:?}")))
}
