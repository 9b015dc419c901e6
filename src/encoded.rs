//! A message encoded once and sent many times.

use std::marker::PhantomData;

use bytes::{Bytes, BytesMut};
use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType};

/// The encoding of an `M`, sent as is. The server encodes each event once
/// and every watcher sends the same bytes (`hotfixd`'s `Watch` answers with
/// these); on the wire it is exactly an `M`, so clients decode an `M`.
pub struct Encoded<M> {
    bytes: Bytes,
    of: PhantomData<fn() -> M>,
}

impl<M: Message + Default> Encoded<M> {
    /// Encodes `message`.
    pub fn of(message: &M) -> Self {
        Encoded {
            bytes: message.encode_to_vec().into(),
            of: PhantomData,
        }
    }

    /// The encoded message.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

impl<M> Clone for Encoded<M> {
    fn clone(&self) -> Self {
        Encoded {
            bytes: self.bytes.clone(),
            of: PhantomData,
        }
    }
}

impl<M> Default for Encoded<M> {
    fn default() -> Self {
        Encoded {
            bytes: Bytes::new(),
            of: PhantomData,
        }
    }
}

impl<M> std::fmt::Debug for Encoded<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encoded({} bytes)", self.bytes.len())
    }
}

impl<M: Message + Default> Message for Encoded<M> {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.bytes);
    }

    /// Decoding checks each field as an `M` would, and keeps its encoding.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        let mut field = M::default();
        field.merge_field(tag, wire_type, buf, ctx)?;
        let mut bytes = BytesMut::from(std::mem::take(&mut self.bytes));
        field.encode_raw(&mut bytes);
        self.bytes = bytes.freeze();
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    fn clear(&mut self) {
        self.bytes = Bytes::new();
    }
}

/// `tonic_prost::ProstCodec` with a small encode buffer (512 bytes instead
/// of 8 KiB), for long-lived streams of small messages: every `Watch`
/// stream keeps its buffer for as long as it lives.
pub struct SmallBufferCodec<T, U>(PhantomData<fn() -> (T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        SmallBufferCodec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for SmallBufferCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = tonic_prost::ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        let settings = tonic::codec::BufferSettings::new(512, 32 * 1024);
        tonic_prost::ProstCodec::<T, U>::raw_encoder(settings)
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstCodec::<T, U>::raw_decoder(Default::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    fn event() -> pb::WatchResponse {
        pb::WatchResponse {
            kind: Some(pb::watch_response::Kind::Event(pb::Event {
                seq: 7,
                incident_id: "INC-2026-05-20-001".into(),
                actor: "bob".into(),
                kind: "declared".into(),
                summary: "P0: checkout down".into(),
                version: 1,
                ..Default::default()
            })),
        }
    }

    #[test]
    fn sends_exactly_the_message_it_was_made_of() {
        let m = event();
        let sent = Encoded::of(&m).encode_to_vec();
        assert_eq!(sent, m.encode_to_vec());
        assert_eq!(pb::WatchResponse::decode(sent.as_slice()).unwrap(), m);
        assert_eq!(Encoded::of(&m).encoded_len(), sent.len());
    }

    #[test]
    fn decoding_keeps_every_field_and_refuses_what_an_m_would() {
        let m = event();
        let back = Encoded::<pb::WatchResponse>::decode(m.encode_to_vec().as_slice()).unwrap();
        assert_eq!(pb::WatchResponse::decode(back.bytes().clone()).unwrap(), m);
        // Field 1 (an Event) as a varint: not a WatchResponse.
        assert!(Encoded::<pb::WatchResponse>::decode([0x08u8, 0x01].as_slice()).is_err());
    }
}
