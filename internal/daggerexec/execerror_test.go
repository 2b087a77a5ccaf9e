package daggerexec_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"dagger.io/dagger"
	"github.com/Khan/genqlient/graphql"
	"github.com/dagger/querybuilder"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/sqlite-graft/sqlite-graft/internal/daggerexec"
)

// moduleExecError stands for the ExecError of a module's generated package
// (ci/internal/dagger): the same shape as dagger.io/dagger's, another type.
type moduleExecError struct{ inner *gqlerror.Error }

func (e *moduleExecError) Error() string              { return e.inner.Message }
func (e *moduleExecError) Extensions() map[string]any { return e.inner.Extensions }
func (e *moduleExecError) Unwrap() error              { return e.inner }

// moduleClient wraps errors the way the generated package's client does.
type moduleClient struct{ graphql.Client }

func (c moduleClient) MakeRequest(ctx context.Context, req *graphql.Request, resp *graphql.Response) error {
	err := c.Client.MakeRequest(ctx, req, resp)
	var ge *gqlerror.Error
	if errors.As(err, &ge) {
		return &moduleExecError{ge}
	}
	return err
}

// The exec failure reaches the error with its command, exit code and output
// over every connection the pipelines run on: dagger.io/dagger's own client,
// the module's connection bridged into a dagger.io/dagger Query (whose errors
// are the generated package's type), and a bare GraphQL client.
func TestDaggerExecFailureOverEveryConnection(t *testing.T) {
	bridged := func(wrap func(graphql.Client) graphql.Client) func(*testing.T, *recorder) *dagger.Query {
		return func(_ *testing.T, rec *recorder) *dagger.Query {
			gql := wrap(graphql.NewClient("http://recorder.invalid/query", rec))
			return new(dagger.Query).WithGraphQLQuery(querybuilder.Query().Client(gql))
		}
	}
	conns := map[string]func(*testing.T, *recorder) *dagger.Query{
		"dagger.io/dagger client": func(t *testing.T, rec *recorder) *dagger.Query {
			c, err := dagger.Connect(context.Background(), dagger.WithConn(rec))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c.Query
		},
		"module connection": bridged(func(c graphql.Client) graphql.Client { return moduleClient{c} }),
		"bare GraphQL":      bridged(func(c graphql.Client) graphql.Client { return c }),
	}
	for name, connect := range conns {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{ids: map[string][]call{}}
			rec.fail = func(chain []call) map[string]any {
				if chain[len(chain)-1].Name != "stdout" {
					return nil
				}
				return map[string]any{
					"message": `process "sh -c cc --version" did not complete successfully: exit code: 127`,
					"extensions": map[string]any{
						"_type": "EXEC_ERROR", "exitCode": 127, "cmd": []string{"sh", "-c", daggerexec.ToolchainScript},
						"stdout": "", "stderr": "sh: cc: not found",
					},
				}
			}
			q := connect(t, rec)
			tg := target(t, definition(t, "alpine-3.21"), "linux/amd64", amd64Digest)
			_, err := daggerexec.Toolchain(context.Background(), q, tg)
			if err == nil {
				t.Fatal("Toolchain succeeded with a failing exec")
			}
			f, ok := daggerexec.ExecFailureOf(err)
			if !ok || f.ExitCode != 127 || f.Stderr != "sh: cc: not found" || strings.Join(f.Cmd, " ") != "sh -c "+daggerexec.ToolchainScript {
				t.Errorf("ExecFailureOf(%T) = %+v, %v; want exit 127, the command and its stderr", err, f, ok)
			}
			for _, want := range []string{"exit code: 127", "(exit 127)", "sh: cc: not found", "sh -c cc --version"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
		})
	}
}

// A GraphQL error that is not an exec error is no exec failure.
func TestDaggerExecFailureOfOtherErrors(t *testing.T) {
	for _, err := range []error{
		nil,
		errors.New("plain"),
		gqlerror.List{{Message: "no such field"}},
		&gqlerror.Error{Message: "typed", Extensions: map[string]any{"_type": "OTHER"}},
	} {
		if f, ok := daggerexec.ExecFailureOf(err); ok {
			t.Errorf("ExecFailureOf(%v) = %+v, want none", err, f)
		}
	}
}
