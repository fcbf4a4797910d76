//! TOML with spans: the scenario file in, a [`Scenario`] syntax tree out.
//!
//! `toml::de::DeTable` keeps the span of every key and value. Entries are
//! re-sorted by key position, because the map is ordered by key and the
//! language cares about file order (ties in the topological order, default
//! world order). Expression strings keep a byte map from the decoded text
//! back to the file ([`Src`]), so a diagnostic can underline the exact
//! sub-expression inside a string with escapes or in a multi-line string.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::{Code, Diagnostic, did_you_mean};
use crate::model::{EditKind, Span};

/// A name with the span of its key.
#[derive(Debug, Clone, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// An expression string: its decoded text and where each decoded byte came
/// from in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Src {
    pub text: String,
    /// Span of the whole TOML string, quotes included.
    pub span: Span,
    /// `map[i]` = source range of the character that decoded byte `i`
    /// belongs to; `None` when the mapping could not be rebuilt (then every
    /// sub-span is the whole string).
    map: Option<Vec<(usize, usize)>>,
    /// Source offset of the closing quote (for empty spans at the end).
    close: usize,
}

impl Src {
    /// Maps a span in the decoded text to a span in the file.
    pub fn span_of(&self, local: Span) -> Span {
        let Some(map) = &self.map else {
            return self.span;
        };
        let at = |i: usize| map.get(i).map(|r| r.0).unwrap_or(self.close);
        if local.start >= local.end {
            let p = at(local.start);
            return Span::new(p, p);
        }
        let start = at(local.start);
        let end = map.get(local.end - 1).map(|r| r.1).unwrap_or(self.close);
        Span::new(start, end.max(start))
    }

    /// Whether sub-spans map exactly (false: they fall back to the string).
    pub fn is_mapped(&self) -> bool {
        self.map.is_some()
    }
}

/// A number with its span.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Num {
    pub value: f64,
    pub span: Span,
}

/// `[scenario]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Raw integer and span (validated in resolve).
    pub samples: Option<(i64, Span)>,
    pub seed: Option<(i64, Span)>,
}

/// One `[nodes]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeDecl {
    pub name: Ident,
    pub expr: Src,
    pub latent: bool,
    pub doc: Option<String>,
    /// `level = "unit"` or `"sample"`, with the value's span.
    pub level: Option<(String, Span)>,
    /// `init = "..."`: the value before period 0.
    pub init: Option<Src>,
}

/// What an edit does to one target.
#[derive(Debug, Clone, PartialEq)]
pub enum EditValue {
    /// A replacement mechanism.
    Expr(Src),
    /// A parameter override.
    Num(Num),
}

/// One entry of an edit table.
#[derive(Debug, Clone, PartialEq)]
pub struct EditEntry {
    pub target: Ident,
    pub value: EditValue,
    /// `{ expr = "...", from = 3 }`: first period the edit applies to.
    pub from: Option<(i64, Span)>,
}

/// `[interventions.NAME]` or `[stresses.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct EditDecl {
    pub name: Ident,
    pub kind: EditKind,
    pub entries: Vec<EditEntry>,
}

/// One `[[checks]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckDecl {
    pub name: Option<String>,
    pub expect: Src,
    pub span: Span,
}

/// One `[guardrails]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardDecl {
    pub node: Ident,
    pub min: Option<Num>,
    pub max: Option<Num>,
    pub max_share: Option<Num>,
    pub worlds: Option<Vec<(String, Span)>>,
}

/// One `[sweeps]` entry: `param = { lo = 1.0, hi = 1.5, points = 6 }`.
/// Missing keys are reported here; ranges are checked in resolve.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepDecl {
    pub param: Ident,
    pub lo: Option<Num>,
    pub hi: Option<Num>,
    /// Raw integer and span (validated in resolve).
    pub points: Option<(i64, Span)>,
    /// Span of the whole value (the inline table).
    pub span: Span,
}

/// The scenario file as written, with spans; names are checked to be
/// identifiers, nothing is resolved yet.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scenario {
    pub header: Header,
    pub params: Vec<(Ident, Num)>,
    pub nodes: Vec<NodeDecl>,
    /// Interventions and stresses in file order.
    pub edits: Vec<EditDecl>,
    pub run_worlds: Option<Vec<(String, Span)>>,
    pub metrics: Vec<(Ident, Src)>,
    pub checks: Vec<CheckDecl>,
    pub guardrails: Vec<GuardDecl>,
    /// `[sweeps]` in file order.
    pub sweeps: Vec<SweepDecl>,
    /// `[data]`, if present.
    pub data: Option<DataDecl>,
    /// `[units]`, if present.
    pub units: Option<UnitsDecl>,
    /// `[periods] count`, with the span of its value.
    pub periods: Option<(i64, Span)>,
    /// Span of the `[periods]` key.
    pub periods_span: Option<Span>,
    /// Directory that relative paths in the scenario are read from.
    pub base_dir: Option<std::path::PathBuf>,
    /// Units to use instead of reading `[units] path` (a shard merge, which
    /// has the unit file's hash, not the file).
    pub units_override: Option<crate::model::Units>,
    /// The period count read from the data's period column, for a
    /// `[periods]` section without `count` (set by the caller).
    pub periods_override: Option<u32>,
}

/// `[units]`: `count = N` or `path = "units.csv"` (one row per unit).
#[derive(Debug, Clone, PartialEq)]
pub struct UnitsDecl {
    pub span: Span,
    pub count: Option<(i64, Span)>,
    pub path: Option<(String, Span)>,
}

/// `[data]`: where observed rows come from and how columns map to nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct DataDecl {
    /// Span of the `data` table key.
    pub span: Span,
    /// File path (relative to the scenario file) and the span of its value.
    pub path: Option<(String, Span)>,
    /// Column that names each row's period, if any.
    pub period: Option<(String, Span)>,
    /// Column that identifies each row's unit, if any.
    pub unit: Option<(String, Span)>,
    /// `columns = { node = "column" }`: explicit mappings in file order
    /// (the key is the node; the default column is the node's own name).
    pub columns: Vec<(Ident, (String, Span))>,
}

const TOP_KEYS: &[&str] = &[
    "scenario",
    "params",
    "nodes",
    "interventions",
    "stresses",
    "run",
    "metrics",
    "checks",
    "guardrails",
    "data",
    "sweeps",
    "units",
    "periods",
];

fn sp<T>(s: &Spanned<T>) -> Span {
    let r = s.span();
    Span::new(r.start, r.end)
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// Entries of a table in file order.
fn entries<'a, 'i>(
    t: &'a DeTable<'i>,
) -> Vec<(
    &'a Spanned<std::borrow::Cow<'i, str>>,
    &'a Spanned<DeValue<'i>>,
)> {
    let mut v: Vec<_> = t.iter().collect();
    v.sort_by_key(|(k, _)| (k.span().start, k.span().end));
    v
}

/// Whether `s` is an identifier `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

struct Ctx<'s> {
    source: &'s str,
    diags: Vec<Diagnostic>,
}

impl<'s> Ctx<'s> {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn wrong_type(&mut self, what: &str, expected: &str, v: &Spanned<DeValue<'_>>) {
        self.err(Diagnostic::new(
            Code::WrongType,
            sp(v),
            format!(
                "{what} must be {expected}, found {}",
                type_name(v.get_ref())
            ),
            format!("expected {expected}"),
        ));
    }

    fn unknown_key(
        &mut self,
        table: &str,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        known: &[&str],
    ) {
        self.err(
            Diagnostic::new(
                Code::UnknownKey,
                sp(key),
                format!("unknown key `{}` in {table}", key.get_ref()),
                "unknown key",
            )
            .with_help(
                did_you_mean(key.get_ref(), known.iter().copied())
                    .unwrap_or_else(|| format!("known keys: {}", known.join(", "))),
            ),
        );
    }

    /// Checks that a key is an identifier; returns it as an [`Ident`].
    fn ident(&mut self, what: &str, key: &Spanned<std::borrow::Cow<'_, str>>) -> Option<Ident> {
        let name = key.get_ref().to_string();
        let span = sp(key);
        if is_ident(&name) {
            return Some(Ident { name, span });
        }
        let fixed: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let fixed = if fixed.starts_with(|c: char| c.is_ascii_digit()) || fixed.is_empty() {
            format!("_{fixed}")
        } else {
            fixed
        };
        self.err(
            Diagnostic::new(
                Code::InvalidName,
                span,
                format!("{what} name `{name}` is not an identifier"),
                "not an identifier",
            )
            .with_help(format!(
                "names are `[A-Za-z_][A-Za-z0-9_]*` (expressions would read `-` as a subtraction): use `{fixed}`"
            )),
        );
        None
    }

    fn string(&mut self, what: &str, v: &Spanned<DeValue<'_>>) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.wrong_type(what, "a string", v);
                None
            }
        }
    }

    fn src(&mut self, what: &str, v: &Spanned<DeValue<'_>>) -> Option<Src> {
        match v.get_ref() {
            DeValue::String(s) => Some(make_src(self.source, s, sp(v))),
            _ => {
                self.wrong_type(what, "an expression string", v);
                None
            }
        }
    }

    fn int(&mut self, what: &str, v: &Spanned<DeValue<'_>>) -> Option<(i64, Span)> {
        match v.get_ref() {
            DeValue::Integer(i) => {
                let digits: String = i.as_str().chars().filter(|&c| c != '_').collect();
                match i64::from_str_radix(&digits, i.radix()) {
                    Ok(n) => Some((n, sp(v))),
                    Err(_) => {
                        self.err(Diagnostic::new(
                            Code::NumberOutOfRange,
                            sp(v),
                            format!("{what} `{}` does not fit in 64 bits", i.as_str()),
                            "out of range",
                        ));
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(what, "an integer", v);
                None
            }
        }
    }

    fn num(&mut self, what: &str, v: &Spanned<DeValue<'_>>) -> Option<Num> {
        let span = sp(v);
        match v.get_ref() {
            DeValue::Integer(_) => self.int(what, v).map(|(n, _)| Num {
                value: n as f64,
                span,
            }),
            DeValue::Float(f) => {
                let text: String = f.as_str().chars().filter(|&c| c != '_').collect();
                match text.parse::<f64>() {
                    Ok(x) if x.is_finite() => Some(Num { value: x, span }),
                    _ => {
                        self.err(Diagnostic::new(
                            Code::NumberOutOfRange,
                            span,
                            format!("{what} `{}` is not a finite number", f.as_str()),
                            "not finite",
                        ));
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(what, "a number", v);
                None
            }
        }
    }

    fn table<'a, 'i>(
        &mut self,
        what: &str,
        v: &'a Spanned<DeValue<'i>>,
    ) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(what, "a table", v);
                None
            }
        }
    }

    fn world_list(&mut self, what: &str, v: &Spanned<DeValue<'_>>) -> Option<Vec<(String, Span)>> {
        match v.get_ref() {
            DeValue::Array(a) => {
                let mut out = Vec::new();
                for item in a.iter() {
                    if let Some(s) = self.string(what, item) {
                        out.push((s, sp(item)));
                    }
                }
                Some(out)
            }
            _ => {
                self.wrong_type(what, "an array of world names", v);
                None
            }
        }
    }
}

/// Parses the TOML of a scenario. Collects every structural error it can;
/// the caller sorts them.
pub fn parse_scenario(source: &str) -> (Scenario, Vec<Diagnostic>) {
    let mut cx = Ctx {
        source,
        diags: Vec::new(),
    };
    let mut sc = Scenario::default();
    let doc = match DeTable::parse(source) {
        Ok(doc) => doc,
        Err(e) => {
            let span = e
                .span()
                .map(|r| Span::new(r.start, r.end))
                .unwrap_or_default();
            let msg = e.message().trim().trim_end_matches('.').to_string();
            let mut msg = msg.lines().next().unwrap_or("invalid toml").to_string();
            if let Some(first) = msg.get(..1) {
                msg = first.to_lowercase() + msg.get(1..).unwrap_or("");
            }
            cx.err(Diagnostic::new(
                Code::TomlSyntax,
                span,
                format!("invalid toml: {msg}"),
                "here",
            ));
            return (sc, cx.diags);
        }
    };
    for (key, value) in entries(doc.get_ref()) {
        match key.get_ref().as_ref() {
            "scenario" => parse_header(&mut cx, &mut sc, value),
            "params" => {
                if let Some(t) = cx.table("[params]", value) {
                    for (k, v) in entries(t) {
                        let id = cx.ident("param", k);
                        let num = cx.num(&format!("param `{}`", k.get_ref()), v);
                        if let (Some(id), Some(num)) = (id, num) {
                            sc.params.push((id, num));
                        }
                    }
                }
            }
            "nodes" => {
                if let Some(t) = cx.table("[nodes]", value) {
                    for (k, v) in entries(t) {
                        parse_node(&mut cx, &mut sc, k, v);
                    }
                }
            }
            kind @ ("interventions" | "stresses") => {
                let ek = if kind == "interventions" {
                    EditKind::Intervention
                } else {
                    EditKind::Stress
                };
                if let Some(t) = cx.table(&format!("[{kind}]"), value) {
                    for (k, v) in entries(t) {
                        parse_edit(&mut cx, &mut sc, ek, k, v);
                    }
                }
            }
            "run" => {
                if let Some(t) = cx.table("[run]", value) {
                    for (k, v) in entries(t) {
                        match k.get_ref().as_ref() {
                            "worlds" => sc.run_worlds = cx.world_list("`[run] worlds`", v),
                            _ => cx.unknown_key("[run]", k, &["worlds"]),
                        }
                    }
                }
            }
            "metrics" => {
                if let Some(t) = cx.table("[metrics]", value) {
                    for (k, v) in entries(t) {
                        let id = cx.ident("metric", k);
                        let src = cx.src(&format!("metric `{}`", k.get_ref()), v);
                        if let (Some(id), Some(src)) = (id, src) {
                            sc.metrics.push((id, src));
                        }
                    }
                }
            }
            "checks" => parse_checks(&mut cx, &mut sc, value),
            "sweeps" => {
                if let Some(t) = cx.table("[sweeps]", value) {
                    for (k, v) in entries(t) {
                        parse_sweep(&mut cx, &mut sc, k, v);
                    }
                }
            }
            "data" => sc.data = parse_data(&mut cx, key, value),
            "units" => {
                if let Some(t) = cx.table("[units]", value) {
                    let mut u = UnitsDecl {
                        span: sp(key),
                        count: None,
                        path: None,
                    };
                    for (k, v) in entries(t) {
                        match k.get_ref().as_ref() {
                            "count" => u.count = cx.int("`[units] count`", v),
                            "path" => u.path = cx.string("`[units] path`", v).map(|s| (s, sp(v))),
                            _ => cx.unknown_key("[units]", k, &["count", "path"]),
                        }
                    }
                    sc.units = Some(u);
                }
            }
            "periods" => {
                if let Some(t) = cx.table("[periods]", value) {
                    sc.periods_span = Some(sp(key));
                    for (k, v) in entries(t) {
                        match k.get_ref().as_ref() {
                            "count" => sc.periods = cx.int("`[periods] count`", v),
                            _ => cx.unknown_key("[periods]", k, &["count"]),
                        }
                    }
                }
            }
            "guardrails" => {
                if let Some(t) = cx.table("[guardrails]", value) {
                    for (k, v) in entries(t) {
                        parse_guardrail(&mut cx, &mut sc, k, v);
                    }
                }
            }
            other => {
                let help = did_you_mean(other, TOP_KEYS.iter().copied())
                    .unwrap_or_else(|| format!("known tables: {}", TOP_KEYS.join(", ")));
                cx.err(
                    Diagnostic::new(
                        Code::UnknownTable,
                        sp(key),
                        format!("unknown table `{other}`"),
                        "unknown table",
                    )
                    .with_help(help),
                );
            }
        }
    }
    (sc, cx.diags)
}

fn parse_header(cx: &mut Ctx<'_>, sc: &mut Scenario, value: &Spanned<DeValue<'_>>) {
    let Some(t) = cx.table("[scenario]", value) else {
        return;
    };
    for (k, v) in entries(t) {
        match k.get_ref().as_ref() {
            "name" => sc.header.name = cx.string("`[scenario] name`", v),
            "description" => sc.header.description = cx.string("`[scenario] description`", v),
            "samples" => sc.header.samples = cx.int("`[scenario] samples`", v),
            "seed" => sc.header.seed = cx.int("`[scenario] seed`", v),
            _ => cx.unknown_key("[scenario]", k, &["name", "description", "samples", "seed"]),
        }
    }
}

fn parse_node(
    cx: &mut Ctx<'_>,
    sc: &mut Scenario,
    k: &Spanned<std::borrow::Cow<'_, str>>,
    v: &Spanned<DeValue<'_>>,
) {
    let id = cx.ident("node", k);
    let what = format!("node `{}`", k.get_ref());
    let (mut level, mut init) = (None, None);
    let (expr, latent, doc) = match v.get_ref() {
        DeValue::String(_) => (cx.src(&what, v), false, None),
        DeValue::Table(t) => {
            let (mut expr, mut latent, mut doc) = (None, false, None);
            for (tk, tv) in entries(t) {
                match tk.get_ref().as_ref() {
                    "expr" => expr = cx.src(&what, tv),
                    "latent" => match tv.get_ref() {
                        DeValue::Boolean(b) => latent = *b,
                        _ => cx.wrong_type(&format!("`latent` of {what}"), "a boolean", tv),
                    },
                    "doc" => doc = cx.string(&format!("`doc` of {what}"), tv),
                    "level" => {
                        level = cx
                            .string(&format!("`level` of {what}"), tv)
                            .map(|s| (s, sp(tv)))
                    }
                    "init" => init = cx.src(&format!("`init` of {what}"), tv),
                    _ => cx.unknown_key(&what, tk, &["expr", "latent", "doc", "level", "init"]),
                }
            }
            if expr.is_none() && !t.iter().any(|(tk, _)| tk.get_ref() == "expr") {
                cx.err(
                    Diagnostic::new(
                        Code::MissingKey,
                        sp(k),
                        format!("{what} has no `expr`"),
                        "missing `expr`",
                    )
                    .with_help("write `{ expr = \"...\" }`"),
                );
            }
            (expr, latent, doc)
        }
        _ => {
            cx.wrong_type(&what, "an expression string or a table", v);
            (None, false, None)
        }
    };
    if let (Some(name), Some(expr)) = (id, expr) {
        sc.nodes.push(NodeDecl {
            name,
            expr,
            latent,
            doc,
            level,
            init,
        });
    }
}

fn parse_edit(
    cx: &mut Ctx<'_>,
    sc: &mut Scenario,
    kind: EditKind,
    k: &Spanned<std::borrow::Cow<'_, str>>,
    v: &Spanned<DeValue<'_>>,
) {
    let label = if kind == EditKind::Intervention {
        "intervention"
    } else {
        "stress"
    };
    let id = cx.ident(label, k);
    let Some(t) = cx.table(&format!("{label} `{}`", k.get_ref()), v) else {
        return;
    };
    let mut out = Vec::new();
    for (tk, tv) in entries(t) {
        let target = cx.ident("edit target", tk);
        let what = format!("`{}` in {label} `{}`", tk.get_ref(), k.get_ref());
        let mut from = None;
        let value = match tv.get_ref() {
            DeValue::String(s) => Some(EditValue::Expr(make_src(cx.source, s, sp(tv)))),
            DeValue::Integer(_) | DeValue::Float(_) => cx.num(&what, tv).map(EditValue::Num),
            DeValue::Table(t) => {
                let mut expr = None;
                for (ek, ev) in entries(t) {
                    match ek.get_ref().as_ref() {
                        "expr" => expr = cx.src(&what, ev),
                        "from" => from = cx.int(&format!("`from` of {what}"), ev),
                        _ => cx.unknown_key(&what, ek, &["expr", "from"]),
                    }
                }
                if expr.is_none() && !t.iter().any(|(ek, _)| ek.get_ref() == "expr") {
                    cx.err(
                        Diagnostic::new(
                            Code::MissingKey,
                            sp(tk),
                            format!("{what} has no `expr`"),
                            "missing `expr`",
                        )
                        .with_help("write `{ expr = \"...\", from = 3 }`"),
                    );
                }
                expr.map(EditValue::Expr)
            }
            _ => {
                cx.wrong_type(&what, "an expression string (node) or a number (param)", tv);
                None
            }
        };
        if let (Some(target), Some(value)) = (target, value) {
            out.push(EditEntry {
                target,
                value,
                from,
            });
        }
    }
    if let Some(name) = id {
        sc.edits.push(EditDecl {
            name,
            kind,
            entries: out,
        });
    }
}

fn parse_checks(cx: &mut Ctx<'_>, sc: &mut Scenario, value: &Spanned<DeValue<'_>>) {
    let DeValue::Array(items) = value.get_ref() else {
        cx.wrong_type("`checks`", "an array of tables (`[[checks]]`)", value);
        return;
    };
    for item in items.iter() {
        let Some(t) = cx.table("a check", item) else {
            continue;
        };
        let (mut name, mut expect) = (None, None);
        for (k, v) in entries(t) {
            match k.get_ref().as_ref() {
                "name" => name = cx.string("check `name`", v),
                "expect" => expect = cx.src("check `expect`", v),
                _ => cx.unknown_key("a check", k, &["name", "expect"]),
            }
        }
        match expect {
            Some(expect) => sc.checks.push(CheckDecl {
                name,
                span: expect.span,
                expect,
            }),
            None if !t.iter().any(|(k, _)| k.get_ref() == "expect") => cx.err(
                Diagnostic::new(
                    Code::MissingKey,
                    sp(item),
                    "check has no `expect`",
                    "missing `expect`",
                )
                .with_help("write `expect = \"boolean expression over metrics\"`"),
            ),
            None => {}
        }
    }
}

fn parse_data(
    cx: &mut Ctx<'_>,
    k: &Spanned<std::borrow::Cow<'_, str>>,
    v: &Spanned<DeValue<'_>>,
) -> Option<DataDecl> {
    let t = cx.table("[data]", v)?;
    let mut d = DataDecl {
        span: sp(k),
        path: None,
        period: None,
        unit: None,
        columns: vec![],
    };
    for (tk, tv) in entries(t) {
        let key = tk.get_ref().as_ref();
        let what = format!("`[data] {key}`");
        match key {
            "path" | "period" | "unit" => {
                let val = cx.string(&what, tv).map(|s| (s, sp(tv)));
                match key {
                    "path" => d.path = val,
                    "period" => d.period = val,
                    _ => d.unit = val,
                }
            }
            "columns" => {
                let Some(ct) = cx.table(&what, tv) else {
                    continue;
                };
                for (ck, cv) in entries(ct) {
                    let node = cx.ident("node", ck);
                    let col = cx.string(&format!("column of node `{}`", ck.get_ref()), cv);
                    if let (Some(node), Some(col)) = (node, col) {
                        d.columns.push((node, (col, sp(cv))));
                    }
                }
            }
            _ => cx.unknown_key("[data]", tk, &["path", "period", "unit", "columns"]),
        }
    }
    if d.path.is_none() {
        cx.err(
            Diagnostic::new(
                Code::MissingKey,
                d.span,
                "[data] has no `path`",
                "missing `path`",
            )
            .with_help("write `path = \"history.csv\"` (CSV or Parquet, relative to the scenario)"),
        );
    }
    Some(d)
}

fn parse_guardrail(
    cx: &mut Ctx<'_>,
    sc: &mut Scenario,
    k: &Spanned<std::borrow::Cow<'_, str>>,
    v: &Spanned<DeValue<'_>>,
) {
    let id = cx.ident("guardrail node", k);
    let what = format!("guardrail `{}`", k.get_ref());
    let Some(t) = cx.table(&what, v) else { return };
    let mut g = GuardDecl {
        node: Ident {
            name: String::new(),
            span: sp(k),
        },
        min: None,
        max: None,
        max_share: None,
        worlds: None,
    };
    for (tk, tv) in entries(t) {
        match tk.get_ref().as_ref() {
            "min" => g.min = cx.num(&format!("`min` of {what}"), tv),
            "max" => g.max = cx.num(&format!("`max` of {what}"), tv),
            "max_share" => g.max_share = cx.num(&format!("`max_share` of {what}"), tv),
            "worlds" => g.worlds = cx.world_list(&format!("`worlds` of {what}"), tv),
            _ => cx.unknown_key(&what, tk, &["min", "max", "max_share", "worlds"]),
        }
    }
    if let Some(id) = id {
        g.node = id;
        sc.guardrails.push(g);
    }
}

fn parse_sweep(
    cx: &mut Ctx<'_>,
    sc: &mut Scenario,
    k: &Spanned<std::borrow::Cow<'_, str>>,
    v: &Spanned<DeValue<'_>>,
) {
    let id = cx.ident("sweep param", k);
    let what = format!("sweep `{}`", k.get_ref());
    let DeValue::Table(t) = v.get_ref() else {
        cx.wrong_type(&what, "a table `{ lo = .., hi = .., points = .. }`", v);
        return;
    };
    let (mut lo, mut hi, mut points) = (None, None, None);
    for (tk, tv) in entries(t) {
        match tk.get_ref().as_ref() {
            "lo" => lo = cx.num(&format!("`lo` of {what}"), tv),
            "hi" => hi = cx.num(&format!("`hi` of {what}"), tv),
            "points" => points = cx.int(&format!("`points` of {what}"), tv),
            _ => cx.unknown_key(&what, tk, &["lo", "hi", "points"]),
        }
    }
    let missing: Vec<&str> = ["lo", "hi", "points"]
        .into_iter()
        .filter(|key| !t.iter().any(|(tk, _)| tk.get_ref() == *key))
        .collect();
    if !missing.is_empty() {
        let list = missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", ");
        cx.err(
            Diagnostic::new(
                Code::MissingKey,
                sp(k),
                format!("{what} has no {list}"),
                format!("missing {list}"),
            )
            .with_help("write `{ lo = 1.0, hi = 2.0, points = 5 }` (points include both ends)"),
        );
        return;
    }
    if let Some(param) = id {
        sc.sweeps.push(SweepDecl {
            param,
            lo,
            hi,
            points,
            span: sp(v),
        });
    }
}

/// Builds a [`Src`] for the TOML string `decoded` whose token spans `span`.
pub(crate) fn make_src(source: &str, decoded: &str, span: Span) -> Src {
    let raw = source.get(span.start..span.end).unwrap_or("");
    let close = span.end.saturating_sub(quote_len(raw)).max(span.start);
    let map = map_string(raw, span.start)
        .filter(|(text, _)| text == decoded)
        .map(|(_, m)| m);
    Src {
        text: decoded.to_string(),
        span,
        map,
        close,
    }
}

fn quote_len(raw: &str) -> usize {
    if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        3
    } else {
        1
    }
}

/// Decodes the raw TOML string token `raw` (quotes included) that starts at
/// file offset `base`, returning the text and, per decoded byte, the source
/// range of the character it came from. `None` for anything unexpected; the
/// caller then compares the text with toml's own decoding and falls back to
/// whole-string spans on any mismatch.
fn map_string(raw: &str, base: usize) -> Option<(String, Vec<(usize, usize)>)> {
    let (q, basic) = if raw.starts_with("\"\"\"") {
        (3, true)
    } else if raw.starts_with("'''") {
        (3, false)
    } else if raw.starts_with('"') {
        (1, true)
    } else if raw.starts_with('\'') {
        (1, false)
    } else {
        return None;
    };
    if raw.len() < 2 * q {
        return None;
    }
    let body = raw.get(q..raw.len() - q)?;
    let off = base + q;
    let mut text = String::new();
    let mut map = Vec::new();
    let push = |text: &mut String, map: &mut Vec<(usize, usize)>, c: char, s: usize, e: usize| {
        text.push(c);
        for _ in 0..c.len_utf8() {
            map.push((s, e));
        }
    };
    let chars: Vec<(usize, char)> = body.char_indices().collect();
    let mut i = 0;
    // A newline right after the opening delimiter of a multi-line string is trimmed.
    if q == 3 {
        if body.starts_with("\r\n") {
            i = 2;
        } else if body.starts_with('\n') {
            i = 1;
        }
    }
    while i < chars.len() {
        let (pos, c) = chars[i];
        let s = off + pos;
        if !(basic && c == '\\') {
            push(&mut text, &mut map, c, s, s + c.len_utf8());
            i += 1;
            continue;
        }
        let (_, e) = *chars.get(i + 1)?;
        let simple = match e {
            'b' => Some('\u{8}'),
            't' => Some('\t'),
            'n' => Some('\n'),
            'f' => Some('\u{c}'),
            'r' => Some('\r'),
            'e' => Some('\u{1b}'),
            '"' => Some('"'),
            '\\' => Some('\\'),
            _ => None,
        };
        if let Some(d) = simple {
            push(&mut text, &mut map, d, s, s + 2);
            i += 2;
            continue;
        }
        let hex_len = match e {
            'x' => 2,
            'u' => 4,
            'U' => 8,
            _ => 0,
        };
        if hex_len > 0 {
            let hex: String = chars
                .get(i + 2..i + 2 + hex_len)?
                .iter()
                .map(|(_, c)| *c)
                .collect();
            let d = char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?;
            push(&mut text, &mut map, d, s, s + 2 + hex_len);
            i += 2 + hex_len;
            continue;
        }
        if q == 3 && (e == ' ' || e == '\t' || e == '\r' || e == '\n') {
            // Line-ending backslash: skip all whitespace and newlines.
            let mut j = i + 1;
            while j < chars.len() && matches!(chars[j].1, ' ' | '\t' | '\r' | '\n') {
                j += 1;
            }
            i = j;
            continue;
        }
        return None;
    }
    Some((text, map))
}
