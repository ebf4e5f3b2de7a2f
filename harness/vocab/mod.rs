//! The shared vocabulary: value types and named enums that every stage speaks.
//!
//! This module depends on nothing else in the crate, so that any module may use it without
//! creating a cycle. Each enum's serde name is its `as_str` spelling: files, records and reports
//! all write the same word.

/// `Display` as the file spelling, for types with an `as_str`.
macro_rules! display_as_str {
    ($($ty:ty),*) => {$(
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

mod change;
mod kinds;
mod outcome;
mod tls;
mod values;

pub use change::{ApplyMethod, ConnectorAction, WaitMethod};
pub use kinds::{ErrorClass, TargetKind};
pub use outcome::{OutcomeClass, RunVerdict};
pub use tls::{TlsMode, TlsVerify};
pub use values::{parse_duration_arg, ByteSize, ConnectorCidr, HumanDuration, Rate, SourceIp};

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON string serde writes for `v`.
    fn serde_name<T: serde::Serialize>(v: T) -> String {
        serde_json::to_value(v)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn serde_names_are_the_as_str_spellings() {
        for v in TlsMode::ALL {
            assert_eq!(serde_name(v), v.as_str());
        }
        for v in OutcomeClass::ALL {
            assert_eq!(serde_name(v), v.as_str());
            assert_eq!(v.as_str().parse::<OutcomeClass>(), Ok(v));
        }
        for v in [RunVerdict::Pass, RunVerdict::Fail] {
            assert_eq!(serde_name(v), v.as_str());
            assert_eq!(v.as_upper(), v.as_str().to_uppercase());
        }
        for v in [
            ConnectorAction::Create,
            ConnectorAction::Update,
            ConnectorAction::Enable,
            ConnectorAction::Disable,
            ConnectorAction::Delete,
        ] {
            assert_eq!(serde_name(v), v.as_str());
        }
        for v in [
            ApplyMethod::Simulator,
            ApplyMethod::Prompt,
            ApplyMethod::Hook,
            ApplyMethod::SignalFile,
        ] {
            assert_eq!(serde_name(v), v.as_str());
        }
        for v in [WaitMethod::Settle, WaitMethod::Poll] {
            assert_eq!(serde_name(v), v.as_str());
        }
        for v in [TargetKind::Simulator, TargetKind::Tenant] {
            assert_eq!(serde_name(v), v.as_str());
            assert_eq!(v.to_string(), v.as_str());
        }
    }
}
