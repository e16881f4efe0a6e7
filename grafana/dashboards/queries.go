package dashboards

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Query is one panel target of a rendered dashboard.
type Query struct {
	Panel string // the panel's title
	Expr  string
}

// Queries lists every target of every panel of a rendered dashboard.
func Queries(dashboardJSON []byte) ([]Query, error) {
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return nil, fmt.Errorf("dashboard JSON: %w", err)
	}
	var out []Query
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			out = append(out, Query{Panel: p.Title, Expr: t.Expr})
		}
	}
	return out, nil
}

// Evaluable turns a panel's expression into one Prometheus evaluates as
// Grafana would: its variables and ranges replaced (every agent, a rate
// window of window).
func Evaluable(expr, window string) string {
	return strings.NewReplacer("$__rate_interval", window, "$__interval", window, "$agent", ".*").Replace(expr)
}
