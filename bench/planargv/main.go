// Command planargv [CC [VERSION]] prints the recipe's library step as a shell command line,
// so benchmarks can run the exact argv by hand as the floor to compare with.
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/sqlite-graft/sqlite-graft/internal/recipe"
)

func main() {
	cc, version := "cc", "3.51.3"
	if len(os.Args) > 1 {
		cc = os.Args[1]
	}
	if len(os.Args) > 2 {
		version = os.Args[2]
	}
	plan, err := recipe.Default().Plan(recipe.Params{CC: cc, Version: version})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, s := range plan.Steps {
		if s.Name == "library" {
			var q []string
			for _, a := range s.Argv {
				q = append(q, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
			}
			fmt.Println(strings.Join(q, " "))
			return
		}
	}
	os.Exit(1)
}
