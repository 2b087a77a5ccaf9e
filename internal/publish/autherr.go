package publish

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// CredentialsError is returned when the registry answers 401 or 403: the credentials were
// rejected, missing, or do not allow the operation. It names the registry and where the
// credentials came from; it never carries the secret.
type CredentialsError struct {
	Registry   string
	Repository string // "" when the failed request named none (a ping, a token)
	// User is the user name that was tried; empty when no credentials were found.
	User string
	// Source says where the credentials came from, e.g. "--registry-username ci
	// (--registry-password-env REGISTRY_TOKEN)"; "" : the user name is all that is known.
	Source     string
	StatusCode int
	Err        error
}

func (e *CredentialsError) Error() string {
	status := fmt.Sprintf("%d %s", e.StatusCode, strings.ToUpper(http.StatusText(e.StatusCode)))
	var msg string
	switch {
	case e.User == "" && e.Source == "":
		msg = fmt.Sprintf("registry %s refused anonymous access%s: %s; no credentials were found for it: log in (docker/podman config) or give --registry-username and a password source",
			e.Registry, e.forRepository(), status)
	default:
		src := e.Source
		if src == "" {
			src = fmt.Sprintf("user %q", e.User)
		}
		msg = fmt.Sprintf("registry %s refused the credentials of %s%s: %s", e.Registry, src, e.forRepository(), status)
		if e.StatusCode == http.StatusForbidden {
			msg += " (wrong credentials, or no permission there)"
		}
	}
	return msg + " (" + fmt.Sprint(e.Err) + ")"
}

func (e *CredentialsError) forRepository() string {
	if e.Repository == "" {
		return ""
	}
	return " for " + e.Repository
}

func (e *CredentialsError) Unwrap() error { return e.Err }

// described is an authenticator that says where it came from.
type described struct {
	authn.Authenticator
	source string
}

func (d described) CredentialsSource() string { return d.source }

// String never prints the secret (authn.Basic would with %+v).
func (d described) String() string { return "credentials of " + d.source }

// Describe attaches a description of where auth came from (e.g. the flags that gave it) to
// auth: errors of Push and Explain name it.
func Describe(auth authn.Authenticator, source string) authn.Authenticator {
	return described{auth, source}
}

// FlagKeychain gives auth for registry, and what authn.DefaultKeychain (the docker and
// podman config files) has for every other registry: credentials given for the registry
// pushed to are never sent to another one (the base's, say).
func FlagKeychain(registry string, auth authn.Authenticator) authn.Keychain {
	return flagKeychain{registry: registry, auth: auth}
}

type flagKeychain struct {
	registry string
	auth     authn.Authenticator
}

func (k flagKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() == k.registry {
		return k.auth, nil
	}
	return authn.DefaultKeychain.Resolve(r)
}

// Explain turns a registry's 401 or 403 anywhere in err's chain into a *CredentialsError
// naming the registry and the credentials' source (source(registry); "" : none were
// used), and a *CredentialsError without a source gets one. Other errors pass unchanged.
func Explain(err error, source func(registry string) string) error {
	if err == nil {
		return nil
	}
	var ce *CredentialsError
	if errors.As(err, &ce) {
		if ce.Source == "" && source != nil {
			ce.Source = source(ce.Registry)
		}
		return err
	}
	var te *transport.Error
	if !errors.As(err, &te) || (te.StatusCode != http.StatusUnauthorized && te.StatusCode != http.StatusForbidden) || te.Request == nil {
		return err
	}
	reg := te.Request.URL.Host
	src := ""
	if source != nil {
		src = source(reg)
	}
	return &CredentialsError{Registry: reg, Source: src, StatusCode: te.StatusCode, Err: err}
}
