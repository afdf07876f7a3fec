//! `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`, as Envoy
//! sends it: one descriptor whose entries are the check's attributes, the
//! cost in `hits_addend`, the run's `--domain`.

use std::sync::Arc;

use floodgate_proto::envoy::extensions::common::ratelimit::v3::{
    rate_limit_descriptor::Entry, RateLimitDescriptor,
};
use floodgate_proto::envoy::service::ratelimit::v3::rate_limit_response::Code;
use floodgate_proto::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};

use super::grpc::{open_channel, Channel};
use super::{Outcome, RequestTemplate};
use crate::error::BenchError;
use crate::target::Target;

/// An Envoy RLS v3 client on a shared channel.
#[derive(Debug, Clone)]
pub struct EnvoyClient {
    /// The connection (a cheap handle on it).
    channel: Channel,
    /// What each check carries.
    template: Arc<RequestTemplate>,
    /// `hits` as Envoy's u32 `hits_addend` (validated when parsing flags).
    hits_addend: u32,
}

impl EnvoyClient {
    /// Opens one HTTP/2 channel to `target`.
    ///
    /// # Errors
    /// [`BenchError::Connect`] when the channel cannot be established;
    /// [`BenchError::Usage`] when `hits` does not fit Envoy's u32.
    pub async fn connect(
        target: &Target,
        template: Arc<RequestTemplate>,
    ) -> Result<EnvoyClient, BenchError> {
        let hits_addend = u32::try_from(template.hits)
            .map_err(|_| BenchError::Usage("--hits must fit in 32 bits for envoy".into()))?;
        let channel = open_channel(
            target,
            "envoy",
            "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit",
        )
        .await?;
        Ok(EnvoyClient {
            channel,
            template,
            hits_addend,
        })
    }

    /// One `ShouldRateLimit` for key `index`.
    pub async fn check(&mut self, index: u64) -> Outcome {
        let mut entries: Vec<Entry> = self
            .template
            .attributes
            .iter()
            .map(|(key, value)| Entry {
                key: key.clone(),
                value: value.clone(),
            })
            .collect();
        entries.push(Entry {
            key: "user".to_string(),
            value: self.template.user(index),
        });
        let request = RateLimitRequest {
            domain: self.template.domain.clone(),
            descriptors: vec![RateLimitDescriptor {
                entries,
                ..Default::default()
            }],
            hits_addend: self.hits_addend,
        };
        let answer: Result<RateLimitResponse, Outcome> = self.channel.unary(&request).await;
        match answer {
            Ok(response) => match response.overall_code() {
                Code::Ok => Outcome::Allowed,
                Code::OverLimit => Outcome::Denied,
                Code::Unknown => Outcome::Status("envoy:UNKNOWN".to_string()),
            },
            Err(outcome) => outcome,
        }
    }
}
