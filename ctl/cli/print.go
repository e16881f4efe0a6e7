package cli

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

var jsonOpts = protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}

func stateWord(s montagev1.JobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATE_"))
}

func taskStateWord(s montagev1.TaskState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TASK_STATE_"))
}

func taskTypeWord(t montagev1.TaskType) string {
	return strings.ToLower(strings.TrimPrefix(t.String(), "TASK_TYPE_"))
}

// printable keeps what a coordinator sent from steering the terminal or
// breaking a table: control characters (escape sequences, tabs, newlines)
// become spaces, invalid UTF-8 is replaced, and the text is cut to max runes.
func printable(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if utf8.RuneCountInString(s) > max {
		r := []rune(s)
		s = string(r[:max-1]) + "…"
	}
	return s
}

// fraction is a 0..1 progress whatever a coordinator sent (NaN, negative,
// above 1).
func fraction(p float64) float64 {
	switch {
	case math.IsNaN(p) || p < 0:
		return 0
	case p > 1:
		return 1
	}
	return p
}

// when prints a time in the local zone, or "-" when none was set.
func when(ts *timestamppb.Timestamp) string {
	if ts == nil || (ts.GetSeconds() == 0 && ts.GetNanos() == 0) || ts.CheckValid() != nil {
		return "-"
	}
	return ts.AsTime().Local().Format(time.DateTime)
}

func checkFormat(format string) error {
	if format != "text" && format != "json" {
		return fmt.Errorf("-o %q: use text or json", format)
	}
	return nil
}

func printJob(w io.Writer, format string, j *montagev1.Job) error {
	if err := checkFormat(format); err != nil {
		return err
	}
	if format == "json" {
		b, err := jsonOpts.Marshal(j)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	id := printable(j.GetId(), 80)
	fmt.Fprintf(w, "Job:      %s\nName:     %s\nState:    %s\nProgress: %.0f%%\nCreated:  %s\n",
		id, printable(j.GetName(), 200), stateWord(j.GetState()), 100*fraction(j.GetProgress()), when(j.GetCreatedAt()))
	if e := j.GetError(); e != "" {
		fmt.Fprintf(w, "Error:    %s\n", printable(e, 2000))
	}
	for _, warn := range j.GetWarnings() {
		fmt.Fprintf(w, "Warning:  %s\n", printable(warn, 2000))
	}
	if wf := j.GetWaitingFor(); wf != "" {
		fmt.Fprintf(w, "Waiting:  %s\n", printable(wf, 500))
	}
	if o := j.GetOrigin(); o != nil {
		fmt.Fprintf(w, "Schedule: %s, slot %s (%s)\n", printable(o.GetSchedule(), 64), when(o.GetSlot()), printable(strings.Join(o.GetStreamers(), ", "), 300))
	}
	if h := j.GetWebhook(); h != nil {
		var st string
		switch {
		case h.GetDelivered():
			st = fmt.Sprintf("delivered %s (%s) after %d attempt(s)", when(h.GetDeliveredAt()), printable(h.GetLastStatus(), 100), h.GetAttempts())
		case h.GetGaveUp():
			st = fmt.Sprintf("not delivered, given up after %d attempt(s): %s", h.GetAttempts(), printable(h.GetLastStatus(), 300))
		case h.GetAttempts() > 0:
			st = fmt.Sprintf("%d attempt(s), last %s; next %s", h.GetAttempts(), printable(h.GetLastStatus(), 200), when(h.GetNextAttempt()))
		default:
			st = "when the job ends"
		}
		fmt.Fprintf(w, "Webhook:  %s: %s\n", printable(h.GetUrl(), 200), st)
	}
	if b := j.GetBlockedAgents(); len(b) > 0 {
		fmt.Fprintf(w, "Blocked:  %s (failed this job's tasks too often; they get none of it)\n", printable(strings.Join(b, ", "), 500))
	}
	if enc := j.GetSpec().GetProfile().GetEncoder(); enc != "" {
		fmt.Fprintf(w, "Encoder:  %s\n", printable(enc, 40))
	}
	if a := j.GetTranscriptAudioSeconds(); a > 0 {
		fmt.Fprintf(w, "Audio:    %.1f s (%.2f min) sent for transcription: what the transcripts cost\n", a, a/60)
	}
	if k, ok := j.GetOutputs()["montage"]; ok {
		fmt.Fprintf(w, "Montage:  %s (montagectl download %s)\n", printable(k, 500), id)
		var have []string
		for _, name := range outputNames {
			if _, ok := j.GetOutputs()[name]; ok && name != "montage" {
				have = append(have, name)
			}
		}
		if len(have) > 0 {
			fmt.Fprintf(w, "Also:     %s (montagectl download %s --what NAME, or all)\n", strings.Join(have, ", "), id)
		}
	}
	if sm := j.GetTaskSummary(); sm != nil {
		// A compacted job: its segments are gone and its tasks with them.
		_, err := fmt.Fprintf(w, "Tasks:    %d (%d from the cache, %d attempts); details were compacted after the job finished\n",
			max(0, sm.GetTasks()), max(0, sm.GetCached()), max(0, sm.GetAttempts()))
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTASK\tWHAT\tSTATE\tATTEMPTS\tPROGRESS\tAGENT\tERROR")
	for _, t := range j.GetTasks() {
		agent := printable(t.GetAgentId(), 80)
		if t.GetCached() {
			agent = "(cache)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%.0f%%\t%s\t%s\n", printable(t.GetId(), 80), taskLabel(j, t), taskStateWord(t.GetState()),
			t.GetAttempts(), t.GetMaxAttempts(), 100*fraction(t.GetProgress()), agent, printable(t.GetError(), 200))
	}
	return tw.Flush()
}

func printJobs(w io.Writer, format string, jobs []*montagev1.Job) error {
	if err := checkFormat(format); err != nil {
		return err
	}
	if format == "json" {
		b, err := jsonOpts.Marshal(&montagev1.ListJobsResponse{Jobs: jobs})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(w, string(b))
		return err
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tNAME\tSTATE\tPROGRESS\tHIGHLIGHTS\tCREATED")
	for _, j := range jobs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f%%\t%d\t%s\n", printable(j.GetId(), 80), printable(j.GetName(), 60), stateWord(j.GetState()),
			100*fraction(j.GetProgress()), len(j.GetSpec().GetHighlights()), when(j.GetCreatedAt()))
	}
	return tw.Flush()
}
