package s3store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/greeter/greeter/internal/s3test"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

func TestOpenNamesTheProblem(t *testing.T) {
	const wrongSecret = "not-the-secret-1234"
	unreachable := optionsFor(t, shared)
	unreachable.Endpoint = "http://127.0.0.1:1"
	for _, tt := range []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"wrong secret", func(o *Options) {
			o.Credentials = credentials.NewStaticV4(s3test.AccessKey, wrongSecret, "")
		}, "rejected the request signature"},
		{"unknown access key", func(o *Options) {
			o.Credentials = credentials.NewStaticV4("nobody", wrongSecret, "")
		}, "does not know the access key"},
		{"no credentials", func(o *Options) {
			o.Credentials = credentials.New(&credentials.Static{})
		}, "no credentials found"},
		{"missing bucket", func(o *Options) { o.Bucket = "no-such-bucket" }, `bucket "no-such-bucket" does not exist`},
		{"unreachable endpoint", func(o *Options) { o.Endpoint = unreachable.Endpoint }, "cannot reach the S3 server"},
		{"no endpoint", func(o *Options) { o.Endpoint = "" }, "no endpoint"},
		{"not a URL scheme", func(o *Options) { o.Endpoint = "ftp://127.0.0.1" }, "must start with https:// or http://"},
		{"endpoint with a path", func(o *Options) { o.Endpoint += "/bucket" }, "no path"},
		{"no bucket", func(o *Options) { o.Bucket = "" }, "no bucket"},
		{"small parts", func(o *Options) { o.PartSize = 1 << 20 }, "part size"},
		{"missing CA file", func(o *Options) { o.CAFile = filepath.Join(t.TempDir(), "none.pem") }, "CA file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := optionsFor(t, shared)
			tt.mod(&o)
			s, err := Open(testCtx(t), o)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open: %v\nwant it to say %q", err, tt.want)
			}
			if strings.Contains(err.Error(), wrongSecret) || strings.Contains(err.Error(), s3test.SecretKey) {
				t.Errorf("Open's error holds a secret: %v", err)
			}
		})
	}
}

func TestOpenCredentialChain(t *testing.T) {
	o := optionsFor(t, shared)
	o.Credentials = nil
	t.Run("environment", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", s3test.AccessKey)
		t.Setenv("AWS_SECRET_ACCESS_KEY", s3test.SecretKey)
		s, err := Open(testCtx(t), o)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
	t.Run("shared credentials file", func(t *testing.T) {
		t.Setenv("AWS_ACCESS_KEY_ID", "")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "")
		file := filepath.Join(t.TempDir(), "credentials")
		body := "[default]\naws_access_key_id = " + s3test.AccessKey + "\naws_secret_access_key = " + s3test.SecretKey + "\n"
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
		t.Setenv("AWS_PROFILE", "")
		s, err := Open(testCtx(t), o)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	})
}

func TestOpenTLSWithCAFile(t *testing.T) {
	srv := s3test.Start(t, s3test.WithTLS())
	o := optionsFor(t, srv)
	if s, err := Open(testCtx(t), o); err == nil {
		s.Close()
		t.Fatal("Open trusted a certificate from an unknown CA")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Open without the CA: %v; want it to name the certificate", err)
	}
	o.CAFile = srv.CAFile
	s, err := Open(testCtx(t), o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := data(testPart+1, 21)
	put(t, s, "f", b)
	if got := get(t, s, "f"); string(got) != string(b) {
		t.Error("read back differs over TLS")
	}
}

// TestOwnerSegmentMatchesDiskStore checks that both stores name an owner
// alike, and accept the same owners.
func TestOwnerSegmentMatchesDiskStore(t *testing.T) {
	if MaxOwnerLen != diskstore.MaxOwnerLen {
		t.Fatalf("MaxOwnerLen = %d, diskstore's is %d", MaxOwnerLen, diskstore.MaxOwnerLen)
	}
	dir := t.TempDir()
	ds, err := diskstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	for _, o := range []string{owner, "A", "a", strings.Repeat("\xff", MaxOwnerLen)} {
		up, err := ds.Create(testCtx(t), o, "f")
		if err != nil {
			t.Fatal(err)
		}
		up.Write([]byte("x"))
		if _, err := up.Commit(testCtx(t), service.Expect{}); err != nil {
			t.Fatal(err)
		}
		seg, err := ownerSegment(o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "objects", seg, "f")); err != nil {
			t.Errorf("owner %q: the disk store's folder is not %q: %v", o, seg, err)
		}
	}
}

// switchable is a credentials provider whose keys a test changes at run
// time.
type switchable struct {
	mu     sync.Mutex
	secret string
}

func (p *switchable) set(secret string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.secret = secret
}

func (p *switchable) Retrieve() (credentials.Value, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return credentials.Value{AccessKeyID: s3test.AccessKey, SecretAccessKey: p.secret, SignerType: credentials.SignatureV4}, nil
}

func (p *switchable) RetrieveWithCredContext(*credentials.CredContext) (credentials.Value, error) {
	return p.Retrieve()
}

func (p *switchable) IsExpired() bool { return true }

func TestRefusedCredentialsAtRunTimeAreUnavailable(t *testing.T) {
	creds := &switchable{secret: s3test.SecretKey}
	s := openStore(t, nil, func(o *Options) { o.Credentials = credentials.New(creds) })
	put(t, s, "f", data(10, 1))
	const revoked = "revoked-secret-5678"
	creds.set(revoked)
	errs := map[string]error{}
	_, errs["Stat"] = s.Stat(testCtx(t), owner, "f")
	_, errs["List"] = s.List(testCtx(t), owner, "", "", 10)
	errs["Check"] = s.Check(testCtx(t))
	_, errs["BeginResumable"] = s.BeginResumable(testCtx(t), owner, resume("id", "g", data(1, 1), 0))
	for op, err := range errs {
		if !errors.Is(err, service.ErrUnavailable) || !strings.Contains(err.Error(), "signature") {
			t.Errorf("%s = %v; want ErrUnavailable naming the signature", op, err)
		}
		if err != nil && strings.Contains(err.Error(), revoked) {
			t.Errorf("%s's error holds the secret: %v", op, err)
		}
	}
	creds.set(s3test.SecretKey)
	if err := s.Check(testCtx(t)); err != nil {
		t.Errorf("Check with the right keys again: %v", err)
	}
}
