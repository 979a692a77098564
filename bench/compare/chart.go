package main

import (
	"fmt"
	"image/color"
	"math"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// chartGroup is one group of bars: a label and the sweep target measured.
// A label may hold a line break.
type chartGroup struct {
	label  string
	target string
}

// chartPanel is one panel of the chart: a title and its groups of bars.
type chartPanel struct {
	title  string
	groups []chartGroup
}

// The chart's two panels. Groups whose target has no samples are left out.
var chartPanels = []chartPanel{
	{"by chunk size (every plugin on)", []chartGroup{
		{"16 KiB", chunkName(16 << 10)}, {"64 KiB", chunkName(64 << 10)},
		{"256 KiB", chunkName(256 << 10)}, {"1 MiB", chunkName(1 << 20)},
		{"scp", targetSCP}, {"MinIO", targetMinIO},
	}},
	{"by plugin switched on (256 KiB chunks)", []chartGroup{
		{"none", "plugins: none"}, {"+rate\nlimits", "+rate limits"}, {"+auth\n(JWT)", "+auth (JWT)"},
		{"+tracing", "+tracing"}, {"all on", chunkName(256 << 10)},
		{"scp", targetSCP}, {"MinIO", targetMinIO},
	}},
}

var (
	opColor = map[string]color.Color{
		"upload":   color.RGBA{0x3b, 0x6f, 0xb6, 0xff},
		"download": color.RGBA{0xe0, 0x8a, 0x2c, 0xff},
	}
	colorGrid  = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
	colorMuted = color.RGBA{0x66, 0x66, 0x66, 0xff}
	chartFont  = font.Font{Typeface: "Liberation", Variant: "Sans"}
)

// The chart's size: 1640×640 pixels.
const (
	chartWidth  = 16.4 * vg.Inch
	chartHeight = 6.4 * vg.Inch
	chartDPI    = 100
)

// renderChart draws the sweep's median throughputs as grouped bars (upload
// and download) in two panels, by chunk size and by plugin, over one MB/s
// scale, and writes a PNG.
func renderChart(path string, samples []sample) error {
	rounds, size := 0, int64(0)
	for _, s := range samples {
		rounds, size = max(rounds, s.Round), s.Bytes
	}
	value := func(op, target string) float64 { return median(pick(samples, op, target, sample.MBps)) }
	return renderPanels(path, fmt.Sprintf("File to file over loopback, median MB/s of %d interleaved rounds, %s (greeter: TLS 1.3, SHA-256 verified by the CLI)", rounds, sizeName(size)),
		"2 shared vCPUs with other work running: absolute numbers vary by 30 %, compare bars within one chart",
		chartPanels, []func(op, target string) float64{value, value})
}

// modeGroups are the groups of a panel of the chart by mode, in the order
// of the comparison: greeter, the peers that promise as much, then the
// ones that promise less.
var modeGroups = []chartGroup{
	{"greeter", targetGreeter}, {"rsync\n(ssh)", targetRsync}, {"scp +\nsync", targetSCPSync},
	{"scp", targetSCP}, {"MinIO\n(curl)", targetMinIO}, {"raw\nTLS 1.3", targetTLS},
}

// renderModesChart draws issue 15's chart: median MB/s by tool, one panel
// per mode, and writes a PNG.
func renderModesChart(path string, samples []sample) error {
	rounds, size := 0, int64(0)
	var (
		panels []chartPanel
		values []func(op, target string) float64
	)
	for _, mode := range []string{modePinned, modeShared} {
		in := inMode(samples, mode)
		if len(in) == 0 {
			continue
		}
		for _, s := range in {
			if s.Round > 0 {
				rounds, size = max(rounds, s.Round), s.Bytes
			}
		}
		panels = append(panels, chartPanel{modeTitle[mode], modeGroups})
		values = append(values, func(op, target string) float64 { return median(pick(in, op, target, sample.MBps)) })
	}
	return renderPanels(path, fmt.Sprintf("File to file over loopback, median MB/s of %d interleaved rounds, %s (greeter: TLS 1.3, SHA-256 verified, fsync before it answers)", rounds, sizeName(size)),
		"rsync verifies a whole-file checksum; scp + sync fsyncs the written file; scp, MinIO via curl and raw TLS do neither. Compare bars within one panel.",
		panels, values)
}

// renderAnyChart renders the chart the samples of a CSV file are for: the
// sweep's or the one by mode.
func renderAnyChart(path string, samples []sample) error {
	for _, s := range samples {
		if s.Target == chunkName(256<<10) {
			return renderChart(path, samples)
		}
	}
	return renderModesChart(path, samples)
}

// renderPanels draws panels side by side, each with value[i] as its bars'
// heights, under title and over one MB/s scale, with note at the foot, and
// writes a PNG.
func renderPanels(path, title, note string, panels []chartPanel, value []func(op, target string) float64) error {
	var peak float64
	for i, p := range panels {
		for _, g := range p.groups {
			for _, op := range ops {
				peak = math.Max(peak, value[i](op, g.target))
			}
		}
	}
	if peak == 0 {
		return fmt.Errorf("no samples to chart (no sweep samples for the sweep chart, no mode samples for the chart by mode)")
	}

	img := vgimg.NewWith(vgimg.UseWH(chartWidth, chartHeight), vgimg.UseDPI(chartDPI))
	dc := draw.New(img)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())

	const header, footer, margin = 0.8 * vg.Inch, 0.45 * vg.Inch, 0.4 * vg.Inch
	dc.FillText(textStyle(13, color.Black), vg.Point{X: margin, Y: dc.Max.Y - 0.3*vg.Inch}, title)
	// The legend, in a row under the title: one single-entry legend per
	// operation, side by side.
	band := draw.Crop(dc, margin, 0, chartHeight-header, -0.4*vg.Inch)
	for _, op := range ops {
		l := plot.NewLegend()
		l.Top, l.Left = true, true
		l.TextStyle.Font = font.From(chartFont, 12)
		l.Add(op, &plotter.BarChart{Color: opColor[op]})
		l.Draw(band)
		band = draw.Crop(band, l.Rectangle(band).Size().X+0.3*vg.Inch, 0, 0, 0)
	}
	dc.FillText(textStyle(11, colorMuted), vg.Point{X: margin, Y: dc.Min.Y + 0.15*vg.Inch}, note)

	var plots []*plot.Plot
	for i, p := range panels {
		pp, err := panelPlot(p, value[i], peak*1.12)
		if err != nil {
			return err
		}
		plots = append(plots, pp)
	}
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadLeft: margin / 2, PadRight: margin / 2, PadX: margin,
		PadTop: header, PadBottom: footer}
	for i, c := range plot.Align([][]*plot.Plot{plots}, tiles, dc)[0] {
		plots[i].Draw(c)
	}

	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// panelPlot builds one panel: for each group that has samples, an upload
// and a download bar labelled with its value, on a y axis from 0 to yMax.
func panelPlot(panel chartPanel, value func(op, target string) float64, yMax float64) (*plot.Plot, error) {
	var groups []chartGroup
	for _, g := range panel.groups {
		if value("upload", g.target) > 0 || value("download", g.target) > 0 {
			groups = append(groups, g)
		}
	}
	p := plot.New()
	p.Title.Text = panel.title
	p.Title.TextStyle.Font = font.From(chartFont, 13)
	p.X.Tick.Label.Font = font.From(chartFont, 12)
	p.Y.Tick.Label.Font = font.From(chartFont, 11)
	p.Y.Label.Text = "MB/s"
	p.Y.Label.TextStyle.Font = font.From(chartFont, 12)
	p.Y.Min, p.Y.Max = 0, yMax
	p.Y.Tick.Marker = plot.TickerFunc(yTicks)
	p.Add(&plotter.Grid{Horizontal: draw.LineStyle{Color: colorGrid, Width: vg.Points(0.75)}})
	if len(groups) == 0 {
		return p, nil
	}

	// A slot per group on a panel about 7 inches wide; the two bars take
	// four fifths of it.
	bar := min(0.45*vg.Inch, 7*vg.Inch/vg.Length(len(groups))*2/5)
	labels := make([]string, len(groups))
	for i, g := range groups {
		labels[i] = g.label
	}
	for j, op := range ops {
		values := make(plotter.Values, len(groups))
		points := make(plotter.XYs, len(groups))
		texts := make([]string, len(groups))
		for i, g := range groups {
			values[i] = value(op, g.target)
			points[i] = plotter.XY{X: float64(i), Y: values[i]}
			texts[i] = fmt.Sprintf("%.0f", values[i])
		}
		offset := (vg.Length(j) - 0.5) * (bar + vg.Points(3))
		bars, err := plotter.NewBarChart(values, bar)
		if err != nil {
			return nil, err
		}
		bars.Color, bars.LineStyle.Width, bars.Offset = opColor[op], 0, offset
		p.Add(bars)
		l, err := plotter.NewLabels(plotter.XYLabels{XYs: points, Labels: texts})
		if err != nil {
			return nil, err
		}
		for i := range l.TextStyle {
			l.TextStyle[i].Font = font.From(chartFont, 11)
			l.TextStyle[i].XAlign, l.TextStyle[i].YAlign = text.XCenter, text.YBottom
		}
		l.Offset = vg.Point{X: offset, Y: vg.Points(3)}
		p.Add(l)
	}
	p.NominalX(labels...)
	p.X.Min, p.X.Max = -0.5, float64(len(groups))-0.5
	return p, nil
}

// yTicks labels the MB/s axis in whole numbers, at about six steps of 1, 2
// or 5 times a power of ten.
func yTicks(lo, hi float64) []plot.Tick {
	step := niceStep((hi - lo) / 6)
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprintf("%.0f", v)})
	}
	return ticks
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

// textStyle is a plain text style in the chart's font.
func textStyle(size vg.Length, c color.Color) draw.TextStyle {
	return text.Style{
		Color:   c,
		Font:    font.From(chartFont, size),
		Handler: plot.DefaultTextHandler,
	}
}
