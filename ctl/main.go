// Command montagectl submits and follows Stream Montages jobs.
package main

import (
	"os"

	"github.com/stream-montages/montage/ctl/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr))
}
