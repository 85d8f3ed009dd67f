//! The shared test kit: builders of ring-buffer records, a fake resolver, sinks that record or
//! discard, and a writer to capture output. Compiled for this crate's unit tests (`cfg(test)`),
//! and with the `testkit` feature for the integration tests and benches (the crate's
//! dev-dependency on itself turns it on), so there is one copy of each builder and no second
//! copy of the types.

pub mod records;
mod resolver;
mod run;
mod sinks;

pub use resolver::FakeResolver;
pub use run::start_info;
pub use sinks::{Calls, Capture, Discard};
