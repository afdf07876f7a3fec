//! `envoy.service.ratelimit.v3.RateLimitService`: Envoy's rate limit
//! service. Each descriptor is one check (its entries are the attributes,
//! `remote_address` standing for `ip`, keyed like every address floodgate
//! derives: an IPv6 client by its `[identity] ipv6_prefix` network, an
//! IPv4-mapped one as IPv4); the descriptors of a request stand or fall
//! together: if any is over its limit, none is charged.

use std::collections::btree_map;
use std::net::IpAddr;
use std::sync::Arc;

use floodgate_core::Attributes;
use floodgate_proto::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use floodgate_proto::envoy::service::ratelimit::v3 as rls;
use floodgate_store::{Check, LeaseMode, Verdict};
use smallvec::SmallVec;
use tonic::{Request, Response, Status};

use super::{envoy_budget, traceparent};
use crate::app::App;
use crate::errors::to_status;
use crate::identity::ip_attribute;
use answer::Answer;
pub use server::RlsServer;

mod answer;
mod server;

/// The `RateLimitService` gRPC service.
pub struct RlsService {
    /// Shared state.
    app: Arc<App>,
}

impl RlsService {
    /// The service over `app`.
    pub fn new(app: Arc<App>) -> Self {
        RlsService { app }
    }
}

/// Most descriptors one request may carry.
pub const MAX_DESCRIPTORS: usize = 64;

/// A descriptor's entries as attributes, moved out of it; `remote_address`
/// becomes `ip` (see [`ip_attribute`]; a value that is no IP address is
/// kept as is).
///
/// # Errors
/// INVALID_ARGUMENT for no entries, an empty key, or a key given twice.
pub fn descriptor_attributes(
    index: usize,
    d: &mut RateLimitDescriptor,
    ipv6_prefix: u8,
) -> Result<Attributes, Status> {
    if d.entries.is_empty() {
        return Err(Status::invalid_argument(format!(
            "descriptor {index} has no entries"
        )));
    }
    let mut attributes = Attributes::new();
    for entry in &mut d.entries {
        if entry.key.is_empty() {
            return Err(Status::invalid_argument(format!(
                "descriptor {index} has an entry with an empty key"
            )));
        }
        let (name, value) = if entry.key == "remote_address" {
            let value = match entry.value.parse::<IpAddr>() {
                Ok(ip) => ip_attribute(ip, ipv6_prefix),
                Err(_) => std::mem::take(&mut entry.value),
            };
            ("ip".to_string(), value)
        } else {
            (
                std::mem::take(&mut entry.key),
                std::mem::take(&mut entry.value),
            )
        };
        match attributes.entry(name) {
            btree_map::Entry::Vacant(place) => {
                place.insert(value);
            }
            btree_map::Entry::Occupied(taken) => {
                // The key as the descriptor gave it (moved out unless it
                // was `remote_address`).
                let key = if entry.key.is_empty() {
                    taken.key()
                } else {
                    &entry.key
                };
                return Err(Status::invalid_argument(format!(
                    "descriptor {index} names {key:?} twice"
                )));
            }
        }
    }
    Ok(attributes)
}

/// The request's shape: a domain and between one and [`MAX_DESCRIPTORS`]
/// descriptors.
///
/// # Errors
/// INVALID_ARGUMENT naming what is missing or too many.
fn validate(request: &rls::RateLimitRequest) -> Result<(), Status> {
    if request.domain.is_empty() {
        return Err(Status::invalid_argument("domain is empty"));
    }
    if request.descriptors.is_empty() {
        return Err(Status::invalid_argument("no descriptors"));
    }
    if request.descriptors.len() > MAX_DESCRIPTORS {
        return Err(Status::invalid_argument(format!(
            "{} descriptors (at most {MAX_DESCRIPTORS})",
            request.descriptors.len()
        )));
    }
    Ok(())
}

/// One descriptor's worth, kept inline: most requests carry one.
type PerDescriptor<T> = SmallVec<[T; 1]>;

/// One check per descriptor, each over its `attributes` (in the
/// descriptors' order), in the request's domain, never reserving.
fn checks<'a>(
    request: &'a rls::RateLimitRequest,
    attributes: &'a [Attributes],
) -> PerDescriptor<Check<'a>> {
    // Envoy: hits_addend unset (0) means 1.
    let request_hits = u64::from(request.hits_addend.max(1));
    request
        .descriptors
        .iter()
        .zip(attributes)
        .map(|(d, attributes)| Check {
            attributes,
            hits: d.hits_addend.unwrap_or(request_hits),
            domain: Some(&request.domain),
            reserve: false,
        })
        .collect()
}

impl RlsService {
    /// `ShouldRateLimit`: one check per descriptor, answered together.
    async fn should_rate_limit(
        &self,
        request: Request<rls::RateLimitRequest>,
    ) -> Result<Response<Answer>, Status> {
        let mut timer = self.app.check_timer("envoy_rls", traceparent(&request));
        let budget = envoy_budget(&self.app, &request);
        let mut request = request.into_inner();
        validate(&request)?;
        // One configuration for the whole request.
        let settings = self.app.settings.load();
        let attributes = request
            .descriptors
            .iter_mut()
            .enumerate()
            .map(|(i, d)| descriptor_attributes(i, d, settings.identity.ipv6_prefix))
            .collect::<Result<PerDescriptor<_>, _>>()?;
        let checks = checks(&request, &attributes);
        for attributes in &attributes {
            timer.attributes(attributes);
        }
        timer.deciding();
        // No "request finished" callback, so concurrency policies are
        // skipped.
        let verdicts = self
            .app
            .check_waiting(
                &settings.policies,
                &checks,
                LeaseMode::Skipped("envoy_rls"),
                budget,
            )
            .await
            .map_err(to_status)?
            .verdicts;
        // One descriptor (the usual request) is its own overall verdict.
        let combined;
        let overall = match verdicts.as_slice() {
            [one] => one,
            many => {
                combined = Verdict::combine(many);
                &combined
            }
        };
        timer.decided(overall);
        let answer = Answer::new(&verdicts, overall, settings.headers);
        timer.finish();
        Ok(Response::new(answer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_proto::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;

    fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
        RateLimitDescriptor {
            entries: entries
                .iter()
                .map(|(key, value)| Entry {
                    key: key.to_string(),
                    value: value.to_string(),
                })
                .collect(),
            ..RateLimitDescriptor::default()
        }
    }

    #[test]
    fn remote_address_is_keyed_by_its_ipv6_network() {
        let ip = |address: &str, prefix| {
            descriptor_attributes(0, &mut descriptor(&[("remote_address", address)]), prefix)
                .unwrap()
                .remove("ip")
                .unwrap()
        };
        assert_eq!(ip("2001:db8:0:1aa::1", 56), "2001:db8:0:100::/56");
        assert_eq!(ip("2001:db8:0:1ff:ffff::3", 56), "2001:db8:0:100::/56");
        assert_eq!(ip("2001:db8:0:1ff::3", 64), "2001:db8:0:1ff::/64");
        assert_eq!(ip("::ffff:192.0.2.1", 56), "192.0.2.1");
        assert_eq!(ip("192.0.2.1", 56), "192.0.2.1");
        assert_eq!(ip("not-an-address", 56), "not-an-address");
        // An `ip` entry is the caller's choice, used as given.
        let given =
            descriptor_attributes(0, &mut descriptor(&[("ip", "2001:db8::1")]), 56).unwrap();
        assert_eq!(given["ip"], "2001:db8::1");
    }

    #[test]
    fn a_key_given_twice_is_named_as_the_descriptor_gave_it() {
        for (entries, named) in [
            (&[("user", "a"), ("user", "b")][..], "\"user\""),
            (
                &[("ip", "1"), ("remote_address", "2")][..],
                "\"remote_address\"",
            ),
        ] {
            let error = descriptor_attributes(3, &mut descriptor(entries), 56).unwrap_err();
            assert_eq!(error.message(), format!("descriptor 3 names {named} twice"));
        }
        let moved = descriptor_attributes(0, &mut descriptor(&[("user", "u1")]), 56).unwrap();
        assert_eq!(moved["user"], "u1");
    }
}
