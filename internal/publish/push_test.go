package publish

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestPushImageThenUnchanged(t *testing.T) {
	m := newMemRegistry(t)
	repo := m.repo(t, "sqlite-graft/alpine")
	img := testImage(t, 3, 64<<10, "amd64")
	want := mustDigest(t, img)
	opts, hook := quiet(t, 3)

	res, err := Push(context.Background(), repo, img, []string{"3.21", "3.21-sqlite3.51.3", "3.21"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want.String() || res.Reference != repo.Name()+"@"+want.String() {
		t.Fatalf("result %+v, want digest %s", res, want)
	}
	if res.Unchanged {
		t.Fatalf("first push reported unchanged")
	}
	wantTags := []string{repo.Tag("3.21").Name(), repo.Tag("3.21-sqlite3.51.3").Name()}
	if !slices.Equal(res.Tags, wantTags) || !slices.Equal(res.Pushed, wantTags) {
		t.Fatalf("tags %v pushed %v, want %v", res.Tags, res.Pushed, wantTags)
	}
	if !slices.Equal(res.Platforms, []string{"linux/amd64"}) {
		t.Fatalf("platforms %v", res.Platforms)
	}
	if res.Stats.BlobsUploaded != 4 { // 3 layers + config
		t.Fatalf("blobs uploaded %d, want 4", res.Stats.BlobsUploaded)
	}
	if res.Stats.BytesUploaded < 3*64<<10 {
		t.Fatalf("bytes uploaded %d, want at least the layers", res.Stats.BytesUploaded)
	}
	for _, tag := range []string{"3.21", "3.21-sqlite3.51.3"} {
		if got := headDigest(t, repo.Tag(tag)); got != want.String() {
			t.Fatalf("tag %s -> %q, want %s", tag, got, want)
		}
	}

	hook.Reset()
	res2, err := Push(context.Background(), repo, img, []string{"3.21", "3.21-sqlite3.51.3"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if !res2.Unchanged || len(res2.Pushed) != 0 {
		t.Fatalf("second push: unchanged=%v pushed=%v", res2.Unchanged, res2.Pushed)
	}
	if s := res2.Stats; s.BlobsUploaded != 0 || s.BytesUploaded != 0 || s.ManifestsWritten != 0 {
		t.Fatalf("second push stats %+v, want nothing uploaded", s)
	}
	if !strings.Contains(logText(hook), "unchanged") {
		t.Fatalf("no 'unchanged' log line:\n%s", logText(hook))
	}
	if n := m.count(http.MethodPut, "manifest"); n != 3 { // by digest + 2 tags, first push only
		t.Fatalf("manifest PUTs %d, want 3", n)
	}
}

func TestPushIndex(t *testing.T) {
	m := newMemRegistry(t)
	repo := m.repo(t, "sqlite-graft/debian")
	idx := testIndex(t, 32<<10, "amd64", "arm64")
	want := mustDigest(t, idx)
	opts, _ := quiet(t, 3)

	res, err := Push(context.Background(), repo, idx, []string{"13"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest != want.String() {
		t.Fatalf("digest %s, want %s", res.Digest, want)
	}
	if !slices.Equal(res.Platforms, []string{"linux/amd64", "linux/arm64"}) {
		t.Fatalf("platforms %v", res.Platforms)
	}
	if res.Stats.BlobsUploaded != 6 || res.Stats.ManifestsWritten != 4 { // 2×(2 layers+config); 2 images, index, tag
		t.Fatalf("stats %+v", res.Stats)
	}
	got, err := remote.Index(repo.Tag("13"))
	if err != nil {
		t.Fatal(err)
	}
	if d := mustDigest(t, got); d != want {
		t.Fatalf("pulled index %s, want %s", d, want)
	}
	res2, err := Push(context.Background(), repo, idx, []string{"13"}, opts...)
	if err != nil || !res2.Unchanged || res2.Stats.BlobsUploaded != 0 {
		t.Fatalf("second push: %+v, %v", res2, err)
	}
}

func TestPushChangedImageUploadsOnlyNewLayer(t *testing.T) {
	m := newMemRegistry(t)
	repo := m.repo(t, "sqlite-graft/alpine")
	base := testImage(t, 3, 1<<20, "amd64")
	opts, _ := quiet(t, 3)
	if _, err := Push(context.Background(), repo, base, []string{"3.21-sqlite3.51.3"}, opts...); err != nil {
		t.Fatal(err)
	}

	// The next SQLite version: the same base plus one new layer.
	grafted := testImage(t, 1, 64<<10, "amd64")
	layers, _ := grafted.Layers()
	next, err := mutate.AppendLayers(base, layers[0])
	if err != nil {
		t.Fatal(err)
	}
	res, err := Push(context.Background(), repo, next, []string{"3.21-sqlite3.53.4", "3.21"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	layerSize, _ := layers[0].Size()
	cfgRaw, _ := next.RawConfigFile()
	baseSize := int64(0)
	bl, _ := base.Layers()
	for _, l := range bl {
		s, _ := l.Size()
		baseSize += s
	}
	if res.Stats.BlobsUploaded != 2 {
		t.Fatalf("blobs uploaded %d, want 2 (new layer + config)", res.Stats.BlobsUploaded)
	}
	if want := layerSize + int64(len(cfgRaw)); res.Stats.BytesUploaded != want {
		t.Fatalf("bytes uploaded %d, want %d (layer %d + config %d); base is %d",
			res.Stats.BytesUploaded, want, layerSize, len(cfgRaw), baseSize)
	}
	if res.Stats.BytesUploaded*10 > baseSize {
		t.Fatalf("uploaded %d bytes, not far below the base's %d", res.Stats.BytesUploaded, baseSize)
	}
	// The old tag is untouched.
	if got := headDigest(t, repo.Tag("3.21-sqlite3.51.3")); got != mustDigest(t, base).String() {
		t.Fatalf("old tag moved to %s", got)
	}
}

func TestPushMovesTagAndSkipsCurrentOnes(t *testing.T) {
	m := newMemRegistry(t)
	repo := m.repo(t, "x/y")
	opts, _ := quiet(t, 3)
	a, b := testImage(t, 1, 1024, "amd64"), testImage(t, 1, 1024, "amd64")
	if _, err := Push(context.Background(), repo, a, []string{"latest", "pinned"}, opts...); err != nil {
		t.Fatal(err)
	}
	// "pinned" already points at b after this; "latest" still at a.
	if err := remote.Write(repo.Tag("pinned"), b); err != nil {
		t.Fatal(err)
	}
	res, err := Push(context.Background(), repo, b, []string{"latest", "pinned"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Unchanged || !slices.Equal(res.Pushed, []string{repo.Tag("latest").Name()}) {
		t.Fatalf("unchanged=%v pushed=%v, want only latest", res.Unchanged, res.Pushed)
	}
	if got := headDigest(t, repo.Tag("latest")); got != mustDigest(t, b).String() {
		t.Fatalf("latest -> %s", got)
	}
}

func TestPushNoTags(t *testing.T) {
	m := newMemRegistry(t)
	repo := m.repo(t, "x/y")
	opts, _ := quiet(t, 3)
	img := testImage(t, 1, 1024, "arm64")
	res, err := Push(context.Background(), repo, img, nil, opts...)
	if err != nil || res.Unchanged {
		t.Fatalf("%+v %v", res, err)
	}
	if got := headDigest(t, repo.Digest(res.Digest)); got != res.Digest {
		t.Fatalf("not pushed by digest")
	}
	res, err = Push(context.Background(), repo, img, nil, opts...)
	if err != nil || !res.Unchanged {
		t.Fatalf("second push %+v %v", res, err)
	}
}

func TestPushRetries429And5xx(t *testing.T) {
	m := newMemRegistry(t)
	repo := m.repo(t, "x/y")
	var n atomic.Int64
	m.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		// The first upload and the first two manifest PUTs fail transiently.
		if r.Method == http.MethodPost && kind(r.URL.Path) == "upload" && n.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return true
		}
		if r.Method == http.MethodPut && kind(r.URL.Path) == "manifest" && m.count(http.MethodPut, "manifest") <= 2 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
			return true
		}
		return false
	})
	opts, hook := quiet(t, 5)
	img := testImage(t, 1, 4096, "amd64")
	res, err := Push(context.Background(), repo, img, []string{"t"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stats.Retries != 3 {
		t.Fatalf("retries %d, want 3\n%s", res.Stats.Retries, logText(hook))
	}
	if !strings.Contains(logText(hook), "retrying") {
		t.Fatalf("no retry log line")
	}
	if got := headDigest(t, repo.Tag("t")); got != res.Digest {
		t.Fatalf("tag -> %q", got)
	}
}

func TestPushTagFailsPersistently(t *testing.T) {
	m := newMemRegistry(t)
	repo := m.repo(t, "x/y")
	m.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if isTagManifestPut(r, "") {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	opts, _ := quiet(t, 3)
	img := testImage(t, 1, 4096, "amd64")
	start := time.Now()
	_, err := Push(context.Background(), repo, img, []string{"t"}, opts...)
	var te *TagError
	if !errors.As(err, &te) {
		t.Fatalf("error %v (%T), want a TagError", err, err)
	}
	if len(te.Written) != 0 || !strings.Contains(err.Error(), "no tag was written") || !strings.Contains(err.Error(), "giving up after 3 attempts") {
		t.Fatalf("error %q", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %s", d)
	}
	// 1 PUT by digest + exactly 3 attempts at the tag.
	if n := m.count(http.MethodPut, "manifest"); n != 4 {
		t.Fatalf("manifest PUTs %d, want 4", n)
	}
	if got := headDigest(t, repo.Tag("t")); got != "" {
		t.Fatalf("tag exists: %s", got)
	}
	if got := headDigest(t, repo.Digest(mustDigest(t, img).String())); got == "" {
		t.Fatalf("image not pushed by digest")
	}
}

func TestPushLaterTagFails(t *testing.T) {
	m := newMemRegistry(t)
	repo := m.repo(t, "x/y")
	m.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if isTagManifestPut(r, "second") {
			w.WriteHeader(http.StatusBadGateway)
			return true
		}
		return false
	})
	opts, _ := quiet(t, 2)
	img := testImage(t, 1, 4096, "amd64")
	_, err := Push(context.Background(), repo, img, []string{"first", "second", "third"}, opts...)
	var te *TagError
	if !errors.As(err, &te) {
		t.Fatalf("error %v, want a TagError", err)
	}
	t.Logf("error: %v", err)
	first := repo.Tag("first").Name()
	if !slices.Equal(te.Written, []string{first}) || te.Tag != repo.Tag("second").Name() || !strings.Contains(err.Error(), first) {
		t.Fatalf("TagError %+v: %q", te, err)
	}
	if headDigest(t, repo.Tag("first")) == "" || headDigest(t, repo.Tag("third")) != "" {
		t.Fatalf("wrong tags present")
	}
}

func TestPushFailureBeforeTagsLeavesNoTag(t *testing.T) {
	m := newMemRegistry(t)
	repo := m.repo(t, "x/y")
	m.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/sha256:") {
			w.WriteHeader(http.StatusInternalServerError)
			return true
		}
		return false
	})
	opts, _ := quiet(t, 2)
	img := testImage(t, 2, 4096, "amd64")
	_, err := Push(context.Background(), repo, img, []string{"t"}, opts...)
	var te *TagError
	if err == nil || errors.As(err, &te) {
		t.Fatalf("error %v, want a push error", err)
	}
	if n := m.count(http.MethodPut, "manifest"); n != 2 {
		t.Fatalf("manifest PUTs %d, want 2 (two attempts by digest, none by tag)", n)
	}
	if got := headDigest(t, repo.Tag("t")); got != "" {
		t.Fatalf("tag exists")
	}
}

func TestPushNotRetriedOnClientErrors(t *testing.T) {
	for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusBadRequest} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			m := newMemRegistry(t)
			repo := m.repo(t, "x/y")
			m.setFault(func(w http.ResponseWriter, r *http.Request) bool {
				if r.Method == http.MethodPost {
					w.WriteHeader(code)
					return true
				}
				return false
			})
			opts, _ := quiet(t, 5)
			_, err := Push(context.Background(), repo, testImage(t, 1, 1024, "amd64"), []string{"t"}, opts...)
			if err == nil {
				t.Fatal("no error")
			}
			// One per blob (layer, config) at most: no retry.
			if n := m.count(http.MethodPost, "upload"); n < 1 || n > 2 {
				t.Fatalf("%d upload POSTs, want 1 or 2: %v", n, err)
			}
			var ce *CredentialsError
			if isAuth := code == 401 || code == 403; isAuth != errors.As(err, &ce) {
				t.Fatalf("error %v: credentials error = %v", err, !isAuth)
			}
		})
	}
}

func TestPushWrongCredentialsInMemory(t *testing.T) {
	m := newMemRegistry(t)
	repo := m.repo(t, "x/y")
	m.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		if u, p, ok := r.BasicAuth(); ok && u == "ci" && p == "right-password" {
			return false
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.WriteHeader(http.StatusUnauthorized)
		return true
	})
	t.Setenv("TEST_REGISTRY_PASSWORD", "wrong-password-1234")
	auth, err := Credentials("ci", "TEST_REGISTRY_PASSWORD", "")
	if err != nil {
		t.Fatal(err)
	}
	opts, hook := quiet(t, 5)
	opts = append(opts, WithAuth(auth))
	_, err = Push(context.Background(), repo, testImage(t, 1, 1024, "amd64"), []string{"t"}, opts...)
	var ce *CredentialsError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v, want a CredentialsError", err)
	}
	msg := err.Error()
	for _, want := range []string{m.host, "refused the credentials", `"ci"`} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "wrong-password-1234") || strings.Contains(logText(hook), "wrong-password-1234") {
		t.Fatalf("secret leaked: %q", msg)
	}
	if n := m.count(http.MethodPut, "manifest") + m.count(http.MethodPost, "upload"); n != 0 {
		t.Fatalf("%d writes after a 401", n)
	}

	// Anonymous: says that no credentials were found.
	opts, _ = quiet(t, 5)
	_, err = Push(context.Background(), repo, testImage(t, 1, 1024, "amd64"), []string{"t"}, opts...)
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "no credentials were found") {
		t.Fatalf("anonymous: %v", err)
	}
}

func TestPushProgressAndContext(t *testing.T) {
	m := newMemRegistry(t)
	repo := m.repo(t, "x/y")
	opts, hook := quiet(t, 3)
	opts = append(opts, WithProgress(time.Nanosecond))
	if _, err := Push(context.Background(), repo, testImage(t, 2, 256<<10, "amd64"), []string{"t"}, opts...); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logText(hook), "push progress") {
		t.Fatalf("no progress lines:\n%s", logText(hook))
	}

	// A cancelled context stops at once, without retrying.
	m.setFault(func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	opts, _ = quiet(t, 5)
	opts = append(opts, WithRetry(5, time.Hour))
	start := time.Now()
	_, err := Push(ctx, repo, testImage(t, 1, 1024, "amd64"), []string{"t"}, opts...)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("cancelled push: %v after %s", err, time.Since(start))
	}
}

func TestRetryable(t *testing.T) {
	if retryable(context.Canceled) || retryable(errors.New("manifest invalid")) {
		t.Fatal("permanent errors classified as transient")
	}
	if !retryable(errors.New(`Patch "http://h/v2/x/blobs/uploads/1": EOF`)) {
		t.Fatal("EOF text not transient")
	}
}
