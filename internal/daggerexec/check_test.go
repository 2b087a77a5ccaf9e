package daggerexec_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sqlite-graft/sqlite-graft/internal/daggerexec"
	"github.com/sqlite-graft/sqlite-graft/internal/imagedef"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

const sourceID3513 = "2026-03-13 10:38:09 737ae4a34738ffa0c3ff7f9bb18df914dd1cad163f28fd6b6e114a344fe6d618"

// probeAnswers answers the probe's commands as a probe in a good image would,
// with mapped as the files it reports.
func probeAnswers(mapped ...string) func([]call) string {
	return func(chain []call) string {
		args := chain[len(chain)-2].list("args")
		switch {
		case slices.Equal(args[len(args)-1:], []string{"info"}):
			var m []string
			for _, p := range mapped {
				m = append(m, fmt.Sprintf(`{"path": %q, "inode": 1}`, p))
			}
			return fmt.Sprintf(`{"version": "3.51.3", "source_id": %q, "version_number": 3051003, "mapped": [%s]}`, sourceID3513, strings.Join(m, ", "))
		case slices.Equal(args[len(args)-1:], []string{"whoami"}):
			return `{"uid": 65532, "euid": 65532, "gid": 65532, "egid": 65532, "env": []}`
		}
		return ""
	}
}

func TestDaggerCheckImageRunsTheProbeAsTheImagesUser(t *testing.T) {
	rec, c := newClient(t)
	rec.stdout = probeAnswers("/lib/ld-musl-x86_64.so.1", "/usr/local/lib/libsqlite3.so.3.51.3")
	def := definition(t, "alpine-3.21")
	tg := target(t, def, "linux/amd64", amd64Digest)
	products := c.Directory().WithNewFile("libsqlite3.so.0", "lib")
	probeC := c.Directory().WithNewFile("probe.c", "int main(){}").File("probe.c")
	probe, err := daggerexec.Probe(c.Query, tg, products, probeC)
	if err != nil {
		t.Fatal(err)
	}
	tarball := c.Directory().WithNewFile("image.tar", "oci").File("image.tar")
	want := pins.Pin{Version: pins.MustParseVersion("3.51.3"), SourceID: sourceID3513}
	r, err := daggerexec.CheckImage(context.Background(), c.Query, daggerexec.CheckRequest{
		Platform: "linux/amd64", Tarball: tarball, Def: def, Probe: probe, Want: want, ConfigUser: "65532:65532",
	})
	if err != nil {
		t.Fatalf("CheckImage = %v (%+v)", err, r)
	}
	if r.Version != "3.51.3" || !slices.Equal(r.Mapped, []string{"/usr/local/lib/libsqlite3.so.3.51.3"}) || r.UID != 65532 {
		t.Errorf("report = %+v", r)
	}

	runs := rec.leafChains("stdout")
	if len(runs) != 2 {
		t.Fatalf("%d commands run in the image, want info and whoami", len(runs))
	}
	for i, sub := range []string{"info", "whoami"} {
		chain := runs[i]
		if got := names(chain); !slices.Equal(got, []string{"container", "import", "withUser", "withMountedFile", "withExec", "stdout"}) {
			t.Fatalf("%s: pipeline %v", sub, got)
		}
		if chain[0].str("platform") != "linux/amd64" {
			t.Errorf("%s: container(platform: %q)", sub, chain[0].str("platform"))
		}
		tar := rec.resolve(t, chain[1].str("source"))
		if tar[len(tar)-1].Name != "file" || tar[len(tar)-1].str("path") != "image.tar" {
			t.Errorf("%s: import(source: %s), want the image tarball", sub, show(tar))
		}
		if chain[2].str("name") != "65532:65532" {
			t.Errorf("%s: withUser(%q), want the definition's user 65532:65532", sub, chain[2].str("name"))
		}
		if chain[3].str("path") != daggerexec.ProbePath {
			t.Errorf("%s: probe mounted at %q", sub, chain[3].str("path"))
		}
		if got := chain[4].list("args"); !slices.Equal(got, []string{daggerexec.ProbePath, sub}) {
			t.Errorf("%s: withExec(%q)", sub, got)
		}
		// The probe is compiled in the base's own toolchain, against the
		// built library by its soname.
		built := rec.resolve(t, chain[3].str("source"))
		if built[0].Name != "container" || built[1].str("address") != "docker.io/library/alpine:3.21@"+amd64Digest {
			t.Errorf("%s: probe built in %s", sub, show(built))
		}
		compile := built[len(built)-2]
		if want := []string{"cc", "-O2", "-pthread", "-o", "probe", "probe.c", "libsqlite3.so.0"}; !slices.Equal(compile.list("args"), want) {
			t.Errorf("%s: probe compiled with %q, want %q", sub, compile.list("args"), want)
		}
		if last := built[len(built)-1]; last.Name != "file" || last.str("path") != "/probe/probe" {
			t.Errorf("%s: probe file %s", sub, last)
		}
	}
	if slices.Contains(rec.allFields(), "host") {
		t.Errorf("the check touched the host")
	}
}

func TestDaggerCheckImageFailures(t *testing.T) {
	def := definition(t, "alpine-3.21")
	want := pins.Pin{Version: pins.MustParseVersion("3.51.3"), SourceID: sourceID3513}
	for name, tc := range map[string]struct {
		mapped     []string
		configUser string
		want       string
	}{
		"two copies":   {[]string{"/usr/lib/libsqlite3.so.0.8.6", "/usr/local/lib/libsqlite3.so.3.51.3"}, "65532:65532", "2 copies of SQLite"},
		"distro copy":  {[]string{"/usr/lib/libsqlite3.so.0.8.6"}, "65532:65532", "want the grafted /usr/local/lib/libsqlite3.so.3.51.3"},
		"no sqlite":    {nil, "65532:65532", "none"},
		"root config":  {[]string{"/usr/local/lib/libsqlite3.so.3.51.3"}, "", `the image config's User is ""`},
		"other config": {[]string{"/usr/local/lib/libsqlite3.so.3.51.3"}, "1000:1000", `the image config's User is "1000:1000"`},
	} {
		t.Run(name, func(t *testing.T) {
			rec, c := newClient(t)
			rec.stdout = probeAnswers(tc.mapped...)
			f := c.Directory().WithNewFile("f", "x").File("f")
			r, err := daggerexec.CheckImage(context.Background(), c.Query, daggerexec.CheckRequest{
				Platform: "linux/arm64", Tarball: f, Def: def, Probe: f, Want: want, ConfigUser: tc.configUser,
			})
			if err == nil || !strings.Contains(err.Error(), tc.want) || r == nil || len(r.Problems) == 0 {
				t.Errorf("CheckImage = %v, want a failure naming %q", err, tc.want)
			}
		})
	}
}

func TestDaggerCheckImageThroughTheWrapper(t *testing.T) {
	rec, c := newClient(t)
	rec.stdout = probeAnswers("/usr/local/lib/libsqlite3.so.3.51.3")
	def := *definition(t, "alpine-3.21")
	def.Preload = imagedef.PreloadWrapper
	f := c.Directory().WithNewFile("f", "x").File("f")
	want := pins.Pin{Version: pins.MustParseVersion("3.51.3"), SourceID: sourceID3513}
	if _, err := daggerexec.CheckImage(context.Background(), c.Query, daggerexec.CheckRequest{
		Platform: "linux/amd64", Tarball: f, Def: &def, Probe: f, Want: want, ConfigUser: "65532:65532",
	}); err != nil {
		t.Fatal(err)
	}
	for _, chain := range rec.leafChains("stdout") {
		if args := chain[len(chain)-2].list("args"); args[0] != "/usr/local/bin/sqlite-preload" || args[1] != daggerexec.ProbePath {
			t.Errorf("preload: wrapper runs the probe as %q, want it through the wrapper", args)
		}
	}
}

// The glibc probe links libdl, as internal/check's does.
func TestDaggerProbeOnGlibc(t *testing.T) {
	rec, c := newClient(t)
	tg := target(t, definition(t, "debian-13"), "linux/amd64", amd64Digest)
	p, err := daggerexec.Probe(c.Query, tg, c.Directory(), c.Directory().WithNewFile("probe.c", "").File("probe.c"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := p.ID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	chain := rec.resolve(t, string(id))
	if args := chain[len(chain)-2].list("args"); args[len(args)-1] != "-ldl" {
		t.Errorf("glibc probe compiled with %q, want -ldl last", args)
	}
}

// The probe's source is made in the engine from the bytes of
// internal/check/probe.c compiled into the program: no host, no loaded ID of
// an earlier session.
func TestDaggerProbeSourceIsMadeInTheEngine(t *testing.T) {
	rec, c := newClient(t)
	want, err := os.ReadFile("../check/probe.c")
	if err != nil {
		t.Fatal(err)
	}
	id, err := daggerexec.ProbeSource(c.Query).ID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	chain := rec.resolve(t, string(id))
	if got := names(chain); !slices.Equal(got, []string{"directory", "withNewFile", "file"}) {
		t.Fatalf("probe source = %s, want directory.withNewFile.file", show(chain))
	}
	if chain[1].str("path") != "probe.c" || chain[1].str("contents") != string(want) {
		t.Errorf("probe source holds %d bytes at %q, want internal/check/probe.c (%d bytes)", len(chain[1].str("contents")), chain[1].str("path"), len(want))
	}
}
