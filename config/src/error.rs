//! CNI error codes, the error JSON a plugin prints, and the error type of this crate.

use serde::{Deserialize, Serialize};

/// The CNI spec's well-known error codes (0-99 reserved), plus the Go library's
/// `ErrInvalidNetNS` (8) and `ErrInternal` (999), and plugin-specific codes (100+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: incompatible CNI version.
    IncompatibleVersion,
    /// 2: unsupported field in the network configuration; the message names key and value.
    UnsupportedField,
    /// 3: container unknown or does not exist; no cleanup (DEL) needed.
    UnknownContainer,
    /// 4: invalid necessary environment variables; the message names them.
    InvalidEnvironment,
    /// 5: I/O failure.
    Io,
    /// 6: failed to decode content.
    Decoding,
    /// 7: invalid network config.
    InvalidNetworkConfig,
    /// 8: invalid network namespace (Go library convention).
    InvalidNetNs,
    /// 11: try again later.
    TryAgainLater,
    /// 50: the plugin is not available (STATUS).
    PluginNotAvailable,
    /// 51: not available, and existing containers may have limited connectivity (STATUS).
    PluginNotAvailableLimitedConnectivity,
    /// 999: internal error (Go library convention).
    Internal,
    /// 100 and above: plugin-specific.
    Plugin(u32),
}

impl ErrorCode {
    /// The number on the wire.
    pub fn as_u32(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decoding => 6,
            ErrorCode::InvalidNetworkConfig => 7,
            ErrorCode::InvalidNetNs => 8,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::PluginNotAvailable => 50,
            ErrorCode::PluginNotAvailableLimitedConnectivity => 51,
            ErrorCode::Internal => 999,
            ErrorCode::Plugin(n) => n,
        }
    }

    /// The code for a number read off the wire (for example a delegate's error).
    pub fn from_u32(n: u32) -> ErrorCode {
        match n {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnvironment,
            5 => ErrorCode::Io,
            6 => ErrorCode::Decoding,
            7 => ErrorCode::InvalidNetworkConfig,
            8 => ErrorCode::InvalidNetNs,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::PluginNotAvailable,
            51 => ErrorCode::PluginNotAvailableLimitedConnectivity,
            999 => ErrorCode::Internal,
            n => ErrorCode::Plugin(n),
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.as_u32())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u32::deserialize(d).map(ErrorCode::from_u32)
    }
}

/// The error JSON of the CNI spec: `{"cniVersion", "code", "msg", "details"}`.
///
/// libcni reads it from the plugin's stdout; the process also exits non-zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("CNI error {}: {msg}{}", code.as_u32(), if details.is_empty() { String::new() } else { format!(" ({details})") })]
pub struct CniError {
    /// The protocol version in use; absent in errors printed by Go plugins.
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub cni_version: String,
    pub code: ErrorCode,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        CniError {
            cni_version: String::new(),
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.cni_version = version.into();
        self
    }

    /// The JSON document printed on stdout.
    pub fn to_json(&self) -> String {
        // Serializing a struct of strings and a number cannot fail; keep a fallback anyway.
        serde_json::to_string(self)
            .unwrap_or_else(|_| format!("{{\"code\":{},\"msg\":\"error\"}}", self.code.as_u32()))
    }
}

/// How much of an invalid value an error message quotes.
pub const VALUE_ECHO_MAX: usize = 256;

/// Everything that can be wrong with a document this crate parses.
///
/// Each variant names its subject (the field, the value, the document) and maps
/// onto one CNI error code with [`ConfigError::code`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The bytes are not the JSON the document needs.
    #[error("failed to decode {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A field holds a value the format does not allow.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidField {
        field: String,
        value: String,
        reason: String,
    },
    /// A required field is absent.
    #[error("missing required field {field}")]
    MissingField { field: String },
    /// A field the plugin does not support (CNI code 2).
    #[error("unsupported field {field} = {value:?}: {reason}")]
    UnsupportedField {
        field: String,
        value: String,
        reason: String,
    },
    /// A CNI version the plugin or the conversion cannot serve.
    #[error("incompatible CNI version {version:?}: {reason}")]
    IncompatibleVersion { version: String, reason: String },
}

impl ConfigError {
    pub fn invalid(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        let mut value = value.to_string();
        // Hostile input can be megabytes: an error names it, it does not echo it.
        if value.len() > VALUE_ECHO_MAX {
            let total = value.len();
            let mut end = VALUE_ECHO_MAX;
            while !value.is_char_boundary(end) {
                end -= 1;
            }
            value.truncate(end);
            value.push_str(&format!("... ({total} bytes)"));
        }
        ConfigError::InvalidField {
            field: field.into(),
            value,
            reason: reason.into(),
        }
    }

    pub fn missing(field: impl Into<String>) -> Self {
        ConfigError::MissingField {
            field: field.into(),
        }
    }

    pub fn decode(what: &'static str, source: serde_json::Error) -> Self {
        ConfigError::Decode { what, source }
    }

    /// Prefix the field path with the document it came from, e.g. `resourceList[0].`.
    pub fn within(self, prefix: &str) -> Self {
        match self {
            ConfigError::InvalidField {
                field,
                value,
                reason,
            } => ConfigError::InvalidField {
                field: format!("{prefix}{field}"),
                value,
                reason,
            },
            ConfigError::MissingField { field } => ConfigError::MissingField {
                field: format!("{prefix}{field}"),
            },
            ConfigError::UnsupportedField {
                field,
                value,
                reason,
            } => ConfigError::UnsupportedField {
                field: format!("{prefix}{field}"),
                value,
                reason,
            },
            other => other,
        }
    }

    /// The CNI error code this failure is reported with.
    pub fn code(&self) -> ErrorCode {
        match self {
            ConfigError::Decode { .. } => ErrorCode::Decoding,
            ConfigError::InvalidField { .. } | ConfigError::MissingField { .. } => {
                ErrorCode::InvalidNetworkConfig
            }
            ConfigError::UnsupportedField { .. } => ErrorCode::UnsupportedField,
            ConfigError::IncompatibleVersion { .. } => ErrorCode::IncompatibleVersion,
        }
    }
}

impl From<ConfigError> for CniError {
    fn from(e: ConfigError) -> Self {
        CniError::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_numbers() {
        for n in [1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 999, 100, 4242] {
            assert_eq!(ErrorCode::from_u32(n).as_u32(), n);
        }
    }

    /// Each named code is the spec's number (a round trip alone would hold
    /// with every name on the wrong number).
    #[test]
    fn named_codes_are_the_spec_numbers() {
        let table = [
            (ErrorCode::IncompatibleVersion, 1),
            (ErrorCode::UnsupportedField, 2),
            (ErrorCode::UnknownContainer, 3),
            (ErrorCode::InvalidEnvironment, 4),
            (ErrorCode::Io, 5),
            (ErrorCode::Decoding, 6),
            (ErrorCode::InvalidNetworkConfig, 7),
            (ErrorCode::InvalidNetNs, 8),
            (ErrorCode::TryAgainLater, 11),
            (ErrorCode::PluginNotAvailable, 50),
            (ErrorCode::PluginNotAvailableLimitedConnectivity, 51),
            (ErrorCode::Internal, 999),
            (ErrorCode::Plugin(100), 100),
        ];
        for (code, n) in table {
            assert_eq!(code.as_u32(), n, "{code:?}");
            assert_eq!(ErrorCode::from_u32(n), code, "{n}");
            assert_eq!(serde_json::to_string(&code).unwrap(), n.to_string());
        }
    }

    #[test]
    fn error_json_has_the_spec_keys() {
        let e = CniError::new(ErrorCode::Decoding, "bad json")
            .with_details("line 1")
            .with_version("1.1.0");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["cniVersion"], "1.1.0");
        assert_eq!(v["code"], 6);
        assert_eq!(v["msg"], "bad json");
        assert_eq!(v["details"], "line 1");
        let back: CniError = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn go_style_error_without_version_parses() {
        let e: CniError =
            serde_json::from_str(r#"{"code": 3, "msg": "missing containerID"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::UnknownContainer);
        assert!(e.cni_version.is_empty());
    }

    #[test]
    fn config_errors_map_to_codes() {
        let bad = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        assert_eq!(
            ConfigError::decode("network config", bad).code(),
            ErrorCode::Decoding
        );
        assert_eq!(
            ConfigError::invalid("vlan", 5000, "out of range").code(),
            ErrorCode::InvalidNetworkConfig
        );
        assert_eq!(
            ConfigError::missing("type").code(),
            ErrorCode::InvalidNetworkConfig
        );
        let e = ConfigError::invalid("vlan", 5000, "must be 0-4094").within("sriov.");
        assert_eq!(e.to_string(), "invalid sriov.vlan \"5000\": must be 0-4094");
    }
}
