package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/greeter/greeter/certs"
)

// scpTarget is OpenSSH's scp (SFTP protocol, the default since OpenSSH 9.0)
// to a private sshd, or one of its variants over the same sshd (kind).
type scpTarget struct {
	proc    *process
	port    int
	key     string
	user    string
	dir     string
	options []string
	// kind is targetSCP (or empty), targetSCPSync or targetRsync.
	kind string
	// mode is where the harness runs servers and clients (sync of an
	// uploaded file runs on the server's core).
	mode string
}

func (t *scpTarget) Name() string {
	if t.kind == "" {
		return targetSCP
	}
	return t.kind
}

func (t *scpTarget) Server() *process { return t.proc }

func (t *scpTarget) scp(from, to string) []string {
	argv := append([]string{"scp", "-q", "-P", strconv.Itoa(t.port)}, t.options...)
	return append(argv, from, to)
}

func (t *scpTarget) remote(object string) string {
	return t.user + "@127.0.0.1:" + filepath.Join(t.dir, object)
}

func (t *scpTarget) Upload(src, object string) []string {
	switch t.kind {
	case targetRsync:
		return t.rsync(src, t.remote(object))
	case targetSCPSync:
		// The uploaded file is the server's: its sync runs on the server's core.
		return thenSync(t.scp(src, t.remote(object)), pinned(t.mode, serverCPU, []string{"sync"}), filepath.Join(t.dir, object))
	}
	return t.scp(src, t.remote(object))
}

func (t *scpTarget) Download(object, dst string) []string {
	switch t.kind {
	case targetRsync:
		return t.rsync(t.remote(object), dst)
	case targetSCPSync:
		return thenSync(t.scp(t.remote(object), dst), []string{"sync"}, dst)
	}
	return t.scp(t.remote(object), dst)
}

// rsync copies with rsync over ssh with the scp target's options (one
// cipher for every ssh peer): the whole file (-W, no delta search),
// verified by rsync's whole-file checksum.
func (t *scpTarget) rsync(from, to string) []string {
	ssh := append([]string{"ssh", "-p", strconv.Itoa(t.port)}, t.options...)
	return []string{"rsync", "-W", "-q", "-e", strings.Join(ssh, " "), from, to}
}

// thenSync returns a command that runs argv and then syncArgv on file
// (coreutils sync FILE: fsync of that file), as one timed command.
func thenSync(argv, syncArgv []string, file string) []string {
	script := `"$@" && exec ` + strings.Join(syncArgv, " ") + ` "$0"`
	return append([]string{"sh", "-c", script, file}, argv...)
}

// startSSHPeer returns the ssh target of kind, starting this mode's sshd
// if it is not running yet; each kind stores in a directory of its own.
func (h *harness) startSSHPeer(ctx context.Context, kind string) (*scpTarget, error) {
	if h.sshT == nil {
		base, err := h.startSSHD(ctx)
		if err != nil {
			return nil, err
		}
		h.sshT = base
	}
	t := *h.sshT
	t.kind, t.mode = kind, h.mode
	var err error
	if t.dir, err = mkdir(h.sshT.dir, kind); err != nil {
		return nil, err
	}
	return &t, nil
}

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
	p, err := startProcess("sshd", filepath.Join(h.work, "sshd.log"), cleanEnv(), h.serverArgv("/usr/sbin/sshd", "-D", "-e", "-f", config)...)
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
	p, err := startProcess("minio", filepath.Join(h.work, "minio.log"), env, h.serverArgv(h.minio,
		"server", "--quiet", "--address", addr, "--console-address", "127.0.0.1:"+strconv.Itoa(console),
		"--certs-dir", certDir, data)...)
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
