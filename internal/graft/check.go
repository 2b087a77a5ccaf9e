package graft

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/sqlite-graft/sqlite-graft/internal/check"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/layer"
)

// Checker gives the sandbox that runs a platform's images for the image
// checks, as Compiler gives the executor that compiles for it: runc on this
// machine (LocalChecker), or the Dagger engine. An error that wraps
// ErrCannotRun skips that platform's checks, and says so; any other stops
// the build.
type Checker func(platform v1.Platform) (check.Sandbox, error)

// ErrCannotRun says that a Checker has no sandbox for a platform.
var ErrCannotRun = errors.New("no sandbox here runs this platform's images")

// LocalChecker runs the images of this machine's platform under runc.
func LocalChecker(p v1.Platform) (check.Sandbox, error) {
	if p.OS != "linux" || p.Architecture != runtime.GOARCH {
		return nil, fmt.Errorf("%w: runc on this machine runs linux/%s images, not %s (the Dagger module checks them under emulation)", ErrCannotRun, runtime.GOARCH, p)
	}
	return check.Runc{}, nil
}

func (req ImageRequest) checker() Checker {
	if req.Checker == nil {
		return LocalChecker
	}
	return req.Checker
}

// checkImages checks every platform's image from inside, in its sandbox,
// with the same checks and verdict on every sandbox, and the downstream
// check where one is planned. It records a line per platform in the
// plans' records. Platforms are checked at once: under emulation, a
// platform's check takes minutes.
func (e *Env) checkImages(ctx context.Context, req ImageRequest, plan *BuildPlan, imgs []*platformImage) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, pi := range imgs {
		log := e.Log.WithField("platform", pi.platform.String())
		if pi.sandbox == nil {
			log.Warn("image checks skipped: no sandbox here runs this platform")
			continue
		}
		g.Go(func() error {
			opts := check.ImageOptions{
				Image: pi.img, Sandbox: pi.sandbox, Want: &plan.Pin, Stress: req.Stress, Timeout: req.CheckTimeout,
				Logger: e.Log, BaselineKind: pi.checks.baseline, MaxUnpackedSize: req.MaxUnpackedSize,
				// The graft holds for env -i too: musl's default path, the
				// loader cache the layer ships on glibc.
				ClearedEnv: true,
			}
			if req.Def.Preload == imagedef.PreloadWrapper {
				opts.Wrapper = []string{layer.WrapperPath}
			}
			log.Info("checking the image from inside")
			r, err := (&checkRun{opts: opts}).check(ctx)
			if err != nil {
				return fmt.Errorf("image check (%s): %w", pi.platform, err)
			}
			pi.checks.record.Summary = r.Summary()
			log.WithFields(map[string]any{"sqlite": r.Report.Version, "mapped": r.Report.Mapped, "user": r.User, "baseline": r.BaselineKind}).Info("image check passed")
			pkg := pi.checks.pkg
			if pkg == nil {
				return nil
			}
			log.Infof("downstream check: a throwaway copy of the image with %s %s added", pkg.Name, pkg.Version)
			start := time.Now()
			run, err := downstreamRun(pi.img, pkg, opts)
			if err != nil {
				return err
			}
			if r, err = run.check(ctx); err != nil {
				return fmt.Errorf("image check (%s): %w", pi.platform, err)
			}
			log.WithFields(map[string]any{"sqlite": r.Report.Version, "mapped": r.Report.Mapped, "baseline": r.BaselinePackage + " (" + r.Report.BaselineVersion + ")",
				"seconds": fmt.Sprintf("%.2f", time.Since(start).Seconds())}).Info("downstream check passed")
			return nil
		})
	}
	return g.Wait()
}

// checkRun is one run of the image checks: on the image itself, or on its
// downstream copy (downstreamRun).
type checkRun struct {
	opts check.ImageOptions
	what string // names the run in errors ("" : the image itself)
	// verify adds to the verdict of a run that passed; nil: nothing.
	verify func(*check.ImageReport) error
}

// check is the one place an image check runs.
func (run *checkRun) check(ctx context.Context) (*check.ImageReport, error) {
	r, err := check.Image(ctx, run.opts)
	if err == nil && run.verify != nil {
		err = run.verify(r)
	}
	if err != nil && run.what != "" {
		return r, fmt.Errorf("%s: %w", run.what, err)
	}
	return r, err
}
