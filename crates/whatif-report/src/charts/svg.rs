//! A tiny SVG writer: escaping, fixed-precision coordinates, text measurement
//! and the axes every chart shares.
//!
//! Coordinates are written with at most two decimals so the output is
//! deterministic and compact; every string that came from a user (node,
//! world, metric names) goes through [`esc`]. Ids are prefixed by the chart's
//! id so several SVGs can live in one HTML document.

use std::fmt::Write as _;

use super::{GRID, INK, MUTED, fmt_ticks, nice_ticks};

/// The font stack: system fonts only (no web fonts: the report is offline).
pub const FONT: &str =
    "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif";

/// Escape text for XML content and attribute values. Characters that XML 1.0
/// forbids (most C0 controls) are dropped rather than producing an
/// unparsable file.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// Make a string safe as an XML id fragment and a file name: ASCII
/// alphanumerics, `-` and `_` kept, everything else becomes `_`.
pub fn slug(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "_".to_string() } else { s }
}

/// Approximate rendered width of `s` at `size` px in a sans-serif font.
/// Deterministic on purpose: no font files are read.
pub fn text_width(s: &str, size: f64) -> f64 {
    s.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | ';' | '|' | '!' | '\'' => 0.28,
            'f' | 't' | 'r' | 'I' | '(' | ')' | '[' | ']' | ' ' => 0.36,
            'm' | 'w' | 'M' | 'W' => 0.85,
            c if c.is_ascii_uppercase() => 0.66,
            c if c.is_ascii_digit() => 0.56,
            _ => 0.54,
        })
        .sum::<f64>()
        * size
}

/// Format a coordinate with at most two decimals, no trailing zeros.
pub fn n(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let mut s = format!("{v:.2}");
    while s.ends_with('0') {
        s.pop();
    }
    if s.ends_with('.') {
        s.pop();
    }
    if s == "-0" { "0".to_string() } else { s }
}

/// An SVG document being written.
#[derive(Debug)]
pub struct Svg {
    buf: String,
    /// Width in px.
    pub width: f64,
    /// Height in px.
    pub height: f64,
}

impl Svg {
    /// Start a document with an accessible title.
    pub fn new(width: f64, height: f64, title: &str) -> Svg {
        let mut buf = String::new();
        let _ = write!(
            buf,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="{FONT}" font-size="12" role="img"><title>{t}</title><rect width="{w}" height="{h}" fill="#ffffff"/>"##,
            w = n(width),
            h = n(height),
            t = esc(title),
        );
        Svg { buf, width, height }
    }

    /// Append raw, already escaped SVG markup.
    pub fn raw(&mut self, s: &str) {
        self.buf.push_str(s);
    }

    /// A line segment. (Eight plain arguments read better at the many call
    /// sites than a builder would.)
    #[allow(clippy::too_many_arguments)]
    pub fn line(
        &mut self,
        x1: f64,
        y1: f64,
        x2: f64,
        y2: f64,
        stroke: &str,
        width: f64,
        extra: &str,
    ) {
        let _ = write!(
            self.buf,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{stroke}" stroke-width="{}"{extra}/>"#,
            n(x1),
            n(y1),
            n(x2),
            n(y2),
            n(width)
        );
    }

    /// A rectangle.
    pub fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, attrs: &str) {
        let _ = write!(
            self.buf,
            r#"<rect x="{}" y="{}" width="{}" height="{}" {attrs}/>"#,
            n(x),
            n(y),
            n(w.max(0.0)),
            n(h.max(0.0))
        );
    }

    /// A circle.
    pub fn circle(&mut self, cx: f64, cy: f64, r: f64, attrs: &str) {
        let _ = write!(
            self.buf,
            r#"<circle cx="{}" cy="{}" r="{}" {attrs}/>"#,
            n(cx),
            n(cy),
            n(r)
        );
    }

    /// A path with data `d` (built with [`n`]).
    pub fn path(&mut self, d: &str, attrs: &str) {
        let _ = write!(self.buf, r#"<path d="{d}" {attrs}/>"#);
    }

    /// Text; `content` is escaped here. `anchor` is `start`, `middle` or `end`.
    pub fn text(&mut self, x: f64, y: f64, anchor: &str, attrs: &str, content: &str) {
        let _ = write!(
            self.buf,
            r#"<text x="{}" y="{}" text-anchor="{anchor}" {attrs}>{}</text>"#,
            n(x),
            n(y),
            esc(content)
        );
    }

    /// Text with an SVG tooltip (`<title>`) on a group.
    pub fn titled_start(&mut self, tooltip: &str) {
        let _ = write!(self.buf, "<g><title>{}</title>", esc(tooltip));
    }

    /// Close a group opened by [`Svg::titled_start`].
    pub fn group_end(&mut self) {
        self.buf.push_str("</g>");
    }

    /// Finish the document.
    pub fn finish(mut self) -> String {
        self.buf.push_str("</svg>");
        self.buf
    }
}

/// A linear map from data to pixels.
#[derive(Debug, Clone, Copy)]
pub struct Linear {
    pub d0: f64,
    pub d1: f64,
    pub p0: f64,
    pub p1: f64,
}

impl Linear {
    /// Data value to pixel.
    pub fn map(&self, v: f64) -> f64 {
        if self.d1 == self.d0 {
            return (self.p0 + self.p1) / 2.0;
        }
        self.p0 + (v - self.d0) / (self.d1 - self.d0) * (self.p1 - self.p0)
    }
}

/// The plot rectangle inside a chart.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
}

impl Frame {
    pub fn width(&self) -> f64 {
        self.right - self.left
    }
    pub fn height(&self) -> f64 {
        self.bottom - self.top
    }
}

/// Draw a numeric x axis (ticks, grid lines, labels, axis title) for data in
/// `[lo, hi]`; returns the scale, widened to the outer ticks.
pub fn x_axis(svg: &mut Svg, frame: Frame, lo: f64, hi: f64, label: &str, grid: bool) -> Linear {
    let target = ((frame.width() / 90.0).round() as usize).clamp(3, 9);
    let (ticks, step) = nice_ticks(lo, hi, target);
    let scale = Linear {
        d0: ticks[0],
        d1: *ticks.last().unwrap_or(&ticks[0]),
        p0: frame.left,
        p1: frame.right,
    };
    for (&t, l) in ticks.iter().zip(fmt_ticks(&ticks, step)) {
        let x = scale.map(t);
        if grid {
            svg.line(x, frame.top, x, frame.bottom, GRID, 1.0, "");
        }
        svg.line(x, frame.bottom, x, frame.bottom + 4.0, MUTED, 1.0, "");
        svg.text(
            x,
            frame.bottom + 16.0,
            "middle",
            &format!(r#"fill="{MUTED}" font-size="11""#),
            &l,
        );
    }
    svg.line(
        frame.left,
        frame.bottom,
        frame.right,
        frame.bottom,
        MUTED,
        1.0,
        "",
    );
    if !label.is_empty() {
        svg.text(
            (frame.left + frame.right) / 2.0,
            frame.bottom + 34.0,
            "middle",
            &format!(r#"fill="{INK}" font-size="12""#),
            label,
        );
    }
    scale
}

/// Draw a numeric y axis with horizontal grid lines; returns the scale.
pub fn y_axis(svg: &mut Svg, frame: Frame, lo: f64, hi: f64, label: &str) -> Linear {
    let target = ((frame.height() / 50.0).round() as usize).clamp(3, 8);
    let (ticks, step) = nice_ticks(lo, hi, target);
    let scale = Linear {
        d0: ticks[0],
        d1: *ticks.last().unwrap_or(&ticks[0]),
        p0: frame.bottom,
        p1: frame.top,
    };
    for (&t, l) in ticks.iter().zip(fmt_ticks(&ticks, step)) {
        let y = scale.map(t);
        svg.line(frame.left, y, frame.right, y, GRID, 1.0, "");
        svg.text(
            frame.left - 6.0,
            y + 4.0,
            "end",
            &format!(r#"fill="{MUTED}" font-size="11""#),
            &l,
        );
    }
    if !label.is_empty() {
        y_title(svg, frame, label);
    }
    scale
}

/// A rotated y-axis title left of the frame.
pub fn y_title(svg: &mut Svg, frame: Frame, label: &str) {
    let x = frame.left - 48.0;
    let y = (frame.top + frame.bottom) / 2.0;
    svg.text(
        x,
        y,
        "middle",
        &format!(
            r#"fill="{INK}" font-size="12" transform="rotate(-90 {} {})""#,
            n(x),
            n(y)
        ),
        label,
    );
}

/// A horizontal legend of (label, colour, style) entries starting at (x, y);
/// style is `fill`, `line` or `dash`. Wraps to a new row at `max_x`.
pub fn legend(svg: &mut Svg, x: f64, y: f64, max_x: f64, entries: &[(String, &str, &str)]) -> f64 {
    let (mut cx, mut cy) = (x, y);
    for (label, colour, style) in entries {
        let w = 22.0 + text_width(label, 12.0) + 16.0;
        if cx + w > max_x && cx > x {
            cx = x;
            cy += 18.0;
        }
        match *style {
            "fill" => svg.rect(
                cx,
                cy - 9.0,
                14.0,
                10.0,
                &format!(
                    r#"fill="{colour}" fill-opacity="0.35" stroke="{colour}" stroke-width="1.5""#
                ),
            ),
            "dash" => svg.line(
                cx,
                cy - 4.0,
                cx + 16.0,
                cy - 4.0,
                colour,
                2.0,
                r#" stroke-dasharray="4 3""#,
            ),
            "circle" | "diamond" | "square" => marker(svg, style, cx + 8.0, cy - 4.0, 4.5, colour),
            _ => svg.line(cx, cy - 4.0, cx + 16.0, cy - 4.0, colour, 2.5, ""),
        }
        svg.text(cx + 22.0, cy, "start", &format!(r#"fill="{INK}""#), label);
        cx += w;
    }
    cy
}

/// A point marker: `circle`, `diamond` or `square`, filled, white edge.
pub fn marker(svg: &mut Svg, shape: &str, x: f64, y: f64, r: f64, colour: &str) {
    let attrs = format!(r##"fill="{colour}" stroke="#ffffff" stroke-width="1""##);
    match shape {
        "diamond" => {
            let r = r * 1.3;
            svg.path(
                &format!(
                    "M{} {} L{} {} L{} {} L{} {} Z",
                    n(x),
                    n(y - r),
                    n(x + r),
                    n(y),
                    n(x),
                    n(y + r),
                    n(x - r),
                    n(y)
                ),
                &attrs,
            )
        }
        "square" => svg.rect(x - r, y - r, 2.0 * r, 2.0 * r, &attrs),
        _ => svg.circle(x, y, r, &attrs),
    }
}

/// Chart title (bold) and an optional subtitle under it.
pub fn titles(svg: &mut Svg, x: f64, title: &str, subtitle: &str) {
    svg.text(
        x,
        20.0,
        "start",
        &format!(r#"fill="{INK}" font-size="14" font-weight="600""#),
        title,
    );
    if !subtitle.is_empty() {
        svg.text(
            x,
            37.0,
            "start",
            &format!(r#"fill="{MUTED}" font-size="11.5""#),
            subtitle,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_numbers() {
        assert_eq!(esc("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
        assert_eq!(n(1.0), "1");
        assert_eq!(n(1.256), "1.26");
        assert_eq!(n(-0.001), "0");
        assert_eq!(slug("a b/c"), "a_b_c");
    }
}
