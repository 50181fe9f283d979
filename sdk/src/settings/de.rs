//! The serde field helpers behind every config type (the public face is
//! [`sdk::config::de`](crate::config::de), which adds the version selector).

use std::{fmt, marker::PhantomData, str::FromStr, time::Duration};

use http::{HeaderName, HeaderValue, StatusCode};
use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::units::{parse_duration, parse_size};

/// A value read from a string (after `${VAR}` substitution) or from a TOML scalar.
pub(crate) struct Lenient<T>(pub(crate) T);

impl<'de, T> Deserialize<'de> for Lenient<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T> Visitor<'_> for V<T>
        where
            T: FromStr,
            T::Err: fmt::Display,
        {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a {}", std::any::type_name::<T>())
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.trim()
                    .parse()
                    .map(Lenient)
                    .map_err(|e| E::custom(format!("`{v}`: {e}")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(V(PhantomData))
    }
}

/// A number or flag, written as a TOML scalar or as a string (`"${ATTEMPTS:3}"`).
pub fn lenient<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    Lenient::deserialize(deserializer).map(|Lenient(v)| v)
}

/// A duration: a string such as `"250ms"`, `"2s"` or `"5m"`, or a bare number of seconds
/// (`30`, `30.0`, `"30.0"`: how the reference SDK's files write them).
struct DurationStr(Duration);

fn seconds<E: de::Error>(secs: f64) -> Result<DurationStr, E> {
    Duration::try_from_secs_f64(secs)
        .map(DurationStr)
        .map_err(|_| E::custom(format!("{secs} is not a number of seconds")))
}

impl<'de> Deserialize<'de> for DurationStr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"250ms\", \"2s\", \"5m\", or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DurationStr, E> {
                match v.trim().parse::<f64>() {
                    Ok(secs) => seconds(secs),
                    Err(_) => parse_duration(v).map(DurationStr).map_err(E::custom),
                }
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DurationStr, E> {
                seconds(v as f64)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DurationStr, E> {
                seconds(v as f64)
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<DurationStr, E> {
                seconds(v)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A duration string such as `"250ms"`, `"2s"` or `"5m"`.
pub fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    DurationStr::deserialize(deserializer).map(|DurationStr(d)| d)
}

/// An optional duration: present means set.
pub fn some_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

/// An optional duration where `"0s"` turns the feature off.
pub fn duration_or_off<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(|d| (!d.is_zero()).then_some(d))
}

/// A size: a number of bytes, or a string with a unit (`"64KiB"`, `"10MiB"`).
pub fn size<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct V;
    impl Visitor<'_> for V {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size such as 1048576, \"64KiB\" or \"10MiB\"")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            parse_size(v).map_err(E::custom)
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_err(|_| E::custom("a size cannot be negative"))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }
    }
    let bytes = deserializer.deserialize_any(V)?;
    T::try_from(bytes).map_err(|_| de::Error::custom("too large for this machine"))
}

/// A list of header names (`["accept-language", "x-tenant"]`).
pub fn header_names<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<HeaderName>, D::Error> {
    Vec::<String>::deserialize(deserializer)?
        .iter()
        .map(|name| {
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| de::Error::custom(format!("`{name}` is not a header name")))
        })
        .collect()
}

/// A table of headers (`{ authorization = "Bearer ${TOKEN}" }`); secret ones are marked
/// sensitive so they never print.
pub fn headers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(HeaderName, HeaderValue)>, D::Error> {
    let table = std::collections::BTreeMap::<String, String>::deserialize(deserializer)?;
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(table.len());
    for (name, value) in table {
        let name = HeaderName::try_from(name.as_str())
            .map_err(|_| de::Error::custom(format!("`{name}` is not a valid header name")))?;
        let mut value = HeaderValue::try_from(value).map_err(|_| {
            de::Error::custom(format!(
                "the value of `{name}` has characters not allowed in a header"
            ))
        })?;
        if crate::redact::is_secret_header(&name) {
            value.set_sensitive(true);
        }
        if headers.iter().any(|(n, _)| *n == name) {
            return Err(de::Error::custom(format!(
                "`{name}` is set twice (header names ignore case)"
            )));
        }
        headers.push((name, value));
    }
    Ok(headers)
}

/// A list of HTTP statuses (`[502, 503, "${EXTRA:504}"]`).
pub fn statuses<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<StatusCode>, D::Error> {
    Vec::<Lenient<u16>>::deserialize(deserializer)?
        .into_iter()
        .map(|Lenient(code)| {
            StatusCode::from_u16(code)
                .map_err(|_| de::Error::custom(format!("{code} is not an HTTP status")))
        })
        .collect()
}
