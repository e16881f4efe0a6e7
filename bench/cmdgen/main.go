// Command cmdgen prints, as a bash script, the ffprobe/ffmpeg commands an
// agent runs for a job spec (probe, cut and normalise each highlight, then
// concat), so bench/overhead.sh can time the same work without the farm.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/stream-montages/montage/agent/media"
	"github.com/stream-montages/montage/ctl/specfile"
	"github.com/stream-montages/montage/internal/spec"
)

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func line(prog string, args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = quote(a)
	}
	return prog + " " + strings.Join(q, " ") + " >/dev/null"
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: cmdgen SPEC WORKDIR")
		os.Exit(2)
	}
	s, err := specfile.Load(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r, err := spec.Validate(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tools, err := media.FindTools()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The concat demuxer resolves list entries against the list's folder.
	dir, err := filepath.Abs(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p := media.Profile{Width: r.Profile.Width, Height: r.Profile.Height, FPS: r.Profile.FPS, Quality: r.Profile.Quality,
		AudioBitrate: fmt.Sprintf("%dk", r.Profile.AudioBitrate/1000)}
	fmt.Println("#!/usr/bin/env bash\nset -euo pipefail")
	var segs []string
	var chapters []media.Chapter
	at := 0.0
	for i, c := range r.Clips {
		kind := media.KindOf(c.URL)
		// Whether the source has audio decides the command; the probe is
		// also in the script, as the agent runs it for every render.
		info, err := tools.Probe(context.Background(), c.URL, kind)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		out := filepath.Join(dir, fmt.Sprintf("seg-%03d.mp4", i))
		fmt.Println(line("ffprobe", media.ProbeArgs(c.URL, kind)))
		fmt.Println(line("ffmpeg", media.RenderArgs(media.Render{Source: c.URL, Kind: kind, Start: c.Start, Duration: c.Duration, HasAudio: info.HasAudio, Profile: p, Output: out})))
		segs = append(segs, out)
		chapters = append(chapters, media.Chapter{Title: c.Title, Start: at, End: at + c.Duration})
		at += c.Duration
	}
	list, meta := filepath.Join(dir, "list.ffconcat"), filepath.Join(dir, "chapters.ffmeta")
	fmt.Printf("cat > %s <<'LIST'\n%sLIST\n", quote(list), media.ConcatList(segs))
	fmt.Printf("cat > %s <<'META'\n%sMETA\n", quote(meta), media.FFMetadata("", chapters))
	fmt.Println(line("ffmpeg", media.ConcatArgs(list, meta, p.AudioBitrate, filepath.Join(dir, "montage.mp4"))))
}
