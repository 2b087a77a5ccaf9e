package publish

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCredentials(t *testing.T) {
	const secret = "hunter2-very-secret"
	t.Setenv("PUBLISH_TEST_PW", secret)
	t.Setenv("PUBLISH_TEST_EMPTY", "")
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte(secret+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ env, file string }{{"PUBLISH_TEST_PW", ""}, {"", file}} {
		a, err := Credentials("ci", tc.env, tc.file)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := a.Authorization()
		if err != nil || cfg.Username != "ci" || cfg.Password != secret {
			t.Fatalf("authorization %v %v", cfg.Username, err)
		}
		for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
			if s := fmt.Sprintf(f, a); strings.Contains(s, secret) {
				t.Fatalf("%s prints the secret: %s", f, s)
			}
		}
	}

	for _, tc := range []struct {
		user, env, file, want string
	}{
		{"", "PUBLISH_TEST_PW", "", "username is required"},
		{"ci", "", "", "name an environment variable or a file"},
		{"ci", "PUBLISH_TEST_PW", file, "not both"},
		{"ci", "PUBLISH_TEST_UNSET_VAR", "", "PUBLISH_TEST_UNSET_VAR is not set"},
		{"ci", "PUBLISH_TEST_EMPTY", "", "PUBLISH_TEST_EMPTY is empty"},
		{"ci", "", empty, "is empty"},
		{"ci", "", filepath.Join(dir, "missing"), "no such file"},
	} {
		_, err := Credentials(tc.user, tc.env, tc.file)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), secret) {
			t.Errorf("Credentials(%q, %q, %q) = %v, want %q", tc.user, tc.env, tc.file, err, tc.want)
		}
	}
}

func TestScrubber(t *testing.T) {
	s := scrubber{"topsecret"}
	err := s.err(fmt.Errorf("auth failed for topsecret"))
	if strings.Contains(err.Error(), "topsecret") || !strings.Contains(err.Error(), "****") {
		t.Fatalf("%q", err)
	}
}

func TestWriteResult(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out", "result.json")
	r := &Result{Reference: "r@sha256:ab", Digest: "sha256:ab", Tags: []string{"r:t"}, Pushed: []string{"r:t"},
		Platforms: []string{"linux/amd64"}, Stats: Stats{BlobsUploaded: 2, BytesUploaded: 10}}
	if err := WriteResult(path, r); err != nil {
		t.Fatal(err)
	}
	r.Unchanged = true
	if err := WriteResult(path, r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["unchanged"] != true || got["digest"] != "sha256:ab" || got["stats"].(map[string]any)["blobsUploaded"] != 2.0 {
		t.Fatalf("%s", b)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("leftover files: %v", entries)
	}
	if err := WriteResult(filepath.Join(path, "x"), r); err == nil {
		t.Fatal("writing below a file succeeded")
	}
}
