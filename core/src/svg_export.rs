//! SVG export: one `<g>` per object and component, ids and `inkscape:label`s, flags kept.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

use kurbo::{Affine, Point};

use crate::atomic::write_atomic;
use crate::document::Document;
use crate::error::Error;
use crate::ids::NodeMeta;
use crate::object::ObjectChild;
use crate::paint::{GradientStop, Paint, SpreadMethod};
use crate::shape::{FillRule, LineCap, LineJoin, PrimitiveKind, Shape};
use crate::svg_import::BACKGROUND_ID;

/// Options of SVG export.
#[derive(Clone, Debug, PartialEq)]
pub struct SvgOptions {
    /// Decimal places of coordinates and widths (trailing zeros are dropped). The default, 4,
    /// keeps a round trip within 1e-4 document units.
    pub precision: usize,
    /// Pretty-print with newlines and indentation.
    pub indent: bool,
}

impl Default for SvgOptions {
    fn default() -> Self {
        Self {
            precision: 4,
            indent: true,
        }
    }
}

/// Writes `doc` as SVG to `path` (atomically).
pub fn export_svg(doc: &Document, path: &Path, options: &SvgOptions) -> Result<(), Error> {
    write_atomic(path, to_svg_string(doc, options).as_bytes())
}

/// Serialises `doc` as an SVG document.
pub fn to_svg_string(doc: &Document, options: &SvgOptions) -> String {
    let mut w = Writer {
        out: String::new(),
        defs: String::new(),
        prec: options.precision,
        indent: options.indent,
        used_ids: HashSet::from([BACKGROUND_ID.to_string()]),
        paint_count: 0,
    };
    let mut body = String::new();
    std::mem::swap(&mut w.out, &mut body);
    if doc.background.a > 0.0 {
        let c = doc.background;
        let line = format!(
            "<rect id=\"{BACKGROUND_ID}\" inkscape:label=\"background\" width=\"{}\" height=\"{}\" fill=\"{}\"{}/>",
            w.num(doc.width),
            w.num(doc.height),
            c.to_hex(),
            opacity_attr("fill-opacity", c.a)
        );
        w.line(1, &line);
    }
    for object in &doc.objects {
        let open = w.group_open(&object.meta, "object", true);
        w.line(1, &open);
        for child in &object.children {
            match child {
                ObjectChild::Component(comp) => {
                    let open = w.group_open(&comp.meta, "component", false);
                    w.line(2, &open);
                    for s in &comp.shapes {
                        let el = w.shape(s);
                        w.line(3, &el);
                    }
                    w.line(2, "</g>");
                }
                ObjectChild::Shape(s) => {
                    let el = w.shape(s);
                    w.line(2, &el);
                }
            }
        }
        w.line(1, "</g>");
    }
    std::mem::swap(&mut w.out, &mut body);
    let nl = if w.indent { "\n" } else { "" };
    let (wd, ht) = (w.num(doc.width), w.num(doc.height));
    let mut s = String::new();
    let _ = write!(
        s,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>{nl}<svg xmlns=\"http://www.w3.org/2000/svg\" \
         xmlns:inkscape=\"http://www.inkscape.org/namespaces/inkscape\" \
         xmlns:sodipodi=\"http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd\" \
         width=\"{wd}\" height=\"{ht}\" viewBox=\"0 0 {wd} {ht}\">{nl}"
    );
    if !w.defs.is_empty() {
        let _ = write!(s, "{}<defs>{nl}{}{}</defs>{nl}", w.pad(1), w.defs, w.pad(1));
    }
    s.push_str(&body);
    s.push_str("</svg>");
    s.push_str(nl);
    s
}

struct Writer {
    out: String,
    defs: String,
    prec: usize,
    indent: bool,
    used_ids: HashSet<String>,
    paint_count: usize,
}

/// Escapes text for an attribute value in double quotes.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 => {} // not allowed in XML 1.0
            c => out.push(c),
        }
    }
    out
}

/// True for a name that is safe as an XML id (ASCII letters, digits, `-`, `_`, `.`).
fn is_plain_id(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn opacity_attr(name: &str, a: f32) -> String {
    if a >= 1.0 {
        String::new()
    } else {
        // Opacity keeps 6 decimals: f32 alphas survive the round trip to 1e-6.
        format!(" {name}=\"{}\"", fmt_num(f64::from(a.max(0.0)), 6))
    }
}

/// Formats `v` with at most `prec` decimals, without trailing zeros or `-0`.
pub fn fmt_num(v: f64, prec: usize) -> String {
    let s = format!("{v:.prec$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" { "0".into() } else { s.into() }
}

impl Writer {
    fn num(&self, v: f64) -> String {
        fmt_num(v, self.prec)
    }

    fn pad(&self, depth: usize) -> String {
        if self.indent {
            "  ".repeat(depth)
        } else {
            String::new()
        }
    }

    fn line(&mut self, depth: usize, text: &str) {
        let pad = self.pad(depth);
        self.out.push_str(&pad);
        self.out.push_str(text);
        if self.indent {
            self.out.push('\n');
        }
    }

    fn unique_id(&mut self, meta: &NodeMeta, kind: &str) -> String {
        let free = |s: &String| is_plain_id(s) && !self.used_ids.contains(s);
        let id = if free(&meta.svg_id) {
            meta.svg_id.clone()
        } else if free(&meta.name) {
            meta.name.clone()
        } else {
            let mut id = format!("{kind}-{}", meta.id.0);
            while self.used_ids.contains(&id) {
                id.push('_');
            }
            id
        };
        self.used_ids.insert(id.clone());
        id
    }

    fn meta_attrs(&mut self, meta: &NodeMeta, kind: &str) -> String {
        let id = self.unique_id(meta, kind);
        let mut s = format!(
            "id=\"{}\" inkscape:label=\"{}\"",
            escape(&id),
            escape(&meta.name)
        );
        if meta.locked {
            s.push_str(" sodipodi:insensitive=\"true\" data-vecdream-locked=\"true\"");
        }
        if meta.hidden {
            s.push_str(" display=\"none\"");
        }
        s
    }

    fn group_open(&mut self, meta: &NodeMeta, kind: &str, layer: bool) -> String {
        let attrs = self.meta_attrs(meta, kind);
        let mode = if layer {
            " inkscape:groupmode=\"layer\""
        } else {
            ""
        };
        format!("<g {attrs}{mode}>")
    }

    fn point(&self, p: Point) -> String {
        format!("{} {}", self.num(p.x), self.num(p.y))
    }

    fn path_data(&self, s: &Shape) -> String {
        let mut d = String::new();
        for sp in &s.subpaths {
            let pts = &sp.points;
            let Some(&p0) = pts.first() else { continue };
            if !d.is_empty() {
                d.push(' ');
            }
            let _ = write!(d, "M{}", self.point(p0));
            if s.kind == PrimitiveKind::Polygon {
                for &p in &pts[1..] {
                    let _ = write!(d, " L{}", self.point(p));
                }
            } else {
                // Closed: 3n points, segment i ends at point 3i+3 (wrapping to p0).
                // Open: 3n+1 points.
                let n = if sp.closed {
                    pts.len() / 3
                } else {
                    (pts.len() - 1) / 3
                };
                for i in 0..n {
                    let end = pts.get(3 * i + 3).copied().unwrap_or(p0);
                    let _ = write!(
                        d,
                        " C{} {} {}",
                        self.point(pts[3 * i + 1]),
                        self.point(pts[3 * i + 2]),
                        self.point(end)
                    );
                }
            }
            if sp.closed {
                d.push_str(" Z");
            }
        }
        d
    }

    fn paint_attr(&mut self, name: &str, paint: &Paint) -> String {
        let stops_xml = |w: &Writer, stops: &[GradientStop]| {
            let mut s = String::new();
            for st in stops {
                let _ = write!(
                    s,
                    "{}<stop offset=\"{}\" stop-color=\"{}\"{}/>{}",
                    w.pad(3),
                    fmt_num(f64::from(st.offset), 6),
                    st.color.to_hex(),
                    opacity_attr("stop-opacity", st.color.a),
                    if w.indent { "\n" } else { "" }
                );
            }
            s
        };
        let spread = |s: SpreadMethod| match s {
            SpreadMethod::Pad => "",
            SpreadMethod::Reflect => " spreadMethod=\"reflect\"",
            SpreadMethod::Repeat => " spreadMethod=\"repeat\"",
        };
        let nl = if self.indent { "\n" } else { "" };
        match paint {
            Paint::Solid(c) => format!(
                " {name}=\"{}\"{}",
                c.to_hex(),
                opacity_attr(&format!("{name}-opacity"), c.a)
            ),
            Paint::Linear(g) => {
                self.paint_count += 1;
                let id = format!("vd-paint-{}", self.paint_count);
                let def = format!(
                    "{}<linearGradient id=\"{id}\" gradientUnits=\"userSpaceOnUse\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"{}{}>{nl}{}{}</linearGradient>{nl}",
                    self.pad(2),
                    self.num(g.start.x),
                    self.num(g.start.y),
                    self.num(g.end.x),
                    self.num(g.end.y),
                    self.transform_attr(g.transform),
                    spread(g.spread),
                    stops_xml(self, &g.stops),
                    self.pad(2),
                );
                self.defs.push_str(&def);
                format!(" {name}=\"url(#{id})\"")
            }
            Paint::Radial(g) => {
                self.paint_count += 1;
                let id = format!("vd-paint-{}", self.paint_count);
                let def = format!(
                    "{}<radialGradient id=\"{id}\" gradientUnits=\"userSpaceOnUse\" cx=\"{}\" cy=\"{}\" r=\"{}\" fx=\"{}\" fy=\"{}\" fr=\"{}\"{}{}>{nl}{}{}</radialGradient>{nl}",
                    self.pad(2),
                    self.num(g.center.x),
                    self.num(g.center.y),
                    self.num(g.radius),
                    self.num(g.focal.x),
                    self.num(g.focal.y),
                    self.num(g.focal_radius),
                    self.transform_attr(g.transform),
                    spread(g.spread),
                    stops_xml(self, &g.stops),
                    self.pad(2),
                );
                self.defs.push_str(&def);
                format!(" {name}=\"url(#{id})\"")
            }
        }
    }

    fn transform_attr(&self, t: Affine) -> String {
        if t == Affine::IDENTITY {
            return String::new();
        }
        // Matrix entries keep 6 more decimals than coordinates: they multiply coordinates.
        let c = t.as_coeffs();
        let p = self.prec + 6;
        format!(
            " gradientTransform=\"matrix({} {} {} {} {} {})\"",
            fmt_num(c[0], p),
            fmt_num(c[1], p),
            fmt_num(c[2], p),
            fmt_num(c[3], p),
            fmt_num(c[4], self.prec),
            fmt_num(c[5], self.prec)
        )
    }

    fn shape(&mut self, s: &Shape) -> String {
        let mut el = format!("<path {}", self.meta_attrs(&s.meta, "shape"));
        let inferred = if s.fill.is_some() {
            PrimitiveKind::ClosedPath
        } else {
            PrimitiveKind::OpenPath
        };
        if s.kind != inferred {
            let k = match s.kind {
                PrimitiveKind::Polygon => "polygon",
                PrimitiveKind::ClosedPath => "closed",
                PrimitiveKind::OpenPath => "open",
            };
            let _ = write!(el, " data-vecdream-kind=\"{k}\"");
        }
        let _ = write!(el, " d=\"{}\"", self.path_data(s));
        match &s.fill {
            Some(p) => {
                let a = self.paint_attr("fill", p);
                el.push_str(&a);
                if s.fill_rule == FillRule::EvenOdd {
                    el.push_str(" fill-rule=\"evenodd\"");
                }
            }
            None => el.push_str(" fill=\"none\""),
        }
        if let Some(st) = &s.stroke {
            let a = self.paint_attr("stroke", &st.paint);
            el.push_str(&a);
            let _ = write!(el, " stroke-width=\"{}\"", self.num(st.width));
            match st.cap {
                LineCap::Butt => {}
                LineCap::Round => el.push_str(" stroke-linecap=\"round\""),
                LineCap::Square => el.push_str(" stroke-linecap=\"square\""),
            }
            match st.join {
                LineJoin::Miter => {}
                LineJoin::Round => el.push_str(" stroke-linejoin=\"round\""),
                LineJoin::Bevel => el.push_str(" stroke-linejoin=\"bevel\""),
            }
            if st.miter_limit != 4.0 {
                let _ = write!(el, " stroke-miterlimit=\"{}\"", self.num(st.miter_limit));
            }
            if !st.dash_array.is_empty() {
                let dashes: Vec<String> = st.dash_array.iter().map(|d| self.num(*d)).collect();
                let _ = write!(el, " stroke-dasharray=\"{}\"", dashes.join(" "));
                if st.dash_offset != 0.0 {
                    let _ = write!(el, " stroke-dashoffset=\"{}\"", self.num(st.dash_offset));
                }
            }
        }
        el.push_str("/>");
        el
    }
}

impl Document {
    /// Serialises the document as SVG (see [`to_svg_string`]).
    pub fn to_svg_string(&self, options: &SvgOptions) -> String {
        to_svg_string(self, options)
    }
}
