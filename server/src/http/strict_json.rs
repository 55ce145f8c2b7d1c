//! Request bodies read as the contract writes them: a struct is a JSON object, never an array.
//!
//! serde's derived `Deserialize` for a struct also accepts the sequence form (`[a, b, ...]`,
//! fields by position), and a struct whose fields all have defaults even accepts `[]`.
//! [`Strict`] wraps any deserializer and guarantees that every struct, at every nesting level
//! (fields, list items, map values, options, newtypes, enum variants), is read only from a
//! map: a sequence there fails with `invalid type: sequence, expected a JSON object`.
//! Everything else is passed through unchanged: the same documents are accepted, tuples and
//! lists are still arrays, and every other error is the wrapped deserializer's own.
//!
//! It composes with `serde_path_to_error`, which then names the field whose value was wrong.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Unexpected,
    VariantAccess, Visitor,
};

/// The adapter. Wraps a deserializer, and inside it the seeds, visitors and accesses it hands
/// out, so the rule reaches nested values.
pub struct Strict<T>(T);

impl<T> Strict<T> {
    pub fn new(inner: T) -> Self {
        Strict(inner)
    }
}

/// What a struct's visitor says it expected, in the words of the wire format.
const OBJECT: &str = "a JSON object";

/// A visitor wrapped so what it is handed is wrapped in turn. For a struct (`object`), a
/// sequence is refused and the expectation reads [`OBJECT`].
struct Wrap<V> {
    visitor: V,
    object: bool,
}

impl<V> Wrap<V> {
    fn any(visitor: V) -> Self {
        Wrap {
            visitor,
            object: false,
        }
    }

    fn object(visitor: V) -> Self {
        Wrap {
            visitor,
            object: true,
        }
    }
}

macro_rules! forward_deserialize {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(Wrap::any(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any deserialize_bool
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
        deserialize_bytes deserialize_byte_buf deserialize_option deserialize_unit
        deserialize_seq deserialize_map deserialize_identifier
    }

    /// The one change: a struct is read as a map, which refuses a sequence.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_map(Wrap::object(visitor))
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, Wrap::any(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_newtype_struct(name, Wrap::any(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple(len, Wrap::any(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_tuple_struct(name, len, Wrap::any(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, Wrap::any(visitor))
    }

    /// What is skipped holds no struct to check.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_ignored_any(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.visitor.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.object {
            f.write_str(OBJECT)
        } else {
            self.visitor.expecting(f)
        }
    }

    forward_visit! {
        visit_bool(bool)
        visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
        visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128)
        visit_f32(f32) visit_f64(f64) visit_char(char)
        visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
        visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.visitor.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.visitor.visit_some(Strict(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.visitor.visit_newtype_struct(Strict(d))
    }

    /// A struct is never read from a sequence. Reached by struct variants, which some
    /// deserializers read with their `deserialize_struct`.
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if self.object {
            Err(de::Error::invalid_type(Unexpected::Seq, &self))
        } else {
            self.visitor.visit_seq(Strict(seq))
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_map(Strict(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.visitor.visit_enum(Strict(data))
    }
}

/// A seed deserializes from a wrapped deserializer.
impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Strict<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Strict(d))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Strict<A> {
    type Error = A::Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<Option<S::Value>, Self::Error> {
        self.0.next_element_seed(Strict(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Strict<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.0.next_key_seed(Strict(seed))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, Self::Error> {
        self.0.next_value_seed(Strict(seed))
    }

    fn next_entry_seed<K: DeserializeSeed<'de>, S: DeserializeSeed<'de>>(
        &mut self,
        key: K,
        value: S,
    ) -> Result<Option<(K::Value, S::Value)>, Self::Error> {
        self.0.next_entry_seed(Strict(key), Strict(value))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Strict<A> {
    type Error = A::Error;
    type Variant = Strict<A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), Self::Error> {
        let (value, variant) = self.0.variant_seed(Strict(seed))?;
        Ok((value, Strict(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Strict<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, Self::Error> {
        self.0.newtype_variant_seed(Strict(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.tuple_variant(len, Wrap::any(visitor))
    }

    /// A struct variant's fields: an object, as for a struct.
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.struct_variant(fields, Wrap::object(visitor))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    struct Inner {
        #[serde(default)]
        a: u32,
        #[serde(default)]
        b: Option<String>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Outer {
        name: String,
        inner: Inner,
        #[serde(default)]
        list: Vec<Inner>,
        #[serde(default)]
        maybe: Option<Inner>,
        #[serde(default)]
        map: BTreeMap<String, Inner>,
        #[serde(default)]
        pair: Option<(String, u32)>,
        #[serde(default)]
        kind: Option<Kind>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Plain,
        Wrapped(Inner),
        Pair(u32, u32),
        Fields { x: u32 },
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Closed {
        a: u32,
    }

    type Read<T> = Result<T, String>;

    fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
        T::deserialize(Strict::new(d))
    }

    /// `doc` read strictly and as serde alone reads it, both straight from the text and from
    /// a parsed value (the way the server reads bodies).
    fn read<T: DeserializeOwned>(doc: &str) -> [(Read<T>, Read<T>); 2] {
        let text = || serde_json::Deserializer::from_str(doc);
        let value = || serde_json::from_str::<serde_json::Value>(doc).unwrap();
        let s = |r: Result<T, serde_json::Error>| r.map_err(|e| e.to_string());
        [
            (s(deserialize(&mut text())), s(T::deserialize(&mut text()))),
            (s(deserialize(value())), s(T::deserialize(value()))),
        ]
    }

    /// Read strictly, `doc` gives what serde alone gives, from text and from a value: the same
    /// value or the same error. Returns what the value gave.
    #[track_caller]
    fn as_before<T: DeserializeOwned + PartialEq + fmt::Debug>(doc: &str) -> Read<T> {
        let [(text, lax_text), (value, lax_value)] = read::<T>(doc);
        assert_eq!(text, lax_text, "{doc}, from text");
        assert_eq!(value, lax_value, "{doc}, from a value");
        value
    }

    /// Read strictly, from text and from a value, `doc` is refused for an array where a
    /// struct is wanted.
    #[track_caller]
    fn refused_as_array<T: DeserializeOwned + fmt::Debug>(doc: &str) {
        for (strict, _) in read::<T>(doc) {
            let err = strict.expect_err(doc);
            assert!(
                err.starts_with("invalid type: sequence, expected a JSON object"),
                "{doc}: {err}"
            );
        }
    }

    fn inner(a: u32) -> Inner {
        Inner { a, b: None }
    }

    #[test]
    fn a_struct_given_as_an_array_is_refused() {
        refused_as_array::<Inner>("[]");
        refused_as_array::<Inner>(r#"[1, "x"]"#);
        // serde alone reads both (fields by position, defaults for the rest).
        let lax: Inner = serde_json::from_str("[]").unwrap();
        assert_eq!(lax, inner(0));
    }

    #[test]
    fn a_nested_struct_given_as_an_array_is_refused() {
        refused_as_array::<Outer>(r#"{"name": "n", "inner": []}"#);
        refused_as_array::<Outer>(r#"{"name": "n", "inner": {}, "list": [{}, [1]]}"#);
        refused_as_array::<Outer>(r#"{"name": "n", "inner": {}, "maybe": [2]}"#);
        refused_as_array::<Outer>(r#"{"name": "n", "inner": {}, "map": {"k": []}}"#);
        refused_as_array::<Outer>(r#"{"name": "n", "inner": {}, "kind": {"wrapped": [3]}}"#);
        refused_as_array::<Vec<Inner>>("[[]]");
        refused_as_array::<presence_protocol::OpeningHours>(
            r#"{"enabled": true, "timezone": "UTC", "days": []}"#,
        );
    }

    #[test]
    fn a_struct_variant_given_as_an_array_is_refused() {
        let doc = r#"{"name": "n", "inner": {}, "kind": {"fields": [4]}}"#;
        let [(text, lax), (value, _)] = read::<Outer>(doc);
        // serde_json reads a struct variant's fields from an array when reading text.
        assert_eq!(lax.unwrap().kind, Some(Kind::Fields { x: 4 }));
        let err = text.unwrap_err();
        assert!(
            err.starts_with("invalid type: sequence, expected a JSON object"),
            "{err}"
        );
        // A parsed value refuses it on its own, in its own words.
        let err = value.unwrap_err();
        assert!(err.starts_with("invalid type: sequence"), "{err}");
    }

    #[test]
    fn the_path_of_the_refused_struct_is_named() {
        let value = json!({"name": "n", "inner": {}, "list": [{}, {}, []]});
        let err = serde_path_to_error::deserialize::<_, Outer>(Strict::new(value)).unwrap_err();
        assert_eq!(err.path().to_string(), "list[2]");
        let value = json!({"enabled": true, "timezone": "UTC", "days": []});
        let err = serde_path_to_error::deserialize::<_, presence_protocol::OpeningHours>(
            Strict::new(value),
        )
        .unwrap_err();
        assert_eq!(err.path().to_string(), "days");
    }

    #[test]
    fn objects_lists_maps_tuples_enums_and_options_still_read() {
        let got = as_before::<Outer>(
            r#"{"name": "n", "inner": {"a": 1, "b": "x"}, "list": [{}, {"a": 2}],
                "maybe": {"a": 3}, "map": {"k": {"a": 4}}, "pair": ["p", 5],
                "kind": {"fields": {"x": 6}}}"#,
        )
        .unwrap();
        let want = Outer {
            name: "n".into(),
            inner: Inner {
                a: 1,
                b: Some("x".into()),
            },
            list: vec![inner(0), inner(2)],
            maybe: Some(inner(3)),
            map: BTreeMap::from([("k".to_owned(), inner(4))]),
            pair: Some(("p".into(), 5)),
            kind: Some(Kind::Fields { x: 6 }),
        };
        assert_eq!(got, want);
        for (kind, want) in [
            (r#""plain""#, Kind::Plain),
            (r#"{"wrapped": {"a": 7}}"#, Kind::Wrapped(inner(7))),
            (r#"{"pair": [8, 9]}"#, Kind::Pair(8, 9)),
        ] {
            let doc = format!(r#"{{"name": "n", "inner": {{}}, "kind": {kind}, "maybe": null}}"#);
            let got = as_before::<Outer>(&doc).unwrap();
            assert_eq!(got.kind, Some(want));
            assert_eq!(got.maybe, None);
        }
        let got = as_before::<Vec<(String, String)>>(r#"[["09:00", "17:00"]]"#).unwrap();
        assert_eq!(got, vec![("09:00".into(), "17:00".into())]);
        let got = as_before::<presence_protocol::OpeningHours>(
            r#"{"enabled": true, "timezone": "UTC", "days": {"mon": [["09:00", "17:00"]]}}"#,
        )
        .unwrap();
        assert_eq!(got.days.mon.len(), 1);
    }

    #[test]
    fn unknown_fields_are_treated_as_before() {
        // Ignored where the type ignores them, whatever their shape...
        let got = as_before::<Inner>(r#"{"a": 1, "extra": [[], {"deep": [1, 2]}], "x": null}"#);
        assert_eq!(got.unwrap(), inner(1));
        // ...and refused where the type refuses them.
        let err = as_before::<Closed>(r#"{"a": 1, "extra": 2}"#).unwrap_err();
        assert!(err.starts_with("unknown field `extra`"), "{err}");
    }

    #[test]
    fn other_errors_and_documents_are_as_before() {
        for doc in [
            r#"{"name": 1, "inner": {}}"#,
            r#"{"inner": {}}"#,
            r#"{"name": "n", "inner": {"a": -1}}"#,
            r#"{"name": "n", "inner": {}, "kind": "nope"}"#,
            r#"{"name": "n", "inner": {}, "kind": {"plain": null, "pair": [1, 2]}}"#,
            r#"{"name": "n", "inner": {}, "pair": ["p"]}"#,
            r#"{"name": "n", "inner": {}, "maybe": null, "list": null}"#,
            // Read from text, a repeated field is refused; a parsed value keeps the last.
            r#"{"name": "n", "name": "m", "inner": {}}"#,
        ] {
            as_before::<Outer>(doc).ok();
        }
        assert_eq!(as_before::<Option<Inner>>("null").unwrap(), None);
    }

    #[test]
    fn any_other_non_object_for_a_struct_says_an_object_was_expected() {
        for (doc, found) in [
            (r#"{"name": "n", "inner": "x"}"#, r#"string "x""#),
            (r#"{"name": "n", "inner": null}"#, "null"),
            (r#"{"name": "n", "inner": 1}"#, "integer `1`"),
        ] {
            for (strict, lax) in read::<Outer>(doc) {
                let (strict, lax) = (strict.unwrap_err(), lax.unwrap_err());
                let want = format!("invalid type: {found}, expected a JSON object");
                assert!(strict.starts_with(&want), "{doc}: {strict}");
                // Only the expectation's wording differs from serde's own.
                assert_eq!(strict.replace("a JSON object", "struct Inner"), lax);
            }
        }
    }
}
