package cli

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stream-montages/montage/ctl/specfile"
	"github.com/stream-montages/montage/internal/library"
	"github.com/stream-montages/montage/internal/spec"
	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

func (a *app) library() montagev1connect.HighlightServiceClient {
	return montagev1connect.NewHighlightServiceClient(a.http, strings.TrimRight(a.addr, "/"),
		connect.WithInterceptors(a.authorize(), retryUnavailable(15*time.Second)))
}

func (a *app) schedules() montagev1connect.ScheduleServiceClient {
	return montagev1connect.NewScheduleServiceClient(a.http, strings.TrimRight(a.addr, "/"),
		connect.WithInterceptors(a.authorize(), retryUnavailable(15*time.Second)))
}

func (a *app) catalog() montagev1connect.MontageServiceClient {
	return montagev1connect.NewMontageServiceClient(a.http, strings.TrimRight(a.addr, "/"),
		connect.WithInterceptors(a.authorize(), retryUnavailable(15*time.Second)))
}

func (a *app) printJSON(m proto.Message) error {
	b, err := jsonOpts.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(a.out, string(b))
	return err
}

// importBatch is how many rows one call carries; the whole file is
// checked before the first.
const importBatch = 5000

func (a *app) highlightsCmd() *cobra.Command {
	c := &cobra.Command{Use: "highlights", Short: "The highlight library that schedules make montages from"}
	var h montagev1.LibraryHighlight
	var score string
	add := &cobra.Command{
		Use:   "add URL --streamer S --at T",
		Short: "Add (or update) one highlight",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			row, err := library.Check(1, library.Fields{Streamer: h.GetStreamer(), URL: args[0], At: h.GetAt(), Duration: h.GetDuration(),
				Title: h.GetTitle(), Date: h.GetDate(), Score: score, Tags: h.GetTags()})
			if err != nil {
				return fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "line 1: "))
			}
			resp, err := a.library().AddHighlights(cmd.Context(), connect.NewRequest(&montagev1.AddHighlightsRequest{
				Highlights: []*montagev1.LibraryHighlight{rowProto(row)}}))
			if err != nil {
				return err
			}
			id := library.ID(row.URL, row.At)
			switch {
			case resp.Msg.GetAdded() > 0:
				fmt.Fprintf(a.out, "added %s\n", id)
			case resp.Msg.GetUpdated() > 0:
				fmt.Fprintf(a.out, "updated %s\n", id)
			default:
				fmt.Fprintf(a.out, "%s is in the library already, unchanged\n", id)
			}
			return nil
		},
	}
	add.Flags().StringVar(&h.Streamer, "streamer", "", "the streamer (channel) it is from (required)")
	add.Flags().StringVar(&h.At, "at", "", "where it starts in the source: 1:02:03, 3723 or 1h2m3s (required)")
	add.Flags().StringVar(&h.Duration, "duration", "", "how long (default 60s)")
	add.Flags().StringVar(&h.Title, "title", "", "its title (a chapter name in the montage)")
	add.Flags().StringVar(&h.Date, "date", "", "the stream's date, YYYY-MM-DD (schedules select by it)")
	add.Flags().StringVar(&score, "score", "", "a score, votes say (whole number; top-per-streamer picks the highest)")
	add.Flags().StringSliceVar(&h.Tags, "tag", nil, "a tag (repeat for more)")

	imp := &cobra.Command{
		Use:   "import FILE",
		Short: "Import highlights from CSV (a header row naming streamer,url,at,duration,title,date,score,tags) or JSON lines; - for stdin",
		Long: "Import highlights from a CSV file with a header row (any of streamer, url, at, duration, title, date, score, tags; " +
			"tags separated by ; or |) or from JSON lines with the same keys. A file with any bad row imports nothing and names every bad row. " +
			"Importing the same rows again changes nothing: a highlight is known by its URL and start.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var r io.Reader = os.Stdin
			if args[0] != "-" {
				f, err := os.Open(args[0])
				if err != nil {
					return err
				}
				defer f.Close()
				r = f
			}
			rows, err := library.Parse(r)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			var added, updated, same int32
			for i := 0; i < len(rows); i += importBatch {
				req := &montagev1.AddHighlightsRequest{}
				for _, row := range rows[i:min(i+importBatch, len(rows))] {
					req.Highlights = append(req.Highlights, rowProto(row))
					req.Lines = append(req.Lines, int32(row.Line))
				}
				resp, err := a.library().AddHighlights(cmd.Context(), connect.NewRequest(req))
				if err != nil {
					if i > 0 {
						return fmt.Errorf("rows from line %d on were not imported (those before were): %w", rows[i].Line, err)
					}
					return err
				}
				added, updated, same = added+resp.Msg.GetAdded(), updated+resp.Msg.GetUpdated(), same+resp.Msg.GetUnchanged()
			}
			fmt.Fprintf(a.out, "%d rows: %d added, %d updated, %d unchanged\n", len(rows), added, updated, same)
			return nil
		},
	}

	var lreq montagev1.ListHighlightsRequest
	var format string
	list := &cobra.Command{
		Use:   "list",
		Short: "List highlights, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			resp, err := a.library().ListHighlights(cmd.Context(), connect.NewRequest(&lreq))
			if err != nil {
				return err
			}
			if format == "json" {
				return a.printJSON(resp.Msg)
			}
			tw := tabwriter.NewWriter(a.out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTREAMER\tDATE\tAT\tDURATION\tSCORE\tTITLE\tTAGS\tURL")
			for _, h := range resp.Msg.GetHighlights() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", printable(h.GetId(), 40), printable(h.GetStreamer(), 40), orDash(h.GetDate()),
					h.GetAt(), h.GetDuration(), h.GetScore(), orDash(printable(h.GetTitle(), 60)), orDash(printable(strings.Join(h.GetTags(), ","), 60)),
					printable(h.GetUrl(), 100))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if n := resp.Msg.GetTotal(); int(n) > len(resp.Msg.GetHighlights()) {
				fmt.Fprintf(a.out, "(%d of %d; --limit for more)\n", len(resp.Msg.GetHighlights()), n)
			}
			return nil
		},
	}
	list.Flags().StringVar(&lreq.Streamer, "streamer", "", "only this streamer's")
	list.Flags().StringVar(&lreq.Since, "since", "", "from this stream date, YYYY-MM-DD")
	list.Flags().StringVar(&lreq.Until, "until", "", "to this stream date, YYYY-MM-DD (inclusive)")
	list.Flags().StringVar(&lreq.Tag, "tag", "", "only those with this tag")
	list.Flags().Int32Var(&lreq.Limit, "limit", 1000, "at most this many")
	list.Flags().StringVarP(&format, "output", "o", "text", "text or json")

	rm := &cobra.Command{
		Use:   "rm ID...",
		Short: "Remove highlights from the library",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			resp, err := a.library().RemoveHighlights(cmd.Context(), connect.NewRequest(&montagev1.RemoveHighlightsRequest{Ids: args}))
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "%d removed\n", resp.Msg.GetRemoved())
			return nil
		},
	}
	c.AddCommand(add, imp, list, rm)
	return c
}

func rowProto(r library.Row) *montagev1.LibraryHighlight {
	return &montagev1.LibraryHighlight{Streamer: r.Streamer, Url: r.URL, At: strconv.FormatFloat(r.At, 'f', -1, 64),
		Duration: strconv.FormatFloat(r.Duration, 'f', -1, 64), Title: r.Title, Date: r.Date, Score: r.Score, Tags: r.Tags}
}

// parseSpan reads 7d, 36h, 90m (days as 24h).
func parseSpan(flag, v string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("--%s %q: use a number of days (7d) or a duration (36h)", flag, v)
		}
		return time.Duration(n * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--%s %q: use a number of days (7d) or a duration (36h)", flag, v)
	}
	return d, nil
}

func (a *app) feedsCmd() *cobra.Command {
	c := &cobra.Command{Use: "feeds", Short: "URLs of highlight rows (CSV or JSON lines) the leader polls into the library"}
	var every string
	add := &cobra.Command{
		Use:   "add NAME URL --every 1h",
		Short: "Poll a feed on an interval (conditional requests: an unchanged feed costs a 304)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseSpan("every", every)
			if err != nil {
				return err
			}
			if _, err := a.library().AddFeed(cmd.Context(), connect.NewRequest(&montagev1.AddFeedRequest{Name: args[0], Url: args[1], EverySeconds: d.Seconds()})); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "feed %s added: polled every %s\n", args[0], d)
			return nil
		},
	}
	add.Flags().StringVar(&every, "every", "1h", "how often to poll (1m to 7d)")
	var format string
	list := &cobra.Command{
		Use:   "list",
		Short: "List feeds and how their polls went",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			resp, err := a.library().ListFeeds(cmd.Context(), connect.NewRequest(&montagev1.ListFeedsRequest{}))
			if err != nil {
				return err
			}
			if format == "json" {
				return a.printJSON(resp.Msg)
			}
			tw := tabwriter.NewWriter(a.out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tEVERY\tLAST POLL\tNEXT POLL\tPOLLS\tUNCHANGED\tROWS\tFAILURES\tLAST ERROR\tURL")
			for _, f := range resp.Msg.GetFeeds() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", printable(f.GetName(), 64),
					time.Duration(f.GetEverySeconds()*float64(time.Second)), when(f.GetLastPoll()), when(f.GetNextPoll()), f.GetPolls(),
					f.GetNotModified(), f.GetRows(), f.GetFailures(), orDash(printable(f.GetLastError(), 120)), printable(f.GetUrl(), 100))
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVarP(&format, "output", "o", "text", "text or json")
	rm := &cobra.Command{
		Use:   "rm NAME",
		Short: "Stop polling a feed (its highlights stay)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := a.library().RemoveFeed(cmd.Context(), connect.NewRequest(&montagev1.RemoveFeedRequest{Name: args[0]}))
			return err
		},
	}
	c.AddCommand(add, list, rm)
	return c
}

// webhookSecret is the key a webhook is signed with: given, from
// MONTAGE_WEBHOOK_SECRET, or made here and shown once.
func (a *app) webhookSecret(url, given string) string {
	if url == "" || given != "" {
		return given
	}
	if s := strings.TrimSpace(os.Getenv("MONTAGE_WEBHOOK_SECRET")); s != "" {
		return s
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	s := hex.EncodeToString(b)
	fmt.Fprintf(a.errOut, "webhook secret (shown once; check the %s header with it): %s\n", "X-Montage-Signature", s)
	return s
}

func (a *app) scheduleCmd() *cobra.Command {
	c := &cobra.Command{Use: "schedule", Short: "Montage schedules: cron slots that make montages from the library, each slot exactly once"}
	var (
		m                         montagev1.MontageSchedule
		window, profile, seed     string
		perStreamer, top, all     bool
		webhookURL, webhookSecret string
	)
	add := &cobra.Command{
		Use:   `add NAME --cron "0 9 * * MON" --window 7d (--per-streamer | --top-per-streamer | --all)`,
		Short: "Add a schedule",
		Long: "Add a schedule. At each cron slot (in --tz) it takes the library's highlights whose stream date falls in the window " +
			"before the slot (whole days when the window is whole days) and makes: one montage per streamer (--per-streamer, " +
			"chronological), one of each streamer's best-scored highlight (--top-per-streamer, shuffled by a seed from the schedule " +
			"and slot unless --seed), or one of all (--all). Missed slots after downtime fire once each (--catch-up all) or only the " +
			"latest (--catch-up last).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m.Name = args[0]
			n := 0
			for g, on := range map[string]bool{"per-streamer": perStreamer, "top-per-streamer": top, "all": all} {
				if on {
					m.Group = g
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("give exactly one of --per-streamer, --top-per-streamer and --all")
			}
			d, err := parseSpan("window", window)
			if err != nil {
				return err
			}
			m.WindowSeconds = d.Seconds()
			if seed != "" {
				v, err := strconv.ParseInt(seed, 10, 64)
				if err != nil {
					return fmt.Errorf("--seed %q: a whole number", seed)
				}
				m.Seed = proto.Int64(v)
			}
			if profile != "" {
				s, err := specfile.Load(profile)
				if err != nil {
					return fmt.Errorf("--profile: %w", err)
				}
				if s.GetProfile() == nil {
					return fmt.Errorf("--profile %s: no profile: block (write it as in a job spec)", profile)
				}
				m.Profile = s.GetProfile()
			}
			m.WebhookUrl, m.WebhookSecret = webhookURL, a.webhookSecret(webhookURL, webhookSecret)
			resp, err := a.schedules().AddSchedule(cmd.Context(), connect.NewRequest(&montagev1.AddScheduleRequest{Schedule: &m}))
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "schedule %s added; next slot %s\n", m.Name, when(resp.Msg.GetSchedule().GetNextSlot()))
			return nil
		},
	}
	f := add.Flags()
	f.StringVar(&m.Cron, "cron", "", `five-field cron expression, e.g. "0 9 * * MON" (or @daily, @weekly)`)
	f.StringVar(&m.Tz, "tz", "", "IANA time zone of the cron and the days (default UTC)")
	f.StringVar(&window, "window", "7d", "how far back a slot looks: 7d, 36h")
	f.BoolVar(&perStreamer, "per-streamer", false, "one montage per streamer")
	f.BoolVar(&top, "top-per-streamer", false, "one montage of each streamer's best highlight")
	f.BoolVar(&all, "all", false, "one montage of everything in the window")
	f.StringSliceVar(&m.Streamers, "streamer", nil, "only these streamers (repeat)")
	f.StringSliceVar(&m.Tags, "tag", nil, "only highlights with one of these tags (repeat)")
	f.Int64Var(&m.MinScore, "min-score", 0, "only highlights scoring at least this")
	f.Int32Var(&m.MaxHighlights, "max-highlights", 0, "keep the best-scored N of a montage (0: all)")
	f.StringVar(&m.Order, "order", "", "chronological, score or shuffle (default: shuffle for --top-per-streamer, else chronological)")
	f.StringVar(&seed, "seed", "", "fix the shuffle's seed")
	f.StringVar(&profile, "profile", "", "a YAML file with a profile: block, as in a job spec")
	f.StringVar(&m.NameTemplate, "name-template", "", `montage names: {streamer}, {schedule}, {from}, {to}, {slot}, e.g. "{streamer} — week of {from}"`)
	f.StringVar(&m.CatchUp, "catch-up", "all", "after downtime fire every missed slot once (all) or only the latest (last)")
	f.StringVar(&webhookURL, "webhook", "", "POST each montage's end here (signed JSON)")
	f.StringVar(&webhookSecret, "webhook-secret", "", "its HMAC-SHA256 key (default: MONTAGE_WEBHOOK_SECRET, or one made and shown once)")
	_ = add.MarkFlagRequired("cron")

	var format string
	list := &cobra.Command{
		Use:   "list",
		Short: "List schedules, their next slot and last fires",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			resp, err := a.schedules().ListSchedules(cmd.Context(), connect.NewRequest(&montagev1.ListSchedulesRequest{}))
			if err != nil {
				return err
			}
			if format == "json" {
				return a.printJSON(resp.Msg)
			}
			for _, s := range resp.Msg.GetSchedules() {
				state := "active"
				if s.GetPaused() {
					state = "paused"
				}
				fmt.Fprintf(a.out, "%s (%s): %q %s, %s over %s; next slot %s\n", printable(s.GetName(), 64), state, printable(s.GetCron(), 60),
					orUTC(s.GetTz()), s.GetGroup(), time.Duration(s.GetWindowSeconds()*float64(time.Second)), when(s.GetNextSlot()))
				h := s.GetHistory()
				for _, fr := range h[max(0, len(h)-5):] {
					how := ""
					if fr.GetManual() {
						how = " (by hand)"
					}
					fmt.Fprintf(a.out, "  slot %s%s: %d job(s) %s %s\n", when(fr.GetSlot()), how, len(fr.GetJobIds()),
						printable(strings.Join(fr.GetJobIds(), " "), 300), printable(fr.GetNote(), 300))
				}
			}
			return nil
		},
	}
	list.Flags().StringVarP(&format, "output", "o", "text", "text or json")
	paused := func(use, short string, p bool) *cobra.Command {
		return &cobra.Command{
			Use: use + " NAME", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				_, err := a.schedules().SetSchedulePaused(cmd.Context(), connect.NewRequest(&montagev1.SetSchedulePausedRequest{Name: args[0], Paused: p}))
				return err
			},
		}
	}
	rm := &cobra.Command{
		Use: "rm NAME", Short: "Remove a schedule (its montages stay)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := a.schedules().RemoveSchedule(cmd.Context(), connect.NewRequest(&montagev1.RemoveScheduleRequest{Name: args[0]}))
			return err
		},
	}
	var at string
	run := &cobra.Command{
		Use:   "run NAME [--at TIME]",
		Short: "Fire now the slot TIME (default: now) falls in, unless it fired already",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &montagev1.RunScheduleRequest{Name: args[0]}
			if at != "" {
				t, err := parseWhen(at)
				if err != nil {
					return err
				}
				req.At = timestamppb.New(t)
			}
			resp, err := a.schedules().RunSchedule(cmd.Context(), connect.NewRequest(req))
			if err != nil {
				return err
			}
			fr := resp.Msg.GetFire()
			fmt.Fprintf(a.out, "slot %s fired: %d job(s) %s %s\n", when(fr.GetSlot()), len(fr.GetJobIds()), strings.Join(fr.GetJobIds(), " "), printable(fr.GetNote(), 300))
			return nil
		},
	}
	run.Flags().StringVar(&at, "at", "", "a time in the slot: RFC 3339 (2026-11-30T09:00:00Z) or YYYY-MM-DD")
	c.AddCommand(add, list, paused("pause", "Stop a schedule firing", true), paused("resume", "Let a schedule fire again (missed slots follow --catch-up)", false), rm, run)
	return c
}

func parseWhen(v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--at %q: use RFC 3339 (2026-11-30T09:00:00Z) or YYYY-MM-DD", v)
}

func (a *app) montagesCmd() *cobra.Command {
	c := &cobra.Command{Use: "montages", Short: "The catalog of finished montages (kept after their media expire)"}
	var req montagev1.ListMontagesRequest
	var format string
	list := &cobra.Command{
		Use:   "list",
		Short: "List finished montages, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			resp, err := a.catalog().ListMontages(cmd.Context(), connect.NewRequest(&req))
			if err != nil {
				return err
			}
			if format == "json" {
				return a.printJSON(resp.Msg)
			}
			tw := tabwriter.NewWriter(a.out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "JOB\tNAME\tSCHEDULE\tSLOT\tSTREAMERS\tHIGHLIGHTS\tDURATION\tSIZE\tFINISHED\tMEDIA")
			for _, m := range resp.Msg.GetMontages() {
				media := "kept"
				if m.GetMediaExpiredAt() != nil {
					media = "expired " + when(m.GetMediaExpiredAt())
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", printable(m.GetJobId(), 40), printable(m.GetName(), 60),
					orDash(printable(m.GetSchedule(), 40)), when(m.GetSlot()), orDash(printable(strings.Join(m.GetStreamers(), ","), 60)),
					len(m.GetHighlights()), spec.FormatTimestamp(m.GetDurationSeconds()), sizeWord(m.GetSizeBytes()), when(m.GetFinishedAt()), media)
			}
			return tw.Flush()
		},
	}
	list.Flags().StringVar(&req.Streamer, "streamer", "", "only montages with this streamer")
	list.Flags().StringVar(&req.Schedule, "schedule", "", "only this schedule's")
	list.Flags().StringVar(&req.Since, "since", "", "finished on or after this day, YYYY-MM-DD")
	list.Flags().StringVarP(&format, "output", "o", "text", "text or json")
	var showFormat string
	show := &cobra.Command{
		Use:   "show JOB",
		Short: "Show a montage: its highlights, chapters and outputs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(showFormat); err != nil {
				return err
			}
			resp, err := a.catalog().GetMontage(cmd.Context(), connect.NewRequest(&montagev1.GetMontageRequest{JobId: args[0]}))
			if err != nil {
				return err
			}
			if showFormat == "json" {
				return a.printJSON(resp.Msg)
			}
			m := resp.Msg.GetMontage()
			fmt.Fprintf(a.out, "Montage:   %s\nName:      %s\nDuration:  %s\nSize:      %s\nFinished:  %s\n", printable(m.GetJobId(), 40),
				printable(m.GetName(), 200), spec.FormatTimestamp(m.GetDurationSeconds()), sizeWord(m.GetSizeBytes()), when(m.GetFinishedAt()))
			if m.GetSchedule() != "" {
				fmt.Fprintf(a.out, "Schedule:  %s, slot %s, window %s to %s\nStreamers: %s\n", printable(m.GetSchedule(), 64), when(m.GetSlot()),
					when(m.GetWindowFrom()), when(m.GetWindowTo()), printable(strings.Join(m.GetStreamers(), ", "), 300))
			}
			if m.GetMediaExpiredAt() != nil {
				fmt.Fprintf(a.out, "Media:     expired %s (retention); this entry stays\n", when(m.GetMediaExpiredAt()))
			} else {
				fmt.Fprintf(a.out, "Media:     montagectl download %s --what all\n", printable(m.GetJobId(), 40))
			}
			fmt.Fprintln(a.out, "Chapters:")
			for _, ch := range m.GetChapters() {
				fmt.Fprintf(a.out, "  %s  %s\n", spec.FormatTimestamp(ch.GetStartSeconds()), printable(ch.GetTitle(), 200))
			}
			fmt.Fprintln(a.out, "Highlights:")
			for _, h := range m.GetHighlights() {
				fmt.Fprintf(a.out, "  %s at %s for %s  %s\n", printable(h.GetUrl(), 200), spec.FormatTimestamp(h.GetAtSeconds()),
					spec.FormatTimestamp(h.GetDurationSeconds()), printable(h.GetTitle(), 200))
			}
			return nil
		},
	}
	show.Flags().StringVarP(&showFormat, "output", "o", "text", "text or json")
	c.AddCommand(list, show)
	return c
}

func sizeWord(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
