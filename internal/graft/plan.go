package graft

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"crypto/sha3"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/sqlite-graft/sqlite-graft/internal/advisories"
	"github.com/sqlite-graft/sqlite-graft/internal/image"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
)

// Labels that record a build's inputs in the image config, so the next run
// can tell "nothing changed" — and say what did — before compiling anything.
const (
	LabelInputs      = "io.github.sqlite-graft.inputs"
	LabelFingerprint = "io.github.sqlite-graft.fingerprint"
)

// ToolVersion is this program's version, recorded as an input (set with
// -ldflags "-X github.com/sqlite-graft/sqlite-graft/internal/graft.ToolVersion=...").
var ToolVersion = "dev"

// Inputs is everything a build's result depends on, as recorded.
type Inputs struct {
	Image   string            `json:"image"` // definition name
	ImageH  string            `json:"image_sha256"`
	Bases   map[string]string `json:"bases"` // platform -> repository@sha256:...
	SQLite  string            `json:"sqlite"`
	Pin     string            `json:"pin_sha256"` // the pin entry as used (hashes, source id)
	Patches map[string]string `json:"patches"`    // name -> SHA3-256
	Recipe  string            `json:"recipe_sha256"`
	Tool    string            `json:"tool"`
	// SQLiteTests is the release gate's level asked for ("" : none): the
	// image records its result.
	SQLiteTests string `json:"sqlite_tests,omitempty"`
}

// Fingerprint is the SHA-256 of the recorded inputs.
func (in Inputs) Fingerprint() (string, []byte) {
	b, _ := json.Marshal(in) // maps marshal with sorted keys
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), b
}

// Changes says, in words, how in differs from an earlier build's inputs.
func (in Inputs) Changes(old Inputs) []string {
	var c []string
	plats := map[string]bool{}
	for p := range in.Bases {
		plats[p] = true
	}
	for p := range old.Bases {
		plats[p] = true
	}
	for _, p := range sortedKeys(plats) {
		was, now := old.Bases[p], in.Bases[p]
		switch {
		case was == "":
			c = append(c, fmt.Sprintf("platform %s added", p))
		case now == "":
			c = append(c, fmt.Sprintf("platform %s dropped", p))
		case was != now:
			wr, wd := cutLast(was, "@")
			nr, nd := cutLast(now, "@")
			if wr == nr {
				c = append(c, fmt.Sprintf("base %s (%s) moved %s -> %s", nr, p, short(wd), short(nd)))
			} else {
				c = append(c, fmt.Sprintf("base (%s) %s -> %s", p, was, now))
			}
		}
	}
	if old.SQLite != in.SQLite {
		c = append(c, fmt.Sprintf("sqlite %s -> %s", old.SQLite, in.SQLite))
	} else if old.Pin != in.Pin {
		c = append(c, fmt.Sprintf("the pin of sqlite %s changed", in.SQLite))
	}
	if !mapsEqual(old.Patches, in.Patches) {
		c = append(c, fmt.Sprintf("patches changed: %v -> %v", sortedKeys(old.Patches), sortedKeys(in.Patches)))
	}
	if old.Recipe != in.Recipe {
		c = append(c, "compile recipe changed")
	}
	if old.Image != in.Image || old.ImageH != in.ImageH {
		c = append(c, fmt.Sprintf("image definition %s changed", in.Image))
	}
	if old.SQLiteTests != in.SQLiteTests {
		c = append(c, fmt.Sprintf("SQLite's tests %q -> %q", old.SQLiteTests, in.SQLiteTests))
	}
	if old.Tool != in.Tool {
		c = append(c, fmt.Sprintf("sqlite-graft %s -> %s", old.Tool, in.Tool))
	}
	return c
}

// BuildPlan is what a build would do, and why.
type BuildPlan struct {
	Image       string         `json:"image"`
	SQLite      string         `json:"sqlite"`
	Platforms   []string       `json:"platforms"`
	Bases       []*image.Base  `json:"-"`
	Repository  string         `json:"repository,omitempty"`
	Tags        []string       `json:"tags"`
	Inputs      Inputs         `json:"inputs"`
	Fingerprint string         `json:"fingerprint"`
	Current     map[string]any `json:"current,omitempty"` // tag -> what it holds now
	Unchanged   bool           `json:"unchanged"`
	Reasons     []string       `json:"reasons"`
	Pin         pins.Pin       `json:"-"`
	Version     pins.Version   `json:"-"`
	Created     time.Time      `json:"created"` // every timestamp of the build
}

// PlanImage resolves everything a build depends on — base digests, pin,
// patches, recipe, definition — without compiling, and compares it with what
// the registry holds under the target tags (when pushing).
func (e *Env) PlanImage(ctx context.Context, req ImageRequest) (*BuildPlan, error) {
	p, err := e.resolveInputs(ctx, req)
	if err != nil {
		return nil, err
	}
	tags, err := req.Def.Tags(p.Version, p.Created)
	if err != nil {
		return nil, err
	}
	if req.Push == "" {
		repo, err := name.NewRepository(req.Def.Repository)
		if err != nil {
			return nil, err
		}
		p.Repository = repo.Name()
		for _, t := range tags {
			p.Tags = append(p.Tags, repo.Tag(t).Name())
		}
		p.Reasons = []string{"no --push: writing a local OCI layout and tarball"}
		return p, nil
	}
	repo, tags, err := pushTarget(req.Push, tags)
	if err != nil {
		return nil, err
	}
	return p, p.compareTags(ctx, repo, tags, req.RegistryOptions)
}

// resolveInputs resolves and records everything the build depends on: the
// version (refused when it has the WAL-reset bug or an advisory the
// definition does not accept), the pin, the timestamp, each platform's base
// by digest, the patches, the recipe and the definition.
func (e *Env) resolveInputs(ctx context.Context, req ImageRequest) (*BuildPlan, error) {
	def := req.Def
	v := req.Source.Version
	if v == (pins.Version{}) {
		v, _ = def.Version("") // the definition's: see imagedef.Definition.Version
	}
	if err := pins.WALResetError(v); err != nil {
		return nil, fmt.Errorf("%s: refused: %w", def.File, err)
	}
	if err := advisories.Refuse(def.File, v, e.Recipe.Defines, def.AcceptAdvisories); err != nil {
		return nil, err
	}
	pin, err := e.Pins.Resolve(v, req.Source.SHA3)
	if err != nil {
		return nil, err
	}
	created, err := buildTime(req.Created, pin)
	if err != nil {
		return nil, err
	}
	platforms, err := req.platforms()
	if err != nil {
		return nil, err
	}
	baseRef := def.Base
	if req.Base != "" {
		baseRef = req.Base
	}
	p := &BuildPlan{Image: def.Name, SQLite: v.String(), Pin: pin, Version: v, Created: created}
	p.Inputs = Inputs{Image: def.Name, Bases: map[string]string{}, SQLite: v.String(), Patches: map[string]string{}, Tool: ToolVersion}
	for _, pl := range platforms {
		base, err := image.Pull(ctx, baseRef, pl, req.BaseOptions...)
		if err != nil {
			return nil, err
		}
		p.Bases = append(p.Bases, base)
		p.Platforms = append(p.Platforms, pl.String())
		// The reference as asked (its tag) with the digest it resolved to, so
		// that a moved tag can be named.
		asked := base.Ref.String()
		if _, isDigest := base.Ref.(name.Digest); isDigest {
			asked = base.Digest.Context().String()
		}
		p.Inputs.Bases[pl.String()] = asked + "@" + base.Digest.DigestStr()
	}
	p.Inputs.ImageH = hashJSON(def)
	p.Inputs.Pin = hashJSON(pin)
	if p.Inputs.Patches, err = patchHashes(e.Patches, v); err != nil {
		return nil, err
	}
	p.Inputs.Recipe = hashJSON(e.Recipe)
	p.Inputs.SQLiteTests = string(req.SQLiteTests.Level)
	p.Fingerprint, _ = p.Inputs.Fingerprint()
	return p, nil
}

// compareTags reads what each tag of repo holds now: the plan is unchanged
// when every tag holds an image that is structurally a build of ours and
// records the plan's inputs; otherwise the reasons say why not.
func (p *BuildPlan) compareTags(ctx context.Context, repo name.Repository, tags []string, opts []remote.Option) error {
	p.Repository = repo.Name()
	p.Current = map[string]any{}
	p.Unchanged = true
	notOurs := map[string]string{} // digest -> why not (structural check done once per digest)
	for _, t := range tags {
		tag := repo.Tag(t)
		p.Tags = append(p.Tags, tag.Name())
		old, desc, err := recorded(ctx, tag, opts...)
		switch {
		case err != nil:
			return err
		case desc == nil:
			p.Unchanged = false
			p.Current[tag.Name()] = nil
			p.Reasons = appendNew(p.Reasons, fmt.Sprintf("%s does not exist yet", tag.Name()))
			continue
		}
		digest := desc.Digest.String()
		p.Current[tag.Name()] = digest
		var changes []string
		switch {
		case old == nil:
			changes = []string{fmt.Sprintf("%s (%s) records no inputs", tag.Name(), short(digest))}
		default:
			changes = p.Inputs.Changes(*old)
		}
		if len(changes) == 0 {
			why, done := notOurs[digest]
			if !done {
				if why, err = p.notOurs(ctx, repo.Digest(digest), desc, opts); err != nil {
					return fmt.Errorf("%s: is it a build of ours? %w", tag.Name(), err)
				}
				notOurs[digest] = why
			}
			if why != "" {
				changes = []string{fmt.Sprintf("%s carries our label but is not structurally ours: %s", tag.Name(), why)}
			}
		}
		for _, c := range changes {
			p.Unchanged = false
			p.Reasons = appendNew(p.Reasons, c)
		}
	}
	if p.Unchanged {
		p.Reasons = []string{fmt.Sprintf("unchanged: every tag holds a build of these inputs (%s)", short(p.Fingerprint))}
	}
	return nil
}

// recorded reads the inputs label of the image under tag; desc is nil when
// the tag does not exist.
func recorded(ctx context.Context, tag name.Tag, opts ...remote.Option) (*Inputs, *remote.Descriptor, error) {
	desc, err := remote.Get(tag, append(opts, remote.WithContext(ctx))...)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", tag, err)
	}
	img, err := desc.Image() // for an index, the image of the default platform
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", tag, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", tag, err)
	}
	raw, ok := cf.Config.Labels[LabelInputs]
	if !ok {
		return nil, desc, nil
	}
	var in Inputs
	if err := json.Unmarshal([]byte(raw), &in); err != nil {
		return nil, desc, nil // an older format counts as "records no inputs"
	}
	return &in, desc, nil
}

// platforms are the request's, else the definition's.
func (req ImageRequest) platforms() ([]v1.Platform, error) {
	if len(req.Platforms) > 0 {
		return req.Platforms, nil
	}
	var out []v1.Platform
	for _, p := range req.Def.Platforms {
		pl, err := v1.ParsePlatform(p)
		if err != nil {
			return nil, err
		}
		out = append(out, *pl)
	}
	return out, nil
}

func patchHashes(fsys fs.FS, v pins.Version) (map[string]string, error) {
	out := map[string]string{}
	if fsys == nil {
		return out, nil
	}
	matches, err := fs.Glob(fsys, path.Join(v.String(), "*.patch"))
	if err != nil {
		return nil, err
	}
	for _, m := range matches {
		b, err := fs.ReadFile(fsys, m)
		if err != nil {
			return nil, err
		}
		sum := sha3.Sum256(b)
		out[path.Base(m)] = hex.EncodeToString(sum[:])
	}
	return out, nil
}

func hashJSON(v any) string {
	if r, ok := v.(*recipe.Recipe); ok {
		v = *r
	}
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func cutLast(s, sep string) (string, string) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i+len(sep):]
}

func short(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func sortedKeys[V any](m map[string]V) []string {
	var k []string
	for key := range m {
		k = append(k, key)
	}
	sort.Strings(k)
	return k
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
