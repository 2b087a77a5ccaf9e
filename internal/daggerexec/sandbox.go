package daggerexec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"dagger.io/dagger"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/sqlite-graft/sqlite-graft/internal/check"
)

// Sandbox is the engine's check.Sandbox for one target: the finished image
// imported into the engine from its OCI tarball, each process one withExec
// of it, and the probe compiled in the target's build container — the
// base's own compiler and libc — with exactly the flags internal/check uses
// on this machine. internal/check runs the same checks and verdict through
// it as through runc.
type Sandbox struct {
	Query  *dagger.Query
	Files  Files
	Target Target
}

// Open uploads img and the probe's link library, and compiles the probe.
func (s *Sandbox) Open(ctx context.Context, img v1.Image, pb check.ProbeBuild) (check.Session, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	dir, err := os.MkdirTemp("", "sqlite-graft-sandbox-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir) // uploads are evaluated (synced) before Open returns
	tarball := filepath.Join(dir, "image.tar")
	if err := WriteOCITarball(img, tarball); err != nil {
		return nil, fmt.Errorf("image tarball: %w", err)
	}
	tar, err := s.Files.File(ctx, tarball)
	if err != nil {
		return nil, fmt.Errorf("upload the image: %w", err)
	}
	link, err := s.Files.File(ctx, pb.Link)
	if err != nil {
		return nil, fmt.Errorf("upload the probe's link library: %w", err)
	}
	probe, err := Probe(s.Query, s.Target, pb, link)
	if err != nil {
		return nil, err
	}
	if probe, err = probe.Sync(ctx); err != nil {
		return nil, fmt.Errorf("compile the probe in %s (%s): %w", s.Target.Base, s.Target.Platform, withOutput(err))
	}
	user := cf.Config.User
	if user == "" {
		user = "0:0"
	}
	ctr := s.Query.Container(dagger.ContainerOpts{Platform: dagger.Platform(s.Target.Platform)}).
		Import(tar).
		WithMountedFile(check.ProbePath, probe).
		// A fresh directory each run, owned by the image's user: the stress
		// test's database. Nothing written in a run outlives it.
		WithMountedDirectory(check.ScratchDir, s.Query.Directory(), dagger.ContainerWithMountedDirectoryOpts{Owner: user})
	if ctr, err = ctr.Sync(ctx); err != nil {
		return nil, fmt.Errorf("import the image into the engine (%s): %w", s.Target.Platform, withOutput(err))
	}
	return &session{ctr: ctr, imageEnv: cf.Config.Env}, nil
}

// session runs processes in one imported image.
type session struct {
	ctr      *dagger.Container
	imageEnv []string // the config's environment, which each run replaces
}

// Run runs argv with exactly env: the image config's variables are removed
// and env's set, unexpanded.
func (s *session) Run(ctx context.Context, env []string, argv []string) ([]byte, error) {
	ctr := s.ctr
	for _, kv := range s.imageEnv {
		k, _, _ := strings.Cut(kv, "=")
		ctr = ctr.WithoutEnvVariable(k)
	}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		ctr = ctr.WithEnvVariable(k, v)
	}
	out, err := ctr.WithExec(argv).Stdout(ctx)
	if err != nil {
		return []byte(out), withOutput(err)
	}
	return []byte(out), nil
}

// Close does nothing: the engine owns the containers.
func (s *session) Close() error { return nil }

// ProbeSource is internal/check/probe.c, made in the engine from the bytes
// compiled into this program: nothing from an earlier session, no host.
func ProbeSource(q *dagger.Query) *dagger.File {
	return q.Directory().WithNewFile("probe.c", string(check.ProbeSource())).File("probe.c")
}

// Probe compiles the check probe in target t's build container — the base's
// own compiler and libc — linked against link (uploaded as
// libsqlite3.so.0), with the arguments internal/check uses (pb.ProbeArgs).
func Probe(q *dagger.Query, t Target, pb check.ProbeBuild, link *dagger.File) (*dagger.File, error) {
	if link == nil {
		return nil, fmt.Errorf("daggerexec: the probe needs a library to link against")
	}
	ctr, err := Builder(q, t)
	if err != nil {
		return nil, err
	}
	argv := append([]string{CC}, pb.ProbeArgs("probe.c", "probe", "libsqlite3.so.0")...)
	return ctr.WithFile("/probe/probe.c", ProbeSource(q)).
		WithFile("/probe/libsqlite3.so.0", link).
		WithWorkdir("/probe").
		WithExec(argv).
		File("/probe/probe"), nil
}
