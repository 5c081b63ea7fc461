//! Line charts as PNG (plotters, labelled with DejaVu Sans): the learning curve of
//! `empo2 train` and the comparison charts of `empo2 experiment`.

use std::path::Path;
use std::sync::Once;

use anyhow::Context;
use plotters::prelude::*;

/// One line of a chart.
pub(crate) struct Series {
    /// Legend text.
    pub(crate) label: String,
    /// (x, y) points in order of x.
    pub(crate) points: Vec<(f32, f32)>,
    /// Index into the palette: lines of one arm share it.
    pub(crate) color: usize,
    /// A thin, pale line (raw values under their average).
    pub(crate) faint: bool,
}

const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// `window`-point trailing moving average of `points`.
pub(crate) fn moving_average(points: &[(f32, f32)], window: usize) -> Vec<(f32, f32)> {
    (0..points.len())
        .map(|i| {
            let part = &points[(i + 1).saturating_sub(window)..=i];
            let mean = part.iter().map(|p| p.1).sum::<f32>() / part.len() as f32;
            (points[i].0, mean)
        })
        .collect()
}

fn register_font() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = (|| {
            let font = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
                .context("no DejaVuSans.ttf to label the plot with")?;
            plotters::style::register_font(
                "sans-serif",
                FontStyle::Normal,
                Box::leak(font.into_boxed_slice()),
            )
            .map_err(|_| anyhow::anyhow!("the font does not load"))
        })();
    });
    result
}

/// Draws `series` into `path` (800×480) with a caption and axis names.
pub(crate) fn lines(
    path: &Path,
    caption: &str,
    axes: (&str, &str),
    series: &[Series],
) -> anyhow::Result<()> {
    register_font()?;
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x_lo, x_hi) = all().fold((0f32, 1f32), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let (y_lo, y_hi) = all().fold((0f32, 10f32), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let root = BitMapBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(x_lo..x_hi, (y_lo - 5.0)..(y_hi + 5.0))?;
    chart
        .configure_mesh()
        .x_desc(axes.0)
        .y_desc(axes.1)
        .draw()?;
    for s in series {
        let base = PALETTE[s.color % PALETTE.len()];
        let style = match s.faint {
            true => base.mix(0.35).stroke_width(1),
            false => base.stroke_width(2),
        };
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))?
            .label(&s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
