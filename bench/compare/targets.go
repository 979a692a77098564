package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/greeter/greeter/certs"
)

// target is one way of moving a file to a server on loopback and back.
type target interface {
	// Name labels the target in tables, CSV files and charts.
	Name() string
	// Server is the server process, whose CPU time and peak RSS are read
	// around every transfer.
	Server() *process
	// Upload returns the command that stores the file src as object.
	Upload(src, object string) []string
	// Download returns the command that fetches object into the file dst.
	Download(object, dst string) []string
	// Remove deletes object from the server (not timed).
	Remove(ctx context.Context, object string) error
}

// greeterConfig describes one greeterd instance and how the CLI talks to it.
type greeterConfig struct {
	name string
	// auth is "jwt" (the dev-mode default) or "none".
	auth string
	// limits keeps the rate limits on (with --rate-transfer 1000 so one
	// transfer per round is never throttled); false switches every limit
	// off.
	limits bool
	// tracing exports spans as Harness.traces says; false sets
	// OTEL_TRACES_EXPORTER=none.
	tracing bool
	// metrics serves /metrics on a loopback port (never scraped).
	metrics bool
	// chunk is the server's --chunk-size and the CLI's --chunk-size; zero
	// keeps both defaults.
	chunk int64
	// s3, if set, makes greeterd store in a bucket (--storage s3) instead
	// of its data directory.
	s3 *s3Backend
}

// s3Backend is the bucket greeterd stores in with --storage s3.
type s3Backend struct {
	endpoint string // https://127.0.0.1:port
	bucket   string
	region   string
	ca       string // PEM file of the CA that signed the server's certificate
	// accessKey and secretKey go to greeterd as AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY, never on its command line.
	accessKey, secretKey string
	// partSize is --s3-part-size; zero keeps greeterd's default.
	partSize int64
}

// args returns greeterd's storage flags for the bucket.
func (b *s3Backend) args() []string {
	argv := []string{"--storage", "s3", "--s3-endpoint", b.endpoint, "--s3-bucket", b.bucket,
		"--s3-region", b.region, "--s3-ca", b.ca, "--s3-path-style"}
	if b.partSize > 0 {
		argv = append(argv, "--s3-part-size", strconv.FormatInt(b.partSize, 10))
	}
	return argv
}

// env returns the credentials' environment variables.
func (b *s3Backend) env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + b.accessKey, "AWS_SECRET_ACCESS_KEY=" + b.secretKey}
}

// chainOn is greeterd as users run it in dev mode, with every plugin on.
func chainOn(name string, chunk int64) greeterConfig {
	return greeterConfig{name: name, auth: "jwt", limits: true, tracing: true, metrics: true, chunk: chunk}
}

// chainOff is greeterd with every plugin that can be switched off switched
// off. Recovery and logging are always on in greeterd.
func chainOff(name string) greeterConfig {
	return greeterConfig{name: name, auth: "none"}
}

type greeterTarget struct {
	cfg      greeterConfig
	cli      string
	addr     string
	stateDir string
	proc     *process
}

func (t *greeterTarget) Name() string     { return t.cfg.name }
func (t *greeterTarget) Server() *process { return t.proc }

func (t *greeterTarget) args(cmd ...string) []string {
	argv := []string{t.cli, "--addr", t.addr, "--state-dir", t.stateDir, "--json"}
	if t.cfg.chunk > 0 {
		argv = append(argv, "--chunk-size", strconv.FormatInt(t.cfg.chunk, 10))
	}
	return append(argv, cmd...)
}

func (t *greeterTarget) Upload(src, object string) []string {
	return t.args("upload", src, "--as", object)
}

func (t *greeterTarget) Download(object, dst string) []string {
	return t.args("download", object, "-o", dst)
}

func (t *greeterTarget) Remove(ctx context.Context, object string) error {
	return run(ctx, cleanEnv(), t.args("rm", object)...)
}

// greeterdArgv is greeterd's command line for cfg: its own state
// directory, listening on addr, storing in dataDir or, with cfg.s3, in the
// bucket; metricsAddr, if not empty, serves /metrics.
func greeterdArgv(bin, stateDir, dataDir, addr, metricsAddr string, maxFile int64, cfg greeterConfig) []string {
	argv := []string{bin, "--state-dir", stateDir}
	if cfg.s3 != nil {
		argv = append(argv, cfg.s3.args()...)
	} else {
		argv = append(argv, "--data-dir", dataDir)
	}
	argv = append(argv, "--listen", addr,
		"--max-file-size", strconv.FormatInt(maxFile, 10),
		"--auth", cfg.auth,
	)
	if cfg.chunk > 0 {
		argv = append(argv, "--chunk-size", strconv.FormatInt(cfg.chunk, 10))
	}
	if cfg.limits {
		argv = append(argv, "--rate-transfer", "1000", "--rate-transfer-burst", "1000")
	} else {
		argv = append(argv, "--rate-peer", "-1", "--rate-unary", "-1", "--rate-transfer", "-1",
			"--max-transfers-per-identity", "-1")
	}
	if metricsAddr != "" {
		argv = append(argv, "--metrics-listen", metricsAddr)
	}
	return argv
}

// greeterdEnv is greeterd's environment for cfg: traces as tracesEnv says
// (or off), and the bucket's credentials with cfg.s3.
func greeterdEnv(cfg greeterConfig, tracesEnv []string) []string {
	var extra []string
	if cfg.tracing {
		extra = append(extra, tracesEnv...)
	} else {
		extra = append(extra, "OTEL_TRACES_EXPORTER=none")
	}
	if cfg.s3 != nil {
		extra = append(extra, cfg.s3.env()...)
	}
	return cleanEnv(extra...)
}

// startGreeterd starts greeterd in dev mode (TLS 1.3, dev PKI, JWT keys and
// a dev token in its own state directory) with the plugins cfg asks for.
func (h *harness) startGreeterd(ctx context.Context, cfg greeterConfig) (*greeterTarget, error) {
	slug := slug(cfg.name)
	state, err := mkdir(h.work, "greeterd-"+slug)
	if err != nil {
		return nil, err
	}
	data := ""
	if cfg.s3 == nil {
		if data, err = mkdir(h.serverDir, "greeterd-"+slug); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	metrics := ""
	if cfg.metrics {
		mport, err := freePort()
		if err != nil {
			return nil, err
		}
		metrics = "127.0.0.1:" + strconv.Itoa(mport)
	}
	argv := greeterdArgv(filepath.Join(h.bin, "greeterd"), state, data, addr, metrics, max(h.opts.size, 1<<30), cfg)
	env := greeterdEnv(cfg, h.tracesEnv())
	profileDir := ""
	if h.prof != nil {
		if profileDir, err = h.prof.serverDir(cfg.name); err != nil {
			return nil, err
		}
		env = append(env, profileEnv+"="+profileDir)
	}
	p, err := startProcess(cfg.name, filepath.Join(h.work, "greeterd-"+slug+".log"), env, argv...)
	if err != nil {
		return nil, err
	}
	h.onClose(func() { p.stop(10 * time.Second) })
	if h.prof != nil {
		h.prof.register(p, profileDir)
	}
	if err := waitTCP(ctx, p, addr, 30*time.Second); err != nil {
		return nil, err
	}
	t := &greeterTarget{cfg: cfg, cli: filepath.Join(h.bin, "greeter"), addr: addr, stateDir: state, proc: p}
	// The dev token is written before greeterd listens; check it works.
	if err := run(ctx, cleanEnv(), t.args("hello", "--name", "bench")...); err != nil {
		return nil, fmt.Errorf("%s: greeter hello: %w", cfg.name, err)
	}
	return t, nil
}

// greeterS3Bucket is the bucket greeter-s3 stores in, on the MinIO of the
// minio target, next to that target's bucket.
const greeterS3Bucket = "greeterd"

// s3Config is the greeter-s3 target: greeterd as users run it in dev mode
// (chainOn), storing in the bucket b.
func s3Config(chunk int64, b *s3Backend) greeterConfig {
	cfg := chainOn(targetGreeterS3, chunk)
	cfg.s3 = b
	return cfg
}

// startGreeterS3 starts greeterd with --storage s3 on the MinIO of the
// minio target (starting it if it is not running yet), in a bucket of its
// own.
func (h *harness) startGreeterS3(ctx context.Context) (*greeterTarget, error) {
	m, err := h.startMinIO(ctx)
	if err != nil {
		return nil, err
	}
	if err := m.makeBucket(ctx, greeterS3Bucket); err != nil {
		return nil, err
	}
	return h.startGreeterd(ctx, s3Config(h.opts.chunk, m.backend(greeterS3Bucket, h.opts.s3PartSize)))
}

// scpTarget is OpenSSH's scp (SFTP protocol, the default since OpenSSH 9.0)
// to a private sshd.
type scpTarget struct {
	proc    *process
	port    int
	key     string
	user    string
	dir     string
	options []string
}

func (t *scpTarget) Name() string     { return "scp" }
func (t *scpTarget) Server() *process { return t.proc }

func (t *scpTarget) scp(from, to string) []string {
	argv := append([]string{"scp", "-q", "-P", strconv.Itoa(t.port)}, t.options...)
	return append(argv, from, to)
}

func (t *scpTarget) remote(object string) string {
	return t.user + "@127.0.0.1:" + filepath.Join(t.dir, object)
}

func (t *scpTarget) Upload(src, object string) []string   { return t.scp(src, t.remote(object)) }
func (t *scpTarget) Download(object, dst string) []string { return t.scp(t.remote(object), dst) }

func (t *scpTarget) Remove(_ context.Context, object string) error {
	return os.Remove(filepath.Join(t.dir, object))
}

// sshCipher is the cipher of the comparison: the fastest OpenSSH offers
// on CPUs with AES-NI, and the one the table names.
const sshCipher = "aes128-gcm@openssh.com"

// startSSHD starts sshd on a private port with its own host key, config and
// authorized key, accepting only that key and only sshCipher.
func (h *harness) startSSHD(ctx context.Context) (*scpTarget, error) {
	dir, err := mkdir(h.work, "sshd")
	if err != nil {
		return nil, err
	}
	data, err := mkdir(h.serverDir, "sshd")
	if err != nil {
		return nil, err
	}
	hostKey, clientKey := filepath.Join(dir, "host_key"), filepath.Join(dir, "client_key")
	for _, k := range []string{hostKey, clientKey} {
		if err := run(ctx, cleanEnv(), "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "greeter-bench", "-f", k); err != nil {
			return nil, err
		}
	}
	pub, err := os.ReadFile(clientKey + ".pub")
	if err != nil {
		return nil, err
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, pub, 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	config := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`# greeter bench/compare: a private sshd on loopback.
Port %d
ListenAddress 127.0.0.1
HostKey %s
PidFile %s
AuthorizedKeysFile %s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
Ciphers %s
Subsystem sftp internal-sftp
LogLevel ERROR
`, port, hostKey, filepath.Join(dir, "sshd.pid"), authorized, sshCipher)), 0o600); err != nil {
		return nil, err
	}
	// sshd insists on its privilege separation directory.
	if _, err := os.Stat("/run/sshd"); os.IsNotExist(err) && os.Geteuid() == 0 {
		if err := os.Mkdir("/run/sshd", 0o755); err != nil {
			return nil, err
		}
		h.onClose(func() { os.Remove("/run/sshd") })
	}
	p, err := startProcess("sshd", filepath.Join(h.work, "sshd.log"), cleanEnv(), "/usr/sbin/sshd", "-D", "-e", "-f", config)
	if err != nil {
		return nil, err
	}
	h.onClose(func() { p.stop(5 * time.Second) })
	if err := waitTCP(ctx, p, "127.0.0.1:"+strconv.Itoa(port), 10*time.Second); err != nil {
		return nil, err
	}
	t := &scpTarget{proc: p, port: port, key: clientKey, user: u.Username, dir: data, options: []string{
		"-i", clientKey, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
		"-o", "Ciphers=" + sshCipher, "-o", "Compression=no",
	}}
	probe := filepath.Join(h.files, "probe")
	if err := os.WriteFile(probe, []byte("probe"), 0o600); err != nil {
		return nil, err
	}
	defer os.Remove(probe)
	if err := run(ctx, cleanEnv(), t.Upload(probe, "probe")...); err != nil {
		return nil, fmt.Errorf("scp probe: %w\n%s", err, p.tail())
	}
	return t, t.Remove(ctx, "probe")
}

// minioTarget is curl (SigV4, one PUT or GET per file) to a MinIO server.
type minioTarget struct {
	proc     *process
	endpoint string
	ca       string
	user     string // access key:secret key
	bucket   string
}

// minioRegion is the region MinIO answers for unless configured otherwise.
const minioRegion = "us-east-1"

func (t *minioTarget) Name() string     { return "minio" }
func (t *minioTarget) Server() *process { return t.proc }

func (t *minioTarget) curl(args ...string) []string {
	return append([]string{"curl", "-sS", "--fail", "--cacert", t.ca,
		"--aws-sigv4", "aws:amz:" + minioRegion + ":s3", "--user", t.user}, args...)
}

// backend describes bucket on this server, for greeterd's --storage s3.
func (t *minioTarget) backend(bucket string, partSize int64) *s3Backend {
	ak, sk, _ := strings.Cut(t.user, ":")
	return &s3Backend{endpoint: t.endpoint, bucket: bucket, region: minioRegion, ca: t.ca,
		accessKey: ak, secretKey: sk, partSize: partSize}
}

// makeBucket creates bucket on the server. MinIO listens before it
// serves, so it retries for a while.
func (t *minioTarget) makeBucket(ctx context.Context, bucket string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := run(ctx, cleanEnv(), t.curl("-o", "/dev/null", "-X", "PUT", t.endpoint+"/"+bucket)...)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("creating the MinIO bucket %s: %w\n%s", bucket, err, t.proc.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (t *minioTarget) url(object string) string {
	return t.endpoint + "/" + t.bucket + "/" + object
}

func (t *minioTarget) Upload(src, object string) []string {
	return t.curl("-o", "/dev/null", "-T", src, t.url(object))
}

func (t *minioTarget) Download(object, dst string) []string {
	return t.curl("-o", dst, t.url(object))
}

func (t *minioTarget) Remove(ctx context.Context, object string) error {
	return run(ctx, cleanEnv(), t.curl("-o", "/dev/null", "-X", "DELETE", t.url(object))...)
}

// startMinIO starts MinIO on loopback with a TLS certificate from a fresh
// dev PKI (certs.InitDev) and creates the bucket. The minio and greeter-s3
// targets share the one server a run starts.
func (h *harness) startMinIO(ctx context.Context) (*minioTarget, error) {
	if h.minioT != nil {
		return h.minioT, nil
	}
	dir, err := mkdir(h.work, "minio")
	if err != nil {
		return nil, err
	}
	data, err := mkdir(h.serverDir, "minio")
	if err != nil {
		return nil, err
	}
	pki, err := certs.InitDev(filepath.Join(dir, "pki"), certs.DevOptions{})
	if err != nil {
		return nil, err
	}
	certDir, err := mkdir(dir, "certs")
	if err != nil {
		return nil, err
	}
	for from, to := range map[string]string{pki.ServerCert: "public.crt", pki.ServerKey: "private.key"} {
		b, err := os.ReadFile(from)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(certDir, to), b, 0o600); err != nil {
			return nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	console, err := freePort()
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 16)
	rand.Read(secret)
	ak, sk := "greeterbench", hex.EncodeToString(secret)
	env := cleanEnv("MINIO_ROOT_USER="+ak, "MINIO_ROOT_PASSWORD="+sk,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CONFIG_ENV_FILE=/dev/null")
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := startProcess("minio", filepath.Join(h.work, "minio.log"), env, h.minio,
		"server", "--quiet", "--address", addr, "--console-address", "127.0.0.1:"+strconv.Itoa(console),
		"--certs-dir", certDir, data)
	if err != nil {
		return nil, err
	}
	h.onClose(func() { p.stop(10 * time.Second) })
	if err := waitTCP(ctx, p, addr, 60*time.Second); err != nil {
		return nil, err
	}
	t := &minioTarget{proc: p, endpoint: "https://" + addr, ca: pki.CA, user: ak + ":" + sk, bucket: "bench"}
	if err := t.makeBucket(ctx, t.bucket); err != nil {
		return nil, err
	}
	h.minioT = t
	return t, nil
}

// startJaeger starts the Jaeger all-in-one that scripts/jaeger.sh installs
// into .bin, with every port private, and returns its OTLP/HTTP endpoint.
func (h *harness) startJaeger(ctx context.Context) (string, error) {
	bin := filepath.Join(h.root, ".bin", "all-in-one")
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("-traces jaeger needs %s: run scripts/jaeger.sh once to install it", bin)
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	otlp := "127.0.0.1:" + strconv.Itoa(port)
	anyPort := "127.0.0.1:0"
	p, err := startProcess("jaeger", filepath.Join(h.work, "jaeger.log"), cleanEnv("SPAN_STORAGE_TYPE=memory"), bin,
		"--collector.otlp.enabled=true",
		"--collector.otlp.grpc.host-port="+anyPort,
		"--collector.otlp.http.host-port="+otlp,
		"--query.http-server.host-port="+anyPort,
		"--query.grpc-server.host-port="+anyPort,
		"--admin.http.host-port="+anyPort,
		"--collector.grpc-server.host-port="+anyPort,
		"--collector.http-server.host-port="+anyPort,
		"--collector.zipkin.host-port=",
		"--http-server.host-port="+anyPort,
		"--processor.jaeger-binary.server-host-port="+anyPort,
		"--processor.jaeger-compact.server-host-port="+anyPort,
		"--processor.zipkin-compact.server-host-port="+anyPort,
	)
	if err != nil {
		return "", err
	}
	h.onClose(func() { p.stop(5 * time.Second) })
	if err := waitTCP(ctx, p, otlp, 30*time.Second); err != nil {
		return "", err
	}
	return "http://" + otlp, nil
}

// run runs argv to completion, returning its output in the error if it
// fails.
func run(ctx context.Context, env []string, argv ...string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(argv[:min(len(argv), 3)], " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
