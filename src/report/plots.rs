//! The report's plots, SVG and PNG; plotters lays out their text with a system TrueType font.

use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Distinct colours for up to 16 series (matplotlib's tab10, then six more apart from them):
/// the tiny study plots up to 13 rows in one chart, and a colour repeated would make two rows
/// one.
const COLORS: [RGBColor; 16] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(153, 0, 76),
    RGBColor(128, 0, 0),
    RGBColor(0, 0, 128),
    RGBColor(0, 128, 128),
    RGBColor(255, 215, 0),
    RGBColor(128, 128, 0),
];

/// A point with an optional vertical error bar `(low, high)`, and the seeds it is a mean of
/// where it is one. A point of one seed is drawn as a ring (nothing says how far off it could
/// be, so it must not look as precise as a mean); the bars of two seeds (a 95% interval with
/// one degree of freedom, some twelve sds wide) do not set the y range, and are clipped at
/// its edge, so that they do not flatten the differences the rest show.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub bar: Option<(f64, f64)>,
    pub seeds: Option<usize>,
}

impl Point {
    /// A filled point without a bar, not a mean over seeds.
    pub fn at(x: f64, y: f64) -> Point {
        Point {
            x,
            y,
            bar: None,
            seeds: None,
        }
    }

    fn hollow(&self) -> bool {
        self.seeds == Some(1)
    }

    /// The bar, where it may set the y range.
    fn ranging_bar(&self) -> Option<(f64, f64)> {
        self.bar.filter(|_| self.seeds.is_none_or(|n| n >= 3))
    }
}

/// Named series of points, one per experiment.
pub type Series = Vec<(String, Vec<Point>)>;

/// One plot: drawn once per output format.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a Series,
    /// Markers without connecting lines (a scatter).
    pub points_only: bool,
    /// A black line through these points, drawn under the series (a Pareto frontier).
    pub frontier: Option<Vec<(f64, f64)>>,
    /// Fitted curves, drawn dashed and without markers over the series, in their colours (the
    /// fit of series i in colour i).
    pub fits: Option<&'a Series>,
}

const PLOT_SIZE: (u32, u32) = (1000, 560);

/// Width in pixels of the legend's column, right of the plot: the axes end at the data.
const LEGEND_WIDTH: u32 = 300;

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

fn draw_lines<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, chart: &Chart) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let Chart {
        title,
        x_label,
        y_label,
        series,
        points_only,
        ..
    } = *chart;
    root.fill(&WHITE).map_err(err)?;
    let all: Vec<Point> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in &all {
        let (lo, hi) = p.ranging_bar().unwrap_or((p.y, p.y));
        x0 = x0.min(p.x);
        x1 = x1.max(p.x);
        y0 = y0.min(p.y.min(lo));
        y1 = y1.max(p.y.max(hi));
    }
    // The x axis ends at the data (a margin of 3% each side, so that end markers show whole).
    let span = (x1 - x0).max(1e-9);
    let dy = ((y1 - y0) * 0.08).max(1e-4);
    let root = root.titled(title, ("sans-serif", 22)).map_err(err)?;
    let (plot_area, legend_area) = root.split_horizontally(PLOT_SIZE.0 - LEGEND_WIDTH);
    let mut ctx = ChartBuilder::on(&plot_area)
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x0 - 0.03 * span)..(x1 + 0.03 * span), (y0 - dy)..(y1 + dy))
        .map_err(err)?;
    // Whole numbers on an axis of steps, bytes or tokens (plotters writes 1500.0).
    let whole = all.iter().all(|p| p.x.fract() == 0.0) && span >= 10.0;
    ctx.configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .x_label_formatter(&|x| {
            if whole {
                format!("{x:.0}")
            } else {
                format!("{x:.1}")
            }
        })
        .draw()
        .map_err(err)?;
    let mut legend: Vec<(String, RGBColor, bool)> = vec![];
    let mut clipped = false;
    if let Some(line) = &chart.frontier {
        ctx.draw_series(LineSeries::new(
            line.iter().copied(),
            BLACK.mix(0.6).stroke_width(2),
        ))
        .map_err(err)?;
        legend.push(("Pareto frontier".into(), BLACK, true));
    }
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        if !points_only {
            ctx.draw_series(LineSeries::new(
                pts.iter().map(|p| (p.x, p.y)),
                color.stroke_width(2),
            ))
            .map_err(err)?;
        }
        let (bottom, top) = (y0 - dy, y1 + dy);
        ctx.draw_series(pts.iter().filter_map(|p| {
            let (lo, hi) = p.bar?;
            clipped |= lo < bottom || hi > top;
            Some(ErrorBar::new_vertical(
                p.x,
                lo.max(bottom),
                p.y,
                hi.min(top),
                color.stroke_width(1),
                8,
            ))
        }))
        .map_err(err)?;
        ctx.draw_series(pts.iter().map(|p| {
            let style = if p.hollow() {
                color.stroke_width(2)
            } else {
                ShapeStyle::from(&color).filled()
            };
            Circle::new((p.x, p.y), 4, style)
        }))
        .map_err(err)?;
        legend.push((name.clone(), color, false));
    }
    for (i, (_, pts)) in chart.fits.into_iter().flatten().enumerate() {
        let color = COLORS[i % COLORS.len()];
        ctx.draw_series(DashedLineSeries::new(
            pts.iter().map(|p| (p.x, p.y)),
            8,
            5,
            BLACK.mix(0.8).stroke_width(3),
        ))
        .map_err(err)?;
        ctx.draw_series(DashedLineSeries::new(
            pts.iter().map(|p| (p.x, p.y)),
            8,
            5,
            color.stroke_width(1),
        ))
        .map_err(err)?;
    }
    if chart.fits.is_some() {
        legend.push(("- - fits (dashed)".into(), BLACK, true));
    }
    if clipped {
        legend.push(("bars of 2 seeds clipped at the edge".into(), WHITE, true));
    }
    if all.iter().any(Point::hollow) {
        legend.push(("ring: one seed, no interval".into(), WHITE, true));
    }
    draw_legend(&legend_area, &legend)?;
    root.present().map_err(err)?;
    Ok(())
}

/// The legend, one row per entry, in its own column right of the plot.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor, bool)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    for (row, (name, color, line)) in entries.iter().enumerate() {
        let y = 30 + 22 * row as i32;
        if *line {
            area.draw(&PathElement::new(
                vec![(4, y), (20, y)],
                color.stroke_width(2),
            ))
            .map_err(err)?;
        } else {
            area.draw(&Circle::new((12, y), 4, ShapeStyle::from(color).filled()))
                .map_err(err)?;
        }
        area.draw(&Text::new(
            name.clone(),
            (28, y - 8),
            ("sans-serif", 15).into_font(),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// The points no other point beats on both axes (lower x and lower y), by increasing x: the
/// Pareto frontier of a cost (x) against a loss (y).
pub fn pareto_frontier(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut out: Vec<(f64, f64)> = vec![];
    for p in sorted {
        if out.last().is_none_or(|last| p.1 < last.1) {
            out.push(p);
        }
    }
    out
}

/// Registers a system TrueType font for the plots' text; false when none is found.
fn png_font() -> bool {
    static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FONT.get_or_init(|| {
        for path in [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/Library/Fonts/Arial.ttf",
            "C:\\Windows\\Fonts\\arial.ttf",
        ] {
            if let Ok(bytes) = std::fs::read(path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// Writes `<name>.svg` and `<name>.png` (nothing without a font, or without a point to draw);
/// returns the files written.
pub fn plot(out: &Path, name: &str, chart: Chart) -> Result<Vec<PathBuf>> {
    if chart.series.iter().all(|(_, points)| points.is_empty()) {
        return Ok(vec![]);
    }
    // plotters lays text out with the registered font, for SVG too.
    if !png_font() {
        eprintln!("report: no TrueType font found (e.g. install fonts-dejavu); {name} not plotted");
        return Ok(vec![]);
    }
    // Each image is drawn into a hidden file beside it (its extension kept: plotters picks the
    // encoder by it), then renamed into place: a failed plot leaves no torn image under its
    // real name, and the error names the file.
    let written = |ext: &str, draw: &dyn Fn(&Path) -> Result<()>| -> Result<PathBuf> {
        let path = out.join(format!("{name}.{ext}"));
        let tmp = out.join(format!(".{name}.{}.tmp.{ext}", std::process::id()));
        let drawn = draw(&tmp).and_then(|()| Ok(std::fs::rename(&tmp, &path)?));
        if let Err(e) = drawn {
            let _ = std::fs::remove_file(&tmp);
            return Err(e.context(format!("{}: cannot write the plot", path.display())));
        }
        Ok(path)
    };
    let svg = written("svg", &|tmp| {
        draw_lines(SVGBackend::new(tmp, PLOT_SIZE).into_drawing_area(), &chart)
    })?;
    let png = written("png", &|tmp| {
        draw_lines(
            BitMapBackend::new(tmp, PLOT_SIZE).into_drawing_area(),
            &chart,
        )
    })?;
    Ok(vec![svg, png])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_without_points_is_not_drawn() {
        let out = std::env::temp_dir().join(format!("mla-lab-empty-plot-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let series: Series = vec![("mha".into(), vec![]), ("mla".into(), vec![])];
        let chart = Chart {
            title: "t",
            x_label: "x",
            y_label: "y",
            series: &series,
            points_only: false,
            frontier: None,
            fits: None,
        };
        assert_eq!(plot(&out, "empty", chart).unwrap(), Vec::<PathBuf>::new());
        assert!(!out.join("empty.svg").exists() && !out.join("empty.png").exists());
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn the_frontier_keeps_the_points_nothing_beats() {
        let pts = [
            (1.0, 3.0),
            (2.0, 2.0),
            (2.0, 2.5),
            (3.0, 2.2),
            (4.0, 1.0),
            (5.0, 1.5),
        ];
        assert_eq!(
            pareto_frontier(&pts),
            vec![(1.0, 3.0), (2.0, 2.0), (4.0, 1.0)]
        );
    }

    #[test]
    fn series_colours_are_distinct_and_none_is_the_frontiers() {
        for (i, a) in COLORS.iter().enumerate() {
            assert_ne!(*a, BLACK, "colour {i} is the frontier's");
            for (j, b) in COLORS[i + 1..].iter().enumerate() {
                assert_ne!(a, b, "colours {i} and {}", i + 1 + j);
            }
        }
    }
}
