package cli

import (
	"errors"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/spf13/pflag"

	"github.com/sqlite-graft/sqlite-graft/internal/check"
	"github.com/sqlite-graft/sqlite-graft/internal/childenv"
	"github.com/sqlite-graft/sqlite-graft/internal/publish"
)

// RegistryOptions are the flags that say how to talk to registries: who
// to be, and how long to wait.
type RegistryOptions struct {
	Username     string
	PasswordEnv  string
	PasswordFile string
	Timeout      time.Duration
}

func (o *RegistryOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.Username, "registry-username", "", "registry user for the --push registry (and the base's, when it is the same one, or without --push); default: credentials from the docker/podman config")
	fs.StringVar(&o.PasswordEnv, "registry-password-env", "", "name of the environment variable holding the registry password or token (never the secret itself); no program the build runs sees that variable")
	fs.StringVar(&o.PasswordFile, "registry-password-file", "", "file holding the registry password or token")
	fs.DurationVar(&o.Timeout, "registry-timeout", publish.DefaultRegistryTimeout, "longest wait for a registry: a request for a manifest, tag or token must be answered within it, a blob transfer must not stall for longer")
}

// registryAccess is how every registry call of a build authenticates and
// how long it may wait: one keychain and one transport for the base pull,
// the no-op check, the push and the referrers.
type registryAccess struct {
	keychain authn.Keychain
	remote   []remote.Option
	push     []publish.Option
	// flagRegistry and flagSource: the registry the flags' credentials are
	// for and how to name them in errors ("" : no flags given).
	flagRegistry, flagSource string
}

// access builds the registry access of a build that pushes to push (a
// reference, "" : none) from a base at base.
func (o *RegistryOptions) access(push, base string) (*registryAccess, error) {
	ra := &registryAccess{keychain: authn.DefaultKeychain}
	if o.Username != "" || o.PasswordEnv != "" || o.PasswordFile != "" {
		auth, err := publish.Credentials(o.Username, o.PasswordEnv, o.PasswordFile)
		if err != nil {
			return nil, usageErrorf("%v", err)
		}
		// The flags' credentials are for the registry pushed to; without
		// --push, for the base's.
		target := push
		if target == "" {
			target = base
		}
		ref, err := name.ParseReference(target)
		if err != nil {
			return nil, usageErrorf("registry credentials: which registry are they for? %q: %v", target, err)
		}
		ra.flagRegistry = ref.Context().RegistryStr()
		ra.flagSource = "--registry-username " + o.Username
		switch {
		case o.PasswordEnv != "":
			ra.flagSource += " (--registry-password-env " + o.PasswordEnv + ")"
		case o.PasswordFile != "":
			ra.flagSource += " (--registry-password-file " + o.PasswordFile + ")"
		}
		ra.keychain = publish.FlagKeychain(ra.flagRegistry, publish.Describe(auth, ra.flagSource))
		childenv.Withhold(o.PasswordEnv)
	}
	if o.Timeout <= 0 {
		return nil, usageErrorf("--registry-timeout %s: want a positive duration", o.Timeout)
	}
	tr := publish.WithDeadlines(remote.DefaultTransport, o.Timeout)
	ra.remote = []remote.Option{remote.WithAuthFromKeychain(ra.keychain), remote.WithTransport(tr)}
	ra.push = []publish.Option{publish.WithKeychain(ra.keychain), publish.WithTransport(tr)}
	return ra, nil
}

// explain names the registry, the credentials and the flag that changes a
// limit in errors that come from a registry or a deadline.
func (ra *registryAccess) explain(err error) error {
	if err == nil {
		return nil
	}
	err = publish.Explain(err, func(registry string) string {
		if ra.flagRegistry != "" && registry == ra.flagRegistry {
			return ra.flagSource
		}
		reg, rerr := name.NewRegistry(registry)
		if rerr != nil {
			return ""
		}
		if auth, rerr := authn.DefaultKeychain.Resolve(reg); rerr == nil && auth != authn.Anonymous {
			return "the docker/podman config's entry for " + registry
		}
		return ""
	})
	var rt *publish.TimeoutError
	if errors.As(err, &rt) {
		return fmt.Errorf("%w; --registry-timeout raises the limit", err)
	}
	var ct *check.TimeoutError
	if errors.As(err, &ct) {
		return fmt.Errorf("%w; --check-timeout raises the limit", err)
	}
	return err
}
