//! Map keys read as serde_json reads them. JSON's keys are text, so a map published as JSON
//! (`publish_json`, `mmf out NAME --json`) is stored with text keys, and rmp-serde refuses to
//! read `{"80": "http"}` into a `HashMap<u32, String>` where serde_json reads it. [`TextKeys`]
//! wraps a deserializer and reads as it does, except that a map key stored as text and asked for
//! as a number or a bool is read from the text, by the rules serde_json's map keys follow: a
//! number as JSON writes one (`"80"`, `"-1"`, `"2.5"`, `"1e3"`; not `"+1"`, `"08"`, `" 8"`),
//! a bool as `"true"` or `"false"`. Every other read is the inner deserializer's own.
//!
//! One more difference, at any depth: a `u128` is read by what the value is, not as rmp-serde
//! reads it. rmp-serde reads an `i128` first and casts it, so that a negative integer (`-1`
//! published as an `i64`, or JSON's `-1`) read into a `u128` was `u128::MAX`, with no error.
//! A negative integer is now refused as serde refuses one for a `u64`; a 16-byte binary (what
//! rmp-serde writes of an `i128` and of a `u128` alike) is still read as its bytes say, so an
//! `i128` of `-1` read as a `u128` is `u128::MAX` still: the bytes cannot tell them apart.
//!
//! A typed read of MessagePack reads through this wrapper (see `decode_read` in lib.rs).
//!
//! Not parsed from text: keys of `i128`, and of `u128` beyond 64 bits, which serde_json parses
//! (rmp-serde reads an `i128` from an encoding of its own, a 16-byte binary, which a read
//! through `deserialize_any` would no longer take); and, as serde_json does not either, keys
//! read through `deserialize_any` (untagged enums, `#[serde(flatten)]`, `serde_json::Value`).

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};

/// A deserializer that reads as `D` does, with text map keys read as numbers and bools where
/// those are asked for (see the module's docs).
pub(crate) struct TextKeys<D>(pub(crate) D);

/// A map key's deserializer: `D` at a key.
struct Key<D>(D);

/// A visitor whose composite values (options, newtypes, sequences, maps, enums) are read
/// through [`TextKeys`] again, so that maps at any depth read their keys so.
struct Wrap<V>(V);

/// A seed whose value is read through [`TextKeys`].
struct Seed<S>(S);

/// A seed whose value is read through [`Key`].
struct KeySeed<S>(S);

/// The visitor of an optional key: what is in it is read as a key.
struct OptionKey<V>(V);

/// What a key is asked for as, where text may hold it.
#[derive(Clone, Copy)]
enum Kind {
    Bool,
    Number,
    F32,
}

/// A key's visitor for a `Kind`: text is read as that kind, anything else goes to `V`.
struct KeyVisitor<V> {
    visitor: V,
    kind: Kind,
}

/// Forwards `deserialize_*` calls to the inner deserializer, with the visitor wrapped.
macro_rules! forward_wrapped {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method($($arg,)* Wrap(visitor))
        }
    )*};
}

/// Forwards `visit_*` calls of one plain value to the inner visitor.
macro_rules! forward_visits {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for TextKeys<D> {
    type Error = D::Error;

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }

    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(Unsigned128(visitor))
    }

    forward_wrapped! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visits! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(TextKeys(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_newtype_struct(TextKeys(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        self.0.visit_seq(TextKeys(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit_map(TextKeys(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.0.visit_enum(TextKeys(data))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(TextKeys(d))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for KeySeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Key(d))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for TextKeys<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for TextKeys<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(KeySeed(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for TextKeys<A> {
    type Error = A::Error;
    type Variant = TextKeys<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        // The variant's name or index is read as it is: it is no map key.
        let (value, variant) = self.0.variant_seed(seed)?;
        Ok((value, TextKeys(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for TextKeys<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        // rmp-serde refuses content other than nil after a unit variant's name (`{"A": 5}`)
        // with the error it raises where a number or a bool finds another kind, which a typed
        // read's message words so (`said` in lib.rs): said here as what it is. Its
        // `unit_variant` can fail in no other way on a value `msgpack::check` passed (a read of
        // nil's marker; an end of input there is not whole), and the one inner deserializer
        // this wrapper serves is rmp-serde's (`decode_read`).
        self.0.unit_variant().map_err(|_| {
            de::Error::invalid_type(
                Unexpected::Other("content"),
                &"nothing: a unit variant is its name alone (\"A\") or holds nil (JSON's null)",
            )
        })
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Seed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Wrap(visitor))
    }
}

/// Reads a key asked for as `kind` through `deserialize_any`: rmp-serde's `deserialize_u32`
/// and the like refuse a string before any visitor sees it.
macro_rules! key_kind {
    ($($method:ident => $kind:expr;)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            self.0.deserialize_any(KeyVisitor { visitor, kind: $kind })
        }
    )*};
}

/// Forwards `deserialize_*` calls to the inner deserializer as they are.
macro_rules! forward_plain {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method($($arg,)* visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Key<D> {
    type Error = D::Error;

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }

    key_kind! {
        deserialize_bool => Kind::Bool;
        deserialize_i8 => Kind::Number;
        deserialize_i16 => Kind::Number;
        deserialize_i32 => Kind::Number;
        deserialize_i64 => Kind::Number;
        deserialize_u8 => Kind::Number;
        deserialize_u16 => Kind::Number;
        deserialize_u32 => Kind::Number;
        deserialize_u64 => Kind::Number;
        deserialize_f32 => Kind::F32;
        deserialize_f64 => Kind::Number;
    }

    /// A newtype key (`struct Port(u16)`) is read as its inner key, as serde_json reads one;
    /// rmp-serde's own extension type (a newtype of its own name) is left to rmp-serde.
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        if name == rmp_serde::MSGPACK_EXT_STRUCT_NAME {
            self.0.deserialize_newtype_struct(name, visitor)
        } else {
            visitor.visit_newtype_struct(self)
        }
    }

    /// An optional key (`Option<u16>`) is some key read as a key, as serde_json reads one; a
    /// nil key stays `None`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_option(OptionKey(visitor))
    }

    /// A `u128` key: as a `u128` value is read, and from text too, where it spells an integer
    /// of up to 64 bits.
    fn deserialize_u128<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(KeyVisitor {
            visitor: Unsigned128(visitor),
            kind: Kind::Number,
        })
    }

    forward_plain! {
        deserialize_any();
        deserialize_i128();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier();
        deserialize_ignored_any();
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for OptionKey<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.visit_some(Key(d))
    }
}

/// Forwards `visit_*` calls of one plain value to the key's own visitor.
macro_rules! forward_key_visits {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.visitor.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for KeyVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.visitor.expecting(f)
    }

    forward_key_visits! {
        visit_bool(bool);
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
        visit_i128(i128);
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_bytes(&[u8]);
        visit_borrowed_bytes(&'de [u8]);
        visit_byte_buf(Vec<u8>);
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        text_key(self.kind, v, self.visitor)
    }

    // A key's composite values (a map or an array as a key) keep the visitor's defaults, which
    // refuse them as `expecting` says: a number or a bool is none of them.
}

/// A `u128`'s visitor, reading what `deserialize_any` found: an integer of up to 64 bits if it
/// is not negative, or the 16 bytes of binary rmp-serde writes (big-endian); anything else goes
/// to `V`, which refuses it as it says.
struct Unsigned128<V>(V);

/// An integer of one of serde's signed types, given to a `u128`'s visitor: refused where it is
/// negative, as serde refuses one for a `u64`.
macro_rules! signed_to_u128 {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            match u128::try_from(v) {
                Ok(v) => self.0.visit_u128(v),
                Err(_) => Err(E::invalid_value(Unexpected::Signed(v.into()), &self.0)),
            }
        }
    )*};
}

/// An integer of one of serde's unsigned types, given to a `u128`'s visitor.
macro_rules! unsigned_to_u128 {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.0.visit_u128(v.into())
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Unsigned128<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    signed_to_u128! {
        visit_i8(i8);
        visit_i16(i16);
        visit_i32(i32);
        visit_i64(i64);
    }

    unsigned_to_u128! {
        visit_u8(u8);
        visit_u16(u16);
        visit_u32(u32);
        visit_u64(u64);
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        match <[u8; 16]>::try_from(v) {
            Ok(bytes) => self.0.visit_u128(u128::from_be_bytes(bytes)),
            Err(_) => self.0.visit_bytes(v),
        }
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
        self.visit_bytes(v)
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Self::Value, E> {
        self.visit_bytes(&v)
    }

    forward_visits! {
        visit_bool(bool);
        visit_i128(i128);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.0.visit_unit()
    }

    // Composite values keep the visitor's defaults, which refuse them as `expecting` says.
}

/// A key `text` asked for as `kind`, given to `visitor` as the value it spells; text that
/// spells none is refused as text, as rmp-serde's own read would have refused it.
fn text_key<'de, V: Visitor<'de>, E: de::Error>(
    kind: Kind,
    text: &str,
    visitor: V,
) -> Result<V::Value, E> {
    match kind {
        Kind::Bool => match text {
            "true" => visitor.visit_bool(true),
            "false" => visitor.visit_bool(false),
            _ => Err(E::invalid_type(Unexpected::Str(text), &visitor)),
        },
        Kind::Number | Kind::F32 => {
            let Some(integer) = json_number(text) else {
                return Err(E::invalid_type(Unexpected::Str(text), &visitor));
            };
            // An integer of up to 64 bits goes to the visitor as `u64` or `i64`, as serde_json
            // gives one (a visitor of a narrower type checks the range and says so); any other
            // number, a longer integer too, as a float, which an integer type refuses.
            // `-0` is the float `-0.0`, as serde_json reads it (FORMAT.md §7.1).
            if integer && text != "-0" {
                if let Ok(n) = text.parse::<u64>() {
                    return visitor.visit_u64(n);
                }
                if let Ok(n) = text.parse::<i64>() {
                    return visitor.visit_i64(n);
                }
            }
            if matches!(kind, Kind::F32) {
                return match text.parse::<f32>() {
                    Ok(x) if x.is_finite() => visitor.visit_f32(x),
                    _ => Err(E::invalid_value(Unexpected::Str(text), &visitor)),
                };
            }
            match text.parse::<f64>() {
                Ok(x) if x.is_finite() => visitor.visit_f64(x),
                _ => Err(E::invalid_value(Unexpected::Str(text), &visitor)),
            }
        }
    }
}

/// Whether `text` is one JSON number and nothing else (RFC 8259 §6: `-? (0 | [1-9][0-9]*)
/// (. [0-9]+)? ([eE] [+-]? [0-9]+)?`): `Some(true)` for an integer (no fraction, no exponent),
/// `Some(false)` for another number, `None` for text that is no number.
fn json_number(text: &str) -> Option<bool> {
    let b = text.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(&mut i);
        }
        _ => return None,
    }
    let mut integer = true;
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return None;
        }
        integer = false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return None;
        }
        integer = false;
    }
    (i == b.len()).then_some(integer)
}

#[cfg(test)]
mod tests {
    use super::json_number;

    #[test]
    fn json_numbers_are_told_from_other_text() {
        for (text, want) in [
            ("0", Some(true)),
            ("-0", Some(true)),
            ("80", Some(true)),
            ("-17", Some(true)),
            ("18446744073709551616", Some(true)),
            ("2.5", Some(false)),
            ("-0.5e-3", Some(false)),
            ("1E+2", Some(false)),
            ("", None),
            ("-", None),
            ("+1", None),
            ("08", None),
            (" 8", None),
            ("8 ", None),
            ("1.", None),
            (".5", None),
            ("1e", None),
            ("1e+", None),
            ("0x10", None),
            ("NaN", None),
            ("Infinity", None),
            ("1_000", None),
            ("١", None),
        ] {
            assert_eq!(json_number(text), want, "{text:?}");
        }
    }
}
