package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/internal/sysdeps"
)

// TestVersionOnBothBinaries: --version prints the program, the module and
// the revision line on both binaries, exit 0.
func TestVersionOnBothBinaries(t *testing.T) {
	for name, res := range map[string]func() (int, string){
		"greeter":  func() (int, string) { r := bins.CLI(t, nil, "--version"); return r.Code, r.Stdout },
		"greeterd": func() (int, string) { r := bins.RunServer(t, nil, "--version"); return r.Code, r.Stdout },
	} {
		code, out := res()
		if code != 0 || !strings.HasPrefix(out, name+" ") || !strings.Contains(out, "module:   github.com/greeter/greeter\n") || !strings.Contains(out, "revision: ") {
			t.Errorf("%s --version: exit %d, stdout %q; want exit 0, the program, the module and a revision line", name, code, out)
		}
	}
}

// TestVersionNamesTheCommit: a greeter built with VCS stamping from a clone
// of this repository reports the clone's HEAD, its commit time and an
// unmodified tree. (A clone, because the go command stamps only checkouts
// whose .git is a directory, not git worktrees.)
func TestVersionNamesTheCommit(t *testing.T) {
	clone := filepath.Join(t.TempDir(), "greeter")
	if out, err := exec.Command("git", "clone", "-q", "--shared", repoRoot(), clone).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	head, err := exec.Command("git", "-C", clone, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatalf("git rev-parse HEAD: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "greeter")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/greeter")
	build.Dir = clone
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build -buildvcs=true: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"revision: " + strings.TrimSpace(string(head)) + "\n", "time:     20", "modified: false\n"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("greeter --version printed\n%s\nwant it to contain %q", out, w)
		}
	}
}

// TestBashCompletion loads "greeter completion bash" into a real bash and
// completes "greeter up", "greeter u" and "greeter upload --cr" through it, as a user's
// shell would.
func TestBashCompletion(t *testing.T) {
	sysdeps.LookPath(t, "bash", "bash")
	// Cobra's script builds on the bash-completion package, as every
	// distribution's bash setup does.
	lib := sysdeps.File(t, "/usr/share/bash-completion/bash_completion", "bash-completion")
	script := `source ` + lib + ` || exit 1
source <(greeter completion bash) || exit 1
complete -p greeter
complete_words() {
	COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
	COMPREPLY=(); __start_greeter 2>/dev/null; printf 'reply: %s\n' "${COMPREPLY[@]}"
}
complete_words greeter up
complete_words greeter u
complete_words greeter upload --cr`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(bins.Greeter)+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	// "up" completes to upload alone, "u" to upload and usage.
	for _, w := range []string{"-F __start_greeter greeter\n", "reply: upload\nreply: upload\nreply: usage\nreply: --create-only\n"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("bash completion printed\n%s\nwant %q", out, w)
		}
	}
}

// reflectedServices lists the services greeterd at addr describes through
// the reflection API, over TLS verified by the dev CA in state.
func reflectedServices(t *testing.T, addr, state string) ([]string, error) {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(state, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := reflectionv1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&reflectionv1.ServerReflectionRequest{MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{}}); err != nil {
		return nil, err
	}
	resp, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	return names, nil
}

// TestDevModeReflection: a dev greeterd answers the reflection API without
// being asked to (what grpcurl list needs); --reflection=false turns it off.
func TestDevModeReflection(t *testing.T) {
	srv, state := devServer(t)
	names, err := reflectedServices(t, srv.Addr, state)
	if err != nil {
		t.Fatalf("reflection against a dev greeterd: %v", err)
	}
	if !slices.Contains(names, "Greeter") || !slices.Contains(names, "grpc.health.v1.Health") {
		t.Fatalf("reflection listed %q; want Greeter and grpc.health.v1.Health", names)
	}

	off, offState := devServer(t, "--reflection=false")
	_, err = reflectedServices(t, off.Addr, offState)
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("reflection with --reflection=false: %v, want Unimplemented", err)
	}
}

// hintOf waits for the connect hint greeterd prints and returns it.
func hintOf(t *testing.T, stdout func() string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, after, ok := strings.Cut(stdout(), "Connect with:\n\n  ")
		if line, _, done := strings.Cut(after, "\n"); ok && done {
			return line
		}
	}
	t.Fatalf("greeterd printed no connect hint:\n%s", stdout())
	return ""
}

// TestConnectHintWorksOnAFreshClone: without greeter on the PATH, the
// hint a dev greeterd prints is a go run command that, run as printed, says
// hello; with greeter on the PATH, the hint uses it.
func TestConnectHintWorksOnAFreshClone(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	bare := "PATH=" + filepath.Dir(goBin) + ":/usr/bin:/bin"
	srv := bins.StartServer(t, []string{bare}, "--state-dir", t.TempDir())
	hint := hintOf(t, srv.Stdout.String)
	if !strings.HasPrefix(hint, "go -C ") || !strings.Contains(hint, " run ./cmd/greeter --addr "+srv.Addr) {
		t.Fatalf("hint without greeter on the PATH: %q; want go -C ROOT run ./cmd/greeter --addr %s ...", hint, srv.Addr)
	}
	cmd := exec.Command("sh", "-c", hint)
	cmd.Dir = t.TempDir() // anywhere: the hint names the checkout
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GREETER_") && !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv) // only what the hint says counts
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Hello, you!") {
		t.Fatalf("running the hint %q: %v\n%s", hint, err, out)
	}

	withCLI := bins.StartServer(t, []string{"PATH=" + filepath.Dir(bins.Greeter) + ":" + os.Getenv("PATH")}, "--state-dir", t.TempDir())
	if hint := hintOf(t, withCLI.Stdout.String); !strings.HasPrefix(hint, "greeter --addr "+withCLI.Addr) {
		t.Fatalf("hint with greeter on the PATH: %q; want greeter --addr %s ...", hint, withCLI.Addr)
	}
}
