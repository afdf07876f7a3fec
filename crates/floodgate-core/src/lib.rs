//! floodgate-core owns the rate-limit domain: attributes, policies, counter
//! keys, the five algorithms as pure state transitions, the `Clock`, and
//! the stores' settings as plain data (`store_config`: one type per store,
//! one Redis URL parser).
//! It does no I/O and must never depend on tokio, a store, a transport or
//! protobuf types: stores and servers translate to and from these types.
#![forbid(unsafe_code)]

pub mod algorithm;
pub mod attributes;
pub mod endpoint;
pub mod heavy_hitters;
pub mod key;
pub mod lease;
pub mod metric;
pub mod outcome;
pub mod path;
pub mod policy;
pub mod redact;
pub mod settlement;
pub mod store_config;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;

pub use algorithm::{Algorithm, State};
pub use attributes::{validate_attributes, validate_hits, AttributeError, Attributes, MAX_HITS};
pub use endpoint::{Endpoint, EndpointError, EndpointTable};
pub use key::{counter_key, counter_key_of, escape_value, push_counter_key_of, Segment};
pub use lease::{LeaseError, LeasePart};
pub use outcome::{Outcome, Receipt};
pub use policy::{
    AlgorithmKind, Applicable, FallbackMode, KeyEntry, Mode, Policy, PolicyError, PolicySet,
    PolicySetError, PolicySpec,
};
pub use policy::{Block, BlockRecord, Calendar, Period, DEFAULT_BLOCK_MAX_US, DEFAULT_TIMEZONE};
pub use policy::{Waiting, DEFAULT_DENY_STATUS, DEFAULT_MAX_WAITING, MAX_MAX_WAITING, MAX_WAIT_US};
pub use redact::redact_url;
pub use settlement::{
    Reservation, SettlementError, SettlementPart, MAX_SETTLEMENT_LEN, MAX_SETTLEMENT_PARTS,
};
pub use time::{Clock, ManualClock, SystemClock};
