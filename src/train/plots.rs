//! The report's PNG plots: plotters draws into an RGB buffer, `image` encodes it. Text uses the
//! DejaVu Sans embedded from assets/fonts, never a system font, so plots render the same on a
//! machine with no fonts installed (CI, containers).

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
/// Width of the legend column right of the charts (long mode labels like `ada-channel(ones)`).
const LEGEND_W: u32 = 210;

pub const ACCURACY_SIZE: (u32, u32) = (1300, 520);
pub const W_SIZE: (u32, u32) = (1100, 560);
pub const FINAL_W_SIZE: (u32, u32) = (1100, 560);

/// Matplotlib's tab10: distinguishable, and familiar from the papers these plots sit beside.
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

pub fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// One mode's curve: the mean over seeds at each x, and the min..max band around it.
#[derive(Clone, Debug)]
pub struct Band {
    pub label: String,
    pub x: Vec<f64>,
    pub mean: Vec<f64>,
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
}

#[derive(Clone, Debug)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn register_font() -> Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| "the embedded DejaVu Sans could not be parsed".to_string())
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// Draws with `draw` on a white `size` canvas and writes it to `path` as PNG.
fn render(path: &Path, size: (u32, u32), draw: impl FnOnce(&Area) -> Result<()>) -> Result<()> {
    register_font()?;
    let mut buf = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    image::RgbImage::from_raw(size.0, size.1, buf)
        .expect("the buffer holds width * height RGB pixels")
        .save(path)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn legend(area: &Area, title: &str, entries: &[(String, RGBColor)], note: &str) -> Result<()> {
    let (_, h) = area.dim_in_pixel();
    let step = ((h as i32 - 120) / entries.len().max(1) as i32).clamp(12, 26);
    let font = (step - 8).clamp(10, 16);
    area.draw(&Text::new(title.to_string(), (8, 40), (FAMILY, 17)))?;
    for (i, (label, c)) in entries.iter().enumerate() {
        let y = 72 + step * i as i32;
        area.draw(&PathElement::new(vec![(8, y), (38, y)], c.stroke_width(3)))?;
        // ab_glyph puts the baseline at y + size / 2: lift it so the caps centre on the line.
        area.draw(&Text::new(
            label.clone(),
            (46, y - font / 7),
            (FAMILY, font),
        ))?;
    }
    let y = 72 + step * entries.len() as i32 + 10;
    for (i, line) in note.lines().enumerate() {
        area.draw(&Text::new(
            line.to_string(),
            (8, y + 17 * i as i32),
            (FAMILY, 13).into_font().color(&RGBColor(90, 90, 90)),
        ))?;
    }
    Ok(())
}

/// `lo..hi` widened by 5% (and to a visible span when flat).
fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let span = (hi - lo).max(1e-3 * hi.abs().max(1.0));
    (lo - 0.05 * span, hi + 0.05 * span)
}

/// Labels only at whole numbers: epochs and block indices are integers.
fn whole(x: &f64) -> String {
    if (x - x.round()).abs() < 1e-6 {
        format!("{}", x.round() as i64)
    } else {
        String::new()
    }
}

fn band_chart(area: &Area, caption: &str, bands: &[Band], epochs: usize) -> Result<()> {
    let all = bands.iter().flat_map(|b| b.lo.iter().chain(&b.hi)).copied();
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(v), h.max(v)));
    let (lo, hi) = if lo > hi {
        (0.0, 100.0)
    } else {
        padded(lo, hi)
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(65)
        .build_cartesian_2d(0.5..epochs as f64 + 0.5, lo.max(0.0)..hi.min(100.0))?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("accuracy (%)")
        .x_labels((epochs + 1).min(12))
        .x_label_formatter(&whole)
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 16))
        .draw()?;
    for (i, b) in bands.iter().enumerate() {
        let c = color(i);
        if b.x.len() > 1 {
            let edge: Vec<(f64, f64)> =
                b.x.iter()
                    .copied()
                    .zip(b.hi.iter().copied())
                    .chain(b.x.iter().copied().zip(b.lo.iter().copied()).rev())
                    .collect();
            chart.draw_series(std::iter::once(Polygon::new(edge, c.mix(0.18))))?;
        }
        // Whiskers show the seed spread even when there is a single epoch (no band to fill).
        chart.draw_series(
            b.x.iter()
                .zip(b.lo.iter().zip(&b.hi))
                .map(|(&x, (&l, &h))| {
                    PathElement::new(vec![(x, l), (x, h)], c.mix(0.6).stroke_width(2))
                }),
        )?;
        let pts: Vec<(f64, f64)> = b.x.iter().copied().zip(b.mean.iter().copied()).collect();
        chart.draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))?;
        chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 4, c.filled())))?;
    }
    Ok(())
}

/// Train (left) and test (right) accuracy per epoch, one line per mode, seeds as a band.
pub fn accuracy(path: &Path, title: &str, train: &[Band], test: &[Band]) -> Result<()> {
    let epochs = train
        .iter()
        .chain(test)
        .flat_map(|b| &b.x)
        .fold(1.0f64, |m, &x| m.max(x));
    render(path, ACCURACY_SIZE, |root| {
        let body = root.titled(title, (FAMILY, 24))?;
        let (charts, side) = body.split_horizontally(ACCURACY_SIZE.0 - LEGEND_W);
        let halves = charts.split_evenly((1, 2));
        band_chart(
            &halves[0],
            "train accuracy (running mean over the epoch)",
            train,
            epochs as usize,
        )?;
        band_chart(
            &halves[1],
            "test accuracy (end of epoch)",
            test,
            epochs as usize,
        )?;
        let entries: Vec<_> = train
            .iter()
            .enumerate()
            .map(|(i, b)| (b.label.clone(), color(i)))
            .collect();
        legend(
            &side,
            "mode",
            &entries,
            "line: mean over seeds\nband, whisker: min..max\nover seeds",
        )
    })
}

/// One line per series over a numeric x (e.g. every block's `w` over iterations).
pub fn lines(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    legend_title: &str,
    series: &[Line],
) -> Result<()> {
    let pts = || series.iter().flat_map(|l| l.points.iter().copied());
    let (x0, x1) = pts().fold((f64::MAX, f64::MIN), |(l, h), (x, _)| (l.min(x), h.max(x)));
    let (y0, y1) = pts().fold((f64::MAX, f64::MIN), |(l, h), (_, y)| (l.min(y), h.max(y)));
    let (x0, x1) = if x0 > x1 {
        (0.0, 1.0)
    } else {
        (x0, x1.max(x0 + 1.0))
    };
    let (y0, y1) = if y0 > y1 { (0.0, 1.0) } else { padded(y0, y1) };
    render(path, W_SIZE, |root| {
        let body = root.titled(title, (FAMILY, 24))?;
        let (chart_area, side) = body.split_horizontally(W_SIZE.0 - LEGEND_W);
        let mut chart = ChartBuilder::on(&chart_area)
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&whole)
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .draw()?;
        for (i, l) in series.iter().enumerate() {
            chart.draw_series(LineSeries::new(
                l.points.iter().copied(),
                color(i).stroke_width(2),
            ))?;
            if l.points.len() == 1 {
                chart.draw_series(
                    l.points
                        .iter()
                        .map(|&p| Circle::new(p, 4, color(i).filled())),
                )?;
            }
        }
        let entries: Vec<_> = series
            .iter()
            .enumerate()
            .map(|(i, l)| (l.label.clone(), color(i)))
            .collect();
        legend(&side, legend_title, &entries, "")
    })
}

/// Final `w` per block (x: block) with one line per dataset; `None` where a dataset's model
/// lacks that block.
pub fn final_w(
    path: &Path,
    title: &str,
    blocks: &[String],
    series: &[(String, Vec<Option<f64>>)],
) -> Result<()> {
    let all = series.iter().flat_map(|(_, v)| v.iter().flatten().copied());
    let (y0, y1) = all.fold((f64::MAX, f64::MIN), |(l, h), y| (l.min(y), h.max(y)));
    let (y0, y1) = if y0 > y1 {
        (0.0, 1.0)
    } else {
        padded(y0.min(0.0), y1.max(0.0))
    };
    let n = blocks.len().max(1);
    let name = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < blocks.len() {
            blocks[i as usize].clone()
        } else {
            String::new()
        }
    };
    render(path, FINAL_W_SIZE, |root| {
        let body = root.titled(title, (FAMILY, 24))?;
        let (chart_area, side) = body.split_horizontally(FINAL_W_SIZE.0 - LEGEND_W);
        let mut chart = ChartBuilder::on(&chart_area)
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("block")
            .y_desc("final w")
            .x_labels(n.min(32))
            .x_label_formatter(&name)
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 16))
            .draw()?;
        for (i, (_, ws)) in series.iter().enumerate() {
            let pts: Vec<(f64, f64)> = ws
                .iter()
                .enumerate()
                .filter_map(|(b, w)| w.map(|w| (b as f64, w)))
                .collect();
            chart.draw_series(LineSeries::new(pts.clone(), color(i).stroke_width(2)))?;
            chart.draw_series(
                pts.into_iter()
                    .map(|p| Circle::new(p, 5, color(i).filled())),
            )?;
        }
        let entries: Vec<_> = series
            .iter()
            .enumerate()
            .map(|(i, (l, _))| (l.clone(), color(i)))
            .collect();
        legend(&side, "dataset", &entries, "mean over seeds")
    })
}
