//! The codec every generated service and client uses: prost, except that a
//! request body that is not valid protobuf is the caller's fault and answered
//! `INVALID_ARGUMENT` with the decoder's reason. (`tonic_prost::ProstCodec`
//! reports decode errors as `INTERNAL`, which Envoy counts as the rate limit
//! service failing.)

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// [`ProstCodec`] with decode errors reported as `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct InvalidArgumentCodec<T, U> {
    /// What messages are sent and received.
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for InvalidArgumentCodec<T, U> {
    fn default() -> Self {
        InvalidArgumentCodec {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for InvalidArgumentCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = InvalidArgumentDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::default().encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        InvalidArgumentDecoder(ProstCodec::<T, U>::default().decoder())
    }
}

/// A prost decoder whose decode errors are `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct InvalidArgumentDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default> Decoder for InvalidArgumentDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(invalid_argument)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

/// The status for bytes that are not a valid message.
fn invalid_argument(error: prost::DecodeError) -> Status {
    Status::invalid_argument(format!("failed to decode the request message: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use tonic::Code;

    #[test]
    fn a_decode_error_is_the_callers_fault() {
        // A varint that never ends: ten continuation bytes.
        let error = prost_types::Duration::decode(
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ][..],
        )
        .unwrap_err();
        let status = invalid_argument(error);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("invalid varint"), "{status:?}");
    }
}
