//! Diagnostics: what the front end reports about a bad scenario.
//!
//! Every user error becomes one [`Diagnostic`] with a stable [`Code`], a
//! lowercase message without a final period, a primary labelled span,
//! secondary labelled spans (every edge of a cycle) and an optional help.
//! Rendering lives here too, so the CLI and the golden tests print the same
//! text: [`render_diagnostics`] (miette's graphical handler, no colour) and
//! [`diagnostics_json`] (machine-readable).

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode};

use crate::model::Span;

/// Stable diagnostic codes. The string form (`whatif::unknown_name`) is part
/// of the CLI's JSON output: never rename a code, only add new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Code {
    /// The file is not valid TOML.
    TomlSyntax,
    /// A top-level table the language does not know.
    UnknownTable,
    /// A key the enclosing table does not know.
    UnknownKey,
    /// A TOML value of the wrong type (a number where a string belongs, …).
    WrongType,
    /// A name that is not an identifier (`raise-limits`).
    InvalidName,
    /// A name reserved for a function, distribution or keyword.
    ReservedName,
    /// Two declarations with one name.
    DuplicateName,
    /// An expression that does not parse.
    ExprSyntax,
    /// A name that resolves to nothing.
    UnknownName,
    /// A node's mechanism reads the node itself.
    SelfReference,
    /// The baseline graph has a cycle.
    Cycle,
    /// A world's graph has a cycle that its edits create.
    WorldCycle,
    /// A world or check names an edit that does not exist.
    UnknownEdit,
    /// An edit targets something that is neither a node nor a param.
    UnknownEditTarget,
    /// A world combines two edits of the same node or param.
    ConflictingEdits,
    /// The same world listed twice.
    DuplicateWorld,
    /// A constant distribution parameter outside its domain.
    InvalidDistParam,
    /// A call with the wrong number of arguments.
    Arity,
    /// A boolean where a number belongs or the other way round.
    TypeMismatch,
    /// A call of a function that does not exist.
    UnknownFunction,
    /// A check names a metric that does not exist.
    UnknownMetric,
    /// A metric that is not one aggregate call, or whose level is invalid.
    InvalidMetric,
    /// `samples` of 0, above 2^53, or a negative seed.
    InvalidRunSize,
    /// A guardrail with inconsistent bounds or share.
    InvalidGuardrail,
    /// Two noise sites with one 32-bit hash.
    SiteCollision,
    /// A construct used where it is not allowed (a draw inside a metric, …).
    NotAllowed,
    /// A numeric literal that is not a finite f64.
    NumberOutOfRange,
    /// A required key is missing.
    MissingKey,
    /// A `[data]` mapping that cannot hold (a latent node with a column, two
    /// nodes on one column).
    DataMapping,
    /// A `[sweeps]` entry or `--sweep` whose range, point count or parameter
    /// cannot be swept.
    InvalidSweep,
    /// Units, periods, levels, `lag`, unit aggregates and path functions
    /// used in a way the structured model cannot give a meaning to.
    Structure,
    /// `[units] path`: the unit file is missing, empty or has a bad cell.
    UnitsFile,
}

impl Code {
    /// The stable string form.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::TomlSyntax => "whatif::toml_syntax",
            Code::UnknownTable => "whatif::unknown_table",
            Code::UnknownKey => "whatif::unknown_key",
            Code::WrongType => "whatif::wrong_type",
            Code::InvalidName => "whatif::invalid_name",
            Code::ReservedName => "whatif::reserved_name",
            Code::DuplicateName => "whatif::duplicate_name",
            Code::ExprSyntax => "whatif::expr_syntax",
            Code::UnknownName => "whatif::unknown_name",
            Code::SelfReference => "whatif::self_reference",
            Code::Cycle => "whatif::cycle",
            Code::WorldCycle => "whatif::world_cycle",
            Code::UnknownEdit => "whatif::unknown_edit",
            Code::UnknownEditTarget => "whatif::unknown_edit_target",
            Code::ConflictingEdits => "whatif::conflicting_edits",
            Code::DuplicateWorld => "whatif::duplicate_world",
            Code::InvalidDistParam => "whatif::invalid_dist_param",
            Code::Arity => "whatif::arity",
            Code::TypeMismatch => "whatif::type_mismatch",
            Code::UnknownFunction => "whatif::unknown_function",
            Code::UnknownMetric => "whatif::unknown_metric",
            Code::InvalidMetric => "whatif::invalid_metric",
            Code::InvalidRunSize => "whatif::invalid_run_size",
            Code::InvalidGuardrail => "whatif::invalid_guardrail",
            Code::SiteCollision => "whatif::site_collision",
            Code::NotAllowed => "whatif::not_allowed",
            Code::NumberOutOfRange => "whatif::number_out_of_range",
            Code::MissingKey => "whatif::missing_key",
            Code::DataMapping => "whatif::data_mapping",
            Code::InvalidSweep => "whatif::invalid_sweep",
            Code::Structure => "whatif::structure",
            Code::UnitsFile => "whatif::units_file",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One user error in a scenario file.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Diagnostic {
    /// Stable code.
    pub code: Code,
    /// Lowercase, no final period, names the item and the value.
    pub message: String,
    /// Where the error is.
    pub span: Span,
    /// Label under the primary span.
    pub label: String,
    /// Further labelled spans (e.g. every edge of a cycle).
    pub secondary: Vec<(Span, String)>,
    /// What to do about it (did you mean `income`?).
    pub help: Option<String>,
    /// The source, attached for miette rendering by [`Diagnostic::with_source`].
    source_code: Option<NamedSource<String>>,
}

impl PartialEq for Diagnostic {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
            && self.message == other.message
            && self.span == other.span
            && self.label == other.label
            && self.secondary == other.secondary
            && self.help == other.help
    }
}

impl Diagnostic {
    /// A diagnostic with a primary label and nothing else.
    pub fn new(
        code: Code,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            span,
            label: label.into(),
            secondary: Vec::new(),
            help: None,
            source_code: None,
        }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a help line when there is one.
    pub fn with_opt_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    /// Adds a secondary label.
    pub fn with_secondary(mut self, span: Span, label: impl Into<String>) -> Self {
        self.secondary.push((span, label.into()));
        self
    }

    /// Attaches the scenario source, so miette can render the diagnostic.
    pub fn with_source(mut self, file_name: &str, source: &str) -> Self {
        self.source_code = Some(NamedSource::new(file_name, source.to_string()));
        self
    }

    /// Severity as written in JSON; every front-end diagnostic is an error.
    pub fn severity_str(&self) -> &'static str {
        "error"
    }
}

fn clamp_span(span: Span, len: usize) -> (usize, usize) {
    let start = span.start.min(len);
    let end = span.end.clamp(start, len);
    (start, end - start)
}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code.as_str()))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(miette::Severity::Error)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source_code.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        // Spans are clamped to the source: a label past the end would make
        // miette drop the whole snippet.
        let len = self
            .source_code
            .as_ref()
            .map(|s| s.inner().len())
            .unwrap_or(usize::MAX);
        let mut labels = Vec::with_capacity(1 + self.secondary.len());
        labels.push(LabeledSpan::new_primary_with_span(
            Some(self.label.clone()),
            clamp_span(self.span, len),
        ));
        for (span, label) in &self.secondary {
            labels.push(LabeledSpan::new_with_span(
                Some(label.clone()),
                clamp_span(*span, len),
            ));
        }
        Some(Box::new(labels.into_iter()))
    }
}

/// Renders diagnostics as plain text (no colour, unicode box drawing, fixed
/// width) with `file:line:col`, the source line and an underline per label.
/// Deterministic, so golden tests can compare it byte for byte.
pub fn render_diagnostics(diags: &[Diagnostic], file_name: &str, source: &str) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_links(false)
        .with_width(100);
    let mut out = String::new();
    for d in diags {
        let d = d.clone().with_source(file_name, source);
        if handler.render_report(&mut out, &d).is_err() {
            // Rendering into a String cannot fail in practice; keep the
            // message rather than lose the diagnostic.
            out.push_str(&format!("error[{}]: {}\n", d.code, d.message));
        }
        out.push('\n');
    }
    out
}

/// 1-based line and column (in chars) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

/// Machine-readable diagnostics: a JSON array of objects with `code`,
/// `message`, `severity`, `file`, `line`, `column` (1-based), `span`
/// (`start`/`end` byte offsets), `label`, `labels` (secondary) and `help`.
pub fn diagnostics_json(diags: &[Diagnostic], file_name: &str, source: &str) -> serde_json::Value {
    let items = diags
        .iter()
        .map(|d| {
            let (line, column) = line_col(source, d.span.start);
            let secondary: Vec<serde_json::Value> = d
                .secondary
                .iter()
                .map(|(s, l)| {
                    let (line, column) = line_col(source, s.start);
                    serde_json::json!({
                        "label": l, "line": line, "column": column,
                        "span": { "start": s.start, "end": s.end },
                    })
                })
                .collect();
            serde_json::json!({
                "code": d.code.as_str(),
                "message": d.message,
                "severity": d.severity_str(),
                "file": file_name,
                "line": line,
                "column": column,
                "span": { "start": d.span.start, "end": d.span.end },
                "label": d.label,
                "labels": secondary,
                "help": d.help,
            })
        })
        .collect();
    serde_json::Value::Array(items)
}

/// The closest candidate by Jaro-Winkler similarity, if any is close enough
/// to be a plausible typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let mut best: Option<(f64, &str)> = None;
    for c in candidates {
        let score = strsim::jaro_winkler(name, c);
        // Ties go to the first candidate, so the hint is deterministic.
        if score >= 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, c));
        }
    }
    best.map(|(_, c)| format!("did you mean `{c}`?"))
}
