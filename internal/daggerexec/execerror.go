package daggerexec

import (
	"errors"
	"fmt"
	"strings"

	"github.com/vektah/gqlparser/v2/gqlerror"
)

// ExecFailure is what the engine reports about a failed exec: the extensions
// of the GraphQL error, `_type: EXEC_ERROR` with cmd, exitCode, stdout and
// stderr (Dagger's core/exec_error.go).
type ExecFailure struct {
	Cmd      []string
	ExitCode int
	Stdout   string
	Stderr   string
}

// extended is any error that carries GraphQL extensions: dagger.io/dagger's
// ExecError and its wrapper of other GraphQL errors, and the same types that
// a module's generated package (ci/internal/dagger) declares a second time.
type extended interface {
	error
	Extensions() map[string]any
}

// ExecFailureOf finds the exec failure in err, whichever client made it.
// Inside a Dagger module the pipeline runs over the module's own connection,
// whose errors are the generated package's ExecError, not dagger.io/dagger's:
// errors.As on *dagger.ExecError misses them. Both, and a bare GraphQL
// error (a client without the SDK's error wrapper), expose the extensions.
func ExecFailureOf(err error) (*ExecFailure, bool) {
	if err == nil {
		return nil, false
	}
	var ext map[string]any
	var xe extended
	var ge *gqlerror.Error
	switch {
	case errors.As(err, &xe):
		ext = xe.Extensions()
	case errors.As(err, &ge):
		ext = ge.Extensions
	}
	if typ, _ := ext["_type"].(string); typ != "EXEC_ERROR" {
		return nil, false
	}
	f := &ExecFailure{}
	switch n := ext["exitCode"].(type) {
	case float64: // decoded JSON
		f.ExitCode = int(n)
	case int:
		f.ExitCode = n
	}
	switch cmd := ext["cmd"].(type) {
	case []any:
		for _, a := range cmd {
			s, _ := a.(string)
			f.Cmd = append(f.Cmd, s)
		}
	case []string:
		f.Cmd = cmd
	}
	f.Stdout, _ = ext["stdout"].(string)
	f.Stderr, _ = ext["stderr"].(string)
	return f, true
}

// maxOutput is how much of a failed command's output an error keeps (the end).
const maxOutput = 2000

// withOutput adds the failed command, its exit code and the end of its
// output to an engine's exec error, whose message alone names neither.
func withOutput(err error) error {
	f, ok := ExecFailureOf(err)
	if !ok {
		return err
	}
	out := strings.TrimSpace(f.Stderr)
	if s := strings.TrimSpace(f.Stdout); s != "" {
		out = strings.TrimSpace(s + "\n" + out)
	}
	if len(out) > maxOutput {
		out = "..." + out[len(out)-maxOutput:]
	}
	return fmt.Errorf("%w\n%s (exit %d)\n%s", err, strings.Join(f.Cmd, " "), f.ExitCode, out)
}
