package daggerexec

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"dagger.io/dagger"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/layer"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// ProbePath is where the probe is mounted in the image's container.
const ProbePath = "/sqlite-graft-check/probe"

// ProbeSource is internal/check/probe.c as a file made in the engine from
// the bytes compiled into this program: nothing is read from the caller, and
// no file of an earlier session is kept (a Dagger module's object outlives
// the session that made it, its files do not).
func ProbeSource(q *dagger.Query) *dagger.File {
	return q.Directory().WithNewFile("probe.c", string(sqlitegraft.ProbeC)).File("probe.c")
}

// Probe compiles the check probe (the source of internal/check/probe.c,
// given by the caller) in target t's build container — the base's own
// compiler and libc — linked against the built library in products by its
// soname, libsqlite3.so.0, the way distro programs are linked. The same
// flags as internal/check's probe: -O2 -pthread, and -ldl on glibc.
func Probe(q *dagger.Query, t Target, products *dagger.Directory, probeC *dagger.File) (*dagger.File, error) {
	if products == nil || probeC == nil {
		return nil, fmt.Errorf("daggerexec: the probe needs the built library and probe.c")
	}
	ctr, err := Builder(q, t)
	if err != nil {
		return nil, err
	}
	args := []string{CC, "-O2", "-pthread", "-o", "probe", "probe.c", layer.Soname}
	if t.Libc == imagedef.Glibc {
		args = append(args, "-ldl") // dlsym lives in libdl before glibc 2.34
	}
	return ctr.WithDirectory("/probe", products).
		WithFile("/probe/probe.c", probeC).
		WithWorkdir("/probe").
		WithExec(args).
		File("/probe/probe"), nil
}

// ImageContainer is a finished image as a container: imported from an OCI
// image tarball (one image, for platform), running as user — the image's
// own user, so a check sees what the image's processes see.
func ImageContainer(q *dagger.Query, platform string, tarball *dagger.File, user string) *dagger.Container {
	return q.Container(dagger.ContainerOpts{Platform: dagger.Platform(platform)}).
		Import(tarball).
		WithUser(user)
}

// RunCheck runs argv in ctr, with probe (when given) mounted at ProbePath,
// under the image's environment, and returns its standard output. A non-zero
// exit is an error carrying the command's output.
func RunCheck(ctx context.Context, ctr *dagger.Container, probe *dagger.File, argv []string) (string, error) {
	if len(argv) == 0 {
		return "", fmt.Errorf("daggerexec: no check command")
	}
	if probe != nil {
		ctr = ctr.WithMountedFile(ProbePath, probe)
	}
	out, err := ctr.WithExec(argv).Stdout(ctx)
	return out, withOutput(err)
}

// CheckRequest says which image to check in the engine and what to expect.
type CheckRequest struct {
	Platform string
	Tarball  *dagger.File // OCI image tarball of the finished image for Platform
	Def      *imagedef.Definition
	Probe    *dagger.File // from Probe, built for this platform's base
	Want     pins.Pin
	// ConfigUser is the User of the image's config. The container runs as
	// the definition's user (withUser); this says the image itself does too.
	ConfigUser string
}

// CheckReport is what the probe saw inside the image, as its user.
type CheckReport struct {
	Platform string   `json:"platform"`
	User     string   `json:"user"`
	UID      int      `json:"uid"`
	EUID     int      `json:"euid"`
	Version  string   `json:"version"`
	SourceID string   `json:"source_id"`
	Mapped   []string `json:"mapped"` // the libsqlite3 files mapped in the probe's process
	Problems []string `json:"problems,omitempty"`
}

// String is one line per platform for people.
func (r *CheckReport) String() string {
	status := "ok"
	if len(r.Problems) > 0 {
		status = "FAILED: " + strings.Join(r.Problems, "; ")
	}
	return fmt.Sprintf("%s: SQLite %s as uid %d, mapped %v: %s", r.Platform, r.Version, r.UID, r.Mapped, status)
}

// probeInfo is the part of `probe info` these checks read.
type probeInfo struct {
	Version  string `json:"version"`
	SourceID string `json:"source_id"`
	Mapped   []struct {
		Path string `json:"path"`
	} `json:"mapped"`
}

type probeWhoami struct {
	UID  int `json:"uid"`
	EUID int `json:"euid"`
}

// CheckImage runs the probe inside the finished image, as the image's user,
// under its environment (and through the wrapper for preload: wrapper), and
// checks:
//   - identity: sqlite_version() and sqlite_source_id() are the pin's;
//   - one copy: exactly one libsqlite3 file is mapped, the grafted one
//     (layer.LibraryFile);
//   - the user: the process does not run as root (unless the definition
//     allows it) and runs as the definition's uid.
//
// The local path (internal/check under runc) also compares compile options
// and symbols with the base's library and runs the WAL stress test; those
// need the base's library on the host and are not repeated here.
//
// The report comes back with the error when a check fails.
func CheckImage(ctx context.Context, q *dagger.Query, req CheckRequest) (*CheckReport, error) {
	if req.Def == nil || req.Tarball == nil || req.Probe == nil {
		return nil, fmt.Errorf("daggerexec: CheckImage needs a definition, the image tarball and the probe")
	}
	user := fmt.Sprintf("%d:%d", req.Def.User.UID, req.Def.User.GID)
	ctr := ImageContainer(q, req.Platform, req.Tarball, user)
	var prefix []string
	if req.Def.Preload == imagedef.PreloadWrapper {
		prefix = []string{layer.WrapperPath}
	}
	r := &CheckReport{Platform: req.Platform, User: user}

	out, err := RunCheck(ctx, ctr, req.Probe, append(slices.Clone(prefix), ProbePath, "info"))
	if err != nil {
		return r, fmt.Errorf("image check (%s): probe info: %w", req.Platform, err)
	}
	var in probeInfo
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		return r, fmt.Errorf("image check (%s): probe info: output is not the expected JSON: %v\n%s", req.Platform, err, out)
	}
	out, err = RunCheck(ctx, ctr, req.Probe, append(slices.Clone(prefix), ProbePath, "whoami"))
	if err != nil {
		return r, fmt.Errorf("image check (%s): probe whoami: %w", req.Platform, err)
	}
	var who probeWhoami
	if err := json.Unmarshal([]byte(out), &who); err != nil {
		return r, fmt.Errorf("image check (%s): probe whoami: output is not the expected JSON: %v\n%s", req.Platform, err, out)
	}
	r.Version, r.SourceID, r.UID, r.EUID = in.Version, in.SourceID, who.UID, who.EUID
	for _, m := range in.Mapped {
		if strings.Contains(path.Base(m.Path), "libsqlite3") {
			r.Mapped = append(r.Mapped, m.Path)
		}
	}
	r.verdict(req.Def, req.Want)
	if req.ConfigUser != user && !(req.Def.AllowRoot && req.Def.User.UID == 0) {
		r.Problems = append(r.Problems, fmt.Sprintf("user: the image config's User is %q, want %q", req.ConfigUser, user))
	}
	if len(r.Problems) > 0 {
		return r, fmt.Errorf("image check (%s): %d check(s) failed:\n  - %s", req.Platform, len(r.Problems), strings.Join(r.Problems, "\n  - "))
	}
	return r, nil
}

func (r *CheckReport) verdict(def *imagedef.Definition, want pins.Pin) {
	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }
	if r.Version != want.Version.String() {
		problem("identity: sqlite_version() = %q, want %s", r.Version, want.Version)
	}
	if want.SourceID != "" && r.SourceID != want.SourceID {
		problem("identity: sqlite_source_id() = %q, want %q", r.SourceID, want.SourceID)
	}
	graftFile := layer.LibraryFile(want.Version)
	switch {
	case len(r.Mapped) == 0:
		problem("mapped libsqlite3 files: none; the probe did not load SQLite from a file")
	case len(r.Mapped) > 1:
		problem("mapped libsqlite3 files = %v: %d copies of SQLite in one process (sqlite.org howtocorrupt §2.3)", r.Mapped, len(r.Mapped))
	case r.Mapped[0] != graftFile:
		problem("mapped libsqlite3 files = %v: want the grafted %s", r.Mapped, graftFile)
	}
	switch {
	case (r.UID == 0 || r.EUID == 0) && !def.AllowRoot:
		problem("user is root: the process ran as uid %d (euid %d)", r.UID, r.EUID)
	case r.UID != def.User.UID:
		problem("user: the process ran as uid %d, want %d (%s)", r.UID, def.User.UID, def.User.Name)
	}
}
