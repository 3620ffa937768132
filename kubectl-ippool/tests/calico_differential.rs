//! Differential validation against Calico's own code: every pool of Calico's transcribed IPPool
//! tests (ippool-rules/tests/conformance/cases.yaml) and of a seeded generated corpus is judged by
//! `kubectl ippool validate`'s rules (the `ippool_rules` library, no cluster context, operation
//! create) and by `calico-validate` (tests/upstream/calico-v3.31/cmd/calico-validate: clientv3's
//! IPPool Create of Calico v3.31.0 into an empty datastore). Verdicts must agree, except where
//! DOCUMENTED (and ippool-rules/RULES.md) says why our rule is deliberately stricter or looser.
//! Agreement is printed per rule.
//!
//! Scope: the rules that need no context. Rules that need the cluster (pod or service CIDR,
//! existing pools and IPAM blocks) are skipped on our side for want of context and find nothing
//! in Calico's empty datastore; the conformance test covers them with Calico's own cases.
//!
//! Needs `calico-validate` among the upstream binaries (`tests/upstream/build`, or `$KUBE_BINARIES`);
//! without it the test fails and says how to build it.
//! `IPPOOL_DIFF_SEED` and `IPPOOL_DIFF_POOLS` replay or widen the generated corpus.

mod calico_corpus;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use calico_corpus::Entry;
use ippool_rules::context::{ClusterContext, Operation};
use ippool_rules::report::Severity;
use ippool_rules::source::parse;
use ippool_rules::{Source, validate};
use serde_json::{Value, json};

const DEFAULT_SEED: u64 = 0x1bb0_01d1_ff00;
const DEFAULT_POOLS: usize = 6000;
/// The issue asks for at least this many generated pools.
const MIN_POOLS: usize = 5000;

/// Which way our verdict differs from Calico's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// We refuse a pool Calico accepts.
    Stricter,
    /// We accept a pool Calico refuses.
    Looser,
}

/// A reviewed, deliberate difference (also in ippool-rules/RULES.md, "Differential validation").
struct Documented {
    code: &'static str,
    direction: Direction,
    /// Which pools it covers; a disagreement outside it is not covered.
    covers: fn(&Value) -> bool,
    /// A spec that shows it (checked on every run to differ in this direction, explained by this
    /// entry).
    example: &'static str,
    reason: &'static str,
}

const DOCUMENTED: &[Documented] = &[
    Documented {
        code: "IPP053",
        direction: Direction::Stricter,
        covers: |_| true,
        example: r#"{"cidr": "127.0.0.0/24"}"#,
        reason: "our rule: no pod may get a loopback, multicast, unspecified or IPv4-mapped address; \
                 Calico only refuses link-local",
    },
    Documented {
        code: "IPP022",
        direction: Direction::Stricter,
        covers: ipv4_mapped,
        example: r#"{"cidr": "::ffff:10.244.0.0/120", "disabled": true, "blockSize": 26}"#,
        reason: "Calico's family test reads an IPv4-mapped IPv6 CIDR as IPv4 and allows IPv4 block sizes \
                 on it; we read the IPv6 that is written (and refuse the pool anyway: IPP053)",
    },
    Documented {
        code: "IPP025",
        direction: Direction::Stricter,
        covers: ipv4_mapped,
        example: r#"{"cidr": "::ffff:10.244.0.0/120", "disabled": true, "ipipMode": "Always"}"#,
        reason: "Calico's family test reads an IPv4-mapped IPv6 CIDR as IPv4 and allows IPIP on it; we \
                 read the IPv6 that is written (and refuse the pool anyway: IPP053)",
    },
    Documented {
        code: "IPP029",
        direction: Direction::Stricter,
        covers: |pool| pool["spec"]["ipip"].is_object(),
        example: r#"{"cidr": "10.0.0.0/16", "ipipMode": "Always", "ipip": {"mode": "Always"}}"#,
        reason: "Calico's API says the v1 field ipip must not be set (tag mustBeNil), but its validator \
                 only checks ipip.mode against the v3 modes; such a pool is stored, and every read \
                 rewrites ipipMode from it (enabled unset: Never), so we refuse any ipip",
    },
    Documented {
        code: "IPP036",
        direction: Direction::Looser,
        covers: |pool| {
            pool["spec"]["allowedUses"]
                .as_array()
                .is_none_or(Vec::is_empty)
        },
        example: r#"{"cidr": "10.0.0.0/16", "namespaceSelector": "has(team)"}"#,
        reason: "Calico v3.31.0's create path defaults allowedUses to [Workload, Tunnel] before its validator, \
                 so a namespaceSelector needs allowedUses written without Tunnel; its validator's own test \
                 (v3-validator-0045) and later Calico's CRD rule accept the pool, and so do we",
    },
    Documented {
        code: "IPP010",
        direction: Direction::Looser,
        covers: |pool| pool["spec"]["blockSize"].is_f64(),
        example: r#"{"cidr": "10.0.0.0/16", "blockSize": 26.0}"#,
        reason: "the CRD schema counts 26.0 as an integer and kubectl and calicoctl re-encode a manifest's \
                 numbers (26.0 is sent as 26); only a raw request body keeps 26.0, which Calico's decoder \
                 refuses for an int field",
    },
    Documented {
        code: "IPP014",
        direction: Direction::Looser,
        covers: |pool| pool["metadata"]["generateName"].is_string(),
        example: r#"{"metadata": {"generateName": "pool-"}, "cidr": "10.0.0.0/16"}"#,
        reason: "the API server gives a name to an object with generateName before Calico sees it; \
                 clientv3 called directly (calicoctl) has no such step",
    },
];

/// Whether the pool's CIDR is an IPv4-mapped IPv6 network (`::ffff:a.b.c.d/n`).
fn ipv4_mapped(pool: &Value) -> bool {
    pool["spec"]["cidr"]
        .as_str()
        .and_then(|c| c.split('/').next()?.parse::<Ipv6Addr>().ok())
        .is_some_and(|a| a.to_ipv4_mapped().is_some())
}

/// Calico's error texts, from clientv3's create path and validator/v3, as our rule codes: the first
/// pattern found in "field: reason" wins.
const CALICO_RULES: &[(&str, &str)] = &[
    ("decode:", "IPP010"),
    ("IPPool CIDR must be specified", "IPP012"),
    ("IPPool CIDR must be a valid subnet", "IPP020"),
    ("not strictly masked", "IPP021"),
    ("block size must be between", "IPP022"),
    ("IP pool size is too small", "IPP023"),
    ("Cannot enable both VXLAN and IPIP", "IPP024"),
    ("IPIPMode and VXLANMode cannot be enabled", "IPP024"),
    ("IPIP is not supported on an IPv6", "IPP025"),
    ("IPIPMode other than 'Never'", "IPP025"),
    ("Link Local range", "IPP026"),
    // The deprecated v1 `ipip` object's mode, checked against the v3 modes.
    ("Field: Mode because", "IPP029"),
    ("Tag: ipIpMode", "IPP027"),
    ("Tag: vxlanMode", "IPP027"),
    ("unknown use:", "IPP028"),
    ("Tag: mustBeNil", "IPP029"),
    ("Tag: mustBeFalse", "IPP029"),
    ("Tag: selector", "IPP030"),
    ("global() selector is not valid", "IPP031"),
    ("Neither IPIPMode nor VXLANMode", "IPP032"),
    ("LoadBalancer cannot be used at the same time", "IPP033"),
    ("must have node selector set to all()", "IPP034"),
    ("DisableBGPExport", "IPP035"),
    ("AllowedUse Tunnel cannot have namespaceSelector", "IPP036"),
    ("Tag: assignmentMode", "IPP013"),
    ("Metadata.Name:", "IPP040"),
    ("Metadata.Labels (label):", "IPP041"),
    ("Metadata.Labels (value):", "IPP042"),
    ("total size of annotations", "IPP044"),
    ("Metadata.Annotations (key):", "IPP043"),
];

/// Calico's verdict on one pool, as `calico-validate` prints it.
struct CalicoVerdict {
    valid: bool,
    errors: Vec<String>,
}

/// Both verdicts on one pool.
struct Judged<'a> {
    entry: &'a Entry,
    ours: BTreeSet<&'static str>,
    our_messages: Vec<String>,
    calico: CalicoVerdict,
    /// Calico's errors as our codes; `None` for a text CALICO_RULES does not know.
    calico_codes: BTreeSet<Option<&'static str>>,
}

impl Judged<'_> {
    fn ours_invalid(&self) -> bool {
        !self.ours.is_empty()
    }

    fn disagreement(&self) -> Option<Direction> {
        match (self.ours_invalid(), self.calico.valid) {
            (true, true) => Some(Direction::Stricter),
            (false, false) => Some(Direction::Looser),
            _ => None,
        }
    }

    /// The documented entries explaining this disagreement: every rule on the refusing side must
    /// be documented for this direction and cover the pool.
    fn documented_by(&self) -> Option<Vec<&'static Documented>> {
        let direction = self.disagreement()?;
        let codes: Vec<Option<&str>> = match direction {
            Direction::Stricter => self.ours.iter().map(|c| Some(*c)).collect(),
            Direction::Looser => self.calico_codes.iter().copied().collect(),
        };
        codes
            .into_iter()
            .map(|code| {
                DOCUMENTED.iter().find(|d| {
                    Some(d.code) == code
                        && d.direction == direction
                        && (d.covers)(&self.entry.object)
                })
            })
            .collect()
    }

    fn describe(&self) -> String {
        format!(
            "{}: {}\n  ours:   {}\n  Calico: {}\n",
            self.entry.origin,
            self.entry.object,
            if self.our_messages.is_empty() {
                "valid".to_owned()
            } else {
                self.our_messages.join("; ")
            },
            if self.calico.valid {
                "valid".to_owned()
            } else {
                self.calico.errors.join("; ")
            },
        )
    }
}

fn calico_code(error: &str, pool: &Value) -> Option<&'static str> {
    let code = CALICO_RULES
        .iter()
        .find(|(pattern, _)| error.contains(pattern))
        .map(|(_, code)| *code)?;
    // Calico reports a missing name with the name-format message; ours has its own code.
    let unnamed = pool["metadata"]["name"].as_str().is_none_or(str::is_empty);
    Some(if code == "IPP040" && unnamed {
        "IPP014"
    } else {
        code
    })
}

/// Our errors for one pool: exactly what `kubectl ippool validate -f FILE` reports without
/// context flags (an empty context, operation create).
fn ours(object: &Value) -> (BTreeSet<&'static str>, Vec<String>) {
    let text = object.to_string();
    let report = validate(
        &[Source {
            name: "pool.json",
            text: &text,
        }],
        &ClusterContext::default(),
        &Operation::Create,
    );
    let errors: Vec<_> = report
        .documents
        .iter()
        .flat_map(|d| &d.diagnostics)
        .filter(|d| d.severity == Severity::Error)
        .collect();
    let codes = errors
        .iter()
        .map(|d| {
            ippool_rules::rules::rule_info(&d.code)
                .expect("every reported code is in the catalog")
                .code
        })
        .collect();
    let messages = errors
        .iter()
        .map(|d| format!("{} {}: {}", d.code, d.path, d.message))
        .collect();
    (codes, messages)
}

/// Where `calico-validate` is: among the upstream binaries the cluster tests use (a missing one
/// fails with how to build it; `IPPOOL_SKIP_CLUSTER=1 ./dev test` leaves this test out, counted).
fn calico_validate() -> PathBuf {
    let dir = harness::upstream_binaries().unwrap_or_else(|e| panic!("{e}"));
    let bin = dir.join("calico-validate");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `tests/upstream/build calico-v3.31`",
        bin.display()
    );
    bin
}

/// Calico's verdicts on `objects`, in order, from one run of `calico-validate`.
fn run_calico(bin: &Path, objects: &[&Value]) -> Vec<CalicoVerdict> {
    let mut child = Command::new(bin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let lines: Vec<String> = objects.iter().map(|o| o.to_string()).collect();
    // Written and drained from other threads: calico-validate answers as it reads, and a full pipe
    // would otherwise stall both sides.
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        for line in lines {
            writeln!(stdin, "{line}")?;
        }
        Ok(())
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let answers: Vec<String> = BufReader::new(stdout)
        .lines()
        .collect::<Result<_, _>>()
        .expect("read calico-validate's output");
    let status = child.wait().expect("wait for calico-validate");
    let errors = errors.join().expect("stderr thread");
    assert!(
        status.success(),
        "calico-validate failed ({status}): {errors}"
    );
    writer
        .join()
        .expect("writer thread")
        .expect("write to calico-validate");
    assert_eq!(
        answers.len(),
        objects.len(),
        "calico-validate answers every pool"
    );
    answers
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("calico-validate printed a line that is not JSON ({e}): {line}")
            });
            assert_eq!(
                v["line"],
                i + 1,
                "calico-validate answered out of order: {line}"
            );
            CalicoVerdict {
                valid: v["valid"].as_bool().expect("valid is a boolean"),
                errors: v["errors"]
                    .as_array()
                    .expect("errors is a list")
                    .iter()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e["field"].as_str().unwrap_or(""),
                            e["reason"].as_str().unwrap_or("")
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

fn judge<'a>(entries: &'a [Entry], calico: Vec<CalicoVerdict>) -> Vec<Judged<'a>> {
    entries
        .iter()
        .zip(calico)
        .map(|(entry, calico)| {
            let (ours, our_messages) = ours(&entry.object);
            let calico_codes = calico
                .errors
                .iter()
                .map(|e| calico_code(e, &entry.object))
                .collect();
            Judged {
                entry,
                ours,
                our_messages,
                calico,
                calico_codes,
            }
        })
        .collect()
}

/// The pools of Calico's transcribed tests, as pools to create (their operations and context do
/// not apply here: each is judged alone, like every other pool of the corpus).
fn conformance_pools() -> Vec<Entry> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ippool-rules/tests/conformance/cases.yaml"
    );
    let text = std::fs::read_to_string(path).expect("read the conformance cases");
    let parsed = parse("cases.yaml", &text);
    assert!(
        parsed.problems.is_empty(),
        "cases.yaml: {:?}",
        parsed.problems
    );
    let cases = parsed.documents[0].root.as_ref().expect("a list").to_json();
    let mut entries = Vec::new();
    for case in cases.as_array().expect("cases.yaml is a list") {
        let mut spec = case["pool"].as_object().cloned().expect("a pool");
        let metadata = spec
            .remove("metadata")
            .unwrap_or_else(|| json!({"name": "conformance-pool"}));
        entries.push(Entry {
            origin: format!("conformance {}", case["id"].as_str().expect("an id")),
            object: json!({
                "apiVersion": "projectcalico.org/v3",
                "kind": "IPPool",
                "metadata": metadata,
                "spec": spec,
            }),
        });
    }
    entries
}

fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        })
        .unwrap_or(default)
}

/// The rules clientv3's Create checks itself before calling the validator. When one of them fails
/// (its errors name `IPPool.Spec.…` fields) Create returns at once, so Calico has said nothing
/// about the validator's rules on that pool.
const CALICO_FIRST_STAGE: &[&str] = &[
    "IPP012", "IPP020", "IPP021", "IPP022", "IPP023", "IPP024", "IPP025", "IPP026",
];

/// Whether Calico's answer on the pool covers `code` (a pool it could not decode covers nothing
/// but the decoding).
fn calico_checked(j: &Judged<'_>, code: &str) -> bool {
    if j.calico.errors.iter().any(|e| e.starts_with("decode:")) {
        return code == "IPP010";
    }
    // A missing or unparsable CIDR ends Create's own checks at once.
    if let Some(cidr) = [Some("IPP012"), Some("IPP020")]
        .into_iter()
        .find(|c| j.calico_codes.contains(c))
    {
        return Some(code) == cidr;
    }
    let stopped_early = j
        .calico
        .errors
        .iter()
        .any(|e| e.starts_with("IPPool.Spec."));
    !stopped_early || CALICO_FIRST_STAGE.contains(&code)
}

/// Per rule, over the pools whose Calico answer covers it: how often each side reports it and how
/// often both do; over all pools: the verdict disagreements it is on the refusing side of.
#[derive(Default)]
struct RuleCount {
    checked: usize,
    ours: usize,
    calico: usize,
    both: usize,
    unchecked: usize,
    stricter: usize,
    looser: usize,
}

fn agreement_table(judged: &[Judged<'_>]) -> String {
    let mut rules: BTreeMap<&str, RuleCount> = BTreeMap::new();
    let codes: BTreeSet<&str> = judged
        .iter()
        .flat_map(|j| {
            let calico = j.calico_codes.iter().map(|c| c.unwrap_or("unmapped"));
            j.ours.iter().copied().chain(calico)
        })
        .collect();
    for j in judged {
        for &code in &codes {
            let count = rules.entry(code).or_default();
            let o = j.ours.contains(code);
            let c = j.calico_codes.contains(&Some(code))
                || (code == "unmapped" && j.calico_codes.contains(&None));
            count.stricter += usize::from(o && j.calico.valid);
            count.looser += usize::from(c && !j.ours_invalid());
            if !calico_checked(j, code) {
                count.unchecked += usize::from(o);
                continue;
            }
            count.checked += 1;
            count.ours += usize::from(o);
            count.calico += usize::from(c);
            count.both += usize::from(o && c);
        }
    }
    let agreeing = judged.iter().filter(|j| j.disagreement().is_none()).count();
    let mut table = format!(
        "verdicts agree on {agreeing} of {} pools ({:.2}%)\n\
         Per rule, over the pools whose Calico answer covers the rule (\"checked\"): how many pools\n\
         each side refuses with it, and of those refused by either side the share refused by both.\n\
         \"unchecked\": we report it where Calico stopped at an earlier error. The last two columns\n\
         count verdict disagreements over all pools.\n\
         rule    | checked | ours | Calico | both | agree  | unchecked | we refuse, Calico accepts | we accept, Calico refuses\n",
        judged.len(),
        100.0 * agreeing as f64 / judged.len() as f64
    );
    for (code, c) in &rules {
        let either = c.ours + c.calico - c.both;
        let agree = if either == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}%", 100.0 * c.both as f64 / either as f64)
        };
        let _ = writeln!(
            table,
            "{code:<7} | {:>7} | {:>4} | {:>6} | {:>4} | {agree:>6} | {:>9} | {:>25} | {:>25}",
            c.checked, c.ours, c.calico, c.both, c.unchecked, c.stricter, c.looser,
        );
    }
    table
}

/// The corpus and both sides' verdicts, kept for a failed run to be read or replayed.
fn keep(entries: &[Entry], judged: &[Judged<'_>], table: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("calico-differential");
    std::fs::create_dir_all(&dir).expect("create the output folder");
    let mut corpus = String::new();
    for e in entries {
        let _ = writeln!(corpus, "{}", e.object);
    }
    std::fs::write(dir.join("corpus.jsonl"), corpus).expect("write the corpus");
    let mut verdicts = String::new();
    for j in judged {
        let _ = writeln!(
            verdicts,
            "{}",
            json!({"origin": j.entry.origin, "ours": j.our_messages, "calico": j.calico.errors, "calicoValid": j.calico.valid})
        );
    }
    std::fs::write(dir.join("verdicts.jsonl"), verdicts).expect("write the verdicts");
    std::fs::write(dir.join("agreement.txt"), table).expect("write the table");
    dir
}

#[test]
fn calico_and_we_agree_on_every_pool_but_the_documented() {
    let bin = calico_validate();
    let seed = env_number("IPPOOL_DIFF_SEED", DEFAULT_SEED);
    let count = env_number("IPPOOL_DIFF_POOLS", DEFAULT_POOLS);
    let mut entries = conformance_pools();
    entries.extend(calico_corpus::generate(seed, count));
    let objects: Vec<&Value> = entries.iter().map(|e| &e.object).collect();
    let calico = run_calico(&bin, &objects);
    let judged = judge(&entries, calico);
    let table = agreement_table(&judged);
    let dir = keep(&entries, &judged, &table);
    println!(
        "seed {seed:#x}, {} pools; corpus and verdicts in {}\n{table}",
        entries.len(),
        dir.display()
    );
    let mut covered: BTreeMap<&str, usize> = BTreeMap::new();
    let mut undocumented = Vec::new();
    let mut unmapped = Vec::new();
    for j in &judged {
        if j.calico_codes.contains(&None) {
            unmapped.push(j.describe());
        }
        match j.documented_by() {
            Some(entries) => {
                for d in entries {
                    *covered.entry(d.code).or_default() += 1;
                }
            }
            None if j.disagreement().is_some() => undocumented.push(j.describe()),
            None => {}
        }
    }
    for d in DOCUMENTED {
        println!(
            "documented {} ({:?}): {} pools — {}",
            d.code,
            d.direction,
            covered.get(d.code).copied().unwrap_or(0),
            d.reason
        );
    }
    assert!(
        unmapped.is_empty(),
        "{} pools have a Calico error CALICO_RULES does not map to a rule code (add the mapping):\n{}",
        unmapped.len(),
        unmapped.iter().take(20).cloned().collect::<String>()
    );
    assert!(
        undocumented.is_empty(),
        "{} pools are judged differently by Calico v3.31.0 and by us, and DOCUMENTED does not explain \
         it (fix ippool-rules, or document an intended difference here and in RULES.md); replay with \
         IPPOOL_DIFF_SEED={seed:#x}. The first 20:\n{}",
        undocumented.len(),
        undocumented.iter().take(20).cloned().collect::<String>()
    );
}

#[test]
fn every_documented_difference_shows_in_its_example() {
    let bin = calico_validate();
    let entries: Vec<Entry> = DOCUMENTED
        .iter()
        .map(|d| {
            let mut spec: serde_json::Map<String, Value> =
                serde_json::from_str(d.example).expect("the example is a JSON object");
            let metadata = spec
                .remove("metadata")
                .unwrap_or_else(|| json!({"name": "example"}));
            Entry {
                origin: format!("documented {}", d.code),
                object: json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": metadata, "spec": spec}),
            }
        })
        .collect();
    let objects: Vec<&Value> = entries.iter().map(|e| &e.object).collect();
    let judged = judge(&entries, run_calico(&bin, &objects));
    for (d, j) in DOCUMENTED.iter().zip(&judged) {
        assert_eq!(j.disagreement(), Some(d.direction), "{}", j.describe());
        let explained = j.documented_by().unwrap_or_default();
        assert!(
            explained.iter().any(|e| std::ptr::eq(*e, d)),
            "the example of {} is not explained by its entry:\n{}",
            d.code,
            j.describe()
        );
    }
}

#[test]
fn rules_md_lists_every_documented_difference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ippool-rules/RULES.md");
    let text = std::fs::read_to_string(path).expect("read RULES.md");
    let start = text
        .find("## Differential validation against Calico")
        .expect("RULES.md has the differential section");
    let section = &text[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |e| e + 3)];
    for d in DOCUMENTED {
        let direction = match d.direction {
            Direction::Stricter => "stricter",
            Direction::Looser => "looser",
        };
        let row = format!("| {} | {direction} |", d.code);
        assert!(
            section.contains(&row),
            "RULES.md's differential section has no row starting {row}"
        );
    }
}

#[test]
fn the_corpus_is_reproducible_and_covers_every_spec_field() {
    let first = calico_corpus::generate(DEFAULT_SEED, DEFAULT_POOLS);
    let again = calico_corpus::generate(DEFAULT_SEED, DEFAULT_POOLS);
    let other = calico_corpus::generate(DEFAULT_SEED + 1, DEFAULT_POOLS);
    assert!(first.len() >= MIN_POOLS, "{} pools", first.len());
    let texts = |c: &[Entry]| c.iter().map(|e| e.object.to_string()).collect::<Vec<_>>();
    assert_eq!(
        texts(&first),
        texts(&again),
        "the same seed gives the same corpus"
    );
    assert_ne!(
        texts(&first),
        texts(&other),
        "another seed gives another corpus"
    );
    let fields: BTreeSet<&str> = first
        .iter()
        .filter_map(|e| e.object["spec"].as_object())
        .flat_map(|spec| spec.keys().map(String::as_str))
        .collect();
    for field in [
        "cidr",
        "blockSize",
        "ipipMode",
        "vxlanMode",
        "natOutgoing",
        "disabled",
        "disableBGPExport",
        "nodeSelector",
        "namespaceSelector",
        "allowedUses",
        "assignmentMode",
        "ipip",
        "nat-outgoing",
    ] {
        assert!(fields.contains(field), "no pool sets spec.{field}");
    }
    let v6 = first
        .iter()
        .filter(|e| {
            e.object["spec"]["cidr"]
                .as_str()
                .is_some_and(|c| c.contains(':'))
        })
        .count();
    assert!(v6 > first.len() / 5, "{v6} IPv6 pools of {}", first.len());
}
