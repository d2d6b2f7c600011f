//! Byzantine validators for Ballast's testbed: a [`Role`] rewrites what an
//! honest engine sends, signing with the validator's own key whatever the
//! role calls for, and [`Forge`] knows how to lie in each scheme's
//! certificates.
//!
//! A crate of its own, generic over [`ballast_transports::Transport`], so
//! that one definition of each attack serves both worlds: the simulator
//! wraps its simulated transport, and `ballast-scenarios`' test binary
//! `ballast-byzantine` wraps a real node's QUIC transport. The production
//! `ballast` binary does not depend on it.

pub mod forge;
pub mod role;

pub use forge::{Forge, Shape};
pub use role::{AdversaryTransport, Role};
