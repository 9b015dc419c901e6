//! The canonical proto3 JSON mapping of `hotfix.v1`'s messages: what
//! `buf curl`, grpcurl and protojson print for the same answer, so that a
//! script reading `hotfixctl -o json`, the status page's API and `buf curl`
//! read one shape. Field names in lowerCamelCase, enum values by name,
//! 64-bit integers as strings, timestamps in RFC 3339, default values left
//! out.
//!
//! The mapping is read off the descriptor set the build compiled
//! ([`crate::FILE_DESCRIPTOR_SET`]) by prost-reflect, so it cannot drift
//! from the generated types.

use std::sync::LazyLock;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set compiled by build.rs decodes")
});

/// `message` in the proto3 JSON mapping.
pub fn to_value<M: prost::Message + prost::Name>(message: &M) -> serde_json::Value {
    let name = M::full_name();
    let descriptor = POOL
        .get_message_by_name(&name)
        .unwrap_or_else(|| panic!("{name} is in the descriptor set"));
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .expect("a message re-decodes as its own type");
    dynamic
        .serialize_with_options(
            serde_json::value::Serializer,
            &SerializeOptions::new().skip_default_fields(false),
        )
        .expect("a decoded message serializes to JSON")
}

/// `message` in the proto3 JSON mapping, on one line.
pub fn to_string<M: prost::Message + prost::Name>(message: &M) -> String {
    to_value(message).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    #[test]
    fn names_are_camel_case_enums_by_name_times_rfc3339_and_defaults_printed() {
        let event = pb::Event {
            seq: 7,
            incident_id: "INC-2026-0001".into(),
            at: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            state: pb::State::Merged as i32,
            drill: false,
            ..Default::default()
        };
        let v = to_value(&event);
        assert_eq!(v["incidentId"], "INC-2026-0001");
        assert_eq!(v["seq"], "7", "64-bit integers are strings");
        assert_eq!(v["state"], "STATE_MERGED");
        assert_eq!(v["at"], "2023-11-14T22:13:20Z");
        assert_eq!(v["drill"], false, "defaults are printed: {v}");
        assert_eq!(v["summary"], "");
    }
}

#[cfg(test)]
mod nested {
    use super::*;
    use crate::pb;

    #[test]
    fn an_unset_message_is_null_and_an_empty_list_is_empty() {
        let v = to_value(&pb::GetHotfixResponse::default());
        assert_eq!(v["hotfix"], serde_json::Value::Null, "{v}");
        assert_eq!(v["timeline"], serde_json::json!([]), "{v}");
    }
}
