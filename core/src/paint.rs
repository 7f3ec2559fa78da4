//! Paints: solid colours and (imported, preserved) linear/radial gradients.

use kurbo::Affine;
use serde::{Deserialize, Serialize};

use crate::color::Rgba;

/// How a gradient continues outside `[0, 1]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SpreadMethod {
    /// Extend the end colours.
    #[default]
    Pad,
    /// Mirror.
    Reflect,
    /// Repeat.
    Repeat,
}

/// One colour stop of a gradient.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradientStop {
    /// Position along the gradient in `[0, 1]`.
    pub offset: f32,
    /// Colour with the stop opacity folded into alpha.
    pub color: Rgba,
}

/// A linear gradient in document units (`gradientUnits="userSpaceOnUse"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearGradient {
    /// Start point.
    pub start: kurbo::Point,
    /// End point.
    pub end: kurbo::Point,
    /// `gradientTransform`, applied to start/end (document units).
    pub transform: Affine,
    /// Spread method.
    pub spread: SpreadMethod,
    /// Colour stops, in order.
    pub stops: Vec<GradientStop>,
}

/// A radial gradient in document units (`gradientUnits="userSpaceOnUse"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RadialGradient {
    /// Centre of the end circle.
    pub center: kurbo::Point,
    /// Radius of the end circle.
    pub radius: f64,
    /// Focal point (centre of the start circle).
    pub focal: kurbo::Point,
    /// Radius of the start circle.
    pub focal_radius: f64,
    /// `gradientTransform`.
    pub transform: Affine,
    /// Spread method.
    pub spread: SpreadMethod,
    /// Colour stops, in order.
    pub stops: Vec<GradientStop>,
}

/// How a fill or stroke is painted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Paint {
    /// One colour.
    Solid(Rgba),
    /// Linear gradient (kept faithfully; the optimiser sees its mean colour).
    Linear(LinearGradient),
    /// Radial gradient (kept faithfully; the optimiser sees its mean colour).
    Radial(RadialGradient),
}

impl Paint {
    /// The stops of a gradient, or `None` for a solid colour.
    pub fn stops(&self) -> Option<&[GradientStop]> {
        match self {
            Paint::Solid(_) => None,
            Paint::Linear(g) => Some(&g.stops),
            Paint::Radial(g) => Some(&g.stops),
        }
    }

    /// A representative colour: the colour itself, or the mean over the gradient stops
    /// weighted by the length of `[0, 1]` each stop covers (piecewise-linear average).
    pub fn mean_color(&self) -> Rgba {
        match self {
            Paint::Solid(c) => *c,
            Paint::Linear(g) => mean_of_stops(&g.stops),
            Paint::Radial(g) => mean_of_stops(&g.stops),
        }
    }

    /// Multiplies the alpha of every colour by `opacity`.
    pub fn with_opacity(mut self, opacity: f32) -> Self {
        match &mut self {
            Paint::Solid(c) => *c = c.with_opacity(opacity),
            Paint::Linear(g) => g.stops.iter_mut().for_each(|s| s.color.a *= opacity),
            Paint::Radial(g) => g.stops.iter_mut().for_each(|s| s.color.a *= opacity),
        }
        self
    }

    /// Maps the paint through `affine` (gradients are re-anchored; solid colours unchanged).
    pub fn transformed(mut self, affine: Affine) -> Self {
        match &mut self {
            Paint::Solid(_) => {}
            Paint::Linear(g) => g.transform = affine * g.transform,
            Paint::Radial(g) => g.transform = affine * g.transform,
        }
        self
    }

    /// True if every number in the paint is finite.
    pub fn is_finite(&self) -> bool {
        let stops_ok = |s: &[GradientStop]| {
            s.iter()
                .all(|s| s.offset.is_finite() && s.color.is_finite())
        };
        match self {
            Paint::Solid(c) => c.is_finite(),
            Paint::Linear(g) => {
                stops_ok(&g.stops)
                    && g.start.is_finite()
                    && g.end.is_finite()
                    && g.transform.is_finite()
            }
            Paint::Radial(g) => {
                stops_ok(&g.stops)
                    && g.center.is_finite()
                    && g.focal.is_finite()
                    && g.radius.is_finite()
                    && g.focal_radius.is_finite()
                    && g.transform.is_finite()
            }
        }
    }
}

/// A padded two-stop linear gradient as the optimiser sees it (`f32`, document units, no
/// transform): with mean colour `m`, it paints `m − Δ/2` at the axis start and `m + Δ/2` at
/// its end (each clamped to `[0, 1]`), and the end colours beyond.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinearFill {
    /// Colour change `Δ` from the start stop to the end stop (straight RGBA).
    pub delta: [f32; 4],
    /// Axis: start x, y, end x, y.
    pub axis: [f32; 4],
}

impl LinearFill {
    /// `[Δ, axis]` as 8 numbers.
    pub fn to_array(self) -> [f32; 8] {
        let [a, b, c, d] = self.delta;
        let [e, f, g, h] = self.axis;
        [a, b, c, d, e, f, g, h]
    }

    /// From `[Δ, axis]`.
    pub fn from_array(v: [f32; 8]) -> Self {
        Self {
            delta: [v[0], v[1], v[2], v[3]],
            axis: [v[4], v[5], v[6], v[7]],
        }
    }

    /// The start and end stop colours for mean colour `mean`, clamped to `[0, 1]`.
    pub fn stops(self, mean: [f32; 4]) -> ([f32; 4], [f32; 4]) {
        (
            std::array::from_fn(|k| (mean[k] - 0.5 * self.delta[k]).clamp(0.0, 1.0)),
            std::array::from_fn(|k| (mean[k] + 0.5 * self.delta[k]).clamp(0.0, 1.0)),
        )
    }

    /// True if every number is finite.
    pub fn is_finite(self) -> bool {
        self.to_array().iter().all(|v| v.is_finite())
    }
}

impl Paint {
    /// A padded linear gradient with two stops, under any invertible transform and at any
    /// distinct offsets, as `(mean colour, LinearFill)`: the same picture, re-anchored in
    /// document space. `None` for solid colours, radial gradients, other spreads, other stop
    /// counts and degenerate gradients (the optimiser then sees [`Paint::mean_color`]).
    pub fn as_linear_fill(&self) -> Option<([f32; 4], LinearFill)> {
        let Paint::Linear(g) = self else {
            return None;
        };
        let [s0, s1] = g.stops.as_slice() else {
            return None;
        };
        if g.spread != SpreadMethod::Pad || s1.offset <= s0.offset {
            return None;
        }
        let (c0, c1) = (s0.color.to_array(), s1.color.to_array());
        let mean = std::array::from_fn(|i| 0.5 * (c0[i] + c1[i]));
        let delta = std::array::from_fn(|i| c1[i] - c0[i]);
        let along = g.end - g.start;
        if along.hypot2() < 1e-18 {
            // A zero-length axis paints the last stop everywhere (SVG 1.1 §13.2.2).
            let p = g.transform * g.start;
            let fill = LinearFill {
                delta,
                axis: [p.x as f32, p.y as f32, p.x as f32, p.y as f32],
            };
            return fill.is_finite().then_some((mean, fill));
        }
        // Stop positions in gradient space; t = (q − A)·v / |v|² with q = T⁻¹p is affine
        // in p with gradient u = M⁻ᵀv / |v|² (M the linear part of T): the document-space
        // axis runs from T(A), where t = 0, by u / |u|² to where t = 1.
        let a = g.start + along * f64::from(s0.offset);
        let v = along * f64::from(s1.offset - s0.offset);
        let v2 = v.hypot2();
        if g.transform.determinant().abs() < 1e-12 || v2 < 1e-12 {
            return None;
        }
        let inv = g.transform.inverse().as_coeffs(); // q = [i0 i2; i1 i3] p + [i4, i5]
        let u = kurbo::Vec2::new(inv[0] * v.x + inv[1] * v.y, inv[2] * v.x + inv[3] * v.y) / v2;
        let u2 = u.hypot2();
        if u2 < 1e-18 || !u2.is_finite() {
            return None;
        }
        // Start where the first stop sits (any point of the t = 0 line would do).
        let start = g.transform * a;
        let end = start + u / u2;
        let fill = LinearFill {
            delta,
            axis: [start.x as f32, start.y as f32, end.x as f32, end.y as f32],
        };
        fill.is_finite().then_some((mean, fill))
    }

    /// The two-stop linear gradient with mean colour `mean` and `fill`'s change and axis.
    pub fn from_linear_fill(mean: [f32; 4], fill: LinearFill) -> Paint {
        let (c0, c1) = fill.stops(mean);
        let [x0, y0, x1, y1] = fill.axis.map(f64::from);
        Paint::Linear(LinearGradient {
            start: kurbo::Point::new(x0, y0),
            end: kurbo::Point::new(x1, y1),
            transform: Affine::IDENTITY,
            spread: SpreadMethod::Pad,
            stops: vec![
                GradientStop {
                    offset: 0.0,
                    color: Rgba::from_array(c0),
                },
                GradientStop {
                    offset: 1.0,
                    color: Rgba::from_array(c1),
                },
            ],
        })
    }
}

/// Average colour of a piecewise-linear gradient over `[0, 1]` (ends padded).
fn mean_of_stops(stops: &[GradientStop]) -> Rgba {
    let (Some(first), Some(last)) = (stops.first(), stops.last()) else {
        return Rgba::TRANSPARENT;
    };
    let mut acc = [0.0f64; 4];
    let mut add = |c: Rgba, w: f64| {
        for (a, v) in acc.iter_mut().zip(c.to_array()) {
            *a += f64::from(v) * w;
        }
    };
    add(first.color, f64::from(first.offset.clamp(0.0, 1.0)));
    for pair in stops.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let w = f64::from((b.offset.clamp(0.0, 1.0) - a.offset.clamp(0.0, 1.0)).max(0.0));
        add(a.color, 0.5 * w);
        add(b.color, 0.5 * w);
    }
    add(last.color, f64::from(1.0 - last.offset.clamp(0.0, 1.0)));
    Rgba::new(acc[0] as f32, acc[1] as f32, acc[2] as f32, acc[3] as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paint_mean_of_two_stop_gradient_is_midpoint() {
        let g = Paint::Linear(LinearGradient {
            start: kurbo::Point::ZERO,
            end: kurbo::Point::new(1.0, 0.0),
            transform: Affine::IDENTITY,
            spread: SpreadMethod::Pad,
            stops: vec![
                GradientStop {
                    offset: 0.0,
                    color: Rgba::BLACK,
                },
                GradientStop {
                    offset: 1.0,
                    color: Rgba::WHITE,
                },
            ],
        });
        let m = g.mean_color();
        assert!(
            (m.r - 0.5).abs() < 1e-6 && (m.a - 1.0).abs() < 1e-6,
            "{m:?}"
        );
    }

    #[test]
    fn paint_mean_pads_ends() {
        // Stop at 0.5 only: whole range is that colour.
        let stops = [GradientStop {
            offset: 0.5,
            color: Rgba::new(0.2, 0.4, 0.6, 1.0),
        }];
        let m = mean_of_stops(&stops);
        assert!((m.g - 0.4).abs() < 1e-6, "{m:?}");
    }
}
