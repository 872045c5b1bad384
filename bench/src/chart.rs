//! The PNG chart: one panel per measure (throughput, p99, memory), one group of bars
//! per workload. Bars of a group share a scale, groups do not: a login storm and a
//! token check differ by three orders of magnitude, and what matters is each pair's
//! ratio. Drawn pixel by pixel with the 8x8 bitmap font, so it needs no font files.

use std::path::Path;

use crate::Result;

pub type Rgb = [u8; 3];

pub const REDAUTH: Rgb = [46, 110, 190];
pub const BASELINE: Rgb = [150, 150, 150];
const TARGET: Rgb = [200, 40, 40];
const INK: Rgb = [30, 30, 30];
const PAPER: Rgb = [255, 255, 255];

pub struct Bar {
    pub value: Option<f64>,
    /// Printed above the bar (or in its place when there is no value).
    pub label: String,
    pub color: Rgb,
}

pub struct Group {
    pub name: String,
    pub bars: Vec<Bar>,
    /// A red line at this value: where the redauth bar must reach (or stay below).
    pub target: Option<f64>,
}

pub struct Panel {
    pub title: String,
    pub groups: Vec<Group>,
}

const WIDTH: usize = 1200;
const PANEL_HEIGHT: usize = 300;
const HEADER: usize = 56;

struct Canvas {
    pixels: Vec<u8>,
    height: usize,
}

impl Canvas {
    fn new(height: usize) -> Self {
        Self {
            pixels: PAPER.repeat(WIDTH * height),
            height,
        }
    }

    fn put(&mut self, x: usize, y: usize, c: Rgb) {
        if x < WIDTH && y < self.height {
            let i = (y * WIDTH + x) * 3;
            if let Some(p) = self.pixels.get_mut(i..i + 3) {
                p.copy_from_slice(&c);
            }
        }
    }

    fn rect(&mut self, x: usize, y: usize, w: usize, h: usize, c: Rgb) {
        for yy in y..y + h {
            for xx in x..x + w {
                self.put(xx, yy, c);
            }
        }
    }

    /// ASCII text with its top-left corner at (x, y), each font pixel `scale` wide.
    fn text(&mut self, x: usize, y: usize, s: &str, scale: usize, c: Rgb) {
        for (i, ch) in ascii(s).bytes().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY
                .get(usize::from(ch))
                .copied()
                .unwrap_or_default();
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        let px = x + (i * 8 + col) * scale;
                        self.rect(px, y + row * scale, scale, scale, c);
                    }
                }
            }
        }
    }

    fn text_centered(&mut self, cx: usize, y: usize, s: &str, scale: usize, c: Rgb) {
        let w = ascii(s).len() * 8 * scale;
        self.text(cx.saturating_sub(w / 2), y, s, scale, c);
    }
}

/// The font has ASCII only; the table's few typographic characters get stand-ins.
fn ascii(s: &str) -> String {
    s.replace('×', "x")
        .replace('—', "-")
        .replace('≥', ">=")
        .replace('≤', "<=")
        .chars()
        .map(|c| if c.is_ascii() { c } else { '?' })
        .collect()
}

pub fn render(path: &Path, title: &str, legend: &str, panels: &[Panel]) -> Result<()> {
    let height = HEADER + PANEL_HEIGHT * panels.len();
    let mut canvas = Canvas::new(height);
    canvas.text(16, 10, title, 2, INK);
    canvas.rect(16, 36, 14, 10, REDAUTH);
    canvas.text(34, 37, "redauth", 1, INK);
    canvas.rect(110, 36, 14, 10, BASELINE);
    canvas.text(128, 37, "baseline", 1, INK);
    canvas.rect(214, 40, 14, 2, TARGET);
    canvas.text(232, 37, "target", 1, INK);
    canvas.text(300, 37, legend, 1, INK);
    for (i, panel) in panels.iter().enumerate() {
        draw_panel(&mut canvas, HEADER + i * PANEL_HEIGHT, panel);
    }
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut encoder = png::Encoder::new(file, WIDTH as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&canvas.pixels)?;
    writer.finish()?;
    Ok(())
}

fn draw_panel(canvas: &mut Canvas, top: usize, panel: &Panel) {
    canvas.rect(16, top + 4, WIDTH - 32, 1, BASELINE);
    canvas.text(16, top + 14, &panel.title, 2, INK);
    let plot_top = top + 60;
    let axis = top + PANEL_HEIGHT - 52;
    let plot_height = axis - plot_top;
    let n = panel.groups.len().max(1);
    let group_width = (WIDTH - 32) / n;
    canvas.rect(16, axis, WIDTH - 32, 1, INK);
    for (g, group) in panel.groups.iter().enumerate() {
        let left = 16 + g * group_width;
        let centre = left + group_width / 2;
        let scale_max = group
            .bars
            .iter()
            .filter_map(|b| b.value)
            .chain(group.target)
            .fold(0.0_f64, f64::max);
        let bar_width = (group_width / (group.bars.len() + 1)).min(80);
        let bars_width = bar_width * group.bars.len() + 8 * group.bars.len().saturating_sub(1);
        let first = centre.saturating_sub(bars_width / 2);
        let height_of = |v: f64| {
            if scale_max > 0.0 {
                ((v / scale_max) * plot_height as f64).round() as usize
            } else {
                0
            }
        };
        for (b, bar) in group.bars.iter().enumerate() {
            let x = first + b * (bar_width + 8);
            let h = bar.value.map_or(0, height_of);
            canvas.rect(x, axis - h, bar_width, h, bar.color);
            canvas.text_centered(x + bar_width / 2, axis - h - 12, &bar.label, 1, INK);
        }
        if let Some(t) = group.target {
            let y = axis - height_of(t);
            let from = first.saturating_sub(10);
            let to = first + bars_width + 10;
            let mut x = from;
            while x < to {
                canvas.rect(x, y, 6.min(to - x), 2, TARGET);
                x += 10;
            }
        }
        let words: Vec<&str> = group.name.split('\n').collect();
        for (l, line) in words.iter().enumerate() {
            canvas.text_centered(centre, axis + 10 + l * 12, line, 1, INK);
        }
    }
}
