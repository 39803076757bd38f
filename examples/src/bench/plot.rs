//! The bench's plot: one full dump of every thread against the number of
//! threads, log–log, written as SVG with `plotters` (SVG backend only: the
//! text is SVG text, drawn by whatever shows the file).

use plotters::prelude::*;

use super::stats::dur;

/// One line of the plot: (threads, nanoseconds) points.
pub struct Series {
    pub name: &'static str,
    pub points: Vec<(f64, f64)>,
}

/// Colours of the series, in order (guru's in blues, the floor in black,
/// the peers in warm colours).
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
];

/// The SVG text of the plot; a plot that says why it is empty when no
/// series has two points.
pub fn dump_vs_threads(series: &[Series]) -> String {
    let mut svg = String::new();
    if let Err(e) = draw(&mut svg, series) {
        return format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"40\">\
             <text x=\"10\" y=\"25\">plot failed: {}</text></svg>\n",
            e.to_string().replace(['<', '>', '&'], " ")
        );
    }
    svg
}

fn draw<'a>(svg: &'a mut String, series: &[Series]) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .filter(|&(x, y)| x > 0.0 && y > 0.0)
        .collect();
    let fold = |f: fn(f64, f64) -> f64, init: f64, pick: fn(&(f64, f64)) -> f64| {
        all.iter().map(pick).fold(init, f)
    };
    let (x0, x1) = (
        fold(f64::min, f64::MAX, |p| p.0),
        fold(f64::max, 0.0, |p| p.0),
    );
    let (y0, y1) = (
        fold(f64::min, f64::MAX, |p| p.1),
        fold(f64::max, 0.0, |p| p.1),
    );
    if all.is_empty() {
        return Err("no figures to plot".into());
    }
    let mut ns: Vec<f64> = all.iter().map(|p| p.0).collect();
    ns.sort_by(f64::total_cmp);
    ns.dedup();
    let root = SVGBackend::with_string(svg, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "One full dump of every thread (idle threads, log-log)",
            ("sans-serif", 22),
        )
        .margin(18)
        .x_label_area_size(50)
        .y_label_area_size(90)
        .build_cartesian_2d(
            (x0 / 1.3..x1 * 1.3).log_scale().with_key_points(ns),
            (y0 / 2.0..y1 * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("threads in the process (N)")
        .y_desc("wall time of one dump")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| dur(*y))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 16))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|&(x, y)| x > 0.0 && y > 0.0)
            .collect();
        if points.is_empty() {
            continue;
        }
        let colour = COLOURS[i % COLOURS.len()];
        let style = if s.name.starts_with("floor") {
            colour.stroke_width(2)
        } else {
            colour.stroke_width(3)
        };
        chart
            .draw_series(LineSeries::new(points.clone(), style))?
            .label(s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, colour.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
