//! The tensor path: each IR op lowered to burn tensor ops on a burn
//! `Device` (wgpu on the adapter, or `flex` on the CPU for tests), one chunk
//! of lanes at a time.
//!
//! Randomness is ours, never burn's: every `Draw` runs a one-op instance of
//! the fused kernel (Philox plus the transform, on the adapter through
//! cubecl) whose per-lane arguments are the burn tensors computed so far.
//! burn 0.22's public API has no zero-copy bridge between a cubecl buffer
//! and a (fusion-wrapped) burn tensor, so those arguments and the draws
//! cross through host memory (`into_data` / `from_data`); this path exists
//! for comparison and testing, the fused path is the fast one.
//!
//! Op semantics follow `whatif_ir::{UnaryOp, BinaryOp}::eval`, spelled out
//! where burn's own op differs: `min`/`max` propagate NaN, `round` is half
//! away from zero, `pow` of a negative base needs an integer exponent,
//! comparisons give 0/1, `select` tests `cond != 0`.
//!
//! NaN is spelled out too: every unary op but `not`, `pow`, `min` and `max`
//! give NaN where an operand is NaN by an explicit `is_nan` mask (`+ − × ÷`
//! keep NaN by themselves). burn's fused elementwise kernels on
//! wgpu do not keep NaN through a chain that ends in `exp`: on lavapipe
//! (burn 0.22.1, cubecl 0.11.3) `exp(log(|x|) * y)` and burn's `sigmoid`
//! (itself `exp(−log(1 + exp(−x)))`) give 0 for a NaN `x`, although a lone
//! `exp(NaN)` is NaN. A scenario whose fitted `?params` are NaN (no fit
//! lock) then averaged zeros where the reference reports NaN
//! (`tests/it/nan.rs`).

use crate::device::GpuDevice;
use crate::error::GpuError;
use crate::exec::TensorDevice;
use crate::kernels::fused::{KOp, KProgram, KSlot};
use crate::lower;
use burn::tensor::{Device, Tensor, TensorData};
use whatif_ir::{BinaryOp, Op, Program, UnaryOp};

type T = Tensor<1>;
/// Columns read back to the host: `cols[o][lane]`.
type Cols = Vec<Vec<f32>>;

/// A value during a chunk: a broadcast scalar or one lane per sample.
/// (A handful live per op; boxing the tensor would buy nothing.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
enum V {
    S(f32),
    T(T),
}

/// The state of the tensor path for one Program.
pub(crate) struct TensorPath {
    prog: Program,
    device: Device,
    flex: bool,
}

impl TensorPath {
    pub(crate) fn new(
        p: &Program,
        dev: &GpuDevice,
        where_: TensorDevice,
    ) -> Result<TensorPath, GpuError> {
        let (device, flex) = match where_ {
            TensorDevice::Wgpu => {
                let d = dev.info.wgpu_device();
                let device = std::panic::catch_unwind(|| Device::new(d))
                    .map_err(|e| GpuError::DeviceInit(crate::device::panic_text(&e)))?;
                (device, false)
            }
            TensorDevice::Flex => (Device::flex(), true),
        };
        Ok(TensorPath {
            prog: p.clone(),
            device,
            flex,
        })
    }

    /// New lane input columns (see `GpuExecutor::set_inputs`).
    pub(crate) fn set_inputs(&mut self, columns: &[Vec<f64>]) {
        if let Some(t) = self.prog.inputs.as_mut() {
            t.columns = columns.to_vec();
        }
    }

    pub(crate) fn is_flex(&self) -> bool {
        self.flex
    }

    fn full(&self, n: usize, x: f32) -> T {
        T::full([n], x, &self.device)
    }

    fn tensor(&self, n: usize, v: &V) -> T {
        match v {
            V::S(x) => self.full(n, *x),
            V::T(t) => t.clone(),
        }
    }

    fn read(t: T) -> Result<Vec<f32>, GpuError> {
        t.into_data()
            .try_to_vec::<f32>()
            .map_err(|e| GpuError::Tensor(format!("{e:?}")))
    }

    /// Evaluate lanes `start .. start + n` (`start` a multiple of 4): the
    /// output columns and the probe columns, on the host.
    pub(crate) fn eval_chunk(
        &self,
        dev: &GpuDevice,
        start: u64,
        n: usize,
    ) -> Result<(Cols, Cols), GpuError> {
        let p = &self.prog;
        let mut vals: Vec<V> = Vec::with_capacity(p.ops.len());
        for op in &p.ops {
            let v = match op {
                Op::Const(x) => V::S(*x as f32),
                Op::Param(k) => V::S(p.params[*k as usize].value as f32),
                // Structured programs are refused by `GpuExecutor`.
                Op::Input(c) => {
                    let col = &p
                        .inputs
                        .as_ref()
                        .expect("invariant: verified inputs")
                        .columns[*c as usize];
                    let s = start as usize;
                    let v: Vec<f32> = col[s..s + n].iter().map(|&x| x as f32).collect();
                    V::T(T::from_data(TensorData::new(v, [n]), &self.device))
                }
                Op::Covariate(_) | Op::UnitAgg(..) => {
                    unreachable!("structured programs do not reach the tensor path")
                }
                Op::Draw {
                    dist,
                    site,
                    args,
                    period,
                    ..
                } => V::T(self.draw(
                    dev,
                    *dist,
                    *site,
                    *period,
                    args.iter().map(|a| &vals[a.index()]).collect(),
                    start,
                    n,
                )?),
                Op::Unary(u, a) => match &vals[a.index()] {
                    V::S(x) => V::S(u.eval(f64::from(*x)) as f32),
                    V::T(t) => V::T(unary(*u, t.clone(), self)),
                },
                Op::Binary(b, x, y) => match (&vals[x.index()], &vals[y.index()]) {
                    (V::S(a), V::S(c)) => V::S(b.eval(f64::from(*a), f64::from(*c)) as f32),
                    (a, c) => V::T(binary(*b, self.tensor(n, a), self.tensor(n, c), self)),
                },
                Op::Select(c, a, b) => match &vals[c.index()] {
                    V::S(cv) => {
                        if *cv != 0.0 {
                            vals[a.index()].clone()
                        } else {
                            vals[b.index()].clone()
                        }
                    }
                    V::T(ct) => {
                        let mask = ct.clone().not_equal_elem(0.0);
                        V::T(
                            self.tensor(n, &vals[b.index()])
                                .mask_where(mask, self.tensor(n, &vals[a.index()])),
                        )
                    }
                },
            };
            vals.push(v);
        }
        let col = |v: &V| -> Result<Vec<f32>, GpuError> {
            match v {
                V::S(x) => Ok(vec![*x; n]),
                V::T(t) => Self::read(t.clone()),
            }
        };
        let outs = p
            .outputs
            .iter()
            .map(|o| col(&vals[o.value.index()]))
            .collect::<Result<Vec<_>, _>>()?;
        let probes = p
            .probes
            .iter()
            .map(|o| col(&vals[o.value.index()]))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((outs, probes))
    }

    /// One draw site over the chunk: a one-op fused kernel on the adapter
    /// with scalar arguments as parameters and lane arguments as inputs.
    #[allow(clippy::too_many_arguments)]
    fn draw(
        &self,
        dev: &GpuDevice,
        dist: whatif_ir::Dist,
        site: u32,
        period: u32,
        args: Vec<&V>,
        start: u64,
        n: usize,
    ) -> Result<T, GpuError> {
        let n_pad = n.div_ceil(4) * 4;
        let mut ops = vec![];
        let mut params = vec![];
        let mut inputs: Vec<f32> = vec![];
        for a in &args {
            match a {
                V::S(x) => {
                    ops.push(KOp::Param(params.len() as u32));
                    params.push(*x);
                }
                V::T(t) => {
                    ops.push(KOp::Input((inputs.len() / n_pad) as u32));
                    let mut col = Self::read(t.clone())?;
                    col.resize(n_pad, 1.0);
                    inputs.extend(col);
                }
            }
        }
        let a0 = 0;
        let a1 = if args.len() > 1 { 1 } else { 0 };
        ops.push(KOp::Draw {
            dist: lower::dist_code(dist),
            site,
            a0,
            a1,
            period,
            unit: false,
        });
        let kp = KProgram {
            outputs: vec![KSlot {
                idx: 0,
                value: ops.len() as u32 - 1,
            }],
            ops,
            probes: vec![],
            units_param: 0,
        };
        if params.is_empty() {
            params.push(0.0);
        }
        let ph = dev.upload_f32(&params);
        let ih = if inputs.is_empty() {
            None
        } else {
            Some(dev.upload_f32(&inputs))
        };
        let (out, _) = dev.launch_fused(
            &kp,
            &ph,
            params.len(),
            ih.as_ref().map(|h| (h, inputs.len())),
            self.prog.seed,
            start,
            n,
            31,
        );
        let mut col = dev.read_f32(out)?;
        col.truncate(n);
        Ok(T::from_data(TensorData::new(col, [n]), &self.device))
    }
}

fn flag(b: burn::tensor::Tensor<1, burn::tensor::Bool>) -> T {
    b.float()
}

/// NaN where `nan` holds, else `r`.
fn nan_where(r: T, nan: burn::tensor::Tensor<1, burn::tensor::Bool>) -> T {
    r.mask_fill(nan, f32::NAN)
}

fn unary(u: UnaryOp, x: T, tp: &TensorPath) -> T {
    if u == UnaryOp::Not {
        return flag(x.equal_elem(0.0));
    }
    let nan = x.clone().is_nan();
    nan_where(unary_finite(u, x, tp), nan)
}

/// `u` on non-NaN lanes (NaN lanes are masked by [`unary`]).
fn unary_finite(u: UnaryOp, x: T, tp: &TensorPath) -> T {
    let _ = tp;
    match u {
        UnaryOp::Neg => x.neg(),
        UnaryOp::Not => flag(x.equal_elem(0.0)),
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.log(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Abs => x.abs(),
        // The reference formula (burn's sigmoid is exp(−log(1 + exp(−x)))).
        UnaryOp::Sigmoid => x.neg().exp().add_scalar(1.0).recip(),
        UnaryOp::Logit => {
            let one_minus = x.clone().neg().add_scalar(1.0);
            x.log().sub(one_minus.log())
        }
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Floor => x.floor(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::Round => {
            // Half away from zero: t = floor(|x|), |x| − t is exact.
            let a = x.clone().abs();
            let t = a.clone().floor();
            let up = flag(a.sub(t.clone()).greater_equal_elem(0.5));
            t.add(up).mul(x.sign())
        }
    }
}

fn binary(b: BinaryOp, x: T, y: T, tp: &TensorPath) -> T {
    let _ = tp;
    // NaN in either operand. `+ − × ÷` are single IEEE instructions that
    // keep NaN (tests/it/nan.rs checks them) and stay unmasked: they are
    // most of the ops of a Program. `pow` is masked before its x == 1 and
    // y == 0 cases, which give 1 even for a NaN other operand.
    let nan = || x.clone().is_nan().bool_or(y.clone().is_nan());
    match b {
        BinaryOp::Add => x.add(y),
        BinaryOp::Sub => x.sub(y),
        BinaryOp::Mul => x.mul(y),
        BinaryOp::Div => x.div(y),
        BinaryOp::Pow => {
            let nan = nan();
            // e^(y ln|x|), sign for odd integer y, NaN for x < 0 and
            // fractional y, 1 for y == 0 or x == 1.
            let mag = x.clone().abs().log().mul(y.clone()).exp();
            let yint = y.clone().floor().equal(y.clone());
            let half = y.clone().mul_scalar(0.5);
            let odd = half.clone().floor().not_equal(half).bool_and(yint.clone());
            let neg = x.clone().lower_elem(0.0);
            let r = mag.clone().mask_where(neg.clone().bool_and(odd), mag.neg());
            let r = r.mask_fill(neg.bool_and(yint.bool_not()).bool_or(nan), f32::NAN);
            let one = y.equal_elem(0.0).bool_or(x.equal_elem(1.0));
            r.mask_fill(one, 1.0)
        }
        BinaryOp::Min | BinaryOp::Max => {
            let nan = nan();
            let take_y = if b == BinaryOp::Min {
                y.clone().lower(x.clone())
            } else {
                y.clone().greater(x.clone())
            };
            x.mask_where(take_y, y).mask_fill(nan, f32::NAN)
        }
        BinaryOp::Lt => flag(x.lower(y)),
        BinaryOp::Le => flag(x.lower_equal(y)),
        BinaryOp::Gt => flag(x.greater(y)),
        BinaryOp::Ge => flag(x.greater_equal(y)),
        BinaryOp::Eq => flag(x.equal(y)),
        BinaryOp::Ne => flag(x.not_equal(y)),
        BinaryOp::And => flag(x.not_equal_elem(0.0).bool_and(y.not_equal_elem(0.0))),
        BinaryOp::Or => flag(x.not_equal_elem(0.0).bool_or(y.not_equal_elem(0.0))),
    }
}
