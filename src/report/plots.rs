//! The report's plots, SVG and PNG; plotters lays out their text with a system TrueType font.

use std::path::{Path, PathBuf};

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

const COLORS: [RGBColor; 10] = [
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
];

pub type Series = Vec<(String, Vec<(f64, f64)>)>;

/// One plot: drawn once per output format.
pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a Series,
    /// Markers without connecting lines (a scatter).
    pub points_only: bool,
}

const PLOT_SIZE: (u32, u32) = (900, 560);

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
    } = *chart;
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in &all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let (dx, dy) = (((x1 - x0) * 0.08).max(1e-9), ((y1 - y0) * 0.08).max(1e-3));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x0 - dx)..(x1 + dx), (y0 - dy)..(y1 + dy))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let style = ShapeStyle::from(&color).filled();
        if !points_only {
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, style)))
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .label(name.clone())
            .legend(move |(x, y)| Circle::new((x + 8, y), 4, style));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
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

/// Writes `<name>.svg` and `<name>.png` (nothing without a font); returns the files written.
pub fn plot(out: &Path, name: &str, chart: Chart) -> Result<Vec<PathBuf>> {
    // plotters lays text out with the registered font, for SVG too.
    if !png_font() {
        eprintln!("report: no TrueType font found (e.g. install fonts-dejavu); {name} not plotted");
        return Ok(vec![]);
    }
    let svg = out.join(format!("{name}.svg"));
    draw_lines(SVGBackend::new(&svg, PLOT_SIZE).into_drawing_area(), &chart)?;
    let png = out.join(format!("{name}.png"));
    draw_lines(
        BitMapBackend::new(&png, PLOT_SIZE).into_drawing_area(),
        &chart,
    )?;
    Ok(vec![svg, png])
}
