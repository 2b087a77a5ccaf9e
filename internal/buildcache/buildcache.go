// Package buildcache decorates a recipe.Executor with a content-addressed
// cache of its products: the same source bytes, plan and toolchain give back
// the earlier build without compiling. Concurrent builds of one key (two CLI
// runs, parallel test packages) wait for each other instead of compiling twice.
package buildcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/sqlite-graft/sqlite-graft/internal/fsutil"
	"github.com/sqlite-graft/sqlite-graft/internal/lockfile"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
)

// Executor is a caching recipe.Executor.
type Executor struct {
	inner recipe.Executor
	dir   string
	log   logrus.FieldLogger
}

// New caches inner's products under dir/builds/<key>.
func New(inner recipe.Executor, dir string, log logrus.FieldLogger) *Executor {
	if log == nil {
		log = logrus.StandardLogger()
	}
	return &Executor{inner: inner, dir: filepath.Join(dir, "builds"), log: log}
}

func (e *Executor) Toolchain(ctx context.Context) (string, error) { return e.inner.Toolchain(ctx) }

// Build returns cached products when the key matches, else builds and stores.
func (e *Executor) Build(ctx context.Context, plan recipe.Plan, src, out string) error {
	key, err := e.Key(ctx, plan, src)
	if err != nil {
		return err
	}
	entry := filepath.Join(e.dir, key)
	unlock, err := lockfile.Lock(entry + ".lock")
	if err != nil {
		return err
	}
	defer unlock()
	if Complete(entry, plan.Products) {
		e.log.WithField("key", key[:12]).Info("compile: unchanged inputs, using the cached build")
		return fsutil.Install(entry, out, plan.Products)
	}
	tmp, err := os.MkdirTemp(e.dir, ".tmp-"+key[:12])
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := e.inner.Build(ctx, plan, src, tmp); err != nil {
		return err
	}
	os.RemoveAll(entry)
	if err := os.Rename(tmp, entry); err != nil {
		return err
	}
	return fsutil.Install(entry, out, plan.Products)
}

// Key hashes everything that decides the products: toolchain identity, the
// plan's argv and the bytes of every regular file in src.
func (e *Executor) Key(ctx context.Context, plan recipe.Plan, src string) (string, error) {
	tc, err := e.inner.Toolchain(ctx)
	if err != nil {
		return "", err
	}
	return ContentKey(fmt.Sprintf("toolchain %q\n", tc), plan, src)
}

// ContentKey hashes header, the plan and the bytes of every regular file in
// src — not its path, nor source.json, which records where the source was
// fetched to and from (a fresh temporary directory every time).
func ContentKey(header string, plan recipe.Plan, src string) (string, error) {
	h := sha256.New()
	planJSON, err := json.Marshal(plan)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "%splan %s\n", header, planJSON)
	entries, err := os.ReadDir(src) // sorted by name
	if err != nil {
		return "", err
	}
	for _, ent := range entries {
		if !ent.Type().IsRegular() || ent.Name() == "source.json" {
			continue
		}
		f, err := os.Open(filepath.Join(src, ent.Name()))
		if err != nil {
			return "", err
		}
		fh := sha256.New()
		_, err = io.Copy(fh, f)
		f.Close()
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "file %q %x\n", ent.Name(), fh.Sum(nil))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Complete says whether dir holds every one of products.
func Complete(dir string, products []string) bool {
	for _, p := range products {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return false
		}
	}
	return true
}
