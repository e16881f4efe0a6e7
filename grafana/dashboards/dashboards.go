// Package dashboards writes the farm's Grafana dashboards as code (with
// grafana-foundation-sdk) and renders them to the JSON committed beside
// this file, which Grafana's file provisioning loads. `make dashboards`
// regenerates the JSON; a test fails when it is stale.
package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Jobs as deploy/prometheus/prometheus.yml names them.
const (
	coordinatorJob = "montage-coordinator"
	agentJob       = "montage-agent"
)

// ds is every panel's datasource: the dashboard's datasource variable, so
// one import works with whatever the Prometheus datasource is called.
func ds() common.DataSourceRef {
	typ, uid := "prometheus", "${datasource}"
	return common.DataSourceRef{Type: &typ, Uid: &uid}
}

// query is one Prometheus target.
type query struct {
	ref, expr, legend string
	instant           bool
}

func target(q query) *prometheus.DataqueryBuilder {
	b := prometheus.NewDataqueryBuilder().RefId(q.ref).Expr(q.expr).Datasource(ds())
	if q.legend != "" {
		b = b.LegendFormat(q.legend)
	}
	if q.instant {
		b = b.Instant().Format(prometheus.PromQueryFormatTable)
	}
	return b
}

// board builds one dashboard, numbering panels in order (ids unique
// within it) and placing them on the grid.
type board struct {
	//lint:ignore SA1019 the classic schema is what file provisioning loads in every Grafana in use; v2 needs Grafana 12's new API
	b  *dashboard.DashboardBuilder
	id uint32
}

func newBoard(uid, title, description string, tags ...string) *board {
	//lint:ignore SA1019 see board
	b := dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags(append([]string{"montage"}, tags...)).
		Editable().
		Refresh("30s").
		Time("now-6h", "now").
		Timezone(common.TimeZoneBrowser).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").Label("Prometheus").Type("prometheus"))
	return &board{b: b}
}

func (d *board) next() uint32 { d.id++; return d.id }

func (d *board) row(title string) {
	d.b.WithRow(dashboard.NewRowBuilder(title).Id(d.next()))
}

// graph adds a time series panel.
func (d *board) graph(title, description, unit string, w uint32, qs ...query) {
	p := timeseries.NewPanelBuilder().Id(d.next()).Title(title).Description(description).Unit(unit).
		Datasource(ds()).Span(w).Height(8)
	for _, q := range qs {
		p = p.WithTarget(target(q))
	}
	d.b.WithPanel(p)
}

// single adds a stat panel.
func (d *board) single(title, description, unit string, w uint32, q query) {
	p := stat.NewPanelBuilder().Id(d.next()).Title(title).Description(description).Unit(unit).
		Datasource(ds()).Span(w).Height(4).WithTarget(target(q))
	d.b.WithPanel(p)
}

// grid adds a table of an instant query.
func (d *board) grid(title, description string, w uint32, q query) {
	q.instant = true
	p := table.NewPanelBuilder().Id(d.next()).Title(title).Description(description).
		Datasource(ds()).Span(w).Height(8).WithTarget(target(q))
	d.b.WithPanel(p)
}

// agentVar picks agents by name, from what the coordinators export (so
// agents Prometheus cannot reach are listed too).
func agentVar() cog.Builder[dashboard.VariableModel] {
	q := "label_values(montage_agent_info, agent)"
	all := ".*"
	return dashboard.NewQueryVariableBuilder("agent").Label("Agent").
		Query(dashboard.StringOrMap{String: &q}).Datasource(ds()).
		Multi(true).IncludeAll(true).AllValue(all).Refresh(dashboard.VariableRefreshOnTimeRangeChanged)
}

// Dashboard is one rendered dashboard.
type Dashboard struct {
	// File is its name in this directory.
	File string
	JSON []byte
}

// All renders every dashboard.
func All() ([]Dashboard, error) {
	var out []Dashboard
	for _, f := range []struct {
		file  string
		build func() *board
	}{{"farm.json", farm}, {"agents.json", agents}, {"coordinators.json", coordinators}} {
		d, err := f.build().b.Build()
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", f.file, err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", f.file, err)
		}
		out = append(out, Dashboard{File: f.file, JSON: buf.Bytes()})
	}
	return out, nil
}
