//! The differential test's corpus: projectcalico.org/v3 IPPools generated from a seed, so that a
//! run is reproducible and a failure can be replayed. Systematic sections walk the boundaries
//! (every prefix length against every blockSize boundary, CIDR spellings, selector grammar, every
//! enum and flag of the spec, wrong JSON types, metadata limits); a random section then combines
//! every field, valid and invalid values alike, up to the requested size.

use std::net::{Ipv4Addr, Ipv6Addr};

use fastrand::Rng;
use serde_json::{Map, Value, json};

/// One pool of the corpus and where it comes from (reported with every disagreement).
pub struct Entry {
    pub origin: String,
    pub object: Value,
}

/// A corpus of `count` pools, the same for the same seed.
pub fn generate(seed: u64, count: usize) -> Vec<Entry> {
    let mut g = Generator {
        rng: Rng::with_seed(seed),
        out: Vec::with_capacity(count),
    };
    g.block_sizes();
    g.cidr_spellings();
    g.selectors();
    g.encapsulation();
    g.uses_and_flags();
    g.wrong_types();
    g.metadata();
    let systematic = g.out.len();
    assert!(
        systematic <= count,
        "the systematic sections alone hold {systematic} pools, more than the {count} asked for"
    );
    while g.out.len() < count {
        let spec = g.random_spec();
        let name = g.random_name();
        let metadata = g.random_metadata(name);
        g.push_meta("random", metadata, spec);
    }
    g.out
}

/// A spec field's JSON name and value; `None` leaves the field out.
type Field = (&'static str, Value);

/// CIDR texts chosen for how parsers treat them: bare addresses, host bits, leading zeros, zones,
/// IPv4-mapped IPv6, prefixes out of range, the reserved ranges, stray characters.
const CIDR_TEXTS: &[&str] = &[
    "10.0.0.0/8",
    "10.0.0.0/16",
    "192.168.0.0/16",
    "172.16.0.0/12",
    "100.64.0.0/10",
    "10.244.0.0/24",
    "10.244.0.0/26",
    "10.244.0.0/27",
    "10.244.0.1/24",
    "10.244.0.1",
    "10.244.0.0",
    "10.244.0.0/33",
    "10.244.0.0/-1",
    "10.244.0.0/",
    "/16",
    "10.244.0/24",
    "10.244.0.0.0/24",
    "010.244.0.0/16",
    "10.244.0.0/016",
    "10.244.0.0/+16",
    "0x0a.0.0.0/8",
    "10.244.0.0/16 ",
    " 10.244.0.0/16",
    "10.244.0.0 /16",
    "10.244.0.0/16/16",
    "10.244.0.0\n/16",
    "256.0.0.0/8",
    "10.244.0.0/255.255.0.0",
    "0.0.0.0/0",
    "0.0.0.0/8",
    "0.0.0.0/32",
    "127.0.0.0/8",
    "127.0.0.1/32",
    "128.0.0.0/1",
    "169.254.0.0/16",
    "169.254.1.0/24",
    "169.0.0.0/8",
    "224.0.0.0/4",
    "224.0.0.0/24",
    "239.255.255.0/24",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "fd00::/8",
    "fd00::/48",
    "fd00:10:244::/64",
    "fd00:10:244::/122",
    "fd00:10:244::1/64",
    "fd00:10:244::1",
    "FD00:10:244::/64",
    "fd00:0010:0244:0000::/64",
    "fd00:10:244:0:0:0:0:0/64",
    "fd00::10:244::/64",
    "fd00:10:244::/129",
    "fd00:10:244::/64%eth0",
    "fd00:10:244::%eth0/64",
    "fe80::/10",
    "fe80::/64",
    "febf::/16",
    "fec0::/10",
    "fe00::/8",
    "fc00::/7",
    "ff00::/8",
    "ff02::/16",
    "::/0",
    "::/128",
    "::1/128",
    "::/96",
    "::ffff:0:0/96",
    "::ffff:10.244.0.0/104",
    "::ffff:10.244.0.0/120",
    "::ffff:a0a:0/120",
    "::10.244.0.0/120",
    "64:ff9b::/96",
    "2001:db8::/32",
    "2001:db8::/122",
    "2001:DB8::/122",
    "2001:db8:0:0:0:0:0:0/122",
    "2001:db8::0.0.0.0/120",
    "2001:db8:::/64",
    ":::/0",
    "",
    " ",
    "default",
    "10.244.0.0/16,10.245.0.0/16",
    "１０.0.0.0/8",
];

/// Selectors around Calico's grammar: operators, quoting, sets, whitespace, keywords used as
/// labels, label length, and near misses.
const SELECTORS: &[&str] = &[
    "",
    " ",
    "\t",
    "all()",
    "all( )",
    "all ()",
    "ALL()",
    "all",
    "!all()",
    "global()",
    "!global()",
    "global() && has(a)",
    "has(a) || global()",
    "has(global)",
    "zone == 'global()'",
    "zone in {'a', \"global(\"}",
    "has(a)",
    "has( a )",
    "has (a)",
    "has()",
    "has(a b)",
    "has(a",
    "!has(a)",
    "!!has(a)",
    "! ! has(a)",
    "has(kubernetes.io/hostname)",
    "has(a_b.c-d/e)",
    "has(a:b)",
    "zone == 'a'",
    "zone == \"a\"",
    "zone=='a'",
    "zone = 'a'",
    "zone === 'a'",
    "zone == a",
    "zone == ''",
    "zone == 'a",
    "zone == \"it's\"",
    "zone == 'say \"hi\"'",
    "zone != 'a'",
    "zone !='a'",
    "zone in {'a', 'b'}",
    "zone in {'a','b',}",
    "zone in {}",
    "zone in {,}",
    "zone in {'a' 'b'}",
    "zone in 'a'",
    "zone in{'a'}",
    "zone not in {'a'}",
    "zone not  in {'a'}",
    "zone notin {'a'}",
    "zone contains 'a'",
    "zone contains'a'",
    "zone starts with 'a'",
    "zone startswith 'a'",
    "zone ends with 'a'",
    "zone ends  with 'a'",
    "zone ends with",
    "zone",
    "zone ==",
    "== 'a'",
    "has(a) && has(b)",
    "has(a)&&has(b)",
    "has(a) & has(b)",
    "has(a) and has(b)",
    "has(a) || has(b)",
    "has(a) | has(b)",
    "has(a) &&",
    "&& has(a)",
    "(has(a))",
    "((has(a)))",
    "(has(a)",
    "has(a))",
    "()",
    "(has(a) || has(b)) && !has(c)",
    "!(zone in {'a'}) && role != 'edge'",
    "has(a) has(b)",
    "all() all()",
    "in == 'x'",
    "contains == 'x'",
    "not in {'x'}",
    "has == 'x'",
    "all == 'x'",
    "global == 'x'",
    "a.b/c-d_e == 'x'",
    "-a == 'x'",
    "1 == '1'",
    "zone == 'é'",
    "zoné == 'a'",
    "zone == 'a'\n",
    "zone\n== 'a'",
    "zone\t==\t'a'",
    "has(a)\u{a0}",
    "zone == 'a' # comment",
    "zone == 'a'; has(b)",
    "$zone == 'a'",
];

/// A label key of Calico's selector grammar, longer than its 512-character limit.
fn long_label() -> String {
    "k".repeat(513)
}

const MODES: &[&str] = &[
    "Never",
    "Always",
    "CrossSubnet",
    "",
    "never",
    "always",
    "ALWAYS",
    "crosssubnet",
    "Cross-Subnet",
    " Always",
    "Off",
    "true",
];

const ASSIGNMENT_MODES: &[&str] = &["Automatic", "Manual", "", "automatic", "Auto", "manual "];

const USES: &[&str] = &["Workload", "Tunnel", "LoadBalancer", "workload", "", "Foo"];

const NAMES: &[&str] = &[
    "pool",
    "default-ipv4-ippool",
    "a",
    "a.b",
    "a..b",
    "a-",
    "-a",
    ".a",
    "a.",
    "A",
    "Pool",
    "pool_1",
    "pool 1",
    "pool/1",
    "pool:1",
    "0",
    "0-0",
    "poól",
    "",
];

const LABEL_KEYS: &[&str] = &[
    "app",
    "app.kubernetes.io/managed-by",
    "projectcalico.org/Label",
    "ProjectCalico.org/label",
    "a/b/c",
    "/a",
    "a/",
    "-a",
    "a-",
    "a_b.c-d",
    "a b",
    "a$b",
    "example.com/",
    "EXAMPLE.com/a",
    "",
];

const LABEL_VALUES: &[&str] = &["", "v", "a.b-c_d", "-v", "v-", "v v", "v/v", "é", "V1"];

const ANNOTATION_KEYS: &[&str] = &[
    "note",
    "ProjectCalico.org/Label",
    "projectcalico.org$label",
    "a/b/c",
    "example.com/",
    "Kubectl.Kubernetes.io/last-applied-configuration",
    "",
];

struct Generator {
    rng: Rng,
    out: Vec<Entry>,
}

impl Generator {
    fn push(&mut self, section: &str, fields: Vec<Field>) {
        let name = format!("pool-{}", self.out.len());
        self.push_meta(
            section,
            json!({ "name": name }),
            Value::Object(spec(fields)),
        );
    }

    fn push_meta(&mut self, section: &str, metadata: Value, spec: Value) {
        let origin = format!("generated #{} ({section})", self.out.len());
        self.out.push(Entry {
            origin,
            object: json!({
                "apiVersion": "projectcalico.org/v3",
                "kind": "IPPool",
                "metadata": metadata,
                "spec": spec,
            }),
        });
    }

    fn pick<'a, T: ?Sized>(&mut self, items: &'a [&'a T]) -> &'a T {
        items[self.rng.usize(..items.len())]
    }

    /// A masked network of `prefix` bits at a random address of the family.
    fn network(&mut self, v6: bool, prefix: u8) -> String {
        masked(v6, self.rng.u128(..), prefix)
    }

    /// A network in the private ranges people use for pods (fd00::/8, 10.0.0.0/8), so other
    /// rules stay quiet.
    fn private_network(&mut self, v6: bool, prefix: u8) -> String {
        let random = self.rng.u128(..);
        let addr = if v6 {
            (0xfd00 << 112) | (random >> 16)
        } else {
            (10 << 24) | (random >> 104)
        };
        masked(v6, addr, prefix.max(8))
    }

    /// Every prefix length that matters against every blockSize boundary, enabled and disabled.
    fn block_sizes(&mut self) {
        let v4_sizes: &[i64] = &[
            0,
            -1,
            1,
            8,
            19,
            20,
            21,
            25,
            26,
            27,
            31,
            32,
            33,
            64,
            122,
            1 << 40,
        ];
        let v6_sizes: &[i64] = &[
            0, -1, 20, 26, 32, 115, 116, 117, 121, 122, 123, 127, 128, 129, 256,
        ];
        for v6 in [false, true] {
            let (sizes, width) = if v6 { (v6_sizes, 128) } else { (v4_sizes, 32) };
            for size in sizes.iter().copied().map(Some).chain([None]) {
                let prefixes: Vec<u8> = if v6 {
                    vec![
                        0, 1, 8, 10, 48, 64, 96, 115, 116, 117, 121, 122, 123, 127, 128,
                    ]
                } else {
                    vec![0, 1, 7, 8, 16, 19, 20, 21, 25, 26, 27, 31, 32]
                };
                for prefix in prefixes.into_iter().filter(|p| *p <= width) {
                    for disabled in [false, true] {
                        let cidr = if prefix >= 8 {
                            self.private_network(v6, prefix)
                        } else {
                            self.network(v6, prefix)
                        };
                        self.push("blockSize × prefix", sized(&cidr, size, disabled));
                    }
                }
            }
        }
    }

    /// Each CIDR spelling with the default, the smallest and the largest blockSize, enabled and
    /// disabled (a disabled pool skips the pool-size rule, so the CIDR rules stand alone), and
    /// disabled with IPv4's default blockSize and IPIP, which only an IPv4 pool may have.
    fn cidr_spellings(&mut self) {
        for cidr in CIDR_TEXTS {
            self.push(
                "CIDR spelling",
                vec![
                    ("cidr", json!(cidr)),
                    ("blockSize", json!(26)),
                    ("ipipMode", json!("CrossSubnet")),
                    ("disabled", json!(true)),
                ],
            );
            let v6 = cidr.contains(':');
            for size in [
                None,
                Some(if v6 { 116 } else { 20 }),
                Some(if v6 { 128 } else { 32 }),
            ] {
                for disabled in [false, true] {
                    self.push("CIDR spelling", sized(cidr, size, disabled));
                }
            }
        }
    }

    /// The selector list in both selector fields, with default, Workload-only, Tunnel-only and
    /// LoadBalancer uses; then random selectors from the grammar, some of them mutated.
    fn selectors(&mut self) {
        let mut texts: Vec<String> = SELECTORS.iter().map(|s| (*s).to_owned()).collect();
        texts.push(format!("has({})", long_label()));
        texts.push(format!("{} == 'a'", &long_label()[1..]));
        for text in &texts {
            for field in ["nodeSelector", "namespaceSelector"] {
                for uses in [
                    None,
                    Some(json!(["Workload"])),
                    Some(json!(["Tunnel"])),
                    Some(json!(["LoadBalancer"])),
                ] {
                    let cidr = self.private_network(false, 16);
                    let mut fields = vec![("cidr", json!(cidr)), (field, json!(text))];
                    if let Some(uses) = uses {
                        fields.push(("allowedUses", uses));
                    }
                    self.push("selector list", fields);
                }
            }
        }
        for _ in 0..700 {
            let mut text = self.random_selector(0);
            if self.rng.u8(..3) == 0 {
                text = self.mutate(&text);
            }
            let field = if self.rng.bool() {
                "nodeSelector"
            } else {
                "namespaceSelector"
            };
            let v6 = self.rng.bool();
            let cidr = self.private_network(v6, 16);
            let mut fields = vec![("cidr", json!(cidr)), (field, json!(text))];
            if field == "namespaceSelector" || self.rng.u8(..4) == 0 {
                fields.push(("allowedUses", json!(["Workload"])));
            }
            self.push("random selector", fields);
        }
    }

    /// A selector from Calico's grammar; `depth` bounds the nesting.
    fn random_selector(&mut self, depth: u32) -> String {
        let ws = |g: &mut Generator| g.pick(&["", " ", " ", "  ", "\t"]).to_owned();
        let kind = self.rng.u8(..if depth < 3 { 12 } else { 8 });
        let key = self.label_key();
        let value = self.quoted();
        let (a, b) = (ws(self), ws(self));
        match kind {
            0 => "all()".to_owned(),
            1 => format!("has({a}{key}{b})"),
            2 => format!("{key}{a}=={b}{value}"),
            3 => format!("{key}{a}!={b}{value}"),
            4 | 5 => {
                let op = if kind == 4 { "in" } else { "not in" };
                let n = self.rng.usize(..4);
                let items: Vec<String> = (0..n).map(|_| self.quoted()).collect();
                let trailing = if n > 0 && self.rng.u8(..4) == 0 {
                    ","
                } else {
                    ""
                };
                format!("{key} {op}{a}{{{b}{}{trailing}}}", items.join(", "))
            }
            6 => {
                let op = self.pick(&["contains", "starts with", "ends with"]);
                format!("{key} {op}{a} {value}")
            }
            7 => "global()".to_owned(),
            8 | 9 => format!("!{a}{}", self.random_selector(depth + 1)),
            10 => format!("({a}{}{b})", self.random_selector(depth + 1)),
            _ => {
                let op = if self.rng.bool() { "&&" } else { "||" };
                let left = self.random_selector(depth + 1);
                let right = self.random_selector(depth + 1);
                format!("{left}{a}{op}{b}{right}")
            }
        }
    }

    fn label_key(&mut self) -> String {
        self.pick(&[
            "a",
            "zone",
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
            "x_y",
            "a-b",
            "A.B/c-d",
            "1",
            "has",
            "all",
            "in",
            "not",
            "contains",
        ])
        .to_owned()
    }

    fn quoted(&mut self) -> String {
        let value = self.pick(&["", "v", "east", "a b", "é", "x'y", "x\"y", "{", ")"]);
        let single = !value.contains('\'') && (value.contains('"') || self.rng.bool());
        if single {
            format!("'{value}'")
        } else {
            format!("\"{value}\"")
        }
    }

    /// The text with one character removed, inserted or replaced, or cut short.
    fn mutate(&mut self, text: &str) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        let at = self.rng.usize(..=chars.len());
        let noise = [
            '(', ')', '{', '}', '\'', '"', '=', '!', '&', '|', ',', ' ', '\n', '%', 'x',
        ];
        match self.rng.u8(..4) {
            0 if at < chars.len() => {
                chars.remove(at);
            }
            1 => chars.insert(at, noise[self.rng.usize(..noise.len())]),
            2 if at < chars.len() => chars[at] = noise[self.rng.usize(..noise.len())],
            _ => chars.truncate(at),
        }
        chars.into_iter().collect()
    }

    /// Every ipipMode against every vxlanMode on both families, and assignmentMode's values.
    fn encapsulation(&mut self) {
        for v6 in [false, true] {
            for ipip in MODES.iter().map(Some).chain([None]) {
                for vxlan in MODES.iter().map(Some).chain([None]) {
                    let cidr = self.private_network(v6, if v6 { 64 } else { 16 });
                    let mut fields = vec![("cidr", json!(cidr))];
                    if let Some(ipip) = ipip {
                        fields.push(("ipipMode", json!(ipip)));
                    }
                    if let Some(vxlan) = vxlan {
                        fields.push(("vxlanMode", json!(vxlan)));
                    }
                    self.push("ipipMode × vxlanMode", fields);
                }
            }
            for mode in ASSIGNMENT_MODES {
                let cidr = self.private_network(v6, if v6 { 64 } else { 16 });
                self.push(
                    "assignmentMode",
                    vec![("cidr", json!(cidr)), ("assignmentMode", json!(mode))],
                );
            }
        }
    }

    /// allowedUses lists (empty, single, pairs in both orders, duplicates, bad values) against
    /// encapsulation, nodeSelector and the boolean flags, including the deprecated v1 fields.
    fn uses_and_flags(&mut self) {
        let mut lists: Vec<Vec<&str>> = vec![vec![]];
        for a in USES {
            lists.push(vec![a]);
            for b in USES {
                lists.push(vec![a, b]);
            }
        }
        lists.push(vec!["Workload", "Tunnel", "LoadBalancer"]);
        for uses in &lists {
            for extra in [
                vec![],
                vec![("vxlanMode", json!("Always"))],
                vec![("ipipMode", json!("CrossSubnet"))],
                vec![("nodeSelector", json!("has(a)"))],
                vec![("nodeSelector", json!("all()"))],
                vec![("disableBGPExport", json!(true))],
                vec![("namespaceSelector", json!("has(a)"))],
            ] {
                let cidr = self.private_network(false, 24);
                let mut fields = vec![("cidr", json!(cidr)), ("allowedUses", json!(uses))];
                fields.extend(extra);
                self.push("allowedUses", fields);
            }
        }
        let flags = [
            "natOutgoing",
            "disabled",
            "disableBGPExport",
            "nat-outgoing",
        ];
        let ipips = [
            None,
            Some(json!({})),
            Some(json!({"enabled": false})),
            Some(json!({"enabled": true, "mode": "cross-subnet"})),
            Some(json!({"mode": "bogus"})),
            Some(json!({"mode": "Always"})),
            Some(json!({"enabled": true, "mode": "CrossSubnet"})),
            Some(json!(null)),
        ];
        for combination in 0..3usize.pow(flags.len() as u32) {
            for ipip in &ipips {
                let v6 = self.rng.bool();
                let cidr = self.private_network(v6, if v6 { 120 } else { 27 });
                let mut fields = vec![("cidr", json!(cidr))];
                let mut rest = combination;
                for flag in flags {
                    match rest % 3 {
                        0 => {}
                        1 => fields.push((flag, json!(true))),
                        _ => fields.push((flag, json!(false))),
                    }
                    rest /= 3;
                }
                if let Some(ipip) = ipip {
                    fields.push(("ipip", ipip.clone()));
                }
                if self.rng.u8(..4) == 0 {
                    fields.push(("allowedUses", json!(["LoadBalancer"])));
                }
                self.push("flags", fields);
            }
        }
    }

    /// Values of the wrong JSON type (or null) for every field.
    fn wrong_types(&mut self) {
        let cases: Vec<Field> = vec![
            ("cidr", json!(10)),
            ("cidr", json!(null)),
            ("cidr", json!(["10.0.0.0/16"])),
            ("blockSize", json!("26")),
            ("blockSize", json!(26.0)),
            ("blockSize", json!(26.5)),
            ("blockSize", json!(-0.0)),
            ("blockSize", json!(true)),
            ("blockSize", json!(null)),
            ("blockSize", json!(1e3)),
            ("blockSize", json!(9_223_372_036_854_775_807i64)),
            ("blockSize", json!(18_446_744_073_709_551_615u64)),
            ("ipipMode", json!(true)),
            ("ipipMode", json!(null)),
            ("vxlanMode", json!(1)),
            ("natOutgoing", json!("true")),
            ("natOutgoing", json!(1)),
            ("natOutgoing", json!(null)),
            ("disabled", json!("yes")),
            ("disabled", json!(0)),
            ("disableBGPExport", json!("false")),
            ("nodeSelector", json!(5)),
            ("nodeSelector", json!(null)),
            ("nodeSelector", json!({"matchLabels": {"a": "b"}})),
            ("namespaceSelector", json!(["has(a)"])),
            ("allowedUses", json!("Workload")),
            ("allowedUses", json!([1])),
            ("allowedUses", json!([null])),
            ("allowedUses", json!(null)),
            ("assignmentMode", json!(null)),
            ("assignmentMode", json!(1)),
            ("ipip", json!(true)),
            ("ipip", json!({"enabled": "yes"})),
            ("nat-outgoing", json!("true")),
        ];
        for (field, value) in cases {
            let cidr = self.private_network(false, 16);
            let mut fields = vec![("cidr", json!(cidr))];
            fields.retain(|(f, _)| *f != field);
            fields.push((field, value));
            self.push("wrong type", fields);
        }
        for spec in [json!(null), json!([]), json!("10.0.0.0/16"), json!({})] {
            self.push_meta("wrong type", json!({"name": "spec-shape"}), spec);
        }
    }

    /// Names, label keys and values, annotation keys and the annotation size limit.
    fn metadata(&mut self) {
        let cidr = |g: &mut Generator| json!({ "cidr": g.private_network(false, 16) });
        let mut names: Vec<String> = NAMES.iter().map(|n| (*n).to_owned()).collect();
        names.push("a".repeat(253));
        names.push("a".repeat(254));
        names.push(format!("{}.{}", "a".repeat(63), "b".repeat(63)));
        names.push(format!("{}.b", "a".repeat(64)));
        for name in names {
            let spec = cidr(self);
            self.push_meta("name", json!({ "name": name }), spec);
        }
        let spec = cidr(self);
        self.push_meta("name", json!({}), spec);
        let spec = cidr(self);
        self.push_meta("name", json!({"generateName": "pool-"}), spec);
        let mut keys: Vec<String> = LABEL_KEYS.iter().map(|k| (*k).to_owned()).collect();
        keys.push("k".repeat(63));
        keys.push("k".repeat(64));
        keys.push(format!("{}/k", "p".repeat(253)));
        keys.push(format!("{}/k", "p".repeat(254)));
        for key in &keys {
            let spec = cidr(self);
            self.push_meta(
                "label key",
                json!({"name": "p", "labels": {key.as_str(): "v"}}),
                spec,
            );
            let spec = cidr(self);
            self.push_meta(
                "annotation key",
                json!({"name": "p", "annotations": {key.as_str(): "v"}}),
                spec,
            );
        }
        for key in ANNOTATION_KEYS {
            let spec = cidr(self);
            self.push_meta(
                "annotation key",
                json!({"name": "p", "annotations": {*key: "v"}}),
                spec,
            );
        }
        let mut values: Vec<String> = LABEL_VALUES.iter().map(|v| (*v).to_owned()).collect();
        values.push("v".repeat(63));
        values.push("v".repeat(64));
        for value in &values {
            let spec = cidr(self);
            self.push_meta(
                "label value",
                json!({"name": "p", "labels": {"app": value}}),
                spec,
            );
        }
        // The limit counts keys and values together: "note" plus the value is exactly 256 KiB,
        // then one byte more.
        for extra in [0, 1] {
            let value = "x".repeat(256 * 1024 - "note".len() + extra);
            let spec = cidr(self);
            self.push_meta(
                "annotation size",
                json!({"name": "p", "annotations": {"note": value}}),
                spec,
            );
        }
    }

    /// A spec with every field chosen at random from good and bad values.
    fn random_spec(&mut self) -> Value {
        let v6 = self.rng.bool();
        let mut fields: Vec<Field> = Vec::new();
        let cidr = match self.rng.u8(..10) {
            0..=3 => {
                let prefix = if v6 {
                    self.rng.u8(40..=128)
                } else {
                    self.rng.u8(8..=32)
                };
                self.private_network(v6, prefix)
            }
            4..=6 => {
                let prefix = self.rng.u8(..=if v6 { 128 } else { 32 });
                self.network(v6, prefix)
            }
            _ => self.pick(CIDR_TEXTS).to_owned(),
        };
        fields.push(("cidr", json!(cidr)));
        if self.rng.u8(..10) < 4 {
            let size: i64 = match self.rng.u8(..3) {
                0 => {
                    if v6 {
                        self.rng.i64(114..=130)
                    } else {
                        self.rng.i64(18..=34)
                    }
                }
                1 => self.rng.i64(-2..=140),
                _ => 0,
            };
            fields.push(("blockSize", json!(size)));
        }
        for field in ["ipipMode", "vxlanMode"] {
            if self.rng.bool() {
                let mode = if self.rng.u8(..4) == 0 {
                    self.pick(MODES)
                } else {
                    self.pick(&["Never", "Always", "CrossSubnet"])
                };
                fields.push((field, json!(mode)));
            }
        }
        for field in ["natOutgoing", "disabled", "disableBGPExport"] {
            match self.rng.u8(..3) {
                0 => {}
                1 => fields.push((field, json!(true))),
                _ => fields.push((field, json!(false))),
            }
        }
        if self.rng.u8(..10) < 4 {
            let text = if self.rng.u8(..4) == 0 {
                self.pick(SELECTORS).to_owned()
            } else {
                self.random_selector(1)
            };
            fields.push(("nodeSelector", json!(text)));
        }
        if self.rng.u8(..10) < 3 {
            let text = self.random_selector(1);
            fields.push(("namespaceSelector", json!(text)));
        }
        if self.rng.u8(..10) < 4 {
            let n = self.rng.usize(..=3);
            let uses: Vec<&str> = (0..n)
                .map(|_| {
                    if self.rng.u8(..6) == 0 {
                        self.pick(USES)
                    } else {
                        self.pick(&["Workload", "Tunnel", "LoadBalancer"])
                    }
                })
                .collect();
            fields.push(("allowedUses", json!(uses)));
        }
        if self.rng.u8(..10) < 3 {
            let mode = self.pick(ASSIGNMENT_MODES);
            fields.push(("assignmentMode", json!(mode)));
        }
        if self.rng.u8(..30) == 0 {
            let mode = self.pick(MODES);
            fields.push(("ipip", json!({"enabled": self.rng.bool(), "mode": mode})));
        }
        if self.rng.u8(..30) == 0 {
            fields.push(("nat-outgoing", json!(self.rng.bool())));
        }
        Value::Object(spec(fields))
    }

    fn random_name(&mut self) -> String {
        if self.rng.u8(..10) == 0 {
            self.pick(NAMES).to_owned()
        } else {
            format!("pool-{}", self.out.len())
        }
    }

    fn random_metadata(&mut self, name: String) -> Value {
        let mut metadata = json!({ "name": name });
        if self.rng.u8(..10) == 0 {
            let key = self.pick(LABEL_KEYS);
            let value = self.pick(LABEL_VALUES);
            metadata["labels"] = json!({ key: value });
        }
        if self.rng.u8(..10) == 0 {
            let key = self.pick(ANNOTATION_KEYS);
            metadata["annotations"] = json!({ key: "v" });
        }
        metadata
    }
}

/// `addr` (its low 32 bits for IPv4) with all but the first `prefix` bits cleared, as CIDR text.
fn masked(v6: bool, addr: u128, prefix: u8) -> String {
    if v6 {
        let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
        format!("{}/{prefix}", Ipv6Addr::from(addr & mask))
    } else {
        let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
        format!("{}/{prefix}", Ipv4Addr::from(addr as u32 & mask))
    }
}

/// The fields of a pool of `cidr`, with `blockSize` when given, disabled or not.
fn sized(cidr: &str, size: Option<i64>, disabled: bool) -> Vec<Field> {
    let mut fields = vec![("cidr", json!(cidr))];
    if let Some(size) = size {
        fields.push(("blockSize", json!(size)));
    }
    if disabled {
        fields.push(("disabled", json!(true)));
    }
    fields
}

fn spec(fields: Vec<Field>) -> Map<String, Value> {
    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
