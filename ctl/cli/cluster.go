package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"

	montagev1 "github.com/stream-montages/montage/proto/montage/v1"
	"github.com/stream-montages/montage/proto/montage/v1/montagev1connect"
)

func (a *app) cluster() montagev1connect.ClusterServiceClient {
	return montagev1connect.NewClusterServiceClient(a.http, strings.TrimRight(a.addr, "/"),
		connect.WithInterceptors(a.authorize(), retryUnavailable(15*time.Second)))
}

func (a *app) clusterCmd() *cobra.Command {
	c := &cobra.Command{Use: "cluster", Short: "Coordinators: status and removal"}
	var format string
	status := &cobra.Command{
		Use:   "status",
		Short: "Leader, raft indexes, voters and gossip members",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			resp, err := a.cluster().GetStatus(cmd.Context(), connect.NewRequest(&montagev1.GetStatusRequest{}))
			if err != nil {
				return err
			}
			s := resp.Msg
			if format == "json" {
				b, err := jsonOpts.Marshal(s)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.out, string(b))
				return nil
			}
			fmt.Fprintf(a.out, "Leader:   %s (%s)\nTerm:     %d\nIndexes:  commit %d, applied %d, last log %d (answered by %s)\n\n",
				printable(s.GetLeaderId(), 80), printable(s.GetLeaderApi(), 200), s.GetTerm(), s.GetCommitIndex(), s.GetAppliedIndex(), s.GetLastLogIndex(), printable(s.GetAnsweredBy(), 80))
			tw := tabwriter.NewWriter(a.out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tHEALTH\tRAFT\tAPI\tRAFT ADDR\tGOSSIP ADDR")
			for _, m := range s.GetMembers() {
				health := "dead"
				if m.GetAlive() {
					health = "alive"
				}
				role := "non-voter"
				switch {
				case m.GetLeader():
					role = "leader"
				case m.GetVoter():
					role = "voter"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", printable(m.GetId(), 80), health, role,
					printable(m.GetApiAddr(), 200), printable(m.GetRaftAddr(), 200), printable(m.GetGossipAddr(), 200))
			}
			return tw.Flush()
		},
	}
	status.Flags().StringVarP(&format, "output", "o", "text", "text or json")
	remove := &cobra.Command{
		Use:   "remove NODE",
		Short: "Remove a coordinator that is gone for good from raft",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := a.cluster().RemoveNode(cmd.Context(), connect.NewRequest(&montagev1.RemoveNodeRequest{NodeId: args[0]})); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "removed %s\n", args[0])
			return nil
		},
	}
	c.AddCommand(status, remove)
	return c
}

func agentStateWord(s montagev1.AgentState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "AGENT_STATE_"))
}

func (a *app) agentsCmd() *cobra.Command {
	var format string
	c := &cobra.Command{
		Use:   "agents",
		Short: "List agents: capabilities, slots in use, state, speed of the last render, last contact",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			resp, err := a.cluster().ListAgents(cmd.Context(), connect.NewRequest(&montagev1.ListAgentsRequest{}))
			if err != nil {
				return err
			}
			if format == "json" {
				b, err := jsonOpts.Marshal(resp.Msg)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.out, string(b))
				return nil
			}
			tw := tabwriter.NewWriter(a.out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTATE\tSLOTS\tTASKS\tFAILS\tSPEED\tVERSION\tOS\tCPU\tGPU\tENCODERS\tFFMPEG\tLAST CONTACT")
			for _, ag := range resp.Msg.GetAgents() {
				seen := "-"
				if ls := ag.GetLastSeen(); ls != nil && ls.CheckValid() == nil {
					seen = time.Since(ls.AsTime()).Round(time.Second).String() + " ago"
				}
				state := agentStateWord(ag.GetState())
				if r := ag.GetStateReason(); r != "" {
					state += " (" + printable(r, 120) + ")"
				} else if r := ag.GetIdleReason(); r != "" && ag.GetState() == montagev1.AgentState_AGENT_STATE_READY {
					state += ", idle: " + printable(r, 160)
				}
				caps := ag.GetCapabilities()
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(ag.GetId(), 80), printable(ag.GetName(), 80), state,
					ag.GetSlotsInUse(), ag.GetSlots(), orDash(printable(strings.Join(ag.GetCurrentTasks(), ","), 200)), ag.GetFailStreak(),
					speedWord(ag.GetStatus()), orDash(printable(ag.GetVersion(), 40)),
					orDash(printable(caps.GetOs()+"/"+caps.GetArch(), 40)), orDash(printable(caps.GetCpu(), 60)), orDash(printable(caps.GetGpuName(), 60)),
					printable(strings.Join(caps.GetEncoders(), ",")+transcribeWord(caps.GetTranscribeModel())+burnWord(caps.GetBurnSubtitles()), 200),
					printable(ffmpegVersion(ag.GetCapabilities().GetFfmpegVersion()), 40), seen)
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVarP(&format, "output", "o", "text", "text or json")
	return c
}

// transcribeWord marks an agent that transcribes, with its model.
func transcribeWord(model string) string {
	if model == "" {
		return ""
	}
	return " +transcribes(" + model + ")"
}

// burnWord marks an agent that can burn subtitles into the picture.
func burnWord(can bool) string {
	if !can {
		return ""
	}
	return " +burns-subtitles"
}

func orUTC(tz string) string {
	if tz == "" {
		return "UTC"
	}
	return tz
}

func orDash(s string) string {
	if s == "" || s == "/" {
		return "-"
	}
	return s
}

// speedWord is an agent's last render speed, with its encoder: "3.2x libx264".
func speedWord(st *montagev1.AgentStatus) string {
	if st.GetSpeed() <= 0 {
		return "-"
	}
	w := fmt.Sprintf("%.1fx", st.GetSpeed())
	if e := st.GetEncoder(); e != "" {
		w += " " + printable(e, 40)
	}
	return w
}

func (a *app) agentCmd() *cobra.Command {
	c := &cobra.Command{Use: "agent", Short: "Enrol, schedule, drain, undrain (also lifts a quarantine) or remove an agent"}
	c.AddCommand(&cobra.Command{
		Use:   "remove ID|NAME",
		Short: "Forget an agent that holds no work: its credential stops working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.agentID(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if _, err := a.cluster().RemoveAgent(cmd.Context(), connect.NewRequest(&montagev1.RemoveAgentRequest{AgentId: id})); err != nil {
				return err
			}
			fmt.Fprintf(a.out, "agent %s removed\n", args[0])
			return nil
		},
	})
	var enrollName string
	var expires time.Duration
	enroll := &cobra.Command{
		Use:   "enroll",
		Short: "Make a one-time token a new PC installs its agent with, and print the command to run there",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := a.cluster().EnrollAgent(cmd.Context(), connect.NewRequest(&montagev1.EnrollAgentRequest{Name: enrollName, ExpiresSeconds: expires.Seconds()}))
			if err != nil {
				return err
			}
			tok := resp.Msg.GetToken()
			fmt.Fprintf(a.out, "One-time token, valid until %s:\n  %s\n\nOn the PC, run (as root or administrator):\n  montage-agent install --coordinator %s --enroll %s\n",
				resp.Msg.GetExpiresAt().AsTime().Local().Format(time.RFC3339), tok, strings.TrimRight(a.addr, "/"), tok)
			return nil
		},
	}
	enroll.Flags().StringVar(&enrollName, "name", "", "the agent's name in the farm (default: the PC's own -name or hostname)")
	enroll.Flags().DurationVar(&expires, "expires", 24*time.Hour, "how long the token may be used (1m to 720h)")
	c.AddCommand(enroll)
	var grace time.Duration
	sched := &cobra.Command{
		Use:   `schedule ID|NAME "DAYS [HH:MM-HH:MM], …"`,
		Short: `When an agent may take work, in its own time zone (e.g. "mon-fri 22:00-07:00, sat-sun"; "" for always)`,
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := a.agentID(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			resp, err := a.cluster().SetAgentSchedule(cmd.Context(), connect.NewRequest(&montagev1.SetAgentScheduleRequest{
				AgentId: id, Schedule: args[1], GraceSeconds: grace.Seconds()}))
			if err != nil {
				return err
			}
			ag := resp.Msg.GetAgent()
			if ag.GetSchedule() == "" {
				fmt.Fprintf(a.out, "agent %s may work at any time\n", args[0])
				return nil
			}
			fmt.Fprintf(a.out, "agent %s works %s (%s)\n", args[0], ag.GetSchedule(), orUTC(ag.GetTimeZone()))
			if r := ag.GetIdleReason(); r != "" {
				fmt.Fprintf(a.out, "idle now: %s\n", r)
			}
			return nil
		},
	}
	sched.Flags().DurationVar(&grace, "grace", 0, "how long running work may go on after the window closes before it is handed back (0: let it finish)")
	c.AddCommand(sched)
	for _, drain := range []bool{true, false} {
		name, short := "drain", "Finish what the agent has and give it nothing new"
		if !drain {
			name, short = "undrain", "Give the agent work again"
		}
		c.AddCommand(&cobra.Command{
			Use:   name + " ID",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				resp, err := a.cluster().DrainAgent(cmd.Context(), connect.NewRequest(&montagev1.DrainAgentRequest{AgentId: args[0], Drain: drain}))
				if err != nil {
					return err
				}
				fmt.Fprintf(a.out, "agent %s is %s\n", args[0], agentStateWord(resp.Msg.GetAgent().GetState()))
				return nil
			},
		})
	}
	return c
}

// agentID resolves an agent given by id or by name (a name must be unique).
func (a *app) agentID(ctx context.Context, idOrName string) (string, error) {
	resp, err := a.cluster().ListAgents(ctx, connect.NewRequest(&montagev1.ListAgentsRequest{}))
	if err != nil {
		return "", err
	}
	var byName []string
	for _, ag := range resp.Msg.GetAgents() {
		if ag.GetId() == idOrName {
			return idOrName, nil
		}
		if ag.GetName() == idOrName {
			byName = append(byName, ag.GetId())
		}
	}
	switch len(byName) {
	case 0:
		return "", fmt.Errorf("no agent has the id or name %q (montagectl agents lists them)", idOrName)
	case 1:
		return byName[0], nil
	}
	return "", fmt.Errorf("%d agents are named %q (%s): give the id", len(byName), idOrName, strings.Join(byName, ", "))
}

// ffmpegVersion picks "5.1.9-0+deb12u1" out of "ffmpeg version 5.1.9-0+deb12u1 Copyright …".
func ffmpegVersion(line string) string {
	f := strings.Fields(line)
	if len(f) >= 3 && f[1] == "version" {
		return f[2]
	}
	return "?"
}
