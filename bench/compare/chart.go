package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
)

// chartGroup is one group of bars: a label and the sweep target measured.
type chartGroup struct {
	label  string
	target string
}

// The chart's two panels. Groups whose target has no samples are left out.
var (
	chunkPanel = []chartGroup{
		{"16 KiB", chunkName(16 << 10)}, {"64 KiB", chunkName(64 << 10)},
		{"256 KiB", chunkName(256 << 10)}, {"1 MiB", chunkName(1 << 20)},
		{"scp", targetSCP}, {"MinIO", targetMinIO},
	}
	featurePanel = []chartGroup{
		{"none", "plugins: none"}, {"+rate limits", "+rate limits"}, {"+auth (JWT)", "+auth (JWT)"},
		{"+tracing", "+tracing"}, {"all on", chunkName(256 << 10)},
		{"scp", targetSCP}, {"MinIO", targetMinIO},
	}
)

var (
	colorUpload   = color.RGBA{0x3b, 0x6f, 0xb6, 0xff}
	colorDownload = color.RGBA{0xe0, 0x8a, 0x2c, 0xff}
	colorInk      = color.RGBA{0x22, 0x22, 0x22, 0xff}
	colorGrid     = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	colorMuted    = color.RGBA{0x66, 0x66, 0x66, 0xff}
)

// renderChart draws the sweep's median throughputs as grouped bars (upload
// and download) in two panels, by chunk size and by plugin, and writes a
// PNG. It uses only the standard library.
func renderChart(path string, samples []sample) error {
	const (
		width, height = 1640, 640
		scale         = 2
		top, bottom   = 120, 110
	)
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	fill(img, 0, 0, width, height, color.White)

	rounds, size := 0, int64(0)
	for _, s := range samples {
		rounds, size = max(rounds, s.Round), s.Bytes
	}
	value := func(op, target string) float64 { return median(pick(samples, op, target, sample.MBps)) }
	var peak float64
	for _, panel := range [][]chartGroup{chunkPanel, featurePanel} {
		for _, g := range panel {
			for _, op := range ops {
				peak = math.Max(peak, value(op, g.target))
			}
		}
	}
	if peak == 0 {
		return fmt.Errorf("no sweep samples to chart (run -sweep)")
	}
	step := niceStep(peak / 6)
	yMax := math.Ceil(peak*1.08/step) * step

	drawText(img, 40, 24, fmt.Sprintf("file to file over loopback, median MB/s of %d interleaved rounds, %s (greeter: TLS 1.3, sha256 verified by the CLI)", rounds, sizeName(size)), scale, colorInk)
	drawText(img, 40, 52, "upload", scale, colorInk)
	fill(img, 40+textWidth("upload", scale)+8, 52, 14, 14, colorUpload)
	drawText(img, 40+textWidth("upload", scale)+40, 52, "download", scale, colorInk)
	fill(img, 40+textWidth("upload", scale)+40+textWidth("download", scale)+8, 52, 14, 14, colorDownload)
	drawText(img, 40, height-34, "2 shared vCPUs with other work running: absolute numbers vary by 30 %, compare bars within one chart", scale, colorMuted)

	plotTop, plotBottom := top, height-bottom
	panels := []struct {
		title  string
		groups []chartGroup
		x0, x1 int
	}{
		{"by chunk size (every plugin on)", chunkPanel, 110, 760},
		{"by plugin switched on (256 KiB chunks)", featurePanel, 880, 1610},
	}
	for _, p := range panels {
		drawText(img, p.x0, plotTop-34, p.title, scale, colorInk)
		// Grid and axis labels.
		for v := 0.0; v <= yMax+step/2; v += step {
			y := plotBottom - int(v/yMax*float64(plotBottom-plotTop))
			fill(img, p.x0, y, p.x1-p.x0, 1, colorGrid)
			label := fmt.Sprintf("%.0f", v)
			drawText(img, p.x0-12-textWidth(label, scale), y-7, label, scale, colorMuted)
		}
		fill(img, p.x0, plotBottom, p.x1-p.x0, 2, colorInk)
		var groups []chartGroup
		for _, g := range p.groups {
			if value("upload", g.target) > 0 || value("download", g.target) > 0 {
				groups = append(groups, g)
			}
		}
		if len(groups) == 0 {
			continue
		}
		slot := (p.x1 - p.x0) / len(groups)
		bar := min(50, slot*2/5)
		for i, g := range groups {
			cx := p.x0 + i*slot + slot/2
			for j, op := range ops {
				v := value(op, g.target)
				x := cx - bar - 2 + j*(bar+4)
				h := int(v / yMax * float64(plotBottom-plotTop))
				c := colorUpload
				if op == "download" {
					c = colorDownload
				}
				fill(img, x, plotBottom-h, bar, h, c)
				label := fmt.Sprintf("%.0f", v)
				drawText(img, x+bar/2-textWidth(label, scale)/2, plotBottom-h-20, label, scale, colorInk)
			}
			// Labels of up to two lines, split at the first space.
			lines := []string{g.label}
			if textWidth(g.label, scale) > slot-8 {
				if a, b, ok := strings.Cut(g.label, " "); ok {
					lines = []string{a, b}
				}
			}
			for k, line := range lines {
				drawText(img, cx-textWidth(line, scale)/2, plotBottom+14+k*20, line, scale, colorInk)
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// niceStep rounds x up to 1, 2 or 5 times a power of ten.
func niceStep(x float64) float64 {
	if x <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(x)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= x {
			return m * p
		}
	}
	return 10 * p
}
