//! PNG line charts with `plotters`' bitmap backend. Text (title, tick values, legend) is drawn with the
//! monospaced bitmap fonts built into `embedded-graphics`, so rendering needs no system fonts or fontconfig.

use std::path::Path;

use anyhow::{Result, anyhow};
use embedded_graphics::mono_font::MonoTextStyle;
use embedded_graphics::mono_font::ascii::{FONT_6X10, FONT_9X15_BOLD};
use embedded_graphics::pixelcolor::{Rgb888, RgbColor as _};
use embedded_graphics::prelude::{DrawTarget, OriginDimensions, Point, Size};
use embedded_graphics::text::{Alignment, Baseline, Text, TextStyleBuilder};
use embedded_graphics::{Drawable, Pixel};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;

/// One line of a chart.
#[derive(Clone, Debug, Serialize)]
pub struct Line {
    /// Legend text.
    pub name: String,
    /// (x, y) points, x ascending.
    pub points: Vec<(f64, f64)>,
}

/// A chart to render.
#[derive(Clone, Debug, Serialize)]
pub struct Plot {
    /// File name inside the output folder (`*.png`).
    pub file: String,
    /// Title drawn on top.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines.
    pub series: Vec<Line>,
}

const W: u32 = 960;
const H: u32 = 520;
const LEFT: i32 = 70;
const RIGHT: i32 = 220;
const TOP: i32 = 44;
const BOTTOM: i32 = 50;
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// embedded-graphics drawing onto a plotters drawing area, pixel by pixel.
struct Canvas<'a, DB: DrawingBackend> {
    area: &'a DrawingArea<DB, Shift>,
}

impl<DB: DrawingBackend> OriginDimensions for Canvas<'_, DB> {
    fn size(&self) -> Size {
        let (w, h) = self.area.dim_in_pixel();
        Size::new(w, h)
    }
}

impl<DB: DrawingBackend> DrawTarget for Canvas<'_, DB> {
    type Color = Rgb888;
    type Error = std::convert::Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(p, c) in pixels {
            let _ = self
                .area
                .draw_pixel((p.x, p.y), &RGBColor(c.r(), c.g(), c.b()));
        }
        Ok(())
    }
}

fn text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    s: &str,
    at: (i32, i32),
    align: Alignment,
    bold: bool,
    color: Rgb888,
) {
    let font = if bold { &FONT_9X15_BOLD } else { &FONT_6X10 };
    let style = MonoTextStyle::new(font, color);
    let layout = TextStyleBuilder::new()
        .alignment(align)
        .baseline(Baseline::Middle)
        .build();
    let mut canvas = Canvas { area };
    let _ = Text::with_text_style(s, Point::new(at.0, at.1), style, layout).draw(&mut canvas);
}

/// A "nice" step (1, 2 or 5 × 10^k) giving about `n` ticks over `span`.
fn nice_step(span: f64, n: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / n;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm < 1.5 {
        1.0
    } else if norm < 3.5 {
        2.0
    } else if norm < 7.5 {
        5.0
    } else {
        10.0
    };
    m * mag
}

fn fmt_tick(v: f64, step: f64) -> String {
    if step >= 1.0 {
        format!("{v:.0}")
    } else if step >= 0.1 {
        format!("{v:.1}")
    } else if step >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Renders `plot` to `path` (PNG).
pub fn render(plot: &Plot, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, (W, H)).into_drawing_area();
    let e = |err: DrawingAreaErrorKind<_>| anyhow!("plot {}: {err:?}", plot.file);
    root.fill(&WHITE).map_err(e)?;
    let pts = plot.series.iter().flat_map(|l| l.points.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in pts {
        if x.is_finite() && y.is_finite() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= 0.0 {
        y1 = 1.0;
    }
    let y_step = nice_step(y1, 5.0);
    let y1 = (y1 / y_step).ceil() * y_step;
    let x_step = nice_step(x1 - x0, 8.0);
    let area = root.margin(TOP as u32, BOTTOM as u32, LEFT as u32, RIGHT as u32);
    let mut chart = ChartBuilder::on(&area)
        .build_cartesian_2d(x0..x1, 0.0..y1)
        .map_err(|err| anyhow!("plot {}: {err:?}", plot.file))?;
    let grid = RGBColor(225, 225, 225);
    let mut ticks_y = Vec::new();
    let mut v = 0.0;
    while v <= y1 + y_step * 0.01 {
        ticks_y.push(v);
        v += y_step;
    }
    let mut ticks_x = Vec::new();
    let mut v = (x0 / x_step).ceil() * x_step;
    while v <= x1 + x_step * 0.01 {
        ticks_x.push(v);
        v += x_step;
    }
    let e2 = |err| anyhow!("plot: {err:?}");
    for &t in &ticks_y {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x0, t), (x1, t)],
                grid,
            )))
            .map_err(e2)?;
    }
    for &t in &ticks_x {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(t, 0.0), (t, y1)],
                grid,
            )))
            .map_err(e2)?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(x0, y1), (x0, 0.0), (x1, 0.0)],
            BLACK.stroke_width(1),
        )))
        .map_err(e2)?;
    for (i, line) in plot.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<(f64, f64)> = line
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(e2)?;
    }
    let black = Rgb888::BLACK;
    let gray = Rgb888::new(90, 90, 90);
    for &t in &ticks_y {
        let (px, py) = chart.backend_coord(&(x0, t));
        text(
            &root,
            &fmt_tick(t, y_step),
            (px - 6, py),
            Alignment::Right,
            false,
            gray,
        );
    }
    for &t in &ticks_x {
        let (px, py) = chart.backend_coord(&(t, 0.0));
        text(
            &root,
            &fmt_tick(t, x_step),
            (px, py + 10),
            Alignment::Center,
            false,
            gray,
        );
    }
    text(
        &root,
        &plot.title,
        (W as i32 / 2 - RIGHT / 2, 16),
        Alignment::Center,
        true,
        black,
    );
    text(
        &root,
        &plot.y_label,
        (8, TOP - 12),
        Alignment::Left,
        false,
        black,
    );
    text(
        &root,
        &plot.x_label,
        (LEFT + (W as i32 - LEFT - RIGHT) / 2, H as i32 - 14),
        Alignment::Center,
        false,
        black,
    );
    for (i, line) in plot.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let y = TOP + 10 + i as i32 * 20;
        let x = W as i32 - RIGHT + 16;
        root.draw(&PathElement::new(
            vec![(x, y), (x + 24, y)],
            color.stroke_width(3),
        ))
        .map_err(e)?;
        text(
            &root,
            &line.name,
            (x + 32, y),
            Alignment::Left,
            false,
            black,
        );
    }
    root.present().map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(0.9, 5.0), 0.2);
        assert_eq!(nice_step(1000.0, 8.0), 100.0);
        assert_eq!(fmt_tick(0.25, 0.05), "0.25");
    }

    #[test]
    fn renders_a_png_with_text_pixels() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("p.png");
        let plot = Plot {
            file: "p.png".into(),
            title: "lag".into(),
            x_label: "seconds".into(),
            y_label: "lag (s)".into(),
            series: vec![Line {
                name: "p99 down".into(),
                points: vec![(0.0, 1.0), (1.0, 2.0), (2.0, 0.5)],
            }],
        };
        render(&plot, &path)?;
        let bytes = std::fs::read(&path)?;
        assert_eq!(&bytes[1..4], b"PNG");
        // Without text the title row would be blank white; with it some pixels of that band are dark.
        let img_has_dark_title = {
            // Decode is not available without an image crate here; render again into a buffer instead.
            let mut buf = vec![0u8; (W * H * 3) as usize];
            {
                let root = BitMapBackend::with_buffer(&mut buf, (W, H)).into_drawing_area();
                root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
                text(
                    &root,
                    "lag",
                    (100, 16),
                    Alignment::Left,
                    true,
                    Rgb888::BLACK,
                );
                root.present().map_err(|e| anyhow!("{e:?}"))?;
            }
            buf.chunks(3)
                .any(|p| p[0] < 100 && p[1] < 100 && p[2] < 100)
        };
        assert!(img_has_dark_title);
        Ok(())
    }
}
