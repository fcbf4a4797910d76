//! The HTML report in a real browser: headless Chromium renders the page
//! with the network blocked, takes a screenshot, and we check that the page
//! logged no errors and that the screenshot is not blank.
//!
//! Skipped (with the reason printed) when no Chromium is installed, unless
//! `WHATIF_REQUIRE_BROWSER=1` (CI sets it, after installing Debian's
//! `chromium`). Set `WHATIF_KEEP_SCREENSHOT=path.png` to keep the screenshot
//! for a look.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use whatif_report::html;

fn find_chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("WHATIF_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    })
}

/// Decode an 8-bit RGB(A) PNG and return (width, height, share of pixels
/// that are not near-white, luminance variance).
fn png_stats(path: &Path) -> (u32, u32, f64, f64) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("screenshot exists"),
    ));
    let mut reader = decoder.read_info().expect("screenshot is a PNG");
    let mut buf = vec![0; reader.output_buffer_size().expect("size")];
    let info = reader.next_frame(&mut buf).expect("PNG decodes");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let px = &buf[..info.buffer_size()];
    let (mut n, mut non_white, mut sum, mut sum2) = (0f64, 0f64, 0f64, 0f64);
    for p in px.chunks_exact(channels) {
        let l = 0.2126 * f64::from(p[0]) + 0.7152 * f64::from(p[1]) + 0.0722 * f64::from(p[2]);
        n += 1.0;
        sum += l;
        sum2 += l * l;
        if l < 235.0 {
            non_white += 1.0;
        }
    }
    let mean = sum / n;
    (
        info.width,
        info.height,
        non_white / n,
        sum2 / n - mean * mean,
    )
}

#[test]
fn report_renders_in_chromium() {
    let Some(chromium) = find_chromium() else {
        if std::env::var("WHATIF_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!("WHATIF_REQUIRE_BROWSER=1 but no chromium found on PATH");
        }
        println!(
            "skipped: chromium not installed (install Debian's `chromium`, or set WHATIF_CHROMIUM)"
        );
        return;
    };
    let (report, charts) = common::report_and_charts(100_000);
    let page = html::render_with(
        &report,
        &common::metrics(),
        &common::dag(),
        &charts,
        Some(
            "Credit-card portfolio under a limit increase and a recession stress, one borrower per sample.",
        ),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let html_path = dir.path().join("report.html");
    std::fs::write(&html_path, &page).expect("write HTML");
    let png_path = dir.path().join("shot.png");
    let profile = dir.path().join("profile");
    let url = format!("file://{}", html_path.display());
    let out = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2400",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png_path.display()))
        .arg(&url)
        .output()
        .expect("chromium runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chromium failed ({}):\n{stderr}",
        out.status
    );
    let console: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(
        console.is_empty(),
        "the page logged errors:\n{}",
        console.join("\n")
    );
    let (w, h, non_white, variance) = png_stats(&png_path);
    if let Ok(keep) = std::env::var("WHATIF_KEEP_SCREENSHOT") {
        std::fs::copy(&png_path, &keep).expect("keep screenshot");
        let _ = std::fs::write(Path::new(&keep).with_extension("html"), &page);
    }
    assert_eq!((w, h), (1280, 2400));
    // A blank (or error) page is nearly all one colour; the report has
    // cards, tables and charts everywhere.
    assert!(
        non_white > 0.05,
        "screenshot looks blank: {:.1}% non-white pixels",
        non_white * 100.0
    );
    assert!(
        variance > 100.0,
        "screenshot has almost no contrast: luminance variance {variance:.1}"
    );
}
