//! The Program IR: lowering from a [`whatif_lang::CausalModel`], optimisation
//! passes, the verifier, the RNG contract and the reference interpreter.
