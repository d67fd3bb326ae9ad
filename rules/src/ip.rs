//! IP lists: named sets of addresses and CIDR blocks (from a rule file's `items`, a file of one
//! entry per line, a cloud provider's published ranges, or `--threat-intel` and `--cloud-ranges`),
//! matched exactly by the `ip_in(ip, list)` function and counted by `ip_list_size('list')`, and
//! `ip_prefix(ip, bits)`, which generalises an address to its network for first-seen terms.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, RwLock};

use arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use ipnet::IpNet;

/// Addresses and blocks as merged, sorted ranges of IPv6 numbers (IPv4 as `::ffff:a.b.c.d`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IpSet {
    ranges: Vec<(u128, u128)>,
}

fn number(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// One entry: an address or a CIDR block (host bits beyond the prefix are ignored, as feeds
/// often write `198.51.100.7/24`).
pub fn parse_entry(text: &str) -> Result<(u128, u128), String> {
    if let Ok(net) = text.parse::<IpNet>() {
        let net = net.trunc();
        return Ok((number(net.network()), number(net.broadcast())));
    }
    match text.parse::<IpAddr>() {
        Ok(ip) => Ok((number(ip), number(ip))),
        Err(_) => Err(format!("{text:?} is not an IP address or CIDR block")),
    }
}

impl IpSet {
    /// A set of these ranges.
    pub fn from_ranges(mut ranges: Vec<(u128, u128)>) -> Self {
        ranges.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match merged.last_mut() {
                Some(last) if start <= last.1.saturating_add(1) => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        Self { ranges: merged }
    }

    /// Parses a list file's text: one entry a line, `#` or `;` starts a comment, blank lines
    /// skipped; or a cloud provider's published ranges as it serves them (see
    /// [`IpSet::parse_provider`]). The error names the line.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        if text.trim_start().starts_with('{') {
            return Self::parse_provider(text);
        }
        let mut ranges = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let entry = line.split(['#', ';']).next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            // Some feeds put a second column after the address (`1.2.3.4 tor-exit`).
            let entry = entry.split_whitespace().next().unwrap_or(entry);
            ranges.push(parse_entry(entry).map_err(|e| (n + 1, e))?);
        }
        Ok(Self::from_ranges(ranges))
    }

    /// A cloud provider's published address ranges, as downloaded: AWS `ip-ranges.json`
    /// (`prefixes[].ip_prefix`, `ipv6_prefixes[].ipv6_prefix`), Google's `cloud.json` or
    /// `goog.json` (`prefixes[].ipv4Prefix`, `ipv6Prefix`), Azure's Service Tags file
    /// (`values[].properties.addressPrefixes[]`) and Oracle's `public_ip_ranges.json`
    /// (`regions[].cidrs[].cidr`). A file of none of these shapes, or with no range at all, is an
    /// error rather than an empty list.
    pub fn parse_provider(text: &str) -> Result<Self, (usize, String)> {
        use serde_json::Value;
        let json: Value =
            serde_json::from_str(text).map_err(|e| (e.line(), format!("not valid JSON: {e}")))?;
        // The elements of an array member (none when it is missing or not an array).
        fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
            v.get(key).and_then(Value::as_array).into_iter().flatten()
        }
        let mut entries: Vec<&str> = Vec::new();
        for p in items(&json, "prefixes").chain(items(&json, "ipv6_prefixes")) {
            for field in ["ip_prefix", "ipv6_prefix", "ipv4Prefix", "ipv6Prefix"] {
                entries.extend(p.get(field).and_then(Value::as_str));
            }
        }
        for tag in items(&json, "values") {
            let properties = tag.get("properties").unwrap_or(&Value::Null);
            entries.extend(items(properties, "addressPrefixes").filter_map(Value::as_str));
        }
        for region in items(&json, "regions") {
            entries.extend(items(region, "cidrs").filter_map(|c| c.get("cidr")?.as_str()));
        }
        if entries.is_empty() {
            return Err((
                1,
                "JSON with no address ranges: not AWS ip-ranges.json, Google cloud.json or \
                 goog.json, Azure Service Tags or Oracle public_ip_ranges.json"
                    .into(),
            ));
        }
        let ranges = entries
            .into_iter()
            .map(|e| {
                parse_entry(e.trim()).map_err(|reason| {
                    // The line of the bad entry, looked for only then (files run to megabytes).
                    let line = text
                        .find(e)
                        .map_or(1, |at| text[..at].lines().count().max(1));
                    (line, reason)
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::from_ranges(ranges))
    }

    /// Whether `text` is an address inside the set (an unparsable text is not).
    pub fn contains(&self, text: &str) -> bool {
        let Ok(ip) = text.trim().parse::<IpAddr>() else {
            return false;
        };
        let n = number(ip);
        let at = self.ranges.partition_point(|(start, _)| *start <= n);
        at > 0 && self.ranges[at - 1].1 >= n
    }

    /// The merged ranges.
    pub fn ranges(&self) -> impl Iterator<Item = (u128, u128)> + '_ {
        self.ranges.iter().copied()
    }

    /// Ranges after merging.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// The IP sets of every list, by name, shared by the compiled rules and replaced whole when a
/// list file changes: a rule reads the new entries from its next batch on, without recompiling.
/// Two are equal when they are the same registry (so are the functions reading them).
#[derive(Debug, Clone, Default)]
pub struct IpLists {
    sets: Arc<RwLock<HashMap<String, Arc<IpSet>>>>,
}

impl PartialEq for IpLists {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.sets, &other.sets)
    }
}
impl Eq for IpLists {}
impl std::hash::Hash for IpLists {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.sets).hash(state);
    }
}

impl IpLists {
    /// The set of a list (empty if there is none of that name).
    pub fn get(&self, name: &str) -> Arc<IpSet> {
        self.sets
            .read()
            .map(|sets| sets.get(name).cloned().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Sets (or replaces) a list's entries.
    pub fn set(&self, name: &str, set: IpSet) {
        if let Ok(mut sets) = self.sets.write() {
            sets.insert(name.to_string(), Arc::new(set));
        }
    }
}

/// Reads a list file into ranges, naming file and line on error.
pub fn read_list_file(path: &Path) -> Result<IpSet, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    IpSet::parse(&text).map_err(|(line, e)| format!("{}:{line}: {e}", path.display()))
}

/// `ip_in(ip, 'list')`: whether the address (or any address of a list of them) is in the named
/// list. Conditions write the list's bare name; the expander quotes it.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IpIn {
    signature: Signature,
    lists: IpLists,
}

impl ScalarUDFImpl for IpIn {
    fn name(&self) -> &str {
        "ip_in"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        match args {
            [
                ip,
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8,
            ] if ip.is_null() || matches!(ip, DataType::Utf8 | DataType::List(_)) => {
                Ok(DataType::Boolean)
            }
            _ => plan_err!("ip_in takes an address (or a list of them) and a list name"),
        }
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let [ip, list] = args.args.as_slice() else {
            return exec_err!("ip_in takes two arguments");
        };
        let ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(name))
            | ScalarValue::Utf8View(Some(name))
            | ScalarValue::LargeUtf8(Some(name)),
        ) = list
        else {
            return exec_err!("ip_in's second argument must name a list");
        };
        let set = self.lists.get(name);
        let ips = ip.to_array(args.number_rows)?;
        Ok(ColumnarValue::Array(matches(&set, &ips)))
    }
}

fn matches(set: &IpSet, ips: &ArrayRef) -> ArrayRef {
    if set.is_empty() {
        // No list given (the usual threat-intel list without files): nothing matches, and no
        // address is parsed.
        return Arc::new(arrow::array::BooleanArray::from(vec![false; ips.len()]));
    }
    let mut out = BooleanBuilder::with_capacity(ips.len());
    if let Some(strings) = ips.as_string_opt::<i32>() {
        for ip in strings {
            out.append_option(ip.map(|ip| set.contains(ip)));
        }
    } else if let Some(lists) = ips.as_list_opt::<i32>() {
        for row in 0..lists.len() {
            if lists.is_null(row) {
                out.append_null();
                continue;
            }
            let items = lists.value(row);
            let any = items
                .as_string_opt::<i32>()
                .is_some_and(|s| s.iter().flatten().any(|ip| set.contains(ip)));
            out.append_value(any);
        }
    } else {
        out.append_nulls(ips.len());
    }
    Arc::new(out.finish())
}

/// `ip_prefix(ip, bits)`: the network of the address as `a.b.c.0/bits`, see [`prefix`]; not an
/// address: null.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IpPrefix {
    signature: Signature,
}

/// The network of `ip` with `bits` prefix bits for IPv4; IPv6 addresses are cut to `bits * 2`
/// (a /24 of IPv4 is taken as a /48 of IPv6, a /16 as a /32), as providers hand out IPv6 in
/// larger blocks.
pub fn prefix(ip: &str, bits: u8) -> Option<String> {
    match ip.trim().parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let net = ipnet::Ipv4Net::new(v4, bits.min(32)).ok()?.trunc();
            Some(net.to_string())
        }
        IpAddr::V6(v6) => {
            let bits = (u16::from(bits) * 2).min(128) as u8;
            let net = ipnet::Ipv6Net::new(v6, bits).ok()?.trunc();
            Some(net.to_string())
        }
    }
}

impl ScalarUDFImpl for IpPrefix {
    fn name(&self) -> &str {
        "ip_prefix"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let [ip, bits] = args.args.as_slice() else {
            return exec_err!("ip_prefix takes two arguments");
        };
        let bits = match bits {
            ColumnarValue::Scalar(ScalarValue::Int64(Some(b))) if (0..=32).contains(b) => *b as u8,
            _ => return exec_err!("ip_prefix's second argument must be a number of bits, 0 to 32"),
        };
        let ips = ip.to_array(args.number_rows)?;
        let mut out = StringBuilder::with_capacity(ips.len(), ips.len() * 16);
        match ips.as_string_opt::<i32>() {
            Some(strings) => {
                // A batch holds few distinct addresses: each is parsed and printed once.
                let mut done: HashMap<&str, Option<String>, foldhash::fast::RandomState> =
                    HashMap::default();
                for ip in strings {
                    let network = ip.map(|ip| done.entry(ip).or_insert_with(|| prefix(ip, bits)));
                    out.append_option(network.and_then(|n| n.as_deref()));
                }
            }
            None => {
                for _ in 0..ips.len() {
                    out.append_null();
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// `ip_list_size('list')`: how many blocks a list holds now (after merging), so a rule can
/// stay off until the user gives the list's files (the cloud providers' ranges).
#[derive(Debug, PartialEq, Eq, Hash)]
struct IpListSize {
    signature: Signature,
    lists: IpLists,
}

impl ScalarUDFImpl for IpListSize {
    fn name(&self) -> &str {
        "ip_list_size"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion::error::Result<DataType> {
        Ok(DataType::Int64)
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let [ColumnarValue::Scalar(ScalarValue::Utf8(Some(name)))] = args.args.as_slice() else {
            return exec_err!("ip_list_size takes a list's name, quoted");
        };
        let size = i64::try_from(self.lists.get(name).len()).unwrap_or(i64::MAX);
        Ok(ColumnarValue::Scalar(ScalarValue::Int64(Some(size))))
    }
}

/// The functions, reading `lists`.
pub(crate) fn functions(lists: &IpLists) -> [ScalarUDF; 3] {
    [
        ScalarUDF::from(IpIn {
            signature: Signature::any(2, Volatility::Volatile),
            lists: lists.clone(),
        }),
        ScalarUDF::from(IpListSize {
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Volatile),
            lists: lists.clone(),
        }),
        ScalarUDF::from(IpPrefix {
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Int64],
                Volatility::Immutable,
            ),
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn text(n: u128) -> String {
        let v6 = Ipv6Addr::from(n);
        v6.to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string())
    }

    #[test]
    fn cidrs_match_exactly_and_an_address_just_outside_does_not() {
        let set = IpSet::parse(
            "# a feed\n198.51.100.0/24\n203.0.113.7 ; single\n\n2001:db8::/32 tor\n10.0.0.9/8\n",
        )
        .expect("parses");
        assert!(set.contains("198.51.100.0"));
        assert!(set.contains("198.51.100.255"));
        assert!(!set.contains("198.51.101.0"));
        assert!(!set.contains("198.51.99.255"));
        assert!(set.contains("203.0.113.7"));
        assert!(!set.contains("203.0.113.8"));
        assert!(set.contains("2001:db8:ffff::1"));
        assert!(!set.contains("2001:db9::"));
        assert!(
            set.contains("10.255.255.255"),
            "host bits of a block are ignored"
        );
        assert!(!set.contains("11.0.0.0"));
        assert!(!set.contains("not an ip"));
        assert!(
            set.contains("::ffff:203.0.113.7"),
            "mapped IPv4 is the same address"
        );
    }

    #[test]
    fn a_bad_line_is_named() {
        let err = IpSet::parse("1.2.3.4\n\n999.1.1.1\n").expect_err("bad");
        assert_eq!(err.0, 3);
        assert!(err.1.contains("999.1.1.1"), "{}", err.1);
        assert_eq!(text(number("1.2.3.4".parse().expect("ip"))), "1.2.3.4");
    }

    #[test]
    fn the_built_in_snapshot_holds_every_providers_networks_and_nobody_elses() {
        let set = IpSet::parse(crate::pack::CLOUD_RANGES_SNAPSHOT).expect("parses");
        assert!(set.len() > 4_000, "{} ranges", set.len());
        // One address each of AWS (IPv4, IPv6), Google Cloud, Azure and Oracle Cloud.
        for cloud in [
            "3.5.143.250",
            "2600:1f18:4::9",
            "35.190.0.1",
            "20.42.1.1",
            "129.146.1.1",
        ] {
            assert!(set.contains(cloud), "{cloud}");
        }
        // Private, loopback and documentation networks belong to no provider.
        for other in [
            "10.0.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "198.51.100.7",
            "2001:db8::1",
        ] {
            assert!(!set.contains(other), "{other}");
        }
        let date = crate::pack::CLOUD_RANGES_SNAPSHOT_DATE;
        assert!(
            crate::pack::CLOUD_RANGES_SNAPSHOT.starts_with(&format!("# Snapshot of {date}:")),
            "the file and its constant name the same day"
        );
    }

    #[test]
    fn providers_published_ranges_are_read_in_their_own_shapes() {
        // The shapes AWS, Google, Azure and Oracle publish, cut down to a few entries.
        let aws = r#"{"syncToken": "1733000000", "createDate": "2026-12-01-00-00-00",
            "prefixes": [{"ip_prefix": "3.5.140.0/22", "region": "ap-northeast-2", "service": "AMAZON"}],
            "ipv6_prefixes": [{"ipv6_prefix": "2600:1f18::/36", "region": "us-east-1", "service": "EC2"}]}"#;
        let google = r#"{"syncToken": "1733000000", "creationTime": "2026-12-01T00:00:00",
            "prefixes": [{"ipv4Prefix": "34.80.0.0/15", "service": "Google Cloud", "scope": "asia-east1"},
                         {"ipv6Prefix": "2600:1900:4000::/44", "service": "Google Cloud"}]}"#;
        let azure = r#"{"changeNumber": 300, "cloud": "Public", "values": [{"name": "AzureCloud",
            "properties": {"addressPrefixes": ["20.36.0.0/19", "2603:1000::/40"]}}]}"#;
        let oracle = r#"{"last_updated_timestamp": "2026-12-01T00:00:00",
            "regions": [{"region": "us-phoenix-1", "cidrs": [{"cidr": "129.146.0.0/21", "tags": ["OCI"]}]}]}"#;
        for (text, inside, outside) in [
            (aws, "3.5.143.255", "3.5.144.0"),
            (aws, "2600:1f18::1", "2600:1f28::1"),
            (google, "34.81.255.1", "34.82.0.1"),
            (google, "2600:1900:4000::9", "2600:1900:5000::9"),
            (azure, "20.36.31.255", "20.36.32.0"),
            (oracle, "129.146.7.1", "129.146.8.1"),
        ] {
            let set = IpSet::parse(text).expect("parses");
            assert!(set.contains(inside), "{inside}");
            assert!(!set.contains(outside), "{outside}");
        }
        // Not a provider's file, a bad entry and bad JSON are errors with a line.
        let unknown = IpSet::parse("{\"hello\": []}").expect_err("no ranges");
        assert!(unknown.1.contains("no address ranges"), "{}", unknown.1);
        let bad = IpSet::parse("{\n\"prefixes\": [\n{\"ip_prefix\": \"3.5.140.0/99\"}]}")
            .expect_err("bad block");
        assert_eq!(bad.0, 3, "{}", bad.1);
        let broken = IpSet::parse("{\n\"prefixes\": [\n").expect_err("bad JSON");
        assert!(broken.1.contains("not valid JSON"), "{}", broken.1);
    }

    #[test]
    fn prefixes_generalise_addresses() {
        assert_eq!(prefix("10.1.2.3", 24).as_deref(), Some("10.1.2.0/24"));
        assert_eq!(prefix("10.1.2.3", 16).as_deref(), Some("10.1.0.0/16"));
        assert_eq!(
            prefix("2001:db8:1:2::5", 24).as_deref(),
            Some("2001:db8:1::/48")
        );
        assert_eq!(prefix("nope", 24), None);
    }
}
