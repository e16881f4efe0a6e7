// Command montage-samples generates the demo's sample VODs and serves them
// over HTTP until interrupted. It is used by `make demo` and bench scripts.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/stream-montages/montage/internal/testmedia"
)

func main() {
	dir := flag.String("dir", "out/samples", "directory for the generated samples")
	addr := flag.String("listen", "127.0.0.1:7480", "address to serve the samples on")
	seconds := flag.Float64("seconds", 30, "length of each sample")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Bind first: a second copy fails here instead of rewriting the files
	// the first one serves.
	srv, err := testmedia.Serve(*dir, *addr)
	if err != nil {
		slog.Error("serve samples", "err", err)
		os.Exit(1)
	}
	if err := testmedia.GenerateAll(ctx, *dir, testmedia.Samples(*seconds)); err != nil {
		slog.Error("generate samples", "err", err)
		os.Exit(1)
	}
	fmt.Printf("serving samples from %s at %s\n", *dir, srv.URL)
	<-ctx.Done()
	_ = srv.Close()
}
