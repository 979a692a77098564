package telemetry

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Direction says which way a transfer moves bytes. It is a metric label, so
// only the constants below are recorded; anything else becomes
// DirectionOther.
type Direction string

// Transfer directions.
const (
	DirectionUpload   Direction = "upload"
	DirectionDownload Direction = "download"
	DirectionOther    Direction = "other"
)

// RateLimitReason says which limit rejected a request. It is a metric label,
// so only the constants below are recorded; anything else becomes
// RateLimitOther.
type RateLimitReason string

// Rate-limit reasons.
const (
	// RateLimitRate: the caller's request rate exceeded its token bucket.
	RateLimitRate RateLimitReason = "rate"
	// RateLimitConcurrency: the caller had too many RPCs or transfers open.
	RateLimitConcurrency RateLimitReason = "concurrency"
	// RateLimitBandwidth: the caller exceeded its byte budget.
	RateLimitBandwidth RateLimitReason = "bandwidth"
	// RateLimitGlobal: the server as a whole was at capacity.
	RateLimitGlobal RateLimitReason = "global"
	RateLimitOther  RateLimitReason = "other"
)

// AuthFailureReason says why a request failed authentication or
// authorization. It is a metric label, so only the constants below are
// recorded; anything else becomes AuthOther.
type AuthFailureReason string

// Authentication and authorization failure reasons.
const (
	AuthMissingCredentials AuthFailureReason = "missing_credentials"
	AuthMalformedToken     AuthFailureReason = "malformed_token"
	AuthBadSignature       AuthFailureReason = "bad_signature"
	AuthExpired            AuthFailureReason = "expired"
	AuthNotYetValid        AuthFailureReason = "not_yet_valid"
	AuthWrongIssuer        AuthFailureReason = "wrong_issuer"
	AuthWrongAudience      AuthFailureReason = "wrong_audience"
	AuthUnknownKey         AuthFailureReason = "unknown_key"
	AuthBadCertificate     AuthFailureReason = "bad_certificate"
	AuthPermissionDenied   AuthFailureReason = "permission_denied"
	AuthOther              AuthFailureReason = "other"
)

// CertExpiry names a certificate the server uses and when it expires.
type CertExpiry struct {
	// Name identifies the certificate in the "cert" label, for example
	// "server", "client_ca". It must come from a fixed set chosen by the
	// program, never from a peer.
	Name string
	// NotAfter is the certificate's expiry time.
	NotAfter time.Time
}

// Metrics records the service's own metrics. A nil *Metrics is valid: every
// method is then a no-op, so callers need not check.
type Metrics struct {
	bytes      metric.Int64Counter
	active     metric.Int64UpDownCounter
	rateLimits metric.Int64Counter
	authFails  metric.Int64Counter
	serving    metric.Int64Gauge
	certReg    metric.Registration

	// quotaRefusals, storageReg and meter serve the quota metrics (see
	// quota_metrics.go).
	quotaRefusals metric.Int64Counter
	storageReg    metric.Registration
	meter         metric.Meter

	// fallbacks serves CoordinationFallback (see coordination_metrics.go).
	fallbacks metric.Int64Counter
}

// NewMetrics creates the service's instruments on mp:
//
//   - greeter.transfer.bytes (counter, By; label direction)
//   - greeter.transfer.active (up-down counter, {transfer}; label direction)
//   - greeter.ratelimit.rejections (counter, {request}; label reason)
//   - greeter.auth.failures (counter, {request}; label reason)
//   - greeter.quota.rejections (counter, {upload}; label subject), and the
//     storage gauges that ObserveStorage adds (see quota_metrics.go)
//   - greeter.storage.serving (gauge; 1 while the storage can take uploads
//     and health reports SERVING, 0 while NOT_SERVING), set by StorageServing
//   - greeter.coordination.fallbacks (counter, {decision}; label
//     coordination: limits, leases or usage): decisions made locally
//     because the shared store (Redis) did not answer
//   - greeter.tls.certificate.not_after (gauge, s since the Unix epoch;
//     label cert), observed at each collection by calling certs, only when
//     certs is not nil
//
// Prometheus shows them as greeter_transfer_bytes_total and so on. An alert
// on certificate expiry compares greeter_tls_certificate_not_after_seconds
// with time().
func NewMetrics(mp metric.MeterProvider, certs func() []CertExpiry) (*Metrics, error) {
	meter := mp.Meter(ScopeName)
	var m Metrics
	var err, e error
	m.bytes, e = meter.Int64Counter("greeter.transfer.bytes",
		metric.WithUnit("By"),
		metric.WithDescription("Bytes moved by completed and failed file transfers."))
	err = errors.Join(err, e)
	m.active, e = meter.Int64UpDownCounter("greeter.transfer.active",
		metric.WithUnit("{transfer}"),
		metric.WithDescription("File transfers in progress."))
	err = errors.Join(err, e)
	m.rateLimits, e = meter.Int64Counter("greeter.ratelimit.rejections",
		metric.WithUnit("{request}"),
		metric.WithDescription("Requests rejected by a rate or concurrency limit."))
	err = errors.Join(err, e)
	m.authFails, e = meter.Int64Counter("greeter.auth.failures",
		metric.WithUnit("{request}"),
		metric.WithDescription("Requests that failed authentication or authorization."))
	err = errors.Join(err, e)
	m.serving, e = meter.Int64Gauge("greeter.storage.serving",
		metric.WithDescription("1 while the storage can take uploads (health SERVING), 0 while it cannot (NOT_SERVING)."))
	err = errors.Join(err, e)
	m.meter = meter
	m.quotaRefusals, e = newQuotaRefusals(meter)
	err = errors.Join(err, e)
	m.fallbacks, e = newCoordinationFallbacks(meter)
	err = errors.Join(err, e)
	if certs != nil {
		notAfter, e := meter.Int64ObservableGauge("greeter.tls.certificate.not_after",
			metric.WithUnit("s"),
			metric.WithDescription("Expiry (NotAfter) of a certificate in use, in seconds since the Unix epoch."))
		err = errors.Join(err, e)
		if e == nil {
			m.certReg, e = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
				for _, c := range certs() {
					o.ObserveInt64(notAfter, c.NotAfter.Unix(), metric.WithAttributes(attribute.String("cert", c.Name)))
				}
				return nil
			}, notAfter)
			err = errors.Join(err, e)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("telemetry: create metrics: %w", err)
	}
	return &m, nil
}

// Close stops observing certificates and storage. The other instruments
// live as long as the MeterProvider.
func (m *Metrics) Close() error {
	if m == nil {
		return nil
	}
	var err error
	for _, reg := range []metric.Registration{m.certReg, m.storageReg} {
		if reg != nil {
			err = errors.Join(err, reg.Unregister())
		}
	}
	return err
}

// AddUploaded counts n bytes received from clients.
func (m *Metrics) AddUploaded(ctx context.Context, n int64) {
	m.addBytes(ctx, DirectionUpload, n)
}

// AddDownloaded counts n bytes sent to clients.
func (m *Metrics) AddDownloaded(ctx context.Context, n int64) {
	m.addBytes(ctx, DirectionDownload, n)
}

func (m *Metrics) addBytes(ctx context.Context, dir Direction, n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.bytes.Add(ctx, n, directionOpt(dir)...)
}

// TransferStarted counts a transfer in progress and returns the func that
// ends it. Calling the returned func more than once has no further effect.
func (m *Metrics) TransferStarted(ctx context.Context, dir Direction) (done func()) {
	if m == nil {
		return func() {}
	}
	attrs := directionOpt(dir)
	m.active.Add(ctx, 1, attrs...)
	var ended atomic.Bool
	return func() {
		if ended.CompareAndSwap(false, true) {
			m.active.Add(context.WithoutCancel(ctx), -1, attrs...)
		}
	}
}

// OnTransfer has the signature of service.Options.OnTransfer: it counts the
// transfer as active until the returned func is called, which also adds the
// bytes moved to greeter.transfer.bytes. direction is "upload" or
// "download".
func (m *Metrics) OnTransfer(ctx context.Context, direction string) func(bytes int64) {
	if m == nil {
		return func(int64) {}
	}
	dir := Direction(direction)
	done := m.TransferStarted(ctx, dir)
	return func(n int64) {
		done()
		m.addBytes(context.WithoutCancel(ctx), dir, n)
	}
}

// RateLimited counts a request rejected for reason.
func (m *Metrics) RateLimited(ctx context.Context, reason RateLimitReason) {
	if m == nil {
		return
	}
	opt, ok := rateLimitOpts[reason]
	if !ok {
		opt = rateLimitOpts[RateLimitOther]
	}
	m.rateLimits.Add(ctx, 1, opt...)
}

// StorageServing records the outcome of the latest storage health check,
// as the health service reports it: serving or not serving.
func (m *Metrics) StorageServing(ctx context.Context, serving bool) {
	if m == nil {
		return
	}
	var v int64
	if serving {
		v = 1
	}
	m.serving.Record(ctx, v)
}

// AuthFailed counts a request that failed authentication or authorization
// for reason.
func (m *Metrics) AuthFailed(ctx context.Context, reason AuthFailureReason) {
	if m == nil {
		return
	}
	opt, ok := authFailureOpts[reason]
	if !ok {
		opt = authFailureOpts[AuthOther]
	}
	m.authFails.Add(ctx, 1, opt...)
}

// The options of the fixed label values, each attribute set (and the
// variadic slice that carries it) built once: building them per call
// (metric.WithAttributes) cost four allocations and a hash on every
// transfer, rejection and failure.
var (
	directionOpts = optionsFor("direction", DirectionUpload, DirectionDownload, DirectionOther)

	rateLimitOpts = optionsFor("reason", RateLimitRate, RateLimitConcurrency, RateLimitBandwidth,
		RateLimitGlobal, RateLimitOther)

	authFailureOpts = optionsFor("reason", AuthMissingCredentials, AuthMalformedToken,
		AuthBadSignature, AuthExpired, AuthNotYetValid, AuthWrongIssuer, AuthWrongAudience,
		AuthUnknownKey, AuthBadCertificate, AuthPermissionDenied, AuthOther)
)

// optionsFor returns, for each value, the options recording key=value.
func optionsFor[V ~string](key string, values ...V) map[V][]metric.AddOption {
	opts := make(map[V][]metric.AddOption, len(values))
	for _, v := range values {
		opts[v] = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String(key, string(v))))}
	}
	return opts
}

// directionOpt returns the option recording dir; anything but upload and
// download is recorded as DirectionOther.
func directionOpt(dir Direction) []metric.AddOption {
	if opt, ok := directionOpts[dir]; ok {
		return opt
	}
	return directionOpts[DirectionOther]
}
