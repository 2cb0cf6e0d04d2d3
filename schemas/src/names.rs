//! How things of the contract are named for people and in read models: an
//! enum by its wire name, a solution component by its agent and strength.
//! One place, so the projector, the queries, the API and the CLI name the
//! same value the same way.

use serde::ser::{self, Impossible, Serialize, Serializer};

/// A serde enum's wire name (`"ultrasound"`), for read models and output.
/// A unit variant or a string is named without building a JSON value (this
/// runs for several fields of every folded event); anything else falls
/// back to its JSON text.
pub fn name<T: Serialize>(value: &T) -> String {
    match value.serialize(WireName) {
        Ok(name) => name,
        Err(NotAName) => match serde_json::to_value(value) {
            Ok(serde_json::Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => String::new(),
        },
    }
}

/// `dextrose 15%`, `prp`: a component as the signals group it.
pub fn solution_label(c: &crate::SolutionComponent) -> String {
    match c.concentration_pct {
        Some(pct) => format!("{} {pct}%", name(&c.agent)),
        None => name(&c.agent),
    }
}

/// Serializes a unit variant or a string to its text; refuses anything else.
struct WireName;

/// Not a unit variant or a string.
#[derive(Debug)]
struct NotAName;

impl std::fmt::Display for NotAName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a unit variant or a string")
    }
}

impl std::error::Error for NotAName {}

impl ser::Error for NotAName {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        NotAName
    }
}

macro_rules! not_a_name {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result<String, NotAName> { Err(NotAName) })*
    };
}

impl Serializer for WireName {
    type Ok = String;
    type Error = NotAName;
    type SerializeSeq = Impossible<String, NotAName>;
    type SerializeTuple = Impossible<String, NotAName>;
    type SerializeTupleStruct = Impossible<String, NotAName>;
    type SerializeTupleVariant = Impossible<String, NotAName>;
    type SerializeMap = Impossible<String, NotAName>;
    type SerializeStruct = Impossible<String, NotAName>;
    type SerializeStructVariant = Impossible<String, NotAName>;

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, NotAName> {
        Ok(variant.to_owned())
    }

    fn serialize_str(self, v: &str) -> Result<String, NotAName> {
        Ok(v.to_owned())
    }

    not_a_name!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
    );

    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<String, NotAName> {
        Err(NotAName)
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String, NotAName> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, NotAName> {
        Err(NotAName)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, NotAName> {
        Err(NotAName)
    }

    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, NotAName> {
        Err(NotAName)
    }

    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, NotAName> {
        Err(NotAName)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, NotAName> {
        Err(NotAName)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, NotAName> {
        Err(NotAName)
    }

    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, NotAName> {
        Err(NotAName)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, NotAName> {
        Err(NotAName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_what_json_would_say() {
        assert_eq!(name(&crate::Guidance::Ultrasound), "ultrasound");
        assert_eq!(name(&crate::AdverseEventKind::PainFlare), "pain_flare");
        assert_eq!(name(&"text"), "text");
        // Not a name: its JSON text, as before.
        assert_eq!(name(&42u8), "42");
        assert_eq!(name(&Some(1u8)), "1");
        for value in [crate::Guidance::Palpation, crate::Guidance::Fluoroscopy] {
            assert_eq!(
                name(&value),
                serde_json::to_value(value)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or_default()
            );
        }
    }
}
