//! The Program IR: lowering from a [`whatif_lang::CausalModel`], optimisation
//! passes, the verifier, the RNG contract and the reference interpreter.
//!
//! Pipeline inside this crate: [`lower::lower`] → [`opt::optimise`] (passes
//! `fold`, `share`, `cse`, `dce`) → [`verify::verify`] → a
//! [`program::VerifiedProgram`] that backends execute. [`interp`] is the f64
//! oracle; [`rng`] and [`dist`] define every random value bit for bit.

pub mod dist;
pub mod dump;
pub mod exec;
pub mod interp;
pub mod layout;
pub mod lower;
pub mod opt;
pub mod program;
pub mod rng;
pub mod structure;
pub mod verify;

pub use program::*;

/// Lower, optimise and verify the given worlds of a model: the usual path.
pub fn compile(
    model: &whatif_lang::CausalModel,
    worlds: &[whatif_lang::WorldId],
    passes: opt::PassOptions,
) -> VerifiedProgram {
    let p = opt::optimise(lower::lower(model, worlds), passes);
    match verify::verify(p) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}
