package publish

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Credentials returns a basic-auth authenticator for username whose password is read from the
// environment variable named passwordEnv or from the file passwordFile (exactly one of them;
// trailing line breaks of the file are dropped). The password never comes from a flag value,
// and no error message or log line carries it: errors name the variable or the file only.
func Credentials(username, passwordEnv, passwordFile string) (authn.Authenticator, error) {
	if username == "" {
		return nil, errors.New("registry credentials: a username is required")
	}
	switch {
	case passwordEnv != "" && passwordFile != "":
		return nil, fmt.Errorf("registry credentials for %q: give the password either in an environment variable (%s) or in a file (%s), not both", username, passwordEnv, passwordFile)
	case passwordEnv != "":
		v, ok := os.LookupEnv(passwordEnv)
		if !ok {
			return nil, fmt.Errorf("registry credentials for %q: environment variable %s is not set", username, passwordEnv)
		}
		if v == "" {
			return nil, fmt.Errorf("registry credentials for %q: environment variable %s is empty", username, passwordEnv)
		}
		return &basicSecret{username: username, password: v}, nil
	case passwordFile != "":
		b, err := os.ReadFile(passwordFile)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				// PathError carries no file content; keep only the path and the cause.
				return nil, fmt.Errorf("registry credentials for %q: read password file %s: %w", username, passwordFile, pe.Err)
			}
			return nil, fmt.Errorf("registry credentials for %q: read password file %s failed", username, passwordFile)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return nil, fmt.Errorf("registry credentials for %q: password file %s is empty", username, passwordFile)
		}
		return &basicSecret{username: username, password: v}, nil
	default:
		return nil, fmt.Errorf("registry credentials for %q: name an environment variable or a file that holds the password", username)
	}
}

// basicSecret is authn.Basic that does not print its password with fmt.
type basicSecret struct {
	username string
	password string
}

// Authorization implements authn.Authenticator.
func (b *basicSecret) Authorization() (*authn.AuthConfig, error) {
	return &authn.AuthConfig{Username: b.username, Password: b.password}, nil
}

// String hides the password from %v, %s and %+v.
func (b *basicSecret) String() string { return fmt.Sprintf("basic auth for user %q", b.username) }

// GoString hides the password from %#v.
func (b *basicSecret) GoString() string { return b.String() }

// secrets collects the secret values of an auth config, to scrub them from messages.
func secrets(c *authn.AuthConfig) []string {
	if c == nil {
		return nil
	}
	var out []string
	for _, s := range []string{c.Password, c.Auth, c.IdentityToken, c.RegistryToken} {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// scrubber replaces secret values in messages.
type scrubber []string

func (s scrubber) string(msg string) string {
	for _, sec := range s {
		if len(sec) < 4 {
			// Replacing tiny strings would mangle ordinary words; a secret this short is
			// also never put into a message by this package.
			continue
		}
		msg = strings.ReplaceAll(msg, sec, "****")
	}
	return msg
}

// err returns err unchanged when its message carries no secret, else an error with the secret
// replaced that still unwraps to err.
func (s scrubber) err(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if clean := s.string(msg); clean != msg {
		return &scrubbedError{msg: clean, err: err}
	}
	return err
}

type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }
