//! Scalar f32 math used by the elementwise instructions: the polynomial
//! kernels of [`crate::kernels::math`] (no libm calls, so loops vectorise),
//! except `pow`, which has no cheap exact polynomial and stays on libm.

pub use crate::kernels::math::{
    exp_f32 as exp, ln_f32 as ln, logit_f32 as logit, sigmoid_f32 as sigmoid, tanh_f32 as tanh,
};

/// `x^y` (libm `powf`: correct for negative bases with integer exponents).
#[inline(always)]
pub fn pow(x: f32, y: f32) -> f32 {
    x.powf(y)
}
