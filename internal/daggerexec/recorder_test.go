package daggerexec_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"dagger.io/dagger"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// recorder is an engineconn.EngineConn (Do, Host, Close) that records every
// GraphQL request the SDK sends and answers it the way an engine would in
// shape, with nothing behind it: objects get fresh IDs ("id-1", ...), sync
// gets an ID, export echoes its path, stdout comes from a responder. The
// SDK's pipelines are linear selections (querybuilder), so every query is
// one chain of calls; the recorder keeps, for every ID it handed out, the
// chain that produced it, so that a test can follow an object passed as an
// argument back to how it was made.
type recorder struct {
	mu      sync.Mutex
	queries []string
	chains  [][]call
	fields  []string // every field name of every query, for "no host"
	ids     map[string][]call
	n       int
	// stdout answers Container.stdout for a chain; nil answers "".
	stdout func(chain []call) string
	// fail, when it returns an error object for a chain (expanded), answers
	// with that GraphQL error instead of data.
	fail func(chain []call) map[string]any
	// export, when set, is called for every export with its path, in place
	// of the engine writing there.
	export func(path string)
}

// call is one field of a chain, with its arguments as Go values.
type call struct {
	Name string
	Args map[string]any
}

func (c call) String() string {
	if len(c.Args) == 0 {
		return c.Name
	}
	b, _ := json.Marshal(c.Args)
	return c.Name + string(b)
}

func (c call) str(arg string) string {
	s, _ := c.Args[arg].(string)
	return s
}

func (c call) list(arg string) []string {
	var out []string
	l, _ := c.Args[arg].([]any)
	for _, v := range l {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// newClient connects the SDK to a fresh recorder. dagger.WithConn makes
// engineconn.Get return the given connection before it looks at anything
// else (no session variables, no CLI, no download): this is the only way
// these tests reach dagger.Connect.
func newClient(t *testing.T) (*recorder, *dagger.Client) {
	t.Helper()
	rec := &recorder{ids: map[string][]call{}}
	c, err := dagger.Connect(context.Background(), dagger.WithConn(rec))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return rec, c
}

func (r *recorder) Host() string { return "recorder.invalid" }
func (r *recorder) Close() error { return nil }

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	var body struct {
		Query string `json:"query"`
	}
	if err := json.NewDecoder(req.Body).Decode(&body); err != nil {
		return nil, err
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: body.Query})
	if err != nil {
		return nil, fmt.Errorf("recorder: unparsable GraphQL %q: %v", body.Query, err)
	}
	if len(doc.Operations) != 1 {
		return nil, fmt.Errorf("recorder: want one operation in %q", body.Query)
	}
	r.mu.Lock()
	r.queries = append(r.queries, body.Query)
	data, chain, err := r.answer(doc.Operations[0].SelectionSet, nil)
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	r.chains = append(r.chains, chain)
	r.mu.Unlock()
	resp := map[string]any{"data": data}
	if r.fail != nil {
		if e := r.fail(r.expand(chain)); e != nil {
			resp = map[string]any{"data": nil, "errors": []any{e}}
		}
	}
	out, err := json.Marshal(resp)
	if err != nil {
		return nil, err
	}
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {"application/json"}},
		Body:       io.NopCloser(bytes.NewReader(out)),
		Request:    req,
	}, nil
}

// answer builds the response for a selection set of one selection and
// returns the chain of calls down to the leaf.
func (r *recorder) answer(set ast.SelectionSet, chain []call) (map[string]any, []call, error) {
	if len(set) != 1 {
		return nil, nil, fmt.Errorf("recorder: want one selection per level, got %d", len(set))
	}
	switch s := set[0].(type) {
	case *ast.InlineFragment:
		// "... on Directory": no level of its own in the response.
		return r.answer(s.SelectionSet, chain)
	case *ast.Field:
		r.fields = append(r.fields, s.Name)
		c := call{Name: s.Name, Args: map[string]any{}}
		for _, a := range s.Arguments {
			v, err := a.Value.Value(nil)
			if err != nil {
				return nil, nil, err
			}
			c.Args[a.Name] = v
		}
		chain = append(chain, c)
		key := s.Alias
		if key == "" {
			key = s.Name
		}
		if len(s.SelectionSet) == 0 {
			return map[string]any{key: r.leaf(chain)}, chain, nil
		}
		sub, full, err := r.answer(s.SelectionSet, chain)
		if err != nil {
			return nil, nil, err
		}
		return map[string]any{key: sub}, full, nil
	}
	return nil, nil, fmt.Errorf("recorder: unexpected selection %T", set[0])
}

func (r *recorder) leaf(chain []call) any {
	last := chain[len(chain)-1]
	switch last.Name {
	case "id", "sync":
		r.n++
		id := fmt.Sprintf("id-%d", r.n)
		r.ids[id] = chain[:len(chain)-1]
		return id
	case "export":
		if r.export != nil {
			r.export(last.str("path"))
		}
		return last.str("path")
	case "stdout":
		if r.stdout != nil {
			return r.stdout(r.expandLocked(chain))
		}
		return ""
	case "defaultPlatform":
		return "linux/amd64"
	}
	return ""
}

// expand replaces a leading node(id:) or load...FromID(id:) by the chain
// that produced the ID, recursively.
func (r *recorder) expand(chain []call) []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.expandLocked(chain)
}

func (r *recorder) expandLocked(chain []call) []call {
	if len(chain) == 0 {
		return chain
	}
	first := chain[0]
	if first.Name == "node" || strings.HasPrefix(first.Name, "load") && strings.HasSuffix(first.Name, "FromID") {
		if prev, ok := r.ids[first.str("id")]; ok {
			return append(r.expandLocked(prev), chain[1:]...)
		}
	}
	return chain
}

// resolve is the chain behind an ID passed as an argument.
func (r *recorder) resolve(t *testing.T, id string) []call {
	t.Helper()
	r.mu.Lock()
	prev, ok := r.ids[id]
	r.mu.Unlock()
	if !ok {
		t.Fatalf("argument %q is not an ID the recorder handed out", id)
	}
	return r.expand(prev)
}

// leafChains are the expanded chains of the recorded queries whose leaf is
// name.
func (r *recorder) leafChains(name string) [][]call {
	r.mu.Lock()
	chains := append([][]call(nil), r.chains...)
	r.mu.Unlock()
	var out [][]call
	for _, c := range chains {
		if c[len(c)-1].Name == name {
			out = append(out, r.expand(c))
		}
	}
	return out
}

func (r *recorder) allFields() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.fields...)
}

func names(chain []call) []string {
	var out []string
	for _, c := range chain {
		out = append(out, c.Name)
	}
	return out
}

func show(chain []call) string {
	var parts []string
	for _, c := range chain {
		parts = append(parts, c.String())
	}
	return strings.Join(parts, "\n  .")
}
