//! A gRPC codec for raw message bytes, to put hand-built protobuf on the
//! wire, and a floodgate.v1 `Check` call for raw HTTP/2 clients.

use std::net::SocketAddr;

use floodgate_proto::floodgate::v1::CheckRequest;

/// A floodgate.v1 `Check` call to the gRPC listener `grpc`: the request
/// head and its one message framed as gRPC frames it (for a client that
/// drives the HTTP/2 stream itself: sends the head, the message or not,
/// drops the connection).
pub fn check_call(grpc: SocketAddr, check: &CheckRequest) -> (http::Request<()>, bytes::Bytes) {
    let message = prost::Message::encode_to_vec(check);
    let mut frame = vec![0];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let head = http::Request::post(format!("http://{grpc}/floodgate.v1.RateLimiter/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("a valid request head");
    (head, frame.into())
}

/// A gRPC codec that sends and receives raw message bytes, to put
/// hand-built protobuf on the wire and read back exactly what came.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = bytes::Bytes;
    type Decode = bytes::Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Self::Item,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), Self::Error> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = bytes::Bytes;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Self::Item>, Self::Error> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
