//! Typed values through live channels, JSON <-> MessagePack round trips, and every error path.

use std::collections::BTreeMap;

use mmf_codec::json::{json_to_msgpack, msgpack_to_json};
use mmf_codec::{Channel, ChannelExt, Error, Tag};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
enum Mode {
    Fast,
    Careful { retries: u8 },
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Config {
    name: String,
    threads: u32,
    offset: i64,
    ratio: f64,
    tags: Vec<String>,
    limits: BTreeMap<String, u64>,
    parent: Option<u64>,
    mode: Mode,
}

fn arb_config() -> impl Strategy<Value = Config> {
    (
        any::<String>(),
        any::<u32>(),
        any::<i64>(),
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        prop::collection::vec(any::<String>(), 0..5),
        prop::collection::btree_map(any::<String>(), any::<u64>(), 0..5),
        any::<Option<u64>>(),
        prop_oneof![
            Just(Mode::Fast),
            any::<u8>().prop_map(|retries| Mode::Careful { retries })
        ],
    )
        .prop_map(
            |(name, threads, offset, ratio, tags, limits, parent, mode)| Config {
                name,
                threads,
                offset,
                ratio,
                tags,
                limits,
                parent,
                mode,
            },
        )
}

fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<u64>().prop_map(|u| json!(u)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        any::<String>().prop_map(Json::String),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Json::Array),
            prop::collection::vec((any::<String>(), inner), 0..8)
                .prop_map(|kv| Json::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn json_survives_msgpack_and_back(v in arb_json()) {
        let text = serde_json::to_string(&v).unwrap();
        let mp = json_to_msgpack(&text).unwrap();
        let back: Json = serde_json::from_str(&msgpack_to_json(&mp, false).unwrap()).unwrap();
        prop_assert_eq!(&back, &v);
        // And through a live channel, as the CLI does it.
        let ch = Channel::anonymous(text.len() * 2 + 64).unwrap();
        ch.publish_json(&text).unwrap();
        let read: Json = serde_json::from_str(&ch.read_json(true).unwrap()).unwrap();
        prop_assert_eq!(read, v);
    }

    #[test]
    fn typed_values_round_trip_through_a_channel(cfg in arb_config()) {
        let ch = Channel::anonymous(1 << 16).unwrap();
        let g = ch.publish(&cfg).unwrap();
        let mut buf = Vec::new();
        let (meta, back): (_, Config) = ch.read_with(&mut buf).unwrap();
        prop_assert_eq!((meta.generation, meta.tag), (g, Tag::MSGPACK));
        prop_assert_eq!(back, cfg.clone());
        // The JSON view of the same frame decodes into the same struct too.
        let via_json: Config = serde_json::from_str(&ch.read_json(false).unwrap()).unwrap();
        prop_assert_eq!(via_json, cfg);
    }
}

#[test]
fn an_independent_decoder_sees_named_fields() {
    let ch = Channel::anonymous(4096).unwrap();
    let cfg = Config {
        name: "bench".into(),
        threads: 8,
        offset: -1,
        ratio: 0.5,
        tags: vec!["a".into()],
        limits: BTreeMap::new(),
        parent: None,
        mode: Mode::Careful { retries: 3 },
    };
    ch.publish(&cfg).unwrap();
    let bytes = ch.read_bytes().unwrap();
    let v = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
    let map = v.as_map().expect("a struct is a MessagePack map");
    let keys: Vec<&str> = map.iter().map(|(k, _)| k.as_str().unwrap()).collect();
    assert_eq!(
        keys,
        ["name", "threads", "offset", "ratio", "tags", "limits", "parent", "mode"]
    );
    assert_eq!(map[0].1.as_str(), Some("bench"));
    assert_eq!(map[1].1.as_u64(), Some(8));
    assert_eq!(map[2].1.as_i64(), Some(-1));
}

#[test]
fn text_and_bytes_helpers() {
    let ch = Channel::anonymous(64).unwrap();
    ch.publish_str("héllo").unwrap();
    assert_eq!(ch.read_string().unwrap(), "héllo");
    assert_eq!(ch.read_raw().unwrap().0.tag, Tag::TEXT);
    ch.publish_bytes(&[0, 159, 146, 150]).unwrap();
    assert_eq!(ch.read_bytes().unwrap(), [0, 159, 146, 150]);
    assert_eq!(ch.read_raw().unwrap().0.tag, Tag::BYTES);
}

#[test]
fn reading_the_wrong_tag_names_both() {
    let ch = Channel::anonymous(64).unwrap();
    ch.publish_str("plain text").unwrap();
    let err = ch.read::<Config>().unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongTag {
                found: Tag::TEXT,
                generation: 1,
                ..
            }
        ),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("text") && msg.contains("MessagePack"), "{msg}");
    ch.publish_bytes(b"\x00\x01").unwrap();
    let err = ch.read_string().unwrap_err();
    assert!(
        err.to_string().contains("bytes value") && err.to_string().contains("text"),
        "{err}"
    );
    assert!(matches!(
        ch.read_json(false).unwrap_err(),
        Error::WrongTag { .. }
    ));
}

#[test]
fn an_empty_channel_says_so() {
    let ch = Channel::anonymous(64).unwrap();
    assert!(matches!(ch.read::<u32>().unwrap_err(), Error::Empty { .. }));
    assert!(matches!(ch.read_string().unwrap_err(), Error::Empty { .. }));
    assert!(matches!(ch.read_bytes().unwrap_err(), Error::Empty { .. }));
}

#[test]
fn invalid_input_publishes_nothing() {
    let ch = Channel::anonymous(32).unwrap();
    ch.publish_str("keep").unwrap();
    match ch.publish_json("{\"a\":\n  [1, oops]}").unwrap_err() {
        Error::InvalidJson {
            line,
            column,
            message,
        } => {
            assert_eq!((line, column), (2, 7), "points at 'oops'");
            assert!(message.contains("expected value"), "{message}");
        }
        other => panic!("{other}"),
    }
    let err = ch.publish(&"x".repeat(100)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Channel(mmf_core::Error::TooLarge { capacity: 32, .. })
        ),
        "{err}"
    );
    let err = ch
        .publish_json(&format!("[{}]", "1,".repeat(40) + "1"))
        .unwrap_err();
    assert!(
        matches!(err, Error::Channel(mmf_core::Error::TooLarge { .. })),
        "{err}"
    );
    // A value whose Serialize impl fails is an encode error, halfway into the slot or not.
    struct Liar;
    impl Serialize for Liar {
        fn serialize<S: serde::Serializer>(&self, _s: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("refuses to be serialized"))
        }
    }
    let err = ch.publish(&Liar).unwrap_err();
    assert!(
        matches!(&err, Error::Encode(m) if m.contains("refuses")),
        "{err}"
    );
    let (meta, bytes) = ch.read_raw().unwrap();
    assert_eq!((meta.generation, &bytes[..]), (1, &b"keep"[..]));
}

#[test]
fn invalid_stored_values_are_errors_not_panics() {
    let ch = Channel::anonymous(64).unwrap();
    ch.publish_raw(Tag::TEXT, b"ok \xff\xfe").unwrap();
    let err = ch.read_string().unwrap_err();
    assert!(matches!(err, Error::InvalidUtf8(_)), "{err}");
    assert!(err.to_string().contains("index 3"), "says where: {err}");
    ch.publish_raw(Tag::MSGPACK, &[0x92, 0x01]).unwrap(); // array of 2, one element
    assert!(matches!(
        ch.read_json(false).unwrap_err(),
        Error::InvalidMsgpack(_)
    ));
    assert!(matches!(
        ch.read::<Vec<u8>>().unwrap_err(),
        Error::Decode { .. }
    ));
    ch.publish(&(1u8, 2u8)).unwrap();
    let err = ch.read::<String>().unwrap_err();
    assert!(
        err.to_string().contains("alloc::string::String"),
        "names the type: {err}"
    );
    ch.publish_raw(Tag::JSON, b"{\"a\": 1}").unwrap();
    assert_eq!(ch.read::<BTreeMap<String, u8>>().unwrap()["a"], 1);
    assert_eq!(ch.read_json(false).unwrap(), "{\"a\": 1}");
    assert_eq!(ch.read_string().unwrap(), "{\"a\": 1}");
}
