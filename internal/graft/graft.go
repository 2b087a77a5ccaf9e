// Package graft strings the stages together — pins, source, recipe and an
// executor — for the CLI and the Dagger module alike. It holds no stage logic
// of its own: each step is one call into the stage's package.
package graft

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
	"github.com/sqlite-graft/sqlite-graft/internal/source"
)

// Env is what every run shares.
type Env struct {
	Pins    *pins.File
	Patches fs.FS
	Recipe  *recipe.Recipe
	Fetcher *source.Fetcher
	Log     logrus.FieldLogger
}

// SourceRequest names a SQLite source.
type SourceRequest struct {
	Version pins.Version
	SHA3    string // archive hash for an unpinned version
	From    string // URL, archive or directory; "" downloads from sqlite.org
}

// Fetch resolves the pin and writes the verified, patched source to out.
func (e *Env) Fetch(ctx context.Context, req SourceRequest, out string) (*source.Source, error) {
	pin, err := e.Pins.Resolve(req.Version, req.SHA3)
	if err != nil {
		return nil, err
	}
	return e.Fetcher.Fetch(ctx, source.Request{Pins: e.Pins, Pin: pin, From: req.From, Patches: e.Patches}, out)
}

// Build describes a compiled library: what went in and what came out.
type Build struct {
	Source    *source.Source `json:"source"`
	Toolchain string         `json:"toolchain"`
	Plan      recipe.Plan    `json:"plan"`
	Products  []string       `json:"products"`
}

// BuildFileName is the metadata file written beside the products.
const BuildFileName = "build.json"

// Compile fetches and verifies the source, then runs the recipe with exec.
// Products reach out only when the source verified and every step succeeded.
func (e *Env) Compile(ctx context.Context, req SourceRequest, exec recipe.Executor, cc string, out string) (*Build, error) {
	tmp, err := os.MkdirTemp("", "sqlite-graft-src-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	src, err := e.Fetch(ctx, req, filepath.Join(tmp, "src"))
	if err != nil {
		return nil, err
	}
	plan, err := e.Recipe.Plan(recipe.Params{CC: cc, HasShell: src.HasShell, Version: src.Version.String()})
	if err != nil {
		return nil, err
	}
	tc, err := exec.Toolchain(ctx)
	if err != nil {
		return nil, err
	}
	if err := pins.WALResetError(src.Version); err != nil {
		// Compiled anyway (tests and comparisons need affected builds); the
		// library check and the image build refuse it.
		e.Log.Warnf("%v", err)
	}
	e.Log.WithField("toolchain", tc).Infof("compiling SQLite %s (%d steps)", src.Version, len(plan.Steps))
	if err := exec.Build(ctx, plan, src.Dir, out); err != nil {
		return nil, err
	}
	recorded := *src
	recorded.Dir = "" // a temporary directory, gone after this call
	b := &Build{Source: &recorded, Toolchain: tc, Plan: plan, Products: plan.Products}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(out, BuildFileName), append(data, '\n'), 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", BuildFileName, err)
	}
	return b, nil
}
