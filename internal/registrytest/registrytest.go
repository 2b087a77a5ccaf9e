// Package registrytest starts a real OCI registry for tests: Debian's `docker-registry` (the
// CNCF distribution registry, v2.8) on a free loopback port, with filesystem storage in a
// temporary directory, optionally behind TLS with a self-signed certificate and htpasswd
// authentication. The registry is stopped when the test ends.
package registrytest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"
)

// Binary is the registry program started by Start.
const Binary = "docker-registry"

// Registry is a running registry.
type Registry struct {
	// Host is "127.0.0.1:PORT", the registry part of an image reference.
	Host string
	// URL is "http://127.0.0.1:PORT" or "https://127.0.0.1:PORT".
	URL string
	// Username and Password are set when the registry requires htpasswd authentication.
	Username string
	Password string
	// CAPool trusts the registry's self-signed certificate (nil without TLS).
	CAPool *x509.CertPool
	// CACertPEM is that certificate, PEM-encoded (nil without TLS).
	CACertPEM []byte
	// CertDir is a directory holding that certificate as ca.crt, the layout that skopeo's
	// --cert-dir / --dest-cert-dir expect ("" without TLS).
	CertDir string
	// Transport is an *http.Transport for this registry: it trusts CAPool when TLS is on.
	Transport *http.Transport
	// StorageDir is the registry's filesystem storage root.
	StorageDir string

	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
	logs     *syncBuffer
}

type config struct {
	tls      bool
	user     string
	password string
}

// Option configures Start.
type Option func(*config)

// WithTLS serves HTTPS with a self-signed certificate for 127.0.0.1 and localhost, generated
// for this registry.
func WithTLS() Option { return func(c *config) { c.tls = true } }

// WithHTPasswd requires HTTP basic authentication with this user and password (stored
// bcrypt-hashed in an htpasswd file, the only format the registry accepts). Combine it with
// WithTLS, as a real deployment would.
func WithHTPasswd(user, password string) Option {
	return func(c *config) { c.user, c.password = user, password }
}

// Available reports whether the registry binary is installed.
func Available() bool {
	_, err := exec.LookPath(Binary)
	return err == nil
}

// NeedBinary returns the path of the program bin, or skips the test when it is not installed
// there. Under CI (the CI environment variable is set) a missing program fails the test
// instead, so that a CI machine without it cannot pass by skipping. pkg names the Debian
// package that provides it.
func NeedBinary(t testing.TB, bin, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err == nil {
		return p
	}
	// Never skipped: scripts/setup installs it, and a skip would hide a failure.
	t.Fatalf("%s is not installed (Debian package %s; scripts/setup installs it)", bin, pkg)
	return ""
}

// Start starts a registry and returns it once /v2/ answers. It is stopped (and its storage
// removed) when t ends. Without the docker-registry program the test fails (see NeedBinary).
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	bin := NeedBinary(t, Binary, "docker-registry")
	var c config
	for _, o := range opts {
		o(&c)
	}

	dir := t.TempDir()
	r := &Registry{
		StorageDir: filepath.Join(dir, "storage"),
		Username:   c.user,
		Password:   c.password,
		logs:       &syncBuffer{},
	}
	if err := os.MkdirAll(r.StorageDir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.Transport = http.DefaultTransport.(*http.Transport).Clone()
	r.Transport.Proxy = nil // loopback only, whatever the environment says

	var tlsYAML, authYAML string
	if c.tls {
		certPEM, keyPEM, err := selfSigned()
		if err != nil {
			t.Fatalf("registrytest: generate certificate: %v", err)
		}
		certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		r.CertDir = filepath.Join(dir, "certs")
		writeFile(t, certFile, certPEM, 0o644)
		writeFile(t, keyFile, keyPEM, 0o600)
		if err := os.MkdirAll(r.CertDir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(r.CertDir, "ca.crt"), certPEM, 0o644)
		r.CACertPEM = certPEM
		r.CAPool = x509.NewCertPool()
		r.CAPool.AppendCertsFromPEM(certPEM)
		r.Transport.TLSClientConfig = &tls.Config{RootCAs: r.CAPool, MinVersion: tls.VersionTLS12}
		tlsYAML = fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", certFile, keyFile)
	}
	if c.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(c.password), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("registrytest: bcrypt: %v", err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		writeFile(t, htpasswd, []byte(c.user+":"+string(hash)+"\n"), 0o600)
		authYAML = fmt.Sprintf("auth:\n  htpasswd:\n    realm: registrytest\n    path: %s\n", htpasswd)
	}

	var lastErr error
	for try := 0; try < 3; try++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("registrytest: find a free port: %v", err)
		}
		r.Host = fmt.Sprintf("127.0.0.1:%d", port)
		r.URL = "http://" + r.Host
		if c.tls {
			r.URL = "https://" + r.Host
		}
		secret := make([]byte, 16)
		_, _ = rand.Read(secret)
		cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: %s
%s%s`, r.StorageDir, r.Host, hex.EncodeToString(secret), tlsYAML, authYAML)
		cfgFile := filepath.Join(dir, "config.yml")
		writeFile(t, cfgFile, []byte(cfg), 0o600)

		if lastErr = r.start(bin, cfgFile); lastErr == nil {
			t.Cleanup(r.Stop)
			return r
		}
		r.Stop()
	}
	t.Fatalf("registrytest: start %s: %v\n%s", bin, lastErr, r.logs.String())
	return nil
}

func (r *Registry) start(bin, cfgFile string) error {
	r.cmd = exec.Command(bin, "serve", cfgFile)
	r.cmd.Env = cleanEnv()
	r.cmd.Stdout = r.logs
	r.cmd.Stderr = r.logs
	r.cmd.SysProcAttr = procAttr()
	r.exited = make(chan struct{})
	r.stopOnce = sync.Once{}
	if err := r.cmd.Start(); err != nil {
		close(r.exited)
		return err
	}
	go func() {
		_ = r.cmd.Wait()
		close(r.exited)
	}()

	client := &http.Client{Transport: r.Transport, Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-r.exited:
			return fmt.Errorf("registry exited early")
		default:
		}
		resp, err := client.Get(r.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("registry did not answer on %s/v2/ within 20s", r.URL)
}

// Stop stops the registry (it is also stopped when the test ends).
func (r *Registry) Stop() {
	r.stopOnce.Do(func() {
		if r.cmd == nil || r.cmd.Process == nil {
			return
		}
		_ = r.cmd.Process.Kill()
		select {
		case <-r.exited:
		case <-time.After(10 * time.Second):
		}
		r.Transport.CloseIdleConnections()
	})
}

// Logs returns what the registry printed so far.
func (r *Registry) Logs() string { return r.logs.String() }

// Repo returns the repository path (e.g. "sqlite-graft/alpine") on this registry.
func (r *Registry) Repo(t testing.TB, path string) name.Repository {
	t.Helper()
	opts := []name.Option{name.StrictValidation}
	if !strings.HasPrefix(r.URL, "https://") {
		opts = append(opts, name.Insecure)
	}
	repo, err := name.NewRepository(r.Host+"/"+path, opts...)
	if err != nil {
		t.Fatalf("registrytest: repository %q: %v", path, err)
	}
	return repo
}

// Authenticator returns the registry's credentials (authn.Anonymous without authentication).
func (r *Registry) Authenticator() authn.Authenticator {
	if r.Username == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: r.Username, Password: r.Password}
}

// RemoteOptions returns the go-containerregistry options to talk to this registry directly:
// its transport and credentials.
func (r *Registry) RemoteOptions() []remote.Option {
	return []remote.Option{
		remote.WithTransport(r.Transport),
		remote.WithAuth(r.Authenticator()),
		remote.WithContext(context.Background()),
	}
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REGISTRY_") || strings.HasPrefix(kv, "OTEL_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeFile(t testing.TB, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
}

// selfSigned returns a self-signed CA certificate for 127.0.0.1, ::1 and localhost and its key.
func selfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "registrytest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	return certPEM, keyPEM, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
