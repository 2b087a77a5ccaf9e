package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	sqlitegraft "github.com/sqlite-graft/sqlite-graft"
	"github.com/sqlite-graft/sqlite-graft/internal/pins"
)

// GlobalOptions are the flags every command takes.
type GlobalOptions struct {
	LogFormat string
	LogLevel  string
	PinsFile  string
	Patches   string
	CacheDir  string
}

func (o *GlobalOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.LogFormat, "log-format", "text", "log format: text (for people) or json (for CI)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.PinsFile, "pins", "", "pins file (default: the sqlite-pins.yaml built into this binary)")
	fs.StringVar(&o.Patches, "patches", "", "patches directory holding <version>/NNNN-*.patch (default: the patches/ built into this binary)")
	fs.StringVar(&o.CacheDir, "cache-dir", "", "cache for verified archives and builds (default: $XDG_CACHE_HOME/sqlite-graft)")
}

// Logger builds the logger: text on a terminal, JSON for CI; logs go to stderr
// so that stdout carries only results.
func (o *GlobalOptions) Logger(stderr io.Writer) (*logrus.Logger, error) {
	l := logrus.New()
	l.SetOutput(stderr)
	switch o.LogFormat {
	case "text":
		f := &logrus.TextFormatter{FullTimestamp: true}
		if file, ok := stderr.(*os.File); !ok || !term.IsTerminal(int(file.Fd())) {
			f.DisableColors = true
		}
		l.SetFormatter(f)
	case "json":
		l.SetFormatter(&logrus.JSONFormatter{})
	default:
		return nil, usageErrorf("--log-format %q: want text or json", o.LogFormat)
	}
	lvl, err := logrus.ParseLevel(o.LogLevel)
	if err != nil {
		return nil, usageErrorf("--log-level %q: want debug, info, warn or error", o.LogLevel)
	}
	l.SetLevel(lvl)
	return l, nil
}

// Pins loads the pins file.
func (o *GlobalOptions) Pins() (*pins.File, error) {
	if o.PinsFile == "" {
		return pins.Parse(sqlitegraft.PinsFileName+" (built in)", sqlitegraft.PinsYAML)
	}
	return pins.Load(o.PinsFile)
}

func (o *GlobalOptions) Cache() (string, error) {
	if o.CacheDir != "" {
		return o.CacheDir, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory (set --cache-dir): %w", err)
	}
	return filepath.Join(d, "sqlite-graft"), nil
}

// SourceOptions name a SQLite source.
type SourceOptions struct {
	SQLite string
	From   string
	SHA3   string
}

// Defaults of --sqlite, as each command's help states them.
const (
	SQLiteDefaultPins       = "the pins file's default"
	SQLiteDefaultDefinition = "the image definition's sqlite"
)

// AddFlags adds the source flags; versionDefault says what --sqlite
// defaults to for this command (SQLiteDefaultPins, SQLiteDefaultDefinition).
func (o *SourceOptions) AddFlags(fs *pflag.FlagSet, versionDefault string) {
	fs.StringVar(&o.SQLite, "sqlite", "", "SQLite version to build, e.g. 3.51.3 (default: "+versionDefault+")")
	fs.StringVar(&o.From, "from", "", "take the source from an https URL, a local archive (.zip, .tar.gz, a go-sqlite3 module zip) or a directory with sqlite3.c (default: download from sqlite.org and its mirrors)")
	fs.StringVar(&o.SHA3, "sha3", "", "SHA3-256 of the archive, for a version that is not pinned (as published on sqlite.org's download page)")
}

// Version resolves --sqlite against the pins' default (fetch, compile);
// build's default is the definition's (imagedef.Definition.Version).
func (o *SourceOptions) Version(p *pins.File) (pins.Version, error) {
	if o.SQLite == "" {
		return p.Default, nil
	}
	v, err := pins.ParseVersion(o.SQLite)
	if err != nil {
		return pins.Version{}, usageErrorf("--sqlite: %v", err)
	}
	return v, nil
}
