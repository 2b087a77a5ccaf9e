package sourcetree

import (
	"bytes"
	"fmt"
	"strings"
)

// manifestTrailer is the line sqlite.org appends to a published manifest so
// that Fossil does not take the file for one of its own; the check-in hash
// (manifest.uuid) is the SHA3-256 of the manifest without it.
const manifestTrailer = "# Remove this line to create a well-formed Fossil manifest.\n"

// artifact returns the manifest as Fossil hashed it.
func artifact(manifest []byte) []byte {
	return bytes.TrimSuffix(manifest, []byte(manifestTrailer))
}

// parseFCards reads the F-cards ("F name hash ?perm? ?oldname?") of a
// manifest. Names use Fossil's escapes: \s space, \n newline, \\ backslash.
func parseFCards(manifest []byte) (map[string]string, error) {
	files := map[string]string{}
	for i, line := range strings.Split(string(manifest), "\n") {
		if !strings.HasPrefix(line, "F ") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("manifest line %d: F-card %q without a hash", i+1, line)
		}
		name := unescape(f[1])
		// 64 hex digits are SHA3-256; 40 are SHA1, which Fossil keeps for
		// files unchanged since SQLite moved to SHA3 in 2017 (a fifth of the
		// tree). Replacing such a file needs a SHA1 second preimage, not a
		// collision, so it is still a sound check.
		if len(f[2]) != 64 && len(f[2]) != 40 {
			return nil, fmt.Errorf("manifest line %d: %s: hash %q is neither SHA3-256 nor SHA1", i+1, name, f[2])
		}
		if len(f) > 3 && strings.Contains(f[3], "l") {
			return nil, fmt.Errorf("manifest line %d: %s is a symbolic link; not supported", i+1, name)
		}
		files[name] = f[2]
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("manifest has no F-cards")
	}
	return files, nil
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	return strings.NewReplacer(`\s`, " ", `\n`, "\n", `\\`, `\`).Replace(s)
}
