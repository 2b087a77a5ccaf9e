package registrytest

import (
	"net/http"
	"testing"
)

func get(t *testing.T, r *Registry, user, pass string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.URL+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := (&http.Client{Transport: r.Transport}).Do(req)
	if err != nil {
		t.Fatalf("GET %s/v2/: %v", r.URL, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestStartPlain(t *testing.T) {
	r := Start(t)
	if got := get(t, r, "", ""); got != http.StatusOK {
		t.Fatalf("GET /v2/ = %d, want 200", got)
	}
	if r.CAPool != nil || r.CertDir != "" {
		t.Fatalf("plain registry has TLS material")
	}
	r.Stop()
	if _, err := (&http.Client{Transport: r.Transport}).Get(r.URL + "/v2/"); err == nil {
		t.Fatalf("registry still answers after Stop")
	}
}

func TestStartTLSAuth(t *testing.T) {
	r := Start(t, WithTLS(), WithHTPasswd("ci", "s3cret-pass"))
	if r.URL[:8] != "https://" {
		t.Fatalf("URL %q is not https", r.URL)
	}
	if got := get(t, r, "", ""); got != http.StatusUnauthorized {
		t.Fatalf("anonymous GET /v2/ = %d, want 401", got)
	}
	if got := get(t, r, "ci", "wrong"); got != http.StatusUnauthorized {
		t.Fatalf("wrong password GET /v2/ = %d, want 401", got)
	}
	if got := get(t, r, "ci", "s3cret-pass"); got != http.StatusOK {
		t.Fatalf("GET /v2/ with credentials = %d, want 200", got)
	}
	// A client that does not trust the certificate is refused.
	if _, err := http.Get(r.URL + "/v2/"); err == nil {
		t.Fatalf("untrusted client reached the TLS registry")
	}
}
