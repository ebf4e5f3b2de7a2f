//! Small value types written in scenario, target and tenant files: durations, rates, sizes and
//! addresses.
//!
//! Each type validates itself while it is deserialized, so that the TOML parser attaches the
//! offending value's span to the error and the user sees `file:line:col`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Deserialize` from a string via `FromStr` and `Serialize` via `Display`.
macro_rules! string_serde {
    ($ty:ty, $expecting:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$ty, E> {
                        s.parse().map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

/// A duration written the human way (`"30s"`, `"2m"`, `"1h 30m"`, `"250ms"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The longest duration any setting takes. Nothing here needs more, and the bound keeps every
    /// deadline computed from a setting (`now + delay`) far from overflowing.
    pub const MAX: Duration = Duration::from_secs(30 * 86_400);
}

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(s.trim()).map_err(|e| {
            format!("invalid duration `{s}` ({e}): expected a duration such as \"500ms\", \"30s\", \"2m\" or \"1h 30m\"")
        })?;
        if d > Self::MAX {
            return Err(format!(
                "duration `{s}` is too long: at most 30 days (\"30d\")"
            ));
        }
        Ok(HumanDuration(d))
    }
}

/// Parses a command-line duration with the same rules and bound as a file's.
pub fn parse_duration_arg(s: &str) -> Result<Duration, String> {
    s.parse::<HumanDuration>().map(|d| d.0)
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

string_serde!(HumanDuration, "a duration string such as \"30s\" or \"2m\"");

/// A sending rate such as `"30/min"`, `"2/s"` or `"100/h"`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Messages per unit.
    pub count: f64,
    /// The unit's length.
    pub per: Duration,
}

impl Rate {
    /// The fastest rate a file may give.
    pub const MAX_PER_SECOND: f64 = 1_000_000.0;

    /// Messages per second.
    pub fn per_second(&self) -> f64 {
        self.count / self.per.as_secs_f64()
    }

    /// The gap between two scheduled sends at this rate.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.per_second())
    }
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let expected = "expected a rate such as \"30/min\", \"2/s\" or \"100/h\"";
        let (n, unit) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid rate `{s}`: {expected}"))?;
        let count: f64 = n.trim().parse().map_err(|_| {
            format!(
                "invalid rate `{s}`: `{}` is not a number; {expected}",
                n.trim()
            )
        })?;
        if !(count.is_finite() && count > 0.0) {
            return Err(format!(
                "invalid rate `{s}`: the count must be greater than zero"
            ));
        }
        let per = match unit.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86400),
            other => {
                return Err(format!(
                    "invalid rate `{s}`: unknown unit `{other}`; expected one of s, min, h, day"
                ))
            }
        };
        let rate = Rate { count, per };
        // Bounded so that the interval between sends, and a token bucket's refill arithmetic, stay
        // representable: from one per 30 days to a million per second.
        let per_second = rate.per_second();
        if per_second > Rate::MAX_PER_SECOND {
            return Err(format!("invalid rate `{s}`: at most 1000000/s"));
        }
        if per_second < 1.0 / HumanDuration::MAX.as_secs_f64() {
            return Err(format!(
                "invalid rate `{s}`: too slow: two messages may be at most 30 days apart"
            ));
        }
        Ok(rate)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "min",
            3600 => "h",
            _ => "day",
        };
        write!(f, "{}/{}", self.count, unit)
    }
}

string_serde!(Rate, "a rate string such as \"30/min\"");

/// A size in bytes, written as an integer or as `"4KiB"`, `"1MB"`, `"512B"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| {
            format!("invalid size `{s}`: expected a size such as 2048, \"4KiB\" or \"1MB\"")
        })?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" | "kB" => 1000,
            "KiB" => 1024,
            "MB" => 1_000_000,
            "MiB" => 1024 * 1024,
            "GB" => 1_000_000_000,
            "GiB" => 1024 * 1024 * 1024,
            other => {
                return Err(format!(
                    "invalid size `{s}`: unknown unit `{other}`; expected B, KB, KiB, MB, MiB, GB or GiB"
                ))
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| format!("invalid size `{s}`: too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0 {
            n if n >= 1024 * 1024 && n % (1024 * 1024) == 0 => {
                write!(f, "{}MiB", n / (1024 * 1024))
            }
            n if n >= 1024 && n % 1024 == 0 => write!(f, "{}KiB", n / 1024),
            n => write!(f, "{n}B"),
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size in bytes (integer) or a string such as \"4KiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ByteSize, E> {
                s.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// An IPv4 address that mail is sent from.
///
/// IPv4 only: Microsoft 365 connectors cannot match IPv6 senders (reference: "Inbound connector").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceIp(pub Ipv4Addr);

impl FromStr for SourceIp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => Ok(SourceIp(ip)),
            Ok(IpAddr::V6(_)) => Err(format!(
                "`{s}` is an IPv6 address: Microsoft 365 inbound connectors match IPv4 senders only, so give the IPv4 address the platform sends from"
            )),
            Err(_) => Err(format!(
                "invalid IP address `{s}`: expected an IPv4 address such as 192.0.2.1"
            )),
        }
    }
}

impl fmt::Display for SourceIp {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.fmt(f)
    }
}

string_serde!(SourceIp, "an IPv4 address string");

/// An IPv4 address or CIDR range as an inbound connector accepts it: /24 to /32.
///
/// Reference ("Inbound connector"): IPv4 only, a single address or a CIDR range from /24 to /32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectorCidr {
    /// The network address.
    pub addr: Ipv4Addr,
    /// The prefix length, 24 to 32.
    pub prefix: u8,
}

impl ConnectorCidr {
    /// Whether `ip` falls inside this range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.addr) & mask
    }
}

impl FromStr for ConnectorCidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (ip, prefix) = match t.split_once('/') {
            Some((ip, p)) => (
                ip,
                p.parse::<u8>().map_err(|_| {
                    format!("invalid CIDR `{s}`: the prefix `/{p}` is not a number from 24 to 32")
                })?,
            ),
            None => (t, 32),
        };
        let addr = ip.parse::<SourceIp>()?.0;
        if !(24..=32).contains(&prefix) {
            return Err(format!(
                "CIDR `{s}` has prefix /{prefix}, outside the /24 to /32 range that Microsoft 365 inbound connectors accept; split it into /24 ranges or list single addresses"
            ));
        }
        let c = ConnectorCidr { addr, prefix };
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        if u32::from(addr) & !mask != 0 {
            let net = Ipv4Addr::from(u32::from(addr) & mask);
            return Err(format!(
                "CIDR `{s}` has host bits set: did you mean {net}/{prefix}?"
            ));
        }
        Ok(c)
    }
}

impl fmt::Display for ConnectorCidr {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.prefix == 32 {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

string_serde!(ConnectorCidr, "an IPv4 address or CIDR range string");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_to_intervals() {
        let r: Rate = "30/min".parse().unwrap();
        assert_eq!(r.interval(), Duration::from_secs(2));
        let r: Rate = "100/s".parse().unwrap();
        assert_eq!(r.interval(), Duration::from_millis(10));
        assert!("30 per min".parse::<Rate>().is_err());
        assert!("0/min"
            .parse::<Rate>()
            .unwrap_err()
            .contains("greater than zero"));
        assert!("5/fortnight"
            .parse::<Rate>()
            .unwrap_err()
            .contains("unknown unit"));
    }

    #[test]
    fn durations_and_rates_are_bounded() {
        assert_eq!(
            "30d".parse::<HumanDuration>().unwrap().0,
            HumanDuration::MAX
        );
        for huge in ["31d", "300000years", "18446744073709551615s"] {
            let e = huge.parse::<HumanDuration>().unwrap_err();
            assert!(e.contains("at most 30 days"), "{huge}: {e}");
        }
        assert!(parse_duration_arg("1year").is_err());
        assert_eq!(
            "1000000/s".parse::<Rate>().unwrap().interval(),
            Duration::from_micros(1)
        );
        assert!("1e300/s".parse::<Rate>().unwrap_err().contains("at most"));
        assert!("1e-300/day"
            .parse::<Rate>()
            .unwrap_err()
            .contains("too slow"));
        assert!("0.05/day".parse::<Rate>().is_ok());
    }

    #[test]
    fn sizes_parse() {
        assert_eq!("4KiB".parse::<ByteSize>().unwrap().0, 4096);
        assert_eq!("1MB".parse::<ByteSize>().unwrap().0, 1_000_000);
        assert_eq!("512".parse::<ByteSize>().unwrap().0, 512);
        assert!("4 lots".parse::<ByteSize>().is_err());
    }

    #[test]
    fn connector_cidrs_follow_microsoft_rules() {
        let c: ConnectorCidr = "192.0.2.0/24".parse().unwrap();
        assert!(c.contains("192.0.2.77".parse().unwrap()));
        assert!(!c.contains("192.0.3.1".parse().unwrap()));
        let single: ConnectorCidr = "203.0.113.22".parse().unwrap();
        assert_eq!(single.prefix, 32);
        assert!("10.0.0.0/16"
            .parse::<ConnectorCidr>()
            .unwrap_err()
            .contains("/24 to /32"));
        assert!("2001:db8::1"
            .parse::<ConnectorCidr>()
            .unwrap_err()
            .contains("IPv6"));
        assert!("192.0.2.5/24"
            .parse::<ConnectorCidr>()
            .unwrap_err()
            .contains("192.0.2.0/24"));
        assert!("203.0.113.2213".parse::<ConnectorCidr>().is_err());
    }
}
