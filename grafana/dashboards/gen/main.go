// Command gen renders the dashboards to JSON in the given directory
// (default: grafana/dashboards), as `make dashboards` does.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stream-montages/montage/grafana/dashboards"
)

func main() {
	dir := flag.String("out", "grafana/dashboards", "directory to write the JSON into")
	flag.Parse()
	all, err := dashboards.All()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	for _, d := range all {
		p := filepath.Join(*dir, d.File)
		if err := os.WriteFile(p, d.JSON, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", p)
	}
}
