//! SVG import through usvg: groups → objects/components, transforms baked, all segments cubic.
//!
//! Mapping: a top-level `<g>` becomes an [`Object`], a `<g>` inside it a [`Component`];
//! deeper groups are flattened into their component (their opacity folded into the
//! shapes). Consecutive top-level shapes outside any group form one anonymous object.
//! Names come from `inkscape:label`, else `id`. Lines and quadratics are raised to cubics
//! exactly; usvg has already turned arcs, rectangles, circles and ellipses into cubics (its
//! arc conversion is within 0.05 px, see the tests). Group and paint opacity are folded into
//! RGBA (exact for a group with a single shape, an approximation where shapes of one group
//! overlap). `display="none"` on an element with an id becomes `hidden`,
//! `sodipodi:insensitive="true"` or `data-vecdream-locked="true"` becomes `locked`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use kurbo::{Affine, Point};
use usvg::roxmltree;

use crate::color::Rgba;
use crate::component::Component;
use crate::document::Document;
use crate::error::Error;
use crate::ids::NodeMeta;
use crate::object::{Object, ObjectChild};
use crate::paint::{GradientStop, LinearGradient, Paint, RadialGradient, SpreadMethod};
use crate::shape::{FillRule, LineCap, LineJoin, PrimitiveKind, Shape, Stroke, Subpath};

/// Largest SVG file (after gzip decompression) that import accepts, in bytes.
pub const MAX_SVG_BYTES: u64 = 64 << 20;

/// Id of the full-canvas rectangle that carries the document background in our exports.
pub const BACKGROUND_ID: &str = "vecdream-background";

const INKSCAPE_NS: &str = "http://www.inkscape.org/namespaces/inkscape";
const SODIPODI_NS: &str = "http://sodipodi.sourceforge.net/DTD/sodipodi-0.dtd";

/// A document read from SVG, with what could not be represented.
#[derive(Clone, Debug)]
pub struct Import {
    /// The document.
    pub document: Document,
    /// Human-readable notes about content that was dropped or approximated.
    pub warnings: Vec<String>,
}

/// Reads an SVG (or gzip-compressed SVGZ) file.
pub fn import_svg(path: &Path) -> Result<Import, Error> {
    let meta = std::fs::metadata(path).map_err(|e| Error::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if meta.len() > MAX_SVG_BYTES {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            limit: MAX_SVG_BYTES,
        });
    }
    let bytes = std::fs::read(path).map_err(|e| Error::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Document::from_svg_bytes(&bytes, path)
}

impl Document {
    /// Reads SVG (or SVGZ) bytes; `origin` names the source in error messages.
    pub fn from_svg_bytes(bytes: &[u8], origin: impl AsRef<Path>) -> Result<Import, Error> {
        let path = origin.as_ref().to_path_buf();
        if bytes.len() as u64 > MAX_SVG_BYTES {
            return Err(Error::TooLarge {
                path,
                size: bytes.len() as u64,
                limit: MAX_SVG_BYTES,
            });
        }
        let decompressed;
        let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
            decompressed = decompress_bounded(bytes).map_err(|e| Error::NotSvg {
                path: path.clone(),
                reason: format!("gzip data cannot be decompressed: {e}"),
            })?;
            if decompressed.len() as u64 > MAX_SVG_BYTES {
                return Err(Error::TooLarge {
                    path,
                    size: decompressed.len() as u64,
                    limit: MAX_SVG_BYTES,
                });
            }
            &decompressed[..]
        } else {
            bytes
        };
        let text = std::str::from_utf8(bytes).map_err(|e| Error::NotSvg {
            path: path.clone(),
            reason: format!("not UTF-8 text ({e})"),
        })?;
        import_text(text, &path)
    }

    /// Reads SVG text; `origin` names the source in error messages.
    pub fn from_svg_str(text: &str, origin: impl AsRef<Path>) -> Result<Import, Error> {
        Document::from_svg_bytes(text.as_bytes(), origin)
    }
}

/// Decompresses gzip data, reading at most one byte more than [`MAX_SVG_BYTES`] (a gzip bomb
/// stops there; the caller refuses anything over the limit).
fn decompress_bounded(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_SVG_BYTES + 1)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// Metadata usvg does not keep, read from the XML by element id.
#[derive(Default)]
struct XmlMeta {
    labels: HashMap<String, String>,
    locked: HashMap<String, bool>,
    hidden: HashMap<String, bool>,
    kinds: HashMap<String, PrimitiveKind>,
    text_elements: usize,
    image_elements: usize,
}

fn parse_xml<'a>(text: &'a str, path: &Path) -> Result<roxmltree::Document<'a>, Error> {
    let opt = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(text, opt).map_err(|e| Error::NotSvg {
        path: path.to_path_buf(),
        reason: format!("broken XML: {e}"),
    })
}

/// Blanks out `display="none"` on elements with an id (same length, so positions stay
/// valid) so that usvg keeps them; returns the edited text and the ids made visible.
fn unhide(xml: &roxmltree::Document<'_>, text: &str) -> Option<(String, Vec<String>)> {
    let mut ranges = Vec::new();
    let mut ids = Vec::new();
    for node in xml.descendants().filter(|n| n.is_element()) {
        let Some(id) = node.attribute("id") else {
            continue;
        };
        for attr in node.attributes() {
            if attr.namespace().is_none()
                && attr.name() == "display"
                && attr.value().trim() == "none"
            {
                ranges.push(attr.range());
                ids.push(id.to_string());
            }
        }
    }
    if ranges.is_empty() {
        return None;
    }
    let mut bytes = text.as_bytes().to_vec();
    for r in ranges {
        if let Some(slice) = bytes.get_mut(r) {
            slice.fill(b' ');
        }
    }
    // Only ASCII bytes inside attribute ranges were replaced by ASCII spaces.
    String::from_utf8(bytes).ok().map(|s| (s, ids))
}

fn read_meta(xml: &roxmltree::Document<'_>) -> XmlMeta {
    let mut meta = XmlMeta::default();
    for node in xml.descendants().filter(|n| n.is_element()) {
        match node.tag_name().name() {
            "text" => meta.text_elements += 1,
            "image" => meta.image_elements += 1,
            _ => {}
        }
        let Some(id) = node.attribute("id") else {
            continue;
        };
        if let Some(label) = node.attribute((INKSCAPE_NS, "label")) {
            meta.labels.insert(id.to_string(), label.to_string());
        }
        let locked = node.attribute((SODIPODI_NS, "insensitive")) == Some("true")
            || node.attribute("data-vecdream-locked") == Some("true");
        if locked {
            meta.locked.insert(id.to_string(), true);
        }
        if node.attribute("data-vecdream-kind") == Some("polygon") {
            meta.kinds.insert(id.to_string(), PrimitiveKind::Polygon);
        } else if node.attribute("data-vecdream-kind") == Some("open") {
            meta.kinds.insert(id.to_string(), PrimitiveKind::OpenPath);
        } else if node.attribute("data-vecdream-kind") == Some("closed") {
            meta.kinds.insert(id.to_string(), PrimitiveKind::ClosedPath);
        }
    }
    meta
}

/// Attributes that hold numbers; usvg would silently drop a NaN/infinite value there.
const NUMERIC_ATTRS: &[&str] = &[
    "d",
    "points",
    "x",
    "y",
    "x1",
    "y1",
    "x2",
    "y2",
    "cx",
    "cy",
    "r",
    "rx",
    "ry",
    "fx",
    "fy",
    "fr",
    "width",
    "height",
    "viewBox",
    "transform",
    "gradientTransform",
    "stroke-width",
    "offset",
    "opacity",
    "fill-opacity",
    "stroke-opacity",
];

/// Largest magnitude accepted in numeric attributes. Beyond it usvg's arc flattening
/// (huge radii) can allocate without bound; no real drawing needs such coordinates.
pub const MAX_ABS_NUMBER: f64 = 1e7;

/// Largest absolute value among the decimal numbers in `s` (a loose scan: digits, an
/// optional fraction and exponent).
fn largest_number(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut best: Option<f64> = None;
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() || (b[i] == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i < b.len() && b[i] == b'.' {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < b.len() && b[i] == b'e' {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'-' || b[j] == b'+') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            if let Ok(v) = s[start..i].parse::<f64>() {
                best = Some(best.map_or(v, |m: f64| m.max(v)));
            }
        } else {
            i += 1;
        }
    }
    best
}

/// Rejects NaN, infinite and absurdly large numbers spelled out in numeric attributes.
fn check_numbers(xml: &roxmltree::Document<'_>, path: &Path) -> Result<(), Error> {
    for node in xml.descendants().filter(|n| n.is_element()) {
        for attr in node.attributes() {
            if attr.namespace().is_some() || !NUMERIC_ATTRS.contains(&attr.name()) {
                continue;
            }
            let v = attr.value().to_ascii_lowercase();
            if let Some(big) = largest_number(&v).filter(|b| *b > MAX_ABS_NUMBER) {
                let pos = xml.text_pos_at(node.range().start);
                return Err(Error::NotFinite {
                    path: path.to_path_buf(),
                    reason: format!(
                        "<{}> at line {}: attribute {} holds the number {big:e}, outside the supported range ±{MAX_ABS_NUMBER:e}",
                        node.tag_name().name(),
                        pos.row,
                        attr.name(),
                    ),
                });
            }
            if v.contains("nan") || v.contains("inf") {
                let pos = xml.text_pos_at(node.range().start);
                return Err(Error::NotFinite {
                    path: path.to_path_buf(),
                    reason: format!(
                        "<{}> at line {}: attribute {}=\"{}\" contains a NaN or infinite number",
                        node.tag_name().name(),
                        pos.row,
                        attr.name(),
                        attr.value()
                    ),
                });
            }
        }
    }
    Ok(())
}

fn fontdb() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_system_fonts();
        Arc::new(db)
    })
    .clone()
}

/// usvg options shared by import and rendering (system fonts loaded once), for an SVG read from
/// `origin`: external `<image href>` files are read only from inside the SVG's own folder
/// ([`confined_resources_dir`]); without a real file as origin, no external file is read.
pub fn usvg_options(origin: &Path) -> usvg::Options<'static> {
    let dir = confined_resources_dir(origin);
    usvg::Options {
        fontdb: fontdb(),
        resources_dir: dir.clone(),
        image_href_resolver: usvg::ImageHrefResolver {
            resolve_data: usvg::ImageHrefResolver::default_data_resolver(),
            resolve_string: confined_string_resolver(dir),
        },
        ..Default::default()
    }
}

/// The folder external files of an SVG read from `origin` may come from: the canonical folder of
/// the file (`None` when `origin` is not an existing file, e.g. `<document>` or SVG text).
pub fn confined_resources_dir(origin: &Path) -> Option<PathBuf> {
    let file = std::fs::canonicalize(origin).ok()?;
    if !file.is_file() {
        return None;
    }
    file.parent().map(Path::to_path_buf)
}

/// Whether `href` names a file inside `dir` (canonical): a relative path without `..`, not a URL,
/// whose real path (symbolic links resolved) is still inside `dir`. Returns that real path.
pub fn confined_href(dir: &Path, href: &str) -> Option<PathBuf> {
    use std::path::Component;
    let rel = Path::new(href);
    if href.contains(':')
        || rel.is_absolute()
        || !rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return None;
    }
    let real = std::fs::canonicalize(dir.join(rel)).ok()?;
    (real.starts_with(dir) && real.is_file()).then_some(real)
}

fn confined_string_resolver(dir: Option<PathBuf>) -> usvg::ImageHrefStringResolverFn<'static> {
    let default = usvg::ImageHrefResolver::default_string_resolver();
    Box::new(move |href: &str, opts: &usvg::Options| {
        let real = confined_href(dir.as_deref()?, href)?;
        default(real.to_str()?, opts)
    })
}

fn parse_numbers(s: &str) -> Vec<f64> {
    s.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<f64>().unwrap_or(f64::NAN))
        .collect()
}

/// The transform usvg applies from view-box units to image-size units
/// (`viewBox` + `preserveAspectRatio`), as in SVG 1.1 §7.8.
fn viewbox_transform(vb: [f64; 4], size: (f64, f64), aspect: &str) -> Affine {
    let [vx, vy, vw, vh] = vb;
    let (mut sx, mut sy) = (size.0 / vw, size.1 / vh);
    let mut tokens = aspect.split_whitespace();
    let mut align = tokens.next().unwrap_or("xMidYMid");
    if align == "defer" {
        align = tokens.next().unwrap_or("xMidYMid");
    }
    let slice = tokens.next() == Some("slice");
    if align != "none" {
        let s = if slice { sx.max(sy) } else { sx.min(sy) };
        sx = s;
        sy = s;
    }
    let (w, h) = (vw * sx, vh * sy);
    let (mut tx, mut ty) = (-vx * sx, -vy * sy);
    if align.contains("xMid") {
        tx += (size.0 - w) / 2.0;
    } else if align.contains("xMax") {
        tx += size.0 - w;
    }
    if align.contains("YMid") {
        ty += (size.1 - h) / 2.0;
    } else if align.contains("YMax") {
        ty += size.1 - h;
    }
    Affine::new([sx, 0.0, 0.0, sy, tx, ty])
}

fn to_affine(t: usvg::Transform) -> Affine {
    Affine::new([
        f64::from(t.sx),
        f64::from(t.ky),
        f64::from(t.kx),
        f64::from(t.sy),
        f64::from(t.tx),
        f64::from(t.ty),
    ])
}

fn import_text(text: &str, path: &Path) -> Result<Import, Error> {
    import_text_with(text, path, &usvg_options(path))
}

fn import_text_with(text: &str, path: &Path, options: &usvg::Options) -> Result<Import, Error> {
    let xml = parse_xml(text, path)?;
    let root = xml.root_element();
    if root.tag_name().name() != "svg" {
        return Err(Error::NotSvg {
            path: path.to_path_buf(),
            reason: format!(
                "the root element is <{}>, expected <svg>",
                root.tag_name().name()
            ),
        });
    }
    check_numbers(&xml, path)?;
    let meta = read_meta(&xml);
    let unhidden = unhide(&xml, text);
    let edited_xml;
    let (xml_for_usvg, hidden_ids) = match &unhidden {
        Some((edited, ids)) => {
            edited_xml = parse_xml(edited, path)?;
            (&edited_xml, ids.clone())
        }
        None => (&xml, Vec::new()),
    };
    let mut meta = meta;
    for id in hidden_ids {
        meta.hidden.insert(id, true);
    }

    let tree = usvg::Tree::from_xmltree(xml_for_usvg, options).map_err(|e| match e {
        usvg::Error::InvalidSize => Error::InvalidSize {
            path: path.to_path_buf(),
        },
        usvg::Error::NotAnUtf8Str => Error::NotSvg {
            path: path.to_path_buf(),
            reason: "not UTF-8 text".into(),
        },
        other => Error::NotSvg {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })?;

    let size = (
        f64::from(tree.size().width()),
        f64::from(tree.size().height()),
    );
    let vb = match root.attribute("viewBox").map(parse_numbers) {
        Some(v) if v.len() == 4 => [v[0], v[1], v[2], v[3]],
        _ => [0.0, 0.0, size.0, size.1],
    };
    if !(vb.iter().all(|v| v.is_finite()) && vb[2] > 0.0 && vb[3] > 0.0)
        || !(size.0 > 0.0 && size.1 > 0.0 && size.0.is_finite() && size.1.is_finite())
    {
        return Err(Error::InvalidSize {
            path: path.to_path_buf(),
        });
    }
    let vb_ts = viewbox_transform(
        vb,
        size,
        root.attribute("preserveAspectRatio").unwrap_or(""),
    );
    // usvg space (image size units) → document units (view box units, origin subtracted).
    let doc_from_usvg = Affine::translate((-vb[0], -vb[1])) * vb_ts.inverse();
    let near_identity = vb_ts
        .as_coeffs()
        .iter()
        .zip(Affine::IDENTITY.as_coeffs())
        .all(|(a, b)| (a - b).abs() < 1e-6);
    let wrapped = !near_identity
        || root.attribute("transform").is_some()
        || root.attribute("background-color").is_some();

    let mut b = Builder {
        doc: Document::new(vb[2], vb[3]),
        meta,
        doc_from_usvg,
        warnings: Vec::new(),
        path: path.to_path_buf(),
        saw_text: false,
        anon_objects: 0,
        anon_shapes: 0,
    };
    let top: &[usvg::Node] = match tree.root().children() {
        [usvg::Node::Group(g)] if wrapped && g.id().is_empty() => {
            b.note_group_effects(g);
            // The wrapper's own opacity (none in practice) is folded like any group's.
            return finish(b, g.children(), g.opacity().get());
        }
        children => children,
    };
    finish(b, top, 1.0)
}

fn finish(mut b: Builder, top: &[usvg::Node], opacity: f32) -> Result<Import, Error> {
    b.top_level(top, opacity)?;
    if b.meta.text_elements > 0 && !b.saw_text {
        b.warnings.push(format!(
            "{} <text> element(s) could not be converted to paths (no usable font found) and were dropped",
            b.meta.text_elements
        ));
    }
    if b.meta.image_elements > 0 {
        b.warnings.push(format!(
            "{} <image> element(s) are not supported and were dropped",
            b.meta.image_elements
        ));
    }
    if let Err(reason) = b.doc.validate() {
        return Err(Error::NotFinite {
            path: b.path.clone(),
            reason,
        });
    }
    Ok(Import {
        document: b.doc,
        warnings: b.warnings,
    })
}

struct Builder {
    doc: Document,
    meta: XmlMeta,
    doc_from_usvg: Affine,
    warnings: Vec<String>,
    path: PathBuf,
    saw_text: bool,
    anon_objects: usize,
    anon_shapes: usize,
}

impl Builder {
    fn node_meta(&mut self, svg_id: &str, fallback: &str) -> NodeMeta {
        let id = self.doc.alloc_id();
        let name = self
            .meta
            .labels
            .get(svg_id)
            .cloned()
            .or_else(|| (!svg_id.is_empty()).then(|| svg_id.to_string()))
            .unwrap_or_else(|| fallback.to_string());
        NodeMeta {
            id,
            name,
            svg_id: svg_id.to_string(),
            locked: self.meta.locked.get(svg_id).copied().unwrap_or(false),
            hidden: self.meta.hidden.get(svg_id).copied().unwrap_or(false),
        }
    }

    fn note_group_effects(&mut self, g: &usvg::Group) {
        let name = if g.id().is_empty() {
            "(unnamed)"
        } else {
            g.id()
        };
        if g.clip_path().is_some() {
            self.warnings.push(format!(
                "clip path on group {name} is not supported and was ignored"
            ));
        }
        if g.mask().is_some() {
            self.warnings.push(format!(
                "mask on group {name} is not supported and was ignored"
            ));
        }
        if !g.filters().is_empty() {
            self.warnings.push(format!(
                "filter on group {name} is not supported and was ignored"
            ));
        }
    }

    fn new_anon_object(&mut self) -> Object {
        self.anon_objects += 1;
        let fallback = format!("object {}", self.anon_objects);
        Object {
            meta: self.node_meta("", &fallback),
            children: Vec::new(),
        }
    }

    fn top_level(&mut self, nodes: &[usvg::Node], opacity: f32) -> Result<(), Error> {
        let mut loose: Option<Object> = None;
        for node in nodes {
            match node {
                usvg::Node::Group(g) => {
                    if let Some(o) = loose.take() {
                        self.doc.objects.push(o);
                    }
                    self.note_group_effects(g);
                    self.anon_objects += 1;
                    let fallback = format!("object {}", self.anon_objects);
                    let meta = self.node_meta(g.id(), &fallback);
                    let mut object = Object {
                        meta,
                        children: Vec::new(),
                    };
                    let op = opacity * g.opacity().get();
                    for child in g.children() {
                        self.object_child(child, op, &mut object)?;
                    }
                    self.doc.objects.push(object);
                }
                usvg::Node::Path(p) if p.id() == BACKGROUND_ID => {
                    if let Some(usvg::Paint::Color(c)) = p.fill().map(|f| f.paint()) {
                        let a = p.fill().map_or(1.0, |f| f.opacity().get());
                        self.doc.background = Rgba::from_rgb8(c.red, c.green, c.blue, a * opacity);
                    }
                }
                other => {
                    let mut shapes = Vec::new();
                    self.leaf(other, opacity, &mut shapes)?;
                    if !shapes.is_empty() {
                        let o = match loose.take() {
                            Some(o) => o,
                            None => self.new_anon_object(),
                        };
                        let mut o = o;
                        o.children
                            .extend(shapes.into_iter().map(ObjectChild::Shape));
                        loose = Some(o);
                    }
                }
            }
        }
        if let Some(o) = loose.take() {
            self.doc.objects.push(o);
        }
        Ok(())
    }

    fn object_child(
        &mut self,
        node: &usvg::Node,
        opacity: f32,
        object: &mut Object,
    ) -> Result<(), Error> {
        match node {
            usvg::Node::Group(g) => {
                self.note_group_effects(g);
                let fallback = format!("component {}", object.children.len() + 1);
                let meta = self.node_meta(g.id(), &fallback);
                let mut comp = Component {
                    meta,
                    shapes: Vec::new(),
                };
                let op = opacity * g.opacity().get();
                for child in g.children() {
                    self.flatten(child, op, &mut comp.shapes)?;
                }
                object.children.push(ObjectChild::Component(comp));
            }
            other => {
                let mut shapes = Vec::new();
                self.leaf(other, opacity, &mut shapes)?;
                object
                    .children
                    .extend(shapes.into_iter().map(ObjectChild::Shape));
            }
        }
        Ok(())
    }

    /// Everything below a component: groups are flattened.
    fn flatten(
        &mut self,
        node: &usvg::Node,
        opacity: f32,
        out: &mut Vec<Shape>,
    ) -> Result<(), Error> {
        match node {
            usvg::Node::Group(g) => {
                self.note_group_effects(g);
                let op = opacity * g.opacity().get();
                for child in g.children() {
                    self.flatten(child, op, out)?;
                }
                Ok(())
            }
            other => self.leaf(other, opacity, out),
        }
    }

    /// A non-group node: a path, text (flattened to paths) or an image (dropped).
    fn leaf(&mut self, node: &usvg::Node, opacity: f32, out: &mut Vec<Shape>) -> Result<(), Error> {
        match node {
            usvg::Node::Path(p) => {
                if let Some(s) = self.path(p, opacity)? {
                    out.push(s);
                }
            }
            usvg::Node::Text(t) => {
                self.saw_text = true;
                for child in t.flattened().children() {
                    self.flatten(child, opacity, out)?;
                }
            }
            usvg::Node::Image(_) => {} // counted from the XML and reported once
            usvg::Node::Group(g) => {
                for child in g.children() {
                    self.flatten(child, opacity * g.opacity().get(), out)?;
                }
            }
        }
        Ok(())
    }

    fn paint(&mut self, paint: &usvg::Paint, opacity: f32, ts: Affine, what: &str) -> Paint {
        let stops = |s: &[usvg::Stop]| {
            s.iter()
                .map(|s| GradientStop {
                    offset: s.offset().get(),
                    color: Rgba::from_rgb8(
                        s.color().red,
                        s.color().green,
                        s.color().blue,
                        s.opacity().get() * opacity,
                    ),
                })
                .collect::<Vec<_>>()
        };
        let spread = |s: usvg::SpreadMethod| match s {
            usvg::SpreadMethod::Pad => SpreadMethod::Pad,
            usvg::SpreadMethod::Reflect => SpreadMethod::Reflect,
            usvg::SpreadMethod::Repeat => SpreadMethod::Repeat,
        };
        match paint {
            usvg::Paint::Color(c) => Paint::Solid(Rgba::from_rgb8(c.red, c.green, c.blue, opacity)),
            usvg::Paint::LinearGradient(g) => Paint::Linear(LinearGradient {
                start: Point::new(f64::from(g.x1()), f64::from(g.y1())),
                end: Point::new(f64::from(g.x2()), f64::from(g.y2())),
                transform: ts * to_affine(g.transform()),
                spread: spread(g.spread_method()),
                stops: stops(g.stops()),
            }),
            usvg::Paint::RadialGradient(g) => Paint::Radial(RadialGradient {
                center: Point::new(f64::from(g.cx()), f64::from(g.cy())),
                radius: f64::from(g.r().get()),
                focal: Point::new(f64::from(g.fx()), f64::from(g.fy())),
                focal_radius: f64::from(g.fr().get()),
                transform: ts * to_affine(g.transform()),
                spread: spread(g.spread_method()),
                stops: stops(g.stops()),
            }),
            usvg::Paint::Pattern(_) => {
                self.warnings.push(format!(
                    "{what}: pattern paint is not supported; replaced by 50% grey"
                ));
                Paint::Solid(Rgba::new(0.5, 0.5, 0.5, opacity))
            }
        }
    }

    fn path(&mut self, p: &usvg::Path, opacity: f32) -> Result<Option<Shape>, Error> {
        let ts = self.doc_from_usvg * to_affine(p.abs_transform());
        let kind_hint = self.meta.kinds.get(p.id()).copied();
        let polygon = (kind_hint == Some(PrimitiveKind::Polygon))
            .then(|| convert_segments(p.data(), ts, true))
            .flatten();
        let (subpaths, is_polygon) = match polygon {
            Some(s) => (s, true),
            None => (
                convert_segments(p.data(), ts, false).unwrap_or_default(),
                false,
            ),
        };
        if subpaths.is_empty() {
            return Ok(None);
        }
        self.anon_shapes += 1;
        let fallback = format!("path {}", self.anon_shapes);
        let mut meta = self.node_meta(p.id(), &fallback);
        // usvg also reports paths without fill and stroke as invisible; only a real
        // `visibility="hidden"` on a painted path means hidden.
        if !p.is_visible() && (p.fill().is_some() || p.stroke().is_some()) {
            meta.hidden = true;
        }
        let what = format!("shape \"{}\"", meta.name);
        let fill = p.fill().map(|f| {
            (
                self.paint(f.paint(), f.opacity().get() * opacity, ts, &what),
                f.rule(),
            )
        });
        // A stroke width scales with the geometric mean of the transform's scale factors
        // (exact for uniform scales and rotations).
        let scale = ts.determinant().abs().sqrt();
        let stroke = p.stroke().map(|s| Stroke {
            paint: self.paint(s.paint(), s.opacity().get() * opacity, ts, &what),
            width: f64::from(s.width().get()) * scale,
            cap: match s.linecap() {
                usvg::LineCap::Butt => LineCap::Butt,
                usvg::LineCap::Round => LineCap::Round,
                usvg::LineCap::Square => LineCap::Square,
            },
            join: match s.linejoin() {
                usvg::LineJoin::Miter | usvg::LineJoin::MiterClip => LineJoin::Miter,
                usvg::LineJoin::Round => LineJoin::Round,
                usvg::LineJoin::Bevel => LineJoin::Bevel,
            },
            miter_limit: f64::from(s.miterlimit().get()),
            dash_array: s
                .dasharray()
                .map(|d| d.iter().map(|v| f64::from(*v) * scale).collect())
                .unwrap_or_default(),
            dash_offset: f64::from(s.dashoffset()) * scale,
        });
        let kind = if is_polygon {
            PrimitiveKind::Polygon
        } else if let Some(k) = kind_hint.filter(|k| *k != PrimitiveKind::Polygon) {
            k
        } else if fill.is_some() {
            PrimitiveKind::ClosedPath
        } else {
            PrimitiveKind::OpenPath
        };
        let (fill, fill_rule) = match fill {
            Some((paint, rule)) => (
                Some(paint),
                match rule {
                    usvg::FillRule::NonZero => FillRule::NonZero,
                    usvg::FillRule::EvenOdd => FillRule::EvenOdd,
                },
            ),
            None => (None, FillRule::NonZero),
        };
        let shape = Shape {
            meta,
            kind,
            subpaths,
            fill,
            fill_rule,
            stroke,
        };
        if !shape.is_finite() {
            return Err(Error::NotFinite {
                path: self.path.clone(),
                reason: format!(
                    "{what} has a NaN or infinite coordinate, width or colour (after transforms)"
                ),
            });
        }
        Ok(Some(shape))
    }
}

fn pt(p: usvg::tiny_skia_path::Point, ts: Affine) -> Point {
    ts * Point::new(f64::from(p.x), f64::from(p.y))
}

/// Converts path segments to our subpath layout. With `polygon`, returns `None` unless
/// every segment is a line.
fn convert_segments(
    data: &usvg::tiny_skia_path::Path,
    ts: Affine,
    polygon: bool,
) -> Option<Vec<Subpath>> {
    use usvg::tiny_skia_path::PathSegment as Seg;
    let mut out: Vec<Subpath> = Vec::new();
    let mut cur: Vec<Point> = Vec::new();
    let mut start = Point::ZERO;
    let flush = |cur: &mut Vec<Point>, closed: bool, out: &mut Vec<Subpath>| {
        let pts = std::mem::take(cur);
        if pts.len() > 1 {
            out.push(Subpath {
                points: pts,
                closed,
            });
        }
    };
    for seg in data.segments() {
        match seg {
            Seg::MoveTo(p) => {
                flush(&mut cur, false, &mut out);
                start = pt(p, ts);
                cur.push(start);
            }
            Seg::LineTo(q) => {
                let q = pt(q, ts);
                if cur.is_empty() {
                    cur.push(start);
                }
                let p = *cur.last()?;
                if polygon {
                    cur.push(q);
                } else {
                    // A line is the cubic with control points at thirds: exact.
                    cur.extend([p.lerp(q, 1.0 / 3.0), p.lerp(q, 2.0 / 3.0), q]);
                }
            }
            Seg::QuadTo(c, q) => {
                if polygon {
                    return None;
                }
                if cur.is_empty() {
                    cur.push(start);
                }
                let (c, q) = (pt(c, ts), pt(q, ts));
                let p = *cur.last()?;
                // Degree elevation: exact.
                cur.extend([p.lerp(c, 2.0 / 3.0), q.lerp(c, 2.0 / 3.0), q]);
            }
            Seg::CubicTo(c1, c2, q) => {
                if polygon {
                    return None;
                }
                if cur.is_empty() {
                    cur.push(start);
                }
                cur.extend([pt(c1, ts), pt(c2, ts), pt(q, ts)]);
            }
            Seg::Close => {
                if cur.len() > 1 {
                    let first = cur[0];
                    if cur.last() == Some(&first) {
                        cur.pop(); // the path already returned to its start
                    } else if !polygon {
                        let p = *cur.last()?;
                        cur.extend([p.lerp(first, 1.0 / 3.0), p.lerp(first, 2.0 / 3.0)]);
                    }
                    if polygon || cur.len() >= 3 {
                        flush(&mut cur, true, &mut out);
                    } else {
                        cur.clear();
                    }
                } else {
                    cur.clear();
                }
            }
        }
    }
    flush(&mut cur, false, &mut out);
    Some(out)
}

#[cfg(test)]
mod text_tests {
    use super::*;

    #[test]
    fn text_without_a_usable_font_is_dropped_with_a_warning() {
        let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 40">
            <text x="5" y="30" font-size="20">Hi</text><rect width="4" height="4"/></svg>"#;
        let options = usvg::Options {
            fontdb: Arc::new(usvg::fontdb::Database::new()),
            ..Default::default()
        };
        let import = import_text_with(svg, Path::new("text.svg"), &options).unwrap();
        assert_eq!(
            import.document.shape_count(),
            1,
            "only the rectangle is left"
        );
        assert!(
            import
                .warnings
                .iter()
                .any(|w| w.contains("1 <text> element(s)")),
            "{:?}",
            import.warnings
        );
    }
}
