package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
)

var jsonOpts = protojson.MarshalOptions{Multiline: true, Indent: "  ", UseProtoNames: true}

func stateWord(s montagev1.JobState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "JOB_STATE_"))
}

func taskStateWord(s montagev1.TaskState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "TASK_STATE_"))
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
	fmt.Fprintf(w, "Job:      %s\nName:     %s\nState:    %s\nProgress: %.0f%%\nCreated:  %s\n",
		j.GetId(), j.GetName(), stateWord(j.GetState()), 100*j.GetProgress(),
		j.GetCreatedAt().AsTime().Local().Format(time.DateTime))
	if j.GetError() != "" {
		fmt.Fprintf(w, "Error:    %s\n", j.GetError())
	}
	if wf := j.GetWaitingFor(); wf != "" {
		fmt.Fprintf(w, "Waiting:  %s\n", wf)
	}
	if enc := j.GetSpec().GetProfile().GetEncoder(); enc != "" {
		fmt.Fprintf(w, "Encoder:  %s\n", enc)
	}
	if k, ok := j.GetOutputs()["montage"]; ok {
		fmt.Fprintf(w, "Montage:  %s (montagectl download %s)\n", k, j.GetId())
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nTASK\tTYPE\tSTATE\tATTEMPTS\tPROGRESS\tAGENT\tERROR")
	for _, t := range j.GetTasks() {
		typ := strings.ToLower(strings.TrimPrefix(t.GetType().String(), "TASK_TYPE_"))
		msg := t.GetError()
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		agent := t.GetAgentId()
		if t.GetCached() {
			agent = "(cache)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%.0f%%\t%s\t%s\n", t.GetId(), typ, taskStateWord(t.GetState()),
			t.GetAttempts(), t.GetMaxAttempts(), 100*t.GetProgress(), agent, strings.ReplaceAll(msg, "\n", " "))
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f%%\t%d\t%s\n", j.GetId(), j.GetName(), stateWord(j.GetState()),
			100*j.GetProgress(), len(j.GetSpec().GetHighlights()), j.GetCreatedAt().AsTime().Local().Format(time.DateTime))
	}
	return tw.Flush()
}
