//! Line charts with optional confidence bands, drawn with `plotters` to PNG
//! and SVG side by side. The font (DejaVu Sans, `assets/fonts`) is compiled
//! in, so charts need no system font library and look the same everywhere.

use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// One line of a chart. `band`, when given, holds (x, low, high) per point.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub band: Vec<(f64, f64, f64)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legend {
    UpperLeft,
    LowerRight,
    UpperRight,
}

#[derive(Debug, Clone)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Start the y axis at zero (rates and fractions) rather than at the data.
    pub y_from_zero: bool,
    pub legend: Legend,
}

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: cannot draw: {message}")]
    Draw { path: PathBuf, message: String },
    #[error("{path}: cannot write: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

const SIZE: (u32, u32) = (1000, 640);

/// Tableau 10: distinct at a glance, also for most colour-blind readers.
const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Dash patterns (dash, gap in pixels; 0: solid), one per series in turn.
const DASHES: [(u32, u32); 4] = [(0, 0), (10, 5), (3, 4), (16, 4)];
/// Marker shapes: circle, triangle, square, cross.
const MARKERS: usize = 4;

fn marker_at<DB: DrawingBackend>(
    kind: usize,
    color: RGBColor,
) -> DynElement<'static, DB, (i32, i32)> {
    let style = color.filled();
    match kind {
        0 => Circle::new((0, 0), 4, style).into_dyn(),
        1 => TriangleMarker::new((0, 0), 5, style).into_dyn(),
        2 => Rectangle::new([(-4, -4), (4, 4)], style).into_dyn(),
        _ => Cross::new((0, 0), 4, color.stroke_width(2)).into_dyn(),
    }
}

/// Legend labels; a series whose points equal an earlier one's (drawn
/// exactly over it) says so, or the reader would think it missing.
fn labels_with_coincidences(series: &[Series]) -> Vec<String> {
    let same = |a: &Series, b: &Series| {
        a.points.len() == b.points.len()
            && a.points.iter().zip(&b.points).all(|(p, q)| {
                (p.0 - q.0).abs() <= 1e-9 * p.0.abs().max(1.0)
                    && (p.1 - q.1).abs() <= 1e-9 * p.1.abs().max(1.0)
            })
    };
    series
        .iter()
        .enumerate()
        .map(|(i, s)| match series[..i].iter().find(|o| same(o, s)) {
            Some(o) if !s.points.is_empty() => format!("{} (same as {})", s.label, o.label),
            _ => s.label.clone(),
        })
        .collect()
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../../assets/fonts/DejaVuSans.ttf"),
        )
        .unwrap_or_else(|_| panic!("the bundled font is a valid TrueType file"));
    });
}

/// Writes `BASE.png` and `BASE.svg`; returns both paths. Each file appears
/// complete or not at all (written beside, then renamed).
pub fn write_chart(chart: &Chart, base: &Path) -> Result<Vec<PathBuf>, PlotError> {
    register_font();
    let png = base.with_extension("png");
    let svg = base.with_extension("svg");
    let png_tmp = base.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&png_tmp, SIZE).into_drawing_area();
        draw(root, chart).map_err(|message| PlotError::Draw {
            path: png.clone(),
            message,
        })?;
    }
    std::fs::rename(&png_tmp, &png).map_err(|source| PlotError::Io {
        path: png.clone(),
        source,
    })?;
    let text = chart_svg(chart).map_err(|message| PlotError::Draw {
        path: svg.clone(),
        message,
    })?;
    super::output::write_atomically(&svg, text.as_bytes()).map_err(|e| PlotError::Draw {
        path: svg.clone(),
        message: e.to_string(),
    })?;
    Ok(vec![png, svg])
}

/// The chart as an SVG document (for files and for inlining in HTML).
pub fn chart_svg(chart: &Chart) -> Result<String, String> {
    register_font();
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        draw(root, chart)?;
    }
    Ok(text)
}

fn range(values: impl Iterator<Item = f64>, from_zero: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if from_zero {
        lo = lo.min(0.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 0.5 };
    (if from_zero && lo >= 0.0 { lo } else { lo - pad }, hi + pad)
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, c: &Chart) -> Result<(), String> {
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let xs = c.series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (x0, x1) = range(xs, false);
    let ys = c.series.iter().flat_map(|s| {
        s.points
            .iter()
            .map(|p| p.1)
            .chain(s.band.iter().flat_map(|b| [b.1, b.2]))
    });
    let (y0, y1) = range(ys, c.y_from_zero);
    let mut chart = ChartBuilder::on(&root)
        .caption(&c.title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(&c.x_label)
        .y_desc(&c.y_label)
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(e)?;
    let labels = labels_with_coincidences(&c.series);
    for (i, s) in c.series.iter().enumerate() {
        let (r, g, b) = PALETTE[i % PALETTE.len()];
        let color = RGBColor(r, g, b);
        // Colour, dash pattern and marker all differ, so a series drawn
        // over another still shows (and prints in grey).
        let (dash, gap) = DASHES[i % DASHES.len()];
        let marker = i % MARKERS;
        if s.band.len() >= 2 {
            let mut outline: Vec<(f64, f64)> = s.band.iter().map(|b| (b.0, b.1)).collect();
            outline.extend(s.band.iter().rev().map(|b| (b.0, b.2)));
            chart
                .draw_series(std::iter::once(Polygon::new(outline, color.mix(0.18))))
                .map_err(e)?;
        }
        let style = color.stroke_width(2);
        let drawn = if dash == 0 {
            chart.draw_series(LineSeries::new(s.points.iter().copied(), style))
        } else {
            chart.draw_series(DashedLineSeries::new(
                s.points.iter().copied(),
                dash,
                gap,
                style,
            ))
        };
        drawn
            .map_err(e)?
            .label(labels[i].as_str())
            .legend(move |(x, y)| {
                EmptyElement::at((x + 11, y))
                    + PathElement::new(vec![(-11, 0), (11, 0)], color.stroke_width(3))
                    + marker_at(marker, color)
            });
        // At most about 25 markers per series, evenly spaced.
        let every = s.points.len().div_ceil(25).max(1);
        for &p in s.points.iter().step_by(every) {
            chart
                .draw_series(std::iter::once(
                    EmptyElement::at(p) + marker_at(marker, color),
                ))
                .map_err(e)?;
        }
    }
    let position = match c.legend {
        Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
        Legend::LowerRight => SeriesLabelPosition::LowerRight,
        Legend::UpperRight => SeriesLabelPosition::UpperRight,
    };
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_png_and_svg_with_labels() {
        let dir = tempfile::tempdir().unwrap();
        let chart = Chart {
            title: "demo: rejection rate vs load".into(),
            x_label: "offered load".into(),
            y_label: "rejection rate (%)".into(),
            series: vec![Series {
                label: "spread-strict".into(),
                points: vec![(0.5, 1.0), (1.0, 3.0)],
                band: vec![(0.5, 0.5, 1.5), (1.0, 2.0, 4.0)],
            }],
            y_from_zero: true,
            legend: Legend::UpperLeft,
        };
        let paths = write_chart(&chart, &dir.path().join("demo")).unwrap();
        let png = std::fs::read(&paths[0]).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = std::fs::read_to_string(&paths[1]).unwrap();
        for text in [
            "demo: rejection rate vs load",
            "offered load",
            "spread-strict",
        ] {
            assert!(svg.contains(text), "{text} missing from the SVG");
        }
        // Nothing left over from the atomic writes.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn coinciding_series_say_so_in_the_legend() {
        let line = |label: &str, k: f64| Series {
            label: label.into(),
            points: vec![(0.5, 1.0 * k), (1.0, 3.0 * k)],
            band: Vec::new(),
        };
        let series = vec![
            line("interleave", 1.0),
            line("preferred", 1.0),
            line("strict", 2.0),
        ];
        assert_eq!(
            labels_with_coincidences(&series),
            ["interleave", "preferred (same as interleave)", "strict"]
        );
        let dir = tempfile::tempdir().unwrap();
        let chart = Chart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            series,
            y_from_zero: true,
            legend: Legend::UpperLeft,
        };
        let paths = write_chart(&chart, &dir.path().join("c")).unwrap();
        let svg = std::fs::read_to_string(&paths[1]).unwrap();
        assert!(svg.contains("preferred (same as interleave)"));
        // Dashed lines for the second and third series.
        assert!(
            svg.matches("<polyline").count() + svg.matches("<line").count() >= 3,
            "{svg}"
        );
    }
}
