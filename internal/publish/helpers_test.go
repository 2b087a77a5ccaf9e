package publish

import (
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
)

// testImage returns a random OCI image with n layers of size bytes for linux/arch.
func testImage(t testing.TB, n int, size int64, arch string) v1.Image {
	t.Helper()
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	var layers []v1.Layer
	for i := 0; i < n; i++ {
		l, err := random.Layer(size, types.OCILayer)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// testIndex returns an OCI index of one random image per architecture.
func testIndex(t testing.TB, size int64, archs ...string) v1.ImageIndex {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range archs {
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add: testImage(t, 2, size, arch),
			Descriptor: v1.Descriptor{
				Platform: &v1.Platform{OS: "linux", Architecture: arch},
			},
		})
	}
	return idx
}

func mustDigest(t testing.TB, a Artifact) v1.Hash {
	t.Helper()
	d, err := a.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// memRegistry is go-containerregistry's in-memory registry behind an optional fault injector.
type memRegistry struct {
	srv  *httptest.Server
	host string
	// fault, when set, may answer a request itself (returning true) instead of the registry.
	mu    sync.Mutex
	fault func(w http.ResponseWriter, r *http.Request) bool
	// requests counts requests by "METHOD kind" where kind is "manifest", "blob", "upload".
	counts sync.Map
}

func newMemRegistry(t testing.TB) *memRegistry {
	t.Helper()
	m := &memRegistry{}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Method + " " + kind(r.URL.Path)
		v, _ := m.counts.LoadOrStore(key, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		m.mu.Lock()
		f := m.fault
		m.mu.Unlock()
		if f != nil && f(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(m.srv.Close)
	m.host = strings.TrimPrefix(m.srv.URL, "http://")
	return m
}

func (m *memRegistry) setFault(f func(w http.ResponseWriter, r *http.Request) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fault = f
}

func (m *memRegistry) count(method, k string) int64 {
	v, ok := m.counts.Load(method + " " + k)
	if !ok {
		return 0
	}
	return v.(*atomic.Int64).Load()
}

func (m *memRegistry) repo(t testing.TB, path string) name.Repository {
	t.Helper()
	r, err := name.NewRepository(m.host+"/"+path, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func kind(path string) string {
	switch {
	case strings.Contains(path, "/manifests/"):
		return "manifest"
	case strings.Contains(path, "/blobs/uploads"):
		return "upload"
	case strings.Contains(path, "/blobs/"):
		return "blob"
	}
	return "other"
}

// isTagManifestPut reports a PUT of a manifest by tag (not by digest), optionally one tag.
func isTagManifestPut(r *http.Request, tag string) bool {
	if r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/manifests/") {
		return false
	}
	ref := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	if strings.HasPrefix(ref, "sha256:") {
		return false
	}
	return tag == "" || ref == tag
}

// headDigest returns the digest ref points at on the registry, or "" when absent.
func headDigest(t testing.TB, ref name.Reference, opts ...remote.Option) string {
	t.Helper()
	d, err := remote.Head(ref, opts...)
	if err != nil {
		if isNotFound(err) {
			return ""
		}
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return d.Digest.String()
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// quiet returns options for fast tests: anonymous, fast retries, a captured logger.
func quiet(t testing.TB, attempts int) ([]Option, *logtest.Hook) {
	t.Helper()
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	return []Option{
		WithAuth(authn.Anonymous),
		WithRetry(attempts, 5e6), // 5ms
		WithLogger(l),
	}, hook
}

func logText(hook *logtest.Hook) string {
	var b strings.Builder
	for _, e := range hook.AllEntries() {
		s, _ := e.String()
		b.WriteString(s)
	}
	return b.String()
}

func writeTestFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
