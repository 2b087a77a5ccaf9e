// Command sqlite-graft grafts a pinned, verified SQLite onto container base
// images. See README.md, or run sqlite-graft --help.
package main

import (
	"os"

	"github.com/sqlite-graft/sqlite-graft/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
