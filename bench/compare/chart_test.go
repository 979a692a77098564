package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sweepSamples returns three rounds of a 256 MiB sweep in which every target
// runs at the given upload and download MB/s, give or take 5 %.
func sweepSamples(rates map[string][2]float64) []sample {
	const size = 256 << 20
	var out []sample
	for round := range 3 {
		for target, r := range rates {
			for j, op := range ops {
				mbps := r[j] * (0.95 + 0.05*float64(round))
				wall := time.Duration(float64(size) / 1e6 / mbps * float64(time.Second))
				out = append(out, sample{Round: round + 1, Op: op, Target: target, Bytes: size, Wall: wall})
			}
		}
	}
	return out
}

func TestRenderChart(t *testing.T) {
	samples := sweepSamples(map[string][2]float64{
		chunkName(16 << 10): {141, 228}, chunkName(64 << 10): {158, 233},
		chunkName(256 << 10): {198, 246}, chunkName(1 << 20): {207, 292},
		"plugins: none": {190, 269}, "+rate limits": {196, 266}, "+auth (JWT)": {195, 254}, "+tracing": {197, 261},
		targetSCP: {198, 240}, targetMinIO: {242, 499},
	})
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := renderChart(path, samples); err != nil {
		t.Fatalf("renderChart: %v", err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the chart is not a PNG: %v", err)
	}
	if got, want := img.Bounds().Size(), (image.Point{X: 1640, Y: 640}); got != want {
		t.Errorf("chart size = %v, want %v", got, want)
	}
	// Both series are drawn: each bar colour covers a good share of the
	// image (a bar of 141 MB/s alone is thousands of pixels).
	for _, op := range ops {
		if n := countColor(img, opColor[op]); n < 20000 {
			t.Errorf("%s bars cover %d pixels, want at least 20000", op, n)
		}
	}
}

func TestRenderChartWithoutSweepSamples(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chart.png")
	samples := sweepSamples(map[string][2]float64{targetGreeter: {200, 250}})
	err := renderChart(path, samples)
	if err == nil || !strings.Contains(err.Error(), "no sweep samples") {
		t.Fatalf("renderChart without sweep targets = %v, want a no sweep samples error", err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("renderChart wrote %s although it failed (stat: %v)", path, err)
	}
}

// countColor counts the pixels of img that are exactly c.
func countColor(img image.Image, c color.Color) int {
	r0, g0, b0, a0 := c.RGBA()
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, b, a := img.At(x, y).RGBA()
			if r == r0 && g == g0 && b == b0 && a == a0 {
				n++
			}
		}
	}
	return n
}
