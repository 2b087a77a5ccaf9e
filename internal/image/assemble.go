package image

import (
	"fmt"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/layer"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// Label and annotation keys beyond org.opencontainers.image.*.
const (
	LabelSQLiteVersion  = "io.github.sqlite-graft.sqlite.version"
	LabelSQLiteSourceID = "io.github.sqlite-graft.sqlite.source-id"
	LabelSQLite3CSHA3   = "io.github.sqlite-graft.sqlite.sqlite3-c.sha3-256"
	LabelArchiveSHA3    = "io.github.sqlite-graft.sqlite.archive.sha3-256"
	LabelPreload        = "io.github.sqlite-graft.preload"
)

// Graft is what goes on top of the base.
type Graft struct {
	Def       *imagedef.Definition
	Base      *Base
	Layer     v1.Layer
	Version   pins.Version
	SourceID  string
	SQLite3C  string // SHA3-256 of sqlite3.c as verified
	Archive   string // SHA3-256 of the archive, when one was verified
	Created   time.Time
	Revision  string            // the tool's source revision
	SourceURL string            // where the tool's source lives
	Labels    map[string]string // further config labels (e.g. the recorded inputs)
}

// Assemble appends the graft layer to the base and sets the config. The
// base's layers are reused as they are (same blobs, same digests): only the
// config, the manifest and the new layer are new.
func Assemble(g Graft) (v1.Image, error) {
	base := g.Base.Image
	mt, err := base.MediaType()
	if err != nil {
		return nil, err
	}
	l := g.Layer
	if mt == types.DockerManifestSchema2 {
		// An OCI layer in a Docker manifest is a mix some runtimes reject;
		// the same bytes are also a valid Docker layer.
		l = withMediaType{l, types.DockerLayer}
	}
	cf, err := base.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("base %s: config: %w", g.Base.Digest, err)
	}
	cfg := *cf.Config.DeepCopy()

	labels := withoutOwned(cfg.Labels)
	for k, v := range g.annotations() {
		labels[k] = v
	}
	for k, v := range g.Labels {
		labels[k] = v
	}
	cfg.Labels = labels
	if !g.Def.AllowRoot || g.Def.User.UID != 0 {
		cfg.User = fmt.Sprintf("%d:%d", g.Def.User.UID, g.Def.User.GID)
	}
	env, err := g.env(cfg.Env)
	if err != nil {
		return nil, err
	}
	cfg.Env = env

	img, err := mutate.Append(withoutOwnedAnnotations{base}, mutate.Addendum{
		Layer: l,
		History: v1.History{
			Created:   v1.Time{Time: g.Created},
			CreatedBy: fmt.Sprintf("sqlite-graft: SQLite %s in /usr/local (libsqlite3.so.0, sqlite3, sqlite-preload), preload %s", g.Version, g.Def.Preload),
			Comment:   "WAL-reset fix; base " + g.Base.Digest.String(),
		},
	})
	if err != nil {
		return nil, err
	}
	if img, err = mutate.Config(img, cfg); err != nil {
		return nil, err
	}
	// Created is the build's SOURCE_DATE_EPOCH, not the wall clock: same
	// inputs, same digest. Only the config's time is set; the base's layers
	// and history stay as they were.
	if img, err = mutate.CreatedAt(img, v1.Time{Time: g.Created}); err != nil {
		return nil, err
	}
	return mutate.Annotations(img, g.annotations()).(v1.Image), nil
}

// ownedKeys are the label and annotation keys whose values describe the
// grafted image itself, so a base's value would be false: the graft's own
// value replaces it, and where the graft has none (a build without a
// revision) the base's is dropped, never inherited. So are all keys under
// ownedPrefix. Every other key of the base passes into the image and is
// listed in the provenance (Inherited).
var ownedKeys = map[string]bool{
	"org.opencontainers.image.created":       true,
	"org.opencontainers.image.version":       true,
	"org.opencontainers.image.revision":      true,
	"org.opencontainers.image.source":        true,
	"org.opencontainers.image.url":           true,
	"org.opencontainers.image.documentation": true,
	"org.opencontainers.image.title":         true,
	"org.opencontainers.image.description":   true,
	"org.opencontainers.image.licenses":      true,
	"org.opencontainers.image.ref.name":      true,
	"org.opencontainers.image.base.name":     true,
	"org.opencontainers.image.base.digest":   true,
}

// ownedPrefix marks the keys of sqlite-graft's own labels and annotations.
const ownedPrefix = "io.github.sqlite-graft."

// owned reports whether a label or annotation key belongs to the graft.
func owned(key string) bool { return ownedKeys[key] || strings.HasPrefix(key, ownedPrefix) }

func withoutOwned(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if !owned(k) {
			out[k] = v
		}
	}
	return out
}

// Inherited returns the base's config labels and manifest annotations that
// pass into the grafted image: every key the graft does not own.
func Inherited(base v1.Image) (labels, annotations map[string]string, err error) {
	cf, err := base.ConfigFile()
	if err != nil {
		return nil, nil, err
	}
	m, err := base.Manifest()
	if err != nil {
		return nil, nil, err
	}
	return withoutOwned(cf.Config.Labels), withoutOwned(m.Annotations), nil
}

// withoutOwnedAnnotations is a base whose manifest annotations lack the
// graft's keys: mutate builds the new manifest from the base's, and
// mutate.Annotations only adds.
type withoutOwnedAnnotations struct{ v1.Image }

func (b withoutOwnedAnnotations) Manifest() (*v1.Manifest, error) {
	m, err := b.Image.Manifest()
	if err != nil || len(m.Annotations) == 0 {
		return m, err
	}
	m = m.DeepCopy()
	m.Annotations = withoutOwned(m.Annotations)
	return m, nil
}

func (g Graft) annotations() map[string]string {
	a := map[string]string{
		"org.opencontainers.image.base.name":   g.Base.Ref.String(),
		"org.opencontainers.image.base.digest": g.Base.Digest.DigestStr(),
		"org.opencontainers.image.version":     g.Version.String(),
		"org.opencontainers.image.created":     g.Created.UTC().Format(time.RFC3339),
		"org.opencontainers.image.licenses":    "blessing", // SQLite's public-domain dedication
		"org.opencontainers.image.title":       g.Def.Name + " with SQLite " + g.Version.String(),
		LabelSQLiteVersion:                     g.Version.String(),
		LabelSQLite3CSHA3:                      g.SQLite3C,
		LabelPreload:                           g.Def.Preload,
	}
	if g.Revision != "" {
		a["org.opencontainers.image.revision"] = g.Revision
	}
	if g.SourceURL != "" {
		a["org.opencontainers.image.source"] = g.SourceURL
	}
	if g.SourceID != "" {
		a[LabelSQLiteSourceID] = g.SourceID
	}
	if g.Archive != "" {
		a[LabelArchiveSHA3] = g.Archive
	}
	return a
}

// env is the base's environment with /usr/local/bin first on PATH (the
// grafted sqlite3 shell before the distro's, which refuses a preloaded
// library of another version) and, in env mode, the preload variables merged
// in front of any the base sets.
func (g Graft) env(base []string) ([]string, error) {
	env := slices.Clone(base)
	set := func(key, value string, prepend bool) {
		for i, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			if k != key {
				continue
			}
			if prepend {
				// First, and only once: a later duplicate would not hurt,
				// an earlier other entry would win.
				rest := slices.DeleteFunc(strings.Split(v, pathSep(key)), func(e string) bool { return e == value || e == "" })
				value = strings.Join(append([]string{value}, rest...), pathSep(key))
			}
			env[i] = key + "=" + value
			return
		}
		env = append(env, key+"="+value)
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	parts := slices.DeleteFunc(strings.Split(path, ":"), func(p string) bool { return p == "/usr/local/bin" })
	set("PATH", strings.Join(append([]string{"/usr/local/bin"}, parts...), ":"), false)
	if g.Def.Preload == imagedef.PreloadEnv {
		pre, err := layer.Env(g.Def.Libc)
		if err != nil {
			return nil, err
		}
		for _, kv := range pre {
			k, v, _ := strings.Cut(kv, "=")
			set(k, v, true)
		}
	}
	return env, nil
}

// pathSep separates entries: LD_PRELOAD takes spaces or colons, the search
// paths colons.
func pathSep(key string) string {
	if key == "LD_PRELOAD" {
		return " "
	}
	return ":"
}

type withMediaType struct {
	v1.Layer
	mt types.MediaType
}

func (l withMediaType) MediaType() (types.MediaType, error) { return l.mt, nil }
