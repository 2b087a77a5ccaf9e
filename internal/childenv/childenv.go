// Package childenv is the environment of every program sqlite-graft runs on
// this machine (the C compiler, umoci, runc, the host probe): a short list of
// variables those programs need, copied from this process's environment, and
// nothing else. This process may hold a registry token in its environment
// (--registry-password-env); a compiler, a runtime or a base image's code
// never sees it.
package childenv

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// kept are the variables passed on: where programs are (PATH), where they
// may write (HOME, TMPDIR), how they print (locale), and the build's time
// (SOURCE_DATE_EPOCH, read by compilers for __DATE__ and __TIME__).
var kept = []string{"PATH", "HOME", "TMPDIR", "LANG", "LANGUAGE", "TZ", "SOURCE_DATE_EPOCH"}

// keptPrefixes are families of variables passed on (LC_ALL, LC_CTYPE, ...).
var keptPrefixes = []string{"LC_"}

var (
	mu       sync.Mutex
	withheld = map[string]bool{}
)

// Withhold keeps the named variables out of every child environment even
// where they would be kept: the variable that holds a secret, whatever it is
// called.
func Withhold(names ...string) {
	mu.Lock()
	defer mu.Unlock()
	for _, n := range names {
		if n != "" {
			withheld[n] = true
		}
	}
}

// Env is the environment for a child process: the kept variables of this
// process's environment, then extra ("KEY=value", which win over a kept
// variable of the same name).
func Env(extra ...string) []string {
	mu.Lock()
	defer mu.Unlock()
	var env []string
	for _, kv := range os.Environ() {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || withheld[k] || !keep(k) || slices.ContainsFunc(extra, func(e string) bool { return strings.HasPrefix(e, k+"=") }) {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

func keep(k string) bool {
	if slices.Contains(kept, k) {
		return true
	}
	for _, p := range keptPrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// Command is exec.CommandContext with the child environment, started in a
// process group of its own: when ctx ends, the whole group gets SIGTERM
// (a compiler driver then removes its temporary files), and SIGKILL
// shortly after. Killing only the program would leave its children (cc1,
// as) running.
func Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = Env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		time.AfterFunc(2*time.Second, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
		return nil
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}
