//! Per-distribution f32 fill kernels: the transforms of [`whatif_ir::dist`]
//! on the Philox words of [`super::philox`], one group of
//! [`GROUP`] samples at a time.
//!
//! Every function here is `#[inline(always)]` and free of target features:
//! [`super::fill`] compiles them into AVX-512, AVX2 and baseline copies and
//! picks one at run time; an executor that fuses its own loops can call them
//! from inside its own `#[target_feature]` functions.
//!
//! Structure: for each group, parameters are loaded into `[f32; GROUP]`
//! arrays (a splat for scalars, a copy for per-lane slices, so the inner
//! loops never branch on the [`Arg`] kind and vectorise), the standard
//! variates are generated in registers, the transform and the domain check
//! (NaN outside [`whatif_ir::dist::params_valid`]'s domain) run lane-wise,
//! and the first `n` results are copied out (the last group may be partial).

use super::math::{TWO_M32, exp_f32, ln_f32, ln_pos, ln_uniform, uniform_f32};
use super::philox::{GROUP, normal_group, words_group};
use whatif_ir::Dist;
use whatif_ir::dist::{BETA_Y_BASE, GAMMA_ATTEMPTS, STUDENT_T_GAMMA_BASE};
use whatif_ir::rng::RngStream;

/// A distribution parameter for a chunk of lanes: one value for all lanes,
/// or one per lane (a slice at least as long as the output).
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    /// The same value in every lane.
    Scalar(f32),
    /// `lanes[j]` is the value for output lane `j`.
    Lanes(&'a [f32]),
}

impl Arg<'_> {
    /// Lanes `off .. off + n` as a full group array (padding with 1.0, a
    /// harmless value: padded lanes are computed and discarded).
    #[inline(always)]
    fn load(&self, off: usize, n: usize) -> [f32; GROUP] {
        match *self {
            Arg::Scalar(v) => [v; GROUP],
            Arg::Lanes(s) if n == GROUP => {
                // Constant-length copy: vector moves, no memcpy call.
                let g: &[f32; GROUP] = s[off..off + GROUP].try_into().unwrap();
                *g
            }
            Arg::Lanes(s) => {
                let mut a = [1.0; GROUP];
                a[..n].copy_from_slice(&s[off..off + n]);
                a
            }
        }
    }

    fn check_len(&self, len: usize) {
        if let Arg::Lanes(s) = self {
            assert!(
                s.len() >= len,
                "per-lane argument has {} lanes, output has {len}",
                s.len()
            );
        }
    }
}

/// Parameters of lanes `off .. off + n` as group arrays.
#[inline(always)]
fn load_all<const A: usize>(args: &[Arg<'_>; A], off: usize, n: usize) -> [[f32; GROUP]; A] {
    let mut p = [[0f32; GROUP]; A];
    for (dst, a) in p.iter_mut().zip(args) {
        *dst = a.load(off, n);
    }
    p
}

/// The group loop shared by every distribution: `$body` computes one full
/// group `$res` starting at Philox block `$q0` from the parameter arrays
/// `$p`. A macro rather than a function taking a closure: closures are not
/// `#[inline(always)]`, and a large one would be compiled once for the
/// baseline ISA (with `mul_add` as a libm call) instead of inside each
/// target-feature copy.
macro_rules! drive {
    ($args:expr, $start:expr, $out:expr, |$q0:ident, $p:ident, $res:ident| $body:block) => {{
        let args = $args;
        let start: u64 = $start;
        let out: &mut [f32] = $out;
        assert!(start.is_multiple_of(4), "chunk start {start} is not a multiple of 4");
        for a in &args {
            a.check_len(out.len());
        }
        let mut off = 0;
        // Full groups: results go straight into `out` (a fixed-size view,
        // so no temporary and no variable-length memcpy).
        while off + GROUP <= out.len() {
            let $p = load_all(&args, off, GROUP);
            let $q0 = (start + off as u64) / 4;
            let $res: &mut [f32; GROUP] = (&mut out[off..off + GROUP]).try_into().unwrap();
            $body
            off += GROUP;
        }
        // The partial last group, through a temporary.
        if off < out.len() {
            let n = out.len() - off;
            let $p = load_all(&args, off, n);
            let $q0 = (start + off as u64) / 4;
            let mut tmp = [0f32; GROUP];
            {
                let $res: &mut [f32; GROUP] = &mut tmp;
                $body
            }
            out[off..].copy_from_slice(&tmp[..n]);
        }
    }};
}

#[inline(always)]
fn nan_unless(ok: bool, x: f32) -> f32 {
    if ok { x } else { f32::NAN }
}

/// `normal(mu, sd)`: `mu + sd · z`.
#[inline(always)]
pub fn normal(s: &RngStream, start: u64, mu: Arg<'_>, sd: Arg<'_>, out: &mut [f32]) {
    drive!([mu, sd], start, out, |q0, p, res| {
        let z = normal_group(s, 0, q0);
        for l in 0..GROUP {
            let (m, d) = (p[0][l], p[1][l]);
            res[l] = nan_unless(
                m.is_finite() && d.is_finite() && d > 0.0,
                d.mul_add(z[l], m),
            );
        }
    });
}

/// `lognormal(mu, sigma)`: `exp(mu + sigma · z)`.
#[inline(always)]
pub fn lognormal(s: &RngStream, start: u64, mu: Arg<'_>, sigma: Arg<'_>, out: &mut [f32]) {
    drive!([mu, sigma], start, out, |q0, p, res| {
        let z = normal_group(s, 0, q0);
        for l in 0..GROUP {
            let (m, d) = (p[0][l], p[1][l]);
            res[l] = nan_unless(
                m.is_finite() && d.is_finite() && d > 0.0,
                exp_f32(d.mul_add(z[l], m)),
            );
        }
    });
}

/// `uniform(a, b)`: `a + (b − a) · u(w)`.
#[inline(always)]
pub fn uniform(s: &RngStream, start: u64, a: Arg<'_>, b: Arg<'_>, out: &mut [f32]) {
    drive!([a, b], start, out, |q0, p, res| {
        let w = words_group(s, 0, q0);
        for l in 0..GROUP {
            let (a, b) = (p[0][l], p[1][l]);
            let ok = a.is_finite() && b.is_finite() && a < b;
            res[l] = nan_unless(ok, (b - a).mul_add(uniform_f32(w[l]), a));
        }
    });
}

/// `bernoulli(p)`: 1 if `p ≥ 1` or `w < trunc(p · 2^32)`, else 0 — exactly
/// `u(w) ≤ p` for this `p`, evaluated in integer space.
#[inline(always)]
pub fn bernoulli(s: &RngStream, start: u64, prob: Arg<'_>, out: &mut [f32]) {
    drive!([prob], start, out, |q0, p, res| {
        let w = words_group(s, 0, q0);
        for l in 0..GROUP {
            let pr = p[0][l];
            // `as u32` saturates (and maps NaN to 0); p·2^32 is exact.
            let t = (pr * 4_294_967_296.0) as u32;
            let hit = pr >= 1.0 || w[l] < t;
            res[l] = nan_unless((0.0..=1.0).contains(&pr), if hit { 1.0 } else { 0.0 });
        }
    });
}

/// `exponential(rate)`: `−ln u(w) / rate`.
#[inline(always)]
pub fn exponential(s: &RngStream, start: u64, rate: Arg<'_>, out: &mut [f32]) {
    drive!([rate], start, out, |q0, p, res| {
        let w = words_group(s, 0, q0);
        for l in 0..GROUP {
            let r = p[0][l];
            res[l] = nan_unless(r.is_finite() && r > 0.0, -ln_uniform(w[l]) / r);
        }
    });
}

/// `laplace(mu, b)`: the top bit of `w` is the sign, the low 31 bits an
/// exponential `−ln((m + 1) · 2^-31)`.
#[inline(always)]
pub fn laplace(s: &RngStream, start: u64, mu: Arg<'_>, scale: Arg<'_>, out: &mut [f32]) {
    drive!([mu, scale], start, out, |q0, p, res| {
        let w = words_group(s, 0, q0);
        for l in 0..GROUP {
            let (m, b) = (p[0][l], p[1][l]);
            let k = w[l];
            // (m + 1) · 2^-31 = u(2m + 1): reuse the accurate ln u(·).
            let e = -ln_uniform(((k & 0x7fff_ffff) << 1) | 1);
            let se = f32::from_bits(e.to_bits() ^ (k & 0x8000_0000));
            res[l] = nan_unless(m.is_finite() && b.is_finite() && b > 0.0, b.mul_add(se, m));
        }
    });
}

/// `logistic(mu, s)`: `mu + s · (ln((w + ½)2^-32) − ln((!w + ½)2^-32))`.
#[inline(always)]
pub fn logistic(s: &RngStream, start: u64, mu: Arg<'_>, scale: Arg<'_>, out: &mut [f32]) {
    drive!([mu, scale], start, out, |q0, p, res| {
        let w = words_group(s, 0, q0);
        for l in 0..GROUP {
            let (m, sc) = (p[0][l], p[1][l]);
            let k = w[l];
            let lo = ln_pos(((k as f32) + 0.5) * TWO_M32);
            let hi = ln_pos(((!k as f32) + 0.5) * TWO_M32);
            res[l] = nan_unless(
                m.is_finite() && sc.is_finite() && sc > 0.0,
                sc.mul_add(lo - hi, m),
            );
        }
    });
}

/// Marsaglia–Tsang with [`GAMMA_ATTEMPTS`] fixed attempts for shapes `k`
/// (scale 1) at substream base `base`. Returns `(g, b)` per lane, the draw
/// being `g · e^b`: `g = d·V` of the first accepted attempt, `b = ln(u0)/k`
/// for boosted lanes (`k < 1`) and 0 otherwise. Keeping the boost factor in
/// log space lets beta and student-t avoid f32 underflow for small shapes.
#[inline(always)]
pub fn gamma_core(
    s: &RngStream,
    k: &[f32; GROUP],
    base: u32,
    q0: u64,
) -> ([f32; GROUP], [f32; GROUP]) {
    let mut d = [0f32; GROUP];
    let mut c = [0f32; GROUP];
    let mut any_boost = false;
    for l in 0..GROUP {
        let boost = k[l] < 1.0;
        any_boost |= boost;
        let kp = if boost { k[l] + 1.0 } else { k[l] };
        d[l] = kp - 1.0 / 3.0;
        c[l] = 1.0 / (9.0 * d[l]).sqrt();
    }
    let mut g = [0f32; GROUP];
    let mut last_v = [0f32; GROUP];
    let mut acc = [false; GROUP];
    for j in 0..GAMMA_ATTEMPTS {
        let z = normal_group(s, base + 1 + 2 * j, q0);
        let vw = words_group(s, base + 2 + 2 * j, q0);
        let mut all = true;
        for l in 0..GROUP {
            let (zl, dl, cl) = (z[l], d[l], c[l]);
            let t = cl.mul_add(zl, 1.0);
            let vv = t * t * t;
            let lv = ln_uniform(vw[l]);
            // ln V is garbage for V ≤ 0, but then z ≤ −1/c and the first
            // conjunct already rejects.
            let rhs = dl.mul_add(ln_f32(vv), (-dl).mul_add(vv, (0.5 * zl).mul_add(zl, dl)));
            let ok = zl > -1.0 / cl && lv < rhs;
            if ok && !acc[l] {
                g[l] = dl * vv;
            }
            acc[l] |= ok;
            last_v[l] = vv;
            all &= acc[l];
        }
        // Later attempts cannot change an accepted lane: stop once all are.
        if all {
            break;
        }
    }
    for l in 0..GROUP {
        if !acc[l] {
            g[l] = d[l] * last_v[l].max(f32::MIN_POSITIVE);
        }
    }
    let mut b = [0f32; GROUP];
    if any_boost {
        let w0 = words_group(s, base, q0);
        for l in 0..GROUP {
            b[l] = if k[l] < 1.0 {
                ln_uniform(w0[l]) / k[l]
            } else {
                0.0
            };
        }
    }
    (g, b)
}

/// `gamma(shape, scale)`.
#[inline(always)]
pub fn gamma(s: &RngStream, start: u64, shape: Arg<'_>, scale: Arg<'_>, out: &mut [f32]) {
    drive!([shape, scale], start, out, |q0, p, res| {
        let (g, b) = gamma_core(s, &p[0], 0, q0);
        for l in 0..GROUP {
            let (k, th) = (p[0][l], p[1][l]);
            let ok = k.is_finite() && th.is_finite() && k > 0.0 && th > 0.0;
            res[l] = nan_unless(ok, g[l] * th * exp_f32(b[l]));
        }
    });
}

/// `student_t(df)`: `z · sqrt(df / (2g))`, `g = gamma(df/2, 1)` at base 1.
#[inline(always)]
pub fn student_t(s: &RngStream, start: u64, df: Arg<'_>, out: &mut [f32]) {
    drive!([df], start, out, |q0, p, res| {
        let z = normal_group(s, 0, q0);
        let mut half = [0f32; GROUP];
        for l in 0..GROUP {
            half[l] = 0.5 * p[0][l];
        }
        let (g, b) = gamma_core(s, &half, STUDENT_T_GAMMA_BASE, q0);
        for l in 0..GROUP {
            let df = p[0][l];
            // sqrt(df / (2 g e^b)) = sqrt(df / (2g)) · e^(−b/2)
            let x = z[l] * (df / (2.0 * g[l])).sqrt() * exp_f32(-0.5 * b[l]);
            res[l] = nan_unless(df.is_finite() && df > 0.0, x);
        }
    });
}

/// `beta(a, b)`: `X / (X + Y)`, `X = gamma(a)` at base 0, `Y = gamma(b)` at
/// base 32, evaluated as `1 / (1 + (gy/gx) · e^(by − bx))` so small shapes
/// (where X and Y underflow f32) still give the right ratio.
#[inline(always)]
pub fn beta(s: &RngStream, start: u64, a: Arg<'_>, b: Arg<'_>, out: &mut [f32]) {
    drive!([a, b], start, out, |q0, p, res| {
        let (gx, bx) = gamma_core(s, &p[0], 0, q0);
        let (gy, by) = gamma_core(s, &p[1], BETA_Y_BASE, q0);
        for l in 0..GROUP {
            let (a, b) = (p[0][l], p[1][l]);
            let ratio = (gy[l] / gx[l]) * exp_f32(by[l] - bx[l]);
            let ok = a.is_finite() && b.is_finite() && a > 0.0 && b > 0.0;
            res[l] = nan_unless(ok, 1.0 / (1.0 + ratio));
        }
    });
}

/// Any distribution: `args` in the order of the distribution's parameters
/// (`args.len() == dist.arity()`); `start` (a multiple of 4) is the global
/// sample index of `out[0]`.
#[inline(always)]
pub fn fill_inline(dist: Dist, args: &[Arg<'_>], s: &RngStream, start: u64, out: &mut [f32]) {
    assert_eq!(
        args.len(),
        dist.arity(),
        "{} takes {} arguments",
        dist.name(),
        dist.arity()
    );
    match dist {
        Dist::Normal => normal(s, start, args[0], args[1], out),
        Dist::LogNormal => lognormal(s, start, args[0], args[1], out),
        Dist::Uniform => uniform(s, start, args[0], args[1], out),
        Dist::Bernoulli => bernoulli(s, start, args[0], out),
        Dist::Exponential => exponential(s, start, args[0], out),
        Dist::Laplace => laplace(s, start, args[0], args[1], out),
        Dist::Logistic => logistic(s, start, args[0], args[1], out),
        Dist::StudentT => student_t(s, start, args[0], out),
        Dist::Gamma => gamma(s, start, args[0], args[1], out),
        Dist::Beta => beta(s, start, args[0], args[1], out),
    }
}
